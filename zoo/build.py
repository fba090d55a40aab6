"""Builds zoo entries: train (resumable), evaluate, publish into saved_models/<name>/.

    TFVAE_DATA_DIR=../shared/data python zoo/build.py vae_mnist [more names] [--runs runs/zoo]

For each name, `zoo/configs/<name>.py` is trained into `<runs>/<name>/` (killed and rerun, it
continues from its last finished epoch, and a finished run is not trained again; TensorBoard
logs in `<runs>/<name>/logs`), evaluated by `tfvae.train.evaluate`, as `tfvae evaluate` (IWAE
k = 5000 on the test set, or the exact likelihood and an IWAE k = 50 check of it for a model with
few binary latents; active units, ELBO surgery, figures) and published with `tfvae.zoo.publish`,
each step a function call (not the command line); a step whose output
is newer than its input (evaluation.json than model.keras, the entry's metadata.json than
evaluation.json) is skipped. A published entry gets its model card (zoo/cards.py); then
`tfvae zoo pack NAME` writes its release archive and registry line.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cards  # noqa: E402  (zoo/cards.py)
from tfvae import files  # noqa: E402
from tfvae.app import train, zoo  # noqa: E402
from tfvae.app import config as tfvae_config  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def finished(run, config):
    """Whether `run` trained all of the config's epochs (rerunning `tfvae train` on a finished
    run would re-save model.keras and so redo the evaluation)."""
    results = files.read_json(os.path.join(run, "metrics.json"), default={}).get("results", {})
    return (os.path.exists(os.path.join(run, "model.keras"))
            and results.get("epochs", 0) >= tfvae_config.load(config)["training"]["epochs"])


def newer(path, than):
    """Whether `path` exists and was written after `than`."""
    return (os.path.exists(path) and os.path.exists(than)
            and os.path.getmtime(path) > os.path.getmtime(than))


def build(name, runs, num_samples):
    config_path = os.path.join(CONFIGS, f"{name}.py")
    if not os.path.isfile(config_path):
        raise SystemExit(f"zoo/build.py: no config {config_path}")
    run = os.path.join(runs, name)

    def train_step():  # IWAE is computed once, by `evaluate`, not also at the end of training
        train.train(tfvae_config.load(config_path, ["evaluation.iwae_samples=0"]), run, verbose=2)

    def evaluate_step():
        config = files.read_json(os.path.join(run, "config.json"))
        train.evaluate(files.load_model(run), config, run, num_samples=num_samples, run_dir=run)

    def publish_step():
        zoo.publish(run, name)
        cards.main([name])  # the card with the published anchor (publish writes one without)

    model = os.path.join(run, "model.keras")
    evaluation = os.path.join(run, "evaluation.json")
    published = os.path.join(zoo.zoo_dir(), name, zoo.METADATA)
    steps = [  # (step, its function, whether its output is current, which output)
        ("train", train_step, lambda: finished(run, config_path), os.path.join(run, "metrics.json")),
        ("evaluate", evaluate_step, lambda: newer(evaluation, model), evaluation),
        ("publish", publish_step, lambda: newer(published, evaluation), published),
    ]
    for step, run_step, current, output in steps:
        if current():
            print(f"[{name}] {step}: up to date ({output})")
            continue
        start = time.time()
        print(f"[{name}] {step}: {output}", flush=True)
        try:
            run_step()
        except (ValueError, FileNotFoundError) as e:  # (a ConfigError, data that is missing)
            raise SystemExit(f"[{name}] {step} failed: {e}") from e
        print(f"[{name}] {step} done in {time.time() - start:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("names", nargs="+", help="zoo names, i.e. configs in zoo/configs/")
    parser.add_argument("--runs", default=os.path.join("runs", "zoo"), help="training folders")
    parser.add_argument("--num-samples", type=int,
                        help="k of the IWAE test NLL (default: `tfvae evaluate`'s, 5000, or 50 as a "
                             "check where the exact likelihood is computed)")
    args = parser.parse_args()
    for name in args.names:
        build(name, args.runs, args.num_samples)


if __name__ == "__main__":
    main()
