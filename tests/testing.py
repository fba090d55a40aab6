"""The shared test harness: small models of every kind (MODELS), parts (PARTS), data a model's
likelihood takes (`data`), and `run_model_contract(model, tmp_path)`, the whole contract a
model keeps, for one model (a user's own part in a test file goes through it as the registered
ones do in tests/test_contract.py):

fit (two steps), evaluate, log_prob, sample, the .keras round trip under safe_mode with equal
outputs, and an export served by a TensorFlow-only process (tests/serving_client.py) that
answers what the Keras model computes.
"""
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import tfvae
from tfvae import export
from helpers import assert_float32_close, assert_model_saving_round_trip, assert_served_like_keras

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(0)


def _conv_block():
    return keras.Sequential([keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                             keras.layers.Flatten()])


# name -> (the model, what it declares it can do). Small: each is fit three times.
MODELS = {
    "vae": (lambda: tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(8,), seed=0),
            {"gaussian_posterior"}),
    "vae_conv_images": (lambda: tfvae.VAE(input_shape=(8, 8, 1), latent_dim=2, hidden=(8,),
                                          architecture="conv", seed=0), {"gaussian_posterior"}),
    "vae_own_networks_real_data": (
        lambda: tfvae.VAE(input_shape=(6,), latent_dim=2, likelihood="gaussian", seed=0,
                          encoder=keras.Sequential([keras.layers.Dense(8, activation="relu")]),
                          decoder=keras.Sequential([keras.layers.Dense(8, activation="relu")])),
        {"gaussian_posterior"}),
    "vae_gaussian_fixed_scale_exp_monte_carlo_kl": (
        lambda: tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(8,), likelihood="gaussian",
                          likelihood_scale=0.1, posterior_scale="exp", analytic_kl=False, seed=0),
        {"gaussian_posterior"}),
    "vae_vamp": (lambda: tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(8,), prior="vamp",
                                   prior_components=4, seed=0), {"gaussian_posterior"}),
    "vae_bernoulli_score_function": (
        lambda: tfvae.VAE(input_shape=(12,), latent_dim=30, latent="bernoulli", hidden=(8,),
                          estimator="score_function", baseline="learned", seed=0), set()),
    "vae_bernoulli_relaxed_latent_part": (  # (the latent as a part: Latent(...), not strings)
        lambda: tfvae.VAE(input_shape=(12,), hidden=(8,), seed=0,
                          latent=tfvae.latents.Latent(4, "bernoulli", "relaxed")),
        {"enumerable_latents"}),
    "ladder_mixture_prior": (
        lambda: tfvae.LadderVAE(input_shape=(12,), latent_dims=(4, 2), hidden=(8, 8),
                                batch_norm=True, prior="mixture", prior_components=3, seed=0), set()),
    "ladder_own_blocks_images": (
        lambda: tfvae.LadderVAE(input_shape=(8, 8, 1), latent_dims=(4, 2),
                                up_blocks=[_conv_block(), keras.layers.Dense(8, activation="relu")],
                                prior_blocks=[keras.layers.Dense(8, activation="relu")],
                                decoder=keras.Sequential([keras.layers.Dense(64),
                                                          keras.layers.Reshape((8, 8, 1))]),
                                seed=0), set()),
    "ladder_binary_relaxed_stop_gradient": (
        lambda: tfvae.LadderVAE(input_shape=(12,), latent_dims=(4, 2), hidden=(8, 8),
                                latent_families=("bernoulli", "gaussian"), estimator="relaxed",
                                conditional_kl_gradient="stop", seed=0), set()),
    "hierarchical_binary_top": (
        lambda: tfvae.HierarchicalVAE(input_shape=(12,), latent_dims=(4, 3), hidden=((8,), (8,)),
                                      latent_families=("gaussian", "bernoulli"), seed=0), set()),
    "hierarchical_binary_score_function_vamp": (
        lambda: tfvae.HierarchicalVAE(input_shape=(12,), latent_dims=(4, 3), hidden=((8,), (8,)),
                                      latent_families=("bernoulli", "gaussian"),
                                      estimator="score_function", prior="vamp",
                                      prior_components=4, seed=0), set()),
    "harmonium": (lambda: tfvae.HarmoniumVAE(input_shape=(12,), latent_dim=3, seed=0),
                  {"enumerable_latents"}),
    # every registered likelihood (tests/test_contract.py::test_every_registered_part_is_here)
    "vae_continuous_bernoulli": (
        lambda: tfvae.VAE(input_shape=(12,), latent_dim=2, hidden=(8,),
                          likelihood="continuous_bernoulli", seed=0), {"gaussian_posterior"}),
    "vae_discretized_logistic_rgb": (
        lambda: tfvae.VAE(input_shape=(4, 4, 3), latent_dim=2, hidden=(8,), seed=0,
                          likelihood=tfvae.likelihoods.get("discretized_logistic", num_components=2)),
        {"gaussian_posterior"}),
    "vae_categorical256": (
        lambda: tfvae.VAE(input_shape=(5,), latent_dim=2, hidden=(8,), likelihood="categorical256",
                          seed=0), {"gaussian_posterior"}),
    # the importance-weighted bound's gradient estimators (tests/test_iw_gradients.py)
    "ladder_dreg": (
        lambda: tfvae.LadderVAE(input_shape=(12,), latent_dims=(4, 2), hidden=(8, 8), num_samples=3,
                                iw_gradient="dreg", seed=0), set()),
    "vae_bernoulli_vimco": (
        lambda: tfvae.VAE(input_shape=(12,), latent_dim=5, latent="bernoulli", hidden=(8,),
                          estimator="score_function", num_samples=3, iw_gradient="vimco", seed=0),
        {"enumerable_latents"}),
    "ladder_gaussian_scale_per_element": (
        lambda: tfvae.LadderVAE(input_shape=(12,), latent_dims=(4, 2), hidden=(8, 8), seed=0,
                                likelihood=tfvae.likelihoods.get("gaussian", scale="per_element")),
        set()),
}

# name -> (the part, an input batch)
PARTS = {
    "latent_gaussian": (lambda: tfvae.latents.Latent(3, "gaussian", min_scale=1e-3),
                        lambda: RNG.normal(size=(4, 5)).astype("float32")),
    "latent_bernoulli_score_function": (
        lambda: tfvae.latents.Latent(3, "bernoulli", "score_function", "learned", 0.9),
        lambda: RNG.normal(size=(4, 5)).astype("float32")),
    "latent_bernoulli_relaxed_unprojected": (
        lambda: tfvae.latents.Latent(5, tfvae.families.Bernoulli(0.3), "relaxed", project=False),
        lambda: RNG.normal(size=(4, 5)).astype("float32")),
}


def data(model, n=16):
    """n examples of the model's input shape, of the kind its likelihood models."""
    shape, likelihood = (n,) + model.input_shape, model.likelihood
    if likelihood.accepts_integers:  # 8-bit values as they are
        return RNG.integers(0, 256, size=shape).astype("float32")
    if likelihood.binary:
        return (RNG.random(shape) < 0.4).astype("float32")
    if likelihood.data_range == (0.0, 1.0):  # grey levels
        return RNG.random(shape).astype("float32")
    return RNG.normal(size=shape).astype("float32")


def perturbed(model):
    """The model built, its float weights moved off their initial values (so a weight that is
    not saved or not served shows)."""
    model.build((None,) + model.input_shape)
    model.set_weights([w + 0.05 * RNG.normal(size=w.shape).astype(w.dtype) if w.dtype.kind == "f"
                       else w for w in model.get_weights()])
    return model


def serve(models, root):
    """Exports each model and serves them all in one TensorFlow-only process: (inputs, outputs)
    keyed "<index>/<signature>:3/<name>", the index of a model in `models`."""
    inputs, dirs = {}, []
    for i, model in enumerate(models):
        dirs.append(export.export_saved_model(model, os.path.join(root, f"model_{i}", "serving")))
        x = data(model, 3)  # (uint8 images as clients send them, for an 8-bit likelihood)
        x = x.astype(np.uint8) if model.likelihood.accepts_integers else x
        for signature in ("reconstruct", "encode", "log_prob"):
            inputs[f"{i}/{signature}:3/x"] = x
        inputs[f"{i}/decode:3/z"] = np.asarray(model.prior_sample(3, tf.constant([i, 7], tf.int32)))
        inputs[f"{i}/sample:3/seed"] = np.array([5, 6, 5], np.int64)
        for tag, seed in (("3", [3, 4]), ("3b", [3, 5])):
            inputs[f"{i}/log_prob_seeded:{tag}/x"] = x
            inputs[f"{i}/log_prob_seeded:{tag}/seed"] = np.array(seed, np.int64)
    np.savez(os.path.join(root, "inputs.npz"), **inputs)
    result = subprocess.run([sys.executable, os.path.join(HERE, "serving_client.py"),
                             os.path.join(root, "inputs.npz"), os.path.join(root, "outputs.npz"), *dirs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return inputs, dict(np.load(os.path.join(root, "outputs.npz")))


def fit_and_serve(makers, x, root, epochs=8):
    """Each model of `makers` (name -> constructor, in sorted order) trained briefly on x, then
    all served by one TensorFlow-only process: (models, loss histories, inputs, outputs)."""
    models, histories = {}, {}
    for name in sorted(makers):
        model = models[name] = makers[name]()
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
        histories[name] = model.fit(x, batch_size=64, epochs=epochs, verbose=0).history["loss"]
    inputs, outputs = serve([models[name] for name in sorted(makers)], str(root))
    return models, histories, inputs, outputs


def assert_serves_like_keras(model, inputs, outputs, index):
    """The served signatures of model `index` answer what the Keras model computes: every
    signature at float32 tolerance, the ELBO at the same seed, log_prob within Monte Carlo error
    of Keras' own estimates, and samples by seed."""
    assert_served_like_keras(model, inputs, outputs, index, 3)
    x = inputs[f"{index}/log_prob:3/x"]
    assert_float32_close(outputs[f"{index}/log_prob:3/elbo"],
                         model.loss_terms(x, 1, seed=tf.constant([0, 2], tf.int32))["elbo"], "elbo")
    # log_prob within Monte Carlo error of Keras' k = 100 estimates at other seeds (the median
    # over the examples, in units of their spread: a wrong k or normalization moves them all)
    others = np.stack([model.log_prob(x, 100, seed=s) for s in range(10, 14)])
    spread = np.abs(outputs[f"{index}/log_prob:3/log_prob"] - others.mean(0)) / (others.std(0) + 0.1)
    assert np.median(spread) < 6
    if model.likelihood.accepts_integers:  # 8-bit: uint8 images, round(mean), and the mean
        mean = outputs[f"{index}/sample:3/x_mean"]
        for signature, means in (("sample", mean), ("reconstruct", outputs[f"{index}/reconstruct:3/x_mean"])):
            image = outputs[f"{index}/{signature}:3/x"]
            assert image.dtype == np.uint8
            assert np.abs(image.astype(np.float64) - np.clip(means, 0, 255)).max() <= 0.5 + 1e-3
        bits = -outputs[f"{index}/log_prob:3/log_prob"] / (model.input_dim * np.log(2.0))
        np.testing.assert_allclose(outputs[f"{index}/log_prob:3/bits_per_dim"], bits, rtol=1e-5)
    else:
        mean = outputs[f"{index}/sample:3/x"]
    assert mean.shape == (3,) + model.input_shape and mean.dtype == np.float32
    np.testing.assert_allclose(mean[0], mean[2])              # the same seed, the same sample
    assert np.abs(mean[0] - mean[1]).max() > 1e-4             # another seed, another sample
    assert_float32_close(mean[0], model.sample(1, seed=tf.constant([5, 0], tf.int64))[0], "sample")


def run_model_contract(model, tmp_path, jit_compile=False):
    """Every check of the contract on one (unbuilt or built) model; `tmp_path` a scratch folder."""
    x = data(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    model.build((None,) + model.input_shape)
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0]) and model.optimizer.iterations.numpy() == 2
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]
    assert np.all(np.isfinite(list(model.evaluate(x, batch_size=8, verbose=0, return_dict=True).values())))
    assert model.log_prob(x[:4], num_samples=8, seed=0).shape == (4,)
    assert tuple(model.sample(2, seed=0).shape) == (2,) + model.input_shape
    assert_model_saving_round_trip(model, x[:8], tmp_path)
    inputs, outputs = serve([model], str(tmp_path))
    assert_serves_like_keras(model, inputs, outputs, 0)
