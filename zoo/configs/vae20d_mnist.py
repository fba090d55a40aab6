"""vae2d_mnist with 20 Gaussian latents, for the ELBO surgery table (Hoffman & Johnson 2016).

tfvae train zoo/configs/vae20d_mnist.py
"""
from vae2d_mnist import get_config as vae2d_config


def get_config():
    config = vae2d_config()
    config["name"] = "vae20d_mnist"
    config["model"]["latent_dim"] = 20
    return config
