"""The Bernoulli family of independent binary units, parameterized by logits."""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators
from tfvae.families.base import Family, register_family

tfd = tfp.distributions


# Registered as "tfvae>BernoulliFamily": "tfvae>Bernoulli" may name a distribution layer.
@keras.saving.register_keras_serializable(package="tfvae", name="BernoulliFamily")
@register_family("bernoulli")
class Bernoulli(Family):
    """Independent Bernoulli(sigmoid(logits)) units as an exponential family.

    T(x) = x, eta = logits l, A(eta) = log(1 + e^l) = softplus(l), h(x) = 1, so
    log p(x) = x l - softplus(l): one transcendental per unit (log sigmoid(l) = l - softplus(l),
    log(1 - sigmoid(l)) = -softplus(l)). Parameters {"logits", "probs"}; raw outputs are the
    logits (`raw_size` = 1).

    Sample estimators: "straight_through" (the hard draw, d x / d p = 1 backward; Bengio,
    Leonard & Courville 2013), "score_function" (the hard draw without gradient, for
    REINFORCE), "relaxed" (the Concrete draw sigmoid((l + log u - log(1 - u)) / temperature);
    Maddison, Mnih & Teh 2017).

    Args:
        temperature: of the relaxed estimator (> 0).
    """

    param_names = ("logits", "probs")
    raw_size = 1
    estimators = ("straight_through", "score_function", "relaxed")
    _config_names = ("temperature",)

    def __init__(self, temperature=0.5):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature!r}")
        self.temperature = temperature

    def params_from_raw(self, raw):
        return {"logits": raw, "probs": tf.sigmoid(raw)}

    def natural_params(self, params):
        return {"logits": params["logits"]}

    def from_natural_params(self, natural):
        return self.params_from_raw(natural["logits"])

    def log_normalizer(self, natural):
        return tf.nn.softplus(natural["logits"])

    def log_base_measure(self, x):
        return tf.zeros_like(x)

    def sufficient_statistics(self, x):
        return {"logits": x}

    def mean(self, params):
        return params["probs"]

    def sample(self, params, seed, estimator="straight_through", num_samples=None):
        """A float32 {0, 1} draw (or a relaxed one in (0, 1)), [num_samples, *batch, *event] or
        [*batch, *event] when `num_samples` is None, stateless from `seed`."""
        estimator = self._check_estimator(estimator)
        # the relaxed draw needs the logits, the hard draws the probabilities (only)
        value = params["logits"] if estimator == "relaxed" else params["probs"]
        value, shape = _rows(value, num_samples)
        if estimator == "relaxed":
            draw = tf.sigmoid(estimators.relaxed_bernoulli_logits(value, seed, self.temperature))
        else:
            draw = estimators.straight_through_bernoulli(value, seed)
            draw = tf.stop_gradient(draw) if estimator == "score_function" else draw
        return tf.reshape(draw, shape)

    def draw(self, params, seed, estimator=None, num_samples=None):
        """As `Family.draw`; a relaxed draw's point is its logit y, where its density (the
        logistic's, `estimators.logistic_log_prob`) stays finite at low temperature."""
        if self._check_estimator(estimator) != "relaxed":
            return super().draw(params, seed, estimator, num_samples)
        logits, shape = _rows(params["logits"], num_samples)
        point = tf.reshape(estimators.relaxed_bernoulli_logits(logits, seed, self.temperature), shape)
        return tf.sigmoid(point), point

    def draw_unit_log_prob(self, params, point, estimator=None):
        if self._check_estimator(estimator) != "relaxed":
            return super().draw_unit_log_prob(params, point, estimator)
        return estimators.logistic_log_prob(point, params["logits"], self.temperature)

    def standard_params(self, shape):
        return self.params_from_raw(tf.zeros(shape))

    def unit_distribution(self, params):
        return tfd.Bernoulli(logits=params["logits"], dtype=tf.float32)


def _rows(value, num_samples):
    """`value` repeated `num_samples` times along its first axis, k-major ([k * B, ...], the
    layout in which every binary draw of tfvae has been made: the same uniforms, also under
    XLA, whose random bits depend on the shape drawn), and the shape to return."""
    if num_samples is None:
        return value, tf.shape(value)
    shape = tf.concat([[num_samples], tf.shape(value)], 0)
    tiled = tf.tile(value, tf.concat([[num_samples], tf.ones_like(tf.shape(value)[1:])], 0))
    return tiled, shape
