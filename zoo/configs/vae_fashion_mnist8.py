"""vae_mnist8's residual VAE with a discretized logistic mixture on 8-bit Fashion-MNIST
(`apt-get install dataset-fashion-mnist`), in bits/dim by IWAE (k = 1000), beside
benchmarks/compressors.py (lzma -9e: 3.86 bits/dim on the same test images). Its networks read
the pixels scaled to [-1, 1] (the likelihood's default), vae_mnist8's read them as they are.

python zoo/build.py vae_fashion_mnist8 --num-samples 1000
"""
from vae_mnist8 import get_config as vae_mnist8_config


def get_config():
    config = vae_mnist8_config()
    config["name"] = "vae_fashion_mnist8"
    config["data"]["name"] = "fashion_mnist"
    config["model"]["likelihood"] = "discretized_logistic"
    return config
