"""Distribution layers with event shapes of any rank: parameter layout, log_prob summed over
every event axis (against numpy formulas), config round trip and the old `event_size` spelling."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import assert_layer_round_trip
from tfvae import distributions

RNG = np.random.default_rng(0)
SHAPES = [(3,), (4, 5), (28, 28, 1)]
BATCH = 2


def softplus(a):
    return np.logaddexp(0.0, a)


def make(kind, event_shape, **kwargs):
    if kind == "gaussian":
        return distributions.DiagonalGaussian(event_shape, min_scale=0.01, **kwargs)
    if kind == "bernoulli":
        return distributions.Bernoulli(event_shape, **kwargs)
    return distributions.GaussianLikelihood(event_shape, **kwargs)


def numpy_params(kind, layer, raw):
    """Parameters from raw outputs [B, n_params, *event] by the formulas, not the layer."""
    if kind == "gaussian":
        return {"loc": raw[:, 0], "scale": softplus(raw[:, 1]) + 0.01}
    if kind == "bernoulli":
        return {"logits": raw[:, 0], "probs": 1 / (1 + np.exp(-raw[:, 0]))}
    scale = softplus(layer.raw_scale.numpy()) + 1e-3
    return {"loc": raw[:, 0], "scale": np.broadcast_to(scale, raw[:, 0].shape)}


def numpy_log_prob(kind, params, x, event_ndims):
    axes = tuple(range(-event_ndims, 0))
    if kind == "bernoulli":
        p = params["probs"]
        return np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=axes)
    m, s = params["loc"], params["scale"]
    return np.sum(-0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), axis=axes)


def draw_x(kind, shape):
    if kind == "bernoulli":
        return (RNG.uniform(size=shape) < 0.5).astype("float32")
    return RNG.normal(size=shape).astype("float32")


KINDS = ["gaussian", "bernoulli", "likelihood"]


@pytest.mark.parametrize("event_shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("feature_shape", [(7,), (2, 3, 2)])
def test_projected_params_layout_and_log_prob(kind, event_shape, feature_shape):
    layer = make(kind, event_shape)
    features = RNG.normal(size=(BATCH, *feature_shape)).astype("float32")
    params = layer(features)
    n = layer.units_per_param
    assert layer.params_size == n * int(np.prod(event_shape))
    for value in params.values():
        assert tuple(value.shape) == (BATCH, *event_shape)
    # The projection reads [B, n, *event]: for flat events the same as splitting the last axis.
    kernel, bias = (w.numpy() for w in layer.projection.weights)
    raw = (features.reshape(BATCH, -1).astype(np.float64) @ kernel + bias).reshape(BATCH, n, *event_shape)
    expected = numpy_params(kind, layer, raw)
    for name, value in expected.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-5, atol=1e-5)
    x = draw_x(kind, (BATCH, *event_shape))
    log_p = numpy_log_prob(kind, expected, x, len(event_shape))
    assert layer.log_prob(params, x).shape == (BATCH,)
    np.testing.assert_allclose(layer.log_prob(params, x), log_p, rtol=1e-5)
    dist = layer.distribution(params)
    assert dist.batch_shape == (BATCH,) and tuple(dist.event_shape) == event_shape
    np.testing.assert_allclose(dist.log_prob(x), log_p, rtol=1e-5)
    assert tuple(layer.mean(params).shape) == (BATCH, *event_shape)
    assert tuple(layer.sample(params, seed=1).shape) == (BATCH, *event_shape)


def test_flat_layout_is_the_split_of_the_last_axis():
    """Saved models depend on it: the first L projection outputs are loc, the next L raw scale."""
    layer = distributions.DiagonalGaussian(3, min_scale=0.0)
    features = RNG.normal(size=(4, 5)).astype("float32")
    params = layer(features)
    raw = layer.projection(features).numpy()
    np.testing.assert_array_equal(params["loc"], raw[:, :3])
    np.testing.assert_allclose(params["scale"], softplus(raw[:, 3:]), rtol=1e-6)


def test_gaussian_samples_keep_the_event_shape():
    layer = distributions.DiagonalGaussian((4, 5))
    params = layer(tf.zeros([BATCH, 3]))
    assert layer.sample(params, seed=0, num_samples=6).shape == (6, BATCH, 4, 5)


@pytest.mark.parametrize("event_shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind, event_shape):
    layer = make(kind, event_shape)
    assert tuple(layer.get_config()["event_shape"]) == event_shape
    assert "event_size" not in layer.get_config()
    assert_layer_round_trip(layer, tf.constant(RNG.normal(size=(BATCH, 6)), tf.float32))
    # a .keras-style (JSON) round trip gives lists; they read back as the same shape
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert restored.event_shape == event_shape


@pytest.mark.parametrize("kind", KINDS)
def test_configs_saved_with_event_size_still_load(kind):
    config = make(kind, 7).get_config()
    del config["event_shape"]
    config["event_size"] = 7
    layer = type(make(kind, 1)).from_config(config)
    assert layer.event_shape == (7,) and layer.get_config()["event_shape"] == (7,)
    for value in layer(tf.zeros([BATCH, 3])).values():
        assert tuple(value.shape) == (BATCH, 7)
    with pytest.raises(ValueError, match="not both"):
        type(layer)(event_shape=7, event_size=7)


@pytest.mark.parametrize("event_shape", [0, (), (3, 0), (2.0,), "3", None, True])
def test_bad_event_shapes_are_refused(event_shape):
    with pytest.raises(ValueError, match="event_shape"):
        distributions.DiagonalGaussian(event_shape)
    if event_shape is None:  # a likelihood part without one is unbound: its model binds it
        with pytest.raises(ValueError, match="not bound to a data shape"):
            distributions.Bernoulli(event_shape).build((None, 3))
    else:
        with pytest.raises(ValueError, match="event_shape"):
            distributions.Bernoulli(event_shape)


@pytest.mark.parametrize("kind", KINDS)
def test_unprojected_features_carry_the_parameters_on_the_last_axis(kind):
    layer = make(kind, (4, 5), project=False)
    n = layer.units_per_param
    features = RNG.normal(size=(BATCH, 4, 5 * n)).astype("float32")
    params = layer(features)
    first = next(iter(params.values()))
    assert tuple(first.shape) == (BATCH, 4, 5)
    np.testing.assert_allclose(first, features[..., :5])
    assert not layer.projection
    expected = f"\\(batch, 4, {5 * n}\\).*Received: input_shape=\\(2, 20\\)"
    with pytest.raises(ValueError, match=expected):
        make(kind, (4, 5), project=False)(tf.zeros([BATCH, 20]))
    with pytest.raises(ValueError, match="Received: input_shape=\\(2, 4, 6\\)"):
        make(kind, (4, 5), project=False)(tf.zeros([BATCH, 4, 6]))


@pytest.mark.parametrize("kind", KINDS)
def test_log_prob_matrix_flattens_event_shapes(kind):
    layer = make(kind, (2, 3))
    params = layer(tf.constant(RNG.normal(size=(4, 5)), tf.float32))
    x = draw_x(kind, (3, 2, 3))
    matrix = layer.log_prob_matrix(params, x)
    assert matrix.shape == (3, 4)
    numpy_p = {k: v.numpy()[None] for k, v in params.items()}
    expected = numpy_log_prob(kind, numpy_p, x[:, None], 2)
    np.testing.assert_allclose(matrix, expected, rtol=1e-4, atol=1e-4)
