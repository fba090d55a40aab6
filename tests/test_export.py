"""SavedModel export: every model class, loaded and called in a separate process with
TensorFlow alone, saved_model_cli, warm-up records, atomic versions, models.config."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

import tfvae
from helpers import assert_float32_close, assert_served_like_keras
from tfvae import export

RNG = np.random.default_rng(0)
HERE = os.path.dirname(os.path.abspath(__file__))
D = 784


# One worker exports the models once (under `pytest -n 2 --dist loadgroup`), not each worker.
pytestmark = pytest.mark.xdist_group("export")


def make_models():
    """The models of the export's own tests (every model's signatures: tests/test_contract.py)."""
    return {
        "vae": tfvae.VAE(input_dim=D, latent_dim=4, hidden=(32,), seed=0),
        "ladder": tfvae.LadderVAE(input_dim=D, latent_dims=(6, 3), hidden=(32, 16), batch_norm=True,
                                  prior="mixture", prior_components=3, seed=0),
    }


def binary(n):
    return (RNG.uniform(size=(n, D)) < 0.3).astype(np.float32)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Exports every model class, runs the serving client once on all of them."""
    root = tmp_path_factory.mktemp("exports")
    models = make_models()
    inputs, dirs = {}, []
    for i, (name, model) in enumerate(models.items()):
        model.build((None, D))
        # Move the weights off their initial values (and batch-norm statistics off 0 / 1).
        model.set_weights([w + 0.05 * RNG.normal(size=w.shape).astype(w.dtype) if w.dtype.kind == "f" else w
                           for w in model.get_weights()])
        dirs.append(export.export_saved_model(model, os.path.join(root, name, "serving")))
        width = model.latent_shape[0]
        for batch in (1, 3):
            for signature in ("reconstruct", "encode", "log_prob"):
                inputs[f"{i}/{signature}:{batch}/x"] = binary(batch)
            inputs[f"{i}/decode:{batch}/z"] = RNG.normal(size=(batch, width)).astype(np.float32)
        inputs[f"{i}/sample:3/seed"] = np.array([5, 6, 5], np.int64)
        inputs[f"{i}/sample:1/seed"] = np.array([5], np.int64)
        for tag, seed in (("3", [3, 4]), ("3b", [3, 5])):
            inputs[f"{i}/log_prob_seeded:{tag}/x"] = inputs[f"{i}/log_prob:3/x"]
            inputs[f"{i}/log_prob_seeded:{tag}/seed"] = np.array(seed, np.int64)
        inputs[f"{i}/reconstruct:width/x"] = np.zeros((2, D + 1), np.float32)
        inputs[f"{i}/reconstruct:dtype/x"] = np.zeros((2, D), np.int32)
    np.savez(os.path.join(root, "inputs.npz"), **inputs)
    result = subprocess.run([sys.executable, os.path.join(HERE, "serving_client.py"),
                             os.path.join(root, "inputs.npz"), os.path.join(root, "outputs.npz"), *dirs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = dict(np.load(os.path.join(root, "outputs.npz")))
    return models, inputs, outputs, dirs


@pytest.mark.parametrize("index, name", list(enumerate(make_models())))
def test_signatures_match_the_keras_model_in_a_process_without_tfvae(exported, index, name):
    models, inputs, outputs, _ = exported
    model = models[name]
    for batch in (1, 3):
        # The same answers as Keras, log_prob the same estimate (k = 100, the export's seed) ...
        assert_served_like_keras(model, inputs, outputs, index, batch)
        x = inputs[f"{index}/log_prob:{batch}/x"]
        log_prob = outputs[f"{index}/log_prob:{batch}/log_prob"]
        assert log_prob.shape == (batch,)
        # ... and within Monte Carlo error of Keras' k = 100 estimates at other seeds, in units
        # of their spread. (Single estimates of an untrained model have a heavy right tail, so
        # the median over the examples is compared; a wrong k or normalization moves them all.)
        others = np.stack([model.log_prob(x, 100, seed=s) for s in range(10, 16)])
        assert np.median(np.abs(log_prob - others.mean(0)) / (others.std(0) + 0.1)) < 6
        assert_float32_close(outputs[f"{index}/log_prob:{batch}/elbo"],
                             model.loss_terms(x, 1, seed=tf.constant([0, 2], tf.int32))["elbo"], "elbo")
        # binary data is discrete: the served estimate in bits per value too
        np.testing.assert_allclose(outputs[f"{index}/log_prob:{batch}/bits_per_dim"],
                                   -log_prob / (D * np.log(2.0)), rtol=1e-5)
    samples, single = outputs[f"{index}/sample:3/x"], outputs[f"{index}/sample:1/x"]
    assert samples.shape == (3, D)
    np.testing.assert_allclose(samples[0], samples[2])        # same seed, same sample
    assert np.abs(samples[0] - samples[1]).max() > 1e-4       # another seed, another sample
    assert_float32_close(single[0], samples[0], "sample at batch 1")  # whatever the batch
    assert_float32_close(samples[0], model.sample(1, seed=tf.constant([5, 0], tf.int64))[0], "sample")


def test_bad_input_fails_with_a_message_naming_the_expected_shape(exported):
    _, _, outputs, _ = exported
    for i in range(len(make_models())):
        width_error = str(outputs[f"{i}/reconstruct:width/error"])
        assert "input x must have shape [batch, 784] (float32)" in width_error, width_error
        assert "received shape:] [2 785]" in width_error, width_error
        # TensorFlow checks the dtype before any shape: "expected to be a float tensor but is
        # a int32 tensor".
        dtype_error = str(outputs[f"{i}/reconstruct:dtype/error"])
        assert "float" in dtype_error and "int32" in dtype_error, dtype_error


def test_saved_model_cli_shows_and_runs_the_export(exported, tmp_path):
    _, _, _, dirs = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", dirs[0], "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in export.SIGNATURES + ("serving_default",):
        assert f"signature_def['{signature}']" in shown.stdout
    x = binary(2)
    np.save(tmp_path / "x.npy", x)
    ran = subprocess.run([cli, "run", "--dir", dirs[0], "--tag_set", "serve", "--signature_def",
                          "serving_default", "--inputs", f"x={tmp_path / 'x.npy'}", "--outdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert_float32_close(np.load(tmp_path / "x_mean.npy"), exported[0]["vae"].reconstruct(x), "x_mean")


def test_warmup_requests_parse_back(exported):
    _, _, _, dirs = exported
    logs = export.read_warmup_requests(dirs[list(make_models()).index("ladder")])
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(export.SIGNATURES)
    assert all(log.predict_log.request.model_spec.name == "ladder" for log in logs)
    request = logs[2].predict_log.request
    assert tf.make_ndarray(request.inputs["z"]).shape == (1, 3)


def test_cli_versions_and_models_config(exported, tmp_path):
    """`tfvae export` takes the next free version, refuses to overwrite one, and writes the
    models.config that serves every exported model (a valid ModelServerConfig text proto)."""
    from tensorflow_serving.config import model_server_config_pb2
    from tfvae import files
    from tfvae.app import cli
    models, _, _, dirs = exported
    base = os.path.dirname(dirs[0])
    assert os.path.basename(dirs[0]) == "1"
    files.save_model(models["vae"], str(tmp_path / "run" / "model.keras"))
    assert cli.main(["export", str(tmp_path / "run"), base]) == 0
    assert os.path.isfile(os.path.join(base, "2", "saved_model.pb"))
    assert cli.main(["export", str(tmp_path / "run"), base, "--version", "1"]) == 2
    root = os.path.dirname(os.path.dirname(base))
    assert cli.main(["export", "--model-config", root]) == 0
    config = text_format.Parse(open(os.path.join(root, "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == sorted(make_models())
    assert config.model_config_list.config[0].base_path == f"/models/{sorted(make_models())[0]}/serving"
    assert cli.main(["export", "--model-config", str(tmp_path / "run")]) == 2  # nothing exported there
    with pytest.raises(SystemExit):
        cli.main(["export", str(tmp_path / "run")])  # DIR missing


# The export runs for real up to its final rename, which waits to be killed there: the worst
# moment (every file written) every time, not whenever a poll of the folder happens to land.
KILL_SCRIPT = """
import os, sys, time, tfvae
from tfvae import export
model = tfvae.VAE(input_dim=784, latent_dim=4, hidden=(32,))
rename = os.rename
os.rename = lambda src, dst: time.sleep(600) if os.path.basename(src).startswith(".tmp-export-") else rename(src, dst)
export.export_saved_model(model, sys.argv[1])
"""


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_an_interrupted_export_leaves_no_version_a_server_would_load(tmp_path):
    base = tmp_path / "serving"
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(base)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        temporary = [base / n for n in os.listdir(base) if n.startswith(".tmp-export-")] if base.exists() else []
        if temporary and (temporary[0] / "saved_model.pb").exists():
            time.sleep(0.5)  # (the rename is next: the process is waiting in it now)
            break
        time.sleep(0.05)
    assert process.poll() is None, "the export finished before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)  # mid-write: the temporary folder exists
    process.wait()
    assert not [n for n in os.listdir(base) if n.isdigit()]
    # The next export cleans up after the killed one and takes version 1.
    path = export.export_saved_model(tfvae.VAE(input_dim=D, latent_dim=4, hidden=(32,)), str(base))
    assert sorted(os.listdir(base)) == ["1"] and path.endswith("1")


@pytest.mark.slow  # (16 s: zoo/served_nll.py in its own process; the slow step of .ci/run)
def test_served_nll_combines_seeded_calls_into_the_k_sample_estimate(exported):
    """zoo/served_nll.py, run in its TensorFlow-only child on an export: m = 3 calls of the
    k = 100 `log_prob_seeded` signature per batch (seeds (batch, j)) give the IWAE estimate with
    k = 300, log (1/3) sum_j exp(log_prob_j), equal to Keras' log-weights at the same seeds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "served_nll", os.path.join(HERE, "..", "zoo", "served_nll.py"))
    served_nll = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(served_nll)
    models, _, _, dirs = exported
    model, x = models["vae"], binary(105)  # two batches of served_nll.BATCH = 100
    result = served_nll.served_nll(dirs[0], x, num_samples=300, export_samples=100, timeout=600)
    expected = []
    for b, start in enumerate(range(0, len(x), served_nll.BATCH)):
        sums = np.stack([model.log_weight_logsumexp(x[start:start + served_nll.BATCH], 100,
                                                    tf.constant([b, j], tf.int32)) for j in range(3)])
        expected.append(np.logaddexp.reduce(sums.astype(np.float64), axis=0) - np.log(300))
    expected = np.concatenate(expected)
    assert_float32_close(np.array(result["log_px"]), expected, "log p(x), k = 300", terms=D + 8)
    assert result["num_examples"] == 105 and result["num_samples"] == 300
    np.testing.assert_allclose(result["nll"], -expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(result["stderr"], expected.std(ddof=1) / np.sqrt(105), rtol=1e-3)
    np.testing.assert_allclose(result["bits_per_dim"], -expected.mean() / (D * np.log(2)), rtol=1e-5)
    with pytest.raises(subprocess.CalledProcessError):  # k not a multiple of the export's
        served_nll.served_nll(dirs[0], x[:2], num_samples=150, export_samples=100, timeout=600)
