"""Priors p(z) over a layer of Gaussian latents: N(0, I), a learned Gaussian mixture, VampPrior.

The ELBO surgery (Hoffman & Johnson 2016; `tfvae.evaluation.elbo_surgery`) shows that with many
latent units most of the average KL is the marginal KL[q(z) || p(z)] between the aggregate
posterior q(z) = (1/N) sum_n q(z|x_n) and the prior. The optimal prior is q(z) itself; these
priors approximate it:
- "mixture": p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)), with pi, m, s learned;
- "vamp": p(z) = (1/K) sum_k q(z | u_k), the encoder's posteriors at K learned pseudo-inputs u_k
  (Tomczak & Welling 2018, "VAE with a VampPrior"; they use K = 500 on MNIST).
KL[q(z|x) || p(z)] has no closed form for a mixture prior: models use the Monte Carlo estimate
log q(z|x) - log p(z) at the posterior sample.

A prior layer gives `params()` (mixture weights' logits [K], loc and scale [K, L]),
`log_prob(z)` for z of shape [..., L], `sample(num_samples, seed)` and `distribution()` (the
equivalent `tfd` object, for inspection). Each is a registered Keras layer whose config is its
constructor's arguments; a VampPrior's encoder is not config: the model binds it, `bind(encode)`.
"""
import math
import numbers

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import distributions, estimators

tfd = tfp.distributions

PRIORS = ("standard_normal", "mixture", "vamp")


def mixture_log_prob(params, z):
    """log sum_k softmax(logits)_k N(z; loc_k, diag(scale_k^2)) for z of shape [..., L].

    Written directly, (z - loc_k) / scale_k, in float32: under XLA the [rows, K, L] differences
    fuse into the reduction over L and are never stored, and unlike the expanded matrix-product
    form (`Family.log_prob_matrix`, which needs float64 against cancellation)
    it stays accurate for small component scales.
    """
    flat = tf.reshape(z, [-1, tf.shape(z)[-1]])
    loc, scale = params["loc"], params["scale"]
    standardized = (flat[:, None, :] - loc) / scale                        # [rows, K, L]
    log_components = (-0.5 * tf.reduce_sum(tf.square(standardized), axis=-1)
                      - tf.reduce_sum(tf.math.log(scale), axis=-1)
                      - 0.5 * tf.cast(tf.shape(loc)[-1], tf.float32) * math.log(2 * math.pi))
    log_p = tf.reduce_logsumexp(log_components + tf.nn.log_softmax(params["logits"]), axis=-1)
    return tf.reshape(log_p, tf.shape(z)[:-1])


def mixture_sample(params, num_samples, seed):
    """Ancestral draws: component k by the Gumbel-max trick on the logits, then z ~ N(m_k, s_k^2)."""
    component_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(
        estimators.seed_pair(seed), 2))
    logits = params["logits"]
    u = estimators.standard_uniform([num_samples, tf.shape(logits)[0]], component_seed)
    gumbel = -tf.math.log(-tf.math.log(tf.clip_by_value(u, 1e-20, 1.0)))
    k = tf.argmax(logits + gumbel, axis=-1)
    return estimators.pathwise_gaussian(tf.gather(params["loc"], k),
                                        tf.gather(params["scale"], k), z_seed)


def _positive_int(name, value):
    """`value` as an int, or a Keras-style ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _check_input_shape(input_shape, input_dim):
    """The pseudo-inputs' shape (without the batch axis); see `distributions.normalize_shape`."""
    if input_shape is None and input_dim is None:
        raise ValueError("VampPrior needs the model's input shape for its pseudo-inputs, e.g. "
                         "input_shape=(784,) or (28, 28, 1). Received: input_shape=None")
    return distributions.normalize_shape(input_shape, "input_shape", input_dim, "input_dim")


def _check_range(pseudo_input_range):
    """None, or (low, high) as floats with low < high, both finite."""
    if pseudo_input_range is None:
        return None
    try:
        low, high = (float(v) for v in pseudo_input_range)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError("pseudo_input_range must be None (real-valued data: pseudo-inputs are "
                         "unconstrained) or a pair (low, high) of finite numbers with low < high, "
                         "e.g. (0.0, 1.0) for pixel intensities or Bernoulli data. "
                         f"Received: pseudo_input_range={pseudo_input_range!r}")
    return (low, high)


class Prior(keras.layers.Layer):
    """Base class of p(z) parts over a layer of `latent_dim` Gaussian latent units.

    A subclass implements `log_prob(z)` (z [..., L] -> [...]) and `sample(num_samples, seed)`
    ([num_samples, L], stateless from `seed`: use `tfvae.estimators.seed_pair(seed)`), creates
    its weights in `build`, and returns its constructor's arguments from `get_config`. The
    model's KL is then the Monte Carlo log q(z|x) - log p(z) at the posterior's draw, unless
    `kl(posterior)` gives it in closed form. Registered with
    `keras.saving.register_keras_serializable`, it saves, loads with `safe_mode=True` and
    exports with no change to tfvae.

    Hooks: `factorizes` (p is N(0, I): the per-unit closed form, free bits), `bind(encode)`
    (a prior made of the model's encoder), `initialization_examples` and
    `initialize_from_data(x)` (a prior that starts from training data).
    """

    factorizes = False

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = _positive_int("latent_dim", latent_dim)

    def build(self, input_shape=None):
        self.built = True  # (a subclass with weights adds them here)

    def log_prob(self, z):
        raise NotImplementedError

    def sample(self, num_samples, seed):
        raise NotImplementedError

    def kl(self, posterior):
        """KL[q || p] for a `tfd` posterior q, per example, where it has a closed form; None
        otherwise (the model then estimates it by Monte Carlo)."""
        return None

    def bind(self, encode):
        """For a prior made of the model's encoder (VampPrior): the model passes its `encode`."""
        return self

    @property
    def initialization_examples(self):
        """How many training examples `initialize_from_data` takes (0: none)."""
        return 0

    def initialize_from_data(self, x):
        """Starts the prior's weights from the first `initialization_examples` examples."""

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I): no parameters; factorizes over units, so its KL has a closed form.

    Args:
        latent_dim: number of latent units L.
    """

    factorizes = True

    def kl(self, posterior):
        return distributions.kl_divergence(posterior, self.distribution())

    def params(self):
        """N(0, I) as the one-component mixture, for code that treats every prior alike."""
        zeros = tf.zeros([1, self.latent_dim])
        return {"logits": tf.zeros([1]), "loc": zeros, "scale": tf.ones_like(zeros)}

    def log_prob(self, z):
        return self.distribution().log_prob(z)

    def sample(self, num_samples, seed):
        return estimators.standard_normal([num_samples, self.latent_dim], estimators.seed_pair(seed))

    def distribution(self):
        return distributions.standard_normal(self.latent_dim)


class _MixturePriorBase(Prior):
    """Shared by the learned mixtures: log-density, sampling and the tfd view of `params()`."""

    factorizes = False

    def log_prob(self, z):
        return mixture_log_prob(self.params(), z)

    def sample(self, num_samples, seed):
        return mixture_sample(self.params(), num_samples, seed)

    def distribution(self):
        params = self.params()
        return tfd.MixtureSameFamily(tfd.Categorical(logits=params["logits"]),
                                     distributions.diagonal_gaussian(params))


@keras.saving.register_keras_serializable(package="tfvae")
class MixturePrior(_MixturePriorBase):
    """p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)), pi = softmax(logits); all learned.

    s = softplus(raw_scale) + min_scale. Means start as N(0, I) draws (so the components
    differ), scales at 1, weights uniform.

    Args:
        latent_dim: number of latent units L.
        num_components: number of components K.
        min_scale: floor added to every component scale (>= 0).
    """

    def __init__(self, latent_dim, num_components=500, min_scale=1e-4, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = _positive_int("num_components", num_components)
        if (isinstance(min_scale, bool) or not isinstance(min_scale, numbers.Real)
                or not math.isfinite(min_scale) or min_scale < 0):
            raise ValueError("min_scale must be a finite number >= 0. "
                             f"Received: min_scale={min_scale!r}")
        self.min_scale = float(min_scale)

    def build(self, input_shape=None):
        k, dim = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(k,), initializer="zeros", name="logits")
        self.loc = self.add_weight(shape=(k, dim), initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                   name="loc")
        # softplus(0.5413) = 1
        self.raw_scale = self.add_weight(shape=(k, dim), initializer=keras.initializers.Constant(0.5413),
                                         name="raw_scale")
        self.built = True

    def params(self):
        return {"logits": tf.convert_to_tensor(self.logits), "loc": tf.convert_to_tensor(self.loc),
                "scale": tf.nn.softplus(self.raw_scale) + self.min_scale}

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class VampPrior(_MixturePriorBase):
    """p(z) = (1/K) sum_k q(z | u_k) (Tomczak & Welling 2018), with K pseudo-inputs u_k learned.

    The components are the model's own posteriors at the pseudo-inputs, so the prior follows the
    encoder as it trains. The encoder is not part of the config: the model binds it after
    construction (and after loading), `prior.bind(encode)`, where `encode(u)` maps a batch
    [K, *input_shape] to q(z|u)'s {"loc", "scale"}, each [K, L].

    The pseudo-inputs live in the data's range: with `pseudo_input_range=(low, high)`,
    u = low + (high - low) sigmoid(raw) (the default (0, 1) keeps them valid pixel intensities
    or Bernoulli means), raw starting near -2 (about 0.12 of the range, the mean MNIST intensity
    is 0.13) with N(0, 0.1) noise; with `None` (real-valued data, e.g. a Gaussian likelihood)
    u = raw, unconstrained, starting as N(0, 1) draws. `initialize_from_data` starts them at K
    examples instead.

    Args:
        latent_dim: number of latent units L.
        num_components: number of pseudo-inputs K.
        input_shape: shape of one example, e.g. (784,) or (28, 28, 1) (an int D means (D,)).
        pseudo_input_range: (low, high) of the data, or None for unbounded data.
        input_dim: the old spelling of `input_shape=(input_dim,)` (saved configs still load).

    Example:
    >>> prior = VampPrior(latent_dim=16, num_components=500, input_shape=(28, 28, 1))
    >>> prior.bind(model.encode)   # done by the model; needed before params/log_prob/sample
    """

    def __init__(self, latent_dim, num_components=500, input_shape=None,
                 pseudo_input_range=(0.0, 1.0), input_dim=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = _positive_int("num_components", num_components)
        self.input_shape = _check_input_shape(input_shape, input_dim)
        self.pseudo_input_range = _check_range(pseudo_input_range)
        self._encode = None

    def bind(self, encode):
        """Sets the encoder: `encode(u)` returns {"loc", "scale"} of q(z|u). Returns the prior."""
        if not callable(encode):
            raise ValueError("VampPrior.bind takes the model's encoder, a callable from inputs "
                             f"[K, *input_shape] to {{'loc', 'scale'}}. Received: encode={encode!r}")
        self._encode = encode
        return self

    @property
    def initialization_examples(self):
        return self.num_components

    @property
    def encode(self):
        """The bound encoder, or None; setting it is `bind`."""
        return self._encode

    @encode.setter
    def encode(self, encode):
        self.bind(encode)

    def build(self, input_shape=None):
        # For flat inputs the weight is [K, D] as in earlier versions, so saved models load.
        if self.pseudo_input_range is None:
            initializer = keras.initializers.RandomNormal(0.0, 1.0)
        else:
            initializer = keras.initializers.RandomNormal(-2.0, 0.1)
        self.raw_pseudo_inputs = self.add_weight(
            shape=(self.num_components, *self.input_shape), initializer=initializer,
            name="raw_pseudo_inputs")
        self.built = True

    def pseudo_inputs(self):
        """u = low + (high - low) sigmoid(raw), or raw when `pseudo_input_range` is None."""
        if self.pseudo_input_range is None:
            return tf.convert_to_tensor(self.raw_pseudo_inputs)
        low, high = self.pseudo_input_range
        return low + (high - low) * tf.sigmoid(self.raw_pseudo_inputs)

    def initialize_from_data(self, x):
        """Starts the pseudo-inputs at K examples x [K, *input_shape]: raw = logit of x's place
        in the range, clipped to [0.01, 0.99] of it, or raw = x when the range is None. From the
        default start all components are alike, and without KL warm-up (which Tomczak & Welling
        use) the posterior collapses onto them: on MNIST the 10-latent VAE had KL 0.5 nats after
        3 epochs."""
        if not self.built:
            self.build()
        x = tf.convert_to_tensor(x, tf.float32)
        expected = (self.num_components, *self.input_shape)
        if tuple(x.shape) != expected:
            raise ValueError(f"initialize_from_data needs {list(expected)} examples "
                             f"(num_components, *input_shape). Received shape {tuple(x.shape)}")
        if self.pseudo_input_range is None:
            self.raw_pseudo_inputs.assign(x)
            return
        low, high = self.pseudo_input_range
        p = tf.clip_by_value((x - low) / (high - low), 0.01, 0.99)
        self.raw_pseudo_inputs.assign(tf.math.log(p) - tf.math.log1p(-p))

    def params(self):
        if self._encode is None:
            raise ValueError(
                f"VampPrior {self.name!r} has no encoder: its components are q(z | u_k), so the "
                "model must bind its encoder first, `prior.bind(model.encode)` (the encoder is "
                "not part of the config, so also after loading or deserializing the prior).")
        if not self.built:
            self.build()
        posterior = self._encode(self.pseudo_inputs())
        return {"logits": tf.zeros([self.num_components]), "loc": posterior["loc"],
                "scale": posterior["scale"]}

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, input_shape=self.input_shape,
                      pseudo_input_range=self.pseudo_input_range)
        return config


def make_prior(kind, latent_dim, num_components=500, input_shape=None, encode=None,
               name="prior", pseudo_input_range=(0.0, 1.0), input_dim=None):
    """The prior layer for `kind` in PRIORS (see the module docstring).

    Args:
        kind: "standard_normal", "mixture" or "vamp".
        latent_dim: number of latent units L.
        num_components: K, for "mixture" and "vamp".
        input_shape: "vamp" only: the shape of one example (an int D means (D,), as in the
            models' positional call `make_prior(prior, latent_dim, components, input_dim)`).
        encode: "vamp" only: the model's encoder, bound with `VampPrior.bind`.
        name: the layer's name.
        pseudo_input_range: "vamp" only: (low, high) of the data, or None for real values.
        input_dim: the old spelling of `input_shape=(input_dim,)`.
    """
    if kind not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}. Received: prior={kind!r}")
    if kind != "standard_normal" and (isinstance(num_components, bool)
                                      or not isinstance(num_components, numbers.Integral)
                                      or num_components < 1):
        raise ValueError(f"prior_components must be a positive integer. "
                         f"Received: prior_components={num_components!r}")
    if kind == "mixture":
        return MixturePrior(latent_dim, num_components, name=name)
    if kind == "vamp":
        prior = VampPrior(latent_dim, num_components, input_shape=input_shape,
                          pseudo_input_range=pseudo_input_range, input_dim=input_dim, name=name)
        return prior if encode is None else prior.bind(encode)
    return StandardNormalPrior(latent_dim, name=name)


def prior_part(prior, latent_dim, num_components=500, input_shape=None, encode=None,
               pseudo_input_range=(0.0, 1.0)):
    """A model's prior, given as a kind in PRIORS (the shorthand, built by `make_prior`) or as
    a prior layer (a part, or its serialization from a config). Returns (layer, kind); a
    VampPrior is bound to `encode`.

    Example:
    >>> tfvae.VAE(input_shape=(784,), latent_dim=16,
    ...           prior=tfvae.priors.MixturePrior(16, num_components=10))
    """
    if isinstance(prior, dict):
        prior = keras.saving.deserialize_keras_object(prior)
    if isinstance(prior, str):
        return make_prior(prior, latent_dim, num_components, input_shape, encode=encode,
                          pseudo_input_range=pseudo_input_range), prior
    if not isinstance(prior, Prior):
        raise ValueError(f"prior must be one of {PRIORS} or a tfvae.priors.Prior (MixturePrior, "
                         "VampPrior, StandardNormalPrior, or your own subclass). "
                         f"Received: prior={prior!r}")
    kinds = {VampPrior: "vamp", MixturePrior: "mixture", StandardNormalPrior: "standard_normal"}
    kind = next((kind for cls, kind in kinds.items() if isinstance(prior, cls)), "custom")
    if prior.latent_dim != latent_dim:
        raise ValueError(f"The prior is over {prior.latent_dim} latent units; the model has "
                         f"{latent_dim}. Received: prior.latent_dim={prior.latent_dim}")
    if kind == "vamp" and tuple(prior.input_shape) != tuple(input_shape):
        raise ValueError(f"The VampPrior's pseudo-inputs have shape {tuple(prior.input_shape)}; "
                         f"the model's inputs {tuple(input_shape)}. Received: "
                         f"prior.input_shape={tuple(prior.input_shape)}")
    return prior.bind(encode), kind


def check_free_bits(free_bits, kind):
    """Free bits floor each latent unit's KL: only a prior that factorizes over units has one."""
    if free_bits > 0 and kind != "standard_normal":
        raise ValueError("free_bits floors the KL of each latent unit, which needs a prior that "
                         "factorizes over units (prior='standard_normal'). "
                         f"Received: free_bits={free_bits}, prior={kind!r}")
