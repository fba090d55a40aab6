"""The diagonal Gaussian family N(loc, diag(scale^2)), unit by unit."""
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators
from tfvae.families.base import Family, register_family

tfd = tfp.distributions

SCALE_ACTIVATIONS = ("softplus", "exp")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# Registered as "tfvae>GaussianFamily": "tfvae>Gaussian" may name a distribution layer.
@keras.saving.register_keras_serializable(package="tfvae", name="GaussianFamily")
@register_family("gaussian")
class Gaussian(Family):
    """Independent N(loc, scale^2) units as an exponential family.

    T(x) = (x, x^2), eta = (loc / scale^2, -1 / (2 scale^2)),
    A(eta) = -eta_1^2 / (4 eta_2) - log(-2 eta_2) / 2 = loc^2 / (2 scale^2) + log scale,
    h(x) = 1 / sqrt(2 pi) (e.g. Wainwright & Jordan 2008, example 3.3).

    Raw network outputs are [loc, raw scale] blocks on the last axis (`raw_size` = 2), with
    scale = softplus(raw) + min_scale (or exp(raw) + min_scale). Samples are pathwise:
    z = loc + scale * eps (Kingma & Welling 2014, section 2.4).

    Args:
        scale_activation: "softplus" or "exp", the map from the raw scale to a positive one.
        min_scale: a floor added to the scale (>= 0), keeping log-densities finite.
    """

    param_names = ("loc", "scale")
    raw_size = 2
    estimators = ("pathwise",)
    _config_names = ("scale_activation", "min_scale")

    def __init__(self, scale_activation="softplus", min_scale=1e-4):
        if scale_activation not in SCALE_ACTIVATIONS:
            raise ValueError(f"scale_activation must be one of {SCALE_ACTIVATIONS}. "
                             f"Received: scale_activation={scale_activation!r}")
        if not min_scale >= 0:
            raise ValueError(f"min_scale must be >= 0. Received: min_scale={min_scale!r}")
        self.scale_activation = scale_activation
        self.min_scale = min_scale

    def scale_from_raw(self, raw):
        """softplus(raw) + min_scale or exp(raw) + min_scale: a scale bounded away from zero."""
        positive = tf.nn.softplus(raw) if self.scale_activation == "softplus" else tf.exp(raw)
        return positive + self.min_scale

    def params_from_raw(self, raw):
        loc, raw_scale = tf.split(raw, 2, axis=-1)
        return {"loc": loc, "scale": self.scale_from_raw(raw_scale)}

    def natural_params(self, params):
        """{"precision_loc": loc / scale^2, "neg_half_precision": -1 / (2 scale^2)}."""
        precision = 1.0 / tf.square(params["scale"])
        return {"precision_loc": precision * params["loc"], "neg_half_precision": -0.5 * precision}

    def from_natural_params(self, natural):
        """scale = (-2 eta_2)^(-1/2), loc = eta_1 / (-2 eta_2)."""
        precision = -2.0 * natural["neg_half_precision"]
        return {"loc": natural["precision_loc"] / precision, "scale": tf.math.rsqrt(precision)}

    def log_normalizer(self, natural):
        eta_1, eta_2 = natural["precision_loc"], natural["neg_half_precision"]
        return -tf.square(eta_1) / (4.0 * eta_2) - 0.5 * tf.math.log(-2.0 * eta_2)

    def log_base_measure(self, x):
        return tf.fill(tf.shape(x), tf.constant(-_LOG_SQRT_2PI, x.dtype))

    def sufficient_statistics(self, x):
        return {"precision_loc": x, "neg_half_precision": tf.square(x)}

    def unit_log_prob(self, params, x):
        """-(x - loc)^2 / (2 scale^2) - log scale - log(2 pi) / 2: the exponential-family form
        <T, eta> - A + log h regrouped, since its terms x loc / s^2, x^2 / (2 s^2) and
        loc^2 / (2 s^2) cancel catastrophically in float32 when scale is small. Computed as
        TFP's Normal.log_prob does, so both give the same float32 numbers."""
        params, x = self._as_tensors(params, x)
        loc, scale = params["loc"], params["scale"]
        return (-0.5 * tf.math.squared_difference(x / scale, loc / scale)
                - (_LOG_SQRT_2PI + tf.math.log(scale)))

    def mean(self, params):
        return params["loc"]

    def sample(self, params, seed, estimator="pathwise", num_samples=None):
        """z = loc + scale * eps: [num_samples, *batch, *event] (or [*batch, *event] when None)."""
        self._check_estimator(estimator)
        return estimators.pathwise_gaussian(params["loc"], params["scale"], seed, num_samples)

    matrix_dtype = tf.float64  # the expanded (x - m)^2 / s^2 cancels

    def free_parameters(self, params):
        """{"loc", "log_scale"}."""
        return {"loc": params["loc"], "log_scale": tf.math.log(params["scale"])}

    def from_free_parameters(self, free):
        return {"loc": free["loc"], "scale": tf.exp(free["log_scale"])}

    def standard_params(self, shape):
        zeros = tf.zeros(shape)
        return {"loc": zeros, "scale": tf.ones_like(zeros)}

    def unit_distribution(self, params):
        return tfd.Normal(params["loc"], params["scale"])
