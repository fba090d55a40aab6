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
    """`model.save(path)` (a .keras file) atomically."""
    tmp = f"{path[:-len('.keras')]}.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _to_builtin(value):
    if hasattr(value, "item"):  # numpy / tensor scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
