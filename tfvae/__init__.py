"""tfvae: variational autoencoders for Keras 3, TensorFlow and TensorFlow Probability."""
from tfvae import callbacks, data, distributions, estimators, objectives
from tfvae.models import VAE, BaseVAE

__version__ = "0.1.0"
__all__ = ["VAE", "BaseVAE", "callbacks", "data", "distributions", "estimators", "objectives"]
