"""The `tfvae` command.

It imports TensorFlow only once a command runs (`tfvae --help` answers at once), with
TensorFlow's C++ start-up logging hidden unless `tfvae --verbose`. User errors print one line
on stderr and exit with status 2; Ctrl-C prints one line and exits with 130.
"""
import argparse
import json
import os
import sys
import tempfile

EXAMPLES = {
    "train": "example: tfvae train zoo/configs/vae_mnist.py --set training.epochs=3 --out runs/try",
    "evaluate": "example: tfvae evaluate runs/vae_mnist --num-samples 5000",
    "sample": "example: tfvae sample runs/vae_mnist --out grid.png --num 64 --seed 0",
    "export": "examples: tfvae export runs/vae_mnist saved_models/vae_mnist/serving\n"
              "          tfvae export --model-config saved_models/",
    "zoo": "examples: tfvae zoo list\n"
           "          tfvae zoo show vae2d_mnist\n"
           "          tfvae zoo publish runs/vae_mnist --name vae_mnist\n"
           "          tfvae zoo reexport iwae_mnist   # its serving/ by this version's export\n"
           "          tfvae zoo pack vae_mnist --out runs/zoo-release\n"
           "          tfvae zoo pack --out runs/zoo-release   # every entry, for a release",
}
MODEL_HELP = ("a zoo name (see `tfvae zoo list`), a zoo entry folder, archive or archive URL, a "
              ".keras file or a `tfvae train` output folder")
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)


def main(argv=None):
    from tfvae import __version__

    parser = argparse.ArgumentParser(
        prog="tfvae", description="Variational autoencoders for Keras 3.",
        epilog="Output: `tfvae --verbose COMMAND ...` also shows TensorFlow's C++ start-up "
               "logging (oneDNN, CUDA, XLA), hidden by default; `tfvae train --verbose 0|1|2` "
               "chooses Keras' training output.")
    parser.add_argument("--version", action="version", version=f"tfvae {__version__}")
    parser.add_argument("--verbose", dest="tensorflow_logging", action="store_true",
                        help="show TensorFlow's C++ start-up logging (given before the command)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a config file",
                                description="Train a model from a config file; rerun the same "
                                            "command to resume an interrupted run.",
                                epilog=EXAMPLES["train"])
    train.add_argument("config", help="a Python file defining get_config() (see zoo/configs/), "
                                      "or a zoo name: rerun that entry's recipe")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.epochs=3 (repeatable)")
    train.add_argument("--out", help="output folder (default: runs/<config name>)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2),
                       help="Keras' training output: 0 silent, 1 progress bar, 2 one line per "
                            "epoch (default: 1 on a terminal, 2 when stdout is a file or a pipe; "
                            "TensorFlow's own logging: tfvae --verbose train ...)")
    train.add_argument("--seed", type=int, help="training.seed: the initial weights and the "
                                                "posterior noise (data.seed, default 0, fixes "
                                                "the data order and the test binarization)")
    train.add_argument("--deterministic", action="store_true",
                       help="make every TensorFlow op deterministic (tf.config.experimental."
                            "enable_op_determinism; slower on GPUs)")

    evaluate = commands.add_parser(
        "evaluate", help="IWAE likelihood, active units, ELBO surgery and figures of a model",
        description="Evaluate a trained model on its dataset's test split (its validation split "
                    "for data without one): IWAE NLL, ELBO, active "
                    "units, ELBO surgery on the training split; prints a table, writes JSON and "
                    "PNG figures.", epilog=EXAMPLES["evaluate"])
    evaluate.add_argument("model", help=MODEL_HELP)
    evaluate.add_argument("--dataset", help="dataset name (default: from the run's config.json, else mnist)")
    evaluate.add_argument("--num-samples", type=int,
                          help="k of the IWAE estimate (default 5000; 50 "
                               "for a model whose exact likelihood is computed, as a check of it)")
    evaluate.add_argument("--surgery-samples", type=int, default=10000,
                          help="Monte Carlo draws of the ELBO surgery (0 skips it)")
    evaluate.add_argument("--out", help="output folder for evaluation.json and figures "
                                        "(default: the model's folder; runs/NAME for a zoo name)")
    evaluate.add_argument("--seed", type=int, default=0)

    sample = commands.add_parser("sample", help="draw samples of a model into a PNG grid",
                                 description="Draw x ~ p(x) from a model (E[x|z], z ~ p(z)) and "
                                             "save them as a PNG grid.", epilog=EXAMPLES["sample"])
    sample.add_argument("model", help=MODEL_HELP)
    sample.add_argument("--out", required=True, help="PNG file to write")
    sample.add_argument("--num", type=int, default=64, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)

    export = commands.add_parser(
        "export", help="write a TF Serving SavedModel (or the models.config of a zoo folder)",
        description="Export a model as a SavedModel with the signatures reconstruct "
                    "(serving_default), encode, decode, sample and log_prob into DIR/<version>/, "
                    "atomically; or, with --model-config, write the TF Serving models.config "
                    "that serves every <name>/serving/ under a folder.",
        epilog=EXAMPLES["export"], formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("model", nargs="?", help=MODEL_HELP)
    export.add_argument("dir", nargs="?", help="the TF Serving base path, e.g. saved_models/<name>/serving")
    export.add_argument("--version", type=int, help="version number (default: the next free one)")
    export.add_argument("--log-prob-samples", type=int, default=100,
                        help="k of the log_prob signature's IWAE estimate")
    export.add_argument("--model-config", metavar="MODELS_DIR",
                        help="write MODELS_DIR/models.config for every MODELS_DIR/<name>/serving/")
    export.add_argument("--base-path-prefix", default="/models",
                        help="where the server sees MODELS_DIR (default /models, as in the README's "
                             "docker command)")

    zoo = commands.add_parser(
        "zoo", help="list, show, publish or pack pretrained zoo models",
        description="list: the zoo models here ($TFVAE_ZOO_DIR, or a checkout's saved_models/), "
                    "cached ($TFVAE_HOME/zoo, default ~/.cache/tfvae/zoo) and fetchable (from "
                    "$TFVAE_ZOO_URL, default the registry's base_url); show: an entry's model card; "
                    "publish: a finished training run as a zoo entry; reexport: an entry's "
                    "serving/ rewritten from its model.keras by this version; pack: an entry's archive and "
                    "registry line (without NAME: every local entry's), for a release.",
        epilog=EXAMPLES["zoo"],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    zoo.add_argument("action", choices=("list", "show", "publish", "reexport", "pack"))
    zoo.add_argument("run", nargs="?", metavar="RUN|NAME",
                     help="publish: a finished `tfvae train` output folder; show, reexport, "
                          "pack: a zoo name (pack without it: every local entry)")
    zoo.add_argument("--name", help="publish: the entry's name (default: the run's config name)")
    zoo.add_argument("--out", default=os.path.join("runs", "zoo-release"),
                     help="pack: the folder for NAME.tar.gz (default runs/zoo-release)")
    zoo.add_argument("--registry", help="pack: the registry file to update (default, in a "
                                        "checkout: its tfvae/zoo_registry.json; needed with an "
                                        "installed package, whose registry is not edited)")

    args = parser.parse_args(argv)
    if args.command == "zoo" and args.action == "publish" and not args.run:
        zoo.error("publish needs RUN, a finished `tfvae train` output folder")
    if args.command == "zoo" and args.action in ("show", "reexport") and not args.run:
        zoo.error(f"{args.action} needs NAME, a zoo name (see `tfvae zoo list`)")
    if args.command == "export" and not args.model_config and not (args.model and args.dir):
        export.error("give MODEL and DIR, or --model-config MODELS_DIR")
    commands = {"train": _train, "evaluate": _evaluate, "sample": _sample, "export": _export,
                "zoo": _zoo}
    try:
        if not (args.command == "zoo" and args.action in ("list", "show", "pack")):  # (files only)
            _start_tensorflow(args.tensorflow_logging)
        return commands[args.command](args)
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return INTERRUPTED
    except Exception as e:
        if not _caused_by_ctrl_c(e):
            raise
        print(_interrupted(args), file=sys.stderr)
        return INTERRUPTED


def _caused_by_ctrl_c(error):
    """True when `error` was raised while a KeyboardInterrupt was being handled: TensorFlow's
    tf.function argument tracing turns a Ctrl-C that lands in it into "TypeError: Could not
    generate a generic TraceType for 256" (a bare `except:` in trace_type_builder.from_value)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False


def _start_tensorflow(show_logging):
    """Imports TensorFlow, finds its devices and registers the model classes with Keras.

    TensorFlow's C++ start-up logging (oneDNN, CUDA, XLA) is hidden unless `show_logging`:
    TF_CPP_MIN_LOG_LEVEL=2 quiets what comes after the start-up, but several lines are written
    before TensorFlow reads it ("All log messages before absl::InitializeLog() is called are
    written to STDERR"), so stderr (file descriptor 2) is captured while TensorFlow starts and
    replayed only if the start-up fails. A TF_CPP_MIN_LOG_LEVEL the user set is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if show_logging else "2")
    if show_logging or "tensorflow" in sys.modules:  # (already started: nothing more to hide)
        import tfvae.models  # noqa: F401  (registers the model classes with Keras)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # where CUDA is probed (cuInit) on a CPU machine
            import tfvae.models  # noqa: F401
        except Exception:  # (not KeyboardInterrupt: Ctrl-C gets its one line)
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _interrupted(args):
    """The line printed on Ctrl-C: what a rerun of the same command does."""
    if args.command == "train" and getattr(args, "train_run", None):
        from tfvae.app import train

        return f"interrupted; rerun the same command to resume ({train.resume_point(*args.train_run)})"
    if args.command in ("train", "evaluate"):
        return "interrupted; rerun the same command to resume"
    return "interrupted"


def _train(args):
    from tfvae import callbacks
    from tfvae.app import config as tfvae_config
    from tfvae.app import train

    from tfvae.app import zoo

    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    config_path = args.config
    if not os.path.exists(config_path) and zoo.config_file(config_path):  # a zoo name: its recipe
        config_path = zoo.config_file(config_path)
        print(f"tfvae train: zoo entry {args.config!r}: its recipe {config_path}", flush=True)
    try:
        config = tfvae_config.load(config_path, overrides)
    except tfvae_config.ConfigError as e:
        print(f"tfvae train: {e}", file=sys.stderr)
        return 2
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    out_dir = args.out or os.path.join("runs", config["name"])
    args.train_run = (config, out_dir)  # for the line printed on Ctrl-C
    # Progress bars are for terminals: in a log file each redraw is kept (control codes and all).
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    try:
        _, results = train.train(config, out_dir, verbose=verbose)
    except (tfvae_config.ConfigError, FileNotFoundError) as e:
        print(f"tfvae train: {e}", file=sys.stderr)
        return 2
    except callbacks.TrainingDiverged as e:
        print(f"tfvae train: {e}", file=sys.stderr)
        return 1
    split = results["split"]  # (the split the final evaluation measured: "test" where there is one)
    if not results.get("chief", True):  # (another worker of training.distribute=multi_worker)
        print(f"\nworker {results['worker'][0]} of {results['worker'][1]} finished: {split} ELBO "
              f"{results[f'{split}_elbo']:.2f} nats; the chief writes the outputs in {out_dir}")
        return 0
    print(f"\n{split} ELBO: {results[f'{split}_elbo']:.2f} nats "
          f"({results['epochs']} epochs, {results['seconds_per_epoch']:.1f} s/epoch)")
    if f"{split}_nll" in results:
        bits = results.get(f"{split}_bits_per_dim")
        print(f"{split} NLL (IWAE, k={results['num_samples']}): {results[f'{split}_nll']:.2f} "
              f"+- {results[f'{split}_nll_stderr']:.2f} nats"
              + (f" ({bits:.4f} bits/dim)" if bits is not None else ""))
    if f"{split}_exact_nll" in results:
        print(f"{split} NLL (exact): {results[f'{split}_exact_nll']:.2f} "
              f"+- {results[f'{split}_exact_nll_stderr']:.2f} nats")
    print(f"outputs: {out_dir}/model.keras, config.json, metrics.json, logs/ (tensorboard --logdir "
          f"{out_dir}/logs)\nnext: tfvae evaluate {out_dir}, then tfvae zoo publish {out_dir}")
    return 0


def _export(args):
    from tfvae import export

    if args.model_config:
        try:
            path, names = export.write_model_config(args.model_config, args.base_path_prefix)
        except FileNotFoundError as e:
            print(f"tfvae export: {e}", file=sys.stderr)
            return 2
        print(f"wrote {path} serving {len(names)} models: {', '.join(names)}")
        return 0
    model = _load("export", args.model)
    if model is None:
        return 2
    try:
        path = export.export_saved_model(model, args.dir, version=args.version,
                                         log_prob_samples=args.log_prob_samples)
    except (FileExistsError, ValueError) as e:
        print(f"tfvae export: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.model} to {path} (signatures: {', '.join(export.SIGNATURES)})")
    print(f"check it: saved_model_cli show --dir {path} --all")
    return 0


def _load(command, path):
    """A model from a path, or from the zoo when `path` is a zoo name and no such path exists."""
    from tfvae.app import zoo

    try:
        return zoo.load_name_or_path(path)
    except (ValueError, OSError) as e:  # (ZooError is a ValueError; Keras' file errors too)
        print(f"tfvae {command}: {e}", file=sys.stderr)
        return None


def _zoo(args):
    from tfvae import files
    from tfvae.app import zoo

    try:
        if args.action == "publish":
            config = files.read_json(os.path.join(args.run, "config.json"), default={})
            name = args.name or config.get("name")
            metadata = zoo.publish(args.run, name)
            elbo, split = zoo.held_out(metadata, "elbo")
            print(f"published {name}: {split} ELBO {elbo:.2f}, "
                  f"{len(metadata['files'])} files -> {os.path.join(zoo.zoo_dir(), name)}")
        elif args.action == "reexport":
            metadata = zoo.reexport(args.run)
            print(f"re-exported {args.run}: its outputs match the recorded ones; "
                  f"{os.path.join(zoo.zoo_dir(), args.run, 'serving', '1')} rewritten, "
                  f"{len(metadata['files'])} files checksummed (then, in a checkout: python "
                  f"zoo/cards.py {args.run}; tfvae zoo pack {args.run})")
        elif args.action == "pack":
            names = [args.run] if args.run else [m["name"] for m in zoo.list_models()]
            if not names:
                raise zoo.ZooError(f"No zoo entries to pack in {zoo.zoo_dir()} ($TFVAE_ZOO_DIR).")
            for name in names:  # (every entry checked before any archive is written)
                zoo.verify(name, zoo.zoo_dir())
            registry = zoo.release_registry(args.registry)
            for name in names:
                path, line = zoo.pack(name, args.out, registry_path=registry)
                print(json.dumps(line, sort_keys=True))
                print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB) and its line in "
                      f"{registry}", file=sys.stderr)
            url = zoo.registry(registry)["base_url"]
            print(f"upload {len(names)} archive(s) in {args.out} to " +
                  (f"{url} (the base_url of {registry})" if url else
                   f"a folder, and write its URL as base_url in {registry}"), file=sys.stderr)
        elif args.action == "show":
            card = os.path.join(zoo.entry(args.run), zoo.CARD)
            if not os.path.isfile(card):
                raise zoo.ZooError(f"Zoo model {args.run!r} has no model card: {card} is missing.")
            with open(card, encoding="utf-8") as f:
                print(f.read(), end="")
        else:
            _zoo_list(zoo)
    except (zoo.ZooError, OSError) as e:  # (OSError: e.g. a registry or --out not writable)
        print(f"tfvae zoo: {e}", file=sys.stderr)
        return 2
    return 0


def _zoo_list(zoo):
    entries = zoo.list()
    cache = zoo.cache_dir()
    print(f"{'name':<20} {'model':<16} {'ELBO':>10} {'NLL':>16}  {'split':<10} {'dataset':<14} where")
    for m in entries:
        if m["damaged"]:
            print(f"{m['name']:<20} damaged: {m['damaged']}")
            continue
        (nll_value, split), elbo = zoo.held_out(m, "nll"), zoo.held_out(m, "elbo")[0]
        nll = "" if nll_value is None else f"{nll_value:.2f} +- {zoo.held_out(m, 'nll_stderr')[0]:.2f}"
        if zoo.held_out(m, "exact_nll")[0] is not None:
            nll = f"{zoo.held_out(m, 'exact_nll')[0]:.2f} (exact)"
        where = (f"to fetch, {m['archive_size'] / 1e6:.1f} MB" if m["folder"] is None else
                 "cached" if os.path.dirname(m["folder"]) == cache else "local")
        print(f"{m['name']:<20} {m['model']:<16} {elbo:>10.2f} {nll:>16}  {split:<10} "
              f"{m['dataset']:<14} {where}")
    if not entries:
        print("(none)")
    local = zoo.zoo_dir() if zoo.zoo_dir() != cache else "none ($TFVAE_ZOO_DIR)"
    print(f"\nlocal: {local}; cached: {cache} ($TFVAE_HOME); fetched from: {zoo.base_url()} "
          "($TFVAE_ZOO_URL)")
    print("load one with tfvae.zoo.load(NAME), read its card with tfvae zoo show NAME, or sample "
          "it: tfvae sample NAME --out grid.png")
    if zoo.zoo_dir_problem():
        print(f"tfvae zoo: {zoo.zoo_dir_problem()}", file=sys.stderr)


def _sample(args):
    import numpy as np

    from tfvae import plots

    model = _load("sample", args.model)
    if model is None:
        return 2
    if args.num < 1:
        print(f"tfvae sample: --num must be positive. Received: {args.num}", file=sys.stderr)
        return 2
    try:  # a grid of images needs examples that are images
        plots.as_images(np.zeros((1,) + model.input_shape))
    except ValueError as e:
        print(f"tfvae sample: this model's samples are not images: {e}. Received: "
              f"model={args.model!r}", file=sys.stderr)
        return 2
    plots.sample_grid(model, args.out, num_samples=args.num, seed=args.seed)
    print(f"wrote {args.num} samples to {args.out}")
    return 0


def _evaluate(args):
    from tfvae import files
    from tfvae.app import zoo
    from tfvae.app import train as train_lib

    model = _load("evaluate", args.model)
    if model is None:
        return 2
    if not zoo.is_zoo_source(args.model):
        folder = os.path.dirname(files.model_path(args.model))
        config = files.read_json(os.path.join(folder, "config.json"), default={})
    else:  # (verified by _load); results go to runs/<name>, not into the zoo entry
        metadata = zoo.metadata(args.model)
        config, folder = metadata["config"], os.path.join("runs", metadata["name"])
    try:
        results = train_lib.evaluate(
            model, config, args.out or folder, dataset=args.dataset, num_samples=args.num_samples,
            surgery_samples=args.surgery_samples, seed=args.seed, run_dir=folder,
            verbose=1 if sys.stdout.isatty() else 2)  # (as train's: in a log file, no bar redraws)
    except (FileNotFoundError, ValueError) as e:  # (no data, a damaged file, another shape)
        print(f"tfvae evaluate: {e}. Received: model={args.model!r}", file=sys.stderr)
        return 2
    _print_table(results)
    out = args.out or folder
    print(f"wrote {os.path.join(out, 'evaluation.json')} and {len(results['figures'])} figures in {out}")
    return 0


def _print_table(results):
    iwae, units = results["iwae"], results["active_units"]
    split = results["split"]
    rows = [(f"{split} NLL (IWAE, k={iwae['num_samples']})", f"{iwae['nll']:.2f} +- {iwae['stderr']:.2f}"
             + (f" nats, {iwae['bits_per_dim']:.4f} bits/dim" if "bits_per_dim" in iwae else "")),
            (f"{split} ELBO", f"{iwae['elbo']:.2f}"),
            ("active units", f"{units['active_units']} {units['per_layer']}")]
    if "exact" in results:
        rows.insert(1, (f"{split} NLL (exact)", f"{results['exact']['nll']:.2f} +- {results['exact']['stderr']:.2f}"))
    surgery = results.get("elbo_surgery")
    if surgery:
        avg_kl = (f"{surgery['avg_kl']:.2f}" if surgery["avg_kl"] is not None else
                  f"{surgery['avg_kl_mc']:.2f} +- {surgery['avg_kl_mc_stderr']:.2f} (Monte Carlo)")
        rows += [("avg KL (train)", avg_kl),
                 ("index-code MI", f"{surgery['index_code_mi']:.2f} +- {surgery['index_code_mi_stderr']:.2f}"
                                   f" (log N = {surgery['log_n']:.2f})"),
                 ("marginal KL", f"{surgery['marginal_kl']:.2f} +- {surgery['marginal_kl_stderr']:.2f}")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
