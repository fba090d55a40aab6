"""Divergence: a run whose loss becomes NaN stops with the epoch and step, and the last good
epoch's backup and model are left untouched."""
import hashlib
import json
import os

from tfvae import cli

ZOO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "zoo", "configs", "vae_mnist.py")


def _digests(folder):
    return {os.path.relpath(os.path.join(d, f), folder):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, names in os.walk(folder) for f in names}


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_epoch(mnist_arrays, tmp_path,
                                                                             capsys):
    out = tmp_path / "run"
    # exp scales overflow to inf once the learning rate is absurd; a schedule (decay) keeps the
    # learning rate out of the backup, so the rerun really uses the new one
    common = ["--out", str(out), "--verbose", "0", "--set", "model.hidden=(32,)",
              "--set", "model.posterior_scale=exp", "--set", "data.batch_size=500",
              "--set", "optimizer.decay_per_epoch=0.999", "--set", "evaluation.iwae_samples=0"]
    assert cli.main(["train", ZOO_CONFIG, "--set", "training.epochs=1"] + common) == 0
    before = {"model": _digests(out / "backup"), "keras": _digests(out)["model.keras"]}
    capsys.readouterr()

    status = cli.main(["train", ZOO_CONFIG, "--set", "training.epochs=3",
                       "--set", "optimizer.learning_rate=1e4"] + common)
    err = capsys.readouterr().err
    assert status == 1
    assert "Training diverged" in err and "in epoch 2, step" in err and "learning_rate" in err
    assert _digests(out / "backup") == before["model"]        # the epoch-1 backup is intact
    assert _digests(out)["model.keras"] == before["keras"]     # the good model is not replaced
    record = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1]
