"""Keras callbacks for VAE training."""
import keras


class KLWarmup(keras.callbacks.Callback):
    """Raises the KL weight linearly from 0 to 1 over the first `epochs` epochs.

    The weight in epoch e (counting from 0) is min(1, e / epochs): the first epoch trains the
    reconstruction alone (Sonderby et al. 2016, section 2.3; Bowman et al. 2016).
    The model's `beta` multiplies it.
    """

    def __init__(self, epochs):
        super().__init__()
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer. Received: epochs={epochs!r}")
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_warmup.assign(1.0 if self.epochs == 0 else min(1.0, epoch / self.epochs))

    def on_train_end(self, logs=None):
        # Evaluation after training measures the true ELBO, whatever epoch training stopped at.
        self.model.kl_warmup.assign(1.0)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_warmup"] = float(self.model.kl_warmup.numpy())
