"""Exponential families: natural parameters, log_prob (vs TFP vs numpy), grad A = E[T], combine
(vs the normalized product), KL (closed form vs numpy vs Monte Carlo), config, event shapes."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import distributions, families

tfd = tfp.distributions
RNG = np.random.default_rng(0)
FAMILIES = {"gaussian": families.Gaussian(), "bernoulli": families.Bernoulli()}


def f32(a):
    return tf.constant(np.asarray(a, np.float32))


def numpy_softplus(a):
    return np.logaddexp(0.0, a)


def numpy_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def random_params(kind, shape):
    """Parameters as numpy float64 arrays and as the family's float32 dict."""
    if kind == "gaussian":
        loc, scale = RNG.normal(size=shape), RNG.uniform(0.3, 2.0, size=shape)
        return {"loc": loc, "scale": scale}, {"loc": f32(loc), "scale": f32(scale)}
    logits = RNG.normal(size=shape) * 2
    return ({"logits": logits, "probs": numpy_sigmoid(logits)},
            {"logits": f32(logits), "probs": f32(numpy_sigmoid(logits))})


def random_x(kind, shape):
    if kind == "gaussian":
        return RNG.normal(size=shape) * 1.5
    return (RNG.uniform(size=shape) < 0.5).astype(np.float64)


def numpy_log_prob(kind, p, x, event_ndims):
    """Textbook densities, summed over the trailing event axes."""
    if kind == "gaussian":
        per_unit = (-0.5 * ((x - p["loc"]) / p["scale"]) ** 2 - np.log(p["scale"])
                    - 0.5 * np.log(2 * np.pi))
    else:
        per_unit = x * np.log(p["probs"]) + (1 - x) * np.log1p(-p["probs"])
    return np.sum(per_unit, axis=tuple(range(-event_ndims, 0))) if event_ndims else per_unit


def numpy_kl(kind, q, p, event_ndims):
    if kind == "gaussian":
        per_unit = (np.log(p["scale"] / q["scale"])
                    + (q["scale"] ** 2 + (q["loc"] - p["loc"]) ** 2) / (2 * p["scale"] ** 2) - 0.5)
    else:
        a, b = q["probs"], p["probs"]
        per_unit = a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))
    return np.sum(per_unit, axis=tuple(range(-event_ndims, 0)))


def tfp_distribution(kind, p, event_ndims):
    """Built here from TFP directly, not through the family."""
    if kind == "gaussian":
        unit = tfd.Normal(f32(p["loc"]), f32(p["scale"]))
    else:
        unit = tfd.Bernoulli(logits=f32(p["logits"]), dtype=tf.float32)
    return tfd.Independent(unit, event_ndims)


@pytest.mark.parametrize("kind", FAMILIES)
def test_natural_parameters_round_trip(kind):
    family = FAMILIES[kind]
    expected, params = random_params(kind, (3, 4))
    natural = family.natural_params(params)
    if kind == "gaussian":  # eta = (m / s^2, -1 / (2 s^2))
        np.testing.assert_allclose(natural["precision_loc"], expected["loc"] / expected["scale"] ** 2, rtol=1e-5)
        np.testing.assert_allclose(natural["neg_half_precision"], -0.5 / expected["scale"] ** 2, rtol=1e-5)
    else:  # eta = logit(p)
        np.testing.assert_allclose(natural["logits"], np.log(expected["probs"] / (1 - expected["probs"])),
                                   rtol=1e-5, atol=1e-5)
    back = family.from_natural_params(natural)
    assert set(back) == set(family.param_names)
    for name in family.param_names:
        np.testing.assert_allclose(back[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("event_shape", [(), (3,), (4, 5), (28, 28, 1)])
@pytest.mark.parametrize("kind", FAMILIES)
def test_log_prob_matches_tfp_and_numpy_for_any_event_shape(kind, event_shape):
    family = FAMILIES[kind]
    event_ndims = len(event_shape)
    expected, params = random_params(kind, (2, *event_shape))
    x = random_x(kind, (2, *event_shape))
    reference = numpy_log_prob(kind, expected, x, event_ndims)
    log_p = family.log_prob(params, f32(x), event_ndims)
    assert log_p.shape == (2,)
    np.testing.assert_allclose(log_p, reference, rtol=1e-5)
    np.testing.assert_allclose(tfp_distribution(kind, expected, event_ndims).log_prob(f32(x)), reference, rtol=1e-5)
    dist = family.distribution(params, event_ndims)
    assert dist.batch_shape == (2,) and tuple(dist.event_shape) == event_shape
    np.testing.assert_allclose(dist.log_prob(f32(x)), reference, rtol=1e-5)
    # samples of several draws broadcast against the parameters
    many = random_x(kind, (3, 2, *event_shape))
    np.testing.assert_allclose(family.log_prob(params, f32(many), event_ndims),
                               numpy_log_prob(kind, expected, many, event_ndims), rtol=1e-5)


@pytest.mark.parametrize("kind", FAMILIES)
def test_the_exponential_family_form_is_the_density(kind):
    """<T(x), eta> - A(eta) + log h(x), as the base class writes it (in float64: for a Gaussian
    the terms cancel in float32, which is why Gaussian regroups them)."""
    family = FAMILIES[kind]
    expected, _ = random_params(kind, (3, 4))
    params = {k: tf.constant(v) for k, v in expected.items()}
    x = random_x(kind, (3, 4))
    generic = families.Family.unit_log_prob(family, params, tf.constant(x))
    np.testing.assert_allclose(generic, numpy_log_prob(kind, expected, x, 0), rtol=1e-10)


def test_bernoulli_log_prob_is_the_fast_form_exactly():
    logits = f32(RNG.normal(size=(5, 6)) * 4)
    x = f32((RNG.uniform(size=(5, 6)) < 0.5))
    fast = tf.reduce_sum(x * logits - tf.nn.softplus(logits), axis=-1)
    family = families.Bernoulli()
    np.testing.assert_array_equal(family.log_prob(family.params_from_raw(logits), x), fast)


@pytest.mark.parametrize("kind", FAMILIES)
def test_gradient_of_the_log_normalizer_is_the_mean_of_the_sufficient_statistics(kind):
    family = FAMILIES[kind]
    expected, params = random_params(kind, (3, 4))
    natural = {k: tf.Variable(v) for k, v in family.natural_params(params).items()}
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(family.log_normalizer(natural))
    grads = tape.gradient(total, natural)
    if kind == "gaussian":  # E[x] = m, E[x^2] = m^2 + s^2
        mean_t = {"precision_loc": expected["loc"],
                  "neg_half_precision": expected["loc"] ** 2 + expected["scale"] ** 2}
    else:  # E[x] = p
        mean_t = {"logits": expected["probs"]}
    for name in natural:
        np.testing.assert_allclose(grads[name], mean_t[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(family.mean(params), mean_t[list(mean_t)[0]], rtol=1e-5)


def test_gaussian_combine_is_precision_weighting():
    family = families.Gaussian()
    (a, a32), (b, b32), (c, c32) = (random_params("gaussian", (3, 4)) for _ in range(3))
    merged = family.combine(a32, b32, c32)
    precision = sum(1 / p["scale"] ** 2 for p in (a, b, c))
    loc = sum(p["loc"] / p["scale"] ** 2 for p in (a, b, c)) / precision
    np.testing.assert_allclose(merged["loc"], loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged["scale"], 1 / np.sqrt(precision), rtol=1e-5)


def test_bernoulli_combine_adds_logits_and_is_the_normalized_product():
    family = families.Bernoulli()
    (a, a32), (b, b32) = random_params("bernoulli", (2, 3)), random_params("bernoulli", (2, 3))
    merged = family.combine(a32, b32)
    np.testing.assert_allclose(merged["logits"], a["logits"] + b["logits"], rtol=1e-6)
    np.testing.assert_allclose(merged["probs"], numpy_sigmoid(a["logits"] + b["logits"]), rtol=1e-5)
    # The product density pa(x) pb(x), normalized by enumerating the 2^3 states of 3 units.
    states = np.array(list(itertools.product([0.0, 1.0], repeat=3)))  # [8, 3]
    log_product = (numpy_log_prob("bernoulli", a, states[:, None], 1)
                   + numpy_log_prob("bernoulli", b, states[:, None], 1))  # [8, 2]
    normalized = log_product - np.log(np.sum(np.exp(log_product), axis=0))
    np.testing.assert_allclose(family.log_prob(merged, f32(states[:, None])), normalized, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("event_shape", [(4,), (2, 3)])
@pytest.mark.parametrize("kind", FAMILIES)
def test_kl_closed_form_vs_numpy_vs_monte_carlo(kind, event_shape):
    family = FAMILIES[kind]
    (q, q32), (p, p32) = random_params(kind, (3, *event_shape)), random_params(kind, (3, *event_shape))
    event_ndims = len(event_shape)
    closed = family.kl(q32, p32, event_ndims)
    assert closed.shape == (3,)
    np.testing.assert_allclose(closed, numpy_kl(kind, q, p, event_ndims), rtol=1e-5)
    estimator = "pathwise" if kind == "gaussian" else "score_function"
    z = family.sample(q32, seed=1, estimator=estimator, num_samples=100_000)
    assert z.shape == (100_000, 3, *event_shape)
    monte_carlo = family.kl(q32, p32, event_ndims, z=z, analytic=False)
    assert monte_carlo.shape == (100_000, 3)
    np.testing.assert_allclose(np.mean(monte_carlo, 0), closed, rtol=2e-2)
    per_unit = family.kl(q32, p32, 0)  # event_ndims=0: one KL per unit, as free bits needs
    assert per_unit.shape == (3, *event_shape)


def test_kl_without_samples_and_without_closed_form_is_an_error():
    family = families.Gaussian()
    _, params = random_params("gaussian", (2, 3))
    with pytest.raises(ValueError, match="Monte Carlo"):
        family.kl(params, params, analytic=False)


def test_bernoulli_estimators():
    family = families.Bernoulli(temperature=0.3)
    logits = tf.Variable(RNG.normal(size=(2, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        params = family.params_from_raw(logits)
        hard = family.sample(params, seed=4)
        no_grad = family.sample(params, seed=4, estimator="score_function")
        relaxed = family.sample(params, seed=4, estimator="relaxed")
        total_hard, total_none, total_relaxed = (tf.reduce_sum(v) for v in (hard, no_grad, relaxed))
    np.testing.assert_array_equal(hard, no_grad)  # the same draw, from the same seed
    assert set(np.unique(hard.numpy())) <= {0.0, 1.0}
    assert np.all((relaxed.numpy() > 0) & (relaxed.numpy() < 1))
    # straight-through: d x / d p = 1, so d sum(x) / d logits = p (1 - p)
    p = numpy_sigmoid(logits.numpy())
    np.testing.assert_allclose(tape.gradient(total_hard, logits), p * (1 - p), rtol=1e-5)
    assert tape.gradient(total_none, logits) is None
    assert tape.gradient(total_relaxed, logits) is not None
    many = family.sample(params, seed=5, num_samples=100_000)
    np.testing.assert_allclose(np.mean(many, 0), p, atol=0.01)
    with pytest.raises(ValueError, match="estimator must be one of"):
        family.sample(params, seed=4, estimator="pathwise")
    with pytest.raises(ValueError, match="estimator must be one of"):
        families.Gaussian().sample({"loc": tf.zeros(2), "scale": tf.ones(2)}, seed=0, estimator="relaxed")


@pytest.mark.parametrize("family", [families.Gaussian(), families.Gaussian("exp", 0.01),
                                    families.Bernoulli(), families.Bernoulli(temperature=0.2)])
def test_config_round_trip(family):
    config = family.get_config()
    assert type(family).from_config(config) == family
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(family))
    assert type(restored) is type(family) and restored.get_config() == config


def test_registered_names_do_not_shadow_the_layers():
    assert keras.saving.get_registered_object("tfvae>Bernoulli") is distributions.Bernoulli
    assert keras.saving.get_registered_object("tfvae>BernoulliFamily") is families.Bernoulli
    assert keras.saving.get_registered_object("tfvae>GaussianFamily") is families.Gaussian


@pytest.mark.parametrize("make, message", [
    (lambda: families.Gaussian(scale_activation="relu"), "scale_activation"),
    (lambda: families.Gaussian(min_scale=-1.0), "min_scale"),
    (lambda: families.Bernoulli(temperature=0.0), "temperature"),
])
def test_bad_family_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_gaussian_params_from_raw_keep_the_split_layout():
    raw = RNG.normal(size=(2, 6)) * 3
    for activation, positive in (("softplus", numpy_softplus), ("exp", np.exp)):
        params = families.Gaussian(activation, 0.01).params_from_raw(f32(raw))
        np.testing.assert_allclose(params["loc"], raw[:, :3], rtol=1e-6)
        np.testing.assert_allclose(params["scale"], positive(raw[:, 3:]) + 0.01, rtol=1e-5)


def test_layers_delegate_to_their_family():
    layer = distributions.DiagonalGaussian(3, scale_activation="exp", min_scale=0.01)
    assert layer.family == families.Gaussian("exp", 0.01)
    assert distributions.Bernoulli(3).family == families.Bernoulli()
    assert distributions.GaussianLikelihood(3, min_scale=0.02).family == families.Gaussian("softplus", 0.02)


@keras.saving.register_keras_serializable(package="tfvae_test")
class Exponential(families.Family):
    """A family written as a user would add one: rate r, T(x) = x, eta = -r, A = -log(-eta),
    h = 1. Only the per-family methods; log_prob, combine and kl come from the base."""

    param_names = ("rate",)
    estimators = ("pathwise",)

    def natural_params(self, params):
        return {"neg_rate": -params["rate"]}

    def from_natural_params(self, natural):
        return {"rate": -natural["neg_rate"]}

    def log_normalizer(self, natural):
        return -tf.math.log(-natural["neg_rate"])

    def log_base_measure(self, x):
        return tf.zeros_like(x)

    def sufficient_statistics(self, x):
        return {"neg_rate": x}

    def unit_distribution(self, params):
        return tfd.Exponential(params["rate"])


def test_a_new_family_gets_log_prob_combine_and_kl_from_the_base():
    family = Exponential()
    a, b = RNG.uniform(0.5, 2.0, size=(2, 3)), RNG.uniform(0.5, 2.0, size=(2, 3))
    x = RNG.exponential(size=(2, 3))
    np.testing.assert_allclose(family.log_prob({"rate": f32(a)}, f32(x)),
                               np.sum(np.log(a) - a * x, -1), rtol=1e-5)
    np.testing.assert_allclose(family.combine({"rate": f32(a)}, {"rate": f32(b)})["rate"], a + b, rtol=1e-6)
    # KL[Exp(a) || Exp(b)] = log(a / b) + b / a - 1
    np.testing.assert_allclose(family.kl({"rate": f32(a)}, {"rate": f32(b)}),
                               np.sum(np.log(a / b) + b / a - 1, -1), rtol=1e-5)
