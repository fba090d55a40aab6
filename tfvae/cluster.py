"""Where this process stands in a `tf.distribute` run, and small collectives: the worker count
and index, whether it is the chief, sums and gathers of numpy values over the workers.

A library module (evaluation runs its IWAE batches across the workers with it); starting a
cluster from TF_CONFIG and training on it is the app's `tfvae.multi_worker`. Outside
multi-worker mode every function answers for one process.
"""
import numpy as np
import tensorflow as tf


def in_multi_worker_mode(strategy):
    """True for a MultiWorkerMirroredStrategy whose cluster has more than this process."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def is_chief(strategy):
    """Whether this process writes the outputs: the "chief" task, else worker 0; every process
    outside multi-worker mode."""
    if not in_multi_worker_mode(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def num_workers(strategy):
    """The number of worker processes (1 outside multi-worker mode)."""
    if not in_multi_worker_mode(strategy):
        return 1
    return strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)


def worker_index(strategy):
    """This worker's place among the `num_workers` (its replicas' order in the sync group)."""
    if not in_multi_worker_mode(strategy):
        return 0
    replica = _run(strategy, lambda: tf.constant(
        tf.distribute.get_replica_context().replica_id_in_sync_group))
    return int(replica) // len(strategy.extended.worker_devices)


def all_sum(strategy, array):
    """The sum over workers of a numpy `array` (the same shape on every worker), as float64."""
    value = np.asarray(array, np.float64)
    if not in_multi_worker_mode(strategy):
        return value
    local = len(strategy.extended.worker_devices)

    def add(value):  # (once per worker: its first replica adds the value, the others zeros)
        context = tf.distribute.get_replica_context()
        first = tf.equal(tf.constant(context.replica_id_in_sync_group) % local, 0)
        return context.all_reduce("sum", tf.where(first, value, tf.zeros_like(value)))

    return _run(strategy, add, value)


def all_gather(strategy, array):
    """Every worker's numpy `array` (the same shape on each), stacked in worker order."""
    value = np.asarray(array)[None]
    if not in_multi_worker_mode(strategy):
        return value
    gathered = _run(strategy, lambda v: tf.distribute.get_replica_context().all_gather(v, axis=0), value)
    return gathered[::len(strategy.extended.worker_devices)]


def _run(strategy, fn, *args):
    """`fn(*args)` on every replica; the first local replica's result as numpy.

    Eagerly: these are a few values once per run, and inside a `tf.function` the collective
    finds no destination devices ("destinations can not be empty", TF 2.21). TensorFlow's
    warning that eager collectives are slow is silenced for the call.
    """
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        results = strategy.run(fn, args=tuple(tf.constant(a) for a in args))
    finally:
        logger.setLevel(level)
    return strategy.experimental_local_results(results)[0].numpy()
