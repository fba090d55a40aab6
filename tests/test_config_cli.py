"""Config files, overrides and their errors; the `tfvae train` command end to end on MNIST."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfvae import files
from tfvae.app import cli
from tfvae.app import config as tfvae_config

ZOO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "zoo", "configs", "vae_mnist.py")


def test_zoo_config_is_the_iwae_architecture():
    config = tfvae_config.load(ZOO_CONFIG)
    model = config["model"]
    assert (model["input_shape"], model["hidden"], model["latent_dim"]) == ((784,), (200, 200), 50)
    assert config["data"]["binarize"] == "dynamic" and config["data"]["batch_size"] == 100
    # the zoo recipe: 1000 epochs, learning rate 1e-3 decayed to 1e-3 * 0.997^1000 = 5e-5
    assert config["training"]["epochs"] == 1000 and config["optimizer"]["epsilon"] == 1e-4
    assert abs(1e-3 * config["optimizer"]["decay_per_epoch"] ** 1000 - 5e-5) < 1e-5


def test_a_run_saved_with_input_dim_resumes_under_input_shape(tmp_path):
    """The zoo's configs moved from the old spelling input_dim=784 to input_shape=(784,): a run
    folder started with the old one is the same model, and resuming it is not refused; another
    width is."""
    from tfvae.app import train
    config = tfvae_config.load(ZOO_CONFIG)
    old = json.loads(json.dumps(config))
    old["model"].pop("input_shape")
    old["model"]["input_dim"] = 784
    files.write_json(os.path.join(tmp_path, "config.json"), old)
    train.check_same_model(config, str(tmp_path))  # no error
    old["model"]["input_dim"] = 785
    files.write_json(os.path.join(tmp_path, "config.json"), old)
    with pytest.raises(tfvae_config.ConfigError, match="another model"):
        train.check_same_model(config, str(tmp_path))


def test_overrides_parse_literals():
    config = tfvae_config.load(ZOO_CONFIG, ["training.epochs=3", "model.hidden=(64, 32)",
                                            "model.activation=relu", "optimizer.clipnorm=None"])
    assert config["training"]["epochs"] == 3
    assert config["model"]["hidden"] == (64, 32)
    assert config["model"]["activation"] == "relu"
    assert config["optimizer"]["clipnorm"] is None


@pytest.mark.parametrize("override, key", [
    ("training.epoch=3", "training.epoch"),
    ("trainin.epochs=3", "trainin"),
    ("model.latent_size=3", "model.latent_size"),
    ("model.class_name=Nope", "class_name"),
    ("training.epochs=0", "training.epochs"),
    ("training.steps_per_execution=0", "training.steps_per_execution"),
    ("training.steps_per_execution=2.5", "training.steps_per_execution"),
    ("training.anneal_temperature=(1e-4, 0.5, 0)", "training.anneal_temperature"),
    ("training.anneal_temperature=1e-4", "training.anneal_temperature"),
    ("training.anneal_temperature=(1e-4, 0.5, 1000)", "training.anneal_temperature"),  # (no relaxed latents)
    ("epochs", "key=value"),
])
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(tfvae_config.ConfigError, match=key.replace(".", r"\.")):
        tfvae_config.load(ZOO_CONFIG, [override])


def test_variant_imports_the_default_and_unknown_keys_fail(tmp_path):
    (tmp_path / "base.py").write_text(
        "def get_config():\n    return {'model': {'class_name': 'VAE', 'input_dim': 784, 'latent_dim': 2}}\n")
    (tmp_path / "variant.py").write_text(
        "from base import get_config as base\n\ndef get_config():\n"
        "    c = base()\n    c['model']['latent_dim'] = 5\n    return c\n")
    assert tfvae_config.load(str(tmp_path / "variant.py"))["model"]["latent_dim"] == 5
    (tmp_path / "typo.py").write_text("def get_config():\n    return {'optimiser': {}}\n")
    with pytest.raises(tfvae_config.ConfigError, match="optimiser"):
        tfvae_config.load(str(tmp_path / "typo.py"))


def test_bad_model_value_is_a_config_error():
    config = tfvae_config.load(ZOO_CONFIG, ["model.likelihood=poisson"])
    with pytest.raises(tfvae_config.ConfigError, match="likelihood"):
        tfvae_config.build_model(config)


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_tfvae_train_end_to_end(mnist_arrays, tmp_path, capsys):
    out = tmp_path / "run"
    status = cli.main(["train", ZOO_CONFIG, "--out", str(out), "--verbose", "0",
                       "--set", "training.epochs=2", "--set", "data.batch_size=500",
                       "--set", "model.hidden=(64,)", "--set", "training.kl_warmup_epochs=1",
                       "--set", "evaluation.iwae_samples=10"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "test ELBO" in printed and "test NLL (IWAE, k=10)" in printed and str(out) in printed
    record = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    results = record["results"]
    assert -300 < results["test_elbo"] < -100 and results["epochs"] == 2
    assert results["test_nll"] <= -results["test_elbo"] + 1.0  # IWAE-10 is at least the ELBO
    assert json.loads((out / "config.json").read_text())["model"]["hidden"] == [64]
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard logs
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert float(model.kl_warmup.numpy()) == 1.0
    assert np.isfinite(model.elbo(np.zeros((2, 784), np.float32))).all()
    # Rerunning with more epochs continues from the kept backup instead of starting over.
    status = cli.main(["train", ZOO_CONFIG, "--out", str(out), "--verbose", "0",
                       "--set", "training.epochs=3", "--set", "data.batch_size=500",
                       "--set", "model.hidden=(64,)", "--set", "training.kl_warmup_epochs=1",
                       "--set", "evaluation.iwae_samples=0"])
    assert status == 0
    rerun = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in rerun["epochs"]] == [1, 2, 3]
    assert rerun["epochs"][:2] == record["epochs"]  # epochs 1-2 were not trained again
    assert rerun["results"]["epochs"] == 3


def test_tfvae_train_reports_bad_keys(capsys):
    assert cli.main(["train", ZOO_CONFIG, "--set", "training.epoch=1"]) == 2
    assert "training.epoch" in capsys.readouterr().err


def test_console_script_help_has_an_example():
    result = subprocess.run([sys.executable, "-m", "tfvae.app.cli", "train", "--help"],
                            capture_output=True, text=True, check=True)
    assert "example: tfvae train zoo/configs/vae_mnist.py" in result.stdout


@pytest.mark.slow  # long: CI runs it in its second step (`-m slow`)
def test_seed_flag_and_init_from_another_run(mnist_arrays, tmp_path, capsys):
    """`--seed` sets training.seed (not data.seed); `training.init_from` copies a run's weights
    (checked with a zero learning rate, so the new run ends where the source ended); a model of
    another shape, or an unknown zoo name, is refused naming it."""
    common = ["--verbose", "0", "--set", "training.epochs=1", "--set", "model.hidden=(16,)",
              "--set", "data.batch_size=1000", "--set", "evaluation.iwae_samples=0"]
    source = tmp_path / "source"
    assert cli.main(["train", ZOO_CONFIG, "--seed", "7", "--out", str(source)] + common) == 0
    config = json.loads((source / "config.json").read_text())
    assert config["training"]["seed"] == 7 and config["data"]["seed"] == 0
    tuned = tmp_path / "tuned"  # the same network trained with the IWAE bound, k = 5
    assert cli.main(["train", ZOO_CONFIG, "--out", str(tuned), "--set", f"training.init_from={str(source)!r}",
                     "--set", "model.num_samples=5", "--set", "optimizer.learning_rate=0.0"] + common) == 0
    source_model, tuned_model = files.load_model(str(source)), files.load_model(str(tuned))
    assert tuned_model.num_samples == 5
    for a, b in zip(source_model.trainable_weights, tuned_model.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    wider = ["--set", "model.hidden=(32,)", "--set", f"training.init_from={str(source)!r}"]
    assert cli.main(["train", ZOO_CONFIG, "--out", str(tmp_path / "wider")] + common + wider) == 2
    assert f"training.init_from={str(source)!r}: its weights do not fit" in capsys.readouterr().err
    assert cli.main(["train", ZOO_CONFIG, "--out", str(tmp_path / "nope")] + common
                    + ["--set", "training.init_from='nope_model'"]) == 2
    assert "training.init_from='nope_model'" in capsys.readouterr().err


@pytest.mark.slow  # (two trainings; the slow step of .ci/run)
def test_steps_per_call_change_no_weight(mnist_arrays, tmp_path):
    """`training.steps_per_execution` (default 10) only groups steps into calls: an epoch of 24
    steps (60,000 / 2,500: two full calls of 10 and one of 4) trains the same weights one step
    per call and 10 per call, none dropped; the saved model was compiled with the setting."""
    import zipfile

    common = ["--verbose", "0", "--set", "training.epochs=1", "--set", "model.hidden=(16,)",
              "--set", "data.batch_size=2500", "--set", "evaluation.iwae_samples=0"]
    weights = []
    for per_call in (1, None):  # None: the default
        out = tmp_path / f"per_call_{per_call}"
        setting = [] if per_call is None else ["--set", f"training.steps_per_execution={per_call}"]
        assert cli.main(["train", ZOO_CONFIG, "--out", str(out)] + setting + common) == 0
        with zipfile.ZipFile(out / "model.keras") as saved:
            compiled = json.loads(saved.read("config.json"))["compile_config"]
        assert compiled["steps_per_execution"] == (per_call or 10)
        weights.append([w.numpy() for w in files.load_model(str(out)).trainable_weights])
    for one, grouped in zip(*weights):
        np.testing.assert_allclose(grouped, one, rtol=1e-5, atol=1e-6)
