"""Keras 3 layers that map features to the parameters of TFP distributions, and the KL helper.

Layers return dicts of tensors (never `tfp.layers`, which only runs on Keras 2); each layer's
`distribution(params)` builds the matching `tfd` distribution over its event axes (any
event shape: `event_shape=(28, 28, 1)` as well as `(784,)`). Parameters are
cast to float32 so the distribution maths stays in float32 under mixed precision.
"""
import math
import numbers

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import estimators

tfd = tfp.distributions

SCALE_ACTIVATIONS = ("softplus", "exp")


def normalize_event_shape(event_shape):
    """`event_shape` as a tuple of positive ints; an int n means (n,)."""
    if isinstance(event_shape, numbers.Integral) and not isinstance(event_shape, bool):
        event_shape = (event_shape,)
    if (not isinstance(event_shape, (tuple, list)) or not event_shape
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
                       for n in event_shape)):
        raise ValueError("event_shape must be a positive integer or a non-empty tuple of positive "
                         "integers (`event_size=` is its old spelling). "
                         f"Received: event_shape={event_shape!r}")
    return tuple(int(n) for n in event_shape)


def event_axes(event_ndims):
    """The last `event_ndims` axes, as a list of negative indices for `tf.reduce_sum`."""
    return list(range(-event_ndims, 0))


class DistributionLayer(keras.layers.Layer):
    """Base: features -> a dict of parameters, each of shape [batch, *event_shape].

    With `project=True` the features (any rank >= 2, flattened to [batch, F]) go through a Dense
    layer named "projection" to `params_size` = `units_per_param` * prod(event_shape) numbers,
    read as [batch, units_per_param, *event_shape]: parameter j is slice j of axis 1 (for a flat
    event shape the first L numbers are the first parameter, the next L the second, as in
    `tf.split(raw, units_per_param, axis=-1)`).

    With `project=False` the features must already have shape
    [batch, *event_shape[:-1], units_per_param * event_shape[-1]] (e.g. the output of a
    convolutional decoder) and are split on their last axis without a projection.

    Args:
        event_shape: shape of one draw, a tuple of positive ints (an int n means (n,)).
            `event_size=n` (configs saved by earlier versions) is accepted as (n,).
        project: whether to apply the Dense projection.
    """

    units_per_param = 1  # network outputs per event unit and parameter set (2 for loc and scale)

    def __init__(self, event_shape=None, project=True, event_size=None, **kwargs):
        super().__init__(**kwargs)
        if event_size is not None:  # the old spelling, in configs saved by earlier versions
            if event_shape is not None:
                raise ValueError("Pass event_shape or its old spelling event_size, not both. "
                                 f"Received: event_shape={event_shape!r}, event_size={event_size!r}")
            event_shape = event_size
        self.event_shape = normalize_event_shape(event_shape)
        self.project = project
        self.projection = keras.layers.Dense(self.params_size, name="projection") if project else None

    @property
    def event_ndims(self):
        """Number of event axes, len(event_shape): log_prob sums over that many trailing axes."""
        return len(self.event_shape)

    @property
    def event_size(self):
        """Number of units in one event, prod(event_shape)."""
        return math.prod(self.event_shape)

    @property
    def params_size(self):
        """Number of network outputs the layer consumes per example."""
        return self.units_per_param * self.event_size

    def _raw_shape(self):
        """The shape [*event_shape[:-1], units_per_param * event_shape[-1]] of `params_from_raw`'s
        input per example (what project=False expects)."""
        return (*self.event_shape[:-1], self.units_per_param * self.event_shape[-1])

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.project:
            if len(input_shape) < 2 or any(n is None for n in input_shape[1:]):
                raise ValueError(f"{self.name}: the features need a batch axis and known feature "
                                 f"axes. Received: input_shape={input_shape}")
            self.projection.build((input_shape[0], math.prod(input_shape[1:])))
        else:
            expected = self._raw_shape()
            received = input_shape[1:]
            if len(received) != len(expected) or any(r is not None and r != e
                                                     for r, e in zip(received, expected)):
                raise ValueError(
                    f"{self.name}: with project=False the features need shape (batch, "
                    f"{', '.join(map(str, expected))}): event_shape {self.event_shape} with "
                    f"{self.units_per_param} x {self.event_shape[-1]} = {expected[-1]} columns on the "
                    f"last axis. Received: input_shape={input_shape}")

    def call(self, features):
        if not self.project:
            return self.params_from_raw(tf.cast(features, tf.float32))
        if len(features.shape) > 2:
            features = tf.reshape(features, [tf.shape(features)[0], -1])
        raw = tf.cast(self.projection(features), tf.float32)
        if self.event_ndims > 1:
            # [batch, units_per_param, *event_shape] -> the last-axis layout of params_from_raw
            pieces = tf.unstack(tf.reshape(raw, [-1, self.units_per_param, *self.event_shape]), axis=1)
            raw = tf.concat(pieces, axis=-1)
        return self.params_from_raw(raw)

    def params_from_raw(self, raw):
        """Parameters from raw network outputs [..., *event_shape[:-1], units_per_param * event_shape[-1]]."""
        raise NotImplementedError

    def mean(self, params):
        """E[x] under the distribution given by `params`."""
        raise NotImplementedError

    def log_prob(self, params, x):
        """log p(x) summed over the event axes; equal to `distribution(params).log_prob(x)`."""
        return self.distribution(params).log_prob(x)

    def natural_params(self, params):
        """The exponential family's natural parameters (a dict of tensors)."""
        raise NotImplementedError

    def from_natural_params(self, natural):
        raise NotImplementedError

    def combine(self, *params):
        """The normalized product of densities of this family: their natural parameters add.

        This is how evidence meets a prior in every hierarchical model of tfvae: precision
        weighting for Gaussians (Sonderby et al. 2016, eq. 17-18), added logits for Bernoulli.
        """
        naturals = [self.natural_params(p) for p in params]
        return self.from_natural_params({name: tf.add_n([n[name] for n in naturals])
                                         for name in naturals[0]})

    def _flat(self, tensor):
        """[..., *event_shape] -> [..., prod(event_shape)] (for the flat-only matrix forms)."""
        if self.event_ndims == 1:
            return tensor
        return tf.reshape(tensor, tf.concat([tf.shape(tensor)[:-self.event_ndims], [-1]], 0))

    def get_config(self):
        config = super().get_config()
        config.update(event_shape=self.event_shape, project=self.project)
        return config


def diagonal_gaussian(params, event_ndims=1):
    """tfd N(loc, diag(scale^2)) over the last `event_ndims` axes, from a {"loc", "scale"} dict."""
    return tfd.Independent(tfd.Normal(params["loc"], params["scale"]), event_ndims)


def standard_normal(event_size):
    """The N(0, I) prior over `event_size` units."""
    zeros = tf.zeros([event_size])
    return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), 1)


def gaussian_log_prob_matrix(params, x):
    """[N, M] matrix of log N(x_n; loc_m, diag(scale_m^2)) for every pair (n, m).

    Expands sum_l (x_nl - m_ml)^2 / s_ml^2 into matrix products (in float64, as the expanded
    terms cancel): the cost of evaluating a mixture of M components at N points.
    """
    x = tf.cast(x, tf.float64)
    loc, scale = tf.cast(params["loc"], tf.float64), tf.cast(params["scale"], tf.float64)
    precision = 1.0 / tf.square(scale)
    quadratic = (tf.matmul(tf.square(x), precision, transpose_b=True)
                 - 2.0 * tf.matmul(x, loc * precision, transpose_b=True)
                 + tf.reduce_sum(tf.square(loc) * precision, axis=-1))
    log_norm = (tf.reduce_sum(tf.math.log(scale), axis=-1)
                + 0.5 * tf.cast(tf.shape(x)[-1], tf.float64) * math.log(2 * math.pi))
    return tf.cast(-0.5 * quadratic - log_norm, tf.float32)


def _positive(raw, activation, min_scale):
    """softplus(raw) + min or exp(raw) + min: a scale bounded away from zero."""
    return (tf.nn.softplus(raw) if activation == "softplus" else tf.exp(raw)) + min_scale


def _check_scale_options(scale_activation, min_scale):
    if scale_activation not in SCALE_ACTIVATIONS:
        raise ValueError(f"scale_activation must be one of {SCALE_ACTIVATIONS}. "
                         f"Received: scale_activation={scale_activation!r}")
    if not min_scale >= 0:
        raise ValueError(f"min_scale must be >= 0. Received: min_scale={min_scale!r}")


@keras.saving.register_keras_serializable(package="tfvae")
class DiagonalGaussian(DistributionLayer):
    """N(loc, diag(scale^2)) with scale = softplus(raw) + min_scale (or exp(raw) + min_scale).

    Outputs {"loc", "scale"}; `sample` is pathwise: z = loc + scale * eps, eps ~ N(0, I)
    (Kingma & Welling 2014, section 2.4), so gradients flow to loc and scale.
    """

    units_per_param = 2  # loc, raw scale

    def __init__(self, event_shape=None, scale_activation="softplus", min_scale=1e-4, project=True,
                 **kwargs):
        _check_scale_options(scale_activation, min_scale)
        super().__init__(event_shape, project=project, **kwargs)
        self.scale_activation = scale_activation
        self.min_scale = min_scale

    def params_from_raw(self, raw):
        loc, raw_scale = tf.split(raw, 2, axis=-1)
        return {"loc": loc, "scale": _positive(raw_scale, self.scale_activation, self.min_scale)}

    def distribution(self, params):
        return diagonal_gaussian(params, self.event_ndims)

    def sample(self, params, seed, num_samples=None):
        """Pathwise sample(s): [num_samples, *batch, event] (or [*batch, event] when None)."""
        return estimators.pathwise_gaussian(params["loc"], params["scale"], seed, num_samples)

    def mean(self, params):
        return params["loc"]

    def natural_params(self, params):
        """Precision 1/s^2 and precision-weighted mean m/s^2 (the natural parameters up to
        the factor -1/2 on the precision)."""
        precision = 1.0 / tf.square(params["scale"])
        return {"precision": precision, "precision_loc": precision * params["loc"]}

    def from_natural_params(self, natural):
        return {"loc": natural["precision_loc"] / natural["precision"],
                "scale": tf.math.rsqrt(natural["precision"])}

    def log_prob_matrix(self, params, z):
        """[Z, M] matrix of log N(z_i; loc_m, diag(scale_m^2)) for every pair (i, m).

        Works on flat events: z [Z, *event_shape] and params [M, *event_shape] are flattened."""
        return gaussian_log_prob_matrix({k: self._flat(v) for k, v in params.items()}, self._flat(z))

    def free_parameters(self, params):
        """Unconstrained coordinates of the parameters: {"loc", "log_scale"}."""
        return {"loc": params["loc"], "log_scale": tf.math.log(params["scale"])}

    def from_free_parameters(self, free):
        return {"loc": free["loc"], "scale": tf.exp(free["log_scale"])}

    def get_config(self):
        config = super().get_config()
        config.update(scale_activation=self.scale_activation, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class Bernoulli(DistributionLayer):
    """Independent Bernoulli(sigmoid(logits)) over binary units of shape `event_shape`.

    Outputs {"logits", "probs"}; log p(x) = sum_i x_i l_i - softplus(l_i).
    """

    def params_from_raw(self, raw):
        return {"logits": raw, "probs": tf.sigmoid(raw)}

    def sample(self, params, seed):
        """x_i = 1[u_i < p_i], u_i ~ U(0, 1): a float32 {0, 1} draw (stateless, from `seed`),
        differentiable by the straight-through estimator (`estimators.straight_through_bernoulli`)."""
        return estimators.straight_through_bernoulli(params["probs"], seed)

    def distribution(self, params):
        return tfd.Independent(tfd.Bernoulli(logits=params["logits"], dtype=tf.float32),
                               self.event_ndims)

    def mean(self, params):
        return params["probs"]

    def natural_params(self, params):
        return {"logits": params["logits"]}

    def from_natural_params(self, natural):
        return self.params_from_raw(natural["logits"])

    def log_prob(self, params, x):
        """sum_i x_i l_i - softplus(l_i), since log sigmoid(l) = l - softplus(l) and
        log(1 - sigmoid(l)) = -softplus(l): one transcendental per unit, about 3x faster than
        TFP's Bernoulli.log_prob under XLA on the IWAE evaluation."""
        logits = params["logits"]
        return tf.reduce_sum(x * logits - tf.nn.softplus(logits), axis=event_axes(self.event_ndims))

    def log_prob_matrix(self, params, x):
        """[N, M] matrix of log p(x_n | logits_m) for every pair: x @ logits^T - sum softplus.

        Works on flat events: x [N, *event_shape] and logits [M, *event_shape] are flattened."""
        logits, x = self._flat(params["logits"]), self._flat(x)
        return (tf.matmul(x, logits, transpose_b=True)
                - tf.reduce_sum(tf.nn.softplus(logits), axis=-1))


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianLikelihood(DistributionLayer):
    """N(loc, diag(scale^2)) for real-valued data, loc from the features.

    `scale=None` learns one scale per dimension (softplus(raw) + min_scale, shared by all
    examples); a float fixes it. Outputs {"loc", "scale"}.
    """

    def __init__(self, event_shape=None, scale=None, min_scale=1e-3, project=True, **kwargs):
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be None (learned) or a positive float. Received: scale={scale!r}")
        _check_scale_options("softplus", min_scale)
        super().__init__(event_shape, project=project, **kwargs)
        self.scale = scale
        self.min_scale = min_scale

    def build(self, input_shape):
        super().build(input_shape)
        if self.scale is None:
            # softplus(0.5413) = 1: start at unit scale.
            self.raw_scale = self.add_weight(shape=self.event_shape, name="raw_scale",
                                             initializer=keras.initializers.Constant(0.5413))

    def params_from_raw(self, raw):
        if self.scale is None:
            scale = _positive(tf.cast(self.raw_scale, tf.float32), "softplus", self.min_scale)
        else:
            scale = tf.constant(self.scale, tf.float32)
        return {"loc": raw, "scale": tf.broadcast_to(scale, tf.shape(raw))}

    def distribution(self, params):
        return diagonal_gaussian(params, self.event_ndims)

    def sample(self, params, seed):
        return estimators.pathwise_gaussian(params["loc"], params["scale"], seed)

    def mean(self, params):
        return params["loc"]

    def log_prob_matrix(self, params, x):
        """[N, M] matrix of log N(x_n; loc_m, diag(scale_m^2)) for every pair (n, m).

        Works on flat events: x [N, *event_shape] and params [M, *event_shape] are flattened."""
        return gaussian_log_prob_matrix({k: self._flat(v) for k, v in params.items()}, self._flat(x))

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, min_scale=self.min_scale)
        return config


def kl_divergence(q, p, z=None, analytic=True):
    """KL[q || p] = E_q[log q(z) - log p(z)], per batch element.

    With `analytic=True` and a closed form registered in TFP for the pair (e.g. Gaussian vs
    Gaussian: log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2), that closed form;
    otherwise the Monte Carlo estimate log q(z) - log p(z) at samples `z` drawn from q
    (reparameterized, so it is differentiable too; one value per sample).

    Args:
        q, p: `tfd.Distribution`s with the same event shape.
        z: samples of q, [*sample, *batch, *event]; needed unless the closed form is used.
        analytic: use the closed form when one exists.

    Returns:
        The KL, of shape [*batch] (closed form) or [*sample, *batch] (Monte Carlo).
    """
    if analytic:
        try:
            return tfd.kl_divergence(q, p)
        except NotImplementedError:
            pass
    if z is None:
        raise ValueError(f"No closed-form KL between {type(q).__name__} and {type(p).__name__} "
                         "(or analytic=False): pass samples z of q for the Monte Carlo estimate.")
    return q.log_prob(z) - p.log_prob(z)
