"""lvae_mnist fine-tuned with the importance-weighted bound, k = 10, as Sonderby et al. 2016 did
(their table 1: 81.74 nats for the 5-layer LVAE with fine-tuning and IW samples).

The zoo recipe has two stages: lvae_mnist's 300 epochs of the ELBO with KL warm-up (the shipped
`lvae_mnist` entry, 83.36), then 30 epochs of the IWAE bound with k = 10 from its weights, the
learning rate decayed from 1e-4 by 0.97 per epoch. The gradient is the plain estimator's, not
DReG: the ladder's prior blocks are in both p(z_i | z_{i+1}) and q(z_i | z_{i+1}, x), and on
the trained lvae_mnist (100 test images, k = 10, 40 draws) DReG's gradient variance on those
weights is 1e6-1e8 times plain's (plain's score term cancels their explicit gradient where q and
p agree, as in collapsed units); on the weights only q uses it is within 0.2-7x of plain's.

python zoo/build.py lvae_iw_mnist
"""
from lvae_mnist import get_config as lvae_config


def get_config():
    config = lvae_config()
    config["name"] = "lvae_iw_mnist"
    config["model"].update(num_samples=10, iw_gradient="plain")
    config["optimizer"].update(learning_rate=1e-4, decay_per_epoch=0.97)
    config["training"].update(epochs=30, init_from="lvae_mnist", kl_warmup_epochs=0)
    return config
