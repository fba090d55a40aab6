"""The IWAE paper's two-stochastic-layer VAE (Burda et al. 2016): 784-200-200-z100-100-100-z50,
tanh, Bernoulli likelihood, dynamically binarized MNIST.

The paper trains 3280 epochs (85.33 nats with the VAE bound); the zoo recipe is 800 epochs, the
KL warmed up over the first 10 (without warm-up the upper layer is unused: test ELBO -120.2
against -102.4 after 20 epochs) and the learning rate decayed from 1e-3 by 0.995 per epoch
(to 1.8e-5): test NLL 85.90 +- 0.23 (target 86.0; 3.8 h here). Its first 500 epochs, the first
zoo entry, gave 86.11 +- 0.23; the schedule depends only on the epoch, so the shipped model
trained on from that entry's epoch-500 checkpoint is the same run as a fresh 800 epochs.

python zoo/build.py hvae2_mnist
tfvae train zoo/configs/hvae2_mnist.py --set training.epochs=20 --set optimizer.decay_per_epoch=1.0
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "hvae2_mnist"
    config["model"] = {
        "class_name": "HierarchicalVAE",
        "input_shape": (784,),
        "latent_dims": (100, 50),
        "hidden": ((200, 200), (100, 100)),
        "activation": "tanh",
        "likelihood": "bernoulli",
    }
    config["training"].update(epochs=800, kl_warmup_epochs=10)
    config["optimizer"]["decay_per_epoch"] = 0.995
    return config
