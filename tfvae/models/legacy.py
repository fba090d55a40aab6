"""Everything that reads what earlier versions of tfvae saved: one place for the old spellings.

Configs (`upgrade_config`, called by `BaseVAE.from_config`):
- `input_dim=D` (any model, prior or likelihood) is `input_shape=(D,)`: kept as an argument
  (`tfvae.distributions.normalize_shape` reads it), and the zoo's configs now use input_shape.
- `HarmoniumVAE(tie_weights=False)` was the binary-latent VAE: it loads as `tfvae.VAE` (a
  Gaussian one drawn with the score function loads drawn pathwise, with a warning); the tied
  model's configs drop the untied-only options (`hidden`, `activation`, `temperature`).
- A VampPrior saved with a Gaussian likelihood before its pseudo-inputs followed the data's
  range had them squashed to (0, 1): it loads so.
Weights (`upgrade_own_variables`, called by `BaseVAE.load_own_variables`):
- Files saved before latent layers were `tfvae.latents.Latent` kept them under the classes
  DiagonalGaussian / Bernoulli (`restore_renamed_layers`).
- Files saved before the score function's state (`signal_mean`) moved into the latent layer
  held it as the model's last own variable.
"""
import warnings

import numpy as np
from keras.src.utils import naming  # Keras' names of saved layers (`restore_renamed_layers`)

from tfvae import latents, priors

# HarmoniumVAE(tie_weights=False)'s options that the VAE takes
_UNTIED_TO_VAE = ("input_shape", "input_dim", "latent_dim", "latent", "hidden", "activation",
                  "estimator", "baseline", "baseline_decay", "temperature", "likelihood",
                  "likelihood_scale", "analytic_kl", "num_samples", "beta", "free_bits", "seed",
                  "name", "trainable", "dtype")


def upgrade_config(cls, config):
    """(the class to build, its config) for a config saved for `cls` by any version."""
    config = dict(config)
    if cls.__name__ == "HarmoniumVAE":
        if not config.get("tie_weights", True):
            from tfvae.models.vae import VAE
            vae = {"latent": "bernoulli",  # the harmonium's default, not the VAE's
                   **{k: v for k, v in config.items() if k in _UNTIED_TO_VAE}}
            if vae["latent"] == "gaussian" and vae.get("estimator") == "score_function":
                warnings.warn("This config's Gaussian latents were drawn with the score function, "
                              "which tfvae no longer offers for Gaussian latents: it loads drawn "
                              "pathwise (the same model; only the training gradient differs).")
                vae["estimator"] = "pathwise"
            return VAE, vae
        for old in ("hidden", "activation", "temperature"):  # untied-only options
            config.pop(old, None)
    if ("input_dim" in config and config.get("prior") == "vamp"
            and config.get("likelihood") == "gaussian"):
        units = (config["latent_dim"] if "latent_dim" in config
                 else tuple(config["latent_dims"])[-1])
        config["prior"] = priors.VampPrior(
            units, config.get("prior_components", 500), input_shape=(config["input_dim"],),
            pseudo_input_range=(0.0, 1.0), name="prior")
    return cls, config


def upgrade_own_variables(model, store):
    """The model's own saved variables as this version lays them out."""
    restore_renamed_layers(model, getattr(store, "h5_file", None))
    own = model._trainable_variables + model._non_trainable_variables
    if len(store.keys()) == len(own) + 1:  # the score function's state, then the model's
        state = store[str(len(own))]
        for latent in model.latent_layers():
            if latent.signal_mean is not None:
                latent.signal_mean.assign(state)
        store = {str(i): store[str(i)] for i in range(len(own))}
    return store


# A latent layer's class before latent layers were `tfvae.latents.Latent`, by family.
_LEGACY_LATENT_CLASSES = {"gaussian": "DiagonalGaussian", "bernoulli": "Bernoulli"}


def restore_renamed_layers(model, h5_file):
    """Loads the latent layers of a .keras file saved before they were `Latent`s.

    Keras stores a model's sublayers under `layers/<class name>_<n>` (n counting the layers of
    that class, in the model's order): there a latent layer was a DiagonalGaussian or a
    Bernoulli. Each such layer's projection is read from its old path, and its (empty) new
    path is then skipped once; so is a learned baseline b(x), then the model's `baseline_net`."""
    if h5_file is None:
        return
    new_names, old_names = {}, {}
    for layer in model.layers:
        cls = type(layer).__name__
        new = _unique(naming.to_snake_case(cls), new_names)
        if not isinstance(layer, latents.Latent):
            _unique(naming.to_snake_case(cls), old_names)
            continue
        old = _unique(naming.to_snake_case(_LEGACY_LATENT_CLASSES.get(layer.family.name, cls)),
                      old_names)
        if new == old or f"layers/{new}" in h5_file or f"layers/{old}" not in h5_file:
            continue
        if layer.projection is not None:
            _assign_saved(layer.projection, h5_file[f"layers/{old}/projection/vars"])
        if layer.baseline_net is not None and "baseline_net/vars" in h5_file:
            _assign_saved(layer.baseline_net, h5_file["baseline_net/vars"])


def _assign_saved(layer, saved):
    """The layer's weights from a saved group of vars; its next (empty) load is skipped."""
    for i, variable in enumerate(layer.weights):
        variable.assign(np.asarray(saved[str(i)]))
    _skip_next_load(layer)


def _unique(name, used):
    """Keras' naming of a container's saveables: name, name_1, name_2, ..."""
    used[name] = used.get(name, -1) + 1
    return name if used[name] == 0 else f"{name}_{used[name]}"


def _skip_next_load(layer):
    """The layer's next `load_own_variables` (of an empty path) keeps its weights."""
    def skip(store):
        del layer.__dict__["load_own_variables"]
    object.__setattr__(layer, "load_own_variables", skip)
