"""Figures and the `tfvae evaluate` / `tfvae sample` commands on a real saved model."""
import json

import keras
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import files, plots
from tfvae.app import cli, train


@pytest.fixture(scope="session")
def run_dir(binary_mnist_subset, tmp_path_factory):
    """A `tfvae train`-style folder: a 2-D VAE trained briefly on real MNIST, its metrics."""
    folder = tmp_path_factory.mktemp("run")
    model = tfvae.VAE(input_dim=784, latent_dim=2, hidden=(64,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(tf.data.Dataset.from_tensor_slices(binary_mnist_subset[0]).batch(100),
                        epochs=2, verbose=0)
    files.save_model(model, str(folder / "model.keras"))
    epochs = [{"epoch": i + 1, **{k: v[i] for k, v in history.history.items()}} for i in range(2)]
    files.write_json(str(folder / "metrics.json"), {"epochs": epochs})
    return folder


def read_png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def test_image_grid_places_every_image(tmp_path):
    images = np.zeros((6, 784), np.float32)
    images[4] = 1.0  # one black tile (gray_r) among white ones
    image = read_png(plots.image_grid(images, str(tmp_path / "grid.png"), columns=3))
    assert image[..., :3].min() < 0.1 and image[..., :3].max() > 0.9


def test_a_figure_goes_into_a_folder_that_does_not_exist_yet(tmp_path):
    """As `tfvae sample --out new/dir/grid.png` does: the folder is made (was FileNotFoundError)."""
    read_png(plots.image_grid(np.zeros((4, 784), np.float32), str(tmp_path / "new" / "dir" / "grid.png")))


def test_figures_of_a_model(run_dir, binary_mnist_subset, tmp_path):
    model = files.load_model(run_dir)
    x = binary_mnist_subset[1][:8]
    for path in (plots.sample_grid(model, str(tmp_path / "s.png"), num_samples=9),
                 plots.reconstructions(model, x, str(tmp_path / "r.png")),
                 plots.latent_manifold(model, str(tmp_path / "m.png"), points_per_axis=5),
                 plots.latent_traversals(model, x, str(tmp_path / "t.png"), steps=5),
                 plots.training_curves(files.read_json(str(run_dir / "metrics.json")),
                                       str(tmp_path / "c.png"))):
        read_png(path)
    with pytest.raises(ValueError, match="needs a model of 2 latent units"):
        plots.latent_manifold(tfvae.VAE(input_dim=784, latent_dim=3), str(tmp_path / "x.png"))


def test_tfvae_sample_writes_a_png(run_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["sample", str(run_dir), "--out", str(out), "--num", "16"]) == 0
    read_png(str(out))
    assert str(out) in capsys.readouterr().out
    assert cli.main(["sample", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "No model at" in capsys.readouterr().err


def test_tfvae_evaluate_prints_and_writes_results(run_dir, tmp_path, capsys, mnist_arrays):
    out = tmp_path / "eval"
    assert cli.main(["evaluate", str(run_dir), "--num-samples", "5", "--surgery-samples", "500",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for row in ("test NLL (IWAE, k=5)", "active units", "index-code MI", "marginal KL"):
        assert row in printed
    assert not {"\r", "\x08", "\x1b"} & set(printed)  # (stdout is no terminal: no bar redraws)
    assert len([line for line in printed.splitlines() if line.startswith("20/20 - ")]) == 1
    results = json.loads((out / "evaluation.json").read_text())
    assert results["iwae"]["num_examples"] == 10000
    assert results["iwae"]["nll"] <= -results["iwae"]["elbo"] + 1.0
    surgery = results["elbo_surgery"]
    assert surgery["num_examples"] == 60000 and 0 <= surgery["index_code_mi"] <= surgery["log_n"]
    assert set(results["figures"]) == {"samples", "reconstructions", "traversals", "manifold",
                                       "training_curves"}
    for path in results["figures"].values():
        read_png(path)


@pytest.mark.slow  # long: CI runs it in its second step (`-m slow`)
def test_tfvae_evaluate_checks_an_exact_likelihood_with_a_small_k(binary_mnist_subset, tmp_path, capsys):
    """For the tied harmonium, q(z|x) is the exact posterior, so every importance weight equals
    p(x) and the IWAE estimate must reproduce the enumerated likelihood: evaluate defaults to a
    small k for such a model instead of 5000."""
    model = tfvae.HarmoniumVAE(input_dim=784, latent_dim=6, tie_weights=True, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensor_slices(binary_mnist_subset[0]).batch(100), epochs=1, verbose=0)
    files.save_model(model, str(tmp_path / "model.keras"))
    assert cli.main(["evaluate", str(tmp_path / "model.keras"), "--out", str(tmp_path)]) == 0
    assert f"test NLL (IWAE, k={train.IWAE_CHECK_SAMPLES})" in capsys.readouterr().out
    results = json.loads((tmp_path / "evaluation.json").read_text())
    assert results["iwae"]["num_samples"] == train.IWAE_CHECK_SAMPLES
    assert results["exact"]["num_examples"] == results["iwae"]["num_examples"] == 10000
    np.testing.assert_allclose(results["iwae"]["nll"], results["exact"]["nll"], atol=1e-3)
    np.testing.assert_allclose(-results["iwae"]["elbo"], results["exact"]["nll"], atol=1e-3)
    for path in results["figures"].values():
        read_png(path)
