"""Train a model from a config: data, model, optimizer, `model.fit`, test evaluation, outputs.

The output folder holds `model.keras`, `config.json` and `metrics.json` (one entry per epoch,
then the test results), all written atomically, TensorBoard logs in `logs/`, and `backup/`
(`BackupAndRestore`): a run that is killed resumes from its last finished epoch when started
again with the same output folder, and a finished run started again with more epochs continues
from where it ended. The final IWAE evaluation keeps its finished batches in `iwae.partial.json`,
so an interrupted one resumes too.

Under `training.distribute=multi_worker` every worker runs `train` with the same config and
`out_dir` (see `tfvae.multi_worker`): each trains on its share of every global batch, the chief
writes the outputs and the backup, and every worker resumes from the chief's backup.
"""
import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import callbacks as tfvae_callbacks
from tfvae.app import config as tfvae_config
from tfvae import data, evaluation, files
from tfvae.app import multi_worker
from tfvae.app import zoo

IWAE_CHECKPOINT = "iwae.partial.json"  # the finished batches of an interrupted IWAE evaluation


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


def datasets(config, epoch=None, shard=None, parts=("train", "validation", "evaluation")):
    """The config's data as {part: dataset} for each of `parts`: "train"; "validation", what
    `fit` measures after every epoch (the last `data.validation_size` training examples; None
    without them); "evaluation", the split of the final evaluation, `splits(config).evaluation`
    (the test split where the data has one). `epoch` (a tf.Variable) selects the training
    data's epoch, `shard` one worker's share of every batch (see `tfvae.data.load`); a sharded
    training set drops a last, smaller global batch, so that every worker's share of every step
    is the same size."""
    d = config["data"]
    loaded = {}
    try:
        held_out = splits(config)
        for part in parts:
            split = "train" if part == "train" else getattr(held_out, part)
            if split is None:
                loaded[part] = None
                continue
            train = part == "train"
            loaded[part] = data.load(
                d["name"], split, binarize=d["binarize"] if train else d["test_binarize"],
                batch_size=d["batch_size"] if train else d["test_batch_size"], seed=d["seed"],
                validation_size=d["validation_size"], epoch=epoch if train else None,
                shard=shard, drop_remainder=train and shard is not None, flatten=d["flatten"],
                eight_bit=d.get("eight_bit", False),  # (configs saved before them: False)
                dequantize=d.get("dequantize", False))
    except data.DataError:
        raise  # a damaged file: its message names the file
    except ValueError as e:  # a data.* value that `data.load` refuses
        raise tfvae_config.ConfigError(f"data config: {e}") from e
    return loaded


def splits(config):
    """The held-out splits of a config's run (`tfvae.data.splits`)."""
    return data.splits(config["data"]["name"], config["data"]["validation_size"])


def example_shape(dataset):
    """The shape of one example of a batched dataset of x (or of (x, label) pairs)."""
    spec = dataset.element_spec
    spec = spec[0] if isinstance(spec, (tuple, list)) else spec
    return tuple(spec.shape[1:])


def check_same_model(config, out_dir):
    """Refuses an `out_dir` that holds a run of another model: resuming would load its backup
    into this model, or pair this config with the other model's weights."""
    previous = files.read_json(os.path.join(out_dir, "config.json"))
    if previous is None:
        return
    # As JSON (tuples become lists), with the constructor's defaults, so that `hidden=(64,)`
    # equals the stored [64] and an argument given at its default value equals one left out.
    new = _as_json(tfvae_config.model_arguments(config))
    try:
        old = _as_json(tfvae_config.model_arguments(previous))
    except (tfvae_config.ConfigError, KeyError, TypeError):
        old = _as_json(previous.get("model", {}))
    unset = "(not set)"
    differ = sorted(k for k in set(old) | set(new) if old.get(k, unset) != new.get(k, unset))
    if differ:
        there = ", ".join(f"model.{k}={old.get(k, unset)!r}" for k in differ)
        here = ", ".join(f"model.{k}={new.get(k, unset)!r}" for k in differ)
        raise tfvae_config.ConfigError(
            f"{out_dir} holds a run of another model ({there}): rerun with that model to resume "
            f"it, or train this one in another output folder (--out). Received: {here}")


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def resume_point(config, out_dir):
    """Where rerunning `train(config, out_dir)` starts, e.g. "from epoch 3"."""
    finished = finished_epochs(out_dir)
    if finished < config["training"]["epochs"]:
        return f"from epoch {finished + 1}"
    partial = files.read_json(os.path.join(out_dir, IWAE_CHECKPOINT), default={})
    done = len(partial.get("batches", []))
    split = splits(config).evaluation
    if done:
        return f"from the {split} evaluation, {done} IWAE batch{'es' if done > 1 else ''} done"
    return f"from the {split} evaluation; training is finished"


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
    gradient is the global batch's mean gradient. "multi_worker": the same over the machines
    that TF_CONFIG lists (`tfvae.multi_worker.strategy_from_tf_config`), each worker training
    on its share of every global batch of `data.batch_size`.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return multi_worker.strategy_from_tf_config()
    return tf.distribute.get_strategy()


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where this process stands in a run, decided once (`run_context`) and passed along: the
    strategy, whether several worker processes train (`training.distribute=multi_worker` with
    a cluster), whether this one writes the outputs, and where it writes (the run's folder on
    the chief, a temporary folder of its own on the other workers; see `tfvae.multi_worker`)."""

    strategy: tf.distribute.Strategy
    out_dir: str
    multi_worker: bool
    chief: bool
    write_dir: str


def run_context(config, out_dir):
    strategy = distribution_strategy(config["training"]["distribute"])
    return RunContext(strategy=strategy, out_dir=out_dir,
                      multi_worker=multi_worker.in_multi_worker_mode(strategy),
                      chief=multi_worker.is_chief(strategy),
                      write_dir=multi_worker.write_dir(out_dir, strategy))


def jit_compile(config, run, verbose=0):
    """`training.jit_compile`, except under multi_worker on CPUs: there XLA cannot compile the
    step, whose gradient all-reduce (CollectiveReduceV2) has no XLA kernel on CPUs, so the step
    runs as a plain `tf.function` (said once when `verbose`)."""
    wanted = config["training"]["jit_compile"]
    if wanted and run.multi_worker and not tf.config.list_physical_devices("GPU"):
        if verbose:
            print("training.jit_compile=True is not used under multi_worker on CPUs: XLA has no "
                  "CPU kernel for the gradient all-reduce (training.jit_compile=False hides "
                  "this line)", flush=True)
        return False
    return wanted


def steps_per_execution(config):
    """`training.steps_per_execution`, except under a distribution strategy (mirrored or
    multi_worker): there Keras' multi-step loop over the distributed iterator fails to run
    ("You must feed a value for placeholder tensor 'while/cond/Placeholder'", TensorFlow 2.21,
    Keras 3.15), so each call runs one step."""
    distributed = config["training"]["distribute"] != "none"
    return 1 if distributed else config["training"]["steps_per_execution"]


def train(config, out_dir, verbose=1):
    """Trains the model `config` describes; returns (model, results dict).

    Args:
        config: a full config (see `tfvae.config.load`).
        out_dir: output folder, created if needed; rerunning with the same folder resumes.
        verbose: Keras' fit verbosity (1: progress bar, 2: a line per epoch, 0: silent); with
            `evaluation.iwae_samples`, 1 and 2 also announce the IWAE pass and its expected time.

    Raises:
        ConfigError: for a config that cannot run (an unknown dataset, a model of another
            width than the data) or an `out_dir` holding a run of another model; nothing is
            written to `out_dir` then.
    """
    tfvae_config.validate(config)
    check_same_model(config, out_dir)
    run = run_context(config, out_dir)
    strategy = run.strategy
    keras.utils.set_random_seed(config["training"]["seed"])
    data_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # set by DataEpoch
    whole = datasets(config, data_epoch)  # (under multi_worker: the shape, the first examples,
    fit_data = dict(whole)                 # the IWAE batches; `fit_data`: each worker's share)
    train_ds = whole["train"]
    steps_per_epoch = int(train_ds.cardinality())
    if run.multi_worker:
        replicas, batch_size = strategy.num_replicas_in_sync, config["data"]["batch_size"]
        if batch_size % replicas:
            raise tfvae_config.ConfigError(
                f"data.batch_size is the global batch: a multiple of the {replicas} replicas of "
                f"training.distribute=multi_worker, so that each trains on an equal share. "
                f"Received: data.batch_size={batch_size}")
        steps_per_epoch = int(datasets(config, data_epoch, (0, 1), ("train",))["train"].cardinality())
    shape = example_shape(train_ds)
    for key in ("input_shape", "input_dim"):  # (input_dim: the old spelling of a flat shape)
        declared = config["model"].get(key)
        if declared is not None and shape != tuple(np.atleast_1d(declared).tolist()):
            raise tfvae_config.ConfigError(
                f"model.{key} must match the data: data.name={config['data']['name']!r} has "
                f"examples of shape {shape}. Received: model.{key}={declared!r}")
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config["training"]["dtype_policy"])  # the networks' precision
    try:
        with strategy.scope():
            model = tfvae_config.build_model(config, data_shape=shape)
            model.build((None,) + model.input_shape)  # BackupAndRestore needs the weights to exist
            model.compile(optimizer=optimizer(config, steps_per_epoch),
                          jit_compile=jit_compile(config, run, verbose and run.chief),
                          steps_per_execution=steps_per_execution(config))
            if model.initialization_examples:  # (a resumed run restores its own)
                model.initialize_from_data(first_examples(train_ds, model.initialization_examples))
            backup = os.path.join(out_dir, "backup", tfvae_callbacks.AtomicBackupAndRestore.STATE)
            if config["training"]["init_from"] and not os.path.exists(backup):  # (resumed: its own)
                copy_weights(config["training"]["init_from"], model)
        if run.multi_worker:
            # each worker's share, checked as fit checks a dataset
            fit_data = {part: multi_worker.distribute(
                strategy, lambda shard, part=part, what=what: model.checked_data(
                    datasets(config, data_epoch, shard, (part,))[part], what))
                for part, what in (("train", "Training data"), ("validation", "Validation data"),
                                   ("evaluation", "Evaluation data")) if whole[part] is not None}
            fit_data.setdefault("validation", None)
        # Written once the config, the data and the model are known to work, so a refused
        # config leaves nothing behind.
        os.makedirs(run.write_dir, exist_ok=True)
        files.write_json(os.path.join(run.write_dir, "config.json"), config)
        with multi_worker.keras_workarounds(strategy):
            results = _fit_and_evaluate(model, config, run, fit_data, whole["evaluation"],
                                        data_epoch, verbose)
        multi_worker.remove_write_dir(out_dir, strategy)
        return model, results
    finally:
        keras.config.set_dtype_policy(previous_policy)


def check_same_resume_point(run):
    """Every worker must resume from the same epoch of the chief's backup: refuses to train when
    one of them does not see it (an `out_dir` that is not shared)."""
    if not run.multi_worker:
        return
    out_dir = run.out_dir
    epochs = multi_worker.all_gather(run.strategy, [finished_epochs(out_dir)])
    if len(set(epochs.ravel().tolist())) > 1:
        raise tfvae_config.ConfigError(
            f"the workers see different backups in {out_dir}/backup (finished epochs per "
            f"worker: {epochs.ravel().tolist()}): give every worker the same --out, a folder "
            f"they all read (one machine, or a shared file system)")


def _fit_and_evaluate(model, config, run, fit_data, evaluation_ds, data_epoch, verbose):
    out_dir, writes, strategy = run.out_dir, run.write_dir, run.strategy
    metrics_path = os.path.join(writes, "metrics.json")
    check_same_resume_point(run)
    verbose = verbose if run.chief else 0  # (one progress bar for the cluster)
    record_start(metrics_path, config, finished_epochs(out_dir))
    fit_callbacks = [
        # First, so a NaN step stops fit before any later callback saves anything.
        tfvae_callbacks.StopOnDivergence(
            advice=f"lower optimizer.learning_rate (or set optimizer.clipnorm) and rerun the "
                   f"same command: it resumes from the backup in {out_dir}/backup"),
        # Kept after the run, so rerunning with more epochs continues where it ended.
        # (every worker resumes from the chief's backup in out_dir)
        tfvae_callbacks.AtomicBackupAndRestore(os.path.join(writes, "backup"), delete_checkpoint=False,
                                               restore_dir=os.path.join(out_dir, "backup")),
        tfvae_callbacks.DataEpoch(data_epoch),
    ]
    # The schedules before the logs, so that the values they log each epoch (kl_warmup,
    # temperature) reach metrics.json and TensorBoard: Keras calls callbacks in list order.
    if config["training"]["kl_warmup_epochs"]:
        fit_callbacks.append(tfvae_callbacks.KLWarmup(config["training"]["kl_warmup_epochs"]))
    if config["training"]["anneal_temperature"]:
        fit_callbacks.append(tfvae_callbacks.TemperatureAnnealing(*config["training"]["anneal_temperature"]))
    fit_callbacks += [EpochLog(metrics_path),
                      keras.callbacks.TensorBoard(os.path.join(writes, "logs"))]  # tensorboard --logdir <out>/logs
    # (shuffle=False: data.load already orders each epoch by (seed, epoch); Keras would only warn)
    model.fit(fit_data["train"], epochs=config["training"]["epochs"],
              validation_data=fit_data["validation"], callbacks=fit_callbacks, verbose=verbose,
              shuffle=False)

    # The final evaluation, the only use of the test split: its keys are named by the split
    # it measured ("test_elbo", or "validation_elbo" for data without a test split).
    split = splits(config).evaluation
    record = files.read_json(metrics_path, default={"epochs": []})
    measured = model.evaluate(fit_data["evaluation"], return_dict=True, verbose=0)
    results = {"split": split}
    results.update({f"{split}_{name}": float(value) for name, value in measured.items()})
    dequantized = config["data"].get("dequantize", False)  # (bits/dim counts the D log 256)
    results["epochs"] = len(record["epochs"])
    results["train_seconds"] = sum(e["seconds"] for e in record["epochs"])
    results["seconds_per_epoch"] = zoo.median_epoch_seconds(record) or 0.0
    results["kl_estimate"] = model.kl_estimate  # "monte_carlo" for learned priors
    if run.multi_worker:
        # Synchronous training leaves every worker with the same weights; recorded, so that
        # a difference is seen (tests/test_multi_worker.py checks it).
        digest = np.frombuffer(bytes.fromhex(evaluation.weights_sha256(model)), np.uint16).astype(np.int32)
        results.update(chief=run.chief, worker=[multi_worker.worker_index(strategy),
                                            multi_worker.num_workers(strategy)])
        results["workers_weights_sha256"] = [
            row.astype(np.uint16).tobytes().hex() for row in multi_worker.all_gather(strategy, digest)]
    files.save_model(model, os.path.join(writes, "model.keras"))  # before the long evaluation
    k = config["evaluation"]["iwae_samples"]
    if k:
        checkpoint = os.path.join(writes, IWAE_CHECKPOINT)
        if verbose:
            print(announce_iwae(model, evaluation_ds, k, checkpoint, split), flush=True)
        # (verbose 2 is for logs: one line when done, no progress bar redraws)
        nll = evaluation.iwae_nll(model, evaluation_ds, num_samples=k, verbose=verbose,
                                  checkpoint=checkpoint, strategy=strategy, dequantized=dequantized)
        results.update({f"{split}_nll": nll["nll"], f"{split}_nll_stderr": nll["stderr"],
                        "num_samples": k, "nll_seconds": nll["seconds"],
                        "nll_resumed_batches": nll["resumed_batches"]})
        if "bits_per_dim" in nll:  # (discrete or dequantized data)
            results[f"{split}_bits_per_dim"] = nll["bits_per_dim"]
            results[f"{split}_bits_per_dim_stderr"] = nll["bits_per_dim_stderr"]
    if config["evaluation"]["exact_likelihood"]:
        start = time.time()
        if verbose:
            print(f"{split} NLL, exact: log p(x) summed over the latents' states", flush=True)
        log_px = evaluation.exact_log_likelihood(model, evaluation_ds, verbose=verbose)
        results.update({f"{split}_exact_nll": float(-log_px.mean()),
                        f"{split}_exact_nll_stderr": evaluation.stderr(log_px),
                        "exact_seconds": time.time() - start})
    record["results"] = results
    files.write_json(metrics_path, record)
    return results


def finished_epochs(out_dir):
    """The epochs of `out_dir`'s backup: a rerun trains from the next one."""
    state = os.path.join(out_dir, "backup", tfvae_callbacks.AtomicBackupAndRestore.STATE)
    return int(files.read_json(state, default={}).get("epoch", 0))


def record_start(metrics_path, config, finished):
    """Appends this (re)start to the run's history in `metrics.json` ("starts": the config
    each start used and the epoch it trained from), so that `config.json` (the latest start's
    config) never stands for the whole run alone."""
    record = files.read_json(metrics_path, default={"epochs": []})
    record.setdefault("starts", []).append({
        "from_epoch": finished + 1, "config": config,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    files.write_json(metrics_path, record)


# k of the IWAE estimate of `evaluate`: the field's k = 5000 (Burda et al. 2016), or a small k
# that checks the bound against the exact likelihood where that is computed by enumeration
IWAE_SAMPLES, IWAE_CHECK_SAMPLES = 5000, 50


def evaluate(model, config, out_dir, dataset=None, num_samples=None, surgery_samples=10000, seed=0,
             run_dir=None, verbose=2, chunk_size=None):
    """The evaluation of a trained model that `tfvae evaluate` prints and `zoo/build.py` runs:
    the IWAE NLL (bits/dim for discrete data) on the run's evaluation split
    (`tfvae.data.splits`: the test split where the data has one), active units, the exact
    likelihood where the latents can be enumerated, ELBO surgery on the training split, and
    figures; written to `out_dir/evaluation.json` and PNGs.

    Args:
        model: the trained model.
        config: its run's config (`config.json`, or a zoo entry's `config`): the data, its
            binarization or 8-bit form, its validation size.
        out_dir: where evaluation.json and the figures go (created if needed).
        dataset: another dataset of the model's shape (its test split) instead of the config's.
        num_samples: k of the IWAE estimate (default 5000, or 50 as a check where the exact
            likelihood is computed).
        surgery_samples: Monte Carlo draws of the ELBO surgery (0 skips it).
        seed: of the estimates.
        chunk_size: IWAE draws per chunk (`BaseVAE.log_prob`; each chunk has its own seed, so
            the same seed with another chunk size draws other samples).
        run_dir: the run's folder, whose metrics.json gives the training curves.
        verbose: 1 progress bars, 2 one line per pass (logs).

    Returns:
        The results dict written to evaluation.json.

    Raises:
        ValueError, FileNotFoundError: data that cannot be loaded, or of another shape.
    """
    from tfvae import plots  # (matplotlib: only when figures are drawn)

    d = config.get("data", {})
    name = dataset or d.get("name", "mnist")
    binarize = d.get("test_binarize", "fixed") if model.likelihood.binary else None
    validation_size = 0 if dataset else d.get("validation_size", 0)
    dequantized = bool(d.get("dequantize", False)) and not dataset
    forms = dict(flatten=len(model.input_shape) == 1, eight_bit=model.likelihood.accepts_integers,
                 dequantize=dequantized)
    split = data.splits(name, validation_size).evaluation
    held_out = data.load(name, split, binarize=binarize, batch_size=500,
                         validation_size=validation_size, **forms)
    shape = example_shape(held_out)
    if shape != model.input_shape:
        raise ValueError(f"the model takes x of shape {model.input_shape} but the {name} {split} "
                         f"split has x of shape {shape}; give a dataset of the model's shape")
    os.makedirs(out_dir, exist_ok=True)
    exact = evaluation.supports_exact_likelihood(model)
    num_samples = num_samples or (IWAE_CHECK_SAMPLES if exact else IWAE_SAMPLES)
    if verbose:
        print(f"IWAE estimate, k={num_samples}, on the {split} split of {name}:", flush=True)
    results = {"dataset": name, "split": split, "binarization": binarize,
               "iwae": evaluation.iwae_nll(model, held_out, num_samples, chunk_size, seed=seed, verbose=verbose,
                                           checkpoint=os.path.join(out_dir, "iwae.partial.json"),
                                           dequantized=dequantized)}
    results["active_units"] = {k: v for k, v in evaluation.active_units(model, held_out).items()
                               if k != "activity"}
    if exact:
        if verbose:
            print(f"Exact log-likelihood, summed over the 2^{model.latent_shape[0]} latent states:",
                  flush=True)
        log_px = evaluation.exact_log_likelihood(model, held_out, verbose=verbose)
        results["exact"] = {"nll": float(-log_px.mean()), "stderr": evaluation.stderr(log_px),
                            "num_examples": int(len(log_px))}
    if surgery_samples and "gaussian_posterior" in model.capabilities:
        train_split = data.load(name, "train", binarize=binarize, batch_size=2000, shuffle=False, **forms)
        results["elbo_surgery"] = evaluation.elbo_surgery(model, train_split, surgery_samples, seed=seed)
    x = next(iter(held_out))
    figures = {"samples": plots.sample_grid(model, os.path.join(out_dir, "samples.png")),
               "reconstructions": plots.reconstructions(model, x, os.path.join(out_dir, "reconstructions.png")),
               "traversals": plots.latent_traversals(model, x, os.path.join(out_dir, "traversals.png"))}
    if model.latent_shape == (2,):
        figures["manifold"] = plots.latent_manifold(model, os.path.join(out_dir, "manifold.png"))
    metrics = files.read_json(os.path.join(run_dir, "metrics.json")) if run_dir else None
    if metrics and metrics.get("epochs"):
        figures["training_curves"] = plots.training_curves(metrics, os.path.join(out_dir, "curves.png"))
    results["figures"] = figures
    files.write_json(os.path.join(out_dir, "evaluation.json"), results)
    return results


def announce_iwae(model, dataset, num_samples, checkpoint, split="test", probe=16):
    """One line saying what the IWAE evaluation after training will cost and how to shrink or
    skip it: the time is extrapolated from timing `probe` examples (after a call that compiles)."""
    batch = next(iter(dataset))
    batch = batch[0] if isinstance(batch, (tuple, list)) else batch
    batches = int(dataset.cardinality())
    if batches < 0:  # (unknown cardinality: count)
        batches = sum(1 for _ in dataset)
    examples = batches * int(batch.shape[0])  # (about: the last batch may be smaller)
    x = batch[:probe]
    model.log_prob(x, num_samples, seed=0)  # compiles
    start = time.time()
    model.log_prob(x, num_samples, seed=0)
    seconds = (time.time() - start) * examples / int(x.shape[0])
    resumes = ", resuming from its saved batches" if os.path.exists(checkpoint) else ""
    smaller = max(1, num_samples // 50)
    return (f"{split} NLL by IWAE, k={num_samples}, over {batches} {split} batches{resumes}: about "
            f"{evaluation.duration(seconds)} (--set evaluation.iwae_samples={smaller} takes about "
            f"{evaluation.duration(seconds * smaller / num_samples)}, =0 skips it; interrupted, a rerun "
            f"resumes it)")
