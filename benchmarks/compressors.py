"""Lossless compressors on the 8-bit test images, in bits per dimension: what a model's
-log p(x) / (D ln 2) stands beside.

Each test set is one raw uint8 stream (the images in order, row by row), compressed whole with
gzip -9, bz2 -9 and lzma -9e (xz preset 9 extreme); bits/dim = 8 * compressed bytes / values.
The streams and the compressors are Python's own (zlib, bz2, lzma), so the figures are the same
on every machine.

    TFVAE_DATA_DIR=../shared/data python benchmarks/compressors.py --out benchmarks/results/compressors.json
"""
import argparse
import bz2
import gzip
import json
import lzma
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tfvae import data  # noqa: E402

COMPRESSORS = {
    "gzip -9": lambda raw: gzip.compress(raw, compresslevel=9, mtime=0),
    "bz2 -9": lambda raw: bz2.compress(raw, compresslevel=9),
    "lzma -9e": lambda raw: lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME),
}


def bits_per_dim(dataset, split="test"):
    """{compressor: bits/dim} of the dataset's split as one raw uint8 stream."""
    images, _ = data.examples(dataset, split)
    raw = images.astype("uint8").tobytes()
    results = {"values": len(raw), "images": int(len(images)), "shape": list(images.shape[1:])}
    for name, compress in COMPRESSORS.items():
        start = time.time()
        size = len(compress(raw))
        results[name] = {"bytes": size, "bits_per_dim": 8.0 * size / len(raw),
                         "seconds": time.time() - start}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,fashion_mnist")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    results = {}
    for dataset in args.datasets.split(","):
        results[dataset] = bits_per_dim(dataset)
        row = ", ".join(f"{name} {r['bits_per_dim']:.4f}" for name, r in results[dataset].items()
                        if isinstance(r, dict))
        print(f"{dataset} test ({results[dataset]['images']} images, {results[dataset]['values']:,} "
              f"values): bits/dim {row}", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
