"""Priors as parts (`tfvae.priors.Prior`): a user's own, written here as a user would (a
factorized logistic prior with a learned scale, in this file only), trains in a VAE and a
LadderVAE with the Monte Carlo KL, round-trips `.keras` under safe_mode, exports, and serves in
a process with TensorFlow alone."""
import os

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import tfvae
from helpers import assert_model_saving_round_trip, assert_served_like_keras
from testing import fit_and_serve

HERE = os.path.dirname(os.path.abspath(__file__))
D = 12
RNG = np.random.default_rng(0)


@keras.saving.register_keras_serializable(package="user_logistic")
class LogisticPrior(tfvae.priors.Prior):
    """p(z) = prod_u Logistic(z_u; 0, s), s = exp(log_scale) learned:
    log p(z_u) = -t - 2 softplus(-t) - log s, t = z_u / s."""

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(shape=(), initializer="zeros", name="log_scale")
        self.built = True

    def log_prob(self, z):
        scale = tf.exp(self.log_scale)
        t = z / scale
        return tf.reduce_sum(-t - 2.0 * tf.nn.softplus(-t) - tf.math.log(scale), axis=-1)

    def sample(self, num_samples, seed):
        u = tf.random.stateless_uniform([num_samples, self.latent_dim],
                                        tfvae.estimators.seed_pair(seed), 1e-6, 1 - 1e-6)
        return tf.exp(self.log_scale) * (tf.math.log(u) - tf.math.log1p(-u))


def _data(n=256):
    x = (RNG.random((n, 2)) @ RNG.normal(size=(2, D)) > 0.2).astype(np.float32)
    return np.where(RNG.random((n, D)) < 0.05, 1.0 - x, x).astype(np.float32)


MODELS = {
    "vae": lambda: tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(16,), prior=LogisticPrior(2), seed=0),
    "ladder": lambda: tfvae.LadderVAE(input_shape=(D,), latent_dims=(4, 2), hidden=(16, 16),
                                      prior=LogisticPrior(2), seed=0),
}


@pytest.fixture(scope="session")
def trained_with_prior(tmp_path_factory):
    x = _data()
    root = tmp_path_factory.mktemp("logistic")
    models, histories, inputs, outputs = fit_and_serve(MODELS, x, root)
    return x, models, histories, inputs, outputs


@pytest.mark.slow  # (trains, exports and serves in a TensorFlow-only process: the slow step)
@pytest.mark.parametrize("index, name", list(enumerate(sorted(MODELS))))
def test_a_users_own_prior_trains_saves_exports_and_serves(trained_with_prior, index, name, tmp_path):
    x, models, histories, inputs, outputs = trained_with_prior
    model = models[name]
    loss = histories[name]
    assert np.isfinite(loss).all() and loss[-1] < loss[0] - 0.5
    assert type(model.prior_layer) is LogisticPrior and model.kl_estimate == "monte_carlo"
    z = RNG.normal(size=(5, 2)).astype(np.float32)
    scale = float(np.exp(model.prior_layer.log_scale.numpy()))
    np.testing.assert_allclose(model.prior_layer.log_prob(z),
                               scipy.stats.logistic.logpdf(z, scale=scale).sum(-1), rtol=1e-5)
    assert model.get_config()["prior"]["registered_name"] == "user_logistic>LogisticPrior"
    assert_model_saving_round_trip(model, x[:8], str(tmp_path))
    assert_served_like_keras(model, inputs, outputs, index, 3)


def test_the_samples_of_a_users_prior_follow_its_density():
    """Its sample is what the models' prior_sample and generate use: a KS test against scipy."""
    prior = LogisticPrior(2)
    prior.build()
    draws = np.asarray(prior.sample(4000, tf.constant([0, 1], tf.int32)))
    assert scipy.stats.kstest(draws.ravel(), scipy.stats.logistic.cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="tfvae.priors.Prior"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, prior=object())
    with pytest.raises(ValueError, match="free_bits floors the KL of each latent unit"):
        tfvae.VAE(input_shape=(D,), latent_dim=2, prior=LogisticPrior(2), free_bits=0.5)
