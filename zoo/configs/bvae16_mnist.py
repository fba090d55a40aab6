"""The untied counterpart of harmonium_mnist: a VAE with 16 Bernoulli latents (saved by
earlier versions as HarmoniumVAE(tie_weights=False), which loads as this), free
784-200-200 tanh encoder and decoder, a Bernoulli(1/2) prior and the straight-through
estimator; its exact test log-likelihood sums over the 2^16 latent states.

tfvae train zoo/configs/bvae16_mnist.py
tfvae train zoo/configs/bvae16_mnist.py --set model.estimator=score_function --out runs/bvae16_sf
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "bvae16_mnist"
    config["model"] = {
        "class_name": "VAE",
        "input_shape": (784,),
        "latent_dim": 16,
        "latent": "bernoulli",
        "hidden": (200, 200),
        "activation": "tanh",
        "estimator": "straight_through",
        "likelihood": "bernoulli",
    }
    config["optimizer"]["decay_per_epoch"] = 0.95
    config["training"]["epochs"] = 30
    config["evaluation"] = {"iwae_samples": 5000, "exact_likelihood": True}
    return config
