"""The model cards (README.md) of the zoo entries, made from each entry's metadata.json, its
config's docstring and `zoo/zoo_table.py`'s published anchors and targets.

    python zoo/cards.py              # write the card of every entry in saved_models/
    python zoo/cards.py vae_mnist    # only these

A card's SHA-256 goes into the entry's metadata.json (the model files are not touched); then
`tfvae zoo pack NAME` writes the release archive and the registry line. `tests/test_zoo_archives.py`
checks that every shipped card is the one this command writes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import zoo_table  # noqa: E402
from tfvae import files  # noqa: E402
from tfvae.app import zoo  # noqa: E402


COMPRESSORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks", "results",
                           "compressors.json")


def compressor_rows(metadata):
    """Rows of the metrics table for an 8-bit entry: gzip, bz2 and lzma on the same test images,
    in bits/dim (`benchmarks/compressors.py`), and the entry's bits/dim as a share of lzma's."""
    data = metadata["config"]["data"]
    measured = files.read_json(COMPRESSORS, default={}).get(data["name"])
    if not data.get("eight_bit") or not measured:
        return []
    rows = [(f"`{name}` on the same {measured['images']} test images as one raw uint8 stream, bits/dim "
             f"(`python benchmarks/compressors.py`)", "", f"{measured[name]['bits_per_dim']:.4f}", "")
            for name in ("gzip -9", "bz2 -9", "lzma -9e")]
    bits = zoo.held_out(metadata, "bits_per_dim")[0]
    if bits is not None:
        rows.append(("bits/dim as a share of `lzma -9e`'s", f"{bits / measured['lzma -9e']['bits_per_dim']:.3f}",
                     "", "< 1 (a model that compresses worse than lzma is not worth shipping)"))
    return rows


def text(metadata):
    """The card of the entry whose metadata is `metadata`."""
    return zoo.card(metadata, zoo_table.reproduce_command(metadata),
                    zoo_table.ANCHORS.get(metadata["name"]), beside=compressor_rows(metadata))


def main(names):
    for name in names or [m["name"] for m in zoo.list_models()]:
        folder = zoo.verify(name, zoo.zoo_dir())
        zoo.write_card(folder, text(files.read_json(os.path.join(folder, zoo.METADATA))))
        print(f"wrote {os.path.join(folder, zoo.CARD)}")


if __name__ == "__main__":
    main(sys.argv[1:])
