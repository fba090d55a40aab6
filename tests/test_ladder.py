"""LadderVAE and HierarchicalVAE: the precision-weighted merge, the conditional-KL gradient
option, KL bookkeeping, training and serialization."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import assert_model_saving_round_trip
import tfvae
from tfvae import distributions

RNG = np.random.default_rng(0)


def small_ladder(**kwargs):
    args = dict(input_dim=784, latent_dims=(6, 3), hidden=(32, 16), seed=0)
    args.update(kwargs)
    return tfvae.LadderVAE(**args)


def small_hierarchical(**kwargs):
    args = dict(input_dim=784, latent_dims=(6, 3), hidden=((32, 32), (16, 16)), seed=0)
    args.update(kwargs)
    return tfvae.HierarchicalVAE(**args)


MAKERS = {"ladder": small_ladder, "hierarchical": small_hierarchical}


def test_precision_weighting_is_the_normalized_product_of_the_gaussians():
    layer = distributions.DiagonalGaussian(4)
    a = {"loc": tf.constant(RNG.normal(size=(3, 4)), tf.float32),
         "scale": tf.constant(RNG.uniform(0.2, 2.0, size=(3, 4)), tf.float32)}
    b = {"loc": tf.constant(RNG.normal(size=(3, 4)), tf.float32),
         "scale": tf.constant(RNG.uniform(0.2, 2.0, size=(3, 4)), tf.float32)}
    merged = layer.combine(a, b)
    # Independently: a density proportional to N(z; a) N(z; b) differs from it by a constant in z.
    z = RNG.normal(size=(50, 3, 4)) * 3
    def log_normal(z, p):
        return -0.5 * ((z - p["loc"].numpy()) / p["scale"].numpy()) ** 2 - np.log(p["scale"].numpy())
    difference = log_normal(z, merged) - (log_normal(z, a) + log_normal(z, b))
    np.testing.assert_allclose(difference, np.broadcast_to(difference[0], difference.shape), atol=1e-3)
    # ... and it is normalized (a Gaussian): the merged scale is below both input scales.
    assert np.all(merged["scale"].numpy() < np.minimum(a["scale"], b["scale"]))


def test_bernoulli_evidence_adds_logits():
    layer = distributions.Bernoulli(3)
    a, b = {"logits": tf.constant([[1.0, -2.0, 0.5]])}, {"logits": tf.constant([[0.5, 1.0, -0.5]])}
    merged = layer.combine(a, b)
    np.testing.assert_allclose(merged["logits"], [[1.5, -1.0, 0.0]])
    np.testing.assert_allclose(merged["probs"], 1 / (1 + np.exp(-np.array([[1.5, -1.0, 0.0]]))), rtol=1e-6)


def kl_0_gradients(model, x):
    """Gradients of the conditional KL of layer 0 (given z_1) for three groups of parameters."""
    groups = {
        "q(v)": model.up_heads[1].trainable_weights + model.up_blocks[1].trainable_weights,
        "q(u|v)": model.up_heads[0].trainable_weights,
        "prior": model.prior_heads[0].trainable_weights + model.prior_blocks[0].trainable_weights,
    }
    with tf.GradientTape(persistent=True) as tape:
        kl_0 = tf.reduce_mean(model.loss_terms(x, seed=3)["kl_0"])
    return {name: [tape.gradient(kl_0, w) for w in weights] for name, weights in groups.items()}


@pytest.mark.parametrize("analytic_kl", [True, False])
@pytest.mark.parametrize("families", [None, ("bernoulli", "bernoulli")])
def test_stop_removes_exactly_the_gradient_through_the_conditioning_sample(analytic_kl, families):
    x = (RNG.uniform(size=(16, 784)) < 0.3).astype(np.float32)
    full = small_ladder(analytic_kl=analytic_kl, latent_families=families)
    full.build((None, 784))
    stop = tfvae.LadderVAE.from_config({**full.get_config(), "conditional_kl_gradient": "stop"})
    stop.build((None, 784))
    stop.set_weights(full.get_weights())
    g_full, g_stop = kl_0_gradients(full, x), kl_0_gradients(stop, x)
    assert all(g is None or np.all(g.numpy() == 0) for g in g_stop["q(v)"])
    assert any(g is not None and np.abs(g.numpy()).max() > 1e-6 for g in g_full["q(v)"])
    for name in ("q(u|v)", "prior"):
        for a, b in zip(g_full[name], g_stop[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The objective's value does not depend on the option.
    np.testing.assert_allclose(full.loss_terms(x, seed=1)["objective"],
                               stop.loss_terms(x, seed=1)["objective"], rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_layer_kls_sum_to_the_total_and_iwae_is_above_the_elbo(kind):
    x = (RNG.uniform(size=(32, 784)) < 0.3).astype(np.float32)
    model = MAKERS[kind](latent_dims=(6, 4, 2), hidden=(32, 16, 8), analytic_kl=False)
    terms = model.loss_terms(x, seed=0)
    np.testing.assert_allclose(terms["kl"], terms["kl_0"] + terms["kl_1"] + terms["kl_2"], rtol=1e-5)
    # With Monte Carlo KL the ELBO is the mean log-weight: L_1 at the same seed equals it.
    np.testing.assert_allclose(model.loss_terms(x, num_samples=1, seed=5)["elbo"],
                               model.log_prob(x, 1, seed=5).numpy(), rtol=1e-4, atol=1e-3)
    assert np.mean(model.log_prob(x, 50, seed=1)) > np.mean(model.elbo(x, seed=1))


@pytest.mark.parametrize("families", [None, ("bernoulli", "gaussian"), ("gaussian", "bernoulli")])
def test_analytic_and_monte_carlo_layer_kls_agree(families):
    x = (RNG.uniform(size=(8, 784)) < 0.3).astype(np.float32)
    analytic = small_ladder(latent_families=families)
    analytic.build((None, 784))
    mc = tfvae.LadderVAE.from_config({**analytic.get_config(), "analytic_kl": False})
    mc.build((None, 784))
    mc.set_weights(analytic.get_weights())
    # Per-layer KLs are averaged over the k = 2000 samples of one call.
    exact, estimate = analytic.loss_terms(x, 2000, seed=0), mc.loss_terms(x, 2000, seed=1)
    for i in range(2):
        np.testing.assert_allclose(np.mean(estimate[f"kl_{i}"]), np.mean(exact[f"kl_{i}"]),
                                   rtol=0.03, atol=0.02)


@pytest.mark.parametrize("kwargs, message", [
    (dict(latent_dims=()), "latent_dims"),
    (dict(hidden=(32,)), "hidden"),
    (dict(conditional_kl_gradient="half"), "conditional_kl_gradient"),
    (dict(latent_families=("bernoulli",)), "latent_families"),
    (dict(latent_families=("bernoulli", "poisson")), "latent_families"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_ladder(**kwargs)


def test_hierarchical_vae_has_the_iwae_papers_two_layer_architecture():
    model = tfvae.HierarchicalVAE(input_dim=784, latent_dims=(100, 50), hidden=((200, 200), (100, 100)))
    model.build((None, 784))
    # 784-200-200-z100-100-100-z50 (Burda et al. 2016, appendix), mirrored in the generative model:
    def dense(n_in, n_out):
        return n_in * n_out + n_out
    expected = (dense(784, 200) + dense(200, 200) + dense(200, 200)      # q(z0|x): loc and scale
                + dense(100, 100) + dense(100, 100) + dense(100, 100)    # q(z1|z0)
                + dense(50, 100) + dense(100, 100) + dense(100, 200)     # p(z0|z1)
                + dense(100, 200) + dense(200, 200) + dense(200, 784))   # p(x|z0)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


def log_sigmoid_mass(z, logits):
    """log Bernoulli(z; sigmoid(logits)) summed over the last axis, in numpy."""
    return np.sum(z * logits - np.logaddexp(0.0, logits), axis=-1)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_binary_layers_iwae_approaches_the_likelihood_summed_over_all_states(kind):
    """With binary layers of 3 and 2 units, log p(x) = log sum_{z0, z1} p(z1) p(z0|z1) p(x|z0)
    has 32 terms: the IWAE estimate (which samples q and weighs by p/q) must converge to it."""
    model = MAKERS[kind](latent_dims=(3, 2), latent_families=("bernoulli", "bernoulli"))
    model.build((None, 784))
    x = (RNG.uniform(size=(4, 784)) < 0.3).astype(np.float32)
    states = lambda m: np.array([[(s >> j) & 1 for j in range(m)] for s in range(2 ** m)], np.float32)
    z0, z1 = states(3), states(2)
    log_p_z1 = log_sigmoid_mass(z1, np.zeros(2))                                   # [4]
    log_p_z0 = np.stack([log_sigmoid_mass(z0, model.conditional_prior(0, np.tile(z, (8, 1)))["logits"].numpy())
                         for z in z1])                                             # [4 z1, 8 z0]
    log_p_x = log_sigmoid_mass(x[None], model.decode(z0)["logits"].numpy()[:, None])  # [8 z0, 4 x]
    joint = log_p_z1[:, None, None] + log_p_z0[:, :, None] + log_p_x[None]
    exact = np.logaddexp.reduce(joint.reshape(-1, 4), axis=0)
    iwae = model.log_prob(x, num_samples=10000, seed=0).numpy()
    np.testing.assert_allclose(iwae, exact, atol=0.1)  # IWAE's bias and noise at k = 10^4
    assert np.all(model.loss_terms(x, num_samples=2000, seed=0)["elbo"].numpy() < exact)  # E_q[ELBO]


def test_gradient_variance_compares_the_options_and_restores_the_model():
    from tfvae import evaluation
    model = small_ladder(batch_norm=True)
    model.build((None, 784))
    x = (RNG.uniform(size=(32, 784)) < 0.3).astype(np.float32)
    upper = model.up_blocks[1].trainable_weights + model.up_heads[1].trainable_weights
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    full = evaluation.gradient_variance(model, x, num_draws=4, weights=upper, conditional_kl_gradient="full")
    stop = evaluation.gradient_variance(model, x, num_draws=4, weights=upper, conditional_kl_gradient="stop")
    assert full["total_variance"] > 0 and stop["total_variance"] > 0
    assert np.abs(full["mean"] - stop["mean"]).max() > 1e-6  # stop removes a gradient path
    assert model.conditional_kl_gradient == "full"
    for value, variable in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), value)  # batch-norm statistics untouched
    with pytest.raises(ValueError, match="conditional_kl_gradient"):
        evaluation.gradient_variance(model, x, num_draws=2, conditional_kl_gradient="half")
