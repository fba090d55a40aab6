"""Bad input gets a clear error naming what was expected and what was received; extreme but
valid input gives finite losses and gradients. Property-based (hypothesis)."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfvae
from tfvae import data, distributions, evaluation

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
D = 784
MODELS = {
    "vae": tfvae.VAE(D, 4, hidden=(8,), seed=0),
    "ladder": tfvae.LadderVAE(D, latent_dims=(4, 2), hidden=(8, 8), seed=0),
    "harmonium": tfvae.HarmoniumVAE(D, latent_dim=3, seed=0),
}
METHODS = ("elbo", "encode", "reconstruct", "log_prob")


def _call(model, method, x):
    fn = getattr(model, method)
    return fn(x, num_samples=2) if method == "log_prob" else fn(x)


@SETTINGS
@given(kind=st.sampled_from(sorted(MODELS)), method=st.sampled_from(METHODS),
       shape=st.one_of(
           st.tuples(st.integers(1, 4), st.integers(1, 1000).filter(lambda w: w != D)),  # width
           st.tuples(st.integers(1, 1000)),                                               # rank 1
           st.tuples(st.integers(1, 3), st.just(28), st.just(28))))                      # rank 3
def test_wrong_shapes_name_the_expected_and_received_shape(kind, method, shape):
    with pytest.raises(ValueError, match=r"expects inputs of shape \[batch, 784\]\. Received shape"):
        _call(MODELS[kind], method, np.zeros(shape, np.float32))


@SETTINGS
@given(kind=st.sampled_from(sorted(MODELS)), method=st.sampled_from(METHODS),
       dtype=st.sampled_from([np.int32, np.int64, np.uint8, np.bool_]))
def test_integer_inputs_name_the_dtype_and_the_conversion(kind, method, dtype):
    with pytest.raises(ValueError, match=r"float inputs in \[0, 1\].*Received dtype .*astype"):
        _call(MODELS[kind], method, np.zeros((2, D), dtype))


@SETTINGS
@given(rows=st.integers(1, 40), data_=st.data(),
       bad=st.sampled_from([np.nan, np.inf, -np.inf, 1.5, -0.25]))
def test_fit_rejects_bad_training_data_naming_the_first_bad_example(rows, data_, bad):
    x = np.random.default_rng(rows).random((rows, D)).astype(np.float32)
    row, column = data_.draw(st.integers(0, rows - 1)), data_.draw(st.integers(0, D - 1))
    x[row, column] = bad
    with pytest.raises(ValueError, match=rf"example {row} has .* x\[{row}, {column}\]"):
        MODELS["vae"].fit(x, epochs=1, verbose=0)


@SETTINGS
@given(logit=st.floats(-1e4, 1e4), x=st.sampled_from([0.0, 1.0]))
def test_bernoulli_log_prob_and_gradient_stay_finite_for_extreme_logits(logit, x):
    layer = distributions.Bernoulli(3, project=False)
    logits = tf.Variable(tf.fill([2, 3], float(logit)))
    with tf.GradientTape() as tape:
        log_p = layer.log_prob(layer.params_from_raw(logits), tf.fill([2, 3], x))
    grad = tape.gradient(log_p, logits)
    assert np.all(np.isfinite(log_p.numpy())) and np.all(np.isfinite(grad.numpy()))
    assert np.all(log_p.numpy() <= 0)


@SETTINGS
@given(raw_scale=st.floats(-1e4, 30.0), loc=st.floats(-1e3, 1e3), z=st.floats(-1e3, 1e3))
def test_gaussian_log_prob_and_gradient_stay_finite_down_to_the_scale_floor(raw_scale, loc, z):
    layer = distributions.DiagonalGaussian(2, project=False)
    raw = tf.Variable([[loc, loc, raw_scale, raw_scale]])
    with tf.GradientTape() as tape:
        params = layer.params_from_raw(raw)
        log_q = layer.distribution(params).log_prob(tf.constant([[z, z]]))
    grad = tape.gradient(log_q, raw)
    assert params["scale"].numpy().min() >= layer.min_scale
    assert np.isfinite(log_q.numpy()).all() and np.isfinite(grad.numpy()).all()


@SETTINGS
@given(n=st.integers(1, 50), batch=st.integers(1, 64), binarize=st.sampled_from([None, "fixed", "dynamic"]))
def test_data_pipeline_yields_every_image_once_in_range(n, batch, binarize):
    images = np.random.default_rng(n).integers(0, 256, size=(n, D), dtype=np.uint8)
    ds = data._pipeline(images, np.arange(n, dtype=np.int32), binarize=binarize, batch_size=batch,
                        shuffle=True, seed=0, with_labels=True, drop_remainder=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert sorted(y.tolist()) == list(range(n)) and x.shape == (n, D) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    if binarize:
        assert set(np.unique(x)) <= {0.0, 1.0}
    else:
        np.testing.assert_allclose(x, images[y] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="cifar10"), "Unknown dataset"),
    (dict(name="mnist", split="dev"), "Unknown split"),
    (dict(name="mnist", binarize="otsu"), "binarize"),
    (dict(name="mnist", batch_size=0), "batch_size must be a positive integer"),
    (dict(name="mnist", split="validation"), "validation_size > 0"),
])
def test_data_load_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(**kwargs)


X_GOOD = (np.random.default_rng(7).random((40, D)) < 0.3).astype(np.float32)


def _with(value, row=3, column=5):
    x = X_GOOD.copy()
    x[row, column] = value
    return x


@pytest.mark.parametrize("validation, message", [
    ((_with(255.0),), r"Validation data example 3 has a value outside \[0, 1\].*x\[3, 5\] = 255"),
    ((_with(np.nan), None), r"Validation data example 3 has a non-finite value"),
    ((X_GOOD[:, :700],), r"expects inputs of shape \[batch, 784\]\. Received shape \(40, 700\)"),
    (tf.data.Dataset.from_tensor_slices(_with(-1.0)).batch(8),
     r"Validation data has a value outside \[0, 1\]"),
])
def test_bad_validation_data_is_refused_naming_it(validation, message):
    """Keras' (x,) and (x, y) validation tuples are checked like x (they used to pass: one
    epoch trained, then a positive 'ELBO', NaNs or a shape error deep in the graph)."""
    model = tfvae.VAE(D, 4, hidden=(8,), seed=0)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model.fit(X_GOOD, validation_data=validation, epochs=1, verbose=0)


def test_evaluate_elbo_log_prob_and_iwae_nll_refuse_data_outside_the_likelihood():
    model = tfvae.VAE(D, 4, hidden=(8,), seed=0)
    model.compile(optimizer="adam")
    scaled = X_GOOD * 255.0
    with pytest.raises(ValueError, match=r"Evaluation data example 0 has a value outside \[0, 1\]"):
        model.evaluate(scaled, verbose=0)
    with pytest.raises(ValueError, match=r"Evaluation data has a value outside \[0, 1\]"):
        model.evaluate(tf.data.Dataset.from_tensor_slices(scaled).batch(8), verbose=0)
    for method in (model.elbo, lambda x: model.log_prob(x, num_samples=2)):
        with pytest.raises(ValueError, match=r"Data example 0 has a value outside \[0, 1\]"):
            method(scaled)
    with pytest.raises(ValueError, match=r"float inputs in \[0, 1\].*Received dtype uint8"):
        evaluation.iwae_nll(model, scaled.astype(np.uint8), num_samples=2, verbose=0)  # (was cast)
    result = evaluation.iwae_nll(model, np.concatenate([X_GOOD] * 6), num_samples=2, verbose=0)
    assert result["num_examples"] == 240 and np.isfinite(result["nll"])


def test_a_gaussian_model_asks_for_floats_without_the_unit_interval():
    model = tfvae.VAE(D, 4, hidden=(8,), likelihood="gaussian", seed=0)
    with pytest.raises(ValueError, match=r"expects float inputs of shape \[batch, 784\]\. "
                                         r"Received dtype int32; convert it with x.astype"):
        model.elbo(np.zeros((2, D), np.int32))
    # any real value is data (integers in 0..255 are 8-bit pixels: tests/test_honest_outputs.py)
    assert np.isfinite(model.elbo(X_GOOD * 255.0 - 0.5).numpy()).all()


def test_a_dataset_of_unknown_shape_is_told_how_to_give_it():
    def identity(batch):
        return tf.numpy_function(lambda a: a, [batch], tf.float32)

    unknown = tf.data.Dataset.from_tensor_slices(X_GOOD).batch(8).map(identity)
    model = tfvae.VAE(D, 4, hidden=(8,), seed=0)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"unknown shape .*tf.ensure_shape\(x, \[None, 784\]\)"):
        model.fit(unknown, epochs=1, verbose=0)
    model.fit(unknown.map(lambda x: tf.ensure_shape(x, [None, D])), epochs=1, verbose=0)


def test_every_evaluation_entry_point_checks_the_data():
    model = tfvae.VAE(D, 4, hidden=(8,), seed=0)
    images = (X_GOOD * 255).astype(np.uint8)
    for measure in (lambda x: evaluation.active_units(model, x),
                    lambda x: evaluation.amortization_gap(model, x[:2], steps=1, num_samples=2,
                                                          elbo_samples=2),
                    lambda x: evaluation.gradient_variance(model, x[:4], num_draws=2)):
        with pytest.raises(ValueError, match=r"float inputs in \[0, 1\].*Received dtype uint8"):
            measure(images)
        with pytest.raises(ValueError, match=r"Data example 0 has a value outside \[0, 1\]"):
            measure(X_GOOD * 255.0)
