"""tfvae: variational autoencoders for Keras 3, TensorFlow and TensorFlow Probability."""
# Importing the models registers them with Keras, so `keras.saving.load_model` finds them
# after a plain `import tfvae`.
from tfvae import (callbacks, config, data, distributions, estimators, evaluation, export, files,
                   objectives, plots, priors, train, zoo)
from tfvae.models import VAE, BaseVAE, HarmoniumVAE, HierarchicalVAE, LadderVAE

__version__ = "0.1.0"
__all__ = ["VAE", "BaseVAE", "HarmoniumVAE", "HierarchicalVAE", "LadderVAE", "callbacks", "config",
           "data", "distributions", "estimators", "evaluation", "export", "files", "objectives",
           "plots", "priors", "train", "zoo"]
