"""The exponential-family harmonium VAE and the binary-latent VAE.

With `tie_weights=True` (Shekhovtsov, Schlesinger & Flach, ICLR 2022, "VAE Approximation Error:
ELBO and Exponential Families"), encoder and decoder share W:
  p(x | z) has natural parameters W z + u,  q(z | x) has natural parameters W^T x + v,
  p(z) = h'(z) exp(<v, z> + A(W z + u)) / Z   (the harmonium's marginal over z),
where A is the visible family's log-normalizer (sum softplus for Bernoulli x; |eta|^2 / 2 for
unit-variance Gaussian x, with base measure N(x; 0, I)). The joint is the harmonium
h(x) h'(z) exp(<x, W z> + <u, x> + <v, z>) / Z, so q(z | x) IS the exact posterior and the
ELBO equals log p(x) for every sample. Binary x and z make it an RBM. Z is a sum over the
2^m latent states: computed exactly by enumeration, so tied models need binary latents and
at most `MAX_ENUMERATED_UNITS` of them.

With `tie_weights=False` encoder and decoder are free MLPs and the prior is factorized
(Bernoulli(1/2) or N(0, I)): the ordinary binary-latent (or Gaussian) VAE, the same model as
`tfvae.VAE(latent="bernoulli")`. Both draw their latents, and build the score function's
baselines, with `tfvae.models.latent_draws.LatentDraws`.
"""
import math

import keras
import tensorflow as tf

from tfvae import distributions, estimators
from tfvae.models.base import BaseVAE, make_likelihood, standardize_input_shape
from tfvae.models.latent_draws import (BASELINES, ESTIMATORS, MAX_ENUMERATED_UNITS,  # noqa: F401
                                       LatentDraws, binary_states, check_estimator)
from tfvae.models.vae import mlp

LATENT_FAMILIES = ("bernoulli", "gaussian")


@keras.saving.register_keras_serializable(package="tfvae")
class HarmoniumVAE(LatentDraws, BaseVAE):
    """Harmonium VAE (tied) or binary-latent VAE (untied); see the module docstring.

    Args:
        input_shape: (D,), the shape of one example (flat; `input_dim=D` is the old spelling).
        latent_dim: m latent units (tied: at most 20, the prior's normalizer enumerates 2^m).
        latent: latent family, "bernoulli" or "gaussian" (untied only).
        tie_weights: the consistent-set harmonium (True) or free networks (False).
        likelihood: the visible family, "bernoulli" or "gaussian" (tied: unit variance).
        hidden, activation: the untied encoder's MLP (the decoder mirrors it).
        estimator: gradient estimator of the latent draw: "straight_through" (default for
            Bernoulli), "score_function", "relaxed" (untied Bernoulli), "pathwise" (Gaussian).
        baseline: score function only: "none", "moving_average" (of the learning signal) or
            "learned" (moving average plus a linear function of x fit by least squares;
            Mnih & Gregor 2014).
        baseline_decay: the moving average's decay per training step.
        temperature: of the relaxed estimator.
        Other arguments as in `tfvae.VAE`. With a non-factorized prior (tied) the KL is always
        the Monte Carlo estimate log q(z|x) - log p(z).

    Example:
    >>> model = tfvae.HarmoniumVAE(input_shape=(784,), latent_dim=16)          # an RBM, as a VAE
    >>> model = tfvae.HarmoniumVAE(input_shape=(784,), latent_dim=200, tie_weights=False,
    ...                            hidden=(512, 256))                      # binary-latent VAE
    """

    def __init__(self, input_shape=None, latent_dim=16, latent="bernoulli", tie_weights=True,
                 hidden=(200, 200), activation="tanh", estimator=None, baseline="moving_average",
                 baseline_decay=0.99, temperature=0.5, likelihood="bernoulli", likelihood_scale=None,
                 input_dim=None, **kwargs):
        input_shape = standardize_input_shape(input_shape, input_dim)
        if len(input_shape) != 1:
            raise ValueError("HarmoniumVAE takes flat examples (its W pairs every visible unit "
                             "with every latent one): reshape x to [batch, D] and pass "
                             f"input_shape=(D,). Received: input_shape={input_shape!r}")
        if latent not in LATENT_FAMILIES:
            raise ValueError(f"latent must be one of {LATENT_FAMILIES}. Received: latent={latent!r}")
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer. Received: latent_dim={latent_dim!r}")
        estimator = check_estimator(latent, estimator, baseline, temperature,
                                    kwargs.get("num_samples", 1))
        if tie_weights:
            if latent != "bernoulli" or latent_dim > MAX_ENUMERATED_UNITS:
                raise ValueError(
                    "tie_weights=True computes the prior's normalizer by summing over the 2^m latent "
                    f"states: it needs latent='bernoulli' and latent_dim <= {MAX_ENUMERATED_UNITS}. "
                    f"Received: latent={latent!r}, latent_dim={latent_dim}. Use tie_weights=False "
                    "(a free encoder and decoder with a factorized prior) for larger or Gaussian latents.")
            if estimator == "relaxed":
                raise ValueError("estimator='relaxed' needs a factorized prior (tie_weights=False): "
                                 "the harmonium's prior has no relaxed density.")
            if likelihood_scale not in (None, 1.0):
                raise ValueError("A tied Gaussian visible layer has unit variance (its natural "
                                 f"parameter is the mean). Received: likelihood_scale={likelihood_scale!r}")
            likelihood_scale = 1.0 if likelihood == "gaussian" else None
        if kwargs.get("free_bits", 0.0):
            raise ValueError(
                "HarmoniumVAE does not apply free bits: the tied harmonium's prior does not "
                "factorize over units, so there is no per-unit KL to floor, and the untied model "
                "does not implement it. Use tfvae.VAE(free_bits=...) for Gaussian latents, or "
                f"free_bits=0. Received: free_bits={kwargs['free_bits']!r}")
        self.latent_dim = latent_dim
        self.latent = latent
        self.tie_weights = bool(tie_weights)
        super().__init__(input_shape=input_shape, likelihood=likelihood,
                         likelihood_scale=likelihood_scale, **kwargs)
        self.likelihood_layer = make_likelihood(likelihood, input_shape, likelihood_scale,
                                                project=not self.tie_weights)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.estimator = estimator
        self.baseline = baseline
        self.baseline_decay = float(baseline_decay)
        self.temperature = float(temperature)
        posterior_class = distributions.Bernoulli if latent == "bernoulli" else distributions.DiagonalGaussian
        self.posterior_layer = posterior_class(latent_dim, project=not self.tie_weights, name="posterior")
        if not self.tie_weights:
            self.encoder = mlp(self.hidden, activation, "encoder")
            self.decoder = mlp(tuple(reversed(self.hidden)), activation, "decoder")
        # The score function's baselines: a running mean of the signal, and a linear b(x).
        self._make_score_function_state()

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        d, m = self.input_dim, self.latent_dim
        if self.tie_weights:
            self.W = self.add_weight(shape=(d, m), name="W",
                                     initializer=keras.initializers.RandomNormal(stddev=0.01))
            self.u = self.add_weight(shape=(d,), name="u", initializer="zeros")
            self.v = self.add_weight(shape=(m,), name="v", initializer="zeros")
            self.posterior_layer.build((None, m))
            self.likelihood_layer.build((None, d))
        else:
            self.encoder.build((None, d))
            self.posterior_layer.build(self.encoder.compute_output_shape((None, d)))
            self.decoder.build((None, m))
            self.likelihood_layer.build(self.decoder.compute_output_shape((None, m)))
        self._build_score_function_state()
        self.built = True

    # -- the codecs -----------------------------------------------------------------------------
    def encode(self, x, training=False):
        """q(z|x)'s parameters: {"logits", "probs"} (binary) or {"loc", "scale"} (Gaussian)."""
        x = self._check_input(x)
        if self.tie_weights:
            return self.posterior_layer(tf.matmul(x, self.W) + self.v)
        return self.posterior_layer(self.encoder(x, training=training))

    def decode(self, z, training=False):
        """p(x|z)'s parameters, [batch, input_dim]."""
        z = self._check_latent(z, self.latent_dim)
        if self.tie_weights:
            return self.likelihood_layer(tf.matmul(z, self.W, transpose_b=True) + self.u)
        return self.likelihood_layer(self.decoder(z, training=training))

    def reconstruct(self, x):
        return self.likelihood_layer.mean(self.decode(self.posterior_layer.mean(self.encode(x))))

    def latent_means(self, x):
        return [self.posterior_layer.mean(self.encode(x))]

    @property
    def capabilities(self):
        if self.latent == "bernoulli" and self.latent_dim <= MAX_ENUMERATED_UNITS:
            return frozenset({"enumerable_latents"})
        return frozenset({"gaussian_posterior"}) if self.latent == "gaussian" else frozenset()

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def encoder_weights(self):
        """The variables q(z|x) depends on (tied: W and v; W is the decoder's too)."""
        if self.tie_weights:
            return [self.W, self.v]
        return self.encoder.trainable_weights + self.posterior_layer.trainable_weights

    # -- the prior ------------------------------------------------------------------------------
    def _visible_log_normalizer(self, eta):
        """A(eta) of the visible family, summed over units: sum softplus, or |eta|^2 / 2."""
        if self.likelihood == "bernoulli":
            return tf.reduce_sum(tf.nn.softplus(eta), axis=-1)
        return 0.5 * tf.reduce_sum(tf.square(eta), axis=-1)

    def _unnormalized_log_prior(self, z):
        """Tied: <v, z> + A(W z + u), the log of the harmonium's marginal up to log Z."""
        return (tf.linalg.matvec(z, self.v)
                + self._visible_log_normalizer(tf.matmul(z, self.W, transpose_b=True) + self.u))

    def state_log_potentials(self, max_elements=2 ** 25):
        """Tied: <v, z> + A(W z + u) for all 2^m states z, [2^m] in `binary_states` order.

        The units split into a low and a high half, z = (a, b), so W z + u = (W_a a + u) + W_b b:
        two small products and one broadcast sum, which XLA fuses with A and its sum over the
        visible units (no [2^m, D] matrix of natural parameters is written). The high half is
        taken in chunks of at most `max_elements` (state, unit) pairs."""
        m_low = self.latent_dim // 2
        low, high = binary_states(m_low), binary_states(self.latent_dim - m_low)
        eta_low = tf.matmul(low, self.W[:, :m_low], transpose_b=True) + self.u       # [A, D]
        eta_high = tf.matmul(high, self.W[:, m_low:], transpose_b=True)              # [B, D]
        v_low, v_high = tf.linalg.matvec(low, self.v[:m_low]), tf.linalg.matvec(high, self.v[m_low:])
        chunk = max(1, max_elements // (2 ** m_low * self.input_dim))
        rows = [self._visible_log_normalizer(eta_high[i:i + chunk, None, :] + eta_low[None])
                for i in range(0, 2 ** (self.latent_dim - m_low), chunk)]
        potentials = tf.concat(rows, 0) + v_high[:, None] + v_low[None, :]          # [B, A]
        return tf.reshape(potentials, [-1])

    def log_partition(self):
        """Tied: log Z = log sum_z exp(<v, z> + A(W z + u)) over all 2^m binary states."""
        self._require_tied("log_partition")
        self._ensure_built()
        return tf.reduce_logsumexp(self.state_log_potentials())

    def prior_log_prob(self, z, log_partition=None):
        """log p(z), [batch]: the harmonium marginal (tied) or the factorized prior."""
        if not self.tie_weights:
            return self._factorized_prior_log_prob(z)
        if log_partition is None:
            log_partition = self.log_partition()
        return self._unnormalized_log_prior(z) - log_partition

    def prior_log_normalizer(self):
        """Tied: log Z (`log_partition`); untied: None (the factorized prior is normalized)."""
        return self.log_partition() if self.tie_weights else None

    def prior_sample(self, num_samples, seed):
        """z ~ p(z): a categorical draw over the 2^m states (tied), or the factorized prior."""
        self._ensure_built()
        if not self.tie_weights:
            return self.posterior_layer.sample(self._factorized_prior(num_samples), seed)
        index = tf.random.stateless_categorical(self.state_log_potentials()[None], num_samples,
                                                estimators.seed_pair(seed))[0]
        return tf.gather(binary_states(self.latent_dim), index)

    def log_marginal(self, x):
        """Tied: the exact log p(x) = log h(x) + <u, x> + sum_j softplus((W^T x + v)_j) - log Z."""
        self._require_tied("log_marginal")
        x = self._check_input(x)
        log_h = 0.0
        if self.likelihood == "gaussian":
            log_h = -0.5 * tf.reduce_sum(tf.square(x), -1) - 0.5 * self.input_dim * math.log(2 * math.pi)
        return (log_h + tf.linalg.matvec(x, self.u)
                + tf.reduce_sum(tf.nn.softplus(tf.matmul(x, self.W) + self.v), -1) - self.log_partition())

    def _require_tied(self, method):
        if not self.tie_weights:
            raise ValueError(
                f"HarmoniumVAE.{method} is the tied harmonium's exact computation (enumerating the "
                "2^m latent states of the prior its shared W defines); this model has "
                "tie_weights=False, whose log p(x) has no closed form: estimate it with "
                "model.log_prob(x, num_samples=5000) or tfvae.evaluation.iwae_nll.")

    # -- the objective --------------------------------------------------------------------------
    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        # The draw, rate and score function are LatentDraws' (shared with VAE(latent="bernoulli")).
        return self._draw_terms(x, num_samples, seed, training, posterior_params,
                                factorized=not self.tie_weights)

    @property
    def kl_estimate(self):
        sampled = self.tie_weights or not self.analytic_kl or self.estimator == "relaxed"
        return "monte_carlo" if sampled else "closed_form"

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, latent=self.latent, tie_weights=self.tie_weights,
                      hidden=self.hidden, activation=self.activation, estimator=self.estimator,
                      baseline=self.baseline, baseline_decay=self.baseline_decay,
                      temperature=self.temperature)
        return config
