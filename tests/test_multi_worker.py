"""`training.distribute=multi_worker`: real worker processes on 127.0.0.1 with a real TF_CONFIG.

The cluster test trains a small VAE with `tfvae train` on two workers, kills one of them in the
middle of an epoch, kills the other (which waits in a collective for it), restarts both, and
compares the result with one process training the same global batch on two replicas
(tests/mirrored_train.py: MirroredStrategy over two logical CPUs). Two replicas, not one
device: each replica draws its posterior noise from the same seed state for its own share of
the batch, so only a two-replica run computes the same sums; the data, the shares and the
summed gradients are then the same, and so are the weights up to float32 rounding.
"""
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.app import config as tfvae_config
from tfvae import data, files
from tfvae.app import multi_worker
from helpers import assert_float32_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "zoo", "configs", "vae_mnist.py")
MIRRORED = os.path.join(ROOT, "tests", "mirrored_train.py")
TRAIN_IMAGES, TEST_IMAGES = 512, 128
EPOCHS = 2
SETTINGS = [f"training.epochs={EPOCHS}", "data.batch_size=64", "data.test_batch_size=64",
            "model.hidden=(32,)", "model.latent_dim=4", "evaluation.iwae_samples=20",
            # (jit_compile: XLA cannot compile the two-replica reference on logical CPUs, see
            # README; the workers would compile, but then the two programs would differ)
            "training.jit_compile=False", "optimizer.decay_per_epoch=1.0"]
TIMEOUT = 240  # seconds for one phase of the cluster test (measured: 20-40 s on 2 busy cores)


def write_idx(path, array):
    """An IDX file (`tfvae.data.read_idx`): magic 0x0800 + ndim, the sizes, then the bytes."""
    array = np.ascontiguousarray(array, np.uint8)
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="session")
def small_mnist(tmp_path_factory, mnist_arrays):
    """A $TFVAE_DATA_DIR holding the first 512 training and 128 test images of MNIST."""
    train_x, train_y, test_x, test_y = mnist_arrays
    root = tmp_path_factory.mktemp("data")
    folder = root / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", train_x[:TRAIN_IMAGES].reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte", train_y[:TRAIN_IMAGES])
    write_idx(folder / "t10k-images-idx3-ubyte", test_x[:TEST_IMAGES].reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte", test_y[:TEST_IMAGES])
    return str(root)


def start_reference(processes, out, data_dir):
    """The one-process run the cluster is compared with: the same config and global batch on
    two replicas (tests/mirrored_train.py)."""
    command = [sys.executable, MIRRORED, CONFIG, "--out", out, "--verbose", "2",
               "--set", "training.distribute=mirrored"]
    for setting in SETTINGS:
        command += ["--set", setting]
    processes.start("reference", command, environment(data_dir))


class Processes:
    """Started processes, each in its own process group with stdout and stderr in a log file;
    `stop` kills every group (also the processes' children)."""

    def __init__(self, folder):
        self.folder = folder
        self.running = {}

    def start(self, name, command, env):
        log = open(os.path.join(self.folder, f"{name}.log"), "w")
        self.running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               env=env, cwd=self.folder, start_new_session=True),
                              log)

    def log(self, name):
        with open(os.path.join(self.folder, f"{name}.log"), errors="replace") as f:
            return f.read()

    def kill(self, name):
        process, log = self.running.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()

    def wait(self, names, deadline):
        """Waits for the processes to end; asserts each ended with status 0."""
        for name in names:
            process, log = self.running[name]
            try:
                process.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running after the test's deadline:\n"
                            f"{self.log(name)[-3000:]}")
            self.running.pop(name)
            log.close()
            assert process.returncode == 0, f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}"

    def stop(self):
        for name in list(self.running):
            self.kill(name)


def environment(data_dir, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               TFVAE_DATA_DIR=data_dir, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def start_cluster(processes, out, data_dir, tag, settings=(), outs=None):
    """Two `tfvae train` workers; `outs`: each worker's --out (default: `out` for both)."""
    ports = multi_worker.free_local_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    for index, folder in enumerate(outs or (out, out)):
        command = [sys.executable, "-m", "tfvae.app.cli", "train", CONFIG, "--out", folder,
                   "--verbose", "2", "--set", "training.distribute=multi_worker"]
        for setting in SETTINGS + list(settings):
            command += ["--set", setting]
        processes.start(f"{tag}-worker{index}", command, environment(
            data_dir, {"cluster": cluster, "task": {"type": "worker", "index": index}}))


def final_weights(out):
    return [np.asarray(w) for w in files.load_model(out).get_weights()]


def finished_epochs(out):
    state = files.read_json(os.path.join(out, "backup", "state.json"), default={})
    return int(state.get("epoch", 0))


@pytest.mark.slow  # (three TensorFlow processes, 45-75 s on 2 cores: CI's second step)
@pytest.mark.xdist_group("multi_worker")
def test_two_workers_killed_and_restarted_match_one_process(tmp_path, small_mnist):
    processes = Processes(str(tmp_path))
    reference, out = str(tmp_path / "one_process"), str(tmp_path / "two_workers")
    try:
        # Phase 1: the one-process reference, and the cluster killed in the middle of epoch 2.
        deadline = time.time() + TIMEOUT
        start_reference(processes, reference, small_mnist)
        start_cluster(processes, out, small_mnist, "first")
        # Epoch 2 has begun once the chief prints it; its backup (epoch 2) is not written yet.
        while "Epoch 2/" not in processes.log("first-worker0"):
            assert time.time() < deadline, processes.log("first-worker0")[-3000:]
            for name in ("first-worker0", "first-worker1"):
                assert processes.running[name][0].poll() is None, processes.log(name)[-3000:]
            time.sleep(0.02)
        time.sleep(0.1)  # (a few steps into epoch 2 here; its backup comes after ~1 s)
        processes.kill("first-worker1")
        processes.kill("first-worker0")  # (it waits in a collective for the dead worker)
        assert finished_epochs(out) == 1, "the kill came after epoch 2 ended: lengthen the epochs"
        assert not os.path.exists(os.path.join(out, "model.keras"))

        # Phase 2 (while the reference runs on): both workers, started again with the same
        # command, resume in epoch 2.
        deadline = time.time() + TIMEOUT
        start_cluster(processes, out, small_mnist, "again")
        processes.wait(["again-worker0", "again-worker1", "reference"], deadline)
    finally:
        processes.stop()

    assert "worker 1 of 2 finished" in processes.log("again-worker1")
    assert "Epoch 1/" not in processes.log("again-worker0")  # (resumed, not started over)
    results = files.read_json(os.path.join(out, "metrics.json"))["results"]
    expected = files.read_json(os.path.join(reference, "metrics.json"))["results"]
    # Synchronous training: both workers end with the same weights, bit for bit.
    assert len(set(results["workers_weights_sha256"])) == 1, results["workers_weights_sha256"]
    assert results["worker"] == [0, 2]
    # Only the chief writes; the other worker's temporary folder is gone.
    assert sorted(os.listdir(out)) == ["backup", "config.json", "logs", "metrics.json", "model.keras"]
    # Against one process: the same program up to the collective (a + b either way) and the
    # threads' order of float32 sums, so the weights agree to float32 rounding of their scale
    # (assert_float32_close: 128 eps of max |w|). Measured on this machine: bit for bit.
    for got, want in zip(final_weights(out), final_weights(reference)):
        assert_float32_close(got, want, "weights of two workers vs one process")
    # The IWAE estimate, sharded over the workers (one test batch each), equals one process's;
    # the test metrics are means over the same examples.
    for name in ("test_nll", "test_elbo", "test_kl"):
        assert_float32_close(results[name], expected[name], name, terms=784)
    assert results["epochs"] == EPOCHS


def test_keras_still_has_the_code_worked_around():
    """Once a Keras release fixes keras-team/keras#20585 / tensorflow/tensorflow#72388, this
    fails: remove the workaround from tfvae/app/multi_worker.py (and this test)."""
    present = multi_worker.keras_bugs_present()
    gone = [name for name, there in present.items() if not there]
    assert not gone, (f"Keras {keras.__version__} no longer has the code that "
                      f"tfvae.multi_worker.KERAS_BUGS works around in {gone}: check whether "
                      f"MultiWorkerMirroredStrategy works without it and remove the workaround")


def test_workarounds_change_nothing_outside_multi_worker():
    from keras.src.backend.tensorflow import trainer

    originals = (trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build)
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["/cpu:0"])):
        with multi_worker.keras_workarounds(strategy):
            assert (trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build) == originals
    assert not multi_worker.in_multi_worker_mode(tf.distribute.get_strategy())
    assert multi_worker.is_chief(tf.distribute.get_strategy())


@pytest.mark.parametrize("tf_config, expected", [
    (None, "needs TF_CONFIG"),
    ("{not json", "TF_CONFIG must be JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "task.index"),
])
def test_multi_worker_without_a_usable_tf_config_is_a_one_line_error(monkeypatch, tf_config, expected):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(tfvae_config.ConfigError, match=expected) as error:
        multi_worker.strategy_from_tf_config()
    assert "\n" not in str(error.value) and "Several machines" in str(error.value)


def test_shards_split_every_batch_into_the_rows_one_process_sees(small_mnist):
    """Each worker's share of every batch: its rows of the batch, binarized alike; together the
    shares are the batch, in one process's order, for any (seed, epoch)."""
    folder = os.path.join(small_mnist, "mnist")
    epoch = tf.Variable(2, dtype=tf.int64)
    settings = dict(data_dir=folder, binarize="dynamic", batch_size=64, seed=5, epoch=epoch)
    whole = [x.numpy() for x in data.load("mnist", "train", **settings)]
    shares = [[x.numpy() for x in data.load("mnist", "train", shard=(i, 3), **settings)]
              for i in range(3)]
    assert [len(s) for s in shares] == [len(whole)] * 3
    for b, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([s[b] for s in shares]), batch)
        assert [len(s[b]) for s in shares] == [21, 21, 22]
    with pytest.raises(ValueError, match="shard"):
        data.load("mnist", "train", shard=(2, 2), **settings)


@pytest.mark.slow
@pytest.mark.xdist_group("multi_worker")
def test_two_workers_uninterrupted_equal_one_process_and_refuse_unshared_backups(tmp_path, small_mnist):
    """The uninterrupted cluster run against one process; then each worker given its own --out,
    so that only the chief sees the backup: the rerun with more epochs is refused by all."""
    processes = Processes(str(tmp_path))
    reference, chief, other = (str(tmp_path / name) for name in ("one_process", "chief", "other"))
    try:
        deadline = time.time() + TIMEOUT
        start_reference(processes, reference, small_mnist)
        start_cluster(processes, chief, small_mnist, "first", outs=(chief, other))
        processes.wait(["first-worker0", "first-worker1", "reference"], deadline)
        for got, want in zip(final_weights(chief), final_weights(reference)):
            np.testing.assert_array_equal(got, want)  # (measured: bit for bit; see the test above)
        assert sorted(os.listdir(other)) == []  # (its temporary folder removed)

        start_cluster(processes, chief, small_mnist, "again", outs=(chief, other),
                      settings=[f"training.epochs={EPOCHS + 1}"])
        deadline = time.time() + TIMEOUT
        for name in ("again-worker0", "again-worker1"):
            process, _ = processes.running[name]
            process.wait(timeout=max(1.0, deadline - time.time()))
            assert process.returncode == 2, processes.log(name)[-3000:]
            assert "the workers see different backups" in processes.log(name)
            assert "finished epochs per worker: [2, 0]" in processes.log(name)
    finally:
        processes.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("multi_worker")
def test_each_workers_share_is_checked_as_fit_checks_a_dataset(tmp_path):
    """Data a Bernoulli model is not defined on (values in [0, 2], an .npy of your own): both
    workers stop with fit's message instead of training on it (a distributed dataset used to
    pass unchecked)."""
    values = np.random.default_rng(0).uniform(0.0, 2.0, (256, 784)).astype(np.float32)
    np.save(tmp_path / "mine.npy", values)
    processes = Processes(str(tmp_path))
    try:
        start_cluster(processes, str(tmp_path / "run"), str(tmp_path), "bad", settings=[
            f"data.name={tmp_path / 'mine.npy'}", "data.binarize=None", "data.test_binarize=None",
            "data.validation_size=64", "training.epochs=1"])
        deadline = time.time() + TIMEOUT
        for name in ("bad-worker0", "bad-worker1"):
            process, _ = processes.running[name]
            process.wait(timeout=max(1.0, deadline - time.time()))
            assert process.returncode != 0
            assert "Training data has a value outside [0, 1]" in processes.log(name), processes.log(name)[-3000:]
        assert not os.path.exists(tmp_path / "run" / "model.keras")
    finally:
        processes.stop()
