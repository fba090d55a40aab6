"""The vae_mnist model (784-200-200-50, tanh, Bernoulli likelihood) on Fashion-MNIST with
dynamic binarization (`apt-get install dataset-fashion-mnist`). No verified published number
for this setting; the zoo reports ours. 100 epochs, learning rate 1e-3 decayed by 0.98 per epoch.

python zoo/build.py vae_fashion_mnist
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "vae_fashion_mnist"
    config["data"]["name"] = "fashion_mnist"
    config["optimizer"]["decay_per_epoch"] = 0.98
    config["training"]["epochs"] = 100
    return config
