"""The tied exponential-family harmonium VAE (Shekhovtsov et al., ICLR 2022) on dynamically
binarized MNIST: Bernoulli x and 16 Bernoulli z sharing W, i.e. an RBM trained as a VAE. The
encoder is the exact posterior, so the ELBO is the exact log-likelihood; the prior's
normalizer sums over the 2^16 latent states at every step, so the batch is large. 100 epochs,
the learning rate decayed from 1e-2 by 0.97 per epoch: exact test NLL 149.82 (the first zoo
entry: 20 epochs, 0.9 per epoch, 186.35).

python zoo/build.py harmonium_mnist
tfvae train zoo/configs/harmonium_mnist.py --set training.epochs=20 --set optimizer.decay_per_epoch=0.9
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "harmonium_mnist"
    config["data"]["batch_size"] = 1000
    config["model"] = {
        "class_name": "HarmoniumVAE",
        "input_shape": (784,),
        "latent_dim": 16,
        "tie_weights": True,
        "estimator": "straight_through",
        "likelihood": "bernoulli",
    }
    config["optimizer"].update(learning_rate=1e-2, decay_per_epoch=0.97)
    config["training"]["epochs"] = 100
    config["evaluation"] = {"iwae_samples": 0, "exact_likelihood": True}
    return config
