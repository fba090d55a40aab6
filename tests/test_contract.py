"""One contract for every model and every part: a new model class, option or part is one entry
of MODELS or PARTS, and all of these checks run on it.

Models: the config round trip; a 2-step `fit` eagerly, as a tf.function and under XLA; the
.keras round trip with equal outputs; the declared surface (models/base.py) with the shapes it
declares; an export served in a TensorFlow-only process (tests/serving_client.py) answering
what the Keras model computes. Parts: the config round trip with equal outputs. The models,
parts and checks are tests/testing.py's (`run_model_contract` runs them on one model).
"""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from helpers import assert_layer_round_trip, assert_model_saving_round_trip
from testing import MODELS, PARTS, assert_serves_like_keras, data, perturbed, serve


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
    model = perturbed(MODELS[name][0]())
    assert_model_saving_round_trip(model, data(model, 8), tmp_path)


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
    np.testing.assert_allclose(predicted["reconstruction"], model.reconstruct(x), rtol=1e-4, atol=1e-5)
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
    models = {name: perturbed(MODELS[name][0]()) for name in HALVES[half]}
    inputs, outputs = serve(list(models.values()), str(tmp_path_factory.mktemp("contract_exports")))
    return models, inputs, outputs


@pytest.fixture(scope="session")
def served_half0(tmp_path_factory):
    return _served(0, tmp_path_factory)


@pytest.fixture(scope="session")
def served_half1(tmp_path_factory):
    return _served(1, tmp_path_factory)


@pytest.mark.parametrize("half, index, name", [
    pytest.param(half, index, name, marks=[pytest.mark.xdist_group(f"contract_export_{half}"),
                                           pytest.mark.slow],  # (76 s: the slow step)
                 id=f"{index}-{name}")
    for half, names in enumerate(HALVES) for index, name in enumerate(names)])
def test_the_export_serves_what_the_keras_model_computes(request, half, index, name):
    models, inputs, outputs = request.getfixturevalue(f"served_half{half}")
    assert_serves_like_keras(models[name], inputs, outputs, index)


@pytest.mark.parametrize("name", sorted(PARTS))
def test_a_part_round_trips_its_config_and_outputs(name):
    make, inputs = PARTS[name]
    layer = make()
    x = inputs()
    layer.build(x.shape)
    assert_layer_round_trip(layer, x)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
