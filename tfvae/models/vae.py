"""The flat VAE: one layer of Gaussian latents, p(z) = N(0, I) (Kingma & Welling 2014)."""
import keras
import tensorflow as tf

from tfvae import distributions, objectives, priors
from tfvae.models.base import BaseVAE

ARCHITECTURES = ("mlp", "conv")
_IMAGE_SIDE = 28  # the conv architecture is for 28x28 single-channel images


def mlp(units, activation, name):
    """Dense layers of the given widths, all with `activation` (the identity when `units` is
    empty: a linear encoder/decoder, e.g. probabilistic PCA)."""
    layers = [keras.layers.Dense(u, activation=activation) for u in units]
    return keras.Sequential(layers or [keras.layers.Identity()], name=name)


def conv_encoder(hidden, activation, name):
    """28x28x1 -> two stride-2 3x3 convolutions (32, 64 channels) -> Dense layers `hidden`."""
    return keras.Sequential(
        [keras.layers.Reshape((_IMAGE_SIDE, _IMAGE_SIDE, 1)),
         keras.layers.Conv2D(32, 3, strides=2, padding="same", activation=activation),
         keras.layers.Conv2D(64, 3, strides=2, padding="same", activation=activation),
         keras.layers.Flatten()]
        + [keras.layers.Dense(u, activation=activation) for u in hidden], name=name)


def conv_decoder(hidden, activation, channels, name):
    """The mirror of `conv_encoder`, ending in `channels` un-activated outputs per pixel."""
    side = _IMAGE_SIDE // 4
    return keras.Sequential(
        [keras.layers.Dense(u, activation=activation) for u in reversed(hidden)]
        + [keras.layers.Dense(side * side * 64, activation=activation),
           keras.layers.Reshape((side, side, 64)),
           keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation=activation),
           keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same"),
           keras.layers.Flatten()], name=name)


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(BaseVAE):
    """Variational autoencoder with a diagonal Gaussian posterior.

    q(z|x) = N(mu(x), diag(sigma(x)^2)), p(x|z) Bernoulli or Gaussian, p(z) N(0, I) or a learned
    prior (`tfvae.priors`), trained on the ELBO E_q[log p(x|z)] - beta KL[q(z|x) || p(z)]
    (k = 1; closed-form KL when `analytic_kl` and the prior is N(0, I), else the Monte Carlo
    estimate) or on the IWAE bound with k = `num_samples` > 1 (Burda et al. 2016).

    Args:
        input_dim: data dimension D (784 for MNIST).
        latent_dim: latent dimension L.
        hidden: widths of the encoder MLP; the decoder uses them reversed.
        activation: activation of the hidden layers.
        architecture: "mlp", or "conv" (small convolutional codecs for 28x28 images).
        likelihood: "bernoulli" or "gaussian".
        likelihood_scale: Gaussian likelihood only: None learns a scale per pixel.
        posterior_scale: "softplus" or "exp" for sigma(x); `min_scale` floors it.
        analytic_kl: closed-form KL (True) or the one-sample Monte Carlo estimate.
        num_samples: k; 1 trains the ELBO, k > 1 the IWAE bound.
        beta: weight of the KL (beta-VAE, Higgins et al. 2017).
        free_bits: minimum KL per latent unit, in nats (Kingma et al. 2016); N(0, I) prior only.
        prior: "standard_normal", "mixture" (learned Gaussian mixture) or "vamp" (VampPrior,
            Tomczak & Welling 2018), each with `prior_components` components.
        seed: seed of the model's sampling.

    Example:
    >>> model = tfvae.VAE(input_dim=784, latent_dim=50, hidden=(200, 200))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(tfvae.data.load("mnist", "train", binarize="dynamic"), epochs=10)
    """

    def __init__(self, input_dim, latent_dim, hidden=(200, 200), activation="tanh",
                 architecture="mlp", likelihood="bernoulli", likelihood_scale=None,
                 posterior_scale="softplus", min_scale=1e-4, analytic_kl=True, num_samples=1,
                 beta=1.0, free_bits=0.0, prior="standard_normal", prior_components=500, seed=None,
                 **kwargs):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}. "
                             f"Received: architecture={architecture!r}")
        if architecture == "conv" and input_dim != _IMAGE_SIDE ** 2:
            raise ValueError(f"architecture='conv' is for 28x28 images (input_dim=784). "
                             f"Received: input_dim={input_dim}")
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer. Received: latent_dim={latent_dim!r}")
        hidden = tuple(hidden)
        if not all(isinstance(u, int) and u > 0 for u in hidden):
            raise ValueError(f"hidden must be a sequence of positive integers. Received: hidden={hidden!r}")
        self.architecture = architecture
        super().__init__(input_dim=input_dim, likelihood=likelihood,
                         likelihood_scale=likelihood_scale, analytic_kl=analytic_kl,
                         num_samples=num_samples, beta=beta, free_bits=free_bits, seed=seed,
                         **kwargs)
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.posterior_scale = posterior_scale
        self.min_scale = min_scale
        self.posterior_layer = distributions.DiagonalGaussian(
            latent_dim, scale_activation=posterior_scale, min_scale=min_scale, name="posterior")
        self.prior_kind, self.prior_components = prior, prior_components
        self.prior_layer = priors.make_prior(prior, latent_dim, prior_components, input_dim,
                                             encode=self.encode)
        priors.check_free_bits(free_bits, prior)
        if architecture == "mlp":
            self.encoder = mlp(hidden, activation, name="encoder")
            self.decoder = mlp(tuple(reversed(hidden)), activation, name="decoder")
        else:
            channels = self.likelihood_layer.params_size // input_dim
            self.encoder = conv_encoder(hidden, activation, name="encoder")
            self.decoder = conv_decoder(hidden, activation, channels, name="decoder")

    def _projects_likelihood(self):
        return self.architecture == "mlp"

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        input_shape = (None, self.input_dim)
        self.encoder.build(input_shape)
        self.posterior_layer.build(self.encoder.compute_output_shape(input_shape))
        latent_shape = (None, self.latent_dim)
        self.decoder.build(latent_shape)
        self.likelihood_layer.build(self.decoder.compute_output_shape(latent_shape))
        self.prior_layer.build()
        self.built = True

    def encode(self, x, training=False):
        """q(z|x)'s parameters: {"loc", "scale"}, each [batch, latent_dim]."""
        return self.posterior_layer(self.encoder(self._check_input(x), training=training))

    def posterior(self, x):
        """q(z|x) as a `tfd.Distribution` with batch shape [batch], event shape [latent_dim]."""
        return self.posterior_layer.distribution(self.encode(x))

    def prior(self):
        """p(z) as a `tfd.Distribution`: N(0, I) or a mixture (`tfvae.priors`)."""
        return self.prior_layer.distribution()

    def decode(self, z, training=False):
        """p(x|z)'s parameters, e.g. {"logits", "probs"}, each [batch, input_dim]."""
        z = self._check_latent(z, self.latent_dim)
        return self.likelihood_layer(self.decoder(z, training=training))

    def reconstruct(self, x):
        return self.likelihood_layer.mean(self.decode(self.encode(x)["loc"]))

    def prior_sample(self, num_samples, seed):
        self._ensure_built()
        return self.prior_layer.sample(num_samples, seed)

    def latent_means(self, x):
        return [self.encode(x)["loc"]]

    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        q_params = posterior_params or self.encode(x, training=training)
        q = self.posterior_layer.distribution(q_params)
        z = self.posterior_layer.sample(q_params, seed, num_samples)  # [k, B, L]
        x_params = self._decode_samples(z, training=training)
        log_likelihood = self.likelihood_layer.log_prob(x_params, x)
        log_ratio = q.log_prob(z) - self.prior_layer.log_prob(z)  # log q(z|x) - log p(z)
        if self.prior_layer.factorizes:  # per-unit KL, so free bits can floor each unit
            rate_per_unit = distributions.kl_divergence(
                q.distribution, self.prior().distribution, z, analytic=self.analytic_kl)
        else:  # a mixture prior: the Monte Carlo estimate, as one term
            rate_per_unit = log_ratio[..., None]
        return {
            "log_likelihood": log_likelihood,
            "log_weight": log_likelihood - log_ratio,
            "rate": tf.reduce_sum(rate_per_unit, axis=-1),
            "penalized_rate": objectives.free_bits_rate(rate_per_unit, self.free_bits),
        }

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, hidden=self.hidden, activation=self.activation,
                      architecture=self.architecture, posterior_scale=self.posterior_scale,
                      min_scale=self.min_scale, prior=self.prior_kind,
                      prior_components=self.prior_components)
        return config

