"""Loads exported SavedModels with TensorFlow alone and calls every signature.

    python tests/serving_client.py INPUTS.npz OUTPUTS.npz EXPORT_DIR [EXPORT_DIR ...]

Run in its own process by the export tests: importing tfvae, tensorflow_probability, keras or
tf_keras here fails, so the exports must stand alone. Inputs `<i>/<signature>/<input name>`
of INPUTS.npz (i indexes the export) are fed to the signatures; outputs are written as
`<i>/<signature>/<output name>`, and errors of calls meant to fail as `<i>/<signature>/error`.
"""
import importlib.abc
import importlib.machinery
import sys

BLOCKED = ("tfvae", "tensorflow_probability", "keras", "tf_keras")


class Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes the BLOCKED packages look absent: a spec without origin, whose import fails."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self, origin=None)
        return None

    def create_module(self, spec):
        raise ImportError(f"{spec.name} may not be imported by a serving client")

    def exec_module(self, module):
        raise ImportError(f"{module.__name__} may not be imported by a serving client")


sys.meta_path.insert(0, Blocker())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(inputs_path, outputs_path, export_dirs):
    inputs = np.load(inputs_path)
    outputs = {}
    for i, export_dir in enumerate(export_dirs):
        loaded = tf.saved_model.load(export_dir)
        for key in inputs.files:
            index, signature, input_name = key.split("/")
            if int(index) != i:
                continue
            function = loaded.signatures[signature.split(":")[0]]
            try:
                result = function(**{input_name: tf.constant(inputs[key])})
            except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
                outputs[f"{i}/{signature}/error"] = np.array(str(e))
                continue
            for name, value in result.items():
                outputs[f"{i}/{signature}/{name}"] = value.numpy()
    for module in BLOCKED:
        assert module not in sys.modules, module
    np.savez(outputs_path, **outputs)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
