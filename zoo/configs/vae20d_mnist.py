"""A VAE with 20 Gaussian latents and 784-200-200 MLPs on dynamically binarized MNIST, for the
ELBO surgery table of Hoffman & Johnson 2016 (avg KL = index-code MI + marginal KL).

tfvae train zoo/configs/vae20d_mnist.py
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "vae20d_mnist"
    config["model"].update(latent_dim=20)
    config["training"]["epochs"] = 30
    config["optimizer"]["decay_per_epoch"] = 0.97
    config["evaluation"]["iwae_samples"] = 0  # reported by `tfvae evaluate`, beside the surgery
    return config
