"""The one accumulator of per-layer terms (`BaseVAE._accumulate_layers`), checked against bounds
enumerated over every latent state of small binary models.

Each model here has binary latent layers and no hidden layers, so its ELBO is an exact sum over
the 2^m joint states, written in numpy from the model's definition (not from the code under
test). The score-function estimator's gradient, averaged over many independent draws, must
equal the finite-difference gradient of that sum within its Monte Carlo error: a learning
signal that leaves out a term depending on a layer's draw (or the score term of a layer) is
biased and fails. The learning signal's terms are checked directly too.
"""
import itertools

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from test_maths_exact import (LOG_HALF, bernoulli_log_prob, dense, f64, finite_difference_gradient,
                              set_dense)

X4 = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], np.float32)


def states(units):
    """Every binary state of `units` units, [2^units, units]."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=units)))


def bernoulli_table(logits, z):
    """log Bernoulli(z; sigmoid(logits)) summed over units, for logits [..., m] and states z [S, m]
    broadcast against each other."""
    return bernoulli_log_prob(z, logits)


def flat_joint(params, x, names):
    """VAE(latent="bernoulli"): q(z|x) logits x A + a; p(z) = Bernoulli(1/2); p(x|z) logits z B + b.
    Returns (log q, log p(x, z)) over the 2^m states, [B, S]."""
    q_name, x_name = names
    z = states(params[f"{q_name}/bias"].shape[0])  # [S, m]
    logits = dense(params, q_name, x)[:, None, :]  # [B, 1, m]
    log_q = bernoulli_table(logits, z[None])
    log_p = z.shape[1] * LOG_HALF + bernoulli_log_prob(x[:, None, :], dense(params, x_name, z)[None])
    return log_q, log_p


def ladder_joint(params, x, names):
    """LadderVAE, two binary layers: q(z_1|x) logits x E_1 + c_1; p(z_1) = Bernoulli(1/2);
    p(z_0|z_1) logits r = z_1 P + d; q(z_0|z_1, x) logits x E_0 + c_0 + r; p(x|z_0) logits
    z_0 B + b. Joint states (z_0, z_1), [B, S_0 * S_1]."""
    e0, e1, prior0, lik = names
    z0, z1 = states(params[f"{e0}/bias"].shape[0]), states(params[f"{e1}/bias"].shape[0])
    pairs = [(a, b) for b in z1 for a in z0]
    za, zb = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    r = dense(params, prior0, zb)  # [S, m0]
    log_q = (bernoulli_log_prob(zb[None], dense(params, e1, x)[:, None])
             + bernoulli_log_prob(za[None], dense(params, e0, x)[:, None] + r[None]))
    log_p = (zb.shape[1] * LOG_HALF + bernoulli_log_prob(za, r)[None]
             + bernoulli_log_prob(x[:, None], dense(params, lik, za)[None]))
    return log_q, log_p


def hierarchical_joint(params, x, names):
    """HierarchicalVAE, two binary layers: q(z_0|x) logits x Q_0 + c_0; q(z_1|z_0) logits
    z_0 Q_1 + c_1; p(z_1) = Bernoulli(1/2); p(z_0|z_1) logits z_1 P + d; p(x|z_0) logits
    z_0 B + b."""
    q0, q1, prior0, lik = names
    z0, z1 = states(params[f"{q0}/bias"].shape[0]), states(params[f"{q1}/bias"].shape[0])
    pairs = [(a, b) for b in z1 for a in z0]
    za, zb = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    log_q = (bernoulli_log_prob(za[None], dense(params, q0, x)[:, None])
             + bernoulli_log_prob(zb, dense(params, q1, za))[None])
    log_p = (zb.shape[1] * LOG_HALF + bernoulli_log_prob(za, dense(params, prior0, zb))[None]
             + bernoulli_log_prob(x[:, None], dense(params, lik, za)[None]))
    return log_q, log_p


def exact_elbo(joint):
    """Mean over the batch of sum_z q(z|x) (log p(x, z) - log q(z|x))."""
    def elbo(params, x):
        log_q, log_p = joint(params, x)
        return float(np.mean(np.sum(np.exp(log_q) * (log_p - log_q), axis=1)))
    return elbo


def model_and_joint(kind, analytic_kl, **more):
    """(model, its layers with weights, its numpy joint) of a small binary model of `kind`
    drawn with the score function; `more`: other model options (num_samples, iw_gradient)."""
    options = dict(estimator="score_function", baseline="none", analytic_kl=analytic_kl, seed=0, **more)
    if kind == "vae":
        model = tfvae.VAE(input_shape=(4,), latent_dim=3, latent="bernoulli", hidden=(), **options)
        model.build((None, 4))
        layers = [model.posterior_layer, model.likelihood_layer]
        return model, layers, flat_joint
    cls = tfvae.LadderVAE if kind == "ladder" else tfvae.HierarchicalVAE
    model = cls(input_shape=(4,), latent_dims=(3, 2), hidden=((), ()),
                latent_families=("bernoulli", "bernoulli"), **options)
    model.build((None, 4))
    layers = list(model.up_heads) + [model.prior_heads[0], model.likelihood_layer]
    return model, layers, ladder_joint if kind == "ladder" else hierarchical_joint


def random_weights(layers, joint):
    """Random O(1) weights for every layer's projection: (their values by name, the joint at
    those names, the variables)."""
    rng = np.random.default_rng(3)
    params = {}
    for layer in layers:
        params.update(set_dense(layer, rng))
    names = [layer.name for layer in layers]
    variables = [w for layer in layers for w in (layer.projection.kernel, layer.projection.bias)]
    return params, (lambda p, x: joint(p, x, names)), variables


def score_function_gradient(model, variables, x, chunks=40, copies=400, num_samples=1):
    """The mean and standard error of the gradient of the mean objective (of `num_samples`
    samples), over `chunks` independent batches of `copies` copies of x."""
    grads = []
    for chunk in range(chunks):
        batch = np.tile(x, (copies, 1))
        with tf.GradientTape() as tape:
            objective = tf.reduce_mean(model.loss_terms(batch, num_samples=num_samples, seed=1000 + chunk)["objective"])
        grads.append(np.concatenate([g.numpy().ravel() for g in tape.gradient(objective, variables)]))
    grads = np.array(grads, np.float64)
    return grads.mean(0), grads.std(0, ddof=1) / np.sqrt(chunks)


@pytest.mark.parametrize("kind, analytic_kl", [("vae", True), ("vae", False), ("ladder", True),
                                               ("ladder", False), ("hierarchical", True)])
def test_score_function_gradient_is_the_enumerated_elbo_gradient(kind, analytic_kl):
    model, layers, joint = model_and_joint(kind, analytic_kl)
    params, joint, variables = random_weights(layers, joint)
    elbo = exact_elbo(joint)
    exact = np.concatenate([g.ravel() for g in finite_difference_gradient(lambda p: elbo(p, f64(X4)), params)])
    # the objective's value is the sampled ELBO: its mean over draws is the enumerated one
    value = np.mean([float(tf.reduce_mean(model.loss_terms(np.tile(X4, (400, 1)), 1, seed=s)["elbo"]))
                     for s in range(5)])
    assert value == pytest.approx(elbo(params, f64(X4)), abs=0.15)
    mean, stderr = score_function_gradient(model, variables, X4)
    z = (mean - exact) / stderr
    assert np.abs(exact).max() > 0.1  # (a gradient worth estimating)
    # unbiased: every entry within Monte Carlo error, and no systematic excess over all entries
    assert np.abs(z).max() < 4.5, (kind, np.round(z, 1))
    assert np.mean(z ** 2) < 2.0, (kind, np.mean(z ** 2))


@pytest.mark.parametrize("kind, analytic_kl, dependent", [
    ("vae", True, ()),              # the closed-form KL depends on no draw
    ("vae", False, (0,)),           # the sampled KL does
    ("ladder", True, (0,)),         # the top layer's closed form does not; p(z_0|z_1) does
    ("ladder", False, (0, 1)),
    ("hierarchical", True, (0, 1)),  # q(z_1|z_0) is conditioned on the draw below
])
def test_the_learning_signal_subtracts_the_rates_that_depend_on_a_draw(kind, analytic_kl, dependent):
    model, _, _ = model_and_joint(kind, analytic_kl)
    terms = model.loss_terms(X4, num_samples=1, seed=5)
    rates = [terms["kl"]] if kind == "vae" else [terms["kl_0"], terms["kl_1"]]
    expected = -terms["distortion"] - sum((rates[i] for i in dependent), tf.zeros_like(terms["kl"]))
    np.testing.assert_allclose(terms["learning_signal"], expected, rtol=1e-5, atol=1e-5)
