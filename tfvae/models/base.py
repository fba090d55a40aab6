"""BaseVAE: the loss, metrics, likelihood estimates and sampling that every tfvae model shares.

A model subclass says how to encode, decode and draw its latents (`_forward`); this class turns
that into the training objective (ELBO or IWAE bound, beta, KL warm-up), Keras metrics and the
public API every model shares (README, "The library"). Keras owns the loop: only `compute_loss` and `metrics` are overridden.
"""
import contextlib
import contextvars
import functools
import math
import re
import typing
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfvae import distributions, estimators, likelihoods, objectives
from tfvae.models import legacy

MAX_ENUMERATED_UNITS = 20  # binary latent layers up to this width can be summed over (2^m states)


# How the gradient of the importance-weighted bound is estimated (`BaseVAE(iw_gradient=...)`).
IW_GRADIENTS = ("plain", "stl", "dreg", "vimco")

# While `BaseVAE._forward_draws` runs: the draws made, in order; while `_forward_at` runs: the
# draws to use instead of new ones (see `BaseVAE.draw_layer`).
_RECORDED_DRAWS = contextvars.ContextVar("tfvae_recorded_draws", default=None)
_GIVEN_DRAWS = contextvars.ContextVar("tfvae_given_draws", default=None)


class LayerTerms(typing.NamedTuple):
    """One latent layer's share of a model's objective (`BaseVAE._accumulate_layers`).

    latent: the layer's `tfvae.latents.Latent` part, which drew z.
    q: its posterior's parameters at the rows of z.
    z: the draw, k * B rows (or [k, B, units]), as the layer made it (`BaseVAE.draw_layer`).
    rate_per_unit: KL[q || p] per unit, closed form or at the draw, k * B rows (or [k, B]).
    log_ratio: log q(z) - log p(z) at the draw's point, k * B rows (or [k, B]).
    depends_on_draws: whether `rate_per_unit` varies with any draw (it is sampled, or q or p
        is conditioned on another layer's draw).
    """
    latent: object
    q: dict
    z: object
    rate_per_unit: object
    log_ratio: object
    depends_on_draws: bool


def check_num_samples(latent, num_samples, iw_gradient="plain"):
    """Refuses an objective the latent layer's estimator cannot differentiate, or an
    `iw_gradient` (see `BaseVAE`) that does not apply to the layer's draws."""
    if latent.estimator == "score_function" and num_samples > 1 and iw_gradient != "vimco":
        raise ValueError("estimator='score_function' trains the ELBO (num_samples=1); for the "
                         "IWAE bound (num_samples > 1) use its multi-sample estimator VIMCO, "
                         "iw_gradient='vimco' (Mnih & Rezende 2016).")
    if iw_gradient in ("stl", "dreg") and latent.estimator != "pathwise":
        raise ValueError(f"iw_gradient={iw_gradient!r} differentiates reparameterized draws "
                         f"(Gaussian latents); the {latent.family.name} layer {latent.name!r} is "
                         f"drawn with estimator={latent.estimator!r}. For binary latents with "
                         "num_samples > 1 use estimator='score_function', iw_gradient='vimco'.")
    if iw_gradient == "vimco" and latent.estimator not in ("score_function", "pathwise"):
        raise ValueError(f"iw_gradient='vimco' is the score function's multi-sample estimator: "
                         f"give the binary layer {latent.name!r} estimator='score_function' "
                         f"(it has estimator={latent.estimator!r}).")


def likelihood_part(likelihood, likelihood_scale=None):
    """The (unbound) likelihood part of a model's `likelihood=` (a name, a
    `tfvae.likelihoods.Likelihood`, or its saved config); `likelihood_scale` is the Gaussian's
    `scale` option of the name "gaussian"."""
    if likelihood_scale is not None and likelihood != "gaussian":
        raise ValueError("likelihood_scale applies to likelihood='gaussian' only (a likelihood "
                         "part takes its own options). Received: "
                         f"likelihood_scale={likelihood_scale!r}")
    return likelihoods.get(likelihood, scale=likelihood_scale)


def network_part(network, what):
    """A user's network (encoder, decoder, block): a Keras layer or model, or its serialization
    from a config."""
    if isinstance(network, dict):  # (unbuilt: the model builds it, see `build_network`)
        network = keras.saving.deserialize_keras_object(
            {key: value for key, value in network.items() if key != "build_config"})
    if not isinstance(network, keras.layers.Layer):
        raise ValueError(f"{what} must be a Keras layer or model (e.g. keras.Sequential([...]) "
                         f"or a functional keras.Model). Received: {what}={network!r}")
    return network


def declared_input_shape(network):
    """The example shape a network declares with its `keras.Input` (a functional model, or a
    Sequential that starts with one), or None."""
    try:
        inputs = network.inputs if isinstance(network, keras.Model) else None
    except (AttributeError, ValueError):  # (a Sequential without an Input has none yet)
        return None
    if not inputs or len(inputs) != 1:
        return None
    shape = tuple(inputs[0].shape[1:])
    return shape if shape and all(isinstance(d, int) for d in shape) else None


def build_network(network, input_shape):
    """Builds a user's network (not built yet) for batches of `input_shape` [batch, ...] by a
    symbolic call, so a subclassed layer or model without a `build` of its own makes its
    sublayers' weights now, as its `call` uses them (its plain `build` would only mark it
    built)."""
    if not network.built:
        network(keras.KerasTensor(tuple(input_shape)))


def output_shape(network, input_shape, what=None):
    """The network's output shape [batch, ...] for examples of `input_shape`: its
    `compute_output_shape`, else a symbolic call (`compute_output_spec`: subclassed layers and
    models need not implement shape inference).

    Returns None when neither can say; with `what` (the network's role, e.g. "encoder") a
    ValueError naming it instead, also when the network returns more than one tensor.
    """
    batch = (None,) + tuple(input_shape)
    try:
        shape = network.compute_output_shape(batch)
    except Exception:  # noqa: BLE001  (no shape inference: try a symbolic call)
        try:
            shape = network.compute_output_spec(keras.KerasTensor(batch))
            shape = shape.shape if isinstance(shape, keras.KerasTensor) else shape
        except Exception as e:  # noqa: BLE001
            if what is None:
                return None
            raise ValueError(f"The {what} ({type(network).__name__} {network.name!r}) cannot take "
                             f"inputs of shape {format_shape(input_shape)}: {e}") from None
    if not isinstance(shape, (tuple, list)) or not all(d is None or isinstance(d, int) for d in shape):
        if what is None:
            return None
        raise ValueError(f"The {what} ({type(network).__name__} {network.name!r}) must return one "
                         f"tensor; it returns {shape!r}. (q's or the likelihood's parameters are "
                         "a Dense projection of that one tensor: return the features.)")
    return tuple(shape)


def decoder_gives_parameters(decoder, latent_width, data_shape, likelihood):
    """Whether a user's decoder outputs the likelihood's parameters (its output has the shape
    `likelihood.params_shape(data_shape)`: the data's, for one parameter per value) or features
    that a Dense projection maps to them.

    Warns (a saved model still loads) when the output looks like a mistake: a decoder whose
    last layer applies a sigmoid before a likelihood of logits (every probability would be
    above 1/2); features of image shape [batch, H, W, ...] or as many as the data's values,
    which a Dense layer of (features x values) weights projects.
    """
    decoded = output_shape(decoder, (latent_width,), "decoder")
    data = format_shape(data_shape)
    if tuple(decoded[1:]) == tuple(likelihood.params_shape(data_shape)):
        reshapes = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute)
        last = next((layer for layer in reversed(getattr(decoder, "layers", None) or [decoder])
                     if not isinstance(layer, reshapes)), decoder)
        if likelihood.reads_logits and getattr(last, "activation", None) is keras.activations.sigmoid:
            warnings.warn(f"The decoder's last layer ({last.name!r}) applies a sigmoid, but a "
                          "Bernoulli likelihood reads the decoder's output as logits (every "
                          "probability would be above 1/2). Remove the activation.", stacklevel=3)
        return True
    features, values = math.prod(decoded[1:]), math.prod(data_shape)
    if len(decoded) > 2 or (len(data_shape) > 1 and features == values):
        warnings.warn(f"The decoder gives {format_shape(decoded[1:])}, the data is {data}: its "
                      f"{features:,} outputs are read as features, and a Dense layer of "
                      f"{features * values:,} weights projects them to the likelihood's "
                      f"parameters. If they are meant to be the parameters, make the decoder "
                      f"output {data} (e.g. end it with keras.layers.Reshape({tuple(data_shape)})).",
                      stacklevel=3)
    return False


def standardize_input_shape(input_shape, input_dim=None):
    """`input_shape` as a tuple of positive ints (`input_dim=n`, the old spelling, is (n,))."""
    return distributions.normalize_shape(input_shape, "input_shape", input_dim, "input_dim")


def format_shape(shape):
    """[batch, 28, 28, 1]: how messages write a batch of examples of `shape`."""
    return "[" + ", ".join(["batch"] + [str(d) for d in shape]) + "]"



def _raise_checked_batch_error(error):
    """Raises the message of a batch that failed `BaseVAE._checked_batch` inside Keras' loop
    (an InvalidArgumentError with the graph's context) as a plain ValueError; else nothing."""
    found = re.search(r"(Training|Validation|Evaluation) data (has|looks) .*?Fix or drop it( before training)?\.",
                      str(error))
    if isinstance(error, tf.errors.InvalidArgumentError) and found:
        raise ValueError(found.group(0)) from None


class BaseVAE(keras.Model):
    """Shared machinery of the VAE family; subclasses implement `_forward` and the codecs.

    Objective for k = `num_samples` posterior samples z_i ~ q(z|x), with w = beta * warm-up:
      k = 1: log p(x|z) - w * KL[q(z|x) || p(z)]                     (the ELBO when w = 1)
      k > 1: log (1/k) sum_i p(x|z_i) (p(z_i) / q(z_i|x))^w          (IWAE, Burda et al. 2016)
    Metrics: `loss`, `elbo`, `kl` (the rate) and `distortion` (-log p(x|z)), in nats per example.

    `iw_gradient` says how the bound's gradient is estimated when k > 1 (or k = 1 without a
    closed-form KL); log w_i is tempered by w (log p(x|z) + w (log p(z) - log q(z|x))) and
    w~_i = w_i / sum_j w_j:
      "plain": the reparameterized gradient of the bound (its encoder's signal-to-noise ratio
               falls as k grows, Rainforth et al. 2018);
      "stl":   sticking the landing (Roeder, Wu & Duvenaud 2017): q's score term
               sum_i w~_i d(-log q(z_i))/d(params) is dropped; unbiased for k = 1 only;
      "dreg":  doubly reparameterized (Tucker, Lawson, Gu & Maddison 2019): that score term is
               replaced by its reparameterized form, so q's parameters get
               sum_i ((1 - w) w~_i + w w~_i^2) d log w_i/dz_i dz_i/d(params) (w~_i^2 at w = 1);
               unbiased, and its encoder SNR grows with k;
      "vimco": for score-function (binary) layers with k >= 2 (Mnih & Rezende 2016):
               sum_j (L - L_-j) grad log q(z_j|x) + the bound's own gradient, where L_-j is the
               bound with log w_j replaced by the mean of the other log-weights.
    "stl" and "dreg" need every latent layer drawn pathwise (Gaussian).
    """

    def __init__(self, input_shape=None, likelihood="bernoulli", likelihood_scale=None,
                 analytic_kl=True, num_samples=1, beta=1.0, free_bits=0.0, seed=None,
                 metric_names=("elbo", "kl", "distortion"), input_dim=None, iw_gradient="plain",
                 **kwargs):
        # Mixed precision: the networks (sublayers) take the global dtype policy, e.g.
        # keras.config.set_dtype_policy("mixed_bfloat16") before building the model; the model's
        # own maths (log-densities, KL, bounds) always runs in float32.
        dtype = keras.dtype_policies.get(kwargs.pop("dtype", None) or "float32")
        if dtype.compute_dtype != "float32" or dtype.variable_dtype != "float32":
            raise ValueError(
                "A tfvae model computes its log-densities in float32; for mixed precision set the "
                "global policy before building it, e.g. keras.config.set_dtype_policy("
                f"'mixed_bfloat16'), and its networks follow. Received: dtype={dtype.name!r}")
        if keras.config.dtype_policy().compute_dtype == "float16":
            raise ValueError("float16 networks need loss scaling, which tfvae models do not do; "
                             "use keras.config.set_dtype_policy('mixed_bfloat16') instead.")
        input_shape = standardize_input_shape(input_shape, input_dim)
        likelihood_part(likelihood, likelihood_scale)  # (refuses an unknown name before Keras starts)
        super().__init__(dtype="float32", **kwargs)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer. Received: num_samples={num_samples!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0. Received: beta={beta!r}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0. Received: free_bits={free_bits!r}")
        if free_bits > 0 and num_samples > 1:
            raise ValueError("free_bits applies to the ELBO (num_samples=1), not the IWAE bound. "
                             f"Received: free_bits={free_bits}, num_samples={num_samples}")
        if iw_gradient not in IW_GRADIENTS:
            raise ValueError(f"iw_gradient must be one of {IW_GRADIENTS}. Received: "
                             f"iw_gradient={iw_gradient!r}")
        if iw_gradient != "plain" and free_bits > 0:
            raise ValueError(f"iw_gradient={iw_gradient!r} estimates the gradient of the "
                             "importance-weighted bound, which free bits do not apply to. "
                             f"Received: free_bits={free_bits}")
        if iw_gradient == "vimco" and num_samples < 2:
            raise ValueError("iw_gradient='vimco' needs num_samples >= 2 (its baselines leave one "
                             "sample out). Received: num_samples=1")
        if iw_gradient in ("stl", "dreg") and num_samples == 1 and analytic_kl:
            raise ValueError(f"iw_gradient={iw_gradient!r} applies to the importance-weighted "
                             "bound: num_samples > 1, or num_samples=1 with analytic_kl=False (a "
                             "closed-form KL has no score term to drop). Received: num_samples=1, "
                             "analytic_kl=True")
        self.iw_gradient = iw_gradient
        self.input_shape = input_shape
        # `likelihood=` as a name (saved as it is), else None: a part is saved as its config.
        # (Not the part itself: an attribute holding a layer makes it a sublayer here, before
        # the networks, and a loaded model, given its config, would order its weights otherwise.)
        # The subclass builds the part, `likelihood_layer`, for its decoder.
        self.likelihood_spec = likelihood if isinstance(likelihood, str) else None
        self.likelihood_scale = likelihood_scale
        self.analytic_kl = bool(analytic_kl)
        self.num_samples = num_samples
        self.beta = float(beta)
        self.free_bits = float(free_bits)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        # Multiplies beta; the KLWarmup callback moves it from 0 to 1.
        self.kl_warmup = keras.Variable(1.0, trainable=False, dtype="float32", name="kl_warmup")
        # Per-example terms of `loss_terms` tracked as metrics besides Keras' own `loss`; a
        # subclass passes its extra terms (e.g. the per-layer KLs `kl_0`, `kl_1`, ...).
        self.trackers = {name: keras.metrics.Mean(name=name) for name in metric_names}

    @property
    def input_dim(self):
        """The number of values per example, prod(input_shape) (D of flat data)."""
        return int(np.prod(self.input_shape))

    # -- the declared surface ------------------------------------------------------------------
    # What evaluation, export, training and the CLI use of a model, and all they use: they never
    # probe a model's class or attributes. A model declares what it can do in `capabilities`:
    #   "enumerable_latents": its latent states can be summed over (evaluation.exact_log_likelihood)
    #   "gaussian_posterior": one layer of diagonal Gaussian latents, `posterior(x)` (ELBO surgery)
    capabilities = frozenset()

    def latent_layers(self):
        """The model's latent layers (`tfvae.latents.Latent` parts), bottom first."""
        return []

    # The top latent layer's prior part (`tfvae.priors.Prior`), or None where the prior is not
    # one: a binary layer's Bernoulli(1/2), the harmonium's marginal (`prior_log_prob`).
    prior_layer = None

    @property
    def likelihood(self):
        """p(x|z), the model's `tfvae.likelihoods.Likelihood` part: `decode` gives its
        parameters; its `log_prob`, `mean`, `sample` and `check` are the data's maths."""
        return self.likelihood_layer

    @property
    def estimator(self):
        """How the latent draws are differentiated (`tfvae.latents`): the estimator of the
        layers that are not drawn pathwise, else "pathwise" ("mixed" when they differ)."""
        return _common({latent.estimator for latent in self.latent_layers()}, "pathwise")

    @property
    def baseline(self):
        """The score function's baseline option of the layers not drawn pathwise ("none" without
        them)."""
        return _common({latent.baseline for latent in self.latent_layers()
                        if latent.estimator != "pathwise"}, "none")

    @contextlib.contextmanager
    def estimators_as(self, estimator=None, baseline=None, temperature=None):
        """For a measurement: every latent layer whose family has `estimator` draws with it
        (and `baseline`, `temperature`) inside the block; the model is restored after it."""
        with contextlib.ExitStack() as stack:
            for latent in self.latent_layers():
                if estimator is None or estimator in latent.family.estimators:
                    stack.enter_context(latent.estimator_as(estimator, baseline, temperature))
            yield self

    @property
    def latent_shape(self):
        """The shape of one example's top latent layer: what `decode_top` and `prior_sample`
        work with."""
        raise NotImplementedError

    def decode_top(self, z):
        """p(x|z)'s parameters for z of the top latent layer, [batch, *latent_shape] (the
        serving contract's `decode`); for one layer of latents that is `decode`."""
        return self.decode(z)

    def prior_log_normalizer(self):
        """log Z of a prior known up to its normalizer, which `prior_log_prob(z, log_partition=)`
        then takes precomputed (the tied harmonium's); None for a normalized prior."""
        return None

    def encoder_weights(self):
        """The variables q(z|x) depends on (default: all trainable variables)."""
        return self.trainable_weights

    @property
    def initialization_examples(self):
        """How many training examples `initialize_from_data` takes (0: it needs none)."""
        return 0

    def initialize_from_data(self, x):
        """Starts the parts that start from data (a VampPrior's pseudo-inputs) at x, the first
        `initialization_examples` training examples."""

    def check_input(self, x):
        """x as a float32 tensor of shape [batch, *input_shape], or a ValueError naming the
        shape or dtype expected and received; builds the model first."""
        return self._check_input(x)

    # -- what a subclass provides -------------------------------------------------------------
    def metric_names(self):
        """Per-example terms tracked as metrics besides Keras' own `loss`."""
        return tuple(self.trackers)

    def encode_layers(self, x, training=False):
        """q(z|x)'s parameters for each latent layer (bottom first, as `latent_layers`), each a
        dict of [batch, units] tensors; for one layer of latents, [encode(x)]."""
        return [self.encode(x, training=training)]

    def latent_means(self, x):
        """E_q[z] for each latent layer (bottom first): a list of [batch, units] tensors."""
        return [layer.mean(q) for layer, q in zip(self.latent_layers(), self.encode_layers(x))]

    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        """Draws k latent samples per example and returns per-sample terms:

        `log_likelihood` [k, B] = log p(x|z); `log_weight` [k, B] = log p(x, z) - log q(z|x);
        `rate` [k or 1, B] = the KL estimate (closed form where asked and available);
        `penalized_rate` the rate after free bits; and optional extra entries (e.g. `kl_0`).
        `posterior_params`, when given, replace the encoder's output (amortization gap).
        """
        raise NotImplementedError

    def prior_sample(self, num_samples, seed):
        """z ~ p(z) in the layout `decode` takes: [num_samples, latent]."""
        raise NotImplementedError

    @property
    def kl_estimate(self):
        """How the `kl` metric is computed: "closed_form" or "monte_carlo" (log q - log p at
        the posterior sample; always so for mixture priors and conditional layers)."""
        factorized = getattr(self, "prior_layer", None) is None or self.prior_layer.factorizes
        return "closed_form" if self.analytic_kl and factorized else "monte_carlo"

    def generate(self, num_samples, seed):
        """Parameters of p(x|z) for `num_samples` draws of the latents from the prior."""
        self._ensure_built()
        return self.decode(self.prior_sample(num_samples, seed))

    def reconstruct(self, x):
        """The likelihood's mean at the posterior mean of z: a deterministic reconstruction."""
        raise NotImplementedError

    # -- the objective --------------------------------------------------------------------------
    def call(self, x, training=False):
        """What `model(x)` and `model.predict(x)` give: {"reconstruction": E[x|z] at the
        posterior mean, [batch, *input_shape]} and q(z|x)'s parameters (`encode`'s keys), all
        as at inference. The objective's terms are `loss_terms` (what `fit` and `evaluate`
        train and report, computed in `compute_loss`); under `fit` these outputs are not used,
        and a compiled step (tf.function, XLA) does not compute them."""
        x = self._check_input(x)
        outputs = dict(self.encode(x))
        outputs["reconstruction"] = self.reconstruct(x)
        return outputs

    def loss_terms(self, x, num_samples=None, seed=None, training=False, posterior_params=None):
        """Per-example `objective`, `elbo`, `kl`, `distortion` (and extras: a hierarchy's
        per-layer `kl_<i>`; with a score-function layer and one sample, the `learning_signal` f
        its estimator weights grad log q(z|x) with) for a batch x. The objective's value is the
        ELBO (k = 1) or the IWAE bound; its gradient is the one `iw_gradient` says."""
        x = self._check_input(x)
        k = num_samples or self.num_samples
        seed = self.seed_generator if seed is None else seed
        estimator = self.iw_gradient_at(k)
        if estimator in ("stl", "dreg"):
            terms, surrogate = self._reparameterized_iw_terms(x, k, seed, training, posterior_params,
                                                              estimator)
        else:
            terms, surrogate = self._forward(x, k, seed, training, posterior_params=posterior_params), None
        log_likelihood = terms.pop("log_likelihood")
        log_weight = terms.pop("log_weight")
        score_log_q = terms.pop("score_log_q", None)
        terms.pop("log_q", None)
        # A closed-form rate is [B]; broadcast it to the [k, B] of the sampled terms.
        rate = terms.pop("rate") + tf.zeros_like(log_likelihood)
        penalized_rate = terms.pop("penalized_rate") + tf.zeros_like(log_likelihood)
        rate_weight = self.beta * self.kl_warmup
        if estimator == "plain" and k == 1:
            objective = log_likelihood[0] - rate_weight * penalized_rate[0]
        else:
            log_prior_ratio = log_weight - log_likelihood  # log p(z) - log q(z|x)
            tempered = log_likelihood + rate_weight * log_prior_ratio
            objective = objectives.iwae_bound(tempered)
            if surrogate is not None:  # the value of the bound, the gradient of the estimator
                objective = tf.stop_gradient(objective) + surrogate
            elif estimator == "vimco" and score_log_q is not None:
                objective += objectives.vimco_surrogate(tempered, score_log_q)
        per_example = {name: tf.reduce_mean(v + tf.zeros_like(log_likelihood), axis=0)
                       for name, v in terms.items()}  # extras such as per-layer KLs
        per_example.update(
            objective=objective,
            elbo=tf.reduce_mean(log_likelihood - rate, axis=0),
            kl=tf.reduce_mean(rate, axis=0),
            distortion=-tf.reduce_mean(log_likelihood, axis=0),
        )
        return per_example

    def iw_gradient_at(self, num_samples):
        """The estimator of `iw_gradient` that applies to an objective of `num_samples` samples:
        "stl" and "dreg" to the bound of log-weights (k > 1, or k = 1 without a closed-form KL),
        "vimco" for k > 1; else "plain" (the objective's own gradient)."""
        if self.iw_gradient in ("stl", "dreg") and (num_samples > 1 or not self.analytic_kl):
            return self.iw_gradient
        if self.iw_gradient == "vimco" and num_samples > 1:
            return "vimco"
        return "plain"

    def draw_layer(self, latent, params, seed, num_samples=None, training=False, again=False):
        """(z, point) of one latent layer: what every model's `_forward` draws with.

        Normally `latent.draw(...)`. Under `_forward_draws` the draws are recorded in order;
        under `_forward_at` the given draws are returned in that order instead (`again=True`:
        the same layer's draw once more, differentiated otherwise, e.g. the ladder's "stop")."""
        given = _GIVEN_DRAWS.get()
        if given is not None:
            z = given["draws"][given["next"] - 1 if again else given["next"]]
            given["next"] += 0 if again else 1
            return z, z
        z, point = latent.draw(params, seed, num_samples, training)
        recorded = _RECORDED_DRAWS.get()
        if recorded is not None and not again:
            recorded.append(z)
        return z, point

    def _forward_draws(self, x, num_samples, seed, training=False, posterior_params=None):
        """The latent draws of `_forward` (each differentiable along its reparameterized path),
        in the order the model draws them."""
        recorded = []
        token = _RECORDED_DRAWS.set(recorded)
        try:
            self._forward(x, num_samples, seed, training, posterior_params=posterior_params)
        finally:
            _RECORDED_DRAWS.reset(token)
        return recorded

    def _forward_at(self, x, num_samples, draws, training=False, posterior_params=None):
        """`_forward`'s terms at the given draws (as `_forward_draws` returns them)."""
        token = _GIVEN_DRAWS.set({"draws": list(draws), "next": 0})
        try:
            return self._forward(x, num_samples, tf.zeros([2], tf.int32), training,  # (no draws)
                                 posterior_params=posterior_params)
        finally:
            _GIVEN_DRAWS.reset(token)

    def _reparameterized_iw_terms(self, x, k, seed, training, posterior_params, estimator):
        """(terms, surrogate [B]) for "stl" and "dreg" (see the class docstring).

        The draws z_i are made once along their path; the terms are then computed at the
        stopped draws, where an inner tape gives g_i = d log w_i / dz_i (each layer's partial
        derivative, the others held). The zero-valued surrogate's gradient is
          sum_i w~_i (d/d(params) of log w_i at fixed z_i, q's density held fixed)
          + sum_i c_i g_i . dz_i/d(params),
        c_i = w~_i ("stl") or (1 - w) w~_i + w w~_i^2 ("dreg", Tucker et al. 2019, eq. 7 with
        the tempered weights)."""
        path = self._forward_draws(x, k, seed, training, posterior_params)
        given = [tf.stop_gradient(z) for z in path]
        rate_weight = self.beta * self.kl_warmup
        with tf.GradientTape() as tape:
            tape.watch(given)
            terms = self._forward_at(x, k, given, training, posterior_params)
            tempered = ((1.0 - rate_weight) * terms["log_likelihood"]
                        + rate_weight * terms["log_weight"])
        slopes = tape.gradient(tempered, given)  # (rows are independent: each its own g_i)
        normalized = tf.stop_gradient(tf.nn.softmax(tempered, axis=0))  # w~ [k, B]
        weights = normalized if estimator == "stl" else (
            (1.0 - rate_weight) * normalized + rate_weight * tf.square(normalized))
        k_b = tf.shape(tempered)
        along_path = tf.add_n([tf.reshape(tf.reduce_sum(tf.stop_gradient(g) * z, -1), k_b)
                               for g, z in zip(slopes, path)])
        log_q = terms["log_q"]
        explicit = tempered + rate_weight * (log_q - tf.stop_gradient(log_q))  # q's density held
        surrogate = tf.reduce_sum(normalized * (explicit - tf.stop_gradient(explicit))
                                  + weights * (along_path - tf.stop_gradient(along_path)), axis=0)
        return terms, surrogate

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Minus the weighted mean objective, plus regularization losses (`y_pred`, what `call`
        gives a user, is not the objective's input: the terms are `loss_terms(x)`)."""
        terms = self.loss_terms(x, training=training)
        loss = -_weighted_mean(terms["objective"], sample_weight)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=sample_weight)
        if self.losses:
            loss = loss + tf.add_n(self.losses)
        # Under tf.distribute each replica's gradient is summed: average over replicas here,
        # as Keras' own losses do (the train step unscales the `loss` metric again).
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    # -- the public API ------------------------------------------------------------------------
    def elbo(self, x, seed=None):
        """Per-example ELBO: one posterior sample, closed-form KL where available."""
        self._check_values(x)
        return self.loss_terms(x, num_samples=1, seed=seed)["elbo"]

    def log_prob(self, x, num_samples=5000, chunk_size=None, seed=None, jit_compile=True):
        """Per-example IWAE estimate of log p(x): log (1/k) sum_i p(x, z_i) / q(z_i|x).

        Burda et al. 2016; a lower bound in expectation that tightens as k grows. The k samples
        are drawn in chunks of `chunk_size` samples (default: about 4096 decoder rows per chunk,
        so a chunk's [rows, input_dim] logits stay in cache), and memory stays bounded for
        k = 5000.

        Args:
            x: float32 [batch, input_dim].
            num_samples: k.
            chunk_size: samples per chunk.
            seed: int for a reproducible estimate; None draws from the model's generator.
            jit_compile: compile each chunk with XLA (the default: faster in float32 and in
                mixed_bfloat16 alike, benchmarks/results/speed-2026-12-07-iwae.json), or run it
                as a graph without XLA; the same draws either way.

        Returns:
            float32 [batch].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError("num_samples is k of the IWAE estimate, a positive integer (5000 for "
                             f"the field's figure). Received: num_samples={num_samples!r}")
        if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None. Received: "
                             f"chunk_size={chunk_size!r}")
        self._check_values(x)
        x = self._check_input(x)
        batch = int(x.shape[0])
        if chunk_size is None:
            chunk_size = max(1, min(num_samples, 2 ** 12 // max(batch, 1)))
        chunk_function = self.log_weight_logsumexp if jit_compile else self._log_weight_logsumexp_graph
        total = None
        for i, start in enumerate(range(0, num_samples, chunk_size)):
            size = min(chunk_size, num_samples - start)
            chunk_seed = (estimators.seed_pair(self.seed_generator) if seed is None
                          else tf.constant([seed, i], tf.int32))
            part = chunk_function(x, size, chunk_seed)
            total = part if total is None else tf.experimental.numpy.logaddexp(total, part)
        return total - math.log(num_samples)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def log_weight_logsumexp(self, x, num_samples, seed):
        """log sum_i p(x, z_i) / q(z_i|x) over k = `num_samples` draws at the int32 [2] `seed`,
        [batch]: `log_prob`'s chunk (compiled by XLA) and the exported `log_prob` signature."""
        return self._log_weight_sum(x, num_samples, seed)

    @tf.function(reduce_retracing=True)
    def _log_weight_logsumexp_graph(self, x, num_samples, seed):
        """`log_weight_logsumexp` as a graph without XLA (`log_prob(jit_compile=False)`)."""
        return self._log_weight_sum(x, num_samples, seed)

    def _log_weight_sum(self, x, num_samples, seed):
        return tf.reduce_logsumexp(self._forward(x, num_samples, seed)["log_weight"], axis=0)

    def sample(self, num_samples, seed=None, mean=True):
        """`num_samples` draws of x from the model: z ~ p(z), then p(x|z)'s mean (or a draw).

        Args:
            num_samples: how many.
            seed: int for reproducible samples; None draws from the model's generator.
            mean: return E[x|z] (smooth images) instead of a sample of p(x|z).
        """
        self._ensure_built()
        seed = self.seed_generator if seed is None else seed
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(
            estimators.seed_pair(seed), 2))
        params = self.generate(num_samples, z_seed)
        if mean:
            return self.likelihood_layer.mean(params)
        return self.likelihood_layer.sample(params, x_seed)

    def summary(self, print_fn=None, **kwargs):
        """The model's parts, one row each: name, class, shapes (a network's input -> output,
        a distribution layer's parameters over its event shape) and parameter count; then
        Keras' own summary of the same layers when `expand=True`. Builds the model first."""
        self._ensure_built()
        if kwargs.pop("expand", False):
            super().summary(print_fn=print_fn, **kwargs)
        rows = [("part", "class", "shapes", "params")]
        for layer in self.layers:
            if isinstance(layer, keras.metrics.Metric):
                continue
            rows.append((layer.name, type(layer).__name__, _part_shapes(layer),
                         f"{layer.count_params():,}" if layer.built else "?"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"{type(self).__name__} {self.name!r}: x {format_shape(self.input_shape)}, "
                 f"top latent {format_shape(self.latent_shape)}, estimator {self.estimator}"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"total: {self.count_params():,} parameters")
        for line in lines:
            (print_fn or print)(line)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, **kwargs):
        """`keras.Model.compile` with the optimizer and training options (`jit_compile`,
        `steps_per_execution`, ...). The loss and metrics are the model's own (minus the ELBO or
        IWAE bound; `loss`, `elbo`, `kl`, `distortion`), so `loss=`, `metrics=` and their
        weights are refused: Keras would compare the model's output with a `y` the data does
        not have, or silently drop the loss."""
        given = {name: value for name, value in (("loss", loss), ("loss_weights", loss_weights),
                                                 ("metrics", metrics),
                                                 ("weighted_metrics", weighted_metrics))
                 if value is not None}
        if given:
            raise ValueError(
                f"{type(self).__name__} computes its own loss (minus the ELBO, or the IWAE bound "
                "when num_samples > 1) and tracks its own metrics (loss, elbo, kl, distortion): "
                "compile it with the optimizer only. For other figures use tfvae.evaluation or a "
                "callback. Received: " + ", ".join(f"{k}={v!r}" for k, v in given.items()))
        super().compile(optimizer=optimizer, **kwargs)

    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`, building the model first so the file holds its weights."""
        self._ensure_built()
        return super().save(filepath, *args, **kwargs)

    def compile_from_config(self, config):
        """Restores the compiled state of a saved model (Keras skips a custom `compile` here)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the data checked first (`check_data`): arrays at once, a
        `tf.data.Dataset` by its element shape and then batch by batch as it is read. A fit
        that fails leaves no half-made train function behind, so the next one starts clean.

        `sample_weight` (and `class_weight`, with labels as y) weights each example's
        objective: the loss is sum_n w_n f(x_n) / sum_n w_n over a batch, so a weight of 0
        leaves an example out and a weight of 2 counts it twice. The labels are not modelled."""
        x = self.checked_data(x, "Training data", "x")
        y = _labels_carrying_weights(x, y, kwargs.get("sample_weight"), kwargs.get("class_weight"))
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = _validation_carrying_weights(self.checked_data(
                kwargs["validation_data"], "Validation data", "validation_data"))
        try:
            return super().fit(x, y, *args, **kwargs)
        except BaseException as e:
            self.train_function = self.test_function = self.predict_function = None
            _raise_checked_batch_error(e)
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked first as `fit` checks it (fit's
        validation data once, not again at every epoch's evaluation); `sample_weight` weights
        the examples' terms as in `fit`."""
        if not kwargs.get("_use_cached_eval_dataset"):
            x = self.checked_data(x, "Evaluation data", "x")
            y = _labels_carrying_weights(x, y, kwargs.get("sample_weight"))
        try:
            return super().evaluate(x, y, *args, **kwargs)
        except BaseException as e:
            self.test_function = None
            _raise_checked_batch_error(e)
            raise

    def checked_data(self, data, what="Training data", argument="x"):
        """`data` (an array, a Dataset, or Keras' (x,), (x, y), (x, y, w) tuples), with x
        checked by `check_data` (arrays) or as it is read (datasets: `fit` and `evaluate` do
        this; a dataset distributed by hand is checked by mapping this over each worker's
        share); `what` and `argument` name it in messages."""
        if isinstance(data, (tuple, list)) and data and isinstance(data[0], (np.ndarray, tf.Tensor)):
            self.check_data(data[0], what)
        elif isinstance(data, (np.ndarray, tf.Tensor)):
            self.check_data(data, what)
        elif isinstance(data, tf.data.Dataset):
            self._check_element_spec(data.element_spec, argument)
            data = data.map(functools.partial(self._checked_batch, what=what))
        return data

    def _check_element_spec(self, spec, what):
        """Refuses a dataset whose batches this model cannot take, before Keras builds anything."""
        if isinstance(spec, (tuple, list)) and spec:
            spec = spec[0]  # (x, ...) pairs: the model reads x
        expected = f"batches of shape {format_shape(self.input_shape)}"
        if not isinstance(spec, tf.TensorSpec):
            raise ValueError(f"{what}: a tfvae model trains on a dataset of {expected} (or of "
                             f"(x, ...) tuples). Received: element_spec={spec}")
        shape = spec.shape
        if _matches(shape, self.input_shape):
            raise ValueError(f"{what}: the dataset yields single examples of shape {shape}, not "
                             f"batches: call .batch(batch_size) on it. A {type(self).__name__} "
                             f"takes {expected}.")
        if shape.rank is None:
            raise ValueError(f"{what}: the dataset's batches have an unknown shape (e.g. after "
                             "tf.numpy_function or tf.py_function); give it with "
                             f"dataset.map(lambda x: tf.ensure_shape(x, {[None, *self.input_shape]})). "
                             f"{type(self).__name__} takes {expected}.")
        if not _matches(shape[1:], self.input_shape):
            raise ValueError(f"{what}: {type(self).__name__} takes {expected}. Received a "
                             f"dataset of shape {shape}.")
        if not (spec.dtype.is_floating or (spec.dtype.is_integer and self.likelihood.accepts_integers)):
            raise ValueError(f"{what}: {type(self).__name__} takes float batches. Received "
                             f"dtype {spec.dtype.name}; map it with tf.cast(x, tf.float32) / 255.")

    def _checked_batch(self, *element, what="Training data"):
        """A dataset's batch, with the checks of `check_data` run as it is read."""
        x = element[0]
        fix = likelihoods.fix_for(what)
        checks = ([tf.debugging.assert_all_finite(x, f"{what} has a non-finite value. {fix}")]
                  if x.dtype.is_floating else [])
        checks += self.likelihood.batch_checks(x, what, fix)
        with tf.control_dependencies(checks):
            x = tf.identity(x)
        return (x,) + element[1:] if len(element) > 1 else x

    def check_data(self, x, what="Training data"):
        """Raises ValueError for data this model cannot train on or evaluate, naming the first
        bad example: the wrong shape or dtype, a non-finite value, or a value the likelihood is
        not defined on (`likelihood.check`: a Bernoulli's x outside [0, 1], say). `what` names
        the data in the message."""
        x = self._check_input(x).numpy()
        likelihoods.refuse_first(x, ~np.isfinite(x), "a non-finite value", what)
        self.likelihood.check(x, what)

    def _check_values(self, x):
        """`check_data` on x when its values can be read here (eagerly): a likelihood of data
        it is not defined on is a number that looks plausible, not an error."""
        if tf.executing_eagerly():
            self.check_data(x, "Data")

    def _check_input(self, x):
        x = tf.convert_to_tensor(x)
        expected = format_shape(self.input_shape)
        if not (x.dtype.is_floating or (x.dtype.is_integer and self.likelihood.accepts_integers)):
            values = ("" if self.likelihood.data_range is None else
                      " in [{:g}, {:g}]".format(*self.likelihood.data_range))
            how = self.likelihood.input_hint(x.dtype)
            raise ValueError(f"{type(self).__name__} expects float inputs{values} of shape "
                             f"{expected}. Received dtype {x.dtype.name}; {how}.")
        if x.shape.rank is None or not _matches(x.shape[1:], self.input_shape):
            raise ValueError(f"{type(self).__name__} expects inputs of shape {expected}. "
                             f"Received shape {x.shape}.")
        self._ensure_built()
        return tf.cast(x, tf.float32)

    def _check_latent(self, z, width, method="decode"):
        """z as float32 [batch, width], or a ValueError naming the shape expected; builds the
        model first (from the declared widths), so a wrong z never builds a network at its width."""
        z = tf.convert_to_tensor(z)
        if not z.dtype.is_floating:
            raise ValueError(f"{type(self).__name__}.{method} expects float z of shape [batch, "
                             f"{width}]. Received dtype {z.dtype.name}.")
        if z.shape.rank != 2 or (z.shape[-1] is not None and z.shape[-1] != width):
            raise ValueError(f"{type(self).__name__}.{method} expects z of shape [batch, {width}]. "
                             f"Received shape {z.shape}.")
        self._ensure_built()
        return tf.cast(z, tf.float32)

    def _ensure_built(self):
        # Build from the declared width, not the first batch, so any batch size works later.
        if not self.built:
            self.build((None,) + self.input_shape)

    def _check_build_shape(self, input_shape):
        """`build` takes the declared input shape only (Keras may offer a dataset's shape)."""
        shape = tuple(input_shape)
        if not shape or not _matches(shape[1:], self.input_shape):
            raise ValueError(f"{type(self).__name__} is built for inputs of shape "
                             f"{format_shape(self.input_shape)}. Received input_shape={shape}.")

    def _decode_samples(self, z, training=False):
        """Decodes z of shape [k, B, L] by flattening to [k*B, L]; params come back [k, B, D]."""
        k, b = tf.shape(z)[0], tf.shape(z)[1]
        params = self.decode(tf.reshape(z, [k * b, -1]), training=training)
        return {name: tf.reshape(v, tf.concat([[k, b], tf.shape(v)[1:]], 0))
                for name, v in params.items()}

    def _one_layer_terms(self, x, q, num_samples, seed, training=False, prior_log_prob=None):
        """`_forward`'s terms for a model with one latent layer, `posterior_layer`, whose
        parameters at x are q [B, L]: its family's standard prior (the KL per unit, closed
        form when `analytic_kl`, so free bits can floor each unit), or the prior whose
        `prior_log_prob(z)` is given (a mixture, the harmonium's marginal: the Monte Carlo
        log q(z|x) - log p(z), as one term)."""
        latent = self.posterior_layer
        z, point = self.draw_layer(latent, q, seed, num_samples, training)  # [k, B, L]
        log_likelihood = self.likelihood_layer.log_prob(self._decode_samples(z, training), x)
        if prior_log_prob is None:
            p = latent.standard_params(tf.shape(x)[0])
            unit_ratio = latent.unit_log_ratio(q, p, point, training)
            closed_form = self.analytic_kl and not latent.is_relaxed(training)
            rate_per_unit = latent.unit_kl(q, p, point, training=training) if closed_form else unit_ratio
            log_ratio = tf.reduce_sum(unit_ratio, -1)
        else:
            closed_form = False
            flat = tf.reshape(point, [-1, latent.units])
            log_prior = tf.reshape(prior_log_prob(flat), tf.shape(point)[:-1])
            log_ratio = latent.log_prob(q, point) - log_prior
            rate_per_unit = log_ratio[..., None]
        rows = tf.shape(log_likelihood)  # [k, B]
        layer = LayerTerms(
            latent, q, z,
            rate_per_unit=tf.broadcast_to(rate_per_unit, tf.concat([rows, tf.shape(rate_per_unit)[-1:]], 0)),
            log_ratio=log_ratio, depends_on_draws=not closed_form)
        return self._accumulate_layers(x, log_likelihood, [layer], training)

    def _accumulate_layers(self, x, log_likelihood, layers, training=False):
        """`_forward`'s terms from the likelihood and each latent layer's share (`LayerTerms`),
        the one place where the rate, the log-weight, free bits and the score function's terms
        are put together, for every model:

          log w = log p(x|z) - sum_l log_ratio_l          rate = sum_l sum_units rate_l
          penalized_rate = sum_l free_bits(rate_l)        kl_<l> = sum_units rate_l (L > 1)

        With one sample and a layer drawn with the score function, its learning signal is
        f = log p(x|z) - beta * warm-up * (the penalized rate of the layers whose rate depends
        on a draw: sampled, or conditioned on another layer's draw). A closed-form rate that
        depends on no draw (a flat model's analytic KL, a ladder's top layer) has its own exact
        gradient and would only add variance to f. Shapes: `log_likelihood` [k, B]; a layer's
        `rate_per_unit` reshapes to [k, B, units] and `log_ratio` to [k, B]."""
        k_b = tf.shape(log_likelihood)

        def per_sample(v):
            return tf.reshape(v, k_b)

        rates = [tf.reshape(layer.rate_per_unit, tf.concat([k_b, [-1]], 0)) for layer in layers]
        kls = [tf.reduce_sum(rate, -1) for rate in rates]
        penalized = [objectives.free_bits_rate(rate, self.free_bits) for rate in rates]
        terms = {f"kl_{i}": kl for i, kl in enumerate(kls)} if len(layers) > 1 else {}
        terms.update(
            log_likelihood=log_likelihood,
            log_weight=log_likelihood - tf.add_n([per_sample(layer.log_ratio) for layer in layers]),
            rate=tf.add_n(kls), penalized_rate=tf.add_n(penalized))
        scored = [layer for layer in layers if layer.latent.estimator == "score_function"]
        if self.iw_gradient in ("stl", "dreg"):  # log q(z|x) at the draws, [k, B]
            terms["log_q"] = tf.add_n([per_sample(layer.latent.log_prob(layer.q, layer.z))
                                       for layer in layers])
        if self.iw_gradient == "vimco" and scored:  # log q of the score-function layers' draws
            terms["score_log_q"] = tf.add_n([
                per_sample(layer.latent.log_prob(layer.q, tf.stop_gradient(layer.z)))
                for layer in scored])
        if scored and log_likelihood.shape[0] == 1:
            signal = log_likelihood[0]
            dependent = [rate for rate, layer in zip(penalized, layers) if layer.depends_on_draws]
            if dependent:
                signal -= self.beta * self.kl_warmup * tf.add_n(dependent)[0]
            terms["log_likelihood"] += tf.add_n([
                layer.latent.score_function_term(x, layer.q, tf.reshape(layer.z, [-1, layer.latent.units]),
                                                 signal, training)
                for layer in scored])[None]
            terms["learning_signal"] = signal[None]
        return terms

    def load_own_variables(self, store):
        """Keras' own, after the files of earlier versions are read (`tfvae.models.legacy`)."""
        super().load_own_variables(legacy.upgrade_own_variables(self, store))
        # A file saved during KL warm-up (a ModelCheckpoint) is the model, not the schedule:
        # loaded, it measures the whole objective (KLWarmup sets the weight again each epoch).
        self.kl_warmup.assign(1.0)

    @classmethod
    def from_config(cls, config):
        """The model of a config, saved by this version or an earlier one (its old spellings
        are translated by `tfvae.models.legacy.upgrade_config`)."""
        target, config = legacy.upgrade_config(cls, config)
        return cls(**config) if target is cls else target.from_config(config)

    def get_config(self):
        config = super().get_config()
        config.update(input_shape=self.input_shape,
                      likelihood=(self.likelihood_spec if isinstance(self.likelihood_spec, str)
                                  else keras.saving.serialize_keras_object(self.likelihood_layer)),
                      likelihood_scale=self.likelihood_scale, analytic_kl=self.analytic_kl,
                      num_samples=self.num_samples, beta=self.beta, free_bits=self.free_bits,
                      seed=self.seed, iw_gradient=self.iw_gradient)
        return config


def _part_shapes(layer):
    """How `summary` shows a part's shapes: a distribution layer's parameters and event shape
    (e.g. "loc, scale: [batch, 16]"), a network's input -> output as built."""
    if isinstance(layer, distributions.DistributionLayer):
        names = ", ".join(getattr(getattr(layer, "family", None), "param_names", ()))
        return f"{names}: {format_shape(layer.event_shape)}"
    if hasattr(layer, "latent_dim") and hasattr(layer, "params"):  # a prior part
        return f"z: {format_shape((layer.latent_dim,))}"
    built = getattr(layer, "_build_shapes_dict", None) or {}  # (Keras records build shapes)
    if len(built) != 1:
        return "?"
    input_shape = next(iter(built.values()))
    if input_shape is None:  # a functional model records no build shape: its keras.Input's
        declared = declared_input_shape(layer)
        if declared is None:
            return "?"
        input_shape = (None,) + declared
    input_shape = tuple(input_shape)
    try:
        output_shape = tuple(layer.compute_output_shape(input_shape))
    except Exception:  # noqa: BLE001  (a layer without shape inference)
        return format_shape(input_shape[1:]) + " -> ?"
    return f"{format_shape(input_shape[1:])} -> {format_shape(output_shape[1:])}"


def _matches(shape, expected):
    """Whether a (possibly partly unknown) shape is `expected`; unknown sizes match any."""
    shape = tf.TensorShape(shape) if shape is not None else tf.TensorShape(None)
    shape = tuple(shape.as_list()) if shape.rank is not None else None
    return (shape is not None and len(shape) == len(expected)
            and all(d is None or d == e for d, e in zip(shape, expected)))


class PriorPart:
    """For models whose top latent layer has a prior part (`prior_layer`, `prior_kind`, see
    `tfvae.priors.prior_part`): a VampPrior starts from training data."""

    @property
    def initialization_examples(self):
        return 0 if self.prior_layer is None else self.prior_layer.initialization_examples

    def initialize_from_data(self, x):
        if self.initialization_examples:
            self._ensure_built()
            self.prior_layer.initialize_from_data(x)


def _common(values, default):
    """The one value of a set besides `default`; `default` when empty; "mixed" otherwise."""
    values = set(values) - {default}
    return values.pop() if len(values) == 1 else (default if not values else "mixed")


def _labels_carrying_weights(x, y, sample_weight, class_weight=None):
    """y for Keras' data adapter: Keras drops `sample_weight` when y is None (it packs x alone),
    so unlabelled arrays get a placeholder y of zeros that carries the weights to
    `compute_loss` (the objective does not read y). `class_weight` needs the labels."""
    if y is not None or not isinstance(x, (np.ndarray, tf.Tensor)):
        return y
    if class_weight is not None:
        raise ValueError("class_weight weights each example by its label: pass the labels as y, "
                         "e.g. model.fit(x, labels, class_weight={0: 1.0, 1: 2.0}), or give "
                         "per-example weights with sample_weight=.")
    if sample_weight is None:
        return None
    return np.zeros((int(x.shape[0]),), np.float32)


def _validation_carrying_weights(data):
    """Keras' (x, None, sample_weight) validation tuple with y a placeholder that keeps the
    weights (see `_labels_carrying_weights`)."""
    if isinstance(data, (tuple, list)) and len(data) == 3 and data[1] is None and data[2] is not None:
        return (data[0], _labels_carrying_weights(data[0], None, data[2]), data[2])
    return data


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return tf.reduce_mean(values)
    sample_weight = tf.cast(tf.reshape(sample_weight, tf.shape(values)), values.dtype)
    return tf.reduce_sum(values * sample_weight) / tf.maximum(tf.reduce_sum(sample_weight), 1e-12)
