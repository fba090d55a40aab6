"""vae_cifar10's data, likelihood and training with a two-layer LadderVAE (Sonderby et al.
2016): the bottom-up pass starts with `tfvae.networks`' residual conv encoder (widths
(64, 128, 256)), z_0 has 64 Gaussian units and z_1 32, and p(x | z_0) is the residual conv
decoder (`architecture="residual"`). A ready recipe, trained here only on mock data
(tests/test_cifar_recipe.py).

python zoo/build.py lvae_cifar10
"""
from vae_cifar10 import get_config as vae_cifar10_config


def get_config():
    config = vae_cifar10_config()
    config["name"] = "lvae_cifar10"
    config["model"] = {
        "class_name": "LadderVAE",
        "input_shape": (32, 32, 3),
        "latent_dims": (64, 32),
        "hidden": ((64, 128, 256), (256,)),
        "architecture": "residual",
        "activation": "swish",
        "likelihood": config["model"]["likelihood"],
    }
    return config
