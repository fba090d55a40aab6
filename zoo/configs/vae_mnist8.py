"""A residual convolutional VAE on 8-bit MNIST: 28x28x1 pixels as their values 0..255 (not
binarized, not divided by 255), a discretized logistic mixture of 5 components per pixel
(PixelCNN++, Salimans et al. 2017), 32 Gaussian latents, `tfvae.networks` codecs with widths
(32, 64). Reported in bits/dim by IWAE (k = 1000) on the test split, beside lossless
compressors on the same images (benchmarks/compressors.py: lzma -9e 1.38 bits/dim).

python zoo/build.py vae_mnist8 --num-samples 1000
"""


def get_config():
    return {
        "name": "vae_mnist8",
        "data": {"name": "mnist", "binarize": None, "test_binarize": None, "eight_bit": True,
                 "flatten": False, "batch_size": 100, "test_batch_size": 100},
        "model": {
            "class_name": "VAE",
            "input_shape": (28, 28, 1),
            "latent_dim": 32,
            "architecture": "residual",
            "hidden": (32, 64),
            "activation": "swish",
            # its networks read the values 0..255 as they are: the run started before 8-bit
            # likelihoods scaled the networks' input to [-1, 1] (scale_network_input)
            "likelihood": {"class_name": "tfvae>DiscretizedLogisticMixture",
                           "config": {"scale_network_input": False}},
        },
        "optimizer": {"learning_rate": 1e-3, "decay_per_epoch": 0.99, "clipnorm": 100.0},
        "training": {"epochs": 75},
        "evaluation": {"iwae_samples": 1000},
    }
