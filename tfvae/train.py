"""Train a model from a config: data, model, optimizer, `model.fit`, test evaluation, outputs.

The output folder holds `model.keras`, `config.json` and `metrics.json` (one entry per epoch,
then the test results), all written atomically, TensorBoard logs in `logs/`, and `backup/`
(`BackupAndRestore`): a run that is killed resumes from its last finished epoch when started
again with the same output folder, and a finished run started again with more epochs continues
from where it ended.
"""
import os
import time

import keras
import tensorflow as tf

from tfvae import callbacks as tfvae_callbacks
from tfvae import config as tfvae_config
from tfvae import data, evaluation, files


class EpochLog(keras.callbacks.Callback):
    """Keeps `metrics.json` current after every epoch, across resumed runs."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        record = files.read_json(self.path, default={"epochs": []})
        entries = [e for e in record["epochs"] if e["epoch"] != epoch + 1]
        entry = {k: float(v) for k, v in (logs or {}).items()}
        entry.update(epoch=epoch + 1, seconds=time.time() - self._start)
        record["epochs"] = sorted(entries + [entry], key=lambda e: e["epoch"])
        files.write_json(self.path, record)


def datasets(config, epoch=None):
    """(train, test) datasets of the config's `data` section; `epoch` (a tf.Variable) selects
    the training data's epoch (see `tfvae.data.load`)."""
    d = config["data"]
    train = data.load(d["name"], "train", binarize=d["binarize"], batch_size=d["batch_size"],
                      seed=d["seed"], validation_size=d["validation_size"], epoch=epoch)
    test = data.load(d["name"], "validation" if d["validation_size"] else "test",
                     binarize=d["test_binarize"], batch_size=d["test_batch_size"], seed=d["seed"],
                     validation_size=d["validation_size"])
    return train, test


def first_examples(dataset, count):
    """The first `count` examples of a batched dataset of x (or (x, label) pairs)."""
    rows, total = [], 0
    for batch in dataset:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        rows.append(x)
        total += int(x.shape[0])
        if total >= count:
            return tf.concat(rows, 0)[:count]
    raise ValueError(f"The dataset has {total} examples; {count} are needed.")


def copy_weights(source, model):
    """Sets `model`'s weights to those of `source`: a zoo name (`tfvae.zoo.load`, checksums
    verified) or a `.keras` file or run folder. The two models must have the same variables,
    e.g. the VAE trained with the ELBO and the same network trained with the IWAE bound."""
    from tfvae import zoo

    try:
        trained = zoo.load_name_or_path(source)
    except (FileNotFoundError, zoo.ZooError) as e:
        raise tfvae_config.ConfigError(f"training.init_from={source!r}: {e}") from e
    shapes = [tuple(w.shape) for w in model.weights]
    source_shapes = [tuple(w.shape) for w in trained.weights]
    if shapes != source_shapes:
        raise tfvae_config.ConfigError(
            f"training.init_from={source!r}: its weights do not fit this model "
            f"({type(trained).__name__} with variable shapes {source_shapes}; this "
            f"{type(model).__name__} has {shapes}).")
    model.set_weights(trained.get_weights())


def optimizer(config, steps_per_epoch):
    o = config["optimizer"]
    learning_rate = o["learning_rate"]
    if o["decay_per_epoch"] != 1.0:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=steps_per_epoch, decay_rate=o["decay_per_epoch"])
    return keras.optimizers.Adam(learning_rate, epsilon=o["epsilon"], clipnorm=o["clipnorm"])


def distribution_strategy(name):
    """The tf.distribute strategy of `training.distribute`.

    "none": the default (one device). "mirrored": synchronous data parallelism over every local
    GPU (or the CPU). `data.batch_size` is the global batch, split between the replicas; each
    replica's loss is divided by the number of replicas (`BaseVAE.compute_loss`), so the summed
    gradient is the global batch's mean gradient. (Several machines would be
    MultiWorkerMirroredStrategy, which Keras 3's `fit` cannot run yet: README, "Mixed precision
    and more than one device".)
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def train(config, out_dir, verbose=1):
    """Trains the model `config` describes; returns (model, results dict).

    Args:
        config: a full config (see `tfvae.config.load`).
        out_dir: output folder, created if needed; rerunning with the same folder resumes.
        verbose: Keras' fit verbosity (1: progress bar, 2: a line per epoch, 0: silent).
    """
    tfvae_config.validate(config)
    strategy = distribution_strategy(config["training"]["distribute"])
    os.makedirs(out_dir, exist_ok=True)
    files.write_json(os.path.join(out_dir, "config.json"), config)
    keras.utils.set_random_seed(config["training"]["seed"])
    data_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # set by DataEpoch
    train_ds, test_ds = datasets(config, data_epoch)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config["training"]["dtype_policy"])  # the networks' precision
    try:
        with strategy.scope():
            model = tfvae_config.build_model(config)
            model.build((None, model.input_dim))  # BackupAndRestore needs the weights to exist
            model.compile(optimizer=optimizer(config, int(train_ds.cardinality())),
                          jit_compile=config["training"]["jit_compile"])
            if getattr(model, "prior_kind", None) == "vamp":  # (a resumed run restores its own)
                model.prior_layer.initialize_from_data(first_examples(train_ds, model.prior_components))
            backup = os.path.join(out_dir, "backup", tfvae_callbacks.AtomicBackupAndRestore.STATE)
            if config["training"]["init_from"] and not os.path.exists(backup):  # (resumed: its own)
                copy_weights(config["training"]["init_from"], model)
        return _fit_and_evaluate(model, config, out_dir, train_ds, test_ds, data_epoch, verbose)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _fit_and_evaluate(model, config, out_dir, train_ds, test_ds, data_epoch, verbose):
    metrics_path = os.path.join(out_dir, "metrics.json")
    fit_callbacks = [
        # First, so a NaN step stops fit before any later callback saves anything.
        tfvae_callbacks.StopOnDivergence(
            advice=f"lower optimizer.learning_rate (or set optimizer.clipnorm) and rerun the "
                   f"same command: it resumes from the backup in {out_dir}/backup"),
        # Kept after the run, so rerunning with more epochs continues where it ended.
        tfvae_callbacks.AtomicBackupAndRestore(os.path.join(out_dir, "backup"), delete_checkpoint=False),
        tfvae_callbacks.DataEpoch(data_epoch),
        EpochLog(metrics_path),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")),  # tensorboard --logdir <out>/logs
    ]
    if config["training"]["kl_warmup_epochs"]:
        fit_callbacks.append(tfvae_callbacks.KLWarmup(config["training"]["kl_warmup_epochs"]))
    model.fit(train_ds, epochs=config["training"]["epochs"], validation_data=test_ds,
              callbacks=fit_callbacks, verbose=verbose)

    record = files.read_json(metrics_path, default={"epochs": []})
    test = model.evaluate(test_ds, return_dict=True, verbose=0)
    results = {f"test_{name}": float(value) for name, value in test.items()}
    results["epochs"] = len(record["epochs"])
    results["train_seconds"] = sum(e["seconds"] for e in record["epochs"])
    results["seconds_per_epoch"] = results["train_seconds"] / max(results["epochs"], 1)
    results["kl_estimate"] = model.kl_estimate  # "monte_carlo" for learned priors
    files.save_model(model, os.path.join(out_dir, "model.keras"))  # before the long evaluation
    k = config["evaluation"]["iwae_samples"]
    if k:
        nll = evaluation.iwae_nll(model, test_ds, num_samples=k, verbose=verbose)
        results.update(test_nll=nll["nll"], test_nll_stderr=nll["stderr"], num_samples=k,
                       nll_seconds=nll["seconds"])
    if config["evaluation"]["exact_likelihood"]:
        start = time.time()
        log_px = evaluation.exact_log_likelihood(model, test_ds, verbose=verbose)
        results.update(test_exact_nll=float(-log_px.mean()), test_exact_nll_stderr=evaluation.stderr(log_px),
                       exact_seconds=time.time() - start)
    record["results"] = results
    files.write_json(metrics_path, record)
    return model, results
