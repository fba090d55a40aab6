"""Test helpers shared by the test files."""
import os

import keras
import numpy as np
import tensorflow as tf


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


def assert_served_like_keras(model, inputs, outputs, index, tag):
    """An export's reconstruct, encode, decode and log_prob answers (from tests/serving_client.py,
    keys `<index>/<signature>:<tag>/<name>`) equal the Keras model's on the same inputs; log_prob
    is the export's k = 100 IWAE estimate at its fixed seed, computed the same way in Keras."""
    close = dict(rtol=1e-5, atol=1e-6)
    decode = model.decode_top if hasattr(model, "decode_top") else model.decode
    x = inputs[f"{index}/reconstruct:{tag}/x"]
    np.testing.assert_allclose(outputs[f"{index}/reconstruct:{tag}/x_mean"], model.reconstruct(x), **close)
    x = inputs[f"{index}/encode:{tag}/x"]
    for key, value in model.encode(x).items():
        np.testing.assert_allclose(outputs[f"{index}/encode:{tag}/{key}"], value, **close)
    for key, value in decode(inputs[f"{index}/decode:{tag}/z"]).items():
        np.testing.assert_allclose(outputs[f"{index}/decode:{tag}/{key}"], value, **close)
    x = inputs[f"{index}/log_prob:{tag}/x"]
    same_seed = model._log_weight_logsumexp(x, 100, tf.constant([0, 1], tf.int32)) - np.log(100)
    np.testing.assert_allclose(outputs[f"{index}/log_prob:{tag}/log_prob"], same_seed, rtol=1e-5)
