"""Speeds of the parts that decide train and evaluation time, each alone, on this machine.

- noise: 3.3M standard normals inside an XLA-compiled function, per generator algorithm
  (XLA's default Philox vs Threefry, the one tfvae uses) and TensorFlow's own kernel;
- pipeline: one epoch of `tfvae.data.load("mnist", "train", binarize="dynamic")`;
- iwae_chunk: one chunk of `BaseVAE.log_prob` (131 samples x 500 images) of the
  784-200-200-50 VAE.

    TFVAE_DATA_DIR=../shared/data python benchmarks/components.py --out components.json
"""
import argparse
import json
import statistics
import time

import tensorflow as tf

import tfvae


def median_seconds(fn, repeats=5):
    fn()  # warm-up (tracing, XLA compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if hasattr(result, "numpy"):
            result.numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    results = {}
    shape, seed = tf.constant([131, 500, 50]), tf.constant([1, 2], tf.int32)
    for alg in ("philox", "threefry"):
        draw = tf.function(jit_compile=True)(
            lambda s, alg=alg: tf.reduce_sum(tf.random.stateless_normal(shape, seed=s, alg=alg)))
        results[f"noise_xla_{alg}_s"] = median_seconds(lambda draw=draw: draw(seed))
    results["noise_tf_kernel_philox_s"] = median_seconds(
        lambda: tf.reduce_sum(tf.random.stateless_normal(shape, seed=seed, alg="philox")))

    train = tfvae.data.load("mnist", "train", binarize="dynamic", batch_size=100)
    results["pipeline_epoch_s"] = median_seconds(lambda: [None for _ in train], repeats=3)
    results["pipeline_images_per_s"] = 60000 / results["pipeline_epoch_s"]

    model = tfvae.VAE(input_dim=784, latent_dim=50, hidden=(200, 200), seed=0)
    x = tf.cast(tf.random.uniform([500, 784]) < 0.2, tf.float32)
    results["iwae_chunk_s"] = median_seconds(lambda: model.log_weight_logsumexp(x, 131, seed))
    results["iwae_samples_per_s"] = 131 * 500 / results["iwae_chunk_s"]
    print(json.dumps(results, indent=2))
    if args.out:
        tfvae.files.write_json(args.out, results)


if __name__ == "__main__":
    main()
