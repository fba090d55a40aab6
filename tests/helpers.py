"""Test helpers shared by the test files."""
import os

import keras
import numpy as np


def assert_layer_round_trip(layer, inputs):
    """get_config -> from_config reproduces the config, and with the same weights the outputs."""
    outputs = layer(inputs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    for other in (clone, restored):
        other(inputs)
        other.set_weights(layer.get_weights())
        other_outputs = other(inputs)
        for name in outputs:
            np.testing.assert_allclose(np.asarray(other_outputs[name]), np.asarray(outputs[name]),
                                       rtol=1e-6, atol=1e-6)


def assert_model_saving_round_trip(model, x, tmp_path):
    """`.keras` save -> load (safe_mode) gives the same config and outputs."""
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    for method in ("reconstruct",):
        np.testing.assert_allclose(getattr(loaded, method)(x), getattr(model, method)(x), rtol=1e-5, atol=1e-6)
    for name, value in model.encode(x).items():
        np.testing.assert_allclose(loaded.encode(x)[name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.elbo(x, seed=3), model.elbo(x, seed=3), rtol=1e-5)
    np.testing.assert_allclose(loaded.log_prob(x, 20, seed=3), model.log_prob(x, 20, seed=3), rtol=1e-5)
    np.testing.assert_allclose(loaded.sample(4, seed=5), model.sample(4, seed=5), rtol=1e-5, atol=1e-6)
    return loaded
