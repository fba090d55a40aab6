"""The residual conv builders of `tfvae.networks`: any H x W x C, the decoder's output is the
likelihood's parameters, a VAE of them trains on 8-bit images, saves and loads in safe mode."""
import keras
import numpy as np
import pytest

import tfvae
from helpers import assert_model_saving_round_trip
from tfvae import likelihoods, networks

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("image_shape, likelihood", [((28, 28, 1), "discretized_logistic"),
                                                     ((8, 12, 3), "discretized_logistic"),
                                                     ((16, 16, 3), "categorical256"),
                                                     ((12, 4, 2), "bernoulli")])
def test_the_pair_fits_any_image_shape_and_gives_the_parameters(image_shape, likelihood):
    part = likelihoods.get(likelihood)
    encoder, decoder = networks.residual_pair(image_shape, 6, part, widths=(8, 16))
    assert encoder.output_shape[0] is None and len(encoder.output_shape) == 2
    assert decoder.output_shape[1:] == part.params_shape(image_shape)
    model = tfvae.VAE(encoder=encoder, decoder=decoder, latent_dim=6, likelihood=part)
    assert model.input_shape == image_shape and not model.likelihood.project  # no projection


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_a_residual_vae_trains_on_8_bit_images_and_round_trips(mnist_arrays, tmp_path):
    x = mnist_arrays[0][:128].reshape(-1, 28, 28, 1)
    part = likelihoods.get("discretized_logistic", num_components=2)
    encoder, decoder = networks.residual_pair((28, 28, 1), 8, part, widths=(4, 8))
    model = tfvae.VAE(encoder=encoder, decoder=decoder, latent_dim=8, likelihood=part, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    loss = model.fit(x, batch_size=64, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    assert_model_saving_round_trip(model, x[:4], str(tmp_path))


def test_bad_shapes_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match="divisible by 4"):
        networks.residual_encoder((30, 28, 1), widths=(8, 16))
    with pytest.raises(ValueError, match=r"image_shape must be \(H, W, C\)"):
        networks.residual_encoder((784,))


def test_the_residual_shorthand_builds_them_from_the_config():
    model = tfvae.VAE(input_shape=(16, 16, 3), latent_dim=4, architecture="residual", hidden=(8, 16),
                      activation="swish", likelihood="categorical256")
    x = RNG.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    assert model.decode(np.zeros((2, 4), np.float32))["logits"].shape == (2, 16, 16, 3, 256)
    assert model.elbo(x).shape == (2,) and not model.likelihood.project
    clone = tfvae.VAE.from_config(model.get_config())
    clone.build((None, 16, 16, 3))
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    with pytest.raises(ValueError, match=r"image_shape must be \(H, W, C\)"):
        tfvae.VAE(input_shape=(784,), latent_dim=4, architecture="residual")
