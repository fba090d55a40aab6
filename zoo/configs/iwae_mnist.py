"""The IWAE paper's one-stochastic-layer model trained with the IWAE bound (Burda et al. 2016,
table 1: 85.54 for k = 5, 84.78 for k = 50, after 3280 epochs): the vae_mnist architecture.

The zoo recipe has two stages: vae_mnist's 1000 epochs of the ELBO (the shipped `vae_mnist`
entry), then 20 epochs of the IWAE bound with k = 50 from its weights, the learning rate
decayed from 1e-4 by 0.9 per epoch (k = 50 makes a step about 10x the ELBO's cost: 100-180 s
per epoch here). Training with k = 5 from scratch, 300 epochs with the learning rate decayed
from 1e-3 by 0.9924 per epoch, the first zoo entry, gave 87.45 +- 0.23 nats:

python zoo/build.py iwae_mnist
tfvae train zoo/configs/iwae_mnist.py --set training.init_from=None --set model.num_samples=5 \
    --set optimizer.learning_rate=1e-3 --set optimizer.decay_per_epoch=0.9924 --set training.epochs=300
"""
from vae_mnist import get_config as vae_mnist_config


def get_config():
    config = vae_mnist_config()
    config["name"] = "iwae_mnist"
    config["model"]["num_samples"] = 50
    config["optimizer"].update(learning_rate=1e-4, decay_per_epoch=0.9)
    config["training"].update(epochs=20, init_from="vae_mnist")
    return config
