"""The zoo: publish a real training run, list and load it, refuse tampered files; and every
shipped entry in saved_models/ reproduces the values recorded when it was published."""
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from helpers import assert_float32_close, assert_served_like_keras
from tfvae import export, files
from tfvae.app import cli, zoo

# Tests sharing an expensive module fixture run on one worker, so it is built once
# (`pytest -n 2 --dist loadgroup`).
uses_published = pytest.mark.xdist_group("zoo_published")
uses_shipped_served = pytest.mark.xdist_group("zoo_shipped_served")
ZOO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "zoo", "configs", "vae_mnist.py")


@pytest.fixture(scope="session")
def published(mnist_arrays, tmp_path_factory):
    """A one-epoch VAE trained by `tfvae train` and published into a temporary zoo."""
    root = tmp_path_factory.mktemp("zoo")
    run = root / "run"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(run), "--verbose", "0",
                     "--set", "training.epochs=1", "--set", "data.batch_size=500",
                     "--set", "model.hidden=(32,)", "--set", "evaluation.iwae_samples=10"]) == 0
    metadata = zoo.publish(str(run), "tiny_vae", root=str(root / "models"))
    return str(root / "models"), metadata, run


@uses_published
def test_publish_writes_the_entry_and_list_finds_it(published):
    root, metadata, run = published
    results = files.read_json(os.path.join(run, "metrics.json"))["results"]
    assert metadata["name"] == "tiny_vae" and metadata["model"] == "VAE"
    assert metadata["binarization"] == {"train": "dynamic", "test": "fixed"}
    assert metadata["epochs"] == 1 and metadata["num_samples"] == 10
    assert metadata["test_nll"] == results["test_nll"]
    # the recomputed ELBO (fixed seeds) agrees with the run's own evaluation within noise
    assert abs(metadata["test_elbo"] - results["test_elbo"]) < 0.3
    assert set(metadata["files"]) >= {"model.keras", "samples.png", "serving/1/saved_model.pb"}
    assert [m["name"] for m in zoo.list(root)] == ["tiny_vae"]
    assert not [f for f in os.listdir(root) if f.startswith(".tmp")]


@uses_published
def test_load_verifies_checksums_and_reproduces_the_recorded_outputs(published):
    root, metadata, _ = published
    model = zoo.load("tiny_vae", root)
    test = zoo.evaluation_data(metadata["config"])[0]
    x = next(iter(test))[:metadata["checks"]["num_examples"]]
    recomputed = zoo.check_outputs(model, x)
    for key, values in metadata["checks"]["values"].items():
        assert_float32_close(recomputed[key], values, err_msg=key)


def _load_script(name):
    path = os.path.join(os.path.dirname(__file__), "..", "zoo", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@uses_published
def test_zoo_table_command_rebuilds_the_entrys_training_config(published):
    """README's "reproduce" column: the config file plus the printed --set overrides gives the
    configuration the entry was trained with."""
    zoo_table = _load_script("zoo_table")
    _, metadata, _ = published
    words = zoo_table.reproduce_command(metadata).strip("`").split()
    assert words[:2] == ["tfvae", "train"] and set(words[3::2]) == {"--set"}
    assert "training.epochs=1" in words and "model.hidden=[32]" in words
    rebuilt = tfvae.config.load(os.path.join(zoo_table.ROOT, words[2]), words[4::2])
    training = {k: v for k, v in zoo_table.leaves(metadata["config"]).items()
                if not k.startswith("evaluation.")}
    assert {k: zoo_table.leaves(json.loads(json.dumps(rebuilt)))[k] for k in training} == training


def test_zoo_build_skips_the_steps_whose_outputs_are_current(tmp_path, monkeypatch, capsys):
    """zoo/build.py reruns nothing that is done (a finished run, an evaluation newer than the
    model, an entry newer than the evaluation) and redoes a step whose input changed."""
    build = _load_script("build")
    run, entry = tmp_path / "runs" / "vae2d_mnist", tmp_path / "zoo" / "vae2d_mnist"
    run.mkdir(parents=True)
    entry.mkdir(parents=True)
    monkeypatch.setenv("TFVAE_ZOO_DIR", str(tmp_path / "zoo"))
    (run / "metrics.json").write_text(json.dumps({"epochs": [], "results": {"epochs": 30}}))
    for i, path in enumerate([run / "model.keras", run / "evaluation.json", entry / "metadata.json"]):
        path.write_text("{}")
        os.utime(path, (1000 + i, 1000 + i))  # written in this order
    build.build("vae2d_mnist", str(tmp_path / "runs"), num_samples=10)
    assert capsys.readouterr().out.count(": up to date (") == 3
    os.utime(run / "evaluation.json", (2000, 2000))  # re-evaluated: the entry is stale
    with pytest.raises(SystemExit, match="publish failed"):  # (this run has no real model)
        build.build("vae2d_mnist", str(tmp_path / "runs"), num_samples=10)
    assert f"[vae2d_mnist] publish: {entry / 'metadata.json'}" in capsys.readouterr().out


def _rewrite_zip_member(path, member, change):
    with zipfile.ZipFile(path) as z:
        contents = {name: z.read(name) for name in z.namelist()}
    contents[member] = change(contents[member])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in contents.items():
            z.writestr(name, data)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


@uses_published
def test_tampered_files_and_configs_are_refused(published, tmp_path):
    root, _, _ = published
    import shutil
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy)
    keras_file = copy / "tiny_vae" / "model.keras"
    original = keras_file.read_bytes()

    # one flipped byte in the weights file
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    keras_file.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="model.keras does not match its checksum"):
        zoo.load("tiny_vae", str(copy))

    # a changed config inside the .keras archive (a valid zip, a loadable model)
    keras_file.write_bytes(original)
    _rewrite_zip_member(str(keras_file), "config.json",
                        lambda b: b.replace(b'"activation": "tanh"', b'"activation": "relu"'))
    assert files.load_model(str(keras_file)).activation == "relu"  # Keras alone would load it
    with pytest.raises(zoo.ZooError, match="checksum"):
        zoo.load("tiny_vae", str(copy))

    # a tampered SavedModel, and a missing file
    keras_file.write_bytes(original)
    (copy / "tiny_vae" / "serving" / "1" / "saved_model.pb").write_bytes(b"not a graph")
    with pytest.raises(zoo.ZooError, match="saved_model.pb"):
        zoo.load("tiny_vae", str(copy))
    os.remove(copy / "tiny_vae" / "samples.png")
    with pytest.raises(zoo.ZooError, match="missing"):
        zoo.verify("tiny_vae", str(copy))
    with pytest.raises(zoo.ZooError, match="No zoo model 'nope'"):
        zoo.load("nope", str(copy))


@pytest.mark.slow  # (an export and a model check: the slow step of .ci/run)
@uses_published
def test_reexport_rewrites_the_serving_files_and_keeps_the_entry(published, tmp_path, capsys, monkeypatch):
    """An entry published by an older export gets this version's serving/ (every signature),
    with checksums that verify; its model, card and figures stay; a model that no longer gives
    its recorded outputs is refused before anything is written."""
    root, metadata, _ = published
    import shutil
    copy = tmp_path / "zoo"
    shutil.copytree(root, copy)
    entry = copy / "tiny_vae"
    old_serving = entry / "serving" / "1"
    shutil.rmtree(entry / "serving")  # an older export: another served k, its hashes recorded
    export.export_saved_model(zoo.load("tiny_vae", root), str(entry / "serving"), version=1,
                              log_prob_samples=7, name="tiny_vae")
    old = json.loads((entry / zoo.METADATA).read_text())
    old["files"].update({path: zoo.sha256(str(entry / path)) for path in old["files"] if path.startswith("serving/")})
    old["served_nll"] = {"nll": 1.0, "stderr": 0.1, "num_samples": 7, "command": "old"}
    (entry / zoo.METADATA).write_text(json.dumps(old))
    kept = {path: old["files"][path] for path in ("model.keras", "samples.png")}
    zoo.write_card(str(entry), zoo.card(old))  # (a card that shows the old served NLL)
    assert "re-measured from `serving/1/`" in (entry / zoo.CARD).read_text()
    (entry / ".tmp-serving-1").mkdir()  # left by an interrupted re-export
    (entry / ".tmp-serving-1" / "saved_model.pb").write_bytes(b"partial")
    monkeypatch.setenv("TFVAE_ZOO_DIR", str(copy))

    assert cli.main(["zoo", "reexport", "tiny_vae"]) == 0
    assert "its outputs match the recorded ones" in capsys.readouterr().out
    new = json.loads((entry / zoo.METADATA).read_text())
    zoo.verify("tiny_vae", str(copy))  # every file against the new checksums
    assert {path: new["files"][path] for path in kept} == kept
    assert new["files"]["serving/1/saved_model.pb"] != old["files"]["serving/1/saved_model.pb"]
    assert "served_nll" not in new and "reexported" in new
    assert "re-measured from `serving/1/`" not in (entry / zoo.CARD).read_text()  # (no stale figure)
    assert not [path for path in new["files"] if ".tmp" in path or ".old" in path]
    assert {k: new[k] for k in ("test_nll", "test_elbo", "checks")} == {k: metadata[k] for k in ("test_nll", "test_elbo", "checks")}
    assert {log.predict_log.request.model_spec.signature_name
            for log in export.read_warmup_requests(str(old_serving))} == set(export.SIGNATURES)
    assert not [f for f in os.listdir(entry) if f.startswith(".tmp")]

    new["checks"]["values"]["elbo"][0] += 0.5  # the model no longer matches its record
    (entry / zoo.METADATA).write_text(json.dumps(new))
    pb = (old_serving / "saved_model.pb").read_bytes()
    with pytest.raises(zoo.ZooError, match="no longer gives the elbo recorded"):
        zoo.reexport("tiny_vae", str(copy))
    assert (old_serving / "saved_model.pb").read_bytes() == pb


@pytest.mark.slow  # (an evaluation of the whole test split)
@uses_published
def test_reevaluation_reproduces_the_nll_that_training_measured(published, tmp_path, monkeypatch):
    """zoo/reevaluate.py, the shipped entries' check against their cards, measures a card's
    NLL again by another path (`train.evaluate` on the loaded entry, not the end of training)
    with the same seed: the same draws, so the same figure to float32 rounding."""
    root, metadata, _ = published
    monkeypatch.setenv("TFVAE_ZOO_DIR", root)
    reevaluate = _load_script("reevaluate")
    records = tmp_path / "records.json"
    reevaluate.main(["tiny_vae", "--work", str(tmp_path / "work"), "--records", str(records)])
    record = reevaluate.newest(json.loads(records.read_text()), "tiny_vae")
    assert record["published"] == metadata["published"] and record["num_samples"] == 10
    assert record["card_nll"] == metadata["test_nll"]
    # (another seed moves this k = 10 figure by about 0.01 nats; the same seed by none)
    assert abs(record["difference"]) < 1e-3, record
    assert reevaluate.current(json.loads(records.read_text()), "tiny_vae")


def test_shipped_entries_reevaluated_by_this_version_match_their_cards():
    """zoo/reevaluation.json: the newest run of each shipped entry as it is published now
    holds an NLL within 0.01 nats of the card's figure (the redesign changed no entry's numbers)."""
    reevaluate = _load_script("reevaluate")
    records = files.read_json(reevaluate.RECORDS)
    current = {name: reevaluate.newest(records, name) for name in records
               if name in SHIPPED and reevaluate.current(records, name)}
    assert current, f"no record in {reevaluate.RECORDS} is of a shipped entry as published now"
    for name, record in current.items():
        metadata = files.read_json(os.path.join(zoo.zoo_dir(), name, zoo.METADATA))
        assert record["card_nll"] == reevaluate.card_figure(metadata)[1], name
        assert abs(record["nll"] - record["card_nll"]) <= reevaluate.TOLERANCE, (name, record)


@uses_published
def test_cli_zoo_list_and_sample_by_name(published, tmp_path, capsys, monkeypatch):
    root, _, _ = published
    monkeypatch.setenv("TFVAE_ZOO_DIR", root)
    assert cli.main(["zoo", "list"]) == 0
    assert "tiny_vae" in capsys.readouterr().out
    out = tmp_path / "grid.png"
    assert cli.main(["sample", "tiny_vae", "--out", str(out), "--num", "4"]) == 0
    assert out.stat().st_size > 0
    assert cli.main(["sample", "no_such_model", "--out", str(out)]) == 2
    assert "No zoo model 'no_such_model'" in capsys.readouterr().err


SHIPPED = [m["name"] for m in zoo.list_models()]


def _skip_without_data(error):
    """An entry whose dataset is not installed is skipped with the reason (CI, which sets
    TFVAE_REQUIRE_DATA=1, fails instead); the other entries are still checked."""
    if os.environ.get("TFVAE_REQUIRE_DATA") == "1":
        raise error
    pytest.skip(f"dataset not installed: {str(error).splitlines()[0]}")


def _test_data_or_skip(config):
    try:
        return zoo.evaluation_data(config)[0]
    except FileNotFoundError as e:
        _skip_without_data(e)


def test_an_entry_whose_dataset_is_missing_is_skipped_alone(tmp_path, monkeypatch):
    """Without dataset-fashion-mnist only the Fashion-MNIST entry's checks skip (naming what is
    missing); under TFVAE_REQUIRE_DATA=1 they fail. MNIST entries still load their data."""
    monkeypatch.setattr(tfvae.data, "_DEBIAN_DIRS", {"mnist": str(tmp_path), "fashion_mnist": str(tmp_path)})
    monkeypatch.setattr(tfvae.data, "_online", lambda *a, **k: False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv("TFVAE_REQUIRE_DATA", raising=False)
    fashion = {"data": {"name": "fashion_mnist"}, "model": {"likelihood": "bernoulli"}}
    with pytest.raises(pytest.skip.Exception, match="dataset not installed: Could not find the 'fashion_mnist'"):
        _test_data_or_skip(fashion)
    monkeypatch.setenv("TFVAE_REQUIRE_DATA", "1")
    with pytest.raises(FileNotFoundError, match="fashion_mnist"):
        _test_data_or_skip(fashion)
    if os.environ.get("TFVAE_DATA_DIR"):
        assert _test_data_or_skip({"data": {"name": "mnist"}, "model": {}}) is not None


def test_the_cross_program_tolerance_is_float32_rounding_of_the_output_and_no_more():
    """128 eps of the array's magnitude passes, at every element, also one near 0; an error of
    1e-4 of the magnitude (a real mistake is far larger) fails."""
    expected = np.array([30.0, -12.0, 1e-3], np.float32)
    eps = np.finfo(np.float32).eps
    assert_float32_close(expected + np.array([0, 0, 100 * eps * 30]), expected)
    for wrong in (expected * (1 + 1e-4), expected + np.array([0, 0, 1e-4 * 30])):
        with pytest.raises(AssertionError):
            assert_float32_close(wrong, expected)


def test_readme_holds_the_zoo_table_of_the_shipped_metadata():
    """README's zoo table is `zoo/zoo_table.py`'s, from saved_models/ as it is (regenerate it
    with `python zoo/zoo_table.py --readme` after publishing)."""
    zoo_table = _load_script("zoo_table")
    text = open(zoo_table.README, encoding="utf-8").read()
    start, end = zoo_table.readme_table(text)
    assert text[start:end] == zoo_table.table()


# (one entry in the default run, every entry in the slow step: 2-21 s each)
SHIPPED_FAST_FIRST = [pytest.param(name, marks=() if i == 0 else pytest.mark.slow)
                      for i, name in enumerate(sorted(SHIPPED, key=lambda n: n != "vae20d_mnist"))]


@pytest.mark.skipif(not SHIPPED, reason="no zoo models in saved_models/")
@pytest.mark.parametrize("name", SHIPPED_FAST_FIRST)
def test_shipped_zoo_model_matches_its_metadata(mnist_arrays, name):
    """Checksums, recorded outputs, the test ELBO within 0.3 nats, and its SavedModel."""
    model = zoo.load(name)
    metadata = files.read_json(os.path.join(zoo.zoo_dir(), name, zoo.METADATA))
    test = _test_data_or_skip(metadata["config"])
    x = next(iter(test))[:metadata["checks"]["num_examples"]]
    recomputed = zoo.check_outputs(model, x)
    for key, values in metadata["checks"]["values"].items():
        # recorded on the machine that published the entry: another CPU, another program
        assert_float32_close(recomputed[key], values, err_msg=key)
    assert abs(zoo.held_out_elbo(model, test).mean() - metadata["test_elbo"]) < 0.3
    assert isinstance(model, tfvae.BaseVAE)


@pytest.fixture(scope="session")
def shipped_served(mnist_arrays, tmp_path_factory):
    """Every shipped model, and its SavedModel called through all its signatures on 3 test
    images by tests/serving_client.py in one process that cannot import tfvae, Keras or TFP."""
    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(0)
    models, inputs, dirs, missing = {}, {}, [], {}
    for i, name in enumerate(SHIPPED):
        dirs.append(os.path.join(zoo.zoo_dir(), name, "serving", "1"))  # index i in the client
        try:
            test = zoo.evaluation_data(files.read_json(os.path.join(zoo.zoo_dir(), name, zoo.METADATA))["config"])[0]
        except FileNotFoundError as e:  # that entry's test is skipped (or fails under CI)
            missing[name] = e
            continue
        models[name] = zoo.load(name)
        x = next(iter(test))[:3].numpy()
        if models[name].likelihood.accepts_integers:  # (an 8-bit export takes uint8 images)
            x = x.astype(np.uint8)
        for signature in ("reconstruct", "encode", "log_prob"):
            inputs[f"{i}/{signature}:3/x"] = x
        inputs[f"{i}/decode:3/z"] = rng.normal(size=(3, models[name].latent_shape[0])).astype(np.float32)
        inputs[f"{i}/sample:2/seed"] = np.array([5, 6], np.int64)
        for tag, seed in (("3", [3, 4]), ("3b", [3, 5])):
            inputs[f"{i}/log_prob_seeded:{tag}/x"] = x
            inputs[f"{i}/log_prob_seeded:{tag}/seed"] = np.array(seed, np.int64)
    np.savez(root / "inputs.npz", **inputs)
    client = os.path.join(os.path.dirname(__file__), "serving_client.py")
    result = subprocess.run([sys.executable, client, str(root / "inputs.npz"), str(root / "outputs.npz"), *dirs],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return models, inputs, dict(np.load(root / "outputs.npz")), missing


@pytest.mark.slow  # (about a minute: every entry loaded and served; the slow step of .ci/run)
@pytest.mark.skipif(not SHIPPED, reason="no zoo models in saved_models/")
@uses_shipped_served
@pytest.mark.parametrize("index, name", list(enumerate(SHIPPED)))
def test_shipped_saved_model_serves_what_the_keras_model_computes(shipped_served, index, name):
    """The serving checks of the export tests, on each shipped entry: TensorFlow alone loads
    it, every signature answers as the zoo's Keras model does, the warm-up requests parse."""
    models, inputs, outputs, missing = shipped_served
    if name in missing:
        _skip_without_data(missing[name])
    model = models[name]
    assert_served_like_keras(model, inputs, outputs, index, 3)
    # (an 8-bit export's `x` is the uint8 image of its `x_mean`)
    samples = outputs[f"{index}/sample:2/" + ("x_mean" if model.likelihood.accepts_integers else "x")]
    assert_float32_close(samples[0], model.sample(1, seed=tf.constant([5, 0], tf.int64))[0], "sample")
    assert np.abs(samples[0] - samples[1]).max() > 1e-4
    logs = export.read_warmup_requests(os.path.join(zoo.zoo_dir(), name, "serving", "1"))
    # every signature of the contract (`tfvae zoo reexport` brings older exports to it)
    assert set(served_signatures(name)) == set(export.SIGNATURES)
    assert {log.predict_log.request.model_spec.name for log in logs} == {name}


def served_signatures(name):
    """The signatures an entry's export has a warm-up request for, in order."""
    logs = export.read_warmup_requests(os.path.join(zoo.zoo_dir(), name, "serving", "1"))
    return [log.predict_log.request.model_spec.signature_name for log in logs]


def test_loading_never_runs_code_from_a_model_file(tmp_path):
    """A .keras file carrying Python code (a Lambda layer's bytecode) is refused (safe_mode)."""
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    path = str(tmp_path / "code.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        files.load_model(path)
