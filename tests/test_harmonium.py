"""HarmoniumVAE, the gradient estimators, exact likelihood and gradient variance."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from helpers import assert_model_saving_round_trip
import tfvae
from tfvae import estimators, evaluation

RNG = np.random.default_rng(0)


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def random_tied(input_dim=6, latent_dim=3, scale=1.0, **kwargs):
    model = tfvae.HarmoniumVAE(input_dim=input_dim, latent_dim=latent_dim, **kwargs)
    model.build((None, input_dim))
    model.W.assign(scale * RNG.normal(size=(input_dim, latent_dim)))
    model.u.assign(RNG.normal(size=input_dim))
    model.v.assign(RNG.normal(size=latent_dim))
    return model


def numpy_rbm_log_joint(model, x, z):
    """Unnormalized log p(x, z) = x W z + u x + v z of the binary harmonium, [len(x), len(z)]."""
    W, u, v = model.W.numpy(), model.u.numpy(), model.v.numpy()
    return x @ W @ z.T + (x @ u)[:, None] + (z @ v)[None, :]


def test_tied_posterior_is_the_exact_posterior_and_the_elbo_is_log_likelihood():
    model = random_tied()
    x, z = all_states(6), all_states(3)
    log_joint = numpy_rbm_log_joint(model, x, z)                          # [64, 8]
    log_z = np.logaddexp.reduce(log_joint.ravel())
    exact_posterior = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    probs = model.encode(x.astype(np.float32))["probs"].numpy()
    q = np.prod(np.where(z[None] == 1, probs[:, None], 1 - probs[:, None]), axis=-1)
    np.testing.assert_allclose(q, exact_posterior, atol=1e-6)
    # Brute force over all 2^6 x 2^3 configurations vs the closed form vs enumeration over z.
    brute = np.logaddexp.reduce(log_joint, axis=1) - log_z
    np.testing.assert_allclose(model.log_marginal(x.astype(np.float32)), brute, rtol=1e-5)
    np.testing.assert_allclose(evaluation.exact_log_likelihood(model, x, states_per_chunk=3),
                               brute, rtol=1e-5)
    # Every sample's log-weight is log p(x): the ELBO equals it, for any seed.
    for seed in range(3):
        np.testing.assert_allclose(model.elbo(x.astype(np.float32), seed=seed), brute, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_tied_prior_sums_to_one_and_matches_the_marginal_of_the_joint(likelihood):
    model = random_tied(scale=0.5, likelihood=likelihood)
    z = all_states(3).astype(np.float32)
    log_prior = model.prior_log_prob(z).numpy()
    np.testing.assert_allclose(np.exp(log_prior).sum(), 1.0, rtol=1e-5)
    x = RNG.uniform(size=(5, 6)).astype(np.float32) if likelihood == "gaussian" else all_states(6)[:5]
    # log p(x) two ways: the closed form and sum_z p(z) p(x|z) with the decoder's likelihood.
    log_lik = np.stack([model.likelihood_layer.log_prob(model.decode(np.tile(zi, (5, 1))), x)
                        for zi in z], axis=1)
    np.testing.assert_allclose(model.log_marginal(x), np.logaddexp.reduce(log_lik + log_prior, axis=1),
                               rtol=1e-5)


def test_binary_vae_exact_likelihood_agrees_with_iwae_and_bounds_the_elbo():
    model = tfvae.VAE(input_dim=20, latent_dim=4, latent="bernoulli", hidden=(16,), seed=0)
    x = (RNG.uniform(size=(6, 20)) < 0.4).astype(np.float32)
    exact = evaluation.exact_log_likelihood(model, x)
    # Independently: enumerate z in numpy with the factorized prior Bernoulli(1/2).
    z = all_states(4).astype(np.float32)
    logits = model.decode(z)["logits"].numpy()
    log_lik = x @ logits.T - np.logaddexp(0, logits).sum(-1)
    np.testing.assert_allclose(exact, np.logaddexp.reduce(log_lik - 4 * np.log(2), axis=1), rtol=1e-5)
    np.testing.assert_allclose(model.log_prob(x, 4000, seed=0), exact, atol=0.05)
    assert np.all(model.loss_terms(x, num_samples=1000, seed=0)["elbo"].numpy() < exact)


def test_score_function_and_pathwise_gradients_agree_on_a_gaussian_problem():
    """d/dmu E[(z - a)^2] = 2 (mu - a) and d/dsigma = 2 sigma for z ~ N(mu, sigma^2)."""
    mu, sigma, a, n = tf.Variable(0.7), tf.Variable(1.3), 0.2, 200_000
    with tf.GradientTape(persistent=True) as tape:
        z = estimators.pathwise_gaussian(tf.fill([n], mu), tf.fill([n], sigma), seed=1)
        f_pathwise = tf.square(z - a)
        z_fixed = tf.stop_gradient(estimators.pathwise_gaussian(tf.fill([n], mu), tf.fill([n], sigma), seed=2))
        log_q = -tf.math.log(sigma) - 0.5 * tf.square((z_fixed - mu) / sigma)
        f = tf.square(z_fixed - a)
        f_score = f + estimators.score_function_surrogate(log_q, f, baseline=tf.reduce_mean(f))
        objectives = {"pathwise": tf.reduce_mean(f_pathwise), "score_function": tf.reduce_mean(f_score)}
    exact = {"mu": 2 * (0.7 - a), "sigma": 2 * 1.3}
    for name, variable in (("mu", mu), ("sigma", sigma)):
        for label, objective in objectives.items():
            mean = tape.gradient(objective, variable).numpy()
            # Monte Carlo error: per-draw gradients have standard deviations of 2-6 here, so
            # the standard error over 200,000 draws is at most about 0.015.
            assert abs(mean - exact[name]) < 0.05, (label, name, mean, exact[name])


def test_straight_through_bias_is_measured_and_score_function_is_unbiased():
    """f(z) = sum (z - t)^2, z ~ Bernoulli(sigmoid(l)): d E[f] / dl = p (1 - p) (1 - 2 t)
    exactly; straight-through gives E[2 (z - t)] p (1 - p) = 2 (p - t) p (1 - p), a bias of
    p (1 - p) (2 p - 1) that vanishes only at p = 1/2."""
    logits = tf.Variable([-2.0, -0.5, 0.0, 1.0, 2.5])
    t = tf.constant([0.3, 0.9, 0.5, 0.1, 0.6])
    n = 400_000
    p = tf.sigmoid(logits).numpy()
    exact = p * (1 - p) * (1 - 2 * t.numpy())
    with tf.GradientTape(persistent=True) as tape:
        probs = tf.broadcast_to(tf.sigmoid(logits), [n, 5])
        z = estimators.straight_through_bernoulli(probs, seed=3)
        f_st = tf.reduce_sum(tf.square(z - t), -1)
        z_sf = tf.stop_gradient(z)
        f = tf.reduce_sum(tf.square(z_sf - t), -1)
        log_q = tf.reduce_sum(z_sf * logits - tf.nn.softplus(logits), -1)
        f_sf = f + estimators.score_function_surrogate(log_q, f, baseline=tf.reduce_mean(f))
        mean_st, mean_sf = tf.reduce_mean(f_st), tf.reduce_mean(f_sf)
    straight_through = tape.gradient(mean_st, logits).numpy()
    score_function = tape.gradient(mean_sf, logits).numpy()
    np.testing.assert_allclose(straight_through - exact, p * (1 - p) * (2 * p - 1), atol=3e-3)
    np.testing.assert_allclose(score_function, exact, atol=6e-3)
    assert abs((straight_through - exact)[0]) > 0.05  # a real bias, far above the MC error


def test_relaxed_samples_have_finite_log_prob_at_low_temperature():
    logits = tf.constant(np.linspace(-8, 8, 9), tf.float32)
    temperature = 0.02
    y = estimators.relaxed_bernoulli_logits(tf.broadcast_to(logits, [20000, 9]), seed=4,
                                            temperature=temperature)
    log_density = estimators.logistic_log_prob(y, logits, temperature)
    assert np.all(np.isfinite(log_density))
    # In probability space the same draws round to exactly 0 or 1 ...
    relaxed = tf.sigmoid(y).numpy()
    assert np.mean((relaxed == 0) | (relaxed == 1)) > 0.5
    # ... and TFP's density of them is no longer finite: why tfvae samples in logit space.
    tfp_density = tfp.distributions.RelaxedBernoulli(temperature, logits=logits).log_prob(relaxed)
    assert not np.all(np.isfinite(tfp_density))
    # The density is the logistic one: compare with TFP's Logistic.
    reference = tfp.distributions.Logistic(logits / temperature, 1 / temperature).log_prob(y)
    np.testing.assert_allclose(log_density, reference, rtol=1e-4, atol=1e-3)
    # At any temperature P(y > 0) = sigmoid(logits) (the Gumbel-max property).
    np.testing.assert_allclose(np.mean(y.numpy() > 0, axis=0), tf.sigmoid(logits), atol=0.01)


def test_gradient_variance_on_the_tied_model():
    """Tied: every sample's log-weight is log p(x), so straight-through is exact with zero
    variance and the score function is unbiased; a baseline lowers its variance."""
    model = random_tied(input_dim=12, latent_dim=4, scale=0.5)
    x = (RNG.uniform(size=(16, 12)) < 0.5).astype(np.float32)
    with tf.GradientTape() as tape:
        log_px = tf.reduce_mean(model.log_marginal(x))
    exact = np.concatenate([g.numpy().ravel() for g in tape.gradient(log_px, model.encoder_weights())])
    st = evaluation.gradient_variance(model, x, num_draws=20, estimator="straight_through")
    np.testing.assert_allclose(st["mean"], exact, rtol=1e-4, atol=1e-5)
    assert st["total_variance"] < 1e-8
    plain = evaluation.gradient_variance(model, x, num_draws=500, estimator="score_function",
                                           baseline="none")
    centred = evaluation.gradient_variance(model, x, num_draws=500, estimator="score_function",
                                           baseline="moving_average")
    for result in (plain, centred):
        stderr = np.sqrt(result["variance"] / result["num_draws"])
        assert np.all(np.abs(result["mean"] - exact) < 5 * stderr + 1e-4)
    assert centred["total_variance"] < 0.1 * plain["total_variance"]
    assert model.estimator == "straight_through"  # restored
    with pytest.raises(ValueError, match="estimator"):
        evaluation.gradient_variance(model, x, num_draws=2, estimator="relaxed")


def test_score_function_term_changes_the_gradient_not_the_value():
    x = (RNG.uniform(size=(8, 30)) < 0.4).astype(np.float32)
    model = tfvae.HarmoniumVAE(input_dim=30, latent_dim=5, estimator="score_function", seed=0)
    model.build((None, 30))
    model.posterior_layer.signal_mean.assign(-7.0)

    def objective_and_gradient(estimator):
        with model.estimators_as(estimator), tf.GradientTape() as tape:
            objective = model.loss_terms(x, seed=2)["objective"]
            mean = tf.reduce_mean(objective)
        return objective.numpy(), tape.gradient(mean, model.encoder_weights()[0])

    value_st, gradient_st = objective_and_gradient("straight_through")
    value_sf, gradient_sf = objective_and_gradient("score_function")
    np.testing.assert_allclose(value_sf, value_st, rtol=1e-6)
    assert np.max(np.abs(gradient_sf - gradient_st)) > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(latent_dim=21), "latent_dim <= 20"),
    (dict(latent="gaussian"), r"tfvae\.VAE\(latent='gaussian'\)"),
    (dict(tie_weights=False), r"tfvae\.VAE\(latent='bernoulli'"),
    (dict(estimator="relaxed"), "factorized prior"),
    (dict(estimator="pathwise"), "estimator"),
    (dict(baseline="median"), "baseline"),
    (dict(estimator="score_function", num_samples=5), "VIMCO"),
    (dict(likelihood="gaussian", likelihood_scale=0.3), "unit variance"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfvae.HarmoniumVAE(input_dim=10, **kwargs)


def test_exact_likelihood_refuses_models_it_cannot_enumerate():
    with pytest.raises(ValueError, match="binary latents"):
        evaluation.exact_log_likelihood(tfvae.VAE(input_dim=10, latent_dim=2), np.zeros((2, 10), np.float32))
    wide = tfvae.VAE(input_dim=10, latent_dim=30, latent="bernoulli", hidden=(8,))
    with pytest.raises(ValueError, match="beyond 20"):
        evaluation.exact_log_likelihood(wide, np.zeros((2, 10), np.float32))
