"""The tied harmonium VAE of harmonium_mnist with 20 binary latents instead of 16 (2^20 =
1,048,576 latent states, the most the library enumerates): the prior's normalizer sums over
every state at every step, so the exact log-likelihood is still known, for training and test.
Same recipe as harmonium_mnist (100 epochs, batch 1000, the learning rate decayed from 1e-2 by
0.97 per epoch), so the two entries' exact NLLs stand side by side.

python zoo/build.py harmonium20_mnist
"""
from harmonium_mnist import get_config as harmonium_config


def get_config():
    config = harmonium_config()
    config["name"] = "harmonium20_mnist"
    config["model"]["latent_dim"] = 20
    return config
