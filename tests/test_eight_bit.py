"""The 8-bit likelihoods, the discretized logistic mixture of PixelCNN++ (with its RGB coupling)
and the 256-way categorical, against independent float64 formulas and exhaustive sums over the
256 (or 256^3) values; 8-bit data kept as integers end to end; bits per dimension."""
import itertools

import keras
import numpy as np
import pytest
import scipy.special
import tensorflow as tf

import tfvae
from tfvae import data, evaluation, likelihoods

RNG = np.random.default_rng(0)


def _discretized_numpy(x, logits, loc, log_scale, coeffs=None):
    """log p of one pixel x [C] (0..255) from the definition, float64: y = x / 127.5 - 1, bins
    of half-width 1/255, edge bins the tails, means coupled R -> G -> B."""
    y = np.asarray(x, np.float64) / 127.5 - 1
    log_terms = []
    for k in range(len(logits)):
        m = np.array(loc[:, k], np.float64)
        if coeffs is not None:
            m[1] += coeffs[0, k] * y[0]
            m[2] += coeffs[1, k] * y[0] + coeffs[2, k] * y[1]
        s = np.exp(np.maximum(log_scale[:, k], -7.0))
        upper = np.where(x == 255, 1.0, scipy.special.expit((y + 1 / 255 - m) / s))
        lower = np.where(x == 0, 0.0, scipy.special.expit((y - 1 / 255 - m) / s))
        log_terms.append(np.sum(np.log(upper - lower)) + scipy.special.log_softmax(logits)[k])
    return scipy.special.logsumexp(log_terms)


def _part(event_shape, k=3, **options):
    return likelihoods.get("discretized_logistic", num_components=k, **options).bind(event_shape, project=False)


def test_a_grey_pixel_sums_to_one_over_its_256_values_for_any_parameters():
    layer = _part((1,), k=3)
    for loc_scale in [(0.0, -2.0), (-1.3, -6.0), (1.2, -7.5), (0.999, -4.0), (0.3, 1.0)]:
        raw = np.concatenate([RNG.normal(size=3), np.full(3, loc_scale[0]) + 0.01 * RNG.normal(size=3),
                              np.full(3, loc_scale[1])]).astype(np.float32)
        params = layer.params_from_raw(tf.constant(np.tile(raw, (256, 1, 1))))
        log_p = layer.log_prob(params, tf.range(256, dtype=tf.float32)[:, None])
        assert float(tf.reduce_sum(tf.exp(tf.cast(log_p, tf.float64)))) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow  # (16.7 million values, 7 s: CI's second step; the definition test covers RGB too)
def test_an_rgb_pixel_with_its_coupling_sums_to_one_over_all_256_cubed_values():
    layer = _part((1, 1, 3), k=2)
    raw = RNG.normal(size=layer.params_per_pixel(3)).astype(np.float32) * 0.5
    raw[2:14] = np.clip(raw[2:14], -2.5, 0.9)
    values = np.arange(256, dtype=np.float32)
    x = np.stack(np.meshgrid(values, values, values, indexing="ij"), -1).reshape(-1, 1, 1, 3)
    total = 0.0
    for chunk in np.array_split(x, 16):
        params = layer.params_from_raw(tf.constant(np.tile(raw, (len(chunk), 1, 1, 1))))
        total += float(tf.reduce_sum(tf.exp(tf.cast(layer.log_prob(params, tf.constant(chunk)), tf.float64))))
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_log_density_is_the_definitions(channels):
    layer = _part((2, 2, channels), k=4)
    raw = RNG.normal(size=(5, 2, 2, layer.params_per_pixel(channels))).astype(np.float32)
    x = RNG.integers(0, 256, size=(5, 2, 2, channels)).astype(np.float32)
    x[0, 0, 0] = 0
    x[1, 1, 1] = 255
    params = {k: np.asarray(v, np.float64) for k, v in layer.params_from_raw(tf.constant(raw)).items()}
    got = np.asarray(layer.log_prob({k: tf.constant(v, tf.float32) for k, v in params.items()}, x))
    for n in range(5):
        expected = sum(_discretized_numpy(x[n, i, j], params["logits"][n, i, j], params["loc"][n, i, j],
                                          params["log_scale"][n, i, j],
                                          params["coeffs"][n, i, j] if channels == 3 else None)
                       for i, j in itertools.product(range(2), range(2)))
        assert got[n] == pytest.approx(expected, rel=1e-4, abs=1e-3)


def test_samples_follow_the_probabilities_of_the_256_values():
    layer = _part((1,), k=2)
    raw = np.array([[[0.4, -0.3, -0.5, 0.6, -2.5, -3.0]]], np.float32)
    params = layer.params_from_raw(tf.constant(np.tile(raw, (256, 1, 1))))
    p = np.exp(np.asarray(layer.log_prob(params, tf.range(256, dtype=tf.float32)[:, None]), np.float64))
    one = layer.params_from_raw(tf.constant(raw))
    draws = np.asarray(layer.sample(one, tf.constant([0, 5], tf.int32), num_samples=100000)).ravel()
    assert set(np.unique(draws)) <= set(range(256))
    frequencies = np.bincount(draws.astype(int), minlength=256) / len(draws)
    assert 0.5 * np.abs(frequencies - p).sum() < 0.02  # total variation


def test_the_categorical_is_a_softmax_over_the_256_values():
    layer = likelihoods.get("categorical256").bind((3,), project=False)
    raw = RNG.normal(size=(2, 256 * 3)).astype(np.float32)
    logits = np.asarray(layer.params_from_raw(tf.constant(raw))["logits"], np.float64)
    assert logits.shape == (2, 3, 256)
    np.testing.assert_array_equal(logits[1, 2], raw[1].reshape(256, 3)[:, 2])  # value j, channel c at j C + c
    x = np.array([[0, 17, 255], [128, 3, 4]], np.float32)
    expected = sum(scipy.special.log_softmax(logits[:, c], -1)[np.arange(2), x[:, c].astype(int)] for c in range(3))
    np.testing.assert_allclose(layer.log_prob(layer.params_from_raw(tf.constant(raw)), x), expected, rtol=1e-5)


def test_eight_bit_data_stays_integer_and_the_model_refuses_scaled_pixels(mnist_arrays):
    batch = next(iter(data.load("mnist", "test", eight_bit=True, batch_size=64)))
    values = np.asarray(batch)
    assert values.max() == 255 and np.all(values == np.round(values))
    with pytest.raises(ValueError, match="binarizing them contradicts"):
        data.load("mnist", "test", eight_bit=True, binarize="fixed")
    model = tfvae.VAE(input_shape=(784,), latent_dim=4, hidden=(32,), likelihood="discretized_logistic")
    assert model.elbo(mnist_arrays[2][:4]).shape == (4,)               # uint8 as it is
    with pytest.raises(ValueError, match=r"not an integer in 0..255.*not x / 255"):
        model.elbo(mnist_arrays[2][:4] / 255.0)


@pytest.mark.slow  # (11 s: a real fit on 8-bit MNIST; the slow step of .ci/run)
def test_a_vae_on_8_bit_mnist_reports_bits_per_dim_below_uniform(mnist_arrays):
    x = mnist_arrays[0][:2000]
    model = tfvae.VAE(input_shape=(784,), latent_dim=8, hidden=(128,), seed=0,
                      likelihood=likelihoods.get("discretized_logistic", num_components=3))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(x, batch_size=100, epochs=3, verbose=0)
    result = evaluation.iwae_nll(model, tf.data.Dataset.from_tensor_slices(mnist_arrays[2][:200]).batch(100),
                                 num_samples=10, verbose=0)
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (784 * np.log(2)))
    assert result["bits_per_dim"] < 8.0  # better than a uniform code over 0..255 (8 bits)


def test_dequantized_pixels_stay_in_their_bins_and_bits_per_dim_counts_the_bound(mnist_arrays):
    train = data.load("mnist", "train", dequantize=True, batch_size=1000, shuffle=False)
    first, second = (np.asarray(next(iter(train))) for _ in range(2))
    pixels = mnist_arrays[0][:1000].astype(np.float64)
    for batch in (first, second):
        assert batch.min() >= 0 and batch.max() < 1
        np.testing.assert_array_equal(np.floor(batch.astype(np.float64) * 256), pixels)  # x's own bin
    assert not np.array_equal(first, second)  # new noise every epoch
    test = data.load("mnist", "test", dequantize=True, batch_size=500)
    np.testing.assert_array_equal(next(iter(test)), next(iter(test)))  # held out: fixed noise
    with pytest.raises(ValueError, match="excludes binarize and eight_bit"):
        data.load("mnist", "test", dequantize=True, eight_bit=True)
    # log P(x) >= E log p((x + u) / 256) - D log 256: 8 bits/dim more than the density's
    assert evaluation.bits_per_dim(1000.0, 784, dequantized=True) == pytest.approx(
        1000.0 / (784 * np.log(2)) + 8.0)
    model = tfvae.VAE(input_shape=(784,), latent_dim=4, hidden=(32,), likelihood="gaussian")
    result = evaluation.iwae_nll(model, test.take(1), num_samples=4, verbose=0, dequantized=True)
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (784 * np.log(2)) + 8.0)
    assert "bits_per_dim" not in evaluation.iwae_nll(model, test.take(1), num_samples=4, verbose=0)
