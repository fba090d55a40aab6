"""The CIFAR-10 recipes (zoo/configs/vae_cifar10.py, lvae_cifar10.py) through `tfvae train`,
`tfvae evaluate` and `tfvae sample`, on tensorflow-datasets' mock CIFAR-10 (random 8-bit
32x32x3 images: this machine cannot download the real one), at small widths: 8-bit RGB data
stays integer end to end, the figures are RGB, and the results are in nats and bits/dim."""
import json

import numpy as np
import pytest
from PIL import Image

from tfvae.app import cli

tfds = pytest.importorskip("tensorflow_datasets")

SMALL = {
    "vae_cifar10": ["--set", "model.hidden=(8,16)", "--set", "model.latent_dim=4"],
    "lvae_cifar10": ["--set", "model.hidden=((8,16),(8,))", "--set", "model.latent_dims=(4,2)"],
}
COMMON = ["--set", "training.epochs=1", "--set", "data.batch_size=16", "--set", "data.test_batch_size=16",
          "--set", "data.validation_size=16", "--set", "evaluation.iwae_samples=4",
          "--set", "training.jit_compile=False"]


@pytest.mark.slow  # (35 s: the slow step of .ci/run)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_cifar_recipe_trains_evaluates_and_samples_rgb_on_mock_data(name, tmp_path, capsys):
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=48):
        assert cli.main(["train", f"zoo/configs/{name}.py", "--out", str(out)] + SMALL[name] + COMMON) == 0
        config = json.loads((out / "config.json").read_text())
        assert config["data"]["eight_bit"] and tuple(config["model"]["input_shape"]) == (32, 32, 3)
        results = json.loads((out / "metrics.json").read_text())["results"]
        # a discrete likelihood of 8-bit values: nats and bits/dim = nats / (3072 ln 2)
        assert results["test_bits_per_dim"] == pytest.approx(results["test_nll"] / (3072 * np.log(2)),
                                                             rel=1e-6)
        # one epoch on 32 random images: above the 8 bits/dim of a uniform model, but not by
        # orders of magnitude (the networks read 8-bit values scaled to [-1, 1])
        assert 0 < results["test_bits_per_dim"] < 12, results
        assert cli.main(["evaluate", str(out), "--num-samples", "4", "--surgery-samples", "16",
                         "--out", str(tmp_path / "eval")]) == 0
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation["iwae"]["bits_per_dim"] == pytest.approx(evaluation["iwae"]["nll"] / (3072 * np.log(2)), rel=1e-6)
    figures = sorted((tmp_path / "eval").glob("*.png"))
    assert figures
    for figure in figures:
        assert Image.open(figure).mode in ("RGB", "RGBA")
    # the inputs are shown in colour: the channels of their pixels differ (grey has R = G = B;
    # the model of random bytes reconstructs and samples their mean, 127.5: grey)
    shown = np.asarray(Image.open(tmp_path / "eval" / "reconstructions.png").convert("RGB"), np.float64)
    assert np.abs(shown[..., 0] - shown[..., 1]).mean() > 1.0
    grid = tmp_path / "grid.png"
    assert cli.main(["sample", str(out), "--out", str(grid), "--num", "4"]) == 0
    assert Image.open(grid).mode in ("RGB", "RGBA")
