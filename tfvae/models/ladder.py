"""Hierarchical VAEs with L layers of latents z_0 (bottom) ... z_{L-1} (top), each layer
Gaussian or binary (`latent_families`).

Both classes share the generative model p(z_{L-1}) prod_i p(z_i | z_{i+1}) p(x | z_0) and the
per-layer accounting of KL terms; every layer is a latent layer (`tfvae.latents.Latent`, with
its estimator) and every network a block: your own Keras layers or models (`up_blocks`,
`prior_blocks`, `decoder`), or Dense blocks built from `hidden`. They differ in the posterior:
- `LadderVAE` (Sonderby et al. 2016): a deterministic bottom-up pass gives each layer
  likelihood-like evidence; going down, q(z_i | z_{i+1}, x) is that evidence combined with the
  prior p(z_i | z_{i+1}) by adding natural parameters (precision weighting for a Gaussian
  layer; added logits for a binary one: q(z_i | z_{i+1}, x) proportional to
  exp<z_i, d_i(z_{i+1}) + a_i(x)>).
- `HierarchicalVAE` (Burda et al. 2016, two stochastic layers): a stochastic bottom-up
  posterior q(z_0 | x) q(z_1 | z_0) ...
"""
import keras
import tensorflow as tf

from tfvae import estimators, families, latents, networks, priors
from tfvae.models.base import (BaseVAE, LayerTerms, PriorPart, build_network, check_num_samples,
                               decoder_gives_parameters, likelihood_part, network_part,
                               output_shape, standardize_input_shape)

CONDITIONAL_KL_GRADIENTS = ("full", "stop")
# "mlp": Dense blocks from `hidden`; "residual": for images (H, W, C), the first bottom-up block
# and the decoder are `tfvae.networks`' residual conv codecs with hidden[0] as the scales' widths
ARCHITECTURES = ("mlp", "residual")


def block(units, activation, batch_norm, name, flatten=False):
    """Dense layers of the given widths (each optionally batch-normalized before `activation`),
    after a Flatten for inputs of rank > 1 when `flatten`."""
    layers = [keras.layers.Flatten()] if flatten else []
    for width in units:
        layers.append(keras.layers.Dense(width, use_bias=not batch_norm))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Activation(activation))
    return keras.Sequential(layers or [keras.layers.Identity()], name=name)


def _check_blocks(blocks, count, what):
    """Refuses anything but a list of `count` user blocks, naming `what`."""
    needs = (f"{what} needs a list of {count} Keras layers or models (one per stochastic layer"
             f"{' but the top' if what == 'prior_blocks' else ''})")
    if isinstance(blocks, (keras.layers.Layer, dict)) or not isinstance(blocks, (list, tuple)):
        raise ValueError(f"{needs}. Received one {type(blocks).__name__}: {what}={blocks!r}")
    if len(blocks) != count:
        raise ValueError(f"{needs}. Received {len(blocks)}: {what}={list(blocks)!r}")


def _blocks(blocks, count, what):
    """A list of `count` user blocks (Keras layers or models, or their serializations)."""
    _check_blocks(blocks, count, what)
    return [network_part(b, f"{what}[{i}]") for i, b in enumerate(blocks)]


def _per_layer(value, count, what):
    """One value per stochastic layer: a tuple as given, or a single value repeated."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * count
    if len(values) != count:
        raise ValueError(f"{what} needs one entry per stochastic layer ({count}), or one for all. "
                         f"Received: {what}={value!r}")
    return values


def _widths(hidden, num_layers):
    """One tuple of widths per stochastic layer; an int w means the two-layer block (w, w)."""
    hidden = tuple(hidden)
    if len(hidden) != num_layers:
        raise ValueError(f"hidden needs one entry per stochastic layer ({num_layers}) for the "
                         "blocks built from it (those of up_blocks, prior_blocks, decoder you do "
                         f"not pass). Received: hidden={hidden!r}")
    widths = tuple((h, h) if isinstance(h, int) else tuple(h) for h in hidden)
    if not all(isinstance(w, int) and w > 0 for ws in widths for w in ws):
        raise ValueError(f"hidden widths must be positive integers. Received: hidden={hidden!r}")
    return widths


class _TopDownVAE(PriorPart, BaseVAE):
    """The generative model and KL accounting shared by the hierarchical VAEs."""

    def __init__(self, input_shape, latent_dims, hidden, activation="tanh", batch_norm=False,
                 posterior_scale="softplus", min_scale=1e-4, latent_families=None,
                 prior="standard_normal", prior_components=500, input_dim=None, estimator=None,
                 baseline="moving_average", baseline_decay=0.99, temperature=0.5,
                 up_blocks=None, prior_blocks=None, decoder=None, likelihood="bernoulli",
                 likelihood_scale=None, architecture="mlp", **kwargs):
        input_shape = standardize_input_shape(input_shape, input_dim)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}. "
                             f"Received: architecture={architecture!r}")
        if architecture == "residual" and len(input_shape) != 3:
            raise ValueError("architecture='residual' is for images (H, W, C): the first block and "
                             "the decoder are tfvae.networks' residual conv codecs. Received: "
                             f"input_shape={input_shape}")
        latent_dims = tuple(latent_dims)
        if not latent_dims or not all(isinstance(d, int) and d > 0 for d in latent_dims):
            raise ValueError(f"latent_dims must be positive integers, bottom layer first. "
                             f"Received: latent_dims={latent_dims!r}")
        latent_families = tuple(latent_families or ("gaussian",) * len(latent_dims))
        if (len(latent_families) != len(latent_dims)
                or not all(f in families.FAMILIES for f in latent_families)):
            raise ValueError(f"latent_families needs one of {tuple(families.FAMILIES)} per "
                             f"stochastic layer ({len(latent_dims)}). "
                             f"Received: latent_families={latent_families!r}")
        estimators_ = self._layer_estimators(estimator, latent_families)
        for blocks, count, what in ((up_blocks, len(latent_dims), "up_blocks"),
                                    (prior_blocks, len(latent_dims) - 1, "prior_blocks")):
            if blocks is not None:  # (before `hidden`, which builds only the blocks not given)
                _check_blocks(blocks, count, what)
        if isinstance(hidden, (int, str)):
            raise ValueError(f"hidden needs one entry per stochastic layer ({len(latent_dims)}), "
                             f"e.g. hidden={(hidden,) * len(latent_dims)!r}. Received: hidden={hidden!r}")
        super().__init__(input_shape=input_shape, likelihood=likelihood,
                         likelihood_scale=likelihood_scale, metric_names=("elbo", "kl", "distortion")
                         + tuple(f"kl_{i}" for i in range(len(latent_dims))), **kwargs)
        self.latent_families = latent_families
        self.latent_dims = latent_dims
        self.estimators = estimators_
        self.baseline_decay = float(baseline_decay)
        self.temperature = float(temperature)
        self._latent_options = dict(baseline=baseline, baseline_decay=baseline_decay,
                                    scale_activation=posterior_scale, min_scale=min_scale,
                                    temperature=temperature)
        self.custom_blocks = {name: blocks is not None for name, blocks in
                              (("up_blocks", up_blocks), ("prior_blocks", prior_blocks),
                               ("decoder", decoder))}
        part = likelihood_part(likelihood, likelihood_scale)
        self.architecture = architecture
        if decoder is not None:  # the likelihood's parameters when it outputs their shape
            decoder = network_part(decoder, "decoder")
            parameters_out = decoder_gives_parameters(decoder, latent_dims[0], input_shape, part)
        else:
            parameters_out = architecture == "residual"  # (its last conv gives them per pixel)
        self.likelihood_layer = part.bind(input_shape, project=not parameters_out)
        # Tuples throughout, so the config survives the JSON of a .keras file unchanged.
        self.hidden = tuple(h if isinstance(h, int) else tuple(h) for h in hidden)
        # (the shorthand's widths; not needed when every block is your own)
        self.widths = (_widths(self.hidden, len(latent_dims)) if not all(self.custom_blocks.values())
                       else None)
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.posterior_scale = posterior_scale
        self.min_scale = min_scale
        # p(z_{L-1}): N(0, I) or learned; a VampPrior's components are q(z_{L-1} | u_k), its
        # pseudo-inputs in the data's range
        self.prior_layer, self.prior_kind = priors.prior_part(
            prior, latent_dims[-1], prior_components, input_shape, encode=self._top_posterior,
            pseudo_input_range=self.likelihood_layer.data_range)
        if self.prior_kind != "standard_normal" and latent_families[-1] != "gaussian":
            raise ValueError(f"prior={self.prior_kind!r} is a prior over Gaussian latents; the "
                             f"top layer is {latent_families[-1]!r}. "
                             f"Received: latent_families={latent_families!r}")
        self.custom_prior = not isinstance(prior, str)
        self.prior_components = prior_components
        priors.check_free_bits(self.free_bits, self.prior_kind)

        # p(z_i | z_{i+1}) for every layer but the top, whose prior is N(0, I). The network
        # between z_i and z_{i+1} mirrors the posterior's (widths[i + 1]); p(x | z_0) mirrors
        # the first block (widths[0]), as in both papers' architectures.
        if prior_blocks is not None:
            self.prior_blocks = _blocks(prior_blocks, len(latent_dims) - 1, "prior_blocks")
        else:
            self.prior_blocks = [block(tuple(reversed(self.widths[i + 1])), activation, batch_norm,
                                       f"prior_block_{i}") for i in range(len(latent_dims) - 1)]
        self.prior_heads = [self.latent_layer(i, "prior", draws=False)
                            for i in range(len(latent_dims) - 1)]
        if decoder is not None:
            self.decoder = decoder
        elif architecture == "residual":  # p(x | z_0): widths[0] are the scales' channels
            self.decoder = networks.residual_decoder(
                latent_dims[0], input_shape, part.params_shape(input_shape)[-1],
                tuple(reversed(self.widths[0])), activation=activation, name="decoder")
        else:
            self.decoder = block(tuple(reversed(self.widths[0])), activation, batch_norm, "decoder")

    @staticmethod
    def _layer_estimators(estimator, latent_families):
        """Per layer, the estimator: `estimator` (one for all layers, or a tuple) where the
        layer's family has it, else the family's default (pathwise for a Gaussian layer)."""
        given = _per_layer(estimator, len(latent_families), "estimator")
        chosen = []
        for name, family in zip(given, latent_families):
            options = families.FAMILIES[family].estimators
            if name is not None and name not in options and not isinstance(estimator, str):
                raise ValueError(f"estimator: a {family} layer takes one of {options}. "
                                 f"Received: estimator={estimator!r}")
            chosen.append(name if name in options else options[0])
        if isinstance(estimator, str) and estimator not in chosen:
            raise ValueError(f"estimator={estimator!r} fits no layer: the families are "
                             f"{latent_families}. Received: estimator={estimator!r}")
        return tuple(chosen)

    def latent_layer(self, i, name, draws=True):
        """Layer i's latent layer (`tfvae.latents.Latent`): a posterior's draws with the layer's
        estimator, or (`draws=False`) a prior head p(z_i | z_{i+1})."""
        estimator = self.estimators[i] if draws else None
        options = dict(self._latent_options)
        if not draws:
            options["baseline"] = "moving_average"
        return latents.Latent(self.latent_dims[i], families.get(self.latent_families[i], **options),
                              estimator, options["baseline"], options["baseline_decay"],
                              name=f"{name}_{i}")

    def latent_layers(self):
        return list(self.up_heads)

    def _make_up_blocks(self, up_blocks, prefix):
        """The blocks of the bottom-up pass: the user's, or Dense blocks of `widths`."""
        if up_blocks is not None:
            return _blocks(up_blocks, self.num_layers, "up_blocks")
        blocks = [block(w, self.activation, self.batch_norm, f"{prefix}_{i}",
                        flatten=i == 0 and len(self.input_shape) > 1)
                  for i, w in enumerate(_widths(self.hidden, self.num_layers))]
        if self.architecture == "residual":  # x -> features: the residual conv encoder
            blocks[0] = networks.residual_encoder(self.input_shape, self.widths[0],
                                                  activation=self.activation, name=f"{prefix}_0")
        return blocks

    @property
    def num_layers(self):
        return len(self.latent_dims)

    def _build_top_down(self):
        for network, width in [*zip(self.prior_blocks, self.latent_dims[1:]),
                               (self.decoder, self.latent_dims[0])]:
            build_network(network, (None, width))  # (your own block may come built)
        for i, (prior_block, head) in enumerate(zip(self.prior_blocks, self.prior_heads)):
            head.build(output_shape(prior_block, (self.latent_dims[i + 1],), f"prior block {i}"))
        self.likelihood_layer.build(output_shape(self.decoder, (self.latent_dims[0],), "decoder"))
        if not self.prior_layer.built:  # (a prior part may come built, e.g. from its config)
            self.prior_layer.build()

    def _top_posterior(self, x):
        """q(z_{L-1} | x)'s parameters along the posterior means (the VampPrior's components)."""
        return self.encode_layers(x)[-1]

    def conditional_prior(self, i, z_above, training=False):
        """Parameters of p(z_i | z_{i+1}) for i < L-1."""
        return self.prior_heads[i](self.prior_blocks[i](z_above, training=training))

    def top_prior(self, num_rows):
        """Parameters of a factorized p(z_{L-1}), [num_rows, units]: the top layer's family's
        standard member, N(0, I) or Bernoulli(1/2). (A learned prior is `prior_layer`.)"""
        return self.up_heads[-1].standard_params(num_rows)

    def decode(self, z, training=False):
        """p(x | z_0)'s parameters for the BOTTOM layer's z_0, [batch, latent_dims[0]]."""
        z = self._check_latent(z, self.latent_dims[0])
        return self.likelihood_layer(self.decoder(z, training=training))

    @property
    def latent_shape(self):
        return (self.latent_dims[-1],)

    def decode_top(self, z_top):
        """p(x|.)'s parameters from the top layer, following the prior means down."""
        z = self._check_latent(z_top, self.latent_dims[-1], method="decode_top")
        for i in reversed(range(self.num_layers - 1)):
            z = self.prior_heads[i].mean(self.conditional_prior(i, z))
        return self.decode(z)

    def prior_sample(self, num_samples, seed):
        """Top-layer draws z_{L-1} ~ p(z_{L-1})."""
        self._ensure_built()
        if self.latent_families[-1] == "gaussian":
            return self.prior_layer.sample(num_samples, seed)
        return self.up_heads[-1].sample(self.top_prior(num_samples), seed)

    def generate(self, num_samples, seed):
        """Ancestral sampling: z_{L-1} ~ N(0, I), z_i ~ p(z_i | z_{i+1}), then p(x | z_0)."""
        seeds = tf.unstack(tf.random.experimental.stateless_split(
            estimators.seed_pair(seed), self.num_layers))
        z = self.prior_sample(num_samples, seeds[-1])
        for i in reversed(range(self.num_layers - 1)):
            z = self.up_heads[i].sample(self.conditional_prior(i, z), seeds[i])
        return self.decode(z)

    def reconstruct(self, x):
        means = self.latent_means(x)
        return self.likelihood_layer.mean(self.decode(means[0]))

    def encode(self, x, training=False):
        """Posterior parameters of every layer along the posterior means: {"loc_i", "scale_i"}
        for a Gaussian layer i, {"logits_i", "probs_i"} for a binary one."""
        return {f"{name}_{i}": v for i, q in enumerate(self.encode_layers(x, training))
                for name, v in q.items()}

    def _layer_terms(self, i, q_params, p_params, point, analytic, training=False):
        """(KL per unit, log q - log p at the draw's point, whether the KL is the closed form)
        of layer i: closed form when valid and asked, else the ratio (relaxed densities for
        relaxed draws); `p_params=None` means the top prior."""
        latent = self.up_heads[i]
        if p_params is None and not self.prior_layer.factorizes:  # a mixture: Monte Carlo
            log_ratio = latent.log_prob(q_params, point) - self.prior_layer.log_prob(point)
            return log_ratio[:, None], log_ratio, False
        if p_params is None:
            p_params = self.top_prior(tf.shape(point)[0])
        unit_ratio = latent.unit_log_ratio(q_params, p_params, point, training)
        closed_form = analytic and not latent.is_relaxed(training)
        kl_per_unit = (latent.unit_kl(q_params, p_params, point, training=training)
                       if closed_form else unit_ratio)
        return kl_per_unit, tf.reduce_sum(unit_ratio, -1), closed_form

    def _draw(self, i, params, seed, training, again=False):
        """(z, point) of layer i with its estimator (see `BaseVAE.draw_layer`)."""
        return self.draw_layer(self.up_heads[i], params, seed, training=training, again=again)

    def _assemble(self, x, k, z_bottom, layers, training):
        """The `_forward` terms from the bottom layer's draws (k * B rows) and every layer's
        `LayerTerms` (see `BaseVAE._accumulate_layers`)."""
        x_params = self._decode_samples(tf.reshape(z_bottom, [k, -1, self.latent_dims[0]]), training)
        log_likelihood = self.likelihood_layer.log_prob(x_params, x)
        return self._accumulate_layers(x, log_likelihood, layers, training)

    def get_config(self):
        config = super().get_config()
        blocks = {"up_blocks": self.up_blocks, "prior_blocks": self.prior_blocks,
                  "decoder": self.decoder}
        for name, value in blocks.items():
            if self.custom_blocks[name]:
                config[name] = (keras.saving.serialize_keras_object(value) if name == "decoder"
                                else [keras.saving.serialize_keras_object(b) for b in value])
            else:
                config[name] = None
        config.update(latent_dims=self.latent_dims, hidden=self.hidden, activation=self.activation,
                      architecture=self.architecture,
                      batch_norm=self.batch_norm, posterior_scale=self.posterior_scale,
                      min_scale=self.min_scale, latent_families=self.latent_families,
                      estimator=self.estimators, baseline=self._latent_options["baseline"],
                      baseline_decay=self.baseline_decay, temperature=self.temperature,
                      prior=(keras.saving.serialize_keras_object(self.prior_layer)
                             if self.custom_prior else self.prior_kind),
                      prior_components=self.prior_components)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class LadderVAE(_TopDownVAE):
    """Ladder VAE (Sonderby, Raiko, Maaloe, Sonderby & Winther 2016).

    Bottom-up: d_i = MLP_i(d_{i-1}) (d_{-1} = x) gives evidence N(m_i, s_i^2) for layer i.
    Top-down: q(z_{L-1}|x) = N(m_{L-1}, s_{L-1}^2); for i < L-1,
    q(z_i | z_{i+1}, x) proportional to N(m_i, s_i^2) p(z_i | z_{i+1}): precision weighting,
    s^2 = 1 / (s_i^-2 + s_p^-2), m = (m_i s_i^-2 + m_p s_p^-2) s^2 (the paper's eq. 17-18).
    The KL of layer i is conditional on the sample of z_{i+1}; `conditional_kl_gradient="stop"`
    stops the gradient through that sample in the KL term only (see `_forward`). It shapes the
    ELBO's gradient (num_samples=1); the IWAE objective (k > 1) uses the log-weights, whose
    gradient it leaves alone.
    Measured on MNIST (README, "Measured"): "stop" halves the variance of the
    upper layers' gradient, but those layers then collapse to their priors (KL 0.0 in
    layers 1-4) and the ELBO ends about 4 nats lower after 20 epochs; neither setting
    diverged. "full" is the default.
    With k > 1, prefer `iw_gradient="plain"`: the prior blocks are in both p and q, and DReG or
    STL drop q's score term, which cancels their explicit gradient where q and p agree (on the
    trained lvae_mnist their gradient variance is 1e6-1e8 times plain's; README).

    Args:
        input_shape: the shape of one example, any rank (`input_dim=D` is the old spelling of
            (D,)); the shorthand's first block flattens it.
        latent_dims: units per stochastic layer, bottom first (the paper: (64, 32, 16, 8, 4)).
        hidden: one entry per layer: the width of its two-layer deterministic block, or a tuple
            of widths (the paper: (512, 256, 128, 64, 32)).
        activation, batch_norm: of the deterministic blocks (the paper uses batch norm).
        conditional_kl_gradient: "full" or "stop".
        latent_families: "gaussian" (default) or "bernoulli" per layer, bottom first; a binary
            layer's KL is the closed-form Bernoulli KL (`analytic_kl`) or log q(z) - log p(z).
        estimator: how the binary layers' draws are differentiated, one for all or one per
            layer: "straight_through" (default), "score_function" (learning signal: the
            one-sample objective; `baseline`, `baseline_decay` as in `tfvae.VAE`) or "relaxed"
            (`temperature`); Gaussian layers are drawn pathwise.
        up_blocks: your own bottom-up blocks, one Keras layer or model per layer (the first
            takes x of `input_shape`, any rank); None builds Dense blocks from `hidden`.
        architecture: "mlp", or "residual" for images (H, W, C): the first bottom-up block and
            the decoder are `tfvae.networks`' residual conv encoder and decoder, hidden[0] the
            channels of their scales (the decoder gives the likelihood's parameters per pixel).
        prior_blocks: your own blocks z_{i+1} -> features of p(z_i | z_{i+1}), one per layer
            but the top; decoder: z_0 -> features of p(x | z_0) (its output is the
            likelihood's parameters when it has the data's shape).
        Other arguments as in `tfvae.VAE`.

    Example:
    >>> model = tfvae.LadderVAE(input_shape=(784,), latent_dims=(64, 32, 16, 8, 4),
    ...                         hidden=(512, 256, 128, 64, 32), batch_norm=True)
    >>> conv = keras.Sequential([keras.layers.Conv2D(16, 3, 2, activation="relu"),
    ...                          keras.layers.Flatten()])
    >>> model = tfvae.LadderVAE(input_shape=(28, 28, 1), latent_dims=(16, 4), hidden=(32, 16),
    ...                         up_blocks=[conv, keras.layers.Dense(32, activation="relu")])
    ...                         # (hidden builds the prior blocks and decoder not passed)
    """

    def __init__(self, input_shape=None, latent_dims=(64, 32, 16, 8, 4),
                 hidden=(512, 256, 128, 64, 32), activation="leaky_relu", batch_norm=False,
                 conditional_kl_gradient="full", up_blocks=None, **kwargs):
        if conditional_kl_gradient not in CONDITIONAL_KL_GRADIENTS:
            raise ValueError(f"conditional_kl_gradient must be one of {CONDITIONAL_KL_GRADIENTS}. "
                             f"Received: conditional_kl_gradient={conditional_kl_gradient!r}")
        super().__init__(input_shape, latent_dims, hidden, activation=activation,
                         batch_norm=batch_norm, up_blocks=up_blocks, **kwargs)
        self.conditional_kl_gradient = conditional_kl_gradient
        self.up_blocks = self._make_up_blocks(up_blocks, "up_block")
        self.up_heads = [self.latent_layer(i, "evidence") for i in range(self.num_layers)]
        for head in self.up_heads:
            check_num_samples(head, self.num_samples, self.iw_gradient)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        data_shape = shape = (None,) + self.input_shape
        for i, (up_block, head) in enumerate(zip(self.up_blocks, self.up_heads)):
            build_network(up_block, shape)  # (your own block may come built)
            shape = output_shape(up_block, shape[1:], f"up block {i}")
            head.build(shape)
            head.build_baseline(data_shape)
        self._build_top_down()
        self.built = True

    def evidence(self, x, training=False):
        """The bottom-up pass: per layer the parameters of the likelihood-like evidence."""
        d, evidence = self.likelihood.network_input(x), []
        for up_block, head in zip(self.up_blocks, self.up_heads):
            d = up_block(d, training=training)
            evidence.append(head(d))
        return evidence

    def encode_layers(self, x, training=False):
        """Per layer (bottom first), q's parameters along the posterior means of the layers above."""
        evidence = self.evidence(self._check_input(x), training)
        layers = [evidence[-1]]
        for i in reversed(range(self.num_layers - 1)):
            prior = self.conditional_prior(i, self.up_heads[i + 1].mean(layers[0]), training)
            layers.insert(0, self.up_heads[i].combine(evidence[i], prior))
        return layers

    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        if posterior_params is not None:
            raise NotImplementedError("LadderVAE does not take external posterior parameters.")
        k = num_samples
        evidence = [{name: tf.tile(v, [k, 1]) for name, v in e.items()}  # rows: k-major, k * B
                    for e in self.evidence(x, training)]
        seeds = tf.unstack(tf.random.experimental.stateless_split(
            estimators.seed_pair(seed), self.num_layers))
        top = self.num_layers - 1
        q = evidence[-1]
        z, point = self._draw(top, q, seeds[-1], training)
        kl, ratio, closed_form = self._layer_terms(top, q, None, point, self.analytic_kl, training)
        layers = [LayerTerms(self.up_heads[top], q, z, kl, ratio, depends_on_draws=not closed_form)]
        for i in reversed(range(self.num_layers - 1)):
            z_above = z
            prior = self.conditional_prior(i, z_above, training)
            q = self.up_heads[i].combine(evidence[i], prior)
            eps_seed = seeds[i]
            z, point = self._draw(i, q, eps_seed, training)
            _, ratio, _ = self._layer_terms(i, q, prior, point, False, training)
            # (the log-weight always takes the full, sampled path)
            q_draw = q
            if self.conditional_kl_gradient == "stop":
                # E_q(v)[KL(q(u|v) || p(u|v))] with v's sample held fixed: the same draw of u,
                # but no gradient reaches the parameters that produced v.
                prior = self.conditional_prior(i, tf.stop_gradient(z_above), training)
                q = self.up_heads[i].combine(evidence[i], prior)
                _, point = self._draw(i, q, eps_seed, training, again=True)
            kl, _, _ = self._layer_terms(i, q, prior, point, self.analytic_kl, training)
            layers.insert(0, LayerTerms(self.up_heads[i], q_draw, z, kl, ratio,
                                        depends_on_draws=True))  # (p is conditioned on z_{i+1})
        return self._assemble(x, k, z, layers, training)

    def get_config(self):
        config = super().get_config()
        config.update(conditional_kl_gradient=self.conditional_kl_gradient)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalVAE(_TopDownVAE):
    """A VAE with a stochastic bottom-up posterior q(z_0 | x) q(z_1 | z_0) ... q(z_{L-1} | z_{L-2})
    and the top-down model p(z_{L-1}) ... p(z_0 | z_1) p(x | z_0) (Burda et al. 2016, appendix:
    784-200-200-z100-100-100-z50 with tanh for two stochastic layers).

    The KL of a lower layer, E_q[log q(z_i | z_{i-1}) - log p(z_i | z_{i+1})], has no closed
    form because z_{i+1} is drawn given z_i: it is always the Monte Carlo estimate. The top
    layer's KL to N(0, I) is closed-form when `analytic_kl`.

    Args:
        input_shape: the shape of one example, any rank (`input_dim=D` is the old spelling of
            (D,)).
        latent_dims: units per stochastic layer, bottom first.
        hidden: one tuple of widths per layer: the MLP below that layer (mirrored in the
            generative model); an int w means (w, w).
        up_blocks: your own blocks, one per layer: x -> features of q(z_0 | x), then
            z_{i-1} -> features of q(z_i | z_{i-1}).
        Other arguments as in `tfvae.VAE` (and `batch_norm`, `estimator`, `prior_blocks`,
        `decoder` as in `LadderVAE`).

    Example:
    >>> model = tfvae.HierarchicalVAE(input_shape=(784,), latent_dims=(100, 50),
    ...                               hidden=((200, 200), (100, 100)))
    """

    def __init__(self, input_shape=None, latent_dims=(100, 50), hidden=((200, 200), (100, 100)),
                 activation="tanh", batch_norm=False, up_blocks=None, **kwargs):
        super().__init__(input_shape, latent_dims, hidden, activation=activation,
                         batch_norm=batch_norm, up_blocks=up_blocks, **kwargs)
        self.up_blocks = self._make_up_blocks(up_blocks, "posterior_block")
        self.up_heads = [self.latent_layer(i, "posterior") for i in range(self.num_layers)]
        for head in self.up_heads:
            check_num_samples(head, self.num_samples, self.iw_gradient)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        data_shape = shape = (None,) + self.input_shape
        for i, (up_block, head) in enumerate(zip(self.up_blocks, self.up_heads)):
            build_network(up_block, shape)  # (your own block may come built)
            head.build(output_shape(up_block, shape[1:], f"up block {i}"))
            head.build_baseline(data_shape)
            shape = (None, self.latent_dims[i])
        self._build_top_down()
        self.built = True

    @property
    def kl_estimate(self):
        return "monte_carlo" if self.num_layers > 1 else super().kl_estimate

    def posterior_step(self, i, below, training=False):
        """Parameters of q(z_i | z_{i-1}) (of q(z_0 | x) for i = 0)."""
        below = self.likelihood.network_input(below) if i == 0 else below
        return self.up_heads[i](self.up_blocks[i](below, training=training))

    def encode_layers(self, x, training=False):
        """Per layer (bottom first), q's parameters along the posterior means of the layers below."""
        layers, below = [], self._check_input(x)
        for i in range(self.num_layers):
            layers.append(self.posterior_step(i, below, training))
            below = self.up_heads[i].mean(layers[-1])
        return layers

    def _forward(self, x, num_samples, seed, training=False, posterior_params=None):
        if posterior_params is not None:
            raise NotImplementedError("HierarchicalVAE does not take external posterior parameters.")
        k = num_samples
        seeds = tf.unstack(tf.random.experimental.stateless_split(
            estimators.seed_pair(seed), self.num_layers))
        q_params = [{name: tf.tile(v, [k, 1])  # rows: k-major, k * B
                     for name, v in self.posterior_step(0, x, training).items()}]
        zs, points = zip(*[self._draw(0, q_params[0], seeds[0], training)])
        zs, points = list(zs), list(points)
        for i in range(1, self.num_layers):
            q_params.append(self.posterior_step(i, zs[-1], training))
            z, point = self._draw(i, q_params[-1], seeds[i], training)
            zs.append(z)
            points.append(point)
        layers = []
        for i in range(self.num_layers):
            top = i == self.num_layers - 1
            prior = None if top else self.conditional_prior(i, zs[i + 1], training)
            kl, ratio, closed_form = self._layer_terms(i, q_params[i], prior, points[i],
                                                       self.analytic_kl and top, training)
            # q of a layer above the bottom is conditioned on the draw below; p of a layer below
            # the top on the draw above
            layers.append(LayerTerms(self.up_heads[i], q_params[i], zs[i], kl, ratio,
                                     depends_on_draws=not closed_form or self.num_layers > 1))
        return self._assemble(x, k, zs[0], layers, training)
