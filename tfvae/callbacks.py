"""Keras callbacks for VAE training."""
import math

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


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss is not finite, with an error naming the epoch
    and step. It raises inside the step's callbacks, so nothing later in the epoch runs: list
    it before `BackupAndRestore`, and the backup of the last finished epoch is never replaced by
    NaN weights (a rerun resumes from it)."""

    def __init__(self, advice="lower the learning rate (or set optimizer.clipnorm) and rerun"):
        super().__init__()
        self.advice = advice
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"Training diverged: the loss became {float(loss)} in epoch {self._epoch + 1}, "
                f"step {batch + 1}. The weights of the last finished epoch ({self._epoch}) are "
                f"kept; {self.advice}.")
