"""p(x|z) as parts: a `Likelihood` maps the decoder's output to its parameters and owns their
maths and the data it is defined on.

Every model takes `likelihood=` as a name ("bernoulli", "gaussian") or an instance, a user's
own subclass included; the model binds it to the data's shape (`bind`), so a part is written
once for every shape and every model. A subclass gives `units_per_param` (network outputs per
data value), `params_from_raw`, `log_prob`, `mean` and `sample`, and, for data it is not
defined on, `invalid_values` (arrays) and `batch_checks` (datasets); registered with
`keras.saving.register_keras_serializable`, it saves, loads with `safe_mode=True` and exports
with no change to tfvae.
"""
import math

import keras
import numpy as np
import tensorflow as tf

from tfvae import distributions, estimators, families

_REGISTERED = {}  # short name -> class: `get("gaussian")`


def register(name):
    """Registers a likelihood class under a short name for `get(name)` and with Keras."""
    def decorate(cls):
        cls = keras.saving.register_keras_serializable(package="tfvae")(cls)
        _REGISTERED[name] = cls
        cls.kind = name
        return cls
    return decorate


def get(likelihood, **options):
    """The likelihood part of `likelihood`: a registered name (with the class's `options`, e.g.
    `scale=`), an instance (returned as it is), or its serialized config (from a saved model).

    Example:
    >>> tfvae.likelihoods.get("gaussian", scale=0.1)
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(likelihood, Likelihood):
        return likelihood
    if isinstance(likelihood, dict):
        return keras.saving.deserialize_keras_object(likelihood)
    if isinstance(likelihood, str) and likelihood in _REGISTERED:
        try:
            return _REGISTERED[likelihood](**options)
        except TypeError:
            raise ValueError(f"likelihood={likelihood!r} takes no options "
                             f"{sorted(options)}. Received: {options}") from None
    raise ValueError(f"likelihood must be one of {tuple(sorted(_REGISTERED))} or a "
                     f"tfvae.likelihoods.Likelihood. Received: likelihood={likelihood!r}")


def names():
    """The registered likelihoods' short names."""
    return tuple(sorted(_REGISTERED))


class Likelihood(distributions.DistributionLayer):
    """Base class of p(x|z) parts: decoder features -> a dict of parameters, and their maths.

    Built unbound (`event_shape=None`); the model calls `bind(input_shape, project)`. With
    `project=True` a Dense layer maps the decoder's features to `units_per_param` numbers per
    data value; with `project=False` the decoder outputs them directly, in the shape
    `params_shape(event_shape)`.

    A subclass implements `params_from_raw(raw)` (raw: [..., *event_shape[:-1],
    units_per_param * event_shape[-1]]), `log_prob(params, x)` ([batch], summed over the event
    axes), `mean(params)` and `sample(params, seed)`, and may refuse data it is not defined on
    (`invalid_values`, `batch_checks`).
    """

    kind = "custom"
    units_per_param = 1
    accepts_integers = False  # integer x (8-bit values) is data as it is, not refused
    discrete = False        # x takes discrete values: -log p(x) is also given in bits per dimension
    binary = False          # binarized data suits it (the data pipeline's binarize= applies)
    data_range = None       # (low, high) of x where bounded: a VampPrior's pseudo-inputs follow it
    reads_logits = False    # its parameters are logits: a sigmoid before it is a mistake

    def __init__(self, event_shape=None, project=True, event_size=None, **kwargs):
        kwargs.setdefault("name", "likelihood")
        self.scale_network_input = bool(kwargs.pop("scale_network_input", True))
        keras.layers.Layer.__init__(self, **kwargs)
        self.project = project
        self.event_shape = None
        self.projection = None
        if event_shape is not None or event_size is not None:  # (a saved part comes bound;
            # event_size=n: configs saved before shapes of any rank)
            self.bind(distributions.normalize_shape(event_shape, "event_shape", event_size,
                                                    "event_size"), project)

    def bind(self, event_shape, project=True):
        """Sets the data's shape and whether the decoder's output is projected (the model does
        this); a part bound already (from a saved config) must agree."""
        event_shape = distributions.normalize_shape(event_shape, "event_shape")
        if self.event_shape is not None:
            if (self.event_shape, self.project) != (event_shape, project):
                raise ValueError(f"{type(self).__name__} is bound to data of shape "
                                 f"{self.event_shape} (project={self.project}); this model gives "
                                 f"{event_shape} (project={project}). Pass a new instance.")
            return self
        self.event_shape, self.project = event_shape, project
        if project:
            self.projection = keras.layers.Dense(self.params_size, name="projection")
        return self

    def params_shape(self, event_shape):
        """The decoder's output for one example of `event_shape` when it gives the parameters
        itself (project=False): `units_per_param` values per data value on the last axis."""
        event_shape = tuple(event_shape)
        return (*event_shape[:-1], self.units_per_param * event_shape[-1])

    def build(self, input_shape):
        if self.built:  # (a saved part comes built from its config)
            return
        if self.event_shape is None:
            raise ValueError(f"{type(self).__name__} is not bound to a data shape: a model binds "
                             "it (likelihood=...), or call .bind(event_shape) first.")
        super().build(input_shape)

    # -- the maths a subclass gives --------------------------------------------------------------
    def params_from_raw(self, raw):
        raise NotImplementedError

    def log_prob(self, params, x):
        """log p(x|params) summed over the event axes: [batch] (or [k, batch])."""
        raise NotImplementedError

    def mean(self, params):
        raise NotImplementedError

    def sample(self, params, seed):
        raise NotImplementedError

    # -- the data it is defined on --------------------------------------------------------------
    def check(self, x, what="Data"):
        """Raises ValueError naming the first value of the numpy array x [batch, ...] that this
        likelihood is not defined on (`invalid_values`); `what` names the data."""
        found = self.invalid_values(x)
        if found is None:
            return
        refuse_first(x, *found, what)

    def invalid_values(self, x):
        """(boolean mask of x's values it is not defined on, what is wrong with them), or None
        when every value of the numpy array x is data for it."""
        return None

    def batch_checks(self, x, what, fix):
        """Graph assertions over a batch x read from a dataset (`what` names the data, `fix`
        ends the message): the dataset counterpart of `invalid_values`."""
        return []

    def network_input(self, x):
        """x as the networks read it (every model's encoder, bottom-up pass, a VampPrior's
        pseudo-inputs): x itself here; an 8-bit likelihood's values are scaled to [-1, 1]."""
        return x

    def input_hint(self, dtype):
        """How to convert integer inputs of `dtype` for this likelihood (an error's end)."""
        if dtype == tf.uint8:
            return "convert images with x.astype('float32') / 255"
        return "convert it with x.astype('float32')"

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(event_shape=self.event_shape, project=self.project)
        return config


class UnitInterval:
    """The data checks of a likelihood of x in [0, 1] (a mixin of Likelihood subclasses)."""

    data_range = (0.0, 1.0)

    def invalid_values(self, x):
        return (x < 0) | (x > 1), f"a value outside [0, 1] (a {self.display_name} likelihood needs x in [0, 1])"

    def batch_checks(self, x, what, fix):
        message = (f"{what} has a value outside [0, 1] (a {self.display_name} likelihood needs x "
                   f"in [0, 1]; scale images with x / 255). {fix}")
        return [tf.debugging.assert_greater_equal(x, tf.cast(0, x.dtype), message=message),
                tf.debugging.assert_less_equal(x, tf.cast(1, x.dtype), message=message)]

    def input_hint(self, dtype):
        return "convert images with x.astype('float32') / 255"


@register("bernoulli")
class Bernoulli(UnitInterval, Likelihood):
    """Independent Bernoulli(sigmoid(logits)) over binary values (or intensities) in [0, 1].

    Outputs {"logits", "probs"}; log p(x) = sum_i x_i l_i - softplus(l_i) (`families.Bernoulli`:
    one transcendental per unit, about 3x faster than TFP's Bernoulli.log_prob under XLA on the
    IWAE evaluation). `sample` is straight-through: x_i = 1[u_i < p_i], u_i ~ U(0, 1), a float32
    {0, 1} draw whose gradient is that of p (`estimators.straight_through_bernoulli`).
    """

    binary = True
    discrete = True
    reads_logits = True
    display_name = "Bernoulli"

    def __init__(self, event_shape=None, project=True, **kwargs):
        self.family = families.Bernoulli()
        super().__init__(event_shape, project=project, **kwargs)

    @property
    def units_per_param(self):
        return self.family.raw_size

    def params_from_raw(self, raw):
        return self.family.params_from_raw(raw)

    def log_prob(self, params, x):
        return self.family.log_prob(params, x, self.event_ndims)

    def mean(self, params):
        return self.family.mean(params)

    def sample(self, params, seed, num_samples=None):
        return self.family.sample(params, seed, num_samples=num_samples)


@register("gaussian")
class GaussianLikelihood(Likelihood):
    """N(loc, diag(scale^2)) for real-valued data, loc from the decoder.

    `scale=None` learns one scale per data value, shared by all examples (softplus(raw) +
    min_scale); a float fixes it; "per_element" takes it from the decoder too, one per value
    of each example (loc and scale: 2 outputs per value). Outputs {"loc", "scale"}; the maths
    is `families.Gaussian`'s.

    Data that looks like 8-bit pixels (integers in 0..255) is refused: a Gaussian on it trains
    to a meaningless ELBO; scale it to [0, 1] first.
    """

    def __init__(self, event_shape=None, scale=None, min_scale=1e-3, project=True, **kwargs):
        if not (scale is None or scale == "per_element"
                or (isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0)):
            raise ValueError("scale must be None (learned, shared by the examples), a positive "
                             f"float (fixed) or 'per_element' (from the decoder). Received: scale={scale!r}")
        self.family = families.Gaussian("softplus", min_scale)  # validates min_scale
        self.scale = scale
        self.min_scale = min_scale
        super().__init__(event_shape, project=project, **kwargs)

    @property
    def units_per_param(self):
        return 2 if self.scale == "per_element" else 1  # (otherwise the scale is no network output)

    def build(self, input_shape):
        super().build(input_shape)
        if self.scale is None:
            # softplus(0.5413) = 1: start at unit scale.
            self.raw_scale = self.add_weight(shape=self.event_shape, name="raw_scale",
                                             initializer=keras.initializers.Constant(0.5413))

    def params_from_raw(self, raw):
        if self.scale == "per_element":
            return self.family.params_from_raw(raw)
        if self.scale is None:
            scale = self.family.scale_from_raw(tf.cast(self.raw_scale, tf.float32))
        else:
            scale = tf.constant(self.scale, tf.float32)
        return {"loc": raw, "scale": tf.broadcast_to(scale, tf.shape(raw))}

    def log_prob(self, params, x):
        return self.family.log_prob(params, x, self.event_ndims)

    def mean(self, params):
        return self.family.mean(params)

    def sample(self, params, seed, num_samples=None):
        return self.family.sample(params, seed, num_samples=num_samples)

    def check(self, x, what="Data"):
        if x.size and 1 < x.max() <= 255 and x.min() >= 0 and np.all(x == np.round(x)):
            raise ValueError(eight_bit_message(what, f"its values (0..{x.max():g})") + f" {fix_for(what)}")

    def batch_checks(self, x, what, fix):
        low, high = tf.reduce_min(x), tf.reduce_max(x)
        eight_bit = (low >= 0) & (high > 1) & (high <= 255) & tf.reduce_all(tf.equal(x, tf.round(x)))
        return [tf.debugging.Assert(tf.logical_not(eight_bit),
                                    [eight_bit_message(what, "a batch") + f" {fix}"])]

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, min_scale=self.min_scale)
        return config


def refuse_first(x, bad, problem, what):
    """Raises ValueError naming the first value of x where the mask `bad` holds, if any."""
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        at = ", ".join(str(i) for i in index)
        raise ValueError(f"{what} example {index[0]} has {problem}: x[{at}] = {x[index]}. "
                         f"{fix_for(what)}")


def fix_for(what):
    """The end of a bad-data message: what to do about it."""
    return "Fix or drop it before training." if what == "Training data" else "Fix or drop it."


def eight_bit_message(what, values):
    """The message for 8-bit pixels (integers 0..255) given to a likelihood of real values."""
    return (f"{what} looks like 8-bit pixels: {values} are integers in 0..255. A Gaussian "
            "likelihood on them trains to a meaningless ELBO (around -1e6 nats): scale them to "
            "[0, 1] first (x / 255, as tfvae.data.load does for uint8 images), or binarize them "
            "for likelihood='bernoulli'.")


@register("continuous_bernoulli")
class ContinuousBernoulli(UnitInterval, Likelihood):
    """The continuous Bernoulli CB(x | lambda) for x in [0, 1] (Loaiza-Ganem & Cunningham 2019):
    the Bernoulli's density made a proper density on [0, 1],

        log p(x) = x eta - softplus(eta) + log C(eta),  eta = logit(lambda),
        C(eta) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2),

    C = 2 at lambda = 1/2. log C is written stably: log|eta| - log tanh(|eta| / 2) with
    log tanh(a / 2) = log(-expm1(-a)) - log1p(e^-a), and its Taylor series
    log 2 + eta^2 / 12 - 7 eta^4 / 1440 for |eta| < 0.01 (error below 1e-12), where the closed
    form is 0 / 0. Outputs {"logits", "probs"} (probs is lambda, not the mean);
    mean E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = sigmoid(eta) /
    tanh(eta / 2) - 1 / eta (1/2 + eta / 12 near 0); sample by the inverse CDF,
    x = log1p(u expm1(eta)) / eta, u ~ U(0, 1).

    For grey levels in [0, 1] (not binarized): the Bernoulli likelihood on them is not a
    normalized density (the paper's point), this one is.
    """

    reads_logits = True
    display_name = "continuous Bernoulli"
    SMALL = 1e-2  # |eta| below which log C and the mean use their Taylor series

    def __init__(self, event_shape=None, project=True, **kwargs):
        self.family = families.Bernoulli()  # (the logits head: raw outputs are eta)
        super().__init__(event_shape, project=project, **kwargs)

    @property
    def units_per_param(self):
        return 1

    def params_from_raw(self, raw):
        return self.family.params_from_raw(raw)

    @classmethod
    def log_normalizer(cls, eta):
        """log C(eta), stable for every eta (see the class docstring)."""
        a = tf.abs(eta)
        small = a < cls.SMALL
        safe = tf.where(small, tf.ones_like(a), a)
        log_tanh = tf.math.log(-tf.math.expm1(-safe)) - tf.math.log1p(tf.exp(-safe))  # log tanh(a/2)
        closed = tf.math.log(safe) - log_tanh
        series = math.log(2.0) + tf.square(eta) / 12.0 - 7.0 * tf.square(tf.square(eta)) / 1440.0
        return tf.where(small, series, closed)

    def log_prob(self, params, x):
        eta = params["logits"]
        per_value = x * eta - tf.nn.softplus(eta) + self.log_normalizer(eta)
        return tf.reduce_sum(per_value, axis=list(range(-self.event_ndims, 0)))

    def mean(self, params):
        eta = params["logits"]
        small = tf.abs(eta) < self.SMALL
        safe = tf.where(small, tf.ones_like(eta), eta)
        closed = tf.sigmoid(safe) / tf.tanh(safe / 2.0) - 1.0 / safe
        return tf.where(small, 0.5 + eta / 12.0, closed)

    def sample(self, params, seed, num_samples=None):
        eta = params["logits"]
        shape = tf.shape(eta) if num_samples is None else tf.concat([[num_samples], tf.shape(eta)], 0)
        u = tf.random.stateless_uniform(shape, estimators.seed_pair(seed), 1e-7, 1.0 - 1e-7)
        small = tf.abs(eta) < self.SMALL
        safe = tf.where(small, tf.ones_like(eta), eta)
        # (eta > 0: 1 + log(u + (1 - u) e^-eta) / eta, so e^eta never overflows)
        positive = 1.0 + tf.math.log(u + (1.0 - u) * tf.exp(-tf.abs(safe))) / tf.abs(safe)
        negative = tf.math.log1p(u * tf.math.expm1(-tf.abs(safe))) / -tf.abs(safe)
        return tf.where(small, u, tf.where(eta > 0, positive, negative))


class EightBit:
    """The data of an 8-bit likelihood (a mixin of Likelihood subclasses): integers 0..255 in
    any integer dtype or as floats, never scaled (not x / 255, not binarized). Its figures are
    also given in bits per dimension, -log p(x) / (D ln 2)."""

    accepts_integers = True
    discrete = True
    data_range = (0.0, 255.0)

    def network_input(self, x):
        """x / 127.5 - 1 in [-1, 1] (`scale_network_input=True`, the default), so that a
        network's first layer sees values of order 1 (raw 0..255 inputs make a LadderVAE's
        first KL about 1e9 nats); parts saved before this option read x as it is."""
        return x / 127.5 - 1.0 if self.scale_network_input else x

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "project" in config:  # a saved part (get_config writes `project`) from before the
            config.setdefault("scale_network_input", False)  # option read x as it is
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(scale_network_input=self.scale_network_input)
        return config

    def invalid_values(self, x):
        return ((x < 0) | (x > 255) | (x != np.round(x)),
                f"a value that is not an integer in 0..255 (a {self.display_name} likelihood "
                "models 8-bit values as they are: give the pixels, not x / 255)")

    def batch_checks(self, x, what, fix):
        message = (f"{what} has a value that is not an integer in 0..255 (a {self.display_name} "
                   f"likelihood models 8-bit values as they are: give the pixels, not x / 255). {fix}")
        x = tf.cast(x, tf.float32)
        return [tf.debugging.assert_equal(x, tf.round(x), message=message),
                tf.debugging.assert_greater_equal(x, 0.0, message=message),
                tf.debugging.assert_less_equal(x, 255.0, message=message)]

    def input_hint(self, dtype):
        return "it takes the 8-bit values as they are"


class _PerPixel:
    """For likelihoods whose parameters per pixel are not a multiple of its channels: examples
    (H, W, C) are pixels (H, W) of C channels; flat examples (D,) are D pixels of one channel."""

    def pixels(self):
        """(pixel shape, channels) of the bound event shape."""
        if len(self.event_shape) == 3:
            return self.event_shape[:-1], self.event_shape[-1]
        return self.event_shape, 1

    def params_per_pixel(self, channels):
        raise NotImplementedError

    def params_shape(self, event_shape):
        event_shape = tuple(event_shape)
        pixels, channels = (event_shape[:-1], event_shape[-1]) if len(event_shape) == 3 else (event_shape, 1)
        return (*pixels, self.params_per_pixel(channels))

    @property
    def params_size(self):
        return math.prod(self.params_shape(self.event_shape))

    def _raw_shape(self):
        return self.params_shape(self.event_shape)

    def call(self, features):
        raw = tf.cast(features, tf.float32)
        if self.project:
            raw = self.projection(tf.reshape(raw, [tf.shape(raw)[0], -1]))
            raw = tf.reshape(raw, [-1, *self._raw_shape()])
        return self.params_from_raw(raw)

    def as_pixels(self, x):
        """x [..., *event_shape] as [..., *pixels, channels]."""
        pixels, channels = self.pixels()
        return tf.reshape(tf.cast(x, tf.float32),
                          tf.concat([tf.shape(x)[:tf.rank(x) - self.event_ndims], [*pixels, channels]], 0))

    def as_event(self, x):
        """[..., *pixels, channels] back to [..., *event_shape]."""
        pixels, _ = self.pixels()
        return tf.reshape(x, tf.concat([tf.shape(x)[:tf.rank(x) - len(pixels) - 1],
                                        list(self.event_shape)], 0))


@register("discretized_logistic")
class DiscretizedLogisticMixture(EightBit, _PerPixel, Likelihood):
    """The discretized logistic mixture of PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017)
    over 8-bit values, with K components per pixel.

    x in 0..255 is scaled to y = x / 127.5 - 1 in [-1, 1], bins of half-width 1/255. Per
    component k and channel c, P(x) = sigma((y + 1/255 - m) / s) - sigma((y - 1/255 - m) / s),
    the edge bins taking the tails: P(0) = sigma((-1 + 1/255 - m) / s), P(255) = 1 -
    sigma((1 - 1/255 - m) / s). For RGB pixels (C = 3, `rgb_coupling`) the channels depend
    linearly on those before them within a pixel (their section 2.2): m_g = mu_g + alpha y_r,
    m_b = mu_b + beta y_r + gamma y_g, alpha, beta, gamma = tanh(raw). Then p(pixel) =
    sum_k pi_k prod_c P_k(x_c), pi = softmax(logits); log p(x) sums over the pixels.

    Per pixel the decoder gives K logits, K C means, K C log-scales (s = exp, floored at
    exp(-7) as theirs) and, with the coupling, 3 K coefficients. `num_components=1` is the
    plain discretized logistic. Outputs {"logits" [..., K], "loc", "log_scale" [..., C, K],
    "coeffs" [..., 3, K] (RGB)}.
    """

    display_name = "discretized logistic"
    MIN_LOG_SCALE = -7.0

    def __init__(self, event_shape=None, num_components=5, rgb_coupling=True, project=True, **kwargs):
        if isinstance(num_components, bool) or not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be a positive integer. Received: num_components={num_components!r}")
        self.num_components = num_components
        self.rgb_coupling = bool(rgb_coupling)
        super().__init__(event_shape, project=project, **kwargs)

    def coupled(self, channels):
        return self.rgb_coupling and channels == 3

    def params_per_pixel(self, channels):
        return self.num_components * (1 + 2 * channels + (3 if self.coupled(channels) else 0))

    def params_from_raw(self, raw):
        _, channels = self.pixels()
        k = self.num_components
        lead = tf.shape(raw)[:-1]
        logits = raw[..., :k]
        rest = tf.reshape(raw[..., k:k + 2 * channels * k], tf.concat([lead, [2, channels, k]], 0))
        params = {"logits": logits, "loc": rest[..., 0, :, :],
                  "log_scale": tf.maximum(rest[..., 1, :, :], self.MIN_LOG_SCALE)}
        if self.coupled(channels):
            params["coeffs"] = tf.tanh(tf.reshape(raw[..., k + 2 * channels * k:], tf.concat([lead, [3, k]], 0)))
        return params

    def _component_locs(self, params, y):
        """The means m [..., C, K] given the scaled values y [..., C] of the channels before."""
        loc = params["loc"]
        if "coeffs" not in params:
            return loc
        coeffs = params["coeffs"]
        r, g = y[..., 0:1], y[..., 1:2]
        m_g = loc[..., 1, :] + coeffs[..., 0, :] * r
        m_b = loc[..., 2, :] + coeffs[..., 1, :] * r + coeffs[..., 2, :] * g
        return tf.stack([loc[..., 0, :], m_g, m_b], axis=-2)

    def log_prob(self, params, x):
        y = self.as_pixels(x) / 127.5 - 1.0                                   # [..., *pixels, C]
        m = self._component_locs(params, y)                                   # [..., C, K]
        inv_s = tf.exp(-params["log_scale"])
        centered = y[..., None] - m
        plus, minus = inv_s * (centered + 1.0 / 255.0), inv_s * (centered - 1.0 / 255.0)
        log_cdf_plus = plus - tf.nn.softplus(plus)                            # log sigma(plus)
        log_one_minus_cdf_minus = -tf.nn.softplus(minus)                      # log(1 - sigma(minus))
        delta = tf.sigmoid(plus) - tf.sigmoid(minus)
        mid = inv_s * centered                                                # the bin's log-density
        log_pdf_mid = mid - params["log_scale"] - 2.0 * tf.nn.softplus(mid)   # times its width 2/255
        interior = tf.where(delta > 1e-5, tf.math.log(tf.maximum(delta, 1e-12)),
                            log_pdf_mid + math.log(2.0 / 255.0))
        yc = y[..., None]
        per_channel = tf.where(yc < -0.999, log_cdf_plus,
                               tf.where(yc > 0.999, log_one_minus_cdf_minus, interior))
        per_component = tf.reduce_sum(per_channel, axis=-2) + tf.nn.log_softmax(params["logits"])
        per_pixel = tf.reduce_logsumexp(per_component, axis=-1)               # [..., *pixels]
        pixels, _ = self.pixels()
        return tf.reduce_sum(per_pixel, axis=list(range(-len(pixels), 0)))

    def mean(self, params):
        """The mixture's mean per channel, the coupling following the means of the channels
        before (in 0..255; the discretization's clipping at the edges ignored)."""
        weights = tf.nn.softmax(params["logits"])[..., None, :]
        loc = params["loc"]
        if "coeffs" in params:
            y_r = tf.reduce_sum(weights[..., 0, :] * loc[..., 0, :], -1, keepdims=True)
            y_g = tf.reduce_sum(weights[..., 0, :] * (loc[..., 1, :] + params["coeffs"][..., 0, :] * y_r), -1,
                                keepdims=True)
            loc = self._component_locs(params, tf.concat([y_r, y_g, y_g], -1))
        y = tf.reduce_sum(weights * loc, axis=-1)
        return self.as_event(tf.clip_by_value((y + 1.0) * 127.5, 0.0, 255.0))

    def sample(self, params, seed, num_samples=None):
        if num_samples is not None:
            params = {k: tf.broadcast_to(v, tf.concat([[num_samples], tf.shape(v)], 0)) for k, v in params.items()}
        pick_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(estimators.seed_pair(seed), 2))
        logits = params["logits"]
        u = tf.random.stateless_uniform(tf.shape(logits), pick_seed, 1e-6, 1 - 1e-6)
        component = tf.one_hot(tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1), self.num_components)
        chosen = component[..., None, :]                                         # [..., 1, K]
        loc = tf.reduce_sum(params["loc"] * chosen, -1)                          # [..., C]
        scale = tf.exp(tf.reduce_sum(params["log_scale"] * chosen, -1))
        v = tf.random.stateless_uniform(tf.shape(loc), noise_seed, 1e-5, 1 - 1e-5)
        y = loc + scale * (tf.math.log(v) - tf.math.log1p(-v))
        if "coeffs" in params:
            c = tf.reduce_sum(params["coeffs"] * chosen, -1)                     # [..., 3]
            r = tf.clip_by_value(y[..., 0], -1.0, 1.0)
            g = tf.clip_by_value(y[..., 1] + c[..., 0] * r, -1.0, 1.0)
            b = tf.clip_by_value(y[..., 2] + c[..., 1] * r + c[..., 2] * g, -1.0, 1.0)
            y = tf.stack([r, g, b], -1)
        return self.as_event(tf.round((tf.clip_by_value(y, -1.0, 1.0) + 1.0) * 127.5))

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, rgb_coupling=self.rgb_coupling)
        return config


@register("categorical256")
class Categorical256(EightBit, Likelihood):
    """A 256-way softmax over each 8-bit value (van den Oord, Kalchbrenner & Kavukcuoglu 2016):
    log p(x) = sum_i log softmax(logits_i)[x_i]. 256 decoder outputs per value. Outputs
    {"logits" [..., *event_shape, 256]}; the mean is sum_v v softmax(logits)_v, a sample the
    categorical draw (Gumbel-max)."""

    display_name = "256-way categorical"
    units_per_param = 256

    def params_from_raw(self, raw):
        # raw [..., *event[:-1], 256 C], value j of channel c at j C + c
        channels = self.event_shape[-1]
        shape = tf.concat([tf.shape(raw)[:-1], [256, channels]], 0)
        return {"logits": tf.linalg.matrix_transpose(tf.reshape(raw, shape))}

    def log_prob(self, params, x):
        logits = params["logits"]
        index = tf.clip_by_value(tf.cast(tf.round(tf.cast(x, tf.float32)), tf.int32), 0, 255)
        index = tf.broadcast_to(index, tf.shape(logits)[:-1])  # (x [B, ...], params [k, B, ...])
        # log softmax(logits)[x], fused (take_along_axis's gradient does not compile with XLA)
        log_p = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=logits)
        return tf.reduce_sum(log_p, axis=list(range(-self.event_ndims, 0)))

    def mean(self, params):
        return tf.reduce_sum(tf.nn.softmax(params["logits"]) * tf.range(256, dtype=tf.float32), -1)

    def sample(self, params, seed, num_samples=None):
        logits = params["logits"]
        if num_samples is not None:
            logits = tf.broadcast_to(logits, tf.concat([[num_samples], tf.shape(logits)], 0))
        u = tf.random.stateless_uniform(tf.shape(logits), estimators.seed_pair(seed), 1e-6, 1 - 1e-6)
        return tf.cast(tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1), tf.float32)
