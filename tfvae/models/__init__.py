"""Model classes of tfvae."""
from tfvae.models.base import BaseVAE
from tfvae.models.ladder import LadderVAE
from tfvae.models.vae import VAE

__all__ = ["BaseVAE", "LadderVAE", "VAE"]
