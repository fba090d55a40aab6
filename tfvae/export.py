"""SavedModel export for TF Serving: named signatures, versioned folders, warm-up records.

The export holds only TensorFlow graphs and variables: it loads and runs with
`tf.saved_model.load` (or TF Serving) without tfvae, TensorFlow Probability or Keras.

Signatures (inputs and outputs by name; the batch size is dynamic):

| signature | input | outputs |
|---|---|---|
| `reconstruct`, `serving_default` | `x` float32 [batch, *input_shape] (uint8 for an 8-bit likelihood) | `x_mean` float32 [batch, *input_shape]; for an 8-bit likelihood also `x`, the uint8 image round(x_mean) |
| `encode` | `x` | the posterior's parameters: `loc`, `scale` (Gaussian), `logits`, `probs` (binary); `loc_0`, `scale_0`, ... per layer for hierarchical models |
| `decode` | `z` float32 [batch, L] (the top layer's L for hierarchical models) | the likelihood's parameters: `logits`, `probs` (Bernoulli) or `loc`, `scale` (Gaussian) |
| `sample` | `seed` int64 [batch] | `x` [batch, *input_shape]: E[x given z], z drawn from the prior with that seed (stateless); for an 8-bit likelihood `x` is the uint8 image round(E[x given z]) and `x_mean` the float32 mean |
| `log_prob` | `x` | `log_prob` (IWAE estimate with k fixed at export) and `elbo`, [batch]; for discrete data (binary, 8-bit) also `bits_per_dim`, -log_prob / (D ln 2) |
| `log_prob_seeded` | `x`, `seed` int64 [2] | `log_prob`, [batch]: the same IWAE estimate with the client's seed. m calls with m seeds combine into the estimate with k * m samples, log (1/m) sum_j exp(log_prob_j) (zoo/served_nll.py) |
"""
import math
import os
import re
import shutil

import keras
import tensorflow as tf

from tfvae import files

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURES = ("reconstruct", "encode", "decode", "sample", "log_prob", "log_prob_seeded")
_TEMP_PREFIX = ".tmp-export-"


def serving_functions(model, log_prob_samples=100):
    """{signature name: (function, input specs)} for every signature of the serving contract."""
    # The width is left open in the spec and checked in the graph, so a request of the wrong
    # width gets a message naming the expected shape instead of a failed matrix product.
    # An 8-bit likelihood's export takes and gives images as clients have them: uint8.
    eight_bit = model.likelihood.accepts_integers
    x_spec = tf.TensorSpec([None] * (1 + len(model.input_shape)), tf.uint8 if eight_bit else tf.float32,
                           name="x")
    z_spec = tf.TensorSpec([None] * (1 + len(model.latent_shape)), tf.float32, name="z")
    seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
    seed_pair_spec = tf.TensorSpec([2], tf.int64, name="seed")

    def reconstruct(x):
        mean = model.reconstruct(checked(x, "x", model.input_shape))
        return {"x_mean": mean, "x": as_image(mean)} if eight_bit else {"x_mean": mean}

    def encode(x):
        return dict(model.encode(checked(x, "x", model.input_shape)))

    def decode_fn(z):
        return dict(model.decode_top(checked(z, "z", model.latent_shape)))

    def sample(seed):
        def one(s):  # one reproducible draw per seed, whatever else is in the batch
            return model.sample(1, seed=tf.stack([s, tf.zeros_like(s)]))[0]
        mean = tf.map_fn(one, seed, fn_output_signature=tf.float32)
        return {"x": as_image(mean), "x_mean": mean} if eight_bit else {"x": mean}

    def log_prob(x):
        x = checked(x, "x", model.input_shape)
        log_weight_sum = model.log_weight_logsumexp(x, log_prob_samples, tf.constant([0, 1], tf.int32))
        outputs = {"log_prob": log_weight_sum - math.log(log_prob_samples),
                   "elbo": model.loss_terms(x, num_samples=1, seed=tf.constant([0, 2], tf.int32))["elbo"]}
        if model.likelihood.discrete:  # -log p(x) / (D ln 2): a code length per value
            outputs["bits_per_dim"] = -outputs["log_prob"] / (model.input_dim * math.log(2.0))
        return outputs

    def log_prob_seeded(x, seed):
        x = checked(x, "x", model.input_shape)
        seed = tf.cast(seed, tf.int32)
        return {"log_prob": model.log_weight_logsumexp(x, log_prob_samples, seed)
                - math.log(log_prob_samples)}

    return {"reconstruct": (reconstruct, [x_spec]), "encode": (encode, [x_spec]),
            "decode": (decode_fn, [z_spec]), "sample": (sample, [seed_spec]),
            "log_prob": (log_prob, [x_spec]), "log_prob_seeded": (log_prob_seeded, [x_spec, seed_pair_spec])}


def as_image(mean):
    """An 8-bit image, uint8, from a mean in [0, 255]: round(mean), clipped."""
    return tf.cast(tf.clip_by_value(tf.round(mean), 0.0, 255.0), tf.uint8)


def checked(tensor, name, shape):
    """`tensor` with its static shape set to [batch, *shape], after a run-time check that
    fails with "[input x must have shape [batch, 784] (float32); received shape:] [2 785]"."""
    shape = tuple(shape)
    ok = tf.logical_and(tf.equal(tf.rank(tensor), 1 + len(shape)),
                        tf.reduce_all(tf.equal(tf.shape(tensor)[1:], shape)))
    expected = ", ".join(["batch"] + [str(d) for d in shape])
    check = tf.debugging.Assert(ok, [f"input {name} must have shape [{expected}] "
                                     f"({tensor.dtype.name}); received shape:", tf.shape(tensor)])
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(tensor), (None,) + shape)


def next_version(base_dir):
    """1 + the largest integer folder name in base_dir (1 when there is none)."""
    versions = [int(n) for n in os.listdir(base_dir) if n.isdigit()] if os.path.isdir(base_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(model, base_dir, version=None, log_prob_samples=100, name=None, verbose=False):
    """Writes the SavedModel of `model` to `base_dir/<version>/`, atomically.

    The version is written to a hidden temporary folder in base_dir and renamed into place
    when complete, so a server polling base_dir never sees a half-written version; temporary
    folders left by killed exports are removed by the next export.

    Args:
        model: a built tfvae model.
        base_dir: the model's TF Serving base path (e.g. saved_models/vae_mnist/serving).
        version: integer version; None takes the next free one.
        log_prob_samples: k of the `log_prob` signature's IWAE estimate.
        name: the model name in the warm-up requests (default: base_dir's parent folder name).
        verbose: print Keras' list of exported variables.

    Returns:
        The version folder's path.
    """
    if not isinstance(log_prob_samples, int) or log_prob_samples < 1:
        raise ValueError(f"log_prob_samples must be a positive integer. Received: {log_prob_samples!r}")
    os.makedirs(base_dir, exist_ok=True)
    _remove_stale_temporaries(base_dir)
    version = next_version(base_dir) if version is None else int(version)
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists; export to a new version (version=None picks the next).")
    model.check_input(tf.zeros((1,) + model.input_shape))  # builds an unbuilt model
    archive = keras.export.ExportArchive()
    archive.track(model)
    for signature, (fn, specs) in serving_functions(model, log_prob_samples).items():
        archive.add_endpoint(signature, fn, input_signature=specs)  # the first is serving_default
    temporary = os.path.join(base_dir, f"{_TEMP_PREFIX}{version}-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    archive.write_out(temporary, verbose=verbose)
    write_warmup_requests(temporary, model, name or os.path.basename(os.path.dirname(os.path.abspath(base_dir))))
    os.rename(temporary, final)
    return final


def write_warmup_requests(export_dir, model, name):
    """One PredictionLog per signature (batch of 1) in assets.extra/tf_serving_warmup_requests,
    which TF Serving replays before it serves a new version."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    x = tf.zeros((1,) + model.input_shape, tf.uint8 if model.likelihood.accepts_integers else tf.float32)
    inputs = {"reconstruct": {"x": x}, "encode": {"x": x},
              "decode": {"z": tf.zeros((1,) + model.latent_shape)},
              "sample": {"seed": tf.zeros([1], tf.int64)},
              "log_prob": {"x": x}, "log_prob_seeded": {"x": x, "seed": tf.zeros([2], tf.int64)}}
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, values in inputs.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            for input_name, value in values.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir):
    """The PredictionLog protos of an export's warm-up file."""
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


def write_model_config(models_dir, base_path_prefix="/models"):
    """Writes `models_dir/models.config`, the TF Serving model config serving every model
    `models_dir/<name>/serving/` holds, with base paths as the server sees them
    (`<base_path_prefix>/<name>/serving`, e.g. with models_dir mounted at /models)."""
    names = sorted(n for n in os.listdir(models_dir)
                   if os.path.isdir(os.path.join(models_dir, n, "serving")))
    if not names:
        raise FileNotFoundError(f"No <name>/serving/ folders in {models_dir}: export models first "
                                "(tfvae export MODEL saved_models/<name>/serving).")
    entries = "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "{base_path_prefix.rstrip("/")}/{n}/serving"\n'
        f'    model_platform: "tensorflow"\n  }}\n' for n in names)
    path = os.path.join(models_dir, "models.config")
    with files.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(f"model_config_list {{\n{entries}}}\n")
    return path, names


def _remove_stale_temporaries(base_dir):
    """Deletes temporary export folders whose writing process is gone."""
    for entry in os.listdir(base_dir):
        match = re.fullmatch(re.escape(_TEMP_PREFIX) + r"\d+-(\d+)", entry)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base_dir, entry), ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
