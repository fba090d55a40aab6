"""A VAE with 200 Bernoulli latents and the straight-through estimator (the binary-latent
benchmark of Jang, Gu & Poole 2017, "Categorical reparameterization with Gumbel-Softmax",
table 1: 116.0 nats for straight-through, 105.0 for Gumbel-Softmax, on MNIST with a fixed
binarization; the table gives the test negative ELBO, so our test ELBO is the number to put
beside it). Their encoder and decoder are 784-512-256 MLPs (ReLU); the prior is
Bernoulli(1/2) per latent. We also report the test NLL by IWAE with k = 5000 (2^200 states
cannot be enumerated).

python zoo/build.py bvae_mnist
"""
from bvae16_mnist import get_config as bvae16_config


def get_config():
    config = bvae16_config()
    config["name"] = "bvae_mnist"
    config["data"]["binarize"] = "fixed"
    config["model"].update(latent_dim=200, hidden=(512, 256), activation="relu")
    config["optimizer"]["decay_per_epoch"] = 0.98
    config["training"]["epochs"] = 100
    config["evaluation"] = {"iwae_samples": 5000, "exact_likelihood": False}
    return config
