"""Keras callbacks for VAE training."""
import json
import math
import os
import warnings

import keras

from tfvae import files


class KLWarmup(keras.callbacks.Callback):
    """Raises the KL weight linearly from 0 to 1 over the first `epochs` epochs.

    The weight in epoch e (counting from 0) is min(1, e / epochs): the first epoch trains the
    reconstruction alone (Sonderby et al. 2016, section 2.3; Bowman et al. 2016).
    The model's `beta` multiplies it. Validation and `evaluate` during training measure the
    whole objective (weight 1), so `val_loss` is comparable from epoch to epoch (for
    EarlyStopping, `ModelCheckpoint(save_best_only=True)`; or monitor "val_elbo", mode="max").
    """

    def __init__(self, epochs):
        super().__init__()
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer. Received: epochs={epochs!r}")
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_warmup.assign(1.0 if self.epochs == 0 else min(1.0, epoch / self.epochs))

    def on_test_begin(self, logs=None):
        self._training_weight = float(self.model.kl_warmup.numpy())
        self.model.kl_warmup.assign(1.0)

    def on_test_end(self, logs=None):
        self.model.kl_warmup.assign(getattr(self, "_training_weight", 1.0))

    def on_train_end(self, logs=None):
        # Evaluation after training measures the true ELBO, whatever epoch training stopped at.
        self.model.kl_warmup.assign(1.0)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_warmup"] = float(self.model.kl_warmup.numpy())


class TemperatureAnnealing(keras.callbacks.Callback):
    """Anneals the temperature of the relaxed latents: tau = max(minimum, exp(-rate * t)) at
    training step t, set every `every` steps (Jang, Gu & Poole 2017, section 4: N in
    {500, 1000} steps, r in {1e-5, 1e-4}, tau down to 0.5).

    t is the optimizer's step count, so a resumed run continues the schedule. The schedule
    replaces the temperature the model was built with (it starts at 1), and a saved model
    records the last one (evaluation draws exact binary latents, whatever it is). A new
    temperature retraces the train step (a compilation per update; XLA's takes seconds). With
    `steps_per_execution` s, the callback runs every s steps, so `every` should be a multiple
    of s (it warns otherwise). Logs `temperature` each epoch.
    """

    def __init__(self, rate=1e-4, minimum=0.5, every=1000):
        super().__init__()
        if not rate > 0 or not 0 < minimum <= 1:
            raise ValueError(f"rate must be > 0 and minimum in (0, 1]. Received: rate={rate!r}, "
                             f"minimum={minimum!r}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer. Received: every={every!r}")
        self.rate, self.minimum, self.every = float(rate), float(minimum), every
        self.temperature = None

    def temperature_at(self, step):
        """tau at training step `step`: the value of the last multiple of `every`."""
        return max(self.minimum, math.exp(-self.rate * (step // self.every) * self.every))

    def on_train_begin(self, logs=None):
        relaxed = [latent for latent in self.model.latent_layers() if latent.estimator == "relaxed"]
        if not relaxed:
            raise ValueError("TemperatureAnnealing anneals relaxed latents; this model has none: "
                             "build it with latent='bernoulli', estimator='relaxed'.")
        per_call = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if self.every % per_call:
            warnings.warn(f"TemperatureAnnealing(every={self.every}) runs once per call of "
                          f"{per_call} steps (steps_per_execution), so its updates come up to "
                          f"{per_call - 1} steps late; make `every` a multiple of {per_call}.")
        self._relaxed, self.temperature = relaxed, None

    def on_train_batch_begin(self, batch, logs=None):
        temperature = self.temperature_at(int(self.model.optimizer.iterations.numpy()))
        if temperature != self.temperature:
            for latent in self._relaxed:
                latent.set_temperature(temperature)
            self.model.make_train_function(force=True)
            self.temperature = temperature

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.temperature is not None:
            logs["temperature"] = self.temperature


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss is not finite, with an error naming the epoch
    and step. It raises inside the step's callbacks, so nothing later in the epoch runs: list
    it before `BackupAndRestore`, and the backup of the last finished epoch is never replaced by
    NaN weights (a rerun resumes from it). With `steps_per_execution` > 1 it sees the logs of
    each call, so the step it names is the last of the call in which the loss diverged."""

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


class DataEpoch(keras.callbacks.Callback):
    """Sets the epoch variable of a `tfvae.data.load(..., epoch=variable)` pipeline at the start
    of every epoch, so the data of epoch e (order and binarization) does not depend on how many
    epochs this process has run: a resumed run sees what an uninterrupted one sees."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backups survive a kill at any instant.

    Keras writes `latest.weights.h5` in place and then the epoch in a separate JSON file, so a
    kill between the two (or during the first) leaves weights and epoch out of step, or a
    half-written file; and `save_weights` leaves out the seed generators' states. Here each
    backup is a new `epoch-<e>.weights.h5`, complete and synced before `state.json` (the epoch,
    the file name and the seed generators' states; written to a temporary file, then renamed)
    points at it; older weight files are removed only after that. A resumed run loads exactly
    the state `state.json` names.

    `restore_dir` (default: `backup_dir`) is where a backup is read from: under
    `tfvae.multi_worker` every worker writes its own backup (the chief's in the output folder,
    the others' in temporary folders, so that all take part in the same reads of distributed
    variables) and every worker restores the chief's.
    """

    STATE = "state.json"

    def __init__(self, backup_dir, *args, restore_dir=None, **kwargs):
        super().__init__(backup_dir, *args, **kwargs)
        self.restore_dir = restore_dir or backup_dir

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch}.weights.h5"
        with files.atomic_path(os.path.join(self.backup_dir, name), ".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        seeds = {v.path: v.numpy().tolist() for v in self._seed_generator_states()}
        files.write_json(os.path.join(self.backup_dir, self.STATE),
                         {"epoch": self._current_epoch, "weights": name, "seed_generators": seeds})
        for old in os.listdir(self.backup_dir):
            if old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.backup_dir, old))

    def _seed_generator_states(self):
        """The states of the model's `keras.random.SeedGenerator`s: `save_weights` leaves them
        out, and without them a resumed run would draw the noise of epoch 1 again."""
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

    def _load_model(self):
        state_path = os.path.join(self.restore_dir, self.STATE)
        if not os.path.exists(state_path):
            return super()._load_model()  # a backup written by Keras' own callback, if any
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.restore_dir, state["weights"]))
        saved_seeds = state.get("seed_generators", {})
        for variable in self._seed_generator_states():
            if variable.path in saved_seeds:
                variable.assign(saved_seeds[variable.path])
        self.model._initial_epoch = state["epoch"]  # how Keras' own callback resumes fit

