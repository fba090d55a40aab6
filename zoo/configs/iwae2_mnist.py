"""The IWAE paper's two-stochastic-layer model trained with the IWAE bound, k = 50 (Burda et al.
2016, table 1: 82.90 nats after 3280 epochs): hvae2_mnist's architecture
(784-200-200-z100-100-100-z50, tanh).

The zoo recipe has two stages: hvae2_mnist's 800 epochs of the ELBO (the shipped `hvae2_mnist`
entry, 85.90), then 30 epochs of the IWAE bound with k = 50 from its weights, its gradient
estimated by DReG (`iw_gradient="dreg"`), the learning rate decayed from 1e-4 by 0.97 per epoch.

python zoo/build.py iwae2_mnist
"""
from hvae2_mnist import get_config as hvae2_config


def get_config():
    config = hvae2_config()
    config["name"] = "iwae2_mnist"
    config["model"].update(num_samples=50, iw_gradient="dreg")
    config["optimizer"].update(learning_rate=1e-4, decay_per_epoch=0.97)
    config["training"].update(epochs=30, init_from="hvae2_mnist", kl_warmup_epochs=0)
    return config
