"""The flat VAE: one layer of latents, Gaussian with p(z) = N(0, I) (Kingma & Welling 2014) or
binary with p(z) = Bernoulli(1/2) (the binary-latent VAE; its draws are `LatentDraws`')."""
import keras
import tensorflow as tf

from tfvae import latents, networks, priors
from tfvae.models.base import (MAX_ENUMERATED_UNITS, BaseVAE, PriorPart, check_num_samples,
                               build_network, declared_input_shape, decoder_gives_parameters,
                               likelihood_part, network_part, output_shape)

ARCHITECTURES = ("mlp", "conv", "residual")
# the options of the shorthand latent that a `Latent` part holds itself
LATENT_PART_OPTIONS = ("estimator", "baseline", "baseline_decay", "temperature", "posterior_scale",
                       "min_scale")
_IMAGE_SIDE = 28  # the conv shorthand for flat data is for 28x28 single-channel images (784,)


def mlp(units, activation, name, flatten=False):
    """Dense layers of the given widths, all with `activation` (the identity when `units` is
    empty: a linear encoder/decoder, e.g. probabilistic PCA); `flatten` first for inputs of
    rank > 1."""
    layers = [keras.layers.Flatten()] if flatten else []
    layers += [keras.layers.Dense(u, activation=activation) for u in units]
    return keras.Sequential(layers or [keras.layers.Identity()], name=name)


def conv_encoder(hidden, activation, name, image_shape=None):
    """Images (H, W, C) -> two stride-2 3x3 convolutions (32, 64 channels) -> Dense layers
    `hidden`. Without `image_shape`, flat 784-vectors are read as 28x28x1 images."""
    reshape = [] if image_shape else [keras.layers.Reshape((_IMAGE_SIDE, _IMAGE_SIDE, 1))]
    return keras.Sequential(
        reshape
        + [keras.layers.Conv2D(32, 3, strides=2, padding="same", activation=activation),
           keras.layers.Conv2D(64, 3, strides=2, padding="same", activation=activation),
           keras.layers.Flatten()]
        + [keras.layers.Dense(u, activation=activation) for u in hidden], name=name)


def conv_decoder(hidden, activation, channels, name, image_shape=None):
    """The mirror of `conv_encoder`, ending in `channels` un-activated outputs per pixel: an
    image of `image_shape` (H, W, C = channels), or flat (784 * channels,) without it."""
    height, width = image_shape[:2] if image_shape else (_IMAGE_SIDE, _IMAGE_SIDE)
    ending = [] if image_shape else [keras.layers.Flatten()]
    return keras.Sequential(
        [keras.layers.Dense(u, activation=activation) for u in reversed(hidden)]
        + [keras.layers.Dense((height // 4) * (width // 4) * 64, activation=activation),
           keras.layers.Reshape((height // 4, width // 4, 64)),
           keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation=activation),
           keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same")]
        + ending, name=name)


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(PriorPart, BaseVAE):
    """Variational autoencoder with a diagonal Gaussian posterior, or Bernoulli latents.

    q(z|x) = N(mu(x), diag(sigma(x)^2)), p(x|z) Bernoulli or Gaussian, p(z) N(0, I) or a learned
    prior (`tfvae.priors`), trained on the ELBO E_q[log p(x|z)] - beta KL[q(z|x) || p(z)]
    (k = 1; closed-form KL when `analytic_kl` and the prior is N(0, I), else the Monte Carlo
    estimate) or on the IWAE bound with k = `num_samples` > 1 (Burda et al. 2016).

    With `latent="bernoulli"`, q(z|x) = Bernoulli(sigmoid(logits(x))) and p(z) = Bernoulli(1/2)
    per unit (the binary-latent VAE); the draw is differentiated by `estimator` and the KL is
    the closed form when `analytic_kl` (not for relaxed draws: there log q - log p of the
    logistic densities at the relaxed draw, the prior relaxed at the same temperature).

    The networks are parts: pass your own `encoder` (x [batch, *input_shape] -> features of
    any shape) and `decoder` (z [batch, latent_dim] -> features), any serializable Keras layer
    or model, or let `hidden` / `architecture` build them. q's parameters are a Dense
    projection of the encoder's (flattened) features. When the decoder's output has the data's
    shape it is taken as the likelihood's parameters (logits, or the Gaussian's mean);
    otherwise a Dense projection of its features gives them, in the data's shape.

    Args:
        input_shape: the shape of one example, any rank: (784,), (28, 28, 1), (32, 32, 3),
            (64,). (`input_dim=D` is the old spelling of (D,).)
        latent_dim: latent dimension L.
        encoder, decoder: Keras layers or models; None builds them from `hidden`/`architecture`.
        hidden: widths of the encoder's Dense layers; the decoder uses them reversed.
        activation: activation of the hidden layers.
        architecture: "mlp", or "conv" (small convolutional codecs for images (H, W, C) with H
            and W divisible by 4, or for flat 784-vectors read as 28x28 images), or "residual"
            (`tfvae.networks`' residual conv codecs for images (H, W, C), `hidden` the widths
            of its scales, one residual block each).
        likelihood: "bernoulli" (data in [0, 1]) or "gaussian" (real data).
        likelihood_scale: Gaussian likelihood only: None learns a scale per value.
        posterior_scale: "softplus" or "exp" for sigma(x); `min_scale` floors it.
        analytic_kl: closed-form KL (True) or the one-sample Monte Carlo estimate.
        num_samples: k; 1 trains the ELBO, k > 1 the IWAE bound.
        beta: weight of the KL (beta-VAE, Higgins et al. 2017).
        free_bits: minimum KL per latent unit, in nats (Kingma et al. 2016); N(0, I) prior only.
        prior: "standard_normal", "mixture" (learned Gaussian mixture) or "vamp" (VampPrior,
            Tomczak & Welling 2018), each with `prior_components` components; or a prior layer
            of `tfvae.priors` (a part, e.g. `tfvae.priors.MixturePrior(16, 10)`).
        seed: seed of the model's sampling.
        latent: the latent family, "gaussian" or "bernoulli" (then prior="standard_normal"
            means the factorized Bernoulli(1/2); mixture and vamp priors are Gaussian only).
        estimator: how the latent draw is differentiated (`tfvae.estimators`): "pathwise"
            (Gaussian, the only choice); "straight_through" (Bernoulli default),
            "score_function" or "relaxed" (Bernoulli).
        baseline: score function only: "none", "moving_average" (of the learning signal) or
            "learned" (moving average plus a linear function of x fit by least squares).
        baseline_decay: the moving average's decay per training step.
        temperature: of the relaxed estimator.

    Example:
    >>> model = tfvae.VAE(input_shape=(784,), latent_dim=50, hidden=(200, 200))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(tfvae.data.load("mnist", "train", binarize="dynamic"), epochs=10)
    >>> encoder = keras.Sequential([keras.layers.Conv2D(32, 3, 2, activation="relu"),
    ...                             keras.layers.Flatten()])
    >>> decoder = keras.Sequential([keras.layers.Dense(7 * 7 * 32, activation="relu"),
    ...                             keras.layers.Reshape((7, 7, 32)),
    ...                             keras.layers.Conv2DTranspose(1, 4, 4)])
    >>> model = tfvae.VAE(input_shape=(28, 28, 1), latent_dim=16, encoder=encoder,
    ...                   decoder=decoder)                    # your own networks
    >>> model = tfvae.VAE(input_shape=(784,), latent_dim=200, latent="bernoulli",
    ...                   estimator="score_function", baseline="learned")  # binary latents
    """

    def __init__(self, input_shape=None, latent_dim=None, hidden=(200, 200), activation="tanh",
                 architecture="mlp", likelihood="bernoulli", likelihood_scale=None,
                 posterior_scale="softplus", min_scale=1e-4, analytic_kl=True, num_samples=1,
                 beta=1.0, free_bits=0.0, prior="standard_normal", prior_components=500, seed=None,
                 encoder=None, decoder=None, latent="gaussian", estimator=None,
                 baseline="moving_average", baseline_decay=0.99, temperature=0.5, **kwargs):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}. "
                             f"Received: architecture={architecture!r}")
        latent_layer = latents.latent_part(latent, latent_dim, estimator, baseline, baseline_decay,
                                           scale_activation=posterior_scale, min_scale=min_scale,
                                           temperature=temperature, name="posterior")
        latent_dim = latent_layer.units
        check_num_samples(latent_layer, num_samples, kwargs.get("iw_gradient", "plain"))
        if latent_layer.family.name != "gaussian" and prior != "standard_normal":
            raise ValueError(
                f"{latent_layer.family.name.capitalize()} latents have their family's standard "
                "prior (prior='standard_normal' means the factorized Bernoulli(1/2) for binary "
                "latents): mixture and VampPrior priors are mixtures of Gaussians, for "
                "latent='gaussian'. Received: "
                f"prior={prior if isinstance(prior, str) else type(prior).__name__!r}")
        if input_shape is None and kwargs.get("input_dim") is None and encoder is not None:
            input_shape = declared_input_shape(encoder)  # (an encoder that declares keras.Input)
        if isinstance(hidden, (int, str)):
            raise ValueError(f"hidden must be a sequence of positive integers, e.g. "
                             f"hidden=({hidden!r},). Received: hidden={hidden!r}")
        hidden = tuple(hidden)
        if not all(isinstance(u, int) and u > 0 for u in hidden):
            raise ValueError(f"hidden must be a sequence of positive integers. Received: hidden={hidden!r}")
        super().__init__(input_shape=input_shape, likelihood=likelihood,
                         likelihood_scale=likelihood_scale, analytic_kl=analytic_kl,
                         num_samples=num_samples, beta=beta, free_bits=free_bits, seed=seed,
                         **kwargs)
        shape = self.input_shape
        image_shape = shape if len(shape) == 3 else None
        if architecture == "conv" and (encoder is None or decoder is None):
            if not (shape == (_IMAGE_SIDE ** 2,) or (image_shape and shape[0] % 4 == 0
                                                      and shape[1] % 4 == 0)):
                raise ValueError("architecture='conv' is for images (H, W, C) with H and W "
                                 "divisible by 4, or flat 28x28 images (784,); pass your own "
                                 f"encoder and decoder for other data. Received: input_shape={shape}")
        self.architecture = architecture
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.posterior_scale = posterior_scale
        self.min_scale = min_scale
        # The user's own networks are part of the config; the shorthand's are rebuilt from it.
        self.custom_encoder, self.custom_decoder = encoder is not None, decoder is not None
        part = likelihood_part(likelihood, likelihood_scale)
        if encoder is not None:
            self.encoder = network_part(encoder, "encoder")
        elif architecture == "mlp":
            self.encoder = mlp(hidden, activation, name="encoder", flatten=len(shape) > 1)
        elif architecture == "residual":
            self.encoder = networks.residual_encoder(shape, hidden, activation=activation, name="encoder")
        else:
            self.encoder = conv_encoder(hidden, activation, name="encoder", image_shape=image_shape)
        if decoder is not None:
            self.decoder = network_part(decoder, "decoder")
        elif architecture == "mlp":
            self.decoder = mlp(tuple(reversed(hidden)), activation, name="decoder")
        elif architecture == "residual":  # the likelihood's parameters per pixel
            self.decoder = networks.residual_decoder(latent_dim, shape, part.params_shape(shape)[-1],
                                                     tuple(reversed(hidden)), activation=activation,
                                                     name="decoder")
        else:  # the likelihood's parameters per pixel: the logits, or the Gaussian's mean
            channels = part.params_shape(image_shape or (1,))[-1]
            self.decoder = conv_decoder(hidden, activation, channels, name="decoder",
                                        image_shape=image_shape)
        if self.custom_decoder:
            parameters_out = decoder_gives_parameters(self.decoder, latent_dim, shape, part)
        else:  # (the conv shorthands' decoders give the parameters)
            parameters_out = architecture != "mlp"
        self.likelihood_layer = part.bind(shape, project=not parameters_out)
        self.custom_latent = isinstance(latent, (latents.Latent, dict))
        self.latent = latent_layer.family.name
        self.baseline_decay = float(baseline_decay)  # (the shorthand's; the part has its own)
        self.temperature = float(temperature)
        self.posterior_layer = latent_layer
        self.prior_components = prior_components
        if self.latent != "gaussian":  # the family's standard prior, Bernoulli(1/2)
            self.custom_prior, self.prior_layer, self.prior_kind = False, None, "standard_normal"
            return
        # A VampPrior's pseudo-inputs live in the data's range: (0, 1) for Bernoulli data,
        # unconstrained for real values.
        self.custom_prior = not isinstance(prior, str)
        self.prior_layer, self.prior_kind = priors.prior_part(
            prior, latent_dim, prior_components, shape, encode=self.encode,
            pseudo_input_range=self.likelihood_layer.data_range)
        priors.check_free_bits(free_bits, self.prior_kind)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        input_shape = (None,) + self.input_shape
        for network, shape in ((self.encoder, input_shape), (self.decoder, (None, self.latent_dim))):
            build_network(network, shape)  # (your own network may come built, e.g. with an Input)
        if not self.posterior_layer.built:  # (a latent part comes built from its config)
            self.posterior_layer.build(output_shape(self.encoder, self.input_shape, "encoder"))
        self.posterior_layer.build_baseline(input_shape)
        self.likelihood_layer.build(output_shape(self.decoder, (self.latent_dim,), "decoder"))
        if self.prior_layer is not None and not self.prior_layer.built:
            self.prior_layer.build()  # (a prior part may come built, e.g. from its config)
        self.built = True

    @property
    def capabilities(self):
        if self.latent == "gaussian":
            return frozenset({"gaussian_posterior"})
        if self.latent == "bernoulli" and self.latent_dim <= MAX_ENUMERATED_UNITS:
            return frozenset({"enumerable_latents"})  # (the 2^m binary states)
        return frozenset()

    @property
    def kl_estimate(self):
        if self.posterior_layer.estimator == "relaxed":
            return "monte_carlo"
        return super().kl_estimate

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def latent_layers(self):
        return [self.posterior_layer]

    def encoder_weights(self):
        return self.encoder.trainable_weights + self.posterior_layer.trainable_weights

    def encode(self, x, training=False):
        """q(z|x)'s parameters: {"loc", "scale"} (Gaussian) or {"logits", "probs"} (Bernoulli),
        each [batch, latent_dim]."""
        x = self.likelihood.network_input(self._check_input(x))
        return self.posterior_layer(self.encoder(x, training=training))

    def posterior(self, x):
        """q(z|x) as a `tfd.Distribution` with batch shape [batch], event shape [latent_dim]."""
        return self.posterior_layer.distribution(self.encode(x))

    def prior(self):
        """p(z) as a `tfd.Distribution`: N(0, I), a mixture (`tfvae.priors`) or Bernoulli(1/2)."""
        if self.prior_layer is None:
            return self.posterior_layer.distribution(self.posterior_layer.standard_params(1))
        return self.prior_layer.distribution()

    def prior_log_prob(self, z, log_partition=None):
        """log p(z), [batch] (the prior is normalized: `log_partition` is not used)."""
        if self.prior_layer is None:
            latent = self.posterior_layer
            return latent.log_prob(latent.standard_params(tf.shape(z)[0]), z)
        return self.prior_layer.log_prob(z)

    def decode(self, z, training=False):
        """p(x|z)'s parameters, e.g. {"logits", "probs"}, each [batch, *input_shape]."""
        z = self._check_latent(z, self.latent_dim)
        return self.likelihood_layer(self.decoder(z, training=training))

    def reconstruct(self, x):
        return self.likelihood_layer.mean(self.decode(self.latent_means(x)[0]))

    def prior_sample(self, num_samples, seed):
        self._ensure_built()
        if self.prior_layer is None:
            latent = self.posterior_layer
            return latent.sample(latent.standard_params(num_samples), seed)
        return self.prior_layer.sample(num_samples, seed)

    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        q = posterior_params or self.encode(x, training=training)
        standard = self.prior_layer is None or self.prior_layer.factorizes
        return self._one_layer_terms(x, q, num_samples, seed, training,
                                     prior_log_prob=None if standard else self.prior_layer.log_prob)

    @classmethod
    def from_config(cls, config):
        if isinstance(config.get("latent"), dict):  # a part: its own config says how it draws
            config = {k: v for k, v in config.items() if k not in LATENT_PART_OPTIONS}
        return super().from_config(config)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, hidden=self.hidden, activation=self.activation,
                      architecture=self.architecture, posterior_scale=self.posterior_scale,
                      min_scale=self.min_scale,
                      prior=(keras.saving.serialize_keras_object(self.prior_layer)
                             if self.custom_prior else self.prior_kind),
                      prior_components=self.prior_components,
                      encoder=(keras.saving.serialize_keras_object(self.encoder)
                               if self.custom_encoder else None),
                      decoder=(keras.saving.serialize_keras_object(self.decoder)
                               if self.custom_decoder else None),
                      latent=(keras.saving.serialize_keras_object(self.posterior_layer)
                              if self.custom_latent else self.latent),
                      estimator=self.posterior_layer.estimator,
                      baseline=self.posterior_layer.baseline,
                      baseline_decay=self.posterior_layer.baseline_decay,
                      temperature=self.temperature)
        return config

