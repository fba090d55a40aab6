"""Model classes of tfvae."""
from tfvae.models.base import BaseVAE
from tfvae.models.harmonium import HarmoniumVAE
from tfvae.models.ladder import HierarchicalVAE, LadderVAE
from tfvae.models.vae import VAE

__all__ = ["BaseVAE", "HarmoniumVAE", "HierarchicalVAE", "LadderVAE", "VAE"]
