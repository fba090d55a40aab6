"""The IWAE paper's one-stochastic-layer VAE on MNIST (Burda et al. 2016, section 5):
784-200-200-50 MLPs with tanh, Bernoulli likelihood, dynamic binarization, batch 100.

tfvae train zoo/configs/vae_mnist.py
"""


def get_config():
    return {
        "name": "vae_mnist",
        "data": {"name": "mnist", "binarize": "dynamic", "batch_size": 100},
        "model": {
            "class_name": "VAE",
            "input_dim": 784,
            "latent_dim": 50,
            "hidden": (200, 200),
            "activation": "tanh",
            "likelihood": "bernoulli",
        },
        # The IWAE paper's Adam settings: beta1 0.9, beta2 0.999, epsilon 1e-4.
        "optimizer": {"learning_rate": 1e-3, "epsilon": 1e-4},
        "training": {"epochs": 10},
        "evaluation": {"iwae_samples": 5000},
    }
