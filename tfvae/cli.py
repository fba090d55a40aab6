"""The `tfvae` command."""
import argparse
import os
import sys

EXAMPLES = {
    "train": "example: tfvae train zoo/configs/vae_mnist.py --set training.epochs=3 --out runs/try",
}


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    parser = argparse.ArgumentParser(prog="tfvae", description="Variational autoencoders for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a config file",
                                description="Train a model from a config file; rerun the same "
                                            "command to resume an interrupted run.",
                                epilog=EXAMPLES["train"])
    train.add_argument("config", help="a Python file defining get_config() (see zoo/configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.epochs=3 (repeatable)")
    train.add_argument("--out", help="output folder (default: runs/<config name>)")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                       help="0 silent, 1 progress bar, 2 one line per epoch")

    args = parser.parse_args(argv)
    return {"train": _train}[args.command](args)


def _train(args):
    from tfvae import config as tfvae_config
    from tfvae import train

    try:
        config = tfvae_config.load(args.config, args.set)
    except tfvae_config.ConfigError as e:
        print(f"tfvae train: {e}", file=sys.stderr)
        return 2
    out_dir = args.out or os.path.join("runs", config["name"])
    try:
        _, results = train.train(config, out_dir, verbose=args.verbose)
    except (tfvae_config.ConfigError, FileNotFoundError) as e:
        print(f"tfvae train: {e}", file=sys.stderr)
        return 2
    print(f"\ntest ELBO: {results['test_elbo']:.2f} nats "
          f"({results['epochs']} epochs, {results['seconds_per_epoch']:.1f} s/epoch)")
    if "test_nll" in results:
        print(f"test NLL (IWAE, k={results['num_samples']}): {results['test_nll']:.2f} "
              f"+- {results['test_nll_stderr']:.2f} nats")
    print(f"outputs: {out_dir}/model.keras, config.json, metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
