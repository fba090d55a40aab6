"""Likelihoods as parts (`tfvae.likelihoods`): found by name, given as instances, and a user's own
written here as a user would (a Laplace likelihood, in this file only) trains in a VAE and a
LadderVAE, round-trips `.keras` under safe_mode, exports, and serves in a process with
TensorFlow alone."""
import json
import os

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import tfvae
from helpers import assert_model_saving_round_trip, assert_served_like_keras
from testing import fit_and_serve
from tfvae import likelihoods

HERE = os.path.dirname(os.path.abspath(__file__))
D = 12
RNG = np.random.default_rng(0)


@keras.saving.register_keras_serializable(package="user_laplace")
class Laplace(tfvae.likelihoods.Likelihood):
    """Laplace(loc, b) for each value, loc and b = softplus(raw) + 1e-3 from the decoder:
    log p(x) = -|x - loc| / b - log(2 b)."""

    units_per_param = 2

    def params_from_raw(self, raw):
        loc, raw_scale = tf.split(raw, 2, axis=-1)
        return {"loc": loc, "scale": tf.nn.softplus(raw_scale) + 1e-3}

    def log_prob(self, params, x):
        per_value = -tf.abs(x - params["loc"]) / params["scale"] - tf.math.log(2.0 * params["scale"])
        return tf.reduce_sum(per_value, axis=list(range(-self.event_ndims, 0)))

    def mean(self, params):
        return params["loc"]

    def sample(self, params, seed, num_samples=None):
        u = tf.random.stateless_uniform(tf.shape(params["loc"]), seed, -0.5, 0.5)
        return params["loc"] - params["scale"] * tf.sign(u) * tf.math.log1p(-2.0 * tf.abs(u))


def _data(n=256):
    """Real values: a 2-D latent pattern plus Laplace noise."""
    z = RNG.normal(size=(n, 2))
    return (z @ RNG.normal(size=(2, D)) + 0.3 * RNG.laplace(size=(n, D))).astype(np.float32)


MODELS = {
    "vae": lambda: tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(16,), likelihood=Laplace(), seed=0),
    "ladder": lambda: tfvae.LadderVAE(input_shape=(D,), latent_dims=(4, 2), hidden=(16, 16),
                                      likelihood=Laplace(), seed=0),
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Both models trained briefly on the same data, and their exports served by one process
    that cannot import tfvae, TFP or Keras."""
    x = _data()
    root = tmp_path_factory.mktemp("laplace")
    models, histories, inputs, outputs = fit_and_serve(MODELS, x, root)
    return x, models, histories, inputs, outputs


@pytest.mark.slow  # (trains, exports and serves in a TensorFlow-only process: the slow step)
@pytest.mark.parametrize("index, name", list(enumerate(sorted(MODELS))))
def test_a_users_own_likelihood_trains_saves_exports_and_serves(trained, index, name, tmp_path):
    x, models, histories, inputs, outputs = trained
    model = models[name]
    loss = histories[name]
    assert np.isfinite(loss).all() and loss[-1] < loss[0] - 2.0  # it learns (nats per example)
    assert model.likelihood is model.likelihood_layer and type(model.likelihood) is Laplace
    # the likelihood's maths is the part's: the distortion is -sum log Laplace(x | decode(z))
    params = model.decode(model.latent_means(x[:5])[0])
    expected = scipy.stats.laplace.logpdf(x[:5], np.asarray(params["loc"]), np.asarray(params["scale"])).sum(-1)
    np.testing.assert_allclose(model.likelihood.log_prob(params, x[:5]), expected, rtol=1e-5)
    saved = model.get_config()["likelihood"]
    assert saved["registered_name"] == "user_laplace>Laplace" and list(saved["config"]["event_shape"]) == [D]
    assert_model_saving_round_trip(model, x[:8], str(tmp_path))
    assert_served_like_keras(model, inputs, outputs, index, 3)
    samples = outputs[f"{index}/sample:3/x"]
    assert samples.shape == (3, D) and np.allclose(samples[0], samples[2])


def test_a_decoder_that_gives_the_parameters_has_their_shape():
    """A decoder whose output has the shape of the parameters, 2 D for two per value, gives
    them itself (`params_shape`): no projection."""
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2 * D)])
    model = tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), decoder=decoder, likelihood=Laplace())
    assert not model.likelihood.project and model.likelihood.params_shape((D,)) == (2 * D,)
    assert model.elbo(_data(4)).shape == (4,)


def test_the_gaussian_with_a_scale_per_element_takes_it_from_the_decoder():
    part = likelihoods.get("gaussian", scale="per_element")
    model = tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), likelihood=part)
    params = model.decode(tf.zeros((3, 2)))
    assert params["scale"].shape == (3, D) and model.likelihood.projection.units == 2 * D
    assert not model.likelihood.trainable_weights[-1].name.startswith("raw_scale")
    shared = tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), likelihood="gaussian")
    shared.build((None, D))
    assert [w.name for w in shared.likelihood.weights if "scale" in w.name] == ["raw_scale"]
    loaded = tfvae.VAE.from_config(json.loads(json.dumps(model.get_config())))
    assert loaded.likelihood.scale == "per_element"


def test_names_options_and_refusals():
    assert {"bernoulli", "gaussian", "continuous_bernoulli"} <= set(likelihoods.names())
    assert isinstance(likelihoods.get("bernoulli"), likelihoods.Bernoulli)
    assert likelihoods.get("gaussian", scale=0.5).scale == 0.5
    with pytest.raises(ValueError, match=r"likelihood must be one of \('bernoulli', .*'gaussian'\) or a "
                                         r"tfvae.likelihoods.Likelihood. Received: likelihood='laplace'"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, likelihood="laplace")
    with pytest.raises(ValueError, match="likelihood_scale applies to likelihood='gaussian' only"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, likelihood="bernoulli", likelihood_scale=0.1)
    with pytest.raises(ValueError, match="scale must be None"):
        likelihoods.get("gaussian", scale=-1.0)
    with pytest.raises(ValueError, match="Bernoulli or unit-variance Gaussian"):
        tfvae.HarmoniumVAE(input_shape=(D,), latent_dim=3, likelihood=Laplace())
    part = Laplace()
    tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), likelihood=part)
    with pytest.raises(ValueError, match="Pass a new instance"):  # one part, one model
        tfvae.VAE(input_shape=(D + 1,), latent_dim=2, hidden=(8,), likelihood=part)


def test_the_data_checks_are_the_likelihoods():
    model = tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), likelihood=Laplace())
    eight_bit = RNG.integers(0, 256, (4, D)).astype(np.float32)
    assert model.elbo(eight_bit).shape == (4,)  # a Laplace part accepts any real value
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,)).elbo(eight_bit)
    with pytest.raises(ValueError, match="looks like 8-bit pixels"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), likelihood="gaussian").elbo(eight_bit)


def test_the_readme_example_of_a_likelihood_runs():
    text = open(os.path.join(HERE, "..", "README.md"), encoding="utf-8").read()
    section = text[text.index("### Likelihoods are parts"):]
    code = section[section.index("```python") + len("```python"):]
    code = code[:code.index("```")]
    namespace = {"keras": keras, "tf": tf, "tfvae": tfvae}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own text)
    model = namespace["model"]
    assert type(model.likelihood).__name__ == "Laplace" and model.elbo(_data(4)).shape == (4,)
