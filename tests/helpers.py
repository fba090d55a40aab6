"""Test helpers shared by the test files."""
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf


# Two float32 programs that compute the same quantity (Keras eagerly vs a SavedModel under XLA,
# oneDNN vs Eigen kernels, AVX2 vs AVX-512) add their terms in different orders, and each order
# rounds differently. Reordering a float32 sum of n terms moves it by about sqrt(n) eps of the
# terms' magnitude; a codec has up to three layers of n <= 784, then a sigmoid or softplus:
# about 3 sqrt(784) = 84 eps of the output's magnitude, so the tolerance is 128 eps times the
# largest |value| of the array (not of each element: an element near 0 is a difference of large
# terms, with the same absolute error). Measured on an AVX-512 CPU for the ten shipped zoo
# entries: at most 14 eps (SavedModel vs Keras) and 4 eps (recorded at publication vs now).
FLOAT32_EPS = float(np.finfo(np.float32).eps)
CROSS_PROGRAM_EPS = 128


def assert_float32_close(actual, expected, err_msg="", terms=1):
    """`actual` equals `expected` up to float32 rounding of the compared quantity, as computed by
    another program: |actual - expected| <= 128 eps sqrt(terms) max|expected| (see
    CROSS_PROGRAM_EPS). `terms`: for a sum of that many separately computed terms whose
    magnitudes exceed the sum's (a log-weight: D pixel terms and log q - log p per latent
    unit, which cancel), its rounding grows as sqrt(terms) of them."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected))) * math.sqrt(terms) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=0, err_msg=err_msg,
                               atol=CROSS_PROGRAM_EPS * FLOAT32_EPS * max(scale, np.finfo(np.float32).tiny))


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
    # as JSON, the form a .keras file stores (a nested network's build shapes come back as lists)
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))
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
    x = inputs[f"{index}/reconstruct:{tag}/x"]
    assert_float32_close(outputs[f"{index}/reconstruct:{tag}/x_mean"], model.reconstruct(x), "x_mean")
    x = inputs[f"{index}/encode:{tag}/x"]
    for key, value in model.encode(x).items():
        assert_float32_close(outputs[f"{index}/encode:{tag}/{key}"], value, f"encode/{key}")
    for key, value in model.decode_top(inputs[f"{index}/decode:{tag}/z"]).items():
        assert_float32_close(outputs[f"{index}/decode:{tag}/{key}"], value, f"decode/{key}")
    x = inputs[f"{index}/log_prob:{tag}/x"]
    same_seed = model.log_weight_logsumexp(x, 100, tf.constant([0, 1], tf.int32)) - np.log(100)
    # (measured: lvae_mnist's shipped export vs Keras after the families refactor, 180 eps of
    # |log p| = 0.002 nats; its log-weights sum 784 + 2 x 124 terms)
    terms = model.input_dim + 2 * sum(int(np.prod(m.shape[1:])) for m in model.latent_means(x))
    assert_float32_close(outputs[f"{index}/log_prob:{tag}/log_prob"], same_seed, "log_prob", terms=terms)
    seeded = [key for key in inputs if key.startswith(f"{index}/log_prob_seeded:") and key.endswith("/seed")]
    in_keras = []
    for key in seeded:  # the client's seed: the same k = 100 estimate at that seed
        call = key[:-len("/seed")]
        at_seed = model.log_weight_logsumexp(inputs[f"{call}/x"], 100,
                                             tf.constant(inputs[key], tf.int32)) - np.log(100)
        assert_float32_close(outputs[f"{call}/log_prob"], at_seed, f"{call}", terms=terms)
        in_keras.append(np.asarray(at_seed))
    if len(seeded) > 1 and np.abs(in_keras[0] - in_keras[1]).max() > 1e-2:
        # another seed, other draws (a harmonium's posterior is exact: every seed gives log p(x))
        first, second = (outputs[f"{key[:-len('/seed')]}/log_prob"] for key in seeded[:2])
        assert np.abs(first - second).max() > 1e-3
