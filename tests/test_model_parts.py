"""Models composed of parts: networks and priors passed in (instances or their configs), data of
any shape through the shorthand builders too, and old configs (input_dim, the squashed
VampPrior of Gaussian data) loading as they were saved."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from helpers import assert_model_saving_round_trip


def _real(n, *shape, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + shape).astype(np.float32)


def _binary(n, *shape, seed=0):
    return (np.random.default_rng(seed).random((n,) + shape) < 0.3).astype(np.float32)


@pytest.mark.parametrize("shape, architecture", [((28, 28, 1), "mlp"), ((32, 32, 3), "conv"),
                                                 ((784,), "conv"), ((8, 8), "mlp")])
def test_the_shorthand_builds_parts_for_data_of_any_shape(shape, architecture, tmp_path):
    model = tfvae.VAE(input_shape=shape, latent_dim=3, hidden=(8,), architecture=architecture)
    x = _binary(6, *shape)
    assert model.reconstruct(x).shape == (6,) + shape
    assert model.sample(2, seed=0).shape == (2,) + shape
    assert model.decode(np.zeros((2, 3), np.float32))["logits"].shape == (2,) + shape
    terms = model.loss_terms(x, seed=0)
    assert terms["elbo"].shape == (6,)
    # log p(x|z) sums over every axis of x: the same number from the flattened logits
    z = model.encode(x)["loc"]
    logits = model.decode(z)["logits"].numpy().reshape(6, -1)
    flat = x.reshape(6, -1)
    expected = (flat * logits - np.logaddexp(0.0, logits)).sum(-1)
    np.testing.assert_allclose(model.likelihood_layer.log_prob(model.decode(z), x), expected, rtol=1e-5)
    assert_model_saving_round_trip(model, x, tmp_path)


def test_functional_networks_already_built_are_used_as_they_are(tmp_path):
    x = _real(40, 64)
    inputs = keras.Input((64,))
    encoder = keras.Model(inputs, keras.layers.Dense(8, activation="relu")(inputs), name="enc")
    z = keras.Input((3,))
    decoder = keras.Model(z, keras.layers.Dense(64)(keras.layers.Dense(8, activation="relu")(z)),
                          name="dec")
    model = tfvae.VAE(input_shape=(64,), latent_dim=3, encoder=encoder, decoder=decoder,
                      likelihood="gaussian")
    assert model.encoder is encoder and model.decoder is decoder
    assert not model.likelihood_layer.project  # the decoder's (64,) output is the mean
    model.compile(optimizer="adam", jit_compile=False)
    model.fit(x, epochs=1, batch_size=20, verbose=0)
    loaded = assert_model_saving_round_trip(model, x[:4], tmp_path)
    assert loaded.encoder.name == "enc"


def test_a_decoder_of_other_features_gets_a_projection_to_the_data_shape():
    decoder = keras.Sequential([keras.layers.Dense(16, activation="relu")])
    model = tfvae.VAE(input_shape=(4, 5), latent_dim=2, encoder=keras.layers.Flatten(),
                      decoder=decoder)
    assert model.likelihood_layer.project
    assert model.decode(np.zeros((3, 2), np.float32))["probs"].shape == (3, 4, 5)


@pytest.mark.parametrize("prior", [tfvae.priors.MixturePrior(3, num_components=4),
                                   tfvae.priors.StandardNormalPrior(3)])
def test_a_prior_part_round_trips_with_the_model(prior, tmp_path):
    model = tfvae.VAE(input_shape=(64,), latent_dim=3, hidden=(8,), likelihood="gaussian",
                      prior=prior)
    assert model.prior_layer is prior
    x = _real(8, 64)
    loaded = assert_model_saving_round_trip(model, x, tmp_path)
    assert type(loaded.prior_layer) is type(prior)
    np.testing.assert_array_equal(loaded.prior_layer.log_prob(tf.zeros([2, 3])),
                                  prior.log_prob(tf.zeros([2, 3])))


def test_a_vamp_prior_of_real_valued_data_has_pseudo_inputs_outside_zero_one(tmp_path):
    """The data's own range: unconstrained for a Gaussian likelihood, (0, 1) for Bernoulli
    (they were squashed to (0, 1) for every model)."""
    gaussian = tfvae.VAE(input_shape=(64,), latent_dim=3, hidden=(8,), likelihood="gaussian",
                         prior="vamp", prior_components=5)
    bernoulli = tfvae.VAE(input_shape=(28, 28, 1), latent_dim=3, hidden=(8,), prior="vamp",
                          prior_components=5)
    assert gaussian.prior_layer.pseudo_input_range is None
    assert bernoulli.prior_layer.pseudo_input_range == (0.0, 1.0)
    x = 3.0 * _real(5, 64)
    gaussian.build((None, 64))
    gaussian.prior_layer.initialize_from_data(x)
    np.testing.assert_allclose(gaussian.prior_layer.pseudo_inputs(), x, rtol=1e-6)
    bernoulli.build((None, 28, 28, 1))
    assert bernoulli.prior_layer.pseudo_inputs().shape == (5, 28, 28, 1)
    assert_model_saving_round_trip(gaussian, _real(4, 64), tmp_path)
    ladder = tfvae.LadderVAE(input_shape=(64,), latent_dims=(4, 2), hidden=(8, 8),
                             likelihood="gaussian", prior="vamp", prior_components=3)
    assert ladder.prior_layer.pseudo_input_range is None


@pytest.mark.parametrize("model_class, extra", [
    (tfvae.VAE, dict(latent_dim=3, hidden=[8])),
    (tfvae.LadderVAE, dict(latent_dims=[4, 3], hidden=[8, 8])),
])
def test_old_configs_load_as_they_were_saved(model_class, extra):
    """Configs written before input shapes of any rank say input_dim; a VampPrior of Gaussian
    data then had pseudo-inputs squashed to (0, 1), and loads so."""
    config = dict(input_dim=64, likelihood="gaussian", prior="vamp", prior_components=4, **extra)
    model = model_class.from_config(config)
    assert model.input_shape == (64,)
    assert model.prior_layer.pseudo_input_range == (0.0, 1.0)
    assert model.get_config()["input_shape"] == (64,)
    assert model_class.from_config(dict(config, likelihood="bernoulli")).prior_layer.pseudo_input_range == (0.0, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(28, 0, 1)), r"input_shape must be the shape of one example.*Received: input_shape=\(28, 0, 1\)"),
    (dict(input_shape="784"), r"Received: input_shape='784'"),
    (dict(input_shape=(784,), input_dim=784), r"Give input_shape only"),
    (dict(input_shape=(30, 30), architecture="conv"), r"architecture='conv' is for images \(H, W, C\)"),
    (dict(input_shape=(64,), encoder="dense"), r"encoder must be a Keras layer or model"),
    (dict(input_shape=(64,), prior=tfvae.priors.MixturePrior(5, 2)), r"The prior is over 5 latent units; the model has 3"),
    (dict(input_shape=(64,), prior=tfvae.priors.VampPrior(3, 2, input_shape=(65,))), r"pseudo-inputs have shape \(65,\)"),
])
def test_bad_parts_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfvae.VAE(latent_dim=3, hidden=(8,), **kwargs)


@keras.saving.register_keras_serializable(package="tests")
class SubclassedEncoder(keras.Model):
    """A network written the usual research way: layers in __init__, call, no shape inference."""

    def __init__(self, width=8, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv = keras.layers.Conv2D(width, 3, strides=2, activation="relu")
        self.flatten = keras.layers.Flatten()

    def call(self, x):
        return self.flatten(self.conv(x))

    def get_config(self):
        return dict(super().get_config(), width=self.width)


@keras.saving.register_keras_serializable(package="tests")
class SubclassedDecoder(keras.layers.Layer):
    def __init__(self, shape=(8, 8, 3), **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(shape)
        self.dense = keras.layers.Dense(int(np.prod(self.shape)))

    def call(self, z):
        return keras.ops.reshape(self.dense(z), (-1,) + self.shape)

    def get_config(self):
        return dict(super().get_config(), shape=self.shape)


def test_subclassed_networks_without_shape_inference_train_and_round_trip(tmp_path):
    """Their output shapes come from a symbolic call (they used to fail: NotImplementedError
    'does not have a compute_output_shape method'); the decoder's (8, 8, 3) output is the
    logits, no projection added."""
    x = _binary(24, 8, 8, 3)
    model = tfvae.VAE(input_shape=(8, 8, 3), latent_dim=3, encoder=SubclassedEncoder(),
                      decoder=SubclassedDecoder())
    assert not model.likelihood_layer.project
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    assert_model_saving_round_trip(model, x[:4], tmp_path)
    ladder = tfvae.LadderVAE(input_shape=(8, 8, 3), latent_dims=(3, 2), hidden=(8, 8),
                             up_blocks=[SubclassedEncoder(), keras.layers.Dense(8)],
                             decoder=SubclassedDecoder())
    assert ladder.reconstruct(x[:2]).shape == (2, 8, 8, 3)


def _two_outputs():
    x = keras.Input((64,))
    h = keras.layers.Dense(8)(x)
    return keras.Model(x, [keras.layers.Dense(3)(h), keras.layers.Dense(3)(h)])


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoder=keras.Sequential([keras.Input((700,)), keras.layers.Dense(8)], name="my_encoder")),
     r"The encoder \(Sequential 'my_encoder'\) cannot take inputs of shape \[batch, 8, 8, 3\]"),
    (dict(latent=tfvae.latents.Latent(3, "bernoulli"), estimator="relaxed"),
     r"estimator='relaxed' \(the part's: 'straight_through'\) would be ignored"),
    (dict(latent=tfvae.latents.Latent(3, "bernoulli"), temperature=0.2),
     r"temperature=0.2 \(the part's: 0.5\) would be ignored"),
    (dict(hidden=64), r"hidden must be a sequence of positive integers, e.g. hidden=\(64,\)"),
])
def test_networks_and_options_that_cannot_work_are_refused_naming_them(kwargs, message):
    kwargs = kwargs if "latent" in kwargs else {"latent_dim": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        tfvae.VAE(input_shape=(8, 8, 3), **kwargs).build((None, 8, 8, 3))


@pytest.mark.parametrize("decoder, message", [
    (keras.Sequential([keras.layers.Dense(7 * 7 * 3), keras.layers.Reshape((7, 7, 3))]),
     r"gives \[batch, 7, 7, 3\], the data is \[batch, 8, 8, 3\].*Dense layer of 28,224 weights"),
    (keras.Sequential([keras.layers.Dense(192)]),
     r"gives \[batch, 192\], the data is \[batch, 8, 8, 3\].*keras.layers.Reshape\(\(8, 8, 3\)\)"),
    (keras.Sequential([keras.layers.Dense(192, activation="sigmoid"), keras.layers.Reshape((8, 8, 3))]),
     r"last layer \('dense.*'\) applies a sigmoid.*read.*as logits"),  # (behind a reshape)
])
def test_a_decoder_that_looks_like_a_mistake_is_warned_of_and_still_loads(decoder, message, tmp_path):
    """A warning, not an error: a model saved with such a decoder still loads (and warns)."""
    with pytest.warns(UserWarning, match=message):
        model = tfvae.VAE(input_shape=(8, 8, 3), latent_dim=3, decoder=decoder)
    with pytest.warns(UserWarning, match=message):
        assert_model_saving_round_trip(model, _binary(2, 8, 8, 3), tmp_path)


def test_an_encoder_with_two_outputs_is_told_to_return_one_tensor():
    with pytest.raises(ValueError, match=r"The encoder .* must return one tensor; it returns"):
        tfvae.VAE(input_shape=(64,), latent_dim=3, encoder=_two_outputs()).build((None, 64))


def test_a_latent_part_decides_its_options_on_reload_and_in_gradient_variance(tmp_path):
    """A config whose shorthand options disagree with its Latent part (saved when they were
    ignored) loads as the part says; gradient_variance's estimator settings apply to the part."""
    from tfvae import evaluation

    model = tfvae.VAE(input_shape=(12,), hidden=(8,), seed=0, latent=tfvae.latents.Latent(4, "bernoulli"))
    config = dict(model.get_config(), temperature=1.0, estimator="relaxed", min_scale=0.5)
    loaded = tfvae.VAE.from_config(config)
    assert loaded.estimator == "straight_through" and loaded.posterior_layer.temperature == 0.5
    x = _binary(8, 12)
    result = evaluation.gradient_variance(model, x, num_draws=3, estimator="score_function",
                                          baseline="none")
    assert result["total_variance"] > 0 and model.estimator == "straight_through"


@pytest.mark.parametrize("kwargs, message", [
    (dict(up_blocks=keras.layers.Dense(8)), r"up_blocks needs a list of 2 Keras layers.*Received one Dense"),
    (dict(up_blocks=[keras.layers.Dense(8)] * 3), r"up_blocks needs a list of 2 .*Received 3"),
    (dict(prior_blocks=[]), r"prior_blocks needs a list of 1 .*but the top.*Received 0"),
    (dict(hidden=64), r"hidden needs one entry per stochastic layer \(2\), e.g. hidden=\(64, 64\)"),
])
def test_a_ladders_blocks_are_checked_before_hidden(kwargs, message):
    """(A wrong list of blocks used to be reported as a wrong `hidden`, whose default has five
    entries.)"""
    with pytest.raises(ValueError, match=message):
        tfvae.LadderVAE(input_shape=(12,), latent_dims=(3, 2), **kwargs)


def test_a_subclass_of_a_prior_part_is_a_prior_part():
    class Mixture(tfvae.priors.MixturePrior):
        pass

    model = tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(8,), prior=Mixture(3, 4))
    assert model.prior_kind == "mixture" and model.sample(2, seed=0).shape == (2, 12)


def test_the_harmonium_takes_flat_data_only_and_says_so_for_images():
    with pytest.raises(ValueError, match=r"flat examples.*reshape x to \[batch, D\]"):
        tfvae.HarmoniumVAE(input_shape=(28, 28, 1))


# The declared surface of every model: tests/test_contract.py.
