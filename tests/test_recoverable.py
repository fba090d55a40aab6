"""Every mistake a user makes with a model is caught before Keras builds anything, with a message
naming what was wrong, and the same model then works once the input is fixed; options a model
would ignore are refused."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae

D = 784


def _binary(n=200, width=D, seed=0):
    return (np.random.default_rng(seed).random((n, width)) > 0.5).astype(np.float32)


def _models():
    return {
        "vae": lambda: tfvae.VAE(D, 4, hidden=(8,), seed=0),
        "ladder": lambda: tfvae.LadderVAE(D, latent_dims=(4, 2), hidden=(8, 8), seed=0),
        "hierarchical": lambda: tfvae.HierarchicalVAE(D, latent_dims=(4, 2), hidden=((8,), (8,)),
                                                      seed=0),
        "harmonium": lambda: tfvae.HarmoniumVAE(D, latent_dim=3, seed=0),
        "binary_vae": lambda: tfvae.VAE(D, latent_dim=3, latent="bernoulli", hidden=(8,), seed=0),
    }


MODELS = _models()


def _decode_width(model):
    """(the decode method of the top latent layer, the width of z it takes)."""
    return model.decode_top, model.latent_shape[0]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_decode_of_the_wrong_width_on_an_unbuilt_model_is_refused_and_builds_nothing(kind):
    model = MODELS[kind]()
    decode, width = _decode_width(model)
    with pytest.raises(ValueError, match=rf"expects z of shape \[batch, {width}\]\. Received shape \(2, {width + 1}\)"):
        decode(np.zeros((2, width + 1), np.float32))
    # the model was not configured at the wrong width: the right z works now, and so does x
    assert decode(np.zeros((2, width), np.float32))["probs"].shape == (2, D)
    assert model.reconstruct(_binary(2)).shape == (2, D)


@pytest.mark.parametrize("kind", ["harmonium", "vae", "ladder"])
def test_an_unbuilt_model_samples_and_decodes(kind):
    """decode, prior_sample and sample build the model from its declared widths first (the
    tied harmonium's W, u, v were missing: AttributeError 'W')."""
    model = MODELS[kind]()
    z = model.prior_sample(3, tf.constant([0, 1], tf.int32))
    assert z.shape[0] == 3
    assert MODELS[kind]().sample(3, seed=0).shape == (3, D)


def _fit(model, data, **kwargs):
    return model.fit(data, epochs=1, verbose=0, **kwargs)


BAD_DATASETS = {
    "unbatched": (lambda x: tf.data.Dataset.from_tensor_slices(x),
                  r"yields single examples of shape \(784,\), not batches: call \.batch"),
    "wrong width": (lambda x: tf.data.Dataset.from_tensor_slices(x[:, :700]).batch(50),
                    r"takes batches of shape \[batch, 784\]\. Received a dataset of shape \(None, 700\)"),
    "images": (lambda x: tf.data.Dataset.from_tensor_slices(x.reshape(-1, 28, 28)).batch(50),
               r"takes batches of shape \[batch, 784\]\. Received a dataset of shape \(None, 28, 28\)"),
    "integers": (lambda x: tf.data.Dataset.from_tensor_slices((x * 255).astype(np.uint8)).batch(50),
                 r"takes float batches\. Received dtype uint8"),
    "outside [0, 1]": (lambda x: tf.data.Dataset.from_tensor_slices(np.concatenate([x[:100], 2 * x[100:]])).batch(50),
                       r"Training data has a value outside \[0, 1\]"),
    "non-finite": (lambda x: tf.data.Dataset.from_tensor_slices(np.where(np.arange(len(x))[:, None] == 150, np.nan, x).astype(np.float32)).batch(50),
                   r"Training data has a non-finite value"),
}


@pytest.mark.parametrize("kind, case", [("vae", case) for case in sorted(BAD_DATASETS)]
                         + [("harmonium", "outside [0, 1]"), ("ladder", "wrong width")])
def test_a_failed_fit_names_the_problem_and_the_next_good_fit_trains(kind, case):
    """The dataset is refused with a message naming its problem (a value outside [0, 1] or a
    NaN in a later batch as that batch is read), and the same model then trains on good data:
    before, it stayed configured at the wrong shape or kept a broken train function."""
    make, message = BAD_DATASETS[case]
    x = _binary()
    model = MODELS[kind]()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)  # (XLA: slower here)
    with pytest.raises(ValueError, match=message):
        _fit(model, make(x))
    history = _fit(model, tf.data.Dataset.from_tensor_slices(x).batch(50),
                   validation_data=tf.data.Dataset.from_tensor_slices(x[:50]).batch(50))
    assert np.isfinite(history.history["loss"][0]) and "val_elbo" in history.history


def test_validation_data_is_checked_like_the_training_data():
    model = MODELS["vae"]()
    model.compile(optimizer="adam", jit_compile=False)
    x = _binary()
    with pytest.raises(ValueError, match=r"validation_data: the dataset yields single examples"):
        _fit(model, x, validation_data=tf.data.Dataset.from_tensor_slices(x))


@pytest.mark.parametrize("option", [dict(loss="mse"), dict(metrics=["mae"]),
                                    dict(weighted_metrics=["mae"]), dict(loss_weights=[1.0])])
def test_compile_refuses_a_loss_or_metrics_the_model_would_ignore_or_break_on(option):
    model = MODELS["vae"]()
    name = next(iter(option))
    with pytest.raises(ValueError, match=rf"compile it with the optimizer only.*Received: {name}="):
        model.compile(optimizer="adam", **option)
    model.compile(optimizer="adam", jit_compile=False)  # the refusal left nothing behind
    assert np.isfinite(_fit(model, _binary()).history["loss"][0])


def test_harmonium_refuses_free_bits_it_would_ignore():
    with pytest.raises(ValueError, match=r"does not apply free bits.*Received: free_bits=5\.0"):
        tfvae.HarmoniumVAE(D, latent_dim=3, free_bits=5.0)


def test_build_refuses_a_shape_other_than_the_declared_one():
    model = MODELS["vae"]()
    with pytest.raises(ValueError, match=r"built for inputs of shape \[batch, 784\]\. Received input_shape=\(784,\)"):
        model.build((784,))
    assert not model.built
    assert model.elbo(_binary(2)).shape == (2,)
