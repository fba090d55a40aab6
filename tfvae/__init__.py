"""tfvae: variational autoencoders for Keras 3, TensorFlow and TensorFlow Probability.

The submodules and model classes load on first use (PEP 562 `__getattr__`), so `import tfvae`
never imports matplotlib and the `tfvae` command can answer `--help` without TensorFlow.
"""
import importlib
import os
import sys

__version__ = "0.1.0"
_SUBMODULES = ("callbacks", "data", "distributions", "estimators", "evaluation", "export", "families",
               "files", "likelihoods", "models", "networks", "objectives", "plots", "priors", "app")
_APP = ("cli", "config", "multi_worker", "train", "zoo")  # tfvae.zoo is tfvae.app.zoo
_MODELS = ("VAE", "BaseVAE", "HarmoniumVAE", "HierarchicalVAE", "LadderVAE")
__all__ = sorted(_MODELS) + [name for name in _SUBMODULES + _APP if name != "models"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfvae.{name}")
    if name in _APP:
        return importlib.import_module(f"tfvae.app.{name}")
    if name in _MODELS:
        return getattr(importlib.import_module("tfvae.models"), name)
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _is_the_tfvae_command():
    """True while this package is imported by the `tfvae` command: pip's console script (a file
    named `tfvae`, or `tfvae-script.py` on Windows, whose first line is `from tfvae.app.cli
    import main`) or `python -m tfvae.app.cli` (runpy imports this package while `sys.argv[0]` is "-m")."""
    script = getattr(sys.modules.get("__main__"), "__file__", None) or ""
    if os.path.basename(script) in ("tfvae", "tfvae-script.py", "tfvae-script.pyw"):
        return True
    return sys.argv[:1] == ["-m"] and "tfvae.app.cli" in getattr(sys, "orig_argv", ())


# Importing the models registers them with Keras, so `keras.saving.load_model` finds them after a
# plain `import tfvae`. That import is TensorFlow's (seconds, and C++ logging on stderr), so the
# `tfvae` command skips it here: it answers `--help` and `--version` without TensorFlow, and
# imports the models itself (after quieting TensorFlow's start-up) before running a command.
if not _is_the_tfvae_command():
    from tfvae import models  # noqa: E402,F401
