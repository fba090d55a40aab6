"""The flat VAE: objective, metrics, training modes, likelihood estimates, serialization."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import assert_model_saving_round_trip
import tfvae
from tfvae import objectives

RNG = np.random.default_rng(0)


def small_vae(**kwargs):
    args = dict(input_dim=784, latent_dim=8, hidden=(64,), seed=0)
    args.update(kwargs)
    return tfvae.VAE(**args)


def batches(x, batch_size=100):
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)


@pytest.fixture(scope="session")
def trained_vae(binary_mnist_subset):
    """A small VAE trained for a few epochs on 2,000 real binarized MNIST images."""
    keras.utils.set_random_seed(0)
    train_x, _ = binary_mnist_subset
    model = small_vae(latent_dim=10, hidden=(200,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    model.fit(batches(train_x).shuffle(20), epochs=8, verbose=0)
    return model


def test_fit_on_real_data_lowers_the_loss(binary_mnist_subset):
    keras.utils.set_random_seed(0)
    train_x, test_x = binary_mnist_subset
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = model.evaluate(batches(test_x), return_dict=True, verbose=0)
    history = model.fit(batches(train_x), epochs=3, verbose=0, validation_data=batches(test_x))
    after = model.evaluate(batches(test_x), return_dict=True, verbose=0)
    assert after["loss"] < before["loss"] - 100  # 543 -> about 200 nats
    assert set(history.history) >= {"loss", "elbo", "kl", "distortion", "val_elbo"}
    # Rate-distortion bookkeeping: loss = -elbo = kl + distortion for beta = 1, k = 1.
    np.testing.assert_allclose(after["loss"], -after["elbo"], rtol=1e-5)
    np.testing.assert_allclose(after["kl"] + after["distortion"], after["loss"], rtol=1e-5)


@pytest.mark.parametrize("mode", ["eager", "tf_function", "xla"])
def test_training_modes(mode, binary_mnist_subset):
    train_x = binary_mnist_subset[0][:300]
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=mode == "eager",
                  jit_compile=mode == "xla")
    model.build((None, 784))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(batches(train_x), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][1] < history.history["loss"][0]
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(trained_vae, binary_mnist_subset):
    x = binary_mnist_subset[1][:256]
    elbo = float(np.mean(trained_vae.elbo(x, seed=1)))
    bounds = [float(np.mean(trained_vae.log_prob(x, k, chunk_size=100, seed=1)))
              for k in (1, 10, 100, 500)]
    # L_1 is a Monte Carlo ELBO: it agrees with the closed-form-KL ELBO within noise.
    assert abs(bounds[0] - elbo) < 1.0
    assert bounds[1] > elbo + 1.0
    assert bounds[0] < bounds[1] < bounds[2] < bounds[3]


def test_log_prob_chunking_does_not_change_the_estimate(trained_vae, binary_mnist_subset):
    x = binary_mnist_subset[1][:200]
    one_chunk = trained_vae.log_prob(x, 200, chunk_size=200, seed=4).numpy()
    many_chunks = trained_vae.log_prob(x, 200, chunk_size=50, seed=4).numpy()
    # Different noise, same estimator: the means agree within Monte Carlo error.
    assert abs(one_chunk.mean() - many_chunks.mean()) < 0.3
    np.testing.assert_array_equal(trained_vae.log_prob(x[:5], 50, chunk_size=7, seed=2),
                                  trained_vae.log_prob(x[:5], 50, chunk_size=7, seed=2))


def test_analytic_and_monte_carlo_kl_agree(trained_vae, binary_mnist_subset):
    x = binary_mnist_subset[1][:100]
    config = trained_vae.get_config()
    config["analytic_kl"] = False
    mc_model = tfvae.VAE.from_config(config)
    mc_model.build((None, 784))
    mc_model.set_weights(trained_vae.get_weights())
    analytic = trained_vae.loss_terms(x)["kl"].numpy()
    mc = np.mean([mc_model.loss_terms(x, seed=s)["kl"].numpy() for s in range(200)], axis=0)
    np.testing.assert_allclose(mc.mean(), analytic.mean(), rtol=0.02)


def test_beta_weights_the_rate(trained_vae, binary_mnist_subset):
    x = binary_mnist_subset[1][:100]
    config = trained_vae.get_config()
    config["beta"] = 3.0
    model = tfvae.VAE.from_config(config)
    model.build((None, 784))
    model.set_weights(trained_vae.get_weights())
    terms = model.loss_terms(x, seed=0)
    np.testing.assert_allclose(-terms["objective"], terms["distortion"] + 3.0 * terms["kl"], rtol=1e-5)


def test_free_bits_floor_each_unit():
    rate = tf.constant([[0.01, 2.0, 0.3], [0.03, 4.0, 0.5]])  # unit means: 0.02, 3.0, 0.4
    penalized = objectives.free_bits_rate(rate, 0.5).numpy()
    np.testing.assert_allclose(penalized, [0.5 + 2.0 + 0.5, 0.5 + 4.0 + 0.5], rtol=1e-6)
    np.testing.assert_allclose(objectives.free_bits_rate(rate, 0.0), tf.reduce_sum(rate, -1))
    with tf.GradientTape() as tape:
        tape.watch(rate)
        total = tf.reduce_sum(objectives.free_bits_rate(rate, 0.5))
    np.testing.assert_array_equal(tape.gradient(total, rate), [[0, 1, 0], [0, 1, 0]])


def test_kl_warmup_moves_the_rate_weight_from_zero(binary_mnist_subset, tmp_path):
    train_x = binary_mnist_subset[0][:200]
    model = small_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(batches(train_x), epochs=3, verbose=0,
                        validation_data=batches(binary_mnist_subset[1][:100]),
                        callbacks=[tfvae.callbacks.KLWarmup(2)])
    h = history.history
    assert h["kl_warmup"] == [0.0, 0.5, 1.0]
    # Epoch 1 trains the reconstruction alone: its loss is the distortion.
    np.testing.assert_allclose(h["loss"][0], h["distortion"][0], rtol=1e-5)
    # Validation measures the whole objective in every epoch (-ELBO), so val_loss compares.
    for epoch in range(3):
        np.testing.assert_allclose(h["val_loss"][epoch], -h["val_elbo"][epoch], rtol=1e-5)
        assert h["val_kl"][epoch] > 1.0
    assert float(model.kl_warmup.numpy()) == 1.0
    # a file saved during warm-up (ModelCheckpoint's) loads measuring the whole objective
    model.kl_warmup.assign(0.25)
    model.save(tmp_path / "epoch.keras")
    assert float(keras.saving.load_model(tmp_path / "epoch.keras").kl_warmup.numpy()) == 1.0


def test_iwae_training_objective(binary_mnist_subset):
    x = binary_mnist_subset[1][:100]
    model = small_vae(num_samples=5, analytic_kl=False)
    terms = model.loss_terms(x, seed=0)
    # With Monte Carlo KL the reported ELBO is the mean of the same 5 log-weights, so
    # log mean exp >= mean (Jensen) holds per example, exactly.
    assert np.all(terms["objective"].numpy() >= terms["elbo"].numpy() - 1e-4)
    assert np.mean(terms["objective"]) > np.mean(terms["elbo"]) + 0.1
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(batches(binary_mnist_subset[0][:500]), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_config_and_keras_file_round_trip(trained_vae, binary_mnist_subset, tmp_path):
    config = trained_vae.get_config()
    assert tfvae.VAE.from_config(config).get_config() == config
    loaded = assert_model_saving_round_trip(trained_vae, binary_mnist_subset[1][:20], tmp_path)
    assert isinstance(loaded, tfvae.VAE)


def test_api_shapes_and_reproducible_sampling(trained_vae, binary_mnist_subset):
    x = binary_mnist_subset[1][:7]
    posterior = trained_vae.posterior(x)
    assert posterior.batch_shape == (7,) and posterior.event_shape == (10,)
    assert set(trained_vae.encode(x)) == {"loc", "scale"}
    assert set(trained_vae.decode(tf.zeros([2, 10]))) == {"logits", "probs"}
    assert trained_vae.reconstruct(x).shape == (7, 784)
    samples = trained_vae.sample(6, seed=3)
    assert samples.shape == (6, 784) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(samples, trained_vae.sample(6, seed=3))
    assert not np.allclose(samples, trained_vae.sample(6, seed=4))
    draws = trained_vae.sample(6, seed=3, mean=False).numpy()
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert not np.allclose(trained_vae.sample(6), trained_vae.sample(6))  # generator advances


@pytest.mark.parametrize("x, message", [
    (np.zeros((4, 100), np.float32), r"\[batch, 784\]"),
    (np.zeros((784,), np.float32), r"\[batch, 784\]"),
    (np.zeros((4, 784), np.uint8), "float inputs"),
])
def test_bad_input_names_the_expected_shape(x, message):
    model = small_vae()
    for method in (model.elbo, model.encode, model.reconstruct, lambda v: model.log_prob(v, 2)):
        with pytest.raises(ValueError, match=message):
            method(x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(latent_dim=0), "latent_dim"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(architecture="resnet"), "architecture"),
    (dict(num_samples=0), "num_samples"),
    (dict(free_bits=0.5, num_samples=5), "free_bits"),
    (dict(likelihood_scale=0.5), "likelihood_scale"),
    (dict(architecture="conv", input_dim=100), "input_shape"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_vae(**kwargs)
