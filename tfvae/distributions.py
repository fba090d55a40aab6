"""Keras 3 layers that map features to the parameters of TFP distributions, and the KL helper.

Layers return dicts of tensors (never `tfp.layers`, which only runs on Keras 2); each layer's
`distribution(params)` builds the matching `tfd` distribution over its event axes (any
event shape: `event_shape=(28, 28, 1)` as well as `(784,)`). The maths (log_prob, mean, sample,
natural parameters, combine, KL) is the exponential family's, in `tfvae.families`. Parameters
are cast to float32 so the distribution maths stays in float32 under mixed precision.
"""
import math
import numbers

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import families
from tfvae.families import kl_divergence  # noqa: F401 (tfvae.distributions.kl_divergence)

tfd = tfp.distributions

SCALE_ACTIVATIONS = families.gaussian.SCALE_ACTIVATIONS


def normalize_shape(shape, name="event_shape", flat=None, flat_name="event_size"):
    """One example's shape (no batch axis) as a tuple of positive ints: the one reading of
    `event_shape` (layers), `input_shape` (models, VampPrior's pseudo-inputs). An int n means
    (n,); `flat=n`, under its old name `flat_name` (`event_size`, `input_dim`) in configs saved
    before shapes of any rank, means (n,) too."""
    old_spelling = f" ({flat_name}=n is the old spelling of {name}=(n,))"
    if flat is not None:
        if shape is not None:
            raise ValueError(f"Give {name} only, not both: {flat_name}=n is the old spelling of "
                             f"{name}=(n,). Received: {name}={shape!r}, {flat_name}={flat!r}")
        shape, name = flat, flat_name  # (an error names the argument given)
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
                       for n in shape)):
        raise ValueError(f"{name} must be the shape of one example: a positive integer or a "
                         "non-empty tuple of positive integers, such as (784,) or (28, 28, 1)"
                         f"{old_spelling}. Received: {name}={shape!r}")
    return tuple(int(n) for n in shape)


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

    @property
    def units_per_param(self):
        """Network outputs per event unit: the family's `raw_size` (2 for loc and raw scale)."""
        return self.family.raw_size

    def __init__(self, event_shape=None, project=True, event_size=None, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = normalize_shape(event_shape, "event_shape", event_size, "event_size")
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

    # The maths is the family's (tfvae.families); the layer adds the event shape.
    def params_from_raw(self, raw):
        """Parameters from raw outputs [..., *event_shape[:-1], units_per_param * event_shape[-1]]."""
        return self.family.params_from_raw(raw)

    def mean(self, params):
        """E[x] under the distribution given by `params`, [..., *event_shape]."""
        return self.family.mean(params)

    def log_prob(self, params, x):
        """log p(x) summed over the event axes; equal to `distribution(params).log_prob(x)`."""
        return self.family.log_prob(params, x, self.event_ndims)

    def distribution(self, params):
        """The `tfd` distribution: tfd.Independent(..., reinterpreted_batch_ndims=len(event_shape))."""
        return self.family.distribution(params, self.event_ndims)

    def sample(self, params, seed, num_samples=None):
        """A draw with the family's default estimator: [num_samples, *batch, *event_shape]
        (or [*batch, *event_shape] when `num_samples` is None), stateless from `seed`."""
        return self.family.sample(params, seed, num_samples=num_samples)

    def natural_params(self, params):
        """The exponential family's natural parameters (a dict of tensors)."""
        return self.family.natural_params(params)

    def from_natural_params(self, natural):
        return self.family.from_natural_params(natural)

    def combine(self, *params):
        """The normalized product of densities of this family: their natural parameters add.

        This is how evidence meets a prior in every hierarchical model of tfvae: precision
        weighting for Gaussians (Sonderby et al. 2016, eq. 17-18), added logits for Bernoulli.
        """
        return self.family.combine(*params)

    def log_prob_matrix(self, params, x):
        """[N, M] matrix of log p(x_n | params_m) for every pair (the family's
        `log_prob_matrix`). Works on flat events: x [N, *event_shape] and params
        [M, *event_shape] are flattened."""
        return self.family.log_prob_matrix({k: self._flat(v) for k, v in params.items()},
                                           self._flat(x))

    def free_parameters(self, params):
        """Unconstrained coordinates of the parameters (the family's `free_parameters`)."""
        return self.family.free_parameters(params)

    def from_free_parameters(self, free):
        return self.family.from_free_parameters(free)

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
    return families.Gaussian().distribution(params, event_ndims)


def standard_normal(event_size):
    """The N(0, I) prior over `event_size` units."""
    zeros = tf.zeros([event_size])
    return tfd.Independent(tfd.Normal(zeros, tf.ones_like(zeros)), 1)


@keras.saving.register_keras_serializable(package="tfvae")
class DiagonalGaussian(DistributionLayer):
    """N(loc, diag(scale^2)) with scale = softplus(raw) + min_scale (or exp(raw) + min_scale).

    Outputs {"loc", "scale"}; `sample` is pathwise: z = loc + scale * eps, eps ~ N(0, I)
    (Kingma & Welling 2014, section 2.4), so gradients flow to loc and scale. The maths is
    `families.Gaussian`'s.
    """

    def __init__(self, event_shape=None, scale_activation="softplus", min_scale=1e-4, project=True,
                 **kwargs):
        self.family = families.Gaussian(scale_activation, min_scale)  # validates the options
        super().__init__(event_shape, project=project, **kwargs)
        self.scale_activation = scale_activation
        self.min_scale = min_scale

    def get_config(self):
        config = super().get_config()
        config.update(scale_activation=self.scale_activation, min_scale=self.min_scale)
        return config


def __getattr__(name):
    """The likelihood layers that lived here: `tfvae.likelihoods` (imported on first use, as
    tfvae.likelihoods imports this module)."""
    if name in ("Bernoulli", "GaussianLikelihood"):
        from tfvae import likelihoods

        return getattr(likelihoods, name)
    raise AttributeError(f"module 'tfvae.distributions' has no attribute {name!r}")
