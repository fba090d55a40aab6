"""Deterministic checks of the maths, against independent numpy/scipy formulas at float tolerance.

Where the other tests compare the code with Monte Carlo estimates (tolerances of a few percent),
these reproduce the very samples the code draws (the same stateless seeds) and recompute every
log-density, KL, bound and gradient in float64 numpy, so a one-line mistake of a fraction of a
nat (a dropped `- log k`, log(N - 1) for log N, a 1% factor, a doubled gradient) fails them
every time. `tests/mutations.py` applies such mistakes one at a time and checks that they do.
"""
import math
import random

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae import distributions, estimators, evaluation, families, objectives, priors

tfd = tfp.distributions
CLOSE = dict(rtol=1e-5, atol=1e-5)


# -- numpy references ---------------------------------------------------------------------------
def softplus(a):
    return np.logaddexp(0.0, a)


def sigmoid(a):
    return scipy.special.expit(a)


def bernoulli_log_prob(x, logits):
    """sum_i log Bernoulli(x_i; sigmoid(l_i)) over the last axis."""
    return np.sum(x * logits - softplus(logits), axis=-1)


def gaussian_log_prob(z, loc, scale):
    return np.sum(scipy.stats.norm.logpdf(z, loc, scale), axis=-1)


def gaussian_kl(m_q, s_q, m_p, s_p):
    return np.sum(np.log(s_p / s_q) + (s_q ** 2 + (m_q - m_p) ** 2) / (2 * s_p ** 2) - 0.5, axis=-1)


def bernoulli_kl(logits_q, logits_p):
    q, p = sigmoid(logits_q), sigmoid(logits_p)
    return np.sum(q * (np.log(q) - np.log(p)) + (1 - q) * (np.log1p(-q) - np.log1p(-p)), axis=-1)


def log_mean_exp(values, axis=0):
    values = np.asarray(values, np.float64)
    return scipy.special.logsumexp(values, axis=axis) - np.log(values.shape[axis])


def f64(tensor):
    return np.asarray(tensor, np.float64)


# -- the seeds (tests/conftest.py) ----------------------------------------------------------------
def draws_of_every_source():
    layer = keras.layers.Dense(3)
    layer.build((None, 2))  # weight initialization, from Keras' global generator
    return (random.random(), np.random.rand(), float(tf.random.uniform([])), layer.kernel.numpy())


def test_every_random_source_starts_from_the_node_id_seed(pinned_seed):
    """The test body starts as after keras.utils.set_random_seed(seed of the node id), whatever
    ran before it: the same draws, in any process and any order."""
    first = draws_of_every_source()
    keras.utils.set_random_seed(pinned_seed)
    again = draws_of_every_source()
    assert first[:3] == again[:3]
    np.testing.assert_array_equal(first[3], again[3])


# -- the bounds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 50])
def test_log_mean_exp_of_k_equal_values_is_that_value(k):
    values = tf.fill([k, 4], -3.25)
    np.testing.assert_allclose(objectives.log_mean_exp(values), np.full(4, -3.25), **CLOSE)
    np.testing.assert_allclose(objectives.iwae_bound(values), np.full(4, -3.25), **CLOSE)
    np.testing.assert_allclose(objectives.log_mean_exp(tf.transpose(values), axis=1), np.full(4, -3.25),
                               **CLOSE)


def test_iwae_bound_known_cases_and_numpy():
    # log((e^0 + e^log 3) / 2) = log 2, also far from zero, where a naive exp underflows
    for shift in (0.0, -1000.0):
        weights = tf.constant([[shift], [shift + math.log(3.0)]], tf.float32)
        np.testing.assert_allclose(objectives.iwae_bound(weights), [shift + math.log(2.0)], rtol=1e-6,
                                   atol=1e-5)
    # three weights 1, 2, 6 (log): log(9 / 3) = log 3
    np.testing.assert_allclose(objectives.iwae_bound(tf.math.log([[1.0], [2.0], [6.0]])), [math.log(3.0)],
                               **CLOSE)
    values = np.random.default_rng(0).normal(scale=3.0, size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(objectives.iwae_bound(values), log_mean_exp(values), **CLOSE)
    np.testing.assert_allclose(objectives.log_mean_exp(values, axis=1), log_mean_exp(values, axis=1), **CLOSE)


# -- the VAE objective, recomputed from the same samples ----------------------------------------
def tiny_vae(**kwargs):
    model = tfvae.VAE(input_dim=5, latent_dim=2, hidden=(4,), seed=0, **kwargs)
    model.build((None, 5))
    return model


def vae_terms_numpy(model, x, k, seed, beta=1.0):
    """log p(x|z_i), log p(z_i) - log q(z_i|x) and the closed-form KL at the samples the model
    draws for this seed (z = loc + scale * eps, eps from the same stateless generator)."""
    q = model.encode(x)
    loc, scale = f64(q["loc"]), f64(q["scale"])
    eps = f64(estimators.standard_normal(tf.constant([k, *loc.shape]), estimators.seed_pair(seed)))
    z = loc + scale * eps                                                        # [k, B, L]
    logits = f64(model.decode(tf.reshape(tf.constant(z, tf.float32), [-1, loc.shape[-1]]))["logits"])
    log_likelihood = bernoulli_log_prob(f64(x), logits.reshape(k, *x.shape))     # [k, B]
    log_prior_ratio = gaussian_log_prob(z, 0.0, 1.0) - gaussian_log_prob(z, loc, scale)
    kl = gaussian_kl(loc, scale, 0.0, 1.0)                                       # [B]
    return log_likelihood, log_prior_ratio, kl


X5 = (np.random.default_rng(1).uniform(size=(3, 5)) < 0.5).astype(np.float32)


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_vae_elbo_terms_equal_the_numpy_formulas(analytic_kl):
    model = tiny_vae(analytic_kl=analytic_kl, beta=0.5)
    log_likelihood, log_prior_ratio, kl = vae_terms_numpy(model, X5, 1, 11)
    rate = kl if analytic_kl else -log_prior_ratio[0]
    terms = model.loss_terms(X5, num_samples=1, seed=11)
    np.testing.assert_allclose(terms["distortion"], -log_likelihood[0], **CLOSE)
    np.testing.assert_allclose(terms["kl"], rate, **CLOSE)
    np.testing.assert_allclose(terms["elbo"], log_likelihood[0] - rate, **CLOSE)
    np.testing.assert_allclose(terms["objective"], log_likelihood[0] - 0.5 * rate, **CLOSE)
    np.testing.assert_allclose(model.elbo(X5, seed=11), log_likelihood[0] - rate, **CLOSE)


@pytest.mark.parametrize("k, beta", [(2, 1.0), (5, 1.0), (3, 0.5)])
def test_iwae_objective_equals_the_numpy_bound_and_log_prob_with_the_same_samples(k, beta):
    model = tiny_vae(num_samples=k, beta=beta)
    log_likelihood, log_prior_ratio, kl = vae_terms_numpy(model, X5, k, 7)
    expected = log_mean_exp(log_likelihood + beta * log_prior_ratio)
    terms = model.loss_terms(X5, num_samples=k, seed=7)
    np.testing.assert_allclose(terms["objective"], expected, **CLOSE)
    np.testing.assert_allclose(terms["kl"], kl, **CLOSE)
    np.testing.assert_allclose(terms["distortion"], -np.mean(log_likelihood, 0), **CLOSE)
    iwae = log_mean_exp(log_likelihood + log_prior_ratio)
    # log_prob's one chunk is seeded [seed, 0], as loss_terms' int seed: the same k samples
    np.testing.assert_allclose(model.log_prob(X5, k, seed=7), iwae, **CLOSE)
    if beta == 1.0:
        np.testing.assert_allclose(terms["objective"], model.log_prob(X5, k, seed=7), **CLOSE)
    assert not np.allclose(model.log_prob(X5, k, seed=8), iwae, atol=1e-3)  # the seed matters


def test_log_prob_in_chunks_is_the_numpy_bound_over_all_chunks():
    model = tiny_vae()
    # chunk i is seeded [seed, i]: 5 samples in chunks of 2, 2 and 1
    parts = [vae_terms_numpy(model, X5, size, tf.constant([4, i], tf.int32)) for i, size in enumerate((2, 2, 1))]
    log_weights = np.concatenate([ll + ratio for ll, ratio, _ in parts])
    np.testing.assert_allclose(model.log_prob(X5, 5, chunk_size=2, seed=4), log_mean_exp(log_weights),
                               **CLOSE)


# -- KL divergences ------------------------------------------------------------------------------
def test_closed_form_kls_equal_numpy_at_float_tolerance():
    rng = np.random.default_rng(2)
    m_q, m_p = rng.normal(size=(2, 3, 4)).astype(np.float32)
    s_q, s_p = rng.uniform(0.3, 2.0, size=(2, 3, 4)).astype(np.float32)
    closed = distributions.kl_divergence(distributions.diagonal_gaussian({"loc": m_q, "scale": s_q}),
                                         distributions.diagonal_gaussian({"loc": m_p, "scale": s_p}))
    np.testing.assert_allclose(closed, gaussian_kl(f64(m_q), f64(s_q), f64(m_p), f64(s_p)), **CLOSE)
    l_q, l_p = rng.normal(scale=2.0, size=(2, 3, 5)).astype(np.float32)
    layer = distributions.Bernoulli(5)
    closed = distributions.kl_divergence(layer.distribution({"logits": l_q}), layer.distribution({"logits": l_p}))
    np.testing.assert_allclose(closed, bernoulli_kl(f64(l_q), f64(l_p)), **CLOSE)


def test_monte_carlo_kl_fallback_is_log_q_minus_log_p_at_the_given_samples():
    z = np.linspace(-4.0, 4.0, 9).astype(np.float32)
    q, p = tfd.Normal(0.5, 1.5), tfd.StudentT(df=3.0, loc=-0.2, scale=0.8)
    expected = scipy.stats.norm.logpdf(f64(z), 0.5, 1.5) - scipy.stats.t.logpdf(f64(z), 3.0, -0.2, 0.8)
    np.testing.assert_allclose(distributions.kl_divergence(q, p, z), expected, **CLOSE)
    # a pair with a closed form, analytic=False: the per-sample Monte Carlo terms, summed over units
    rng = np.random.default_rng(3)
    m_q, s_q = rng.normal(size=(3, 4)).astype(np.float32), rng.uniform(0.5, 1.5, size=(3, 4)).astype(np.float32)
    z = rng.normal(size=(6, 3, 4)).astype(np.float32)
    q = distributions.diagonal_gaussian({"loc": m_q, "scale": s_q})
    monte_carlo = distributions.kl_divergence(q, distributions.standard_normal(4), z, analytic=False)
    np.testing.assert_allclose(monte_carlo, gaussian_log_prob(f64(z), f64(m_q), f64(s_q))
                               - gaussian_log_prob(f64(z), 0.0, 1.0), **CLOSE)


# -- the exponential families ----------------------------------------------------------------------
def test_family_natural_parameters_log_normalizers_and_combine_equal_numpy():
    """Gaussian: eta = (m / s^2, -1 / (2 s^2)), A = m^2 / (2 s^2) + log s, the product of two
    densities precision-weighted; Bernoulli: eta = l, A = softplus(l), log p = x l - softplus(l),
    the product's logits l_a + l_b."""
    gaussian, bernoulli = families.Gaussian(), families.Bernoulli()
    m_a, s_a = np.array([0.3, -1.2, 2.0], np.float32), np.array([0.5, 1.3, 2.2], np.float32)
    m_b, s_b = np.array([-0.7, 0.4, 1.0], np.float32), np.array([1.1, 0.6, 0.9], np.float32)
    natural = gaussian.natural_params({"loc": tf.constant(m_a), "scale": tf.constant(s_a)})
    np.testing.assert_allclose(natural["precision_loc"], f64(m_a) / f64(s_a) ** 2, **CLOSE)
    np.testing.assert_allclose(natural["neg_half_precision"], -0.5 / f64(s_a) ** 2, **CLOSE)
    np.testing.assert_allclose(gaussian.log_normalizer(natural),
                               f64(m_a) ** 2 / (2 * f64(s_a) ** 2) + np.log(f64(s_a)), **CLOSE)
    merged = gaussian.combine({"loc": tf.constant(m_a), "scale": tf.constant(s_a)},
                              {"loc": tf.constant(m_b), "scale": tf.constant(s_b)})
    precision = 1 / f64(s_a) ** 2 + 1 / f64(s_b) ** 2
    np.testing.assert_allclose(merged["loc"], (f64(m_a) / f64(s_a) ** 2 + f64(m_b) / f64(s_b) ** 2) / precision,
                               **CLOSE)
    np.testing.assert_allclose(merged["scale"], 1 / np.sqrt(precision), **CLOSE)

    l_a, l_b = np.array([[-2.5, 0.3, 1.7, 4.0]], np.float32), np.array([[1.0, -0.8, 0.2, -3.0]], np.float32)
    x = np.array([[1.0, 0.0, 1.0, 0.0]], np.float32)
    params_a, params_b = bernoulli.params_from_raw(tf.constant(l_a)), bernoulli.params_from_raw(tf.constant(l_b))
    np.testing.assert_allclose(bernoulli.natural_params(params_a)["logits"], l_a, **CLOSE)
    np.testing.assert_allclose(bernoulli.log_normalizer(bernoulli.natural_params(params_a)), softplus(f64(l_a)),
                               **CLOSE)
    np.testing.assert_allclose(bernoulli.log_prob(params_a, x), bernoulli_log_prob(f64(x), f64(l_a)), **CLOSE)
    np.testing.assert_allclose(distributions.Bernoulli(4).log_prob(params_a, x),
                               bernoulli_log_prob(f64(x), f64(l_a)), **CLOSE)
    merged = bernoulli.combine(params_a, params_b)
    np.testing.assert_allclose(merged["logits"], f64(l_a) + f64(l_b), **CLOSE)
    np.testing.assert_allclose(merged["probs"], sigmoid(f64(l_a) + f64(l_b)), **CLOSE)


# -- ELBO surgery on cases with a known answer ----------------------------------------------------
class FixedPosteriors:
    """A stand-in model whose posteriors q(z|x_n) are given: elbo_surgery needs encode, the
    data check, the latent layer and the prior layer."""

    def __init__(self, loc, scale):
        self.params = {"loc": tf.constant(loc, tf.float32), "scale": tf.constant(scale, tf.float32)}
        self.latent = tfvae.latents.Latent(loc.shape[-1])
        self.prior_layer = priors.make_prior("standard_normal", loc.shape[-1])

    def latent_layers(self):
        return [self.latent]

    def encode(self, x):
        return self.params

    def check_data(self, x, what):
        """(x is a placeholder: the posteriors are given.)"""

    def data(self):
        return np.zeros((self.params["loc"].shape[0], 1), np.float32)


@pytest.mark.parametrize("n", [2, 3])
def test_elbo_surgery_with_identical_posteriors_has_zero_mutual_information(n):
    loc, scale = np.tile([[0.3, -1.2]], (n, 1)), np.tile([[0.7, 1.4]], (n, 1))
    model = FixedPosteriors(loc, scale)
    result = evaluation.elbo_surgery(model, model.data(), num_samples=200, seed=1, chunk_size=200)
    assert result["index_code_mi"] == pytest.approx(0.0, abs=1e-5)
    assert result["log_n"] == pytest.approx(math.log(n), abs=1e-12) and result["num_examples"] == n
    kl = gaussian_kl(loc, scale, 0.0, 1.0)
    assert result["avg_kl"] == pytest.approx(float(np.mean(kl)), abs=1e-5)


@pytest.mark.parametrize("n", [2, 3])
def test_elbo_surgery_with_separated_posteriors_has_mutual_information_log_n(n):
    loc = np.stack([np.full(2, 30.0 * i) for i in range(n)])  # 300 standard deviations apart
    model = FixedPosteriors(loc, np.full((n, 2), 0.1))
    result = evaluation.elbo_surgery(model, model.data(), num_samples=300, seed=2, chunk_size=300)
    assert result["index_code_mi"] == pytest.approx(math.log(n), abs=1e-5)


def test_elbo_surgery_terms_equal_numpy_at_the_same_draws():
    """Overlapping posteriors, N = 3: the draws (n, z) are reproduced (numpy's generator for
    n, the stateless sampler for z) and every term recomputed in float64."""
    rng = np.random.default_rng(4)
    loc, scale = rng.normal(size=(3, 2)), rng.uniform(0.5, 1.5, size=(3, 2))
    model = FixedPosteriors(loc, scale)
    num_samples, seed = 400, 5
    result = evaluation.elbo_surgery(model, model.data(), num_samples=num_samples, seed=seed,
                                     chunk_size=num_samples)
    index = np.random.default_rng(seed).integers(0, 3, size=num_samples)
    own_loc, own_scale = loc[index].astype(np.float32), scale[index].astype(np.float32)
    z = f64(estimators.pathwise_gaussian(tf.constant(own_loc), tf.constant(own_scale), [seed, 0]))
    log_q_own = gaussian_log_prob(z, f64(own_loc), f64(own_scale))
    log_components = np.stack([gaussian_log_prob(z, f64(np.float32(loc[m])), f64(np.float32(scale[m])))
                               for m in range(3)], -1)
    log_q_marginal = scipy.special.logsumexp(log_components, axis=-1) - np.log(3)
    mi, marginal = log_q_own - log_q_marginal, log_q_marginal - gaussian_log_prob(z, 0.0, 1.0)
    assert result["index_code_mi"] == pytest.approx(np.mean(mi), abs=1e-5)
    assert result["marginal_kl"] == pytest.approx(np.mean(marginal), abs=1e-5)
    assert result["avg_kl_mc"] == pytest.approx(np.mean(mi + marginal), abs=1e-5)
    assert result["index_code_mi_stderr"] == pytest.approx(scipy.stats.sem(mi), rel=1e-4)


def test_stderr_is_the_standard_error_of_the_mean():
    values = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert evaluation.stderr(values) == pytest.approx(scipy.stats.sem(values), rel=1e-12)


# -- the straight-through gradient ----------------------------------------------------------------
def test_straight_through_value_and_gradient_by_hand():
    """b = 1[u < p] forward; d b / d p = 1, so d sum(c b) / d logits = c p (1 - p)."""
    logits = tf.Variable([[-1.5, 0.2, 0.9, 2.5], [0.4, -0.3, 1.1, -2.0]])
    c = np.array([[1.0, -2.0, 0.5, 3.0], [-1.0, 0.7, 2.0, 1.5]], np.float32)
    with tf.GradientTape(persistent=True) as tape:
        probs = tf.sigmoid(logits)
        b = estimators.straight_through_bernoulli(probs, seed=9)
        total = tf.reduce_sum(c * b)
    u = f64(estimators.standard_uniform(tf.shape(probs), estimators.seed_pair(9)))
    p = sigmoid(f64(logits.numpy()))
    np.testing.assert_array_equal(b, (u < p).astype(np.float32))
    np.testing.assert_allclose(tape.gradient(total, probs), c, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, logits), c * p * (1 - p), rtol=1e-5, atol=1e-7)


class StraightThrough:
    """z(theta) = h + p(theta) - p(theta_0): the straight-through draw as a function numpy can
    differentiate by finite differences. The hard draw h = 1[u < p(theta_0)] is taken at the
    first call for a seed (u from the model's stateless uniform generator) and then held."""

    def __init__(self):
        self.held = {}

    def __call__(self, logits, seed):
        """`seed`: the int32 pair (a tuple) the model draws this layer with."""
        p = sigmoid(logits)
        if seed not in self.held:
            u = f64(estimators.standard_uniform(tf.constant(p.shape), tf.constant(seed, tf.int32)))
            self.held[seed] = ((u < p).astype(np.float64), p)
        h, p0 = self.held[seed]
        return h + p - p0


def finite_difference_gradient(f, params, eps=1e-6):
    """Central differences of the float64 function f(params) for every entry of every array."""
    grads = []
    for name in params:
        g = np.zeros_like(params[name])
        for i in np.ndindex(params[name].shape):
            up, down = dict(params), dict(params)
            up[name], down[name] = params[name].copy(), params[name].copy()
            up[name][i] += eps
            down[name][i] -= eps
            g[i] = (f(up) - f(down)) / (2 * eps)
        grads.append(g)
    return grads


def set_dense(layer, rng):
    """Random O(1) weights for a Dense projection (so the gradients are not tiny)."""
    for weight in layer.projection.weights:
        weight.assign(rng.normal(scale=0.8, size=weight.shape).astype(np.float32))
    return {f"{layer.name}/kernel": f64(layer.projection.kernel.numpy()),
            f"{layer.name}/bias": f64(layer.projection.bias.numpy())}


def dense(params, name, inputs):
    return inputs @ params[f"{name}/kernel"] + params[f"{name}/bias"]


def check_straight_through_gradients(model, layers, numpy_objective, x, seed):
    """The model's objective and its gradient with respect to the weights of `layers` equal the
    numpy objective and its finite-difference gradient through the straight-through draws."""
    rng = np.random.default_rng(6)
    params = {}
    for layer in layers:
        params.update(set_dense(layer, rng))
    variables = [w for layer in layers for w in (layer.projection.kernel, layer.projection.bias)]
    with tf.GradientTape() as tape:
        objective = tf.reduce_mean(model.loss_terms(x, num_samples=1, seed=seed)["objective"])
    grads = tape.gradient(objective, variables)
    draws = StraightThrough()
    expected = numpy_objective(params, f64(x), draws)
    assert float(objective) == pytest.approx(expected, abs=1e-4)  # the same draws
    numeric = finite_difference_gradient(lambda p: numpy_objective(p, f64(x), draws), params)
    assert sum(float(np.abs(g).sum()) for g in numeric) > 0.1
    for variable, got, want in zip(variables, grads, numeric):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-4, err_msg=variable.path)


X4 = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], np.float32)
LOG_HALF = math.log(0.5)


@pytest.mark.parametrize("analytic_kl, free_bits", [(True, 0.0), (False, 0.0), (True, 0.3),
                                                    (False, 0.3)])
def test_straight_through_gradient_of_the_binary_latent_vae(analytic_kl, free_bits):
    """VAE(latent="bernoulli"), q(z|x) = Bernoulli(sigmoid(x A + a)), p(z) = Bernoulli(1/2),
    p(x|z) = Bernoulli(sigmoid(z B + b)) (no hidden layers); free bits floor each unit's
    batch-mean KL at lambda."""
    model = tfvae.VAE(input_dim=4, latent_dim=3, latent="bernoulli", hidden=(),
                      analytic_kl=analytic_kl, free_bits=free_bits, seed=0)
    model.build((None, 4))
    assert model.estimator == "straight_through"
    q_name, x_name = model.posterior_layer.name, model.likelihood_layer.name
    key = (13, 0)  # an int seed s is the pair [s, 0]

    def objective(params, x, draws):
        logits = dense(params, q_name, x)
        z = draws(logits, key)
        log_likelihood = bernoulli_log_prob(x, dense(params, x_name, z))
        if analytic_kl:
            per_unit = np.stack([bernoulli_kl(logits[:, j:j + 1], 0.0) for j in range(3)], -1)
        else:
            per_unit = z * logits - softplus(logits) - LOG_HALF
        if free_bits:
            per_unit = np.where(per_unit.mean(0) > free_bits, per_unit, free_bits)
        return float(np.mean(log_likelihood - per_unit.sum(-1)))

    check_straight_through_gradients(model, [model.posterior_layer, model.likelihood_layer],
                                     objective, X4, 13)


def _layer_seeds(seed):
    """The seeds of the bottom and top layer of a two-layer model (it splits its seed in two)."""
    bottom, top = tf.unstack(tf.random.experimental.stateless_split(estimators.seed_pair(seed), 2))
    return tuple(bottom.numpy().tolist()), tuple(top.numpy().tolist())


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_straight_through_gradient_of_the_binary_ladder(analytic_kl):
    """LadderVAE with two binary layers and no hidden layers: evidence logits e_i = x E_i + c_i;
    q(z_1|x) = Bernoulli(e_1), p(z_1) = Bernoulli(1/2); p(z_0|z_1) has logits r = z_1 P + d and
    q(z_0|z_1, x) logits e_0 + r; p(x|z_0) logits z_0 B + b."""
    model = tfvae.LadderVAE(input_dim=4, latent_dims=(3, 2), hidden=((), ()),
                            latent_families=("bernoulli", "bernoulli"), analytic_kl=analytic_kl, seed=0)
    model.build((None, 4))
    e0, e1 = (h.name for h in model.up_heads)
    prior0, lik = model.prior_heads[0].name, model.likelihood_layer.name
    bottom, top = _layer_seeds(21)

    def objective(params, x, draws):
        logits_1 = dense(params, e1, x)
        z1 = draws(logits_1, top)
        r = dense(params, prior0, z1)
        logits_0 = dense(params, e0, x) + r
        z0 = draws(logits_0, bottom)
        log_likelihood = bernoulli_log_prob(x, dense(params, lik, z0))
        if analytic_kl:
            rate = bernoulli_kl(logits_1, 0.0) + bernoulli_kl(logits_0, r)
        else:
            rate = (bernoulli_log_prob(z1, logits_1) - 2 * LOG_HALF
                    + bernoulli_log_prob(z0, logits_0) - bernoulli_log_prob(z0, r))
        return float(np.mean(log_likelihood - rate))

    layers = list(model.up_heads) + [model.prior_heads[0], model.likelihood_layer]
    check_straight_through_gradients(model, layers, objective, X4, 21)


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_straight_through_gradient_of_the_binary_hierarchical_vae(analytic_kl):
    """HierarchicalVAE with two binary layers and no hidden layers: q(z_0|x) logits x Q_0 + c_0,
    q(z_1|z_0) logits z_0 Q_1 + c_1, p(z_1) = Bernoulli(1/2), p(z_0|z_1) logits z_1 P + d (its
    KL always sampled), p(x|z_0) logits z_0 B + b."""
    model = tfvae.HierarchicalVAE(input_dim=4, latent_dims=(3, 2), hidden=((), ()),
                                  latent_families=("bernoulli", "bernoulli"), analytic_kl=analytic_kl,
                                  seed=0)
    model.build((None, 4))
    q0, q1 = (h.name for h in model.up_heads)
    prior0, lik = model.prior_heads[0].name, model.likelihood_layer.name
    bottom, top = _layer_seeds(22)

    def objective(params, x, draws):
        logits_0 = dense(params, q0, x)
        z0 = draws(logits_0, bottom)
        logits_1 = dense(params, q1, z0)
        z1 = draws(logits_1, top)
        r = dense(params, prior0, z1)
        log_likelihood = bernoulli_log_prob(x, dense(params, lik, z0))
        top_rate = bernoulli_kl(logits_1, 0.0) if analytic_kl else bernoulli_log_prob(z1, logits_1) - 2 * LOG_HALF
        rate = top_rate + bernoulli_log_prob(z0, logits_0) - bernoulli_log_prob(z0, r)
        return float(np.mean(log_likelihood - rate))

    layers = list(model.up_heads) + [model.prior_heads[0], model.likelihood_layer]
    check_straight_through_gradients(model, layers, objective, X4, 22)
