"""The pretrained zoo: `saved_models/<name>/` folders, listed, verified and loaded by name.

A zoo entry holds `model.keras`, the TF Serving SavedModel `serving/1/`, `samples.png` and
`metadata.json`: the training config, dataset and binarization, epochs and training time, test
ELBO (recomputed at publication with a fixed seed), IWAE-5000 NLL with its standard error,
active units, parameter count, values of the model's outputs on the first test images (for the
zoo test), and under `files` the SHA-256 of every other file. `load` checks every hash before it reads the
model, and reads it in Keras' safe mode (no pickle, no code).

    tfvae zoo list
    tfvae zoo publish runs/zoo/vae_mnist --name vae_mnist   # a finished `tfvae train` folder
    model = tfvae.zoo.load("vae_mnist")
"""
import hashlib
import os
import shutil
import time

import numpy as np

from tfvae import data, evaluation, export, files, plots

METADATA = "metadata.json"
NUM_CHECK_EXAMPLES = 8
CHECK_SEED = 0


class ZooError(ValueError):
    """A zoo entry that is missing, incomplete or fails its checksums."""


def zoo_dir():
    """$TFVAE_ZOO_DIR, else the repository's `saved_models/` beside the `tfvae` package."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
    return os.environ.get("TFVAE_ZOO_DIR", default)


def list_models(root=None):
    """The metadata of every zoo entry under `root` (default `zoo_dir()`), sorted by name."""
    root = root or zoo_dir()
    if not os.path.isdir(root):
        return []
    entries = [files.read_json(os.path.join(root, name, METADATA))
               for name in sorted(os.listdir(root))
               if os.path.isfile(os.path.join(root, name, METADATA))]
    return entries


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name, root=None):
    """The entry's folder, after checking that every file in its metadata has its SHA-256.

    Raises:
        ZooError: unknown name, missing metadata or file, or a checksum mismatch (naming the file).
    """
    root = root or zoo_dir()
    folder = os.path.join(root, name)
    metadata_path = os.path.join(folder, METADATA)
    if not os.path.isfile(metadata_path):
        known = [m["name"] for m in list_models(root)]
        raise ZooError(f"No zoo model {name!r} in {root} (no {METADATA}). Known: {known}")
    metadata = files.read_json(metadata_path)
    for relative, expected in sorted(metadata["files"].items()):
        path = os.path.join(folder, relative)
        if not os.path.isfile(path):
            raise ZooError(f"Zoo model {name!r} is incomplete: {relative} is missing.")
        actual = sha256(path)
        if actual != expected:
            raise ZooError(f"Zoo model {name!r}: {relative} does not match its checksum "
                           f"(expected sha256 {expected}, found {actual}); the file was changed "
                           "after publication. Refusing to load it.")
    return folder


def load(name, root=None):
    """The zoo model `name`, after `verify`, loaded in Keras' safe mode."""
    return files.load_model(os.path.join(verify(name, root), "model.keras"))


def load_name_or_path(source):
    """A model from a `.keras` file or run folder, or the zoo entry `source` (`load`) when
    `source` names no path and does not look like one."""
    if not os.path.exists(source) and os.sep not in source and not source.endswith(".keras"):
        return load(source)
    return files.load_model(source)


def without_optimizer(model):
    """A copy of `model` with the same weights (and generator state) but no optimizer, so the
    shipped `.keras` file holds the weights once instead of with Adam's two moments."""
    clean = type(model).from_config(model.get_config())
    clean.build((None,) + model.input_shape)
    clean.set_weights(model.get_weights())
    return clean


def check_outputs(model, x):
    """Values recorded at publication and recomputed by the zoo test: per-example ELBO (seed
    CHECK_SEED), the mean of each reconstruction, and the mean of each of 4 samples."""
    return {
        "elbo": np.asarray(model.elbo(x, seed=CHECK_SEED)).tolist(),
        "reconstruction_mean": np.asarray(model.reconstruct(x)).mean(axis=1).tolist(),
        "sample_mean": np.asarray(model.sample(4, seed=CHECK_SEED)).mean(axis=1).tolist(),
    }


def test_elbo(model, test):
    """Per-example ELBO over the batches of `test_data`, batch i at seed CHECK_SEED + i: the
    metadata's test ELBO, recomputed by the zoo test."""
    return np.concatenate([np.asarray(model.elbo(x, seed=CHECK_SEED + i)) for i, x in enumerate(test)])


def test_data(config):
    """The test split of a run's dataset, binarized as its config says, in batches of 500."""
    d = config["data"]
    binarize = d.get("test_binarize", "fixed") if config["model"].get("likelihood", "bernoulli") == "bernoulli" else None
    return data.load(d["name"], "test", binarize=binarize, batch_size=500), binarize


def publish(run_dir, name, root=None, log_prob_samples=100):
    """Writes zoo entry `name` from a finished `tfvae train` folder; returns its metadata.

    The IWAE NLL and active units come from the run (`metrics.json` results, or
    `evaluation.json` of `tfvae evaluate`); the test ELBO is recomputed here. The folder is
    assembled under a temporary name and renamed into place, replacing an older entry.
    """
    root = root or zoo_dir()
    config = files.read_json(os.path.join(run_dir, "config.json"))
    record = files.read_json(os.path.join(run_dir, "metrics.json"), default={})
    evaluated = files.read_json(os.path.join(run_dir, "evaluation.json"), default={})
    if config is None or "results" not in record:
        raise ZooError(f"{run_dir} is not a finished `tfvae train` folder (config.json and the "
                       "results in metrics.json are needed).")
    model = without_optimizer(files.load_model(run_dir))
    test, binarize = test_data(config)
    x_check = next(iter(test))[:NUM_CHECK_EXAMPLES]

    final = os.path.join(root, name)
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files.save_model(model, os.path.join(tmp, "model.keras"))
    export.export_saved_model(model, os.path.join(tmp, "serving"), version=1,
                              log_prob_samples=log_prob_samples, name=name)
    plots.sample_grid(model, os.path.join(tmp, "samples.png"), num_samples=64, seed=CHECK_SEED)

    start = time.time()
    elbo = test_elbo(model, test)
    results = record["results"]
    iwae = evaluated.get("iwae") or {}
    metadata = {
        "name": name,
        "model": type(model).__name__,
        "config": config,
        "dataset": config["data"]["name"],
        "binarization": {"train": config["data"]["binarize"], "test": binarize},
        "epochs": results["epochs"],
        "train_seconds": results["train_seconds"],
        "params": int(model.count_params()),
        "test_elbo": float(elbo.mean()),
        "test_elbo_stderr": evaluation.stderr(elbo),
        "test_elbo_seconds": time.time() - start,
        "test_nll": results.get("test_nll", iwae.get("nll")),
        "test_nll_stderr": results.get("test_nll_stderr", iwae.get("stderr")),
        "num_samples": results.get("num_samples", iwae.get("num_samples")),
        "test_exact_nll": results.get("test_exact_nll", (evaluated.get("exact") or {}).get("nll")),
        "active_units": (evaluated.get("active_units") or {}).get("active_units"),
        "kl_estimate": model.kl_estimate,
        "checks": {"num_examples": NUM_CHECK_EXAMPLES, "seed": CHECK_SEED,
                   "values": check_outputs(model, x_check)},
        "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    metadata["files"] = {os.path.relpath(os.path.join(d, f), tmp): sha256(os.path.join(d, f))
                          for d, _, names in os.walk(tmp) for f in names}
    files.write_json(os.path.join(tmp, METADATA), metadata)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return metadata


list = list_models  # noqa: A001  (the public spelling, as in README: tfvae.zoo.list())
