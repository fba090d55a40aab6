"""A residual convolutional VAE on CIFAR-10, 8-bit RGB: 32x32x3 pixels as their values 0..255,
a discretized logistic mixture of 10 components per pixel with the PixelCNN++ coupling of R, G
and B (Salimans et al. 2017), 128 Gaussian latents, `tfvae.networks` codecs with widths
(64, 128, 256) and one residual block per scale. Reported in bits/dim by IWAE on the test split,
beside the published hierarchical models: IAF-VAE 3.11 (Kingma et al. 2016), NVAE 2.91
(Vahdat & Kautz 2020).

A ready recipe for a machine that can download CIFAR-10 through tensorflow-datasets (the build
machine cannot; it trains here only on tfds.testing.mock_data, tests/test_cifar_recipe.py). Time
per epoch on the 2-core build machine (no GPU; lscpu flags avx2 avx512f avx512_bf16), measured
with random 8-bit images of the same shape, XLA on: 3.3 s per step of 64 images, so about 38
minutes per epoch of the 45,000 training images (5,000 are held out for validation); 8.1 M
parameters.

python zoo/build.py vae_cifar10          # or: tfvae train zoo/configs/vae_cifar10.py
python zoo/build.py lvae_cifar10         # the LadderVAE of zoo/configs/lvae_cifar10.py
"""


def get_config():
    return {
        "name": "vae_cifar10",
        "data": {"name": "tfds:cifar10", "binarize": None, "test_binarize": None,
                 "eight_bit": True, "flatten": False, "batch_size": 64, "test_batch_size": 100,
                 "validation_size": 5000},
        "model": {
            "class_name": "VAE",
            "input_shape": (32, 32, 3),
            "latent_dim": 128,
            "architecture": "residual",
            "hidden": (64, 128, 256),
            "activation": "swish",
            "likelihood": {"class_name": "tfvae>DiscretizedLogisticMixture",
                           "config": {"num_components": 10, "rgb_coupling": True}},
        },
        "optimizer": {"learning_rate": 1e-3, "decay_per_epoch": 0.99, "clipnorm": 100.0},
        "training": {"epochs": 500},
        "evaluation": {"iwae_samples": 1000},
    }
