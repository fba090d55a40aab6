"""Interruption and divergence: a killed run resumes to the weights of an uninterrupted one; a
run whose loss becomes NaN stops with the epoch and step, leaving the last good epoch's backup
and model untouched."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfvae import files
from tfvae.app import cli

ZOO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "zoo", "configs", "vae_mnist.py")


def _digests(folder):
    return {os.path.relpath(os.path.join(d, f), folder):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, names in os.walk(folder) for f in names}


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
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


def _train_command(out, epochs):
    return [sys.executable, "-m", "tfvae.app.cli", "train", ZOO_CONFIG, "--out", str(out), "--verbose",
            "0", "--set", f"training.epochs={epochs}", "--set", "model.hidden=(32,)",
            "--set", "data.batch_size=500", "--set", "evaluation.iwae_samples=0",
            # (op determinism is the same with XLA; without it each process starts sooner)
            "--set", "training.jit_compile=False"]


def _epochs_done(out):
    try:
        return len(json.loads((out / "metrics.json").read_text())["epochs"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _assert_nothing_half_written(out):
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file parses
    state = out / "backup" / "state.json"
    if state.exists():
        weights = out / "backup" / json.loads(state.read_text())["weights"]
        assert weights.exists()


def _weights(path):
    model = files.load_model(str(path))
    return model.get_weights()


@pytest.mark.slow  # long: CI runs it in its second step (`-m slow`)
def test_killed_runs_resume_to_the_weights_of_an_uninterrupted_run(mnist_arrays, tmp_path):
    """SIGKILL mid-epoch and right at an epoch's end, then rerun: the same final weights."""
    epochs = 3
    reference = tmp_path / "reference"
    subprocess.run(_train_command(reference, epochs), check=True, capture_output=True)

    out = tmp_path / "killed"
    kill_points = [(1, 0.5), (2, 0.0)]  # (after this many finished epochs, then wait s)
    for finished, wait in kill_points:
        process = subprocess.Popen(_train_command(out, epochs), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while _epochs_done(out) < finished and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(wait)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        _assert_nothing_half_written(out)
    subprocess.run(_train_command(out, epochs), check=True, capture_output=True)

    record = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    for a, b in zip(_weights(reference), _weights(out)):
        np.testing.assert_array_equal(a, b)  # bitwise
