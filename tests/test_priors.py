"""Learned priors (tfvae.priors): mixture and VampPrior densities, sampling, the Monte Carlo KL,
and every model class training, saving and sampling with them."""
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import priors

RNG = np.random.default_rng(0)


def numpy_mixture_log_prob(logits, loc, scale, z):
    """log sum_k pi_k prod_l N(z_l; loc_kl, scale_kl), directly from the Gaussian density."""
    log_pi = logits - np.log(np.sum(np.exp(logits)))
    diff = (z[:, None, :] - loc[None]) / scale[None]                     # [N, K, L]
    log_components = np.sum(-0.5 * diff ** 2 - np.log(scale[None]) - 0.5 * np.log(2 * np.pi), -1)
    a = log_components + log_pi
    m = a.max(-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), -1, keepdims=True)))[:, 0]


def set_mixture(prior, logits, loc, scale):
    if not prior.built:
        prior.build()
    prior.logits.assign(logits)
    prior.loc.assign(loc)
    prior.raw_scale.assign(np.log(np.expm1(scale - prior.min_scale)))


def test_mixture_log_density_matches_numpy_and_tfp():
    k, dim = 7, 5
    prior = priors.MixturePrior(dim, k)
    logits = RNG.normal(size=k).astype("float32")
    loc = RNG.normal(size=(k, dim)).astype("float32") * 2
    scale = RNG.uniform(0.3, 2.0, size=(k, dim)).astype("float32")
    set_mixture(prior, logits, loc, scale)
    z = RNG.normal(size=(300, dim)).astype("float32") * 3
    expected = numpy_mixture_log_prob(logits.astype(float), loc.astype(float), scale.astype(float),
                                      z.astype(float))
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(prior.distribution().log_prob(z).numpy(), expected, rtol=1e-5, atol=1e-4)
    # leading sample axes are kept: [k, B, L] -> [k, B]
    np.testing.assert_allclose(prior.log_prob(z.reshape(3, 100, dim)).numpy(),
                               expected.reshape(3, 100), rtol=1e-5, atol=1e-4)


def test_mixture_samples_have_the_mixture_moments():
    prior = priors.MixturePrior(2, 3)
    logits = np.array([0.0, 1.0, -1.0], "float32")
    loc = np.array([[-3.0, 0.0], [2.0, 1.0], [0.0, 4.0]], "float32")
    scale = np.array([[0.5, 1.0], [1.0, 0.3], [2.0, 0.5]], "float32")
    set_mixture(prior, logits, loc, scale)
    z = prior.sample(200000, seed=3).numpy()
    pi = np.exp(logits) / np.exp(logits).sum()
    mean = pi @ loc
    second = pi @ (loc ** 2 + scale ** 2)
    n = len(z)
    assert np.all(np.abs(z.mean(0) - mean) < 4 * np.sqrt((second - mean ** 2) / n)), (z.mean(0), mean)
    second_se = np.sqrt(np.var(z ** 2, axis=0) / n)
    assert np.all(np.abs((z ** 2).mean(0) - second) < 4 * second_se), ((z ** 2).mean(0), second)
    # the same seed gives the same draws
    np.testing.assert_array_equal(prior.sample(5, seed=3).numpy(), prior.sample(5, seed=3).numpy())


def test_vamp_components_are_the_encoder_posteriors_at_the_pseudo_inputs():
    model = tfvae.VAE(784, 6, hidden=(32,), prior="vamp", prior_components=9, seed=0)
    model.build((None, 784))
    u = model.prior_layer.pseudo_inputs().numpy()
    assert u.shape == (9, 784) and u.min() > 0 and u.max() < 1
    posterior = model.encode(u)
    params = model.prior_layer.params()
    np.testing.assert_allclose(params["loc"].numpy(), posterior["loc"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(params["scale"].numpy(), posterior["scale"].numpy(), rtol=1e-6)
    # the density is the uniform mixture of those posteriors
    z = RNG.normal(size=(50, 6)).astype("float32")
    expected = numpy_mixture_log_prob(np.zeros(9), posterior["loc"].numpy().astype(float),
                                      posterior["scale"].numpy().astype(float), z.astype(float))
    np.testing.assert_allclose(model.prior_layer.log_prob(z).numpy(), expected, rtol=1e-5, atol=1e-4)
    # the pseudo-inputs are trained: the ELBO's gradient reaches them
    x = (RNG.uniform(size=(16, 784)) < 0.2).astype("float32")
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.elbo(x, seed=0))
    grad = tape.gradient(loss, model.prior_layer.raw_pseudo_inputs)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_vamp_pseudo_inputs_start_at_training_examples():
    model = tfvae.VAE(784, 3, hidden=(16,), prior="vamp", prior_components=4, seed=0)
    model.build((None, 784))
    x = (RNG.uniform(size=(4, 784)) < 0.3).astype("float32")
    model.prior_layer.initialize_from_data(x)
    np.testing.assert_allclose(model.prior_layer.pseudo_inputs().numpy(), np.clip(x, 0.01, 0.99),
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[4, 784\]"):
        model.prior_layer.initialize_from_data(x[:3])


def test_monte_carlo_kl_to_a_mixture_is_unbiased_against_numerical_integration():
    """KL[N(0.3, 0.5^2) || 0.3 N(-1, 0.4^2) + 0.7 N(1.5, 1)] by the model's own rate term."""
    model = tfvae.VAE(784, 1, hidden=(8,), prior="mixture", prior_components=2, seed=0)
    model.build((None, 784))
    set_mixture(model.prior_layer, np.log([0.3, 0.7]).astype("float32"),
                np.array([[-1.0], [1.5]], "float32"), np.array([[0.4], [1.0]], "float32"))
    grid = np.linspace(-12, 12, 200001)
    log_q = -0.5 * ((grid - 0.3) / 0.5) ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi)
    p = (0.3 * np.exp(-0.5 * ((grid + 1) / 0.4) ** 2) / 0.4
         + 0.7 * np.exp(-0.5 * (grid - 1.5) ** 2)) / np.sqrt(2 * np.pi)
    exact = np.trapezoid(np.exp(log_q) * (log_q - np.log(p)), grid)
    batch = 2000
    q_params = {"loc": tf.fill([batch, 1], 0.3), "scale": tf.fill([batch, 1], 0.5)}
    x = np.zeros((batch, 784), "float32")
    kl = model.loss_terms(x, num_samples=50, seed=7, posterior_params=q_params)["kl"].numpy()
    estimate, se = kl.mean(), kl.std(ddof=1) / np.sqrt(batch)
    assert model.kl_estimate == "monte_carlo"
    assert abs(estimate - exact) < 4 * se, (estimate, exact, se)
    assert se < 0.01  # precise enough to catch a wrong log-density (e.g. weights not normalized)


BUILDERS = {
    "vae_mixture": lambda: tfvae.VAE(784, 4, hidden=(32,), prior="mixture", prior_components=5, seed=0),
    "vae_vamp": lambda: tfvae.VAE(784, 4, hidden=(32,), prior="vamp", prior_components=5, seed=0),
    "ladder_vamp": lambda: tfvae.LadderVAE(784, latent_dims=(6, 3), hidden=(32, 16), prior="vamp",
                                           prior_components=4, seed=0),
    "hierarchical_mixture": lambda: tfvae.HierarchicalVAE(784, latent_dims=(6, 3), hidden=(32, 16),
                                                          prior="mixture", prior_components=4, seed=0),
}


@pytest.mark.slow  # (each model class with a learned prior: also in tests/test_contract.py)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_models_train_save_and_sample_with_learned_priors(name, tmp_path):
    x = (RNG.uniform(size=(200, 784)) < 0.2).astype("float32")
    model = BUILDERS[name]()
    model.compile(optimizer="adam", jit_compile=True)
    model.fit(x, batch_size=50, epochs=2, verbose=0)
    assert model.kl_estimate == "monte_carlo"
    prior_weights = [w.numpy().copy() for w in model.prior_layer.weights]
    path = str(tmp_path / "m.keras")
    tfvae.files.save_model(model, path)
    loaded = tfvae.files.load_model(path)
    assert loaded.prior_kind == model.prior_kind
    for a, b in zip(prior_weights, loaded.prior_layer.weights):
        np.testing.assert_array_equal(a, b.numpy())
    np.testing.assert_allclose(loaded.sample(3, seed=4).numpy(), model.sample(3, seed=4).numpy(), atol=1e-6)
    log_px = loaded.log_prob(x[:5], num_samples=200, seed=1).numpy()
    elbo = loaded.elbo(x[:5], seed=1).numpy()
    assert np.all(np.isfinite(log_px)) and np.mean(log_px) > np.mean(elbo) - 1.0


def test_bad_prior_arguments_fail_clearly():
    with pytest.raises(ValueError, match="prior must be one of"):
        tfvae.VAE(784, 4, prior="laplace")
    with pytest.raises(ValueError, match="prior_components"):
        tfvae.VAE(784, 4, prior="vamp", prior_components=0)
    with pytest.raises(ValueError, match="free_bits"):
        tfvae.VAE(784, 4, prior="mixture", free_bits=0.5)
    with pytest.raises(ValueError, match="top layer"):
        tfvae.LadderVAE(784, latent_dims=(6, 3), hidden=(32, 16), prior="vamp",
                        latent_families=("gaussian", "bernoulli"))


def test_aggregate_posterior_figure_needs_two_latents(tmp_path):
    x = (RNG.uniform(size=(30, 784)) < 0.2).astype("float32")
    models = [tfvae.VAE(784, 2, hidden=(8,), seed=0),
              tfvae.VAE(784, 2, hidden=(8,), prior="vamp", prior_components=3, seed=0)]
    path = tfvae.plots.aggregate_posterior(models, x, np.arange(30) % 10, str(tmp_path / "a.png"),
                                           points_per_axis=20)
    assert (tmp_path / "a.png").stat().st_size > 0 and path.endswith("a.png")
    with pytest.raises(ValueError, match="needs models of 2 Gaussian latent units"):
        tfvae.plots.aggregate_posterior([tfvae.VAE(784, 3, hidden=(8,))], x, np.zeros(30),
                                        str(tmp_path / "b.png"))
