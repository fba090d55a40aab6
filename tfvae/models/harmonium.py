"""The exponential-family harmonium VAE (Shekhovtsov, Schlesinger & Flach, ICLR 2022, "VAE
Approximation Error: ELBO and Exponential Families").

Encoder and decoder share W:
  p(x | z) has natural parameters W z + u,  q(z | x) has natural parameters W^T x + v,
  p(z) = h'(z) exp(<v, z> + A(W z + u)) / Z   (the harmonium's marginal over z),
where A is the visible family's log-normalizer (sum softplus for Bernoulli x; |eta|^2 / 2 for
unit-variance Gaussian x, with base measure N(x; 0, I)). The joint is the harmonium
h(x) h'(z) exp(<x, W z> + <u, x> + <v, z>) / Z, so q(z | x) IS the exact posterior and the
ELBO equals log p(x) for every sample. Binary x and z make it an RBM. Z is a sum over the
2^m latent states: computed exactly by enumeration, so the latents are binary, at most
`MAX_ENUMERATED_UNITS` of them.

The untied model of earlier versions (`HarmoniumVAE(tie_weights=False)`: free networks and a
factorized prior) is `tfvae.VAE(latent="bernoulli")`; its saved configs load as that.
"""
import math

import keras
import tensorflow as tf

from tfvae import estimators, latents
from tfvae.models.base import (MAX_ENUMERATED_UNITS, BaseVAE, check_num_samples, likelihood_part,
                               standardize_input_shape)

@keras.saving.register_keras_serializable(package="tfvae")
class HarmoniumVAE(BaseVAE):
    """Harmonium VAE: an RBM-like model trained as a VAE; see the module docstring.

    Args:
        input_shape: (D,), the shape of one example (flat; `input_dim=D` is the old spelling).
        latent_dim: m binary latent units, at most 20 (the prior's normalizer enumerates 2^m).
        likelihood: the visible family, "bernoulli" or "gaussian" (unit variance).
        estimator: gradient estimator of the latent draw: "straight_through" (default) or
            "score_function" (the harmonium's prior has no relaxed density).
        baseline, baseline_decay: the score function's (see `tfvae.latents`).
        Other arguments as in `tfvae.VAE`. The prior does not factorize: the KL is the Monte
        Carlo estimate log q(z|x) - log p(z).

    Example:
    >>> model = tfvae.HarmoniumVAE(input_shape=(784,), latent_dim=16)          # an RBM, as a VAE
    """

    def __init__(self, input_shape=None, latent_dim=16, latent="bernoulli", tie_weights=True,
                 estimator=None, baseline="moving_average", baseline_decay=0.99,
                 likelihood="bernoulli", likelihood_scale=None, input_dim=None, **kwargs):
        if not tie_weights:
            raise ValueError(
                "HarmoniumVAE is the tied model; the untied binary-latent VAE is "
                "tfvae.VAE(latent='bernoulli', ...) (free networks, prior Bernoulli(1/2)), and "
                "configs saved as HarmoniumVAE(tie_weights=False) load as that. "
                "Received: tie_weights=False")
        input_shape = standardize_input_shape(input_shape, input_dim)
        if len(input_shape) != 1:
            raise ValueError("HarmoniumVAE takes flat examples (its W pairs every visible unit "
                             "with every latent one): reshape x to [batch, D] and pass "
                             f"input_shape=(D,). Received: input_shape={input_shape!r}")
        if latent != "bernoulli" or not isinstance(latent_dim, int) or not 1 <= latent_dim <= MAX_ENUMERATED_UNITS:
            raise ValueError(
                "The harmonium's prior normalizer is a sum over the 2^m latent states: it needs "
                f"latent='bernoulli' and latent_dim <= {MAX_ENUMERATED_UNITS}. Received: "
                f"latent={latent!r}, latent_dim={latent_dim!r}. Use tfvae.VAE(latent='bernoulli') "
                "or tfvae.VAE(latent='gaussian') (free networks, a factorized prior) for larger "
                "or Gaussian latents.")
        if estimator == "relaxed":
            raise ValueError("estimator='relaxed' needs a factorized prior (tfvae.VAE("
                             "latent='bernoulli')): the harmonium's prior has no relaxed density.")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError("The harmonium's tied maths (its prior's normalizer, the exact "
                             "likelihood) is that of a Bernoulli or unit-variance Gaussian visible "
                             "layer: likelihood='bernoulli' or 'gaussian'. Use tfvae.VAE for "
                             f"other likelihoods. Received: likelihood={likelihood!r}")
        if likelihood_scale not in (None, 1.0):
            raise ValueError("A tied Gaussian visible layer has unit variance (its natural "
                             f"parameter is the mean). Received: likelihood_scale={likelihood_scale!r}")
        likelihood_scale = 1.0 if likelihood == "gaussian" else None
        if kwargs.get("free_bits", 0.0):
            raise ValueError(
                "HarmoniumVAE does not apply free bits: the harmonium's prior does not factorize "
                "over units, so there is no per-unit KL to floor. Use tfvae.VAE(free_bits=...) "
                f"or free_bits=0. Received: free_bits={kwargs['free_bits']!r}")
        super().__init__(input_shape=input_shape, likelihood=likelihood,
                         likelihood_scale=likelihood_scale, **kwargs)
        self.latent_dim = latent_dim
        self.latent = latent
        self.tie_weights = True
        self.likelihood_layer = likelihood_part(likelihood, likelihood_scale).bind(input_shape, project=False)
        # q(z|x)'s natural parameters are W^T x + v: no projection
        self.posterior_layer = latents.Latent(latent_dim, "bernoulli", estimator, baseline,
                                              baseline_decay, project=False, name="posterior")
        check_num_samples(self.posterior_layer, self.num_samples, self.iw_gradient)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        d, m = self.input_dim, self.latent_dim
        self.W = self.add_weight(shape=(d, m), name="W",
                                 initializer=keras.initializers.RandomNormal(stddev=0.01))
        self.u = self.add_weight(shape=(d,), name="u", initializer="zeros")
        self.v = self.add_weight(shape=(m,), name="v", initializer="zeros")
        self.posterior_layer.build((None, m))
        self.posterior_layer.build_baseline((None, d))
        self.likelihood_layer.build((None, d))
        self.built = True

    def latent_layers(self):
        return [self.posterior_layer]

    # -- the codecs -----------------------------------------------------------------------------
    def encode(self, x, training=False):
        """q(z|x)'s parameters {"logits", "probs"}: logits W^T x + v."""
        x = self._check_input(x)
        return self.posterior_layer(tf.matmul(x, self.W) + self.v)

    def decode(self, z, training=False):
        """p(x|z)'s parameters, [batch, input_dim]: natural parameters W z + u."""
        z = self._check_latent(z, self.latent_dim)
        return self.likelihood_layer(tf.matmul(z, self.W, transpose_b=True) + self.u)

    def reconstruct(self, x):
        return self.likelihood_layer.mean(self.decode(self.posterior_layer.mean(self.encode(x))))

    capabilities = frozenset({"enumerable_latents"})

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def encoder_weights(self):
        """The variables q(z|x) depends on: W and v (W is the decoder's too)."""
        return [self.W, self.v]

    # -- the prior ------------------------------------------------------------------------------
    def _visible_log_normalizer(self, eta):
        """A(eta) of the visible family, summed over units: sum softplus, or |eta|^2 / 2."""
        if self.likelihood.kind == "bernoulli":
            return tf.reduce_sum(tf.nn.softplus(eta), axis=-1)
        return 0.5 * tf.reduce_sum(tf.square(eta), axis=-1)

    def _unnormalized_log_prior(self, z):
        """<v, z> + A(W z + u), the log of the harmonium's marginal up to log Z."""
        return (tf.linalg.matvec(z, self.v)
                + self._visible_log_normalizer(tf.matmul(z, self.W, transpose_b=True) + self.u))

    def state_log_potentials(self, max_elements=2 ** 25):
        """<v, z> + A(W z + u) for all 2^m states z, [2^m] in `binary_states` order.

        The units split into a low and a high half, z = (a, b), so W z + u = (W_a a + u) + W_b b:
        two small products and one broadcast sum, which XLA fuses with A and its sum over the
        visible units (no [2^m, D] matrix of natural parameters is written). The high half is
        taken in chunks of at most `max_elements` (state, unit) pairs."""
        m_low = self.latent_dim // 2
        low, high = latents.binary_states(m_low), latents.binary_states(self.latent_dim - m_low)
        eta_low = tf.matmul(low, self.W[:, :m_low], transpose_b=True) + self.u       # [A, D]
        eta_high = tf.matmul(high, self.W[:, m_low:], transpose_b=True)              # [B, D]
        v_low, v_high = tf.linalg.matvec(low, self.v[:m_low]), tf.linalg.matvec(high, self.v[m_low:])
        chunk = max(1, max_elements // (2 ** m_low * self.input_dim))
        rows = [self._visible_log_normalizer(eta_high[i:i + chunk, None, :] + eta_low[None])
                for i in range(0, 2 ** (self.latent_dim - m_low), chunk)]
        potentials = tf.concat(rows, 0) + v_high[:, None] + v_low[None, :]          # [B, A]
        return tf.reshape(potentials, [-1])

    def log_partition(self):
        """log Z = log sum_z exp(<v, z> + A(W z + u)) over all 2^m binary states."""
        self._ensure_built()
        return tf.reduce_logsumexp(self.state_log_potentials())

    def prior_log_prob(self, z, log_partition=None):
        """log p(z), [batch]: the harmonium's marginal."""
        if log_partition is None:
            log_partition = self.log_partition()
        return self._unnormalized_log_prior(z) - log_partition

    def prior_log_normalizer(self):
        """log Z (`log_partition`)."""
        return self.log_partition()

    def prior_sample(self, num_samples, seed):
        """z ~ p(z): a categorical draw over the 2^m states."""
        self._ensure_built()
        index = tf.random.stateless_categorical(self.state_log_potentials()[None], num_samples,
                                                estimators.seed_pair(seed))[0]
        return tf.gather(latents.binary_states(self.latent_dim), index)

    def log_marginal(self, x):
        """the exact log p(x) = log h(x) + <u, x> + sum_j softplus((W^T x + v)_j) - log Z."""
        x = self._check_input(x)
        log_h = 0.0
        if self.likelihood.kind == "gaussian":
            log_h = -0.5 * tf.reduce_sum(tf.square(x), -1) - 0.5 * self.input_dim * math.log(2 * math.pi)
        return (log_h + tf.linalg.matvec(x, self.u)
                + tf.reduce_sum(tf.nn.softplus(tf.matmul(x, self.W) + self.v), -1) - self.log_partition())

    # -- the objective --------------------------------------------------------------------------
    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        q = posterior_params or self.encode(x, training=training)
        return self._one_layer_terms(x, q, num_samples, seed, training,
                                     prior_log_prob=self.prior_log_prob)

    @property
    def kl_estimate(self):
        return "monte_carlo"

    def get_config(self):
        config = super().get_config()
        latent = self.posterior_layer
        config.update(latent_dim=self.latent_dim, latent=self.latent, tie_weights=True,
                      estimator=latent.estimator, baseline=latent.baseline,
                      baseline_decay=latent.baseline_decay)
        return config
