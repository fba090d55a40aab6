"""One contract for every model and every part: a new model class, option or part is one entry
of MODELS or PARTS, and all of these checks run on it.

Models: the config round trip; a 2-step `fit` eagerly, as a tf.function and under XLA; the
.keras round trip with equal outputs; the declared surface (models/base.py) with the shapes it
declares; an export served in a TensorFlow-only process (tests/serving_client.py) answering
what the Keras model computes. Parts: the config round trip with equal outputs.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import export
from helpers import (assert_float32_close, assert_layer_round_trip, assert_model_saving_round_trip,
                     assert_served_like_keras)

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


def test_every_registered_part_is_here():
    """A new model class, likelihood or prior is not done until an entry of MODELS uses it."""
    built = [make() for make, _ in MODELS.values()]
    assert {type(m).__name__ for m in built} >= {"VAE", "LadderVAE", "HierarchicalVAE", "HarmoniumVAE"}
    assert {m.likelihood.kind for m in built} >= set(tfvae.likelihoods.names())
    priors = {cls for cls in vars(tfvae.priors).values()
              if isinstance(cls, type) and issubclass(cls, tfvae.priors.Prior)
              and cls is not tfvae.priors.Prior and not cls.__name__.startswith("_")}
    assert {type(m.prior_layer) for m in built if m.prior_layer is not None} >= priors


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_config_round_trips(name):
    model = MODELS[name][0]()
    config = json.loads(json.dumps(model.get_config()))
    clone = type(model).from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config


# XLA for a Gaussian conv VAE, a score-function Bernoulli VAE and a binary hierarchy in the
# default run; the other models' XLA fits (5-13 s each) in the slow step
XLA_BY_DEFAULT = ("vae_conv_images", "vae_bernoulli_score_function", "hierarchical_binary_top")


def _mode(name, mode):
    slow = mode == "xla" and name not in XLA_BY_DEFAULT
    return pytest.param(name, mode, marks=[pytest.mark.slow] if slow else [], id=f"{name}-{mode}")


@pytest.mark.parametrize("name, mode", [_mode(name, mode) for name in sorted(MODELS)
                                        for mode in ("eager", "graph", "xla")])
def test_two_steps_of_fit_train(name, mode):
    model = MODELS[name][0]()
    x = data(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=mode == "eager",
                  jit_compile=mode == "xla")
    model.build((None,) + model.input_shape)
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 2
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_keras_file_round_trips_with_equal_outputs(name, tmp_path):
    model = MODELS[name][0]()
    x = data(model, 8)
    model.build((None,) + model.input_shape)
    model.set_weights([w + 0.05 * RNG.normal(size=w.shape).astype(w.dtype) if w.dtype.kind == "f"
                       else w for w in model.get_weights()])  # (off their initial values)
    assert_model_saving_round_trip(model, x, tmp_path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_declared_surface_has_the_shapes_it_declares(name):
    """What evaluation, export, train and the CLI rely on (no caller probes classes)."""
    make, capabilities = MODELS[name]
    model = make()
    x = data(model, 5)
    assert set(model.capabilities) == capabilities
    z = model.prior_sample(4, tf.constant([0, 1], tf.int32))
    assert tuple(z.shape) == (4,) + model.latent_shape
    assert model.likelihood_layer.mean(model.decode_top(z)).shape == (4,) + model.input_shape
    assert model.reconstruct(x).shape == (5,) + model.input_shape
    assert model.check_input(x).dtype == tf.float32
    assert model.log_weight_logsumexp(x, 3, tf.constant([0, 1], tf.int32)).shape == (5,)
    assert model.elbo(x, seed=1).shape == (5,)
    assert model.encoder_weights() and all(w.trainable for w in model.encoder_weights())
    assert model.initialization_examples == (4 if name.endswith("vamp") else 0)
    latents = model.latent_layers()
    assert latents and all(isinstance(latent, tfvae.latents.Latent) for latent in latents)
    assert model.estimator in {latent.estimator for latent in latents} | {"pathwise", "mixed"}
    # call / predict: the reconstruction and q(z|x)'s parameters, not the objective's terms
    predicted = model.predict(x, verbose=0)
    assert set(predicted) == set(model.encode(x)) | {"reconstruction"}
    np.testing.assert_allclose(predicted["reconstruction"], model.reconstruct(x), rtol=1e-5, atol=1e-6)
    for key, value in model.encode(x).items():
        np.testing.assert_allclose(predicted[key], value, rtol=1e-5, atol=1e-6)
    lines = []
    model.summary(print_fn=lines.append)  # every part, one row each, with its parameters
    for layer in model.layers:
        assert any(line.startswith(layer.name + " ") for line in lines), (layer.name, lines)
    assert lines[-1] == f"total: {model.count_params():,} parameters"


# The models in two halves, each exported and served on its own worker (xdist groups), so the
# two halves' exports run in parallel.
HALVES = (sorted(MODELS)[::2], sorted(MODELS)[1::2])


def _served(half, tmp_path_factory):
    """Every model of a half exported, and all of them served by one TensorFlow-only process."""
    root = tmp_path_factory.mktemp("contract_exports")
    models, inputs, dirs = {}, {}, []
    for i, name in enumerate(HALVES[half]):
        model = models[name] = MODELS[name][0]()
        model.build((None,) + model.input_shape)
        model.set_weights([w + 0.05 * RNG.normal(size=w.shape).astype(w.dtype) if w.dtype.kind == "f"
                           else w for w in model.get_weights()])
        dirs.append(export.export_saved_model(model, os.path.join(root, name, "serving")))
        for signature in ("reconstruct", "encode", "log_prob"):
            inputs[f"{i}/{signature}:3/x"] = data(model, 3)
        inputs[f"{i}/decode:3/z"] = np.asarray(model.prior_sample(3, tf.constant([i, 7], tf.int32)))
        inputs[f"{i}/sample:3/seed"] = np.array([5, 6, 5], np.int64)
    np.savez(os.path.join(root, "inputs.npz"), **inputs)
    result = subprocess.run([sys.executable, os.path.join(HERE, "serving_client.py"),
                             os.path.join(root, "inputs.npz"), os.path.join(root, "outputs.npz"), *dirs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return models, inputs, dict(np.load(os.path.join(root, "outputs.npz")))


@pytest.fixture(scope="session")
def served_half0(tmp_path_factory):
    return _served(0, tmp_path_factory)


@pytest.fixture(scope="session")
def served_half1(tmp_path_factory):
    return _served(1, tmp_path_factory)


@pytest.mark.parametrize("half, index, name", [
    pytest.param(half, index, name, marks=pytest.mark.xdist_group(f"contract_export_{half}"),
                 id=f"{index}-{name}")
    for half, names in enumerate(HALVES) for index, name in enumerate(names)])
def test_the_export_serves_what_the_keras_model_computes(request, half, index, name):
    models, inputs, outputs = request.getfixturevalue(f"served_half{half}")
    model = models[name]
    assert_served_like_keras(model, inputs, outputs, index, 3)
    x = inputs[f"{index}/log_prob:3/x"]
    assert_float32_close(outputs[f"{index}/log_prob:3/elbo"],
                         model.loss_terms(x, 1, seed=tf.constant([0, 2], tf.int32))["elbo"], "elbo")
    # log_prob within Monte Carlo error of Keras' k = 100 estimates at other seeds (the median
    # over the examples, in units of their spread: a wrong k or normalization moves them all)
    others = np.stack([model.log_prob(x, 100, seed=s) for s in range(10, 14)])
    spread = np.abs(outputs[f"{index}/log_prob:3/log_prob"] - others.mean(0)) / (others.std(0) + 0.1)
    assert np.median(spread) < 6
    samples = outputs[f"{index}/sample:3/x"]
    assert samples.shape == (3,) + model.input_shape
    np.testing.assert_allclose(samples[0], samples[2])        # the same seed, the same sample
    assert np.abs(samples[0] - samples[1]).max() > 1e-4       # another seed, another sample
    assert_float32_close(samples[0], model.sample(1, seed=tf.constant([5, 0], tf.int64))[0], "sample")


@pytest.mark.parametrize("name", sorted(PARTS))
def test_a_part_round_trips_its_config_and_outputs(name):
    make, inputs = PARTS[name]
    layer = make()
    x = inputs()
    layer.build(x.shape)
    assert_layer_round_trip(layer, x)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
