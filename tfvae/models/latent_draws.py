"""One layer of latents drawn with a chosen gradient estimator: the draw, its log-ratio, the
closed-form or Monte Carlo rate and the score function's baselines, written once for every
model with such a layer (`VAE(latent="bernoulli")`, `HarmoniumVAE`).

`LatentDraws` is a mixin for a `BaseVAE` subclass that has `posterior_layer` (a distribution
layer of `latent_dim` units), `likelihood_layer`, `encode`, `prior_log_prob(z)`, the string
attributes `latent` ("bernoulli" or "gaussian"), `estimator`, `baseline`, and the floats
`baseline_decay`, `temperature`. Its variables are `signal_mean` (the running mean of the
learning signal) and `baseline_net` (the learned linear baseline b(x), or None), created by
`_make_score_function_state`.
"""
import keras
import tensorflow as tf

from tfvae import distributions, estimators, objectives

ESTIMATORS = {"bernoulli": ("straight_through", "score_function", "relaxed"),
              "gaussian": ("pathwise", "score_function")}
BASELINES = ("none", "moving_average", "learned")
MAX_ENUMERATED_UNITS = 20  # binary latent layers up to this width can be summed over (2^m states)


def binary_states(num_units, start=0, stop=None):
    """Rows start..stop-1 of the 2^m binary states, [n, m] float32 (unit j = bit j of the row)."""
    stop = 2 ** num_units if stop is None else stop
    index = tf.range(start, stop, dtype=tf.int32)[:, None]
    return tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(index, tf.range(num_units)), 1),
                   tf.float32)


def check_estimator(latent, estimator, baseline, temperature, num_samples=1):
    """The estimator (None: the family's default) after checking it and its options."""
    estimator = estimator or ESTIMATORS[latent][0]
    if estimator not in ESTIMATORS[latent]:
        raise ValueError(f"estimator must be one of {ESTIMATORS[latent]} for {latent} latents. "
                         f"Received: estimator={estimator!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}. Received: baseline={baseline!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature!r}")
    if estimator == "score_function" and num_samples > 1:
        raise ValueError("estimator='score_function' trains the ELBO (num_samples=1); the "
                         "IWAE bound needs a multi-sample estimator such as VIMCO.")
    return estimator


class LatentDraws:
    """Mixin: the draw of one latent layer and the objective's terms around it (see module)."""

    def _make_score_function_state(self, create=True):
        """`signal_mean` (and `baseline_net` for baseline='learned'); None when not `create`."""
        self.signal_mean = (keras.Variable(0.0, trainable=False, dtype="float32", name="signal_mean",
                                           aggregation="mean") if create else None)
        self.baseline_net = (keras.layers.Dense(1, name="baseline")
                             if create and self.baseline == "learned" else None)

    def _build_score_function_state(self):
        if self.baseline_net is not None:
            self.baseline_net.build((None, self.input_dim))

    def _factorized_prior(self, num_rows):
        """The parameters of the factorized prior, Bernoulli(1/2) or N(0, I), [num_rows, m]."""
        zeros = tf.zeros([num_rows, self.latent_dim])
        if self.latent == "bernoulli":
            return self.posterior_layer.params_from_raw(zeros)
        return {"loc": zeros, "scale": tf.ones_like(zeros)}

    def _factorized_prior_log_prob(self, z):
        return self.posterior_layer.log_prob(self._factorized_prior(tf.shape(z)[0]), z)

    def _draw(self, q, seed, relaxed, per_unit=False):
        """z for the decoder, and the log-ratio log q(z) - log p(z) at it, per row (and per
        unit, for a factorized prior, when `per_unit`; else None).

        Relaxed draws live in logit space (their density is the logistic's, with the prior
        Bernoulli(1/2) relaxed at the same temperature); all others are exact draws."""
        if relaxed:
            y = estimators.relaxed_bernoulli_logits(q["logits"], seed, self.temperature)
            unit_ratio = (estimators.logistic_log_prob(y, q["logits"], self.temperature)
                          - estimators.logistic_log_prob(y, 0.0, self.temperature))
            return tf.sigmoid(y), tf.reduce_sum(unit_ratio, -1), unit_ratio if per_unit else None
        z = self.posterior_layer.sample(q, seed)
        if self.estimator == "score_function":
            z = tf.stop_gradient(z)
        unit_ratio = None
        if per_unit:
            family = self.posterior_layer.family
            prior = self._factorized_prior(tf.shape(z)[0])
            unit_ratio = family.log_prob(q, z, 0) - family.log_prob(prior, z, 0)
        return z, self.posterior_layer.log_prob(q, z) - self.prior_log_prob(z), unit_ratio

    def _draw_terms(self, x, num_samples, seed, training=False, posterior_params=None,
                    factorized=True):
        """`_forward`'s terms for one latent layer with a `factorized` prior (closed-form KL
        when `analytic_kl` and not relaxed) or not (the Monte Carlo log q - log p)."""
        k = num_samples
        q = self.encode(x, training) if posterior_params is None else posterior_params
        q = {name: tf.tile(v, [k, 1]) for name, v in q.items()}  # rows: k-major, k * B
        relaxed = self.estimator == "relaxed" and training
        per_unit = factorized and self.free_bits > 0
        z, log_ratio, unit_ratio = self._draw(q, seed, relaxed, per_unit)
        log_likelihood = self.likelihood_layer.log_prob(self._decode_samples(
            tf.reshape(z, [k, -1, self.latent_dim]), training), x)
        log_ratio = tf.reshape(log_ratio, [k, -1])
        rate = log_ratio
        if per_unit:
            rate_per_unit = tf.reshape(unit_ratio, [k, -1, self.latent_dim])
        if self.analytic_kl and factorized and not relaxed:
            prior = self.posterior_layer.distribution(self._factorized_prior(tf.shape(x)[0]))
            q_first = {name: v[:tf.shape(x)[0]] for name, v in q.items()}
            q_first = self.posterior_layer.distribution(q_first)
            rate = distributions.kl_divergence(q_first, prior)[None]
            if per_unit:
                rate_per_unit = distributions.kl_divergence(q_first.distribution,
                                                            prior.distribution)[None]
        penalized_rate = objectives.free_bits_rate(rate_per_unit, self.free_bits) if per_unit else rate
        terms = dict(log_likelihood=log_likelihood, log_weight=log_likelihood - log_ratio,
                     rate=rate, penalized_rate=penalized_rate)
        if self.estimator == "score_function" and k == 1:
            terms["log_likelihood"] += self._score_function_term(x, q, z, log_likelihood,
                                                                 penalized_rate, training)
        return terms

    def _score_function_term(self, x, q, z, log_likelihood, rate, training):
        """Zero-valued; its gradient is the REINFORCE estimate for the draw z (see estimators).

        The learning signal f is the part of the objective that depends on z through the draw:
        log p(x|z), minus the weighted log-ratio when the KL is sampled."""
        signal = log_likelihood[0]
        if self.kl_estimate == "monte_carlo":
            signal = signal - self.beta * self.kl_warmup * rate[0]
        signal = tf.stop_gradient(signal)
        baseline = 0.0
        if self.baseline != "none" and self.signal_mean is None:
            raise ValueError(
                f"baseline={self.baseline!r} needs the score function's state (signal_mean, "
                "baseline_net), which a model has only when built with estimator='score_function' "
                "(so that other models keep their variables). Build the model with "
                "estimator='score_function', or use baseline='none'.")
        if self.baseline != "none":
            # Read before the update, so the baseline does not depend on this batch's draws.
            baseline = tf.identity(self.signal_mean.value)
            if training:
                decay = self.baseline_decay
                self.signal_mean.assign(decay * self.signal_mean + (1 - decay) * tf.reduce_mean(signal))
        term = 0.0
        if self.baseline_net is not None:
            learned = self.baseline_net(x)[:, 0]
            residual = signal - baseline - learned
            # Least squares for b(x), as a zero-valued term with the gradient of -residual^2.
            term = -(tf.square(residual) - tf.stop_gradient(tf.square(residual)))
            baseline = baseline + learned
        log_q = self.posterior_layer.log_prob(q, z)
        return term + estimators.score_function_surrogate(log_q, signal, baseline)[None]
