"""Atomic file writes: a temporary file in the same folder, then a rename, so a reader or a
killed process never leaves a half-written file under the final name."""
import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary name beside `path` to write to (its folder created if needed); once
    the block succeeds the file is synced to disk and renamed to `path`, and if the block fails
    it is removed. `suffix` ends the temporary name, for writers that go by the extension
    (".keras", ".weights.h5", ".png").
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}{suffix}"
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_to_builtin)


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_model(model, path):
    """`model.save(path)` (a .keras file) atomically, creating the folder if needed."""
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp)


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
