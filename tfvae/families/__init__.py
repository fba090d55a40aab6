"""Exponential families: stateless maths shared by every distribution layer and model.

`Family` (base.py) writes log_prob, combine and KL once; each family is one file.
"""
from tfvae.families.base import Family, event_axes, kl_divergence
from tfvae.families.bernoulli import Bernoulli
from tfvae.families.gaussian import Gaussian

__all__ = ["Family", "Gaussian", "Bernoulli", "event_axes", "kl_divergence"]
