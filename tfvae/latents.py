"""A latent layer: a family, its units, and how its draws are differentiated (the estimator).

`Latent` is the one layer every model draws latents with: the flat VAE's z, each layer of a
ladder or hierarchical VAE, the harmonium's binary units. It is a distribution head (features
-> the family's parameters, `tfvae.distributions.DistributionLayer`) that also draws:

- "pathwise" (Gaussian): z = loc + scale * eps (Kingma & Welling 2014);
- "straight_through" (Bernoulli): the hard draw, d z / d p = 1 (Bengio, Leonard & Courville 2013);
- "relaxed" (Bernoulli): while training, the Concrete draw at the family's temperature, its
  density the logistic's in logit space, against the prior relaxed at the same temperature
  (Maddison, Mnih & Teh 2017); exact draws otherwise;
- "score_function": the draw without gradient, plus a zero-valued term whose gradient is
  (f - b) grad log q(z) (Williams 1992), with the baseline b "none", "moving_average" (of the
  learning signal f) or "learned" (moving average plus a linear b(x) fit by least squares;
  Mnih & Gregor 2014). Its state (`signal_mean`, `baseline_net`) is the layer's own.

Example:
>>> latent = tfvae.latents.Latent(200, family="bernoulli", estimator="score_function",
...                               baseline="learned")
>>> model = tfvae.VAE(input_shape=(784,), latent=latent)
"""
import contextlib
import inspect

import keras
import tensorflow as tf

from tfvae import distributions, estimators, families

BASELINES = ("none", "moving_average", "learned")


def binary_states(num_units, start=0, stop=None):
    """Rows start..stop-1 of the 2^m binary states, [n, m] float32 (unit j = bit j of the row)."""
    stop = 2 ** num_units if stop is None else stop
    index = tf.range(start, stop, dtype=tf.int32)[:, None]
    return tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(index, tf.range(num_units)), 1),
                   tf.float32)


def latent_part(latent, units=None, estimator=None, baseline="moving_average",
                baseline_decay=0.99, name="latent", **family_options):
    """A model's latent layer, given as a family name (the shorthand, with `units` and the
    estimator's options) or as a `Latent` (a part, or its serialization from a config)."""
    if isinstance(latent, dict):
        latent = keras.saving.deserialize_keras_object(latent)
    if isinstance(latent, Latent):
        if units is not None and units != latent.units:
            raise ValueError(f"The latent layer has {latent.units} units; latent_dim={units} "
                             "disagrees: give one of them.")
        _refuse_conflicts(latent, estimator, baseline, baseline_decay, family_options)
        return latent
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"latent_dim must be a positive integer. Received: latent_dim={units!r}")
    if not isinstance(latent, str) or latent not in families.FAMILIES:
        raise ValueError(f"latent must be one of {tuple(families.FAMILIES)} or a "
                         "tfvae.latents.Latent (a family of your own is known once the module "
                         "that registers it with @tfvae.families.register_family is imported). "
                         f"Received: latent={latent!r}")
    family = families.get(latent, **family_options)
    if estimator is not None and estimator not in family.estimators:
        hint = ""
        if latent == "gaussian":
            hint = (" Gaussian latents are drawn pathwise (reparameterized); "
                    f"estimator='{estimator}' is for latent='bernoulli'.")
        raise ValueError(f"estimator must be one of {family.estimators} for {latent} latents.{hint} "
                         f"Received: estimator={estimator!r}")
    return Latent(units, family, estimator, baseline, baseline_decay, name=name)


def _refuse_conflicts(latent, estimator, baseline, baseline_decay, family_options):
    """A model's estimator options given beside a `Latent` part must be the part's: the part
    decides them, so a different value would be ignored. (Options at their defaults are not
    given; the family's options count only for a family that takes them.)"""
    family_defaults = inspect.signature(type(latent.family).__init__).parameters
    given = {"estimator": (estimator, None, latent.estimator),
             "baseline": (baseline, "moving_average", latent.baseline),
             "baseline_decay": (baseline_decay, 0.99, latent.baseline_decay)}
    given.update({key: (value, family_defaults[key].default, getattr(latent.family, key))
                  for key, value in family_options.items()
                  if key in family_defaults and hasattr(latent.family, key)
                  and family_defaults[key].default is not inspect.Parameter.empty})
    conflicts = [f"{key}={value!r} (the part's: {own!r})" for key, (value, default, own)
                 in given.items() if value != default and value != own]
    if conflicts:
        raise ValueError(f"The latent part decides how it draws; {', '.join(conflicts)} would "
                         f"be ignored. Give them to the part (tfvae.latents.Latent(..., "
                         f"{conflicts[0].split(' ')[0]})) or leave them out.")


@keras.saving.register_keras_serializable(package="tfvae")
class Latent(distributions.DistributionLayer):
    """`units` latent units of `family`, drawn with `estimator` (see the module docstring).

    Args:
        units: number of latent units.
        family: "gaussian", "bernoulli" (any name of `tfvae.families.FAMILIES`) or a Family.
        estimator: one of the family's `estimators`; None takes its first (the default).
        baseline, baseline_decay: the score function's baseline and its moving average's
            decay per training step.
        project: Dense-project the features to the parameters (False: they are the raw
            parameters already, e.g. the harmonium's W^T x + v).
        family_options: options of a family given by name (scale_activation, min_scale,
            temperature); ignored by the families that do not take them.
    """

    def __init__(self, units, family="gaussian", estimator=None, baseline="moving_average",
                 baseline_decay=0.99, project=True, **kwargs):
        options = {k: kwargs.pop(k) for k in ("scale_activation", "min_scale", "temperature")
                   if k in kwargs}
        self.family = families.get(family, **options)
        super().__init__(units, project=project, **kwargs)
        self.units = self.event_shape[0] if len(self.event_shape) == 1 else None
        if self.units is None:
            raise ValueError(f"units must be a positive integer (a latent layer is flat). "
                             f"Received: units={units!r}")
        self.estimator = self.family._check_estimator(estimator)
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}. Received: baseline={baseline!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1). Received: baseline_decay={baseline_decay!r}")
        self.baseline = baseline
        self.baseline_decay = float(baseline_decay)
        score_function = self.estimator == "score_function"
        # The score function's state: the running mean of its learning signal, and b(x).
        self.signal_mean = None
        self.baseline_net = (keras.layers.Dense(1, name="baseline")
                             if score_function and baseline == "learned" else None)

    def build(self, input_shape):
        """Builds the head for features of `input_shape` (and the score function's state)."""
        super().build(input_shape)
        if self.estimator == "score_function" and self.signal_mean is None:
            self.signal_mean = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                               name="signal_mean", aggregation="mean")
        self.built = True

    def build_baseline(self, data_shape):
        """Builds the learned baseline b(x) for a batch of data of `data_shape` (if any)."""
        if self.baseline_net is not None and not self.baseline_net.built:
            self.baseline_net.build((None, int(tf.TensorShape(data_shape[1:]).num_elements())))

    @property
    def temperature(self):
        """The relaxed draw's temperature (the family's)."""
        return getattr(self.family, "temperature", None)

    def set_temperature(self, temperature):
        """Draws relaxed at `temperature` from now on. A traced train step keeps the value it was
        traced with: retrace it (`model.make_train_function(force=True)`), as
        `tfvae.callbacks.TemperatureAnnealing` does."""
        if "temperature" not in self.family._config_names:
            raise ValueError(f"{self.family.name} latents have no temperature (the relaxed "
                             "estimator's, for Bernoulli latents).")
        self.family = type(self.family).from_config({**self.family.get_config(), "temperature": temperature})

    # -- the draw -----------------------------------------------------------------------------
    def is_relaxed(self, training):
        """Whether draws are relaxed: with the relaxed estimator, while training only."""
        return self.estimator == "relaxed" and bool(training)

    def standard_params(self, num_rows):
        """The family's standard member (N(0, I), Bernoulli(1/2)), [num_rows, units]."""
        return self.family.standard_params(tf.stack([num_rows, self.units]))

    def draw(self, params, seed, num_samples=None, training=False):
        """(z, point): z [num_samples, *batch, units] (or [*batch, units]) for the network
        above, differentiated by the estimator; `point` is where `log_ratio` evaluates the
        densities (z itself unless the draw is relaxed)."""
        estimator = self.estimator
        if estimator == "relaxed" and not training:
            estimator = self.family.estimators[0]  # evaluation: exact draws
        return self.family.draw(params, seed, estimator, num_samples)

    def unit_log_ratio(self, q, p, point, training=False):
        """log q(point) - log p(point) per unit, p in this family (relaxed: both relaxed)."""
        estimator = self.estimator if self.is_relaxed(training) else self.family.estimators[0]
        return (self.family.draw_unit_log_prob(q, point, estimator)
                - self.family.draw_unit_log_prob(p, point, estimator))

    def unit_kl(self, q, p, point, analytic=True, training=False):
        """KL[q || p] per unit: the closed form when `analytic` (not for relaxed draws), else
        the one-sample estimate `unit_log_ratio` at the draw's point."""
        if analytic and not self.is_relaxed(training):  # (Monte Carlo at `point` without one)
            return families.kl_divergence(self.family.unit_distribution(q),
                                          self.family.unit_distribution(p), point)
        return self.unit_log_ratio(q, p, point, training)

    def score_function_term(self, x, q, z, signal, training=False):
        """Zero-valued, [batch]; its gradient is (f - b) grad log q(z) for the stopped draw z
        and the learning signal f (`signal`, [batch]), b the baseline (see module)."""
        if self.estimator != "score_function":
            return tf.zeros_like(signal)
        signal = tf.stop_gradient(signal)
        baseline, term = 0.0, 0.0
        if self.baseline != "none":
            # Read before the update, so the baseline does not depend on this batch's draws.
            baseline = tf.identity(self.signal_mean.value)
            if training:
                decay = self.baseline_decay
                self.signal_mean.assign(decay * self.signal_mean + (1 - decay) * tf.reduce_mean(signal))
        if self.baseline == "learned" and self.baseline_net is not None:
            flat = tf.reshape(x, [tf.shape(x)[0], -1])
            learned = self.baseline_net(flat)[:, 0]
            residual = signal - baseline - learned
            # Least squares for b(x), as a zero-valued term with the gradient of -residual^2.
            term = -(tf.square(residual) - tf.stop_gradient(tf.square(residual)))
            baseline = baseline + learned
        return term + estimators.score_function_surrogate(self.log_prob(q, z), signal, baseline)

    @contextlib.contextmanager
    def estimator_as(self, estimator=None, baseline=None, temperature=None):
        """Draws with `estimator` (and `baseline`, `temperature`) inside the block, for a
        measurement (`tfvae.evaluation.gradient_variance`); restored after it. A score function
        without state gets a temporary one, outside the layer's variables."""
        saved = dict(estimator=self.estimator, baseline=self.baseline, family=self.family,
                     signal_mean=self.signal_mean, baseline_net=self.baseline_net)
        estimator = self.family._check_estimator(estimator or self.estimator)
        baseline = baseline or self.baseline
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}. Received: baseline={baseline!r}")
        family = self.family
        if temperature is not None and "temperature" in family._config_names:
            family = type(family).from_config({**family.get_config(), "temperature": temperature})
        temporary = {}
        if estimator == "score_function" and self.signal_mean is None:
            temporary["signal_mean"] = keras.Variable(0.0, trainable=False, dtype="float32",
                                                       name="signal_mean")
        if estimator == "score_function" and baseline == "learned" and self.baseline_net is None:
            raise ValueError("baseline='learned' has weights that must be trained: build the layer "
                             "with estimator='score_function', baseline='learned' and train it.")
        try:
            # (plain attribute writes: the temporaries are not tracked as the layer's variables)
            for name, value in dict(estimator=estimator, baseline=baseline, family=family,
                                    **temporary).items():
                object.__setattr__(self, name, value)
            yield self
        finally:
            for name, value in saved.items():
                object.__setattr__(self, name, value)

    def load_own_variables(self, store):
        # A file saved before the score function's state was the latent layer's keeps it on
        # the model, which restores it here (`BaseVAE.load_own_variables`).
        if self.signal_mean is not None and not len(store.keys()):
            return
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.pop("event_shape")
        config.update(units=self.units, family=keras.saving.serialize_keras_object(self.family),
                      estimator=self.estimator, baseline=self.baseline,
                      baseline_decay=self.baseline_decay)
        return config
