"""Shipped zoo entries re-evaluated by this version of tfvae, with the seed of their cards.

    TFVAE_DATA_DIR=../shared/data python zoo/reevaluate.py [NAME ...] [--work runs/reevaluate]

Each entry's model is loaded from saved_models/ (`tfvae.zoo.load`: checksums, safe mode) and
evaluated again by `tfvae.app.train.evaluate`, the function that measured its card, with the
card's k and seed 0: the IWAE NLL (every batch of 500 at its own seed), and the exact NLL where
the latents are enumerable. A redesign that changes no maths reproduces the card's figure to
float32 rounding; the issue's bound is 0.01 nats. Stopped part-way, a rerun resumes the IWAE
pass from `--work/NAME/iwae.partial.json`.

The IWAE draws at a seed depend on how many are drawn per chunk (each chunk has its own seed):
cards measured before 2026-11-22T06:16Z, when `log_prob`'s chunks shrank from 2^16 to 2^12
decoder rows, drew 131 samples per chunk for batches of 500, and only `--chunk-size 131`
repeats their draws. Another chunking is an estimate with other draws, which differs by
Monte Carlo error.

The figures go into zoo/reevaluation.json: per entry, its runs, newest last, each with the
card's `published` time (tests/test_zoo.py checks that each still-current entry's newest run
is within 0.01 nats). Without names: every shipped entry without a current run.
"""
import argparse
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tfvae import evaluation, files  # noqa: E402
from tfvae.app import train, zoo  # noqa: E402

RECORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reevaluation.json")
TOLERANCE = 0.01  # nats (issue 30's acceptance)


def card_figure(metadata):
    """The NLL the card states and how it was measured: ("exact", nll) or ("iwae", nll)."""
    exact, _ = zoo.held_out(metadata, "exact_nll")
    return ("exact", exact) if exact is not None else ("iwae", zoo.held_out(metadata, "nll")[0])


def reevaluate(name, work, chunk_size=None):
    """The record of entry `name` re-evaluated now (see the module docstring), drawing
    `chunk_size` IWAE samples per chunk (None: `BaseVAE.log_prob`'s default)."""
    folder = zoo.verify(name, zoo.zoo_dir())
    metadata = files.read_json(os.path.join(folder, zoo.METADATA))
    kind, card = card_figure(metadata)
    start = time.time()
    results = train.evaluate(zoo.load(name), metadata["config"], os.path.join(work, name),
                             num_samples=metadata["num_samples"], surgery_samples=0, seed=0, verbose=2,
                             chunk_size=chunk_size)
    measured = results["exact" if kind == "exact" else "iwae"]["nll"]
    return {"published": metadata["published"], "estimate": kind,
            "num_samples": None if kind == "exact" else metadata["num_samples"],
            "chunk_size": chunk_size,
            "card_nll": card, "nll": measured, "difference": measured - card,
            "seconds": time.time() - start,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
            "tfvae_commit": _commit(), "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def runs(records, name):
    """Entry `name`'s runs in `records`, newest last (a file of one record per entry is read
    as one run each)."""
    kept = records.get(name, [])
    return [kept] if isinstance(kept, dict) else list(kept)


def newest(records, name):
    """Entry `name`'s newest run, or None."""
    return (runs(records, name) or [None])[-1]


def current(records, name):
    """Whether entry `name`'s newest run in `records` measured the entry as published now."""
    metadata = files.read_json(os.path.join(zoo.zoo_dir(), name, zoo.METADATA))
    return (newest(records, name) or {}).get("published") == metadata["published"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("names", nargs="*", help="zoo entries (default: every one without a current record)")
    parser.add_argument("--work", default=os.path.join("runs", "reevaluate"),
                        help="evaluation outputs and resumable IWAE state (default runs/reevaluate)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="IWAE draws per chunk, each chunk at its own seed (default: "
                             "log_prob's, 4096 // 500 = 8 for batches of 500; cards measured "
                             "before 2026-11-22T06:16Z drew 2^16 // 500 = 131 per chunk)")
    parser.add_argument("--records", default=RECORDS, help=f"the records file (default {RECORDS})")
    args = parser.parse_args(argv)
    records = files.read_json(args.records, default={})
    names = args.names or [m["name"] for m in zoo.list_models() if not current(records, m["name"])]
    for name in names:
        print(f"[{name}] re-evaluating", flush=True)
        record = reevaluate(name, args.work, args.chunk_size)
        records = files.read_json(args.records, default={})  # (another run may have added some)
        records[name] = runs(records, name) + [record]
        files.write_json(args.records, dict(sorted(records.items())))
        verdict = "within" if abs(record["difference"]) <= TOLERANCE else "OUTSIDE"
        print(f"[{name}] {record['estimate']} NLL {record['nll']:.4f}, the card's {record['card_nll']:.4f}: "
              f"difference {record['difference']:+.4f} nats, {verdict} {TOLERANCE} "
              f"({evaluation.duration(record['seconds'])})", flush=True)


if __name__ == "__main__":
    main()
