"""The Ladder VAE of Sonderby et al. 2016 on dynamically binarized MNIST: five stochastic layers of
64-32-16-8-4 Gaussian units, deterministic blocks of 512-256-128-64-32 units, batch
normalization and KL warm-up.

tfvae train zoo/configs/lvae_mnist.py
tfvae train zoo/configs/lvae_mnist.py --set model.conditional_kl_gradient=stop
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "lvae_mnist"
    config["model"] = {
        "class_name": "LadderVAE",
        "input_dim": 784,
        "latent_dims": (64, 32, 16, 8, 4),
        "hidden": (512, 256, 128, 64, 32),
        "activation": "leaky_relu",
        "batch_norm": True,
        "conditional_kl_gradient": "full",
        "likelihood": "bernoulli",
    }
    config["training"].update(epochs=20, kl_warmup_epochs=10)
    config["optimizer"]["decay_per_epoch"] = 1.0
    config["evaluation"]["iwae_samples"] = 0
    return config
