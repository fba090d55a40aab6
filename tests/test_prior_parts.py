"""Priors as registered parts (tfvae.priors): each prior's config and serialization round trip on
its own, VampPrior pseudo-inputs of any input shape and in the data's range, the encoder bound
by the model, and the mixture density against scipy and tfd.MixtureSameFamily."""
import json
import math

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import priors

tfd = tfp.distributions
RNG = np.random.default_rng(0)


def linear_encoder(input_shape, latent_dim, seed=0):
    """q(z|u) = N(W u, diag(exp(V u))) on the flattened u: a fixed encoder to bind, with its
    float64 numpy twin `encode.numpy(u)` for the expected values."""
    rng = np.random.default_rng(seed)
    size = math.prod(input_shape)
    w = rng.normal(size=(size, latent_dim)) / np.sqrt(size)
    v = 0.5 * rng.normal(size=(size, latent_dim)) / np.sqrt(size)
    seen = []

    def encode(u):
        seen.append(tuple(u.shape))
        flat = tf.reshape(u, [tf.shape(u)[0], size])
        return {"loc": flat @ w.astype("float32"), "scale": tf.exp(flat @ v.astype("float32"))}

    def numpy_encode(u):
        flat = np.reshape(u, (len(u), size)).astype(np.float64)
        return flat @ w, np.exp(flat @ v)

    encode.numpy, encode.seen = numpy_encode, seen
    return encode


def scipy_mixture_log_prob(logits, loc, scale, z):
    """log sum_k softmax(logits)_k prod_l N(z_l; loc_kl, scale_kl^2), by scipy."""
    log_components = scipy.stats.norm.logpdf(z[:, None, :], loc[None], scale[None]).sum(-1)
    return scipy.special.logsumexp(log_components + scipy.special.log_softmax(logits), axis=-1)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def randomize(prior):
    """Sets every weight to a random value, so a copy that ignored the weights would differ."""
    if not prior.built:
        prior.build()
    prior.set_weights([RNG.normal(size=w.shape).astype("float32") for w in prior.get_weights()])


LATENT = 3
PRIORS = {
    "standard_normal": lambda: priors.StandardNormalPrior(LATENT, name="p"),
    "mixture": lambda: priors.MixturePrior(LATENT, num_components=4, min_scale=1e-3, name="p"),
    "vamp_flat": lambda: priors.VampPrior(LATENT, 5, input_shape=(784,), name="p"),
    "vamp_image": lambda: priors.VampPrior(LATENT, 5, input_shape=(28, 28, 1), name="p"),
    "vamp_real": lambda: priors.VampPrior(LATENT, 5, input_shape=(64,), pseudo_input_range=None),
    "vamp_interval": lambda: priors.VampPrior(LATENT, 2, input_shape=(8, 8),
                                              pseudo_input_range=(-1.0, 3.0)),
}


def bind_if_vamp(prior):
    if isinstance(prior, priors.VampPrior):
        prior.bind(linear_encoder(prior.input_shape, LATENT))
    return prior


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_each_prior_round_trips_alone(name):
    prior = bind_if_vamp(PRIORS[name]())
    randomize(prior)
    config = prior.get_config()
    clone = type(prior).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(prior)
    assert serialized["registered_name"] == f"tfvae>{type(prior).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    from_json = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    z = RNG.normal(size=(20, LATENT)).astype("float32")
    expected_log_prob = prior.log_prob(z).numpy()
    expected_sample = prior.sample(6, seed=7).numpy()
    for other in (clone, restored, from_json):
        assert type(other) is type(prior) and other.get_config() == config
        bind_if_vamp(other)
        if not other.built:
            other.build()
        other.set_weights(prior.get_weights())
        np.testing.assert_array_equal(other.log_prob(z).numpy(), expected_log_prob)
        np.testing.assert_array_equal(other.sample(6, seed=7).numpy(), expected_sample)
    assert expected_log_prob.shape == (20,) and expected_sample.shape == (6, LATENT)


@pytest.mark.parametrize("input_shape", [(784,), (28, 28, 1), (64,)])
def test_vamp_pseudo_inputs_have_the_model_input_shape(input_shape):
    encode = linear_encoder(input_shape, LATENT)
    prior = priors.VampPrior(LATENT, 6, input_shape=input_shape).bind(encode)
    prior.build()
    (weight,) = prior.weights
    assert weight.name == "raw_pseudo_inputs" and tuple(weight.shape) == (6, *input_shape)
    assert tuple(prior.pseudo_inputs().shape) == (6, *input_shape)
    params = prior.params()
    assert encode.seen == [(6, *input_shape)]
    assert tuple(params["loc"].shape) == (6, LATENT) and tuple(params["scale"].shape) == (6, LATENT)
    assert tuple(prior.log_prob(np.zeros((2, 4, LATENT), "float32")).shape) == (2, 4)
    assert tuple(prior.sample(3, seed=0).shape) == (3, LATENT)


def test_bounded_pseudo_inputs_stay_in_the_data_range():
    prior = priors.VampPrior(LATENT, 4, input_shape=(28, 28, 1))  # (0, 1) by default
    prior.build()
    u = prior.pseudo_inputs().numpy()
    assert u.min() > 0 and u.max() < 1
    x = RNG.uniform(size=(4, 28, 28, 1)).astype("float32")
    x[0, :3, 0, 0] = [0.0, 1.0, 0.5]
    prior.initialize_from_data(x)
    u = prior.pseudo_inputs().numpy()
    assert u.min() > 0 and u.max() < 1
    np.testing.assert_allclose(u, np.clip(x, 0.01, 0.99), rtol=1e-5)
    # a general interval: u = low + (high - low) sigmoid(raw)
    low, high = -1.0, 3.0
    prior = priors.VampPrior(LATENT, 2, input_shape=(8, 8), pseudo_input_range=(low, high))
    prior.build()
    np.testing.assert_allclose(prior.pseudo_inputs().numpy(),
                               low + (high - low) * sigmoid(prior.raw_pseudo_inputs.numpy()),
                               rtol=1e-6, atol=1e-6)
    x = RNG.uniform(low - 1, high + 1, size=(2, 8, 8)).astype("float32")
    prior.initialize_from_data(x)
    u = prior.pseudo_inputs().numpy()
    assert u.min() > low and u.max() < high
    expected = low + (high - low) * np.clip((x - low) / (high - low), 0.01, 0.99)
    np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-5)


def test_real_valued_pseudo_inputs_are_unconstrained():
    prior = priors.VampPrior(LATENT, 5, input_shape=(64,), pseudo_input_range=None)
    prior.build()
    u = prior.pseudo_inputs().numpy()
    assert u.min() < 0 or u.max() > 1  # N(0, 1) draws, not squashed to (0, 1)
    x = RNG.uniform(-3.0, 3.0, size=(5, 64)).astype("float32")
    prior.initialize_from_data(x)
    np.testing.assert_array_equal(prior.pseudo_inputs().numpy(), x)
    assert x.min() < -2 and x.max() > 2
    with pytest.raises(ValueError, match=r"\[5, 64\]"):
        prior.initialize_from_data(x[:4])


def test_unbound_vamp_prior_says_to_bind_the_encoder():
    prior = priors.VampPrior(LATENT, 3, input_shape=(64,))
    for call in (prior.params, lambda: prior.log_prob(np.zeros((2, LATENT), "float32")),
                 lambda: prior.sample(2, seed=0), prior.distribution):
        with pytest.raises(ValueError, match=r"bind\(model.encode\)"):
            call()
    with pytest.raises(ValueError, match="Received: encode=3"):
        prior.bind(3)
    prior.encode = linear_encoder((64,), LATENT)  # the attribute form binds too
    assert tuple(prior.params()["loc"].shape) == (3, LATENT)
    assert "encode" not in prior.get_config()


def test_mixture_log_prob_matches_scipy_and_tfd_mixture_same_family():
    k, dim = 7, 5
    prior = priors.MixturePrior(dim, k)
    randomize(prior)
    logits, loc, raw_scale = (w.astype(np.float64) for w in prior.get_weights())
    scale = np.logaddexp(0.0, raw_scale) + prior.min_scale  # softplus
    z = RNG.normal(size=(300, dim)) * 2
    expected = scipy_mixture_log_prob(logits, loc, scale, z)
    np.testing.assert_allclose(prior.log_prob(z.astype("float32")).numpy(), expected, rtol=1e-5)
    reference = tfd.MixtureSameFamily(tfd.Categorical(logits=logits),
                                      tfd.Independent(tfd.Normal(loc, scale), 1))
    np.testing.assert_allclose(reference.log_prob(z).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(prior.distribution().log_prob(z.astype("float32")).numpy(),
                               expected, rtol=1e-5)


def test_vamp_log_prob_is_the_uniform_mixture_of_posteriors_at_the_pseudo_inputs():
    input_shape = (8, 8, 1)
    encode = linear_encoder(input_shape, LATENT, seed=3)
    prior = priors.VampPrior(LATENT, 6, input_shape=input_shape).bind(encode)
    randomize(prior)
    u = sigmoid(prior.raw_pseudo_inputs.numpy())
    loc, scale = encode.numpy(u)
    z = RNG.normal(size=(100, LATENT))
    expected = scipy_mixture_log_prob(np.zeros(6), loc, scale, z)
    np.testing.assert_allclose(prior.log_prob(z.astype("float32")).numpy(), expected, rtol=1e-5)
    reference = tfd.MixtureSameFamily(tfd.Categorical(logits=np.zeros(6)),
                                      tfd.Independent(tfd.Normal(loc, scale), 1))
    np.testing.assert_allclose(reference.log_prob(z).numpy(), expected, rtol=1e-10)


def test_old_config_with_input_dim_loads():
    old = {"name": "prior", "trainable": True, "dtype": "float32", "latent_dim": 4,
           "num_components": 3, "input_dim": 784}
    for prior in (priors.VampPrior.from_config(old),
                  keras.saving.deserialize_keras_object(
                      {"module": "tfvae.priors", "class_name": "VampPrior", "config": old,
                       "registered_name": "tfvae>VampPrior"})):
        assert prior.input_shape == (784,) and prior.pseudo_input_range == (0.0, 1.0)
        prior.build()
        assert prior.raw_pseudo_inputs.name == "raw_pseudo_inputs"
        old_weights = RNG.normal(-2.0, 1.0, size=(3, 784)).astype("float32")
        prior.set_weights([old_weights])  # a [K, D] weight saved by an earlier version
        np.testing.assert_allclose(prior.pseudo_inputs().numpy(), sigmoid(old_weights), rtol=1e-6)
    # the models' positional call: make_prior(kind, latent_dim, components, input_dim, encode=)
    encode = linear_encoder((784,), 4)
    prior = priors.make_prior("vamp", 4, 3, 784, encode=encode)
    assert prior.input_shape == (784,) and prior.encode is encode and prior.name == "prior"
    assert priors.make_prior("vamp", 4, 3, input_dim=784).input_shape == (784,)
    assert priors.make_prior("vamp", 4, 3, (28, 28, 1), pseudo_input_range=None).get_config()[
        "pseudo_input_range"] is None
    with pytest.raises(ValueError, match="old spelling"):
        priors.VampPrior(4, 3, input_shape=(28, 28, 1), input_dim=784)


@pytest.mark.parametrize("build, message", [
    (lambda: priors.StandardNormalPrior(0), "Received: latent_dim=0"),
    (lambda: priors.MixturePrior(2, 0), "Received: num_components=0"),
    (lambda: priors.MixturePrior(2, 2.5), "Received: num_components=2.5"),
    (lambda: priors.MixturePrior(2, 3, min_scale=-1.0), "Received: min_scale=-1.0"),
    (lambda: priors.VampPrior(2, True, input_shape=(4,)), "Received: num_components=True"),
    (lambda: priors.VampPrior(2, 3), "Received: input_shape=None"),
    (lambda: priors.VampPrior(2, 3, input_shape=(28, 0)), r"Received: input_shape=\(28, 0\)"),
    (lambda: priors.VampPrior(2, 3, input_shape=(4,), pseudo_input_range=(1.0, 0.0)),
     r"Received: pseudo_input_range=\(1.0, 0.0\)"),
    (lambda: priors.VampPrior(2, 3, input_shape=(4,), pseudo_input_range="unit"),
     "Received: pseudo_input_range='unit'"),
    (lambda: priors.VampPrior(2, 3, input_shape=(4,), pseudo_input_range=(0.0, math.inf)),
     "finite"),
])
def test_bad_constructor_arguments_say_what_was_received(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("pseudo_input_range", [(0.0, 1.0), None])
def test_vamp_trains_its_pseudo_inputs_under_xla(pseudo_input_range):
    """The gradient of log p(z) reaches raw_pseudo_inputs through a Keras conv encoder, and the
    XLA-compiled log-density equals the eager one."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(keras.layers.Conv2D(2, 5, strides=4)(inputs))
    encoder = keras.Model(inputs, [keras.layers.Dense(LATENT)(h),
                                   keras.layers.Dense(LATENT, activation="softplus")(h)])

    def encode(u):
        loc, scale = encoder(u)
        return {"loc": loc, "scale": scale + 1e-3}

    prior = priors.VampPrior(LATENT, 4, input_shape=(28, 28, 1),
                             pseudo_input_range=pseudo_input_range).bind(encode)
    prior.build()
    z = RNG.normal(size=(2, 5, LATENT)).astype("float32")
    eager = prior.log_prob(z).numpy()
    compiled = tf.function(prior.log_prob, jit_compile=True)(tf.constant(z)).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(prior.log_prob(z))
    grad = tape.gradient(loss, prior.raw_pseudo_inputs)
    assert grad is not None and grad.shape == (4, 28, 28, 1)
    assert float(tf.reduce_max(tf.abs(grad))) > 0
