"""Prints TF Serving REST requests and responses for every signature of an export.

    python zoo/serving_examples.py saved_models/vae2d_mnist/serving/1 --name vae2d_mnist

The responses are computed by calling the SavedModel here with TensorFlow, and printed in the
JSON that TF Serving's REST API returns (row "instances" / "predictions" format, and the
columnar "inputs" / "outputs" format for log_prob); long vectors are shortened with "..." to their ends and
three middle entries.
The README's serving section is this script's output for a zoo model.
"""
import argparse
import json

import numpy as np
import tensorflow as tf


def short(value):
    """A JSON-ready value; vectors longer than 8 show their ends and 3 middle entries."""
    value = np.asarray(value)
    if value.ndim == 0:
        return round(float(value), 4) if value.dtype.kind == "f" else int(value)
    items = [short(v) for v in value]
    if value.ndim == 1 and len(items) > 8:
        mid = len(items) // 2
        items = [items[0], "...", *items[mid - 1:mid + 2], "...", items[-1]]
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir")
    parser.add_argument("--name", default="vae_mnist", help="the model's name on the server")
    args = parser.parse_args(argv)
    loaded = tf.saved_model.load(args.export_dir)
    width = loaded.signatures["reconstruct"].structured_input_signature[1]["x"].shape[1]
    latent = loaded.signatures["decode"].structured_input_signature[1]["z"].shape[1]
    x = np.zeros((1, width), np.float32)
    x[0, width // 2 - 50: width // 2 + 50] = 1.0  # a bar of ink in the middle
    z = np.zeros((1, latent), np.float32)
    calls = [("reconstruct", "x", x), ("encode", "x", x), ("decode", "z", z),
             ("sample", "seed", np.array([7, 8], np.int64))]
    url = f"http://localhost:8501/v1/models/{args.name}:predict"
    for signature, input_name, value in calls:
        outputs = {k: v.numpy() for k, v in loaded.signatures[signature](**{input_name: tf.constant(value)}).items()}
        request = {"signature_name": signature, "instances": short(value)}
        if len(outputs) == 1:
            predictions = short(next(iter(outputs.values())))
        else:
            predictions = [{k: short(v[i]) for k, v in outputs.items()} for i in range(len(value))]
        print(f"### {signature}\n\n```\nPOST {url}\n{json.dumps(request)}\n```\n```\n"
              f"{json.dumps({'predictions': predictions})}\n```\n")
    outputs = {k: v.numpy() for k, v in loaded.signatures["log_prob"](x=tf.constant(x)).items()}
    request = {"signature_name": "log_prob", "inputs": {"x": short(x)}}
    print(f"### log_prob (columnar format)\n\n```\nPOST {url}\n{json.dumps(request)}\n```\n```\n"
          f"{json.dumps({'outputs': {k: short(v) for k, v in sorted(outputs.items())}})}\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
