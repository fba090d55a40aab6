"""Training configs: plain nested dicts of values, read from a Python file's `get_config()`.

A variant imports the default config beside it and changes only what differs; every key is
checked against `DEFAULTS` (and model keys against the model's constructor), so a typo is an
error that names the key instead of a silently ignored setting.
"""
import ast
import copy
import inspect
import os
import runpy
import sys

DEFAULTS = {
    "name": "vae_mnist",
    "data": {
        "name": "mnist",             # or "tfds:NAME", a .npy / .npz file, a folder of images
        "binarize": "dynamic",       # training set; the test set uses "fixed" (or None)
        "test_binarize": "fixed",
        "batch_size": 100,
        "test_batch_size": 500,
        "validation_size": 0,        # > 0 holds out the last N training images
        "seed": 0,
        "flatten": True,             # examples as vectors [batch, D]; False: [batch, H, W, C]
        "eight_bit": False,          # uint8 pixels as 0..255 for an 8-bit likelihood (no /255)
        "dequantize": False,         # uint8 pixels as (x + u) / 256 for a continuous likelihood
    },
    "model": {"class_name": "VAE"},  # the rest are the model constructor's arguments
    "optimizer": {
        "learning_rate": 1e-3,
        "epsilon": 1e-7,
        "clipnorm": None,
        "decay_per_epoch": 1.0,      # learning rate multiplied by this after every epoch
    },
    "training": {
        "epochs": 10,
        "kl_warmup_epochs": 0,
        "anneal_temperature": None,  # (rate, minimum, every): relaxed latents at tau =
                                     # max(minimum, exp(-rate t)) from step t, updated every
                                     # `every` steps (tfvae.callbacks.TemperatureAnnealing)
        "jit_compile": True,
        "steps_per_execution": 10,   # train steps per call of the compiled step (fewer Python
                                     # round trips; callbacks see every 10th batch's logs;
                                     # 1 under a distribution strategy)
        "seed": 0,
        "dtype_policy": "float32",   # or "mixed_bfloat16": networks in bf16, log-densities in f32
        "distribute": "none",        # or "mirrored": data parallel over the local GPUs, or
                                     # "multi_worker": over the machines of TF_CONFIG
        "init_from": None,           # a zoo name, .keras file or run folder: start from its weights
    },
    "evaluation": {
        "iwae_samples": 0,           # k of the IWAE test NLL after training (0: skip)
        "exact_likelihood": False,   # binary-latent models: log p(x) summed over all states
    },
}


# float16 would need loss scaling; bfloat16 has float32's exponent range and does not.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
DISTRIBUTE = ("none", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """A config key or value that tfvae does not accept."""


def load(path, overrides=()):
    """Reads `get_config()` from a Python file, applies `key.sub=value` overrides, validates.

    Returns:
        The full config: `DEFAULTS` updated with the file's values and the overrides.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path}")
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so a variant can `from vae_mnist import get_config`
    try:
        namespace = runpy.run_path(path)
    finally:
        sys.path.remove(folder)
    if "get_config" not in namespace:
        raise ConfigError(f"{path} must define get_config() returning a dict.")
    config = merge(DEFAULTS, namespace["get_config"](), where=path)
    for item in overrides:
        apply_override(config, item)
    validate(config)
    return config


def merge(base, update, where="config", prefix=""):
    """A copy of `base` with `update`'s values; keys missing from `base` are an error."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        name = prefix + key
        if key not in base and prefix != "model.":
            raise ConfigError(f"{where}: unknown config key {name!r}. "
                              f"Known keys here: {sorted(base)}")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            result[key] = merge(base[key], value, where, prefix=name + ".")
        else:
            result[key] = value
    return result


def apply_override(config, item):
    """Applies one `a.b=value` override in place; the value is a Python literal or a string."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. training.epochs=3). Received: {item!r}")
    key, text = item.split("=", 1)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    *parents, leaf = key.strip().split(".")
    node = config
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown config key {'.'.join(parents[:i + 1])!r} in --set {item!r}")
        node = node[part]
    if leaf not in node and parents != ["model"]:
        raise ConfigError(f"unknown config key {key!r} in --set {item!r}. Known keys here: {sorted(node)}")
    node[leaf] = value


def validate(config):
    """Checks the model keys against the model class's constructor."""
    from tfvae import models

    class_name = config["model"].get("class_name")
    model_class = getattr(models, str(class_name), None)
    if not (inspect.isclass(model_class) and issubclass(model_class, models.BaseVAE)):
        raise ConfigError(f"model.class_name must name a tfvae model (e.g. 'VAE'). "
                          f"Received: {class_name!r}")
    accepted = _constructor_args(model_class)
    for key in config["model"]:
        if key != "class_name" and key not in accepted:
            raise ConfigError(f"unknown config key 'model.{key}' for {class_name}. "
                              f"Accepted: {sorted(accepted)}")
    if config["training"]["distribute"] not in DISTRIBUTE:
        raise ConfigError(f"training.distribute must be one of {DISTRIBUTE}. "
                          f"Received: {config['training']['distribute']!r}")
    if config["training"]["dtype_policy"] not in DTYPE_POLICIES:
        raise ConfigError(f"training.dtype_policy must be one of {DTYPE_POLICIES}. "
                          f"Received: {config['training']['dtype_policy']!r}")
    anneal = config["training"]["anneal_temperature"]
    if anneal is not None:
        from tfvae import callbacks

        try:
            callbacks.TemperatureAnnealing(*anneal)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"training.anneal_temperature must be None or (rate, minimum, every), "
                              f"e.g. (1e-4, 0.5, 1000): {e}") from None
        if not _draws_relaxed(config["model"]):
            raise ConfigError("training.anneal_temperature anneals relaxed binary latents: set "
                              "model.estimator='relaxed' (with model.latent='bernoulli'), or "
                              f"training.anneal_temperature=None. Received: model.estimator="
                              f"{config['model'].get('estimator')!r}")
    for key in ("epochs", "steps_per_execution"):
        value = config["training"][key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"training.{key} must be a positive integer. Received: {value!r}")


def _draws_relaxed(model):
    """Whether a config's model section draws some latents relaxed: estimator="relaxed" (for
    every layer, or one of a hierarchy's), or a latent part saved with it."""
    estimator, latent = model.get("estimator"), model.get("latent")
    estimators = estimator if isinstance(estimator, (list, tuple)) else [estimator]
    part = latent.get("config", {}).get("estimator") if isinstance(latent, dict) else None
    return "relaxed" in estimators or part == "relaxed"


def build_model(config, data_shape=None):
    """The model the config describes (constructor errors name the offending argument), read
    as a saved config is, so old spellings build what they load as (e.g. a
    HarmoniumVAE(tie_weights=False) is a VAE(latent="bernoulli")). A model section without
    input_shape (or input_dim) takes `data_shape`, the shape of one example of the data."""
    from tfvae import models

    kwargs = {k: v for k, v in config["model"].items() if k != "class_name"}
    if data_shape is not None and kwargs.get("input_shape") is None and kwargs.get("input_dim") is None:
        kwargs = dict(kwargs, input_shape=tuple(data_shape), input_dim=None)
    try:
        return getattr(models, config["model"]["class_name"]).from_config(kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model config: {e}") from e


def model_arguments(config):
    """The model section of a config with the constructor's defaults filled in, so that two
    configs of the same model compare equal however many of its defaults they spell out."""
    from tfvae import models

    class_name = config["model"].get("class_name")
    model_class = getattr(models, str(class_name), None)
    if not (inspect.isclass(model_class) and issubclass(model_class, models.BaseVAE)):
        raise ConfigError(f"model.class_name must name a tfvae model (e.g. 'VAE'). "
                          f"Received: {class_name!r}")
    arguments = {}
    for klass in model_class.__mro__:  # a subclass's default wins over its base's
        if "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if (name not in ("self", "kwargs", "args") and p.default is not p.empty
                        and name not in arguments):
                    arguments[name] = p.default
        if klass.__name__ == "BaseVAE":
            break
    arguments.update(config["model"])
    if arguments.get("input_dim") is not None and arguments.get("input_shape") is None:
        # the old spelling: input_dim=D is input_shape=(D,)
        arguments.update(input_shape=(arguments["input_dim"],), input_dim=None)
    return arguments


def _constructor_args(cls):
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(p for p in inspect.signature(klass.__init__).parameters
                         if p not in ("self", "kwargs", "args"))
        if klass.__name__ == "BaseVAE":
            break
    return names
