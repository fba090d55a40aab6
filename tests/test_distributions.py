"""Distribution layers, KL (closed form vs numpy formula vs Monte Carlo), pathwise sampling."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from helpers import assert_layer_round_trip
from tfvae import distributions, estimators

tfd = tfp.distributions
RNG = np.random.default_rng(0)


def numpy_gaussian_kl(m_q, s_q, m_p, s_p):
    """KL[N(m_q, s_q^2) || N(m_p, s_p^2)], summed over the last axis (textbook formula)."""
    return np.sum(np.log(s_p / s_q) + (s_q ** 2 + (m_q - m_p) ** 2) / (2 * s_p ** 2) - 0.5, axis=-1)


def numpy_bernoulli_kl(p_q, p_p):
    return np.sum(p_q * np.log(p_q / p_p) + (1 - p_q) * np.log((1 - p_q) / (1 - p_p)), axis=-1)


def test_gaussian_kl_closed_form_vs_numpy_vs_monte_carlo():
    m_q, s_q = RNG.normal(size=(3, 4)), RNG.uniform(0.3, 2.0, size=(3, 4))
    m_p, s_p = RNG.normal(size=(3, 4)), RNG.uniform(0.5, 1.5, size=(3, 4))
    q = tfd.Independent(tfd.Normal(m_q.astype("float32"), s_q.astype("float32")), 1)
    p = tfd.Independent(tfd.Normal(m_p.astype("float32"), s_p.astype("float32")), 1)
    closed = distributions.kl_divergence(q, p)
    assert closed.shape == (3,)
    np.testing.assert_allclose(closed, numpy_gaussian_kl(m_q, s_q, m_p, s_p), rtol=1e-5)
    z = q.sample(200_000, seed=1)
    monte_carlo = distributions.kl_divergence(q, p, z, analytic=False)
    assert monte_carlo.shape == (200_000, 3)
    np.testing.assert_allclose(np.mean(monte_carlo, 0), closed, rtol=2e-2)


def test_bernoulli_kl_closed_form_vs_numpy_vs_monte_carlo():
    p_q, p_p = RNG.uniform(0.05, 0.95, size=(2, 5)), RNG.uniform(0.05, 0.95, size=(2, 5))
    q = tfd.Independent(tfd.Bernoulli(probs=p_q.astype("float32"), dtype=tf.float32), 1)
    p = tfd.Independent(tfd.Bernoulli(probs=p_p.astype("float32"), dtype=tf.float32), 1)
    closed = distributions.kl_divergence(q, p)
    np.testing.assert_allclose(closed, numpy_bernoulli_kl(p_q, p_p), rtol=1e-4)
    monte_carlo = distributions.kl_divergence(q, p, q.sample(200_000, seed=2), analytic=False)
    np.testing.assert_allclose(np.mean(monte_carlo, 0), closed, rtol=3e-2)


def test_kl_without_closed_form_falls_back_to_monte_carlo():
    q, p = tfd.Normal(0.0, 1.0), tfd.StudentT(df=3.0, loc=0.0, scale=1.0)
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(q, p)  # the premise: TFP has no closed form for this pair
    with pytest.raises(ValueError, match="Monte Carlo"):
        distributions.kl_divergence(q, p)
    z = q.sample(400_000, seed=3)
    estimate = float(np.mean(distributions.kl_divergence(q, p, z)))
    # Reference by numerical integration on a fine grid.
    grid = np.linspace(-12, 12, 200_001)
    log_q, log_p = q.log_prob(grid).numpy(), p.log_prob(grid).numpy()
    reference = np.trapezoid(np.exp(log_q) * (log_q - log_p), grid)
    assert abs(estimate - reference) < 4e-3


@pytest.mark.parametrize("activation", ["softplus", "exp"])
def test_diagonal_gaussian_layer(activation):
    layer = distributions.DiagonalGaussian(3, scale_activation=activation, min_scale=0.01)
    assert layer.params_size == 6
    features = tf.constant(RNG.normal(size=(5, 7)) * 10, tf.float32)
    params = layer(features)
    assert params["loc"].shape == (5, 3) and params["scale"].shape == (5, 3)
    assert np.all(params["scale"].numpy() >= 0.01)
    raw = layer.projection(features).numpy()[:, 3:]
    positive = np.log1p(np.exp(raw)) if activation == "softplus" else np.exp(raw)
    np.testing.assert_allclose(params["scale"], positive + 0.01, rtol=1e-5)
    dist = layer.distribution(params)
    assert dist.batch_shape == (5,) and dist.event_shape == (3,)
    assert_layer_round_trip(layer, features)


def test_bernoulli_layer_log_prob_matches_formula():
    layer = distributions.Bernoulli(4)
    features = tf.constant(RNG.normal(size=(6, 3)), tf.float32)
    params = layer(features)
    np.testing.assert_allclose(params["probs"], 1 / (1 + np.exp(-params["logits"].numpy())), rtol=1e-5)
    x = (RNG.uniform(size=(6, 4)) < 0.5).astype("float32")
    p = params["probs"].numpy()
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), -1)
    np.testing.assert_allclose(layer.distribution(params).log_prob(x), expected, rtol=1e-4)
    np.testing.assert_allclose(layer.log_prob(params, x), expected, rtol=1e-4)  # the fused form
    extreme = {"logits": tf.constant([[-1e4, 1e4, 0.0]])}
    np.testing.assert_allclose(layer.log_prob(extreme, tf.constant([[0.0, 1.0, 1.0]])), [np.log(0.5)],
                               rtol=1e-6)
    assert_layer_round_trip(layer, features)


def test_bernoulli_layer_without_projection_uses_features_as_logits():
    layer = distributions.Bernoulli(4, project=False)
    features = tf.constant(RNG.normal(size=(2, 4)), tf.float32)
    np.testing.assert_allclose(layer(features)["logits"], features)
    assert not layer.trainable_weights
    with pytest.raises(ValueError, match="4 columns"):
        distributions.Bernoulli(4, project=False)(tf.zeros([2, 5]))


@pytest.mark.parametrize("scale", [None, 0.3])
def test_gaussian_likelihood_layer(scale):
    layer = distributions.GaussianLikelihood(4, scale=scale)
    features = tf.constant(RNG.normal(size=(6, 3)), tf.float32)
    params = layer(features)
    expected_scale = 1.0 + 1e-3 if scale is None else 0.3  # learned scale starts at 1
    np.testing.assert_allclose(params["scale"], np.full((6, 4), expected_scale), rtol=1e-4)
    assert len(layer.trainable_weights) == (3 if scale is None else 2)
    x = RNG.normal(size=(6, 4)).astype("float32")
    m, s = params["loc"].numpy(), params["scale"].numpy()
    expected = np.sum(-0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(layer.distribution(params).log_prob(x), expected, rtol=1e-5)
    np.testing.assert_allclose(layer.log_prob(params, x), expected, rtol=1e-5)
    assert_layer_round_trip(layer, features)


@pytest.mark.parametrize("make, message", [
    (lambda: distributions.DiagonalGaussian(0), "event_size"),
    (lambda: distributions.DiagonalGaussian(2, scale_activation="relu"), "scale_activation"),
    (lambda: distributions.DiagonalGaussian(2, min_scale=-1.0), "min_scale"),
    (lambda: distributions.GaussianLikelihood(2, scale=0.0), "scale"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_pathwise_samples_have_the_right_moments_and_unbiased_gradients():
    loc = tf.Variable([0.5, -1.0])
    scale = tf.Variable([0.3, 2.0])
    with tf.GradientTape() as tape:
        z = estimators.pathwise_gaussian(loc, scale, seed=7, num_samples=400_000)
        objective = tf.reduce_mean(tf.reduce_sum(z ** 2, -1))
    np.testing.assert_allclose(np.mean(z, 0), loc.numpy(), atol=0.01)
    np.testing.assert_allclose(np.std(z, 0), scale.numpy(), rtol=0.01)
    # E[z^2] = loc^2 + scale^2, so the true gradients are 2 loc and 2 scale.
    d_loc, d_scale = tape.gradient(objective, [loc, scale])
    np.testing.assert_allclose(d_loc, 2 * loc.numpy(), atol=0.02)
    np.testing.assert_allclose(d_scale, 2 * scale.numpy(), rtol=0.02)


def test_stateless_sampling_is_keyed_by_the_seed():
    a = estimators.pathwise_gaussian(tf.zeros(5), tf.ones(5), seed=1)
    b = estimators.pathwise_gaussian(tf.zeros(5), tf.ones(5), seed=1)
    c = estimators.pathwise_gaussian(tf.zeros(5), tf.ones(5), seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
