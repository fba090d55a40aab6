"""Training across machines: `tf.distribute.MultiWorkerMirroredStrategy` from TF_CONFIG, the
worker's share of the data, where each worker writes, and the two Keras 3 `fit` workarounds.

Every worker runs the same program on its own share of each global batch; gradients are summed
across workers by a collective all-reduce (ring on CPUs). The chief writes the outputs; the
other workers write the same files to a temporary folder they remove at the end, so that every
collective a write involves runs on all workers (the tf.distribute convention:
https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras#model_saving_and_loading).
"""
import contextlib
import inspect
import json
import os
import shutil
import socket

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_trainer

from tfvae.cluster import (all_gather, all_sum, in_multi_worker_mode, is_chief,  # noqa: F401
                           num_workers, worker_index)
from tfvae.app.config import ConfigError

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def strategy_from_tf_config():
    """A `tf.distribute.MultiWorkerMirroredStrategy` for the cluster that TF_CONFIG describes.

    Collectives use the ring implementation on CPUs and NCCL where there are GPUs. Create it
    before any other TensorFlow work of the process (it starts this worker's gRPC server).

    Raises:
        ConfigError: TF_CONFIG is unset or not the JSON of a cluster with this task in it.

    Example:
    >>> strategy = tfvae.multi_worker.strategy_from_tf_config()
    >>> with strategy.scope():
    ...     model = tfvae.VAE(input_shape=(784,), latent_dim=50); model.compile("adam")
    >>> with tfvae.multi_worker.keras_workarounds(strategy):
    ...     model.fit(strategy.distribute_datasets_from_function(...))
    """
    text = os.environ.get("TF_CONFIG")
    fix = f"set it on each machine, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' (README, \"Several machines\")"
    if not text:
        raise ConfigError(f"training.distribute=multi_worker needs TF_CONFIG, the cluster and this "
                          f"worker's place in it: {fix}. Received: TF_CONFIG unset")
    try:
        tf_config = json.loads(text)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = int(task["index"])
        members = tf_config["cluster"][task["type"]]
        assert 0 <= index < len(members) and workers
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ConfigError(f"TF_CONFIG must be JSON with cluster.worker (a list of host:port) and "
                          f"task.type and task.index naming this process's entry: {fix}. "
                          f"Received: TF_CONFIG={text!r}") from None
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                      if tf.config.list_physical_devices("GPU")
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


def write_dir(out_dir, strategy):
    """Where this process writes: `out_dir` on the chief, `<out_dir>/workertemp_<task>` on the
    other workers (removed by `remove_write_dir` at the end; kept across restarts, so a worker's
    finished IWAE batches survive a kill)."""
    if is_chief(strategy):
        return out_dir
    resolver = strategy.cluster_resolver
    return os.path.join(out_dir, f"workertemp_{resolver.task_type}_{resolver.task_id}")


def remove_write_dir(out_dir, strategy):
    """Removes a non-chief worker's temporary folder (nothing on the chief)."""
    folder = write_dir(out_dir, strategy)
    if folder != out_dir:
        shutil.rmtree(folder, ignore_errors=True)


def distribute(strategy, make_dataset):
    """The distributed dataset of `make_dataset(shard)`, one shard per replica.

    `make_dataset((index, count))` returns the batches of shard `index` of `count`: replica r of
    worker w gets shard w * R + r (R replicas per worker), i.e. its contiguous part of every
    global batch (`tfvae.data.load(..., shard=...)`). A worker with several replicas (GPUs)
    feeds them its shards in turn.
    """
    def per_worker(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        shards = [make_dataset((context.input_pipeline_id * local + r, context.num_replicas_in_sync))
                  for r in range(local)]
        if local == 1:
            return shards[0]
        return tf.data.Dataset.choose_from_datasets(shards, tf.data.Dataset.range(local).repeat())

    return strategy.distribute_datasets_from_function(per_worker)


# -- Keras 3 workarounds ---------------------------------------------------------------------
# Keras 3.15.1's `fit` fails twice under MultiWorkerMirroredStrategy; both places are patched
# while `keras_workarounds` is active, and only in multi-worker mode. `KERAS_BUGS` names the
# code that the patches replace: tests/test_multi_worker.py fails once an installed Keras no
# longer has it, so that the workaround is removed rather than left stale.
KERAS_BUGS = {
    # keras-team/keras#20585, tensorflow/tensorflow#72388: the scalar logs of a train step are
    # reduced along an axis they do not have ("Invalid reduction dimension 0 for input with 0
    # dimensions").
    "reduce_per_replica": (keras_trainer, "reduce_per_replica",
                           'return strategy.reduce("MEAN", v, axis=0)'),
    # keras-team/keras#20585: the batch that `fit` builds the model from is averaged across the
    # workers' replicas ("Attempt to convert a value (PerReplica ...)") where one replica's batch
    # is all the build needs (it reads only structure and shapes). Seen with several replicas
    # per worker (GPUs); on CPUs each worker has one replica and the batch is a plain tensor.
    "_maybe_symbolic_build": (keras_trainer.TensorFlowTrainer, "_maybe_symbolic_build",
                              "data_batch = self.distribute_strategy.reduce("),
}


def keras_bugs_present():
    """{name: whether the installed Keras still has the code `KERAS_BUGS[name]` works around}."""
    present = {}
    for name, (owner, attribute, code) in KERAS_BUGS.items():
        source = inspect.getsource(_ORIGINALS[name])
        present[name] = code in " ".join(source.split())
    return present


def _reduce_per_replica(values, strategy, reduction):
    """Keras' `reduce_per_replica`, except that in multi-worker mode a scalar's mean over the
    replicas is taken without an axis (keras-team/keras#20585, tensorflow/tensorflow#72388)."""
    if in_multi_worker_mode(strategy) and reduction in ("auto", "mean"):
        def reduce(v):
            if v.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return _ORIGINALS["reduce_per_replica"](v, strategy, reduction)

        return tf.nest.map_structure(reduce, values)
    return _ORIGINALS["reduce_per_replica"](values, strategy, reduction)


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Keras' `_maybe_symbolic_build`, except that in multi-worker mode the model is built from
    the first local replica's batch instead of a cross-worker mean (keras-team/keras#20585)."""
    strategy = self.distribute_strategy
    if iterator is not None and in_multi_worker_mode(strategy) and self._distribute_strategy:
        for _, _, batches in iterator:
            first = next(batches)
            data_batch = tf.nest.map_structure(
                lambda v: (strategy.experimental_local_results(v)[0]
                           if isinstance(v, tf.distribute.DistributedValues) else v), first)
            break
        iterator = None
    return _ORIGINALS["_maybe_symbolic_build"](self, iterator=iterator, data_batch=data_batch)


_ORIGINALS = {name: getattr(owner, attribute) for name, (owner, attribute, _) in KERAS_BUGS.items()}
_PATCHES = {"reduce_per_replica": _reduce_per_replica, "_maybe_symbolic_build": _maybe_symbolic_build}


@contextlib.contextmanager
def keras_workarounds(strategy):
    """Runs the block (`fit`, `evaluate`) with Keras' two multi-worker failures worked around
    (see `KERAS_BUGS`); under any other strategy it changes nothing. Keras' own functions are
    back in place when the block ends, also when it fails."""
    if not in_multi_worker_mode(strategy):
        yield
        return
    for name, (owner, attribute, _) in KERAS_BUGS.items():
        setattr(owner, attribute, _PATCHES[name])
    try:
        yield
    finally:
        for name, (owner, attribute, _) in KERAS_BUGS.items():
            setattr(owner, attribute, _ORIGINALS[name])


def free_local_ports(count):
    """`count` ports free on 127.0.0.1 now (bound, read and released; the workers bind them
    next): the TF_CONFIG of a cluster of workers on one machine, as the tests and
    benchmarks/multi_worker.py start."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
