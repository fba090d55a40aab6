"""The IWAE paper's one-stochastic-layer VAE on MNIST (Burda et al. 2016, section 5):
784-200-200-50 MLPs with tanh, Bernoulli likelihood, dynamic binarization, batch 100.

The paper trains 3280 epochs (3^i epochs at learning rate 1e-3 * 10^(-i/7), i = 0..7); the zoo
recipe is 1000 epochs with the learning rate decayed from 1e-3 by 0.997 per epoch (to 5e-5).

tfvae train zoo/configs/vae_mnist.py
tfvae train zoo/configs/vae_mnist.py --set training.epochs=10   # the 10-epoch row in README
"""


def get_config():
    return {
        "name": "vae_mnist",
        "data": {"name": "mnist", "binarize": "dynamic", "batch_size": 100},
        "model": {
            "class_name": "VAE",
            "input_shape": (784,),
            "latent_dim": 50,
            "hidden": (200, 200),
            "activation": "tanh",
            "likelihood": "bernoulli",
        },
        # The IWAE paper's Adam settings: beta1 0.9, beta2 0.999, epsilon 1e-4.
        "optimizer": {"learning_rate": 1e-3, "epsilon": 1e-4, "decay_per_epoch": 0.997},
        "training": {"epochs": 1000},
        "evaluation": {"iwae_samples": 5000},
    }
