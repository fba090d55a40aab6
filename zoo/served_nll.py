"""A zoo entry's held-out NLL re-measured from its SavedModel, by a process with TensorFlow alone.

    TFVAE_DATA_DIR=../shared/data python zoo/served_nll.py iwae_mnist [--num-samples 5000]

The parent process writes the split the entry's card measured (`tfvae.app.zoo.evaluation_data`:
the same binarization, or the same 8-bit values, and seed) to a .npy file. A child process,
which cannot import tfvae, Keras or TensorFlow Probability, loads `serving/1/` with `tf.saved_model.load` and calls its
`log_prob_seeded` signature (the IWAE estimate with the export's k_e = 100 samples at the
client's seed) m = k / k_e times per batch, with seeds (batch, j), and combines the calls into
the estimate with k samples (Burda et al. 2016):

    log p(x) ~ log (1/k) sum_i w_i = log (1/m) sum_j exp(log_prob_j).

The result goes into the entry's metadata.json as `served_nll`, and its card shows it beside the
card's own figure; then `python zoo/cards.py NAME` and `tfvae zoo pack NAME`.
"""
import argparse
import importlib.abc
import importlib.machinery
import json
import math
import os
import subprocess
import sys
import tempfile
import time

BLOCKED = ("tfvae", "tensorflow_probability", "keras", "tf_keras")
BATCH = 100


class WithoutTfvae(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """An import hook that makes the BLOCKED packages look absent, as on a serving machine: a
    spec without origin, whose import fails (TensorFlow then runs without them). The child of
    this script and tests/serving_client.py install it."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self, origin=None)
        return None

    def create_module(self, spec):
        raise ImportError(f"{spec.name} may not be imported by a TensorFlow-only process")

    def exec_module(self, module):
        raise ImportError(f"{module.__name__} may not be imported by a TensorFlow-only process")


def measure(export_dir, x_path, num_samples, export_samples, progress=True):
    """The child's work (TensorFlow and numpy only): the IWAE estimate with `num_samples` draws
    per example from `export_dir`'s `log_prob_seeded`, over the examples in `x_path`."""
    import numpy as np
    import tensorflow as tf

    if num_samples % export_samples:
        raise ValueError(f"num_samples={num_samples} must be a multiple of the export's k "
                         f"({export_samples})")
    calls = num_samples // export_samples
    loaded = tf.saved_model.load(export_dir)
    seeded = loaded.signatures["log_prob_seeded"]
    x = np.load(x_path)
    start, log_px = time.time(), []
    batches = -(-len(x) // BATCH)
    for b in range(batches):
        batch = tf.constant(x[b * BATCH:(b + 1) * BATCH])
        chunks = np.stack([seeded(x=batch, seed=tf.constant([b, j], tf.int64))["log_prob"].numpy()
                           for j in range(calls)]).astype(np.float64)
        top = chunks.max(axis=0)
        log_px.append(top + np.log(np.mean(np.exp(chunks - top), axis=0)))
        if progress and (b + 1) % 10 == 0 or b + 1 == batches:
            done = time.time() - start
            print(f"batch {b + 1}/{batches}: NLL so far {-np.concatenate(log_px).mean():.3f}, "
                  f"{done:.0f} s, about {done / (b + 1) * (batches - b - 1):.0f} s to go",
                  file=sys.stderr, flush=True)
    log_px = np.concatenate(log_px)
    for module in BLOCKED:
        assert module not in sys.modules, f"{module} was imported by the TensorFlow-only process"
    dims = int(np.prod(x.shape[1:]))
    return {"nll": float(-log_px.mean()), "stderr": float(log_px.std(ddof=1) / math.sqrt(len(log_px))),
            "bits_per_dim": float(-log_px.mean() / (dims * math.log(2.0))),
            "num_samples": int(num_samples), "num_examples": int(len(log_px)),
            "seconds": time.time() - start, "tensorflow": tf.__version__,
            "log_px": log_px.tolist()}


def served_nll(export_dir, x, num_samples, export_samples, timeout=6 * 3600):
    """Runs `measure` in a child process that cannot import tfvae, Keras or TFP: its result."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        x_path, out = os.path.join(tmp, "x.npy"), os.path.join(tmp, "out.json")
        np.save(x_path, x)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", export_dir, x_path, out,
                        str(num_samples), str(export_samples)], check=True, timeout=timeout)
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def held_out_array(config):
    """The split the entry's card measured, as one array (uint8 for an 8-bit likelihood, whose
    export takes images as clients have them)."""
    import numpy as np
    from tfvae import likelihoods
    from tfvae.app import zoo

    dataset, _, split = zoo.evaluation_data(config)
    x = np.concatenate([np.asarray(batch[0] if isinstance(batch, tuple) else batch) for batch in dataset])
    if likelihoods.get(config["model"].get("likelihood", "bernoulli")).accepts_integers:
        x = x.astype(np.uint8)
    return x, split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("names", nargs="+", help="zoo entries (folders of saved_models/)")
    parser.add_argument("--num-samples", type=int, default=5000, help="k (default 5000)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tfvae import files
    from tfvae.app import zoo

    for name in args.names:
        folder = zoo.verify(name, zoo.zoo_dir())
        metadata = files.read_json(os.path.join(folder, zoo.METADATA))
        x, split = held_out_array(metadata["config"])
        print(f"[{name}] {split} split, {len(x)} examples, k = {args.num_samples}", flush=True)
        result = served_nll(os.path.join(folder, "serving", "1"), x, args.num_samples, zoo.LOG_PROB_SAMPLES)
        del result["log_px"]
        result["split"] = split
        result["command"] = f"python zoo/served_nll.py {name} --num-samples {args.num_samples}"
        card, _ = zoo.held_out(metadata, "nll")
        print(f"[{name}] served NLL {result['nll']:.3f} +- {result['stderr']:.3f} "
              f"({result['bits_per_dim']:.4f} bits/dim) in {result['seconds']:.0f} s; the card's "
              f"{card:.3f}: difference {result['nll'] - card:+.3f}", flush=True)
        metadata["served_nll"] = result
        files.write_json(os.path.join(folder, zoo.METADATA), metadata)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.meta_path.insert(0, WithoutTfvae())
        export_dir, x_path, out, k, k_export = sys.argv[2:7]
        with open(out, "w", encoding="utf-8") as f:
            json.dump(measure(export_dir, x_path, int(k), int(k_export)), f)
    else:
        main()
