"""What a run reports is what it measured: the one split function for every kind of source,
results named by their split, a rerun's history kept, 8-bit data refused with the fix, figures
that show what they say (a one-epoch curve, traversals of the units with the most KL, the
manifold of a hierarchy's 2-unit top layer), and the small things a Keras user tries."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfvae
from tfvae import data, plots
from tfvae.app import cli, zoo
from tfvae.app import train as train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_CONFIG = os.path.join(ROOT, "zoo", "configs", "vae_mnist.py")
TINY = ["--verbose", "0", "--set", "model.hidden=(8,)", "--set", "data.batch_size=500",
        "--set", "evaluation.iwae_samples=0", "--set", "training.jit_compile=False"]
RNG = np.random.default_rng(0)


# -- the one split function ------------------------------------------------------------------
def _images(n):
    return RNG.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def test_every_kind_of_source_gets_its_splits_from_one_function(tmp_path):
    arrays = _images(40)
    np.savez(tmp_path / "with_test.npz", x_train=arrays, x_test=arrays[:10])
    np.savez(tmp_path / "without_test.npz", x=arrays)
    for folder, parts in (("split_folder", ("train", "test")), ("flat_folder", ("",))):
        for part in parts:
            os.makedirs(tmp_path / folder / part / "a")
            tf.io.write_file(str(tmp_path / folder / part / "a" / "0.png"), tf.io.encode_png(arrays[0]))
    with_test = ["mnist", "fashion_mnist", "tfds:cifar10", str(tmp_path / "with_test.npz"),
                 str(tmp_path / "split_folder")]
    without_test = [arrays, (arrays, np.zeros(40)), str(tmp_path / "without_test.npz"),
                    str(tmp_path / "flat_folder")]
    for source in with_test:
        # validation is carved from the training data; the test split is the final evaluation's
        assert data.splits(source) == (None, "test")
        assert data.splits(source, validation_size=10) == ("validation", "test")
    for source in without_test:
        assert data.splits(source, validation_size=10) == ("validation", "validation")
        with pytest.raises(ValueError, match="has no test split and no validation_size"):
            data.splits(source)


def test_a_tfds_source_trains_and_validates_on_its_training_data(tmp_path):
    """A `tfds:` name (mock data: tensorflow-datasets cannot download here) through the same
    function: `tfvae train`'s validation comes from the train split, its final measure from test."""
    config = {"data": dict(name="tfds:mnist", binarize=None, test_binarize=None, batch_size=20,
                           test_batch_size=20, validation_size=40, seed=0, flatten=True)}
    with tfds.testing.mock_data(num_examples=100):
        loaded = train_lib.datasets(config)
        counts = {part: sum(int(b.shape[0]) for b in ds) for part, ds in loaded.items()}
    assert counts == {"train": 60, "validation": 40, "evaluation": 100}  # evaluation: the test split
    assert train_lib.splits(config) == ("validation", "test")


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_an_mnist_run_validates_on_training_data_and_names_the_split_it_measured(mnist_arrays, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(out), "--set", "training.epochs=1",
                     "--set", "data.validation_size=1000"] + TINY) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "metrics.json").read_text())
    results = record["results"]
    assert results["split"] == "test" and "test_elbo" in results and "validation_elbo" not in results
    # the epoch's val_ figures are those of the last 1000 training images, not of the test split
    model = tfvae.zoo.load_name_or_path(str(out))
    validation = data.load("mnist", "validation", binarize="fixed", validation_size=1000, batch_size=500)
    val = model.evaluate(validation, return_dict=True, verbose=0)
    assert record["epochs"][0]["val_kl"] == pytest.approx(val["kl"], rel=1e-4)
    assert f"test ELBO: {results['test_elbo']:.2f} nats" in printed

    without = tmp_path / "no_validation"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(without), "--set", "training.epochs=1"] + TINY) == 0
    epochs = json.loads((without / "metrics.json").read_text())["epochs"]
    assert not [key for key in epochs[0] if key.startswith("val_")]  # the test set is not looked at


# -- a rerun keeps the run's history -------------------------------------------------------------
@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_a_rerun_with_another_learning_rate_keeps_both_starts(mnist_arrays, tmp_path):
    out = tmp_path / "run"
    common = ["train", ZOO_CONFIG, "--out", str(out)] + TINY
    assert cli.main(common + ["--set", "training.epochs=1", "--set", "optimizer.learning_rate=0.001"]) == 0
    assert cli.main(common + ["--set", "training.epochs=2", "--set", "optimizer.learning_rate=0.0003"]) == 0
    starts = json.loads((out / "metrics.json").read_text())["starts"]
    assert [s["from_epoch"] for s in starts] == [1, 2]
    assert [s["config"]["optimizer"]["learning_rate"] for s in starts] == [0.001, 0.0003]
    assert zoo.run_starts(starts)[1]["changed"] == {"optimizer.learning_rate": 0.0003, "training.epochs": 2}
    card = zoo.card(dict(json.loads(json.dumps(_metadata_of(out, starts)))))
    assert "Restarted at epoch 2 with optimizer.learning_rate=0.0003, training.epochs=2." in card


def _metadata_of(out, starts):
    config = json.loads((out / "config.json").read_text())
    return {"name": "r", "model": "VAE", "config": config, "dataset": "mnist", "split": "test",
            "binarization": {"train": "dynamic", "test": "fixed"}, "epochs": 2,
            "train_seconds": 1.0, "starts": zoo.run_starts(starts), "params": 1,
            "test_elbo": -100.0, "test_elbo_stderr": 1.0, "test_nll": None,
            "published": "now"}


# -- 8-bit data ------------------------------------------------------------------------------
def test_a_gaussian_model_refuses_8_bit_pixels_naming_the_fix():
    x = RNG.integers(0, 256, (32, 16)).astype(np.float32)
    model = tfvae.VAE(input_shape=(16,), latent_dim=2, hidden=(8,), likelihood="gaussian")
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"looks like 8-bit pixels.*x / 255"):
        model.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Training data looks like 8-bit pixels.*x / 255"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
    model.fit(x / 255.0, epochs=1, verbose=0)  # scaled, it trains
    model.fit(RNG.normal(size=(32, 16)).astype(np.float32) * 100, epochs=1, verbose=0)  # real values
    with pytest.raises(ValueError, match=r"x.astype\('float32'\) / 255"):
        model.encode(x.astype(np.uint8))


def test_the_readme_photo_example_keeps_grey_levels():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    command = text[text.index("tfvae train zoo/configs/vae_mnist.py --set data.name=path/to/photos"):]
    command = command[:command.index("```")]
    assert "data.binarize=None" in command and "data.test_binarize=None" in command
    assert "model.likelihood=gaussian" in command
    serving = text[text.index("| `reconstruct` (also `serving_default`)"):].splitlines()[0]
    assert "[batch, 28, 28, 1]" in serving  # a conv export takes images


# -- figures ------------------------------------------------------------------------------------
@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots draw (still written as PNGs)."""
    figures = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: (figures.append(fig), save(fig, path, **kw)))
    return figures


def test_the_curves_of_a_one_epoch_run_show_its_point(tmp_path, drawn):
    metrics = {"epochs": [{"epoch": 1, "elbo": -150.0, "kl": 20.0, "distortion": 130.0,
                           "val_elbo": -155.0, "val_kl": 19.0, "val_distortion": 136.0}]}
    plots.training_curves(metrics, str(tmp_path / "curves.png"))
    for ax in drawn[0].axes:
        assert [line.get_label() for line in ax.lines] == ["train", "validation"]
        assert all(line.get_marker() not in (None, "None", "") for line in ax.lines)


def test_traversals_show_the_units_with_the_most_kl(tmp_path, drawn):
    model = tfvae.VAE(input_shape=(16,), latent_dim=12, hidden=(8,), seed=0)
    x = (RNG.random((64, 16)) < 0.5).astype(np.float32)
    q = model.encode(x)
    mu, sigma = np.asarray(q["loc"], np.float64), np.asarray(q["scale"], np.float64)
    kl = (0.5 * (mu ** 2 + sigma ** 2 - 1) - np.log(sigma)).mean(0)  # KL[N(mu, s^2) || N(0, 1)]
    plots.latent_traversals(model, x, str(tmp_path / "t.png"), steps=3, num_units=4)
    labels = [t.get_text() for t in drawn[0].axes[0].get_yticklabels()]
    expected = np.argsort(-kl)[:4]
    assert labels == [f"z{u} ({kl[u]:.1f})" for u in expected]


def test_the_manifold_and_traversals_of_a_hierarchy_decode_its_top_layer(tmp_path):
    model = tfvae.LadderVAE(input_shape=(16,), latent_dims=(6, 2), hidden=(8, 8), seed=0)
    x = (RNG.random((8, 16)) < 0.5).astype(np.float32)
    plots.latent_manifold(model, str(tmp_path / "m.png"), points_per_axis=3)
    plots.latent_traversals(model, x, str(tmp_path / "t.png"), steps=3)
    assert os.path.getsize(tmp_path / "m.png") > 0 and os.path.getsize(tmp_path / "t.png") > 0


def test_log_prob_refuses_a_k_that_is_not_positive():
    model = tfvae.VAE(input_shape=(16,), latent_dim=2, hidden=(8,))
    x = np.zeros((2, 16), np.float32)
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="num_samples is k of the IWAE estimate"):
            model.log_prob(x, num_samples=k)


# -- what a Keras user tries --------------------------------------------------------------------
def test_train_takes_a_zoo_name_and_reruns_its_recipe(mnist_arrays, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "vae2d_mnist", "--out", str(out), "--set", "training.epochs=1"] + TINY) == 0
    assert "zoo entry 'vae2d_mnist': its recipe" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["name"] == "vae2d_mnist"


def test_the_encoders_input_gives_the_input_shape():
    encoder = keras.Sequential([keras.Input((5, 3)), keras.layers.Flatten(), keras.layers.Dense(8)])
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(15), keras.layers.Reshape((5, 3))])
    model = tfvae.VAE(encoder=encoder, decoder=decoder, latent_dim=2)
    assert model.input_shape == (5, 3)
    assert model.elbo(np.zeros((4, 5, 3), np.float32)).shape == (4,)


def test_multi_worker_is_a_submodule_of_tfvae():
    assert "multi_worker" in tfvae.__all__
    assert tfvae.__getattr__("multi_worker").strategy_from_tf_config is not None
