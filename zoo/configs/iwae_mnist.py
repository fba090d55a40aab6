"""The IWAE paper's one-stochastic-layer model trained with the IWAE bound, k = 5 (Burda et al.
2016, table 1: 85.54 for k = 5, 84.78 for k = 50, after 3280 epochs): the vae_mnist
architecture and Adam settings, 5 importance samples per example in training. k = 5 makes each
step about 3x the cost of the ELBO's, so the recipe is 300 epochs with the learning rate decayed
from 1e-3 by 0.9924 per epoch (to 1e-4).

python zoo/build.py iwae_mnist
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "iwae_mnist"
    config["model"]["num_samples"] = 5
    config["optimizer"]["decay_per_epoch"] = 0.9924
    config["training"]["epochs"] = 300
    return config
