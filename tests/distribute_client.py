"""Trains one small VAE a few steps on one device and under MirroredStrategy on two logical CPUs.

Run by tests/test_distribute.py in a fresh process (logical devices must be configured before
TensorFlow starts). Prints one JSON line: for each run the per-epoch `fit` metrics, the weights'
distance from a shared initialization and from the single-device run.

    python tests/distribute_client.py [--steps 4] [--jit]

`--jit` fails on logical CPU devices: XLA will not read a replica's variables placed on another
logical device (https://www.tensorflow.org/xla/known_issues, "tf.Variable on a different
device"); the test trains without it.
"""
import argparse
import json

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfvae  # noqa: E402

GLOBAL_BATCH = 512


def train(strategy, data, steps, learning_rate, model_seed, jit_compile):
    """Weights and history after `steps` SGD steps on `data` (same initialization every call)."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfvae.VAE(784, 8, hidden=(64,), seed=model_seed)
        model.build((None, 784))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate), jit_compile=jit_compile)
    initial = [w.copy() for w in model.get_weights()]
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(GLOBAL_BATCH).take(steps)
    history = model.fit(dataset, epochs=1, verbose=0)
    return initial, model.get_weights(), {k: float(v[-1]) for k, v in history.history.items()}


def distance(a, b):
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    prototypes = rng.random((10, 784)) < 0.3  # ten noisy "digits": a learnable signal
    data = (prototypes[rng.integers(0, 10, GLOBAL_BATCH * args.steps)]
            ^ (rng.random((GLOBAL_BATCH * args.steps, 784)) < 0.05)).astype("float32")

    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    lr, jit = args.learning_rate, args.jit
    init, single, single_logs = train(one, data, args.steps, lr, 1, jit)
    init_m, multi, multi_logs = train(mirrored, data, args.steps, lr, 1, jit)
    _, other_seed, other_logs = train(one, data, args.steps, lr, 2, jit)
    _, double_lr, double_logs = train(one, data, args.steps, 2 * lr, 1, jit)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "same_initialization": distance(init, init_m),
        "single_moved": distance(init, single),
        "mirrored_vs_single": distance(multi, single),
        "other_seed_vs_single": distance(other_seed, single),
        "double_lr_vs_single": distance(double_lr, single),
        "logs": {"single": single_logs, "mirrored": multi_logs, "other_seed": other_logs,
                 "double_lr": double_logs},
    }))


if __name__ == "__main__":
    main()
