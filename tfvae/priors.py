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
equivalent `tfd` object, for inspection).
"""
import math

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
    form (`distributions.gaussian_log_prob_matrix`, which needs float64 against cancellation)
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


class StandardNormalPrior(keras.layers.Layer):
    """p(z) = N(0, I): no parameters; factorizes over units, so its KL has a closed form."""

    factorizes = True

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    def build(self, input_shape=None):
        pass  # no weights

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


class _MixturePriorBase(keras.layers.Layer):
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


class MixturePrior(_MixturePriorBase):
    """p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)), pi = softmax(logits); all learned.

    Means start as N(0, I) draws (so the components differ), scales at 1, weights uniform.
    """

    def __init__(self, latent_dim, num_components, min_scale=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.num_components = num_components
        self.min_scale = min_scale

    def build(self, input_shape=None):
        k, dim = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(k,), initializer="zeros", name="logits")
        self.loc = self.add_weight(shape=(k, dim), initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                   name="loc")
        # softplus(0.5413) = 1
        self.raw_scale = self.add_weight(shape=(k, dim), initializer=keras.initializers.Constant(0.5413),
                                         name="raw_scale")

    def params(self):
        return {"logits": tf.convert_to_tensor(self.logits), "loc": tf.convert_to_tensor(self.loc),
                "scale": tf.nn.softplus(self.raw_scale) + self.min_scale}


class VampPrior(_MixturePriorBase):
    """p(z) = (1/K) sum_k q(z | u_k) (Tomczak & Welling 2018), with K pseudo-inputs u_k learned.

    `encode(u)` returns the posterior's {"loc", "scale"} for a batch of inputs: the components
    are the model's own posteriors, so the prior follows the encoder as it trains. Pseudo-inputs
    are sigmoid(raw) (they stay valid pixel intensities in (0, 1)), raw starting near -2 (the
    mean MNIST intensity, about 0.13) with N(0, 0.1) noise.
    """

    def __init__(self, latent_dim, num_components, input_dim, encode, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.num_components = num_components
        self.input_dim = input_dim
        self.encode = encode

    def build(self, input_shape=None):
        self.raw_pseudo_inputs = self.add_weight(
            shape=(self.num_components, self.input_dim),
            initializer=keras.initializers.RandomNormal(-2.0, 0.1), name="raw_pseudo_inputs")

    def pseudo_inputs(self):
        return tf.sigmoid(self.raw_pseudo_inputs)

    def initialize_from_data(self, x):
        """Starts the pseudo-inputs at K training examples x [K, D] (values in [0, 1], clipped
        to [0.01, 0.99]). From the default start all components are alike, and without KL
        warm-up (which Tomczak & Welling use) the posterior collapses onto them: on MNIST the
        10-latent VAE had KL 0.5 nats after 3 epochs."""
        x = tf.convert_to_tensor(x, tf.float32)
        if tuple(x.shape) != (self.num_components, self.input_dim):
            raise ValueError(f"initialize_from_data needs [{self.num_components}, {self.input_dim}] "
                             f"examples. Received shape {tuple(x.shape)}")
        p = tf.clip_by_value(x, 0.01, 0.99)
        self.raw_pseudo_inputs.assign(tf.math.log(p) - tf.math.log1p(-p))

    def params(self):
        posterior = self.encode(self.pseudo_inputs())
        return {"logits": tf.zeros([self.num_components]), "loc": posterior["loc"],
                "scale": posterior["scale"]}


def make_prior(kind, latent_dim, num_components=500, input_dim=None, encode=None,
               name="prior"):
    """The prior layer for `kind` in PRIORS (see the module docstring)."""
    if kind not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}. Received: prior={kind!r}")
    if kind != "standard_normal" and (not isinstance(num_components, int) or num_components < 1):
        raise ValueError(f"prior_components must be a positive integer. "
                         f"Received: prior_components={num_components!r}")
    if kind == "mixture":
        return MixturePrior(latent_dim, num_components, name=name)
    if kind == "vamp":
        return VampPrior(latent_dim, num_components, input_dim, encode, name=name)
    return StandardNormalPrior(latent_dim, name=name)


def check_free_bits(free_bits, kind):
    """Free bits floor each latent unit's KL: only a prior that factorizes over units has one."""
    if free_bits > 0 and kind != "standard_normal":
        raise ValueError("free_bits floors the KL of each latent unit, which needs a prior that "
                         "factorizes over units (prior='standard_normal'). "
                         f"Received: free_bits={free_bits}, prior={kind!r}")
