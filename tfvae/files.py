"""Atomic file writes: a temporary file in the same folder, then a rename, so a reader or a
killed process never leaves a half-written file under the final name."""
import json
import os


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_to_builtin)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_model(model, path):
    """`model.save(path)` (a .keras file) atomically, creating the folder if needed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path[:-len('.keras')]}.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _to_builtin(value):
    if hasattr(value, "item"):  # numpy / tensor scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def model_path(path):
    """The `.keras` file of a model given as the file itself or a run folder holding model.keras."""
    path = os.fspath(path)
    candidate = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise FileNotFoundError(f"No model at {path!r}: expected a .keras file or a folder "
                                "holding model.keras (the output folder of `tfvae train`).")
    return candidate


def load_model(path):
    """Loads a tfvae model from a `.keras` file or a run folder, in Keras' safe mode."""
    import keras

    import tfvae.models  # noqa: F401  (registers the model classes with Keras)

    return keras.saving.load_model(model_path(path), safe_mode=True)
