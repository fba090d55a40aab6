"""Sample and class weights in `fit` and `evaluate`: a weight of 0 leaves an example out, an
integer weight n counts it n times.

The model is small enough to be exact: its decoder is a frozen Dense layer with a zero kernel,
so p(x|z) does not depend on the posterior's draw and the objective (log p(x|z) - KL, the KL in
closed form) is a deterministic function of the encoder's weights. Full-batch SGD on weighted
data must then match SGD on the subset or on the repeated examples to float32 rounding.
"""
import keras
import numpy as np
import pytest

import tfvae

D, N = 6, 12


def _data():
    rng = np.random.default_rng(0)
    x = (rng.random((N, D)) < 0.4).astype(np.float32)
    labels = np.arange(N) % 3
    return x, labels


def _model():
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential([keras.Input((2,)),
                                keras.layers.Dense(D, kernel_initializer="zeros",
                                                   bias_initializer=keras.initializers.Constant(0.7))])
    decoder.trainable = False  # p(x|z) = Bernoulli(sigmoid(0.7)) for every z
    model = tfvae.VAE(input_shape=(D,), latent_dim=2, hidden=(8,), decoder=decoder, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False)
    return model


def _fit(x, *args, **kwargs):
    model = _model()
    history = model.fit(x, *args, batch_size=len(x), epochs=3, shuffle=False, verbose=0, **kwargs)
    return history.history, model.get_weights()


def _assert_same_run(a, b):
    (history_a, weights_a), (history_b, weights_b) = a, b
    for name in ("loss", "elbo", "kl", "distortion"):
        np.testing.assert_allclose(history_a[name], history_b[name], rtol=2e-5, err_msg=name)
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_allclose(wa, wb, rtol=2e-5, atol=1e-6)


def test_zero_weights_leave_examples_out_of_fit():
    x, _ = _data()
    keep = np.arange(N) % 2 == 0
    weighted = _fit(x, sample_weight=keep.astype(np.float32))
    _assert_same_run(weighted, _fit(x[keep]))
    # and the weights did something: the unweighted run differs
    assert not np.allclose(weighted[0]["loss"], _fit(x)[0]["loss"], rtol=1e-4)


def test_integer_weights_equal_repetition_in_fit():
    x, _ = _data()
    counts = np.arange(N) % 3 + 1
    _assert_same_run(_fit(x, sample_weight=counts.astype(np.float32)), _fit(np.repeat(x, counts, 0)))


def test_class_weights_with_labels_weight_the_examples_of_each_class():
    x, labels = _data()
    _assert_same_run(_fit(x, labels, class_weight={0: 0.0, 1: 1.0, 2: 2.0}),
                     _fit(np.repeat(x, labels, 0)))


def test_weighted_validation_data_and_evaluate():
    x, _ = _data()
    counts = np.arange(N) % 3 + 1
    model = _model()
    history = model.fit(x, batch_size=N, epochs=1, verbose=0,
                        validation_data=(x, None, counts.astype(np.float32)))
    repeated = model.evaluate(np.repeat(x, counts, 0), batch_size=3 * N, return_dict=True, verbose=0)
    weighted = model.evaluate(x, sample_weight=counts.astype(np.float32), batch_size=N,
                              return_dict=True, verbose=0)
    for name in ("elbo", "kl", "distortion"):
        assert weighted[name] == pytest.approx(repeated[name], rel=1e-5)
        assert history.history[f"val_{name}"][0] == pytest.approx(repeated[name], rel=1e-5)
    plain = model.evaluate(x, batch_size=N, return_dict=True, verbose=0)
    assert plain["elbo"] != pytest.approx(weighted["elbo"], rel=1e-4)


def test_class_weight_without_labels_is_refused():
    x, _ = _data()
    with pytest.raises(ValueError, match="pass the labels as y"):
        _model().fit(x, class_weight={0: 1.0}, verbose=0)
