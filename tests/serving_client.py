"""Loads exported SavedModels with TensorFlow alone and calls every signature.

    python tests/serving_client.py INPUTS.npz OUTPUTS.npz EXPORT_DIR [EXPORT_DIR ...]

Run in its own process by the export tests: importing tfvae, tensorflow_probability, keras or
tf_keras here fails, so the exports must stand alone. Inputs `<i>/<signature>/<input name>`
of INPUTS.npz (i indexes the export) are fed to the signatures, one call per
`<i>/<signature>` with all of its inputs; outputs are written as
`<i>/<signature>/<output name>`, and errors of calls meant to fail as `<i>/<signature>/error`.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo"))
from served_nll import BLOCKED, WithoutTfvae  # noqa: E402  (the import hook, standard library only)

sys.meta_path.insert(0, WithoutTfvae())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(inputs_path, outputs_path, export_dirs):
    inputs = np.load(inputs_path)
    outputs = {}
    for i, export_dir in enumerate(export_dirs):
        loaded = tf.saved_model.load(export_dir)
        calls = {}  # signature (with its tag) -> {input name: value}
        for key in inputs.files:
            index, signature, input_name = key.split("/")
            if int(index) == i:
                calls.setdefault(signature, {})[input_name] = tf.constant(inputs[key])
        for signature, arguments in calls.items():
            function = loaded.signatures[signature.split(":")[0]]
            try:
                result = function(**arguments)
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
