"""`model.fit` under tf.distribute.MirroredStrategy on two logical CPU devices.

The replicas draw their own posterior noise, so two-replica training is not bitwise single-device
training; what must match is everything else: the initialization, the loss and metric units,
and the size of each update (each replica's gradient averaged, not summed). The test measures
the distance between the two runs' weights against two references from the same script: the
distance a different noise seed alone causes, and the one a doubled learning rate (the symptom
of summed replica gradients) causes.
"""
import json
import os
import subprocess
import sys

import pytest

CLIENT = os.path.join(os.path.dirname(__file__), "distribute_client.py")


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_mirrored_strategy_matches_single_device():
    command = [sys.executable, CLIENT, "--steps", "4"]  # no --jit: see distribute_client.py
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["same_initialization"] == 0.0
    noise = report["other_seed_vs_single"]
    assert report["mirrored_vs_single"] < 3 * noise, report
    assert report["double_lr_vs_single"] > 3 * noise, report  # the test can see a scaling error
    logs = report["logs"]
    for name in ("loss", "elbo", "kl", "distortion"):
        spread = abs(logs["other_seed"][name] - logs["single"][name]) + 0.5
        assert abs(logs["mirrored"][name] - logs["single"][name]) < 3 * spread, (name, logs)

