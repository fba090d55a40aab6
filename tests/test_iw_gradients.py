"""Estimators of the importance-weighted bound's gradient (`iw_gradient`), against gradients
known in closed form or by enumeration.

The linear-Gaussian model p(z) = N(0, I), p(x|z) = N(z, I) has the posterior N(x/2, I/2) and,
for q(z|x) = N(m, s^2) with z_i = m + s eps_i, per-draw gradients written here in numpy from the
definitions (not from the code under test):
  log w_i = log N(x; z_i, 1) + log N(z_i; 0, 1) - log N(z_i; m, s),
  g_i = d log w_i / dz_i = (x - z_i) - z_i + (z_i - m) / s^2   (q's density held),
  plain: d/dm = sum_i w~_i (x - 2 z_i),  d/ds = sum_i w~_i ((x - 2 z_i) eps_i + 1 / s),
  STL (Roeder et al. 2017): sum_i w~_i g_i (dz_i/dm = 1, dz_i/ds = eps_i),
  DReG (Tucker et al. 2019): sum_i w~_i^2 g_i (...).
Their expectations are computed in numpy from 200,000 draws and compared with the model's mean
gradient over its own draws, within Monte Carlo error.
"""
import keras
import numpy as np
import pytest
import scipy.special
import tensorflow as tf

import tfvae
from tfvae import evaluation, objectives
from test_layer_terms import X4, model_and_joint, random_weights, score_function_gradient
from test_maths_exact import f64, finite_difference_gradient
from testing import run_model_contract

X = np.array([[1.0, 0.2]], np.float32)
LOC, SCALE = np.array([0.3, -0.5]), np.array([0.6, 1.3])  # q(z|x), away from the posterior


def linear_gaussian(loc, scale, num_samples=10, iw_gradient="dreg", analytic_kl=False):
    """VAE with q(z|x) = N(loc, scale^2) (the latent projection's bias; zero kernel) and
    p(x|z) = N(z W + b, 1) with W = I, b = 0: the linear-Gaussian model at the given q."""
    model = tfvae.VAE(input_shape=(2,), latent_dim=2, encoder=keras.layers.Identity(),
                      decoder=keras.Sequential([keras.layers.Dense(2, kernel_initializer="identity")]),
                      likelihood=tfvae.likelihoods.get("gaussian", scale=1.0), min_scale=0.0,
                      num_samples=num_samples, iw_gradient=iw_gradient, analytic_kl=analytic_kl,
                      seed=0)
    model.build((None, 2))
    projection = model.posterior_layer.projection
    projection.kernel.assign(np.zeros(projection.kernel.shape, np.float32))
    raw_scale = np.log(np.expm1(scale))  # softplus^-1
    projection.bias.assign(np.concatenate([loc, raw_scale]).astype(np.float32))
    return model


def numpy_expected_gradients(loc, scale, x, k, draws=200_000, seed=0):
    """E[gradient] of each estimator with respect to (loc, scale) of q, [2 * D], by numpy."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((draws, k, loc.size))
    z = loc + scale * eps
    log_w = np.sum(-0.5 * (x - z) ** 2 - 0.5 * z ** 2 + 0.5 * eps ** 2 + np.log(scale)
                   - 0.5 * np.log(2 * np.pi), axis=-1)  # [draws, k]
    normalized = scipy.special.softmax(log_w, axis=1)[..., None]
    g = (x - z) - z + (z - loc) / scale ** 2
    total = x - 2 * z  # d log w / dm along the path (q's own terms cancel)
    plain = np.concatenate([np.sum(normalized * total, 1),
                            np.sum(normalized * (total * eps + 1 / scale), 1)], -1)
    stl = np.concatenate([np.sum(normalized * g, 1), np.sum(normalized * g * eps, 1)], -1)
    dreg = np.concatenate([np.sum(normalized ** 2 * g, 1), np.sum(normalized ** 2 * g * eps, 1)], -1)
    return {name: (v.mean(0), v.std(0) / np.sqrt(draws)) for name, v in
            (("plain", plain), ("stl", stl), ("dreg", dreg))}


def model_gradient(model, iw_gradient, num_samples, num_draws=400):
    """The model's gradient with respect to (loc, scale) of q: the bias gradient of the raw
    scale divided by d scale / d raw (softplus' = sigmoid)."""
    result = evaluation.gradient_variance(model, X, num_draws=num_draws,
                                          weights=[model.posterior_layer.projection.bias],
                                          iw_gradient=iw_gradient, num_samples=num_samples)
    raw = model.posterior_layer.projection.bias.numpy()[2:]
    chain = np.concatenate([np.ones(2), scipy.special.expit(raw)])
    return (result["mean"] / chain, np.sqrt(result["variance"] / num_draws) / chain,
            result)


@pytest.mark.parametrize("iw_gradient", ["plain", "stl", "dreg"])
def test_each_estimators_mean_is_its_numpy_expectation(iw_gradient):
    """plain and DReG are unbiased for the bound's gradient; STL's mean is its own expectation,
    which for k > 1 is not the bound's gradient (its bias is the dropped score term)."""
    k = 10
    model = linear_gaussian(LOC, SCALE, k, iw_gradient)
    expected = numpy_expected_gradients(LOC, SCALE, X[0].astype(np.float64), k)
    mean, stderr, _ = model_gradient(model, iw_gradient, k, num_draws=600)
    want, want_err = expected[iw_gradient]
    z = (mean - want) / np.sqrt(stderr ** 2 + want_err ** 2)
    assert np.abs(z).max() < 4.5, (iw_gradient, mean, want)
    truth, truth_err = expected["plain"]
    bias = (expected["stl"][0] - truth) / np.sqrt(expected["stl"][1] ** 2 + truth_err ** 2)
    assert np.abs(bias).max() > 10  # (so the test tells STL from an unbiased estimator)
    if iw_gradient == "dreg":  # and the same mean as plain, in numpy
        np.testing.assert_allclose(want, truth, atol=5 * np.sqrt(want_err ** 2 + truth_err ** 2).max())


def test_at_k_1_the_gradient_in_the_loc_is_the_closed_form_x_minus_2m():
    """k = 1: d/dm E_q[log w] = x - 2m for every estimator (the ELBO's gradient)."""
    for iw_gradient in ("plain", "stl", "dreg"):
        model = linear_gaussian(LOC, SCALE, 1, iw_gradient)
        mean, stderr, _ = model_gradient(model, iw_gradient, 1, num_draws=500)
        want = X[0] - 2 * LOC
        assert np.all(np.abs(mean[:2] - want) < 4.5 * stderr[:2] + 1e-4), (iw_gradient, mean[:2], want)


@pytest.mark.parametrize("k", [1, 10])
def test_at_the_true_posterior_stl_and_dreg_have_zero_variance(k):
    """q = p(z|x) = N(x/2, 1/2): log w is constant in z, so every draw's encoder gradient is 0
    (the zero-variance property of Roeder et al. 2017); plain's is not."""
    posterior_loc, posterior_scale = X[0] / 2, np.full(2, np.sqrt(0.5))
    model = linear_gaussian(posterior_loc, posterior_scale, k, "dreg")
    for iw_gradient in ("stl", "dreg"):
        _, _, result = model_gradient(model, iw_gradient, k, num_draws=50)
        assert result["total_variance"] < 1e-8, (iw_gradient, result["total_variance"])
        assert np.abs(result["mean"]).max() < 1e-4
    _, _, plain = model_gradient(model, "plain", k, num_draws=50)
    assert plain["total_variance"] > 0.05


def test_dreg_leaves_the_decoders_gradient_exactly_as_plain():
    """The decoder (p's parameters) gets sum_i w~_i d log w_i / d theta under every estimator:
    at the same draws the gradients are equal."""
    model = linear_gaussian(LOC, SCALE, 10, "plain")
    decoder = model.decoder.weights
    grads = {}
    for iw_gradient in ("plain", "stl", "dreg"):
        model.iw_gradient = iw_gradient
        with tf.GradientTape() as tape:
            objective = tf.reduce_mean(model.loss_terms(X, seed=7)["objective"])
        grads[iw_gradient] = [g.numpy() for g in tape.gradient(objective, decoder)]
        assert float(objective) == pytest.approx(float(tf.reduce_mean(
            model.loss_terms(X, seed=7)["objective"])), abs=1e-6)
    for name in ("stl", "dreg"):
        for got, want in zip(grads[name], grads["plain"]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert max(np.abs(g).max() for g in grads["plain"]) > 0.01


def snr_by_k(ks=(1, 10, 100), num_draws=300):
    """The encoder's signal-to-noise ratio |E g| / std(g) for the loc's gradient (mean over
    the two units), per estimator and k."""
    table = {}
    for iw_gradient in ("plain", "stl", "dreg"):
        for k in ks:
            model = linear_gaussian(LOC, SCALE, k, iw_gradient)
            _, _, result = model_gradient(model, iw_gradient, k, num_draws=num_draws)
            table[iw_gradient, k] = float(np.mean(result["snr"][:2]))
    return table


def test_plain_snr_falls_with_k_and_dregs_does_not():
    """Rainforth et al. 2018: the plain estimator's encoder SNR falls like 1/sqrt(k). DReG's
    stays of order 1 here (q away from the posterior; measured 0.66, 0.86, 0.40 at k = 1, 10,
    100 against plain's 0.35, 0.10, 0.014)."""
    table = snr_by_k()
    assert table["plain", 100] < 0.25 * table["plain", 1]
    assert table["plain", 10] < 0.6 * table["plain", 1]
    assert table["dreg", 100] > 5 * table["plain", 100]  # (plain's estimate is near its floor, 1/sqrt(draws))
    assert table["dreg", 100] > 0.3 * table["dreg", 1]


@pytest.mark.parametrize("iw_gradient", ["plain", "stl", "dreg"])
def test_each_draws_gradient_is_the_numpy_formula(iw_gradient):
    """At the model's own draws (k = 7), the gradient with respect to q's loc and scale is the
    formula of the module docstring, to float precision."""
    k = 7
    model = linear_gaussian(LOC, SCALE, k, iw_gradient)
    bias = model.posterior_layer.projection.bias
    chain = np.concatenate([np.ones(2), scipy.special.expit(bias.numpy()[2:])])
    x = X[0].astype(np.float64)
    for step in range(3):
        seed = tf.constant([5, step], tf.int32)
        z = f64(model._forward_draws(tf.constant(X), k, seed)[0])[:, 0, :]  # [k, 2]
        with tf.GradientTape() as tape:
            objective = tf.reduce_mean(model.loss_terms(X, seed=seed)["objective"])
        got = tape.gradient(objective, bias).numpy() / chain
        eps = (z - LOC) / SCALE
        log_w = np.sum(-0.5 * (x - z) ** 2 - 0.5 * z ** 2 + 0.5 * eps ** 2 + np.log(SCALE), -1)
        normalized = scipy.special.softmax(log_w)[:, None]
        g = (x - z) - z + (z - LOC) / SCALE ** 2
        total = x - 2 * z
        weight = {"plain": normalized, "stl": normalized, "dreg": normalized ** 2}[iw_gradient]
        if iw_gradient == "plain":
            want = np.concatenate([np.sum(weight * total, 0), np.sum(weight * (total * eps + 1 / SCALE), 0)])
        else:
            want = np.concatenate([np.sum(weight * g, 0), np.sum(weight * g * eps, 0)])
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


# -- VIMCO -----------------------------------------------------------------------------------------
def exact_iwae(joint):
    """Mean over the batch of E[log (1/2) (w_1 + w_2)], k = 2, summed over every pair of
    latent states."""
    def bound(params, x):
        log_q, log_p = joint(params, x)  # [B, S]
        log_w = log_p - log_q
        pair_q = np.exp(log_q[:, :, None] + log_q[:, None, :])
        pair_bound = np.logaddexp(log_w[:, :, None], log_w[:, None, :]) - np.log(2)
        return float(np.mean(np.sum(pair_q * pair_bound, axis=(1, 2))))
    return bound


@pytest.mark.parametrize("kind", ["vae", "ladder"])
def test_vimco_gradient_is_the_enumerated_iwae_gradient(kind):
    """Binary latents, k = 2: the mean VIMCO gradient equals the finite-difference gradient of
    the IWAE bound summed over every pair of latent states."""
    model, layers, joint = model_and_joint(kind, analytic_kl=True, num_samples=2, iw_gradient="vimco")
    params, joint, variables = random_weights(layers, joint)
    bound = exact_iwae(joint)
    exact = np.concatenate([g.ravel() for g in finite_difference_gradient(lambda p: bound(p, f64(X4)), params)])
    value = np.mean([float(tf.reduce_mean(model.loss_terms(np.tile(X4, (400, 1)), seed=s)["objective"]))
                     for s in range(5)])
    assert value == pytest.approx(bound(params, f64(X4)), abs=0.1)
    mean, stderr = score_function_gradient(model, variables, X4, num_samples=2)
    z = (mean - exact) / stderr
    assert np.abs(exact).max() > 0.1
    assert np.abs(z).max() < 4.5, (kind, np.round(z, 1))
    assert np.mean(z ** 2) < 2.0, (kind, np.mean(z ** 2))


def test_vimco_surrogate_by_hand():
    """k = 3, one example: d/d log q_j of the surrogate is L - L_-j, with L_-j the bound with
    log w_j replaced by the mean of the other two."""
    log_w = np.array([[-1.0], [-3.0], [0.5]])
    log_q = tf.Variable(np.zeros((3, 1), np.float32))
    with tf.GradientTape() as tape:
        surrogate = objectives.vimco_surrogate(tf.constant(log_w, tf.float32), log_q)
    assert float(surrogate[0]) == 0.0
    bound = scipy.special.logsumexp(log_w) - np.log(3)
    want = []
    for j in range(3):
        replaced = log_w.copy()
        replaced[j] = np.mean(np.delete(log_w, j))
        want.append(bound - (scipy.special.logsumexp(replaced) - np.log(3)))
    np.testing.assert_allclose(tape.gradient(surrogate, log_q).numpy().ravel(), want, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(iw_gradient="dreg", latent="bernoulli", num_samples=5), "reparameterized draws"),
    (dict(iw_gradient="vimco", num_samples=1, latent="bernoulli", estimator="score_function"), "num_samples >= 2"),
    (dict(iw_gradient="vimco", num_samples=5, latent="bernoulli", estimator="straight_through"), "estimator='score_function'"),
    (dict(iw_gradient="stl", num_samples=1), "analytic_kl=False"),
    (dict(iw_gradient="dreg", num_samples=1, analytic_kl=False, free_bits=0.5), "free bits"),
    (dict(iw_gradient="nope"), "iw_gradient must be one of"),
    (dict(latent="bernoulli", estimator="score_function", num_samples=5), "iw_gradient='vimco'"),
])
def test_inapplicable_estimators_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfvae.VAE(input_shape=(4,), latent_dim=2, hidden=(), **kwargs)


def test_iw_gradient_is_saved_with_the_model(tmp_path):
    model = tfvae.LadderVAE(input_shape=(4,), latent_dims=(3, 2), hidden=((8,), (8,)),
                            num_samples=3, iw_gradient="dreg")
    model.build((None, 4))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.iw_gradient == "dreg" and loaded.num_samples == 3


@pytest.mark.parametrize("cls", [tfvae.LadderVAE, tfvae.HierarchicalVAE])
def test_dreg_and_plain_have_the_same_mean_in_a_hierarchy(cls):
    """Two Gaussian layers, k = 5: DReG's path terms cross layers (z_0 is drawn given z_1, or
    z_1 given z_0), and its mean gradient still equals the plain (unbiased) estimator's, on
    every weight of the model, within Monte Carlo error; STL's does not. (Its variance is not
    lower on every weight: measured here, 10-100x lower on the weights only q uses, but higher
    on weights q shares with p, the ladder's prior blocks, whose score terms partly cancel
    their explicit gradient in the plain estimator.)"""
    keras.utils.set_random_seed(4)
    model = cls(input_shape=(4,), latent_dims=(2, 1), hidden=((6,), (6,)), num_samples=5, seed=0)
    model.build((None, 4))
    x = np.array([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.1, 0.9]], np.float32)
    results = {name: evaluation.gradient_variance(model, x, num_draws=draws, iw_gradient=name,
                                                   weights=model.trainable_weights)
               for name, draws in (("plain", 1200), ("dreg", 300), ("stl", 300))}

    def z_scores(a, b):
        se = np.sqrt(results[a]["variance"] / results[a]["num_draws"]
                     + results[b]["variance"] / results[b]["num_draws"])
        keep = se > 1e-6
        return (results[a]["mean"] - results[b]["mean"])[keep] / se[keep]

    same = z_scores("dreg", "plain")
    assert np.abs(same).max() < 5 and np.mean(same ** 2) < 2, np.round(same, 1)
    assert np.mean(z_scores("stl", "plain") ** 2) > 4  # (the comparison can tell a bias)


@pytest.mark.slow  # (20 s; the default run fits and serves ladder_dreg in tests/test_contract.py)
def test_a_dreg_hierarchy_keeps_the_whole_contract_under_xla(tmp_path):
    """Fit under XLA (the inner tape of DReG inside the compiled step), evaluate, log_prob,
    sample, the .keras round trip and the served export (tests/testing.py)."""
    run_model_contract(tfvae.HierarchicalVAE(input_shape=(12,), latent_dims=(4, 3), hidden=((8,), (8,)),
                                             num_samples=4, iw_gradient="dreg", seed=0),
                       tmp_path, jit_compile=True)
