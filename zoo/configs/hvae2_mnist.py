"""The IWAE paper's two-stochastic-layer VAE (Burda et al. 2016): 784-200-200-z100-100-100-z50,
tanh, Bernoulli likelihood, dynamically binarized MNIST.

tfvae train zoo/configs/hvae2_mnist.py
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "hvae2_mnist"
    config["model"] = {
        "class_name": "HierarchicalVAE",
        "input_dim": 784,
        "latent_dims": (100, 50),
        "hidden": ((200, 200), (100, 100)),
        "activation": "tanh",
        "likelihood": "bernoulli",
    }
    config["training"]["epochs"] = 20
    config["optimizer"]["decay_per_epoch"] = 1.0
    config["evaluation"]["iwae_samples"] = 0
    return config
