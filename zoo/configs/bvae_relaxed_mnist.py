"""bvae_mnist's model (200 Bernoulli latents, 784-512-256 ReLU networks, fixed binarization)
drawn with the relaxed (Concrete / Gumbel-Softmax) estimator, its temperature annealed as
Jang, Gu & Poole 2017 anneal theirs (section 4: tau = max(0.5, exp(-r t)), updated every
N steps; r = 1e-4 and N = 1000 here, so tau reaches 0.5 at step 7,000, in epoch 12). Their
table 1 puts Gumbel-Softmax at 105.0 nats of test negative ELBO against 116.0 for
straight-through, the estimator of bvae_mnist. A candidate recipe for bvae_mnist (issue 32);
the entry is republished only if it beats the straight-through one.

python zoo/build.py bvae_relaxed_mnist --runs zoo/resumable
"""
from bvae_mnist import get_config as bvae_config


def get_config():
    config = bvae_config()
    config["name"] = "bvae_relaxed_mnist"
    config["model"]["estimator"] = "relaxed"
    config["training"]["anneal_temperature"] = (1e-4, 0.5, 1000)
    return config
