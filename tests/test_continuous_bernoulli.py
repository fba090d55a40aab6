"""The continuous Bernoulli likelihood (Loaiza-Ganem & Cunningham 2019), checked against
independent float64 formulas in lambda (not the code's eta form) and by numerical integration:
a normalized density at every eta (near lambda = 1/2 too), its mean, its sampler (KS test), and
a VAE that trains on grey levels with it."""
import keras
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import tensorflow as tf

import tfvae
from tfvae import likelihoods

ETAS = [-30.0, -4.0, -0.3, -0.02, -0.009, -1e-4, 0.0, 1e-5, 0.004, 0.0101, 0.5, 6.0, 30.0]


def _layer(n=len(ETAS)):
    return likelihoods.get("continuous_bernoulli").bind((n,), project=False)


def _log_c_float64(eta):
    """log C from the paper's lambda form, C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), in float64
    (or, within 1e-3 of 1/2 where float64 cancels, numerically: 1 / int_0^1 lambda^x (1-lambda)^(1-x)).
    At -|eta|: C is symmetric (lambda <-> 1 - lambda), and near lambda = 1 float64 loses
    1 - lambda."""
    lam = 1.0 / (1.0 + np.exp(abs(np.float64(eta))))
    if abs(1 - 2 * lam) < 1e-3:
        integral, _ = scipy.integrate.quad(lambda x: lam ** x * (1 - lam) ** (1 - x), 0, 1, epsabs=1e-14)
        return -np.log(integral)
    return np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))


def test_the_log_normalizer_matches_the_papers_form_at_every_eta():
    got = np.asarray(likelihoods.ContinuousBernoulli.log_normalizer(tf.constant(ETAS, tf.float32)))
    expected = np.array([_log_c_float64(e) for e in ETAS])
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-6)
    assert got[ETAS.index(0.0)] == pytest.approx(np.log(2.0), abs=1e-7)


@pytest.mark.parametrize("eta", ETAS)
def test_the_density_integrates_to_one_and_its_mean_is_the_integral_of_x(eta):
    layer = _layer(1)
    params = {"logits": tf.constant([[eta]], tf.float32)}
    grid = np.linspace(0.0, 1.0, 20001)
    log_p = np.asarray(layer.log_prob({"logits": tf.fill([len(grid), 1], np.float32(eta))},
                                      tf.constant(grid[:, None], tf.float32)), np.float64)
    density = np.exp(log_p)
    assert scipy.integrate.trapezoid(density, grid) == pytest.approx(1.0, abs=2e-4 + 1e-3 * (abs(eta) > 20))
    mean = scipy.integrate.trapezoid(grid * density, grid)
    assert float(layer.mean(params)[0, 0]) == pytest.approx(mean, abs=2e-4)


@pytest.mark.parametrize("eta", [-5.0, -0.001, 0.0, 0.7, 12.0])
def test_samples_follow_the_cdf(eta):
    lam = 1.0 / (1.0 + np.exp(-eta))

    def cdf(x):  # F(x) = (lambda^x (1 - lambda)^(1 - x) + lambda - 1) / (2 lambda - 1); x at 1/2
        if abs(2 * lam - 1) < 1e-6:
            return x
        return (lam ** x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)

    draws = np.asarray(_layer(1).sample({"logits": tf.fill([20000, 1], np.float32(eta))},
                                        tf.constant([3, 4], tf.int32)))[:, 0]
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert scipy.stats.kstest(draws, np.vectorize(cdf)).pvalue > 1e-3


def test_a_vae_trains_on_grey_levels_with_it_and_refuses_values_outside_the_unit_interval():
    rng = np.random.default_rng(0)
    x = np.clip(rng.random((256, 2)) @ rng.random((2, 16)) / 2 + 0.05 * rng.normal(size=(256, 16)), 0, 1)
    x = x.astype(np.float32)
    model = tfvae.VAE(input_shape=(16,), latent_dim=2, hidden=(16,), likelihood="continuous_bernoulli")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    loss = model.fit(x, batch_size=64, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    assert model.get_config()["likelihood"] == "continuous_bernoulli"
    assert not model.likelihood.binary  # grey levels, not binarized
    with pytest.raises(ValueError, match=r"outside \[0, 1\] \(a continuous Bernoulli likelihood"):
        model.elbo(x * 2)
