"""Exponential families: stateless maths shared by every distribution layer and model.

`Family` (base.py) writes log_prob, combine and KL once; each family is one file of this
folder, registered by name with `register_family` (every module here is imported, so a new
family's file is all it takes: `tfvae.families.get(name)`, `tfvae.latents.Latent(family=name)`
and every model's `latent=` find it).
"""
import importlib
import pkgutil

from tfvae.families.base import FAMILIES, Family, event_axes, get, kl_divergence, register_family
from tfvae.families.bernoulli import Bernoulli
from tfvae.families.gaussian import Gaussian

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "Family", "Gaussian", "Bernoulli", "event_axes", "get", "kl_divergence",
           "register_family"]
