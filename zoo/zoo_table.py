"""The README's zoo table (markdown), made from saved_models/*/metadata.json.

    python zoo/zoo_table.py            # print it
    python zoo/zoo_table.py --readme   # replace the table in README.md with it

`tests/test_zoo.py` checks that README.md holds the table the shipped metadata gives.

Published anchors (test NLL on MNIST, nats) and the targets of the zoo issue:
vae_mnist 86.76 (Burda et al. 2016, table 1, VAE k=1, 1 stochastic layer); iwae_mnist 85.54 / 84.78
(same, IWAE k=5 / k=50); hvae2_mnist 85.33 / 82.90 (same, 2 stochastic layers, VAE / IWAE k=50);
lvae_mnist 81.74 (Sonderby et al. 2016, table 1, 5-layer LVAE); bvae_mnist 116.0 (ST) /
105.0 (Gumbel-Softmax), Jang et al. 2017, fixed binarization: their table 1 gives the test
negative ELBO, not an importance-sampled NLL.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tfvae.app import config as tfvae_config  # noqa: E402
from tfvae import files  # noqa: E402
from tfvae.app import zoo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ANCHORS = {  # name: (published NLL, what it is, our target)
    "vae_mnist": ("86.76", "IWAE paper, VAE", "<= 88.0"),
    "iwae_mnist": ("85.54 / 84.78", "IWAE paper, k = 5 / 50", "<= 85.0"),  # (issue 32)
    "iwae2_mnist": ("82.90", "IWAE paper, 2 layers, k = 50", "<= 83.5"),
    "lvae_iw_mnist": ("81.74", "Sonderby et al. 2016, fine-tuned with IW", "<= 82.5"),
    "hvae2_mnist": ("85.33 / 82.90", "IWAE paper, 2 layers, VAE / IWAE", "<= 86.0"),
    "lvae_mnist": ("81.74", "Sonderby et al. 2016", "<= 84.0"),
    # Jang et al.'s table 1 reports the test negative ELBO: compare with our test ELBO column
    "bvae_mnist": ("116.0 / 105.0", "Jang et al. 2017, -ELBO, ST / Gumbel", "<= 110"),
    # 8-bit entries: the targets are in bits/dim (the card's bits/dim row; lzma -9e on the same
    # test images: MNIST 1.3823, Fashion-MNIST 3.8552 bits/dim, benchmarks/compressors.py)
    "vae_mnist8": ("-", "", "<= 1.30 bits/dim (aim 1.20)"),
    "vae_fashion_mnist8": ("-", "", "< 3.47 bits/dim (0.9 x lzma -9e)"),
}


def leaves(tree, prefix=""):
    """{"a.b": value} for every leaf of a nested dict."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def override_text(value):
    """How `--set` reads `value` back (a Python literal, or a bare string), with no spaces, so
    the command can be pasted into a shell: [200, 200] -> [200,200]."""
    return value if isinstance(value, str) else repr(value).replace(" ", "")


def model_config(config):
    """The config of the model a training config builds (old spellings as the model they
    load as: bvae_mnist's HarmoniumVAE(tie_weights=False) is VAE(latent="bernoulli")), as JSON."""
    model = tfvae_config.build_model(config)
    keep = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    return json.dumps([type(model).__name__, keep], sort_keys=True, default=str)


def reproduce_command(entry):
    """`tfvae train zoo/configs/<name>.py`, plus a `--set` for each training setting in which
    the entry differs from the config file as it is now (a recipe changed after publishing).
    Evaluation settings are left out: `zoo/build.py` evaluates separately."""
    config = f"zoo/configs/{entry['config']['name']}.py"
    if not os.path.exists(os.path.join(ROOT, config)):
        return "see metadata.json config"
    # (through JSON, as metadata.json holds it: tuples become lists)
    current = leaves(json.loads(json.dumps(tfvae_config.load(os.path.join(ROOT, config)))))
    used = leaves(entry["config"])
    same_model = model_config(entry["config"]) == model_config(tfvae_config.load(os.path.join(ROOT, config)))
    changed = [f"--set {key}={override_text(value)}" for key, value in sorted(used.items())
               if not key.startswith(("evaluation.", "model.")) and current.get(key) != value]
    if not same_model:  # every model argument that differs, defaults included (a new option)
        def arguments(config):
            return json.loads(json.dumps(tfvae_config.model_arguments(config), default=str))
        was = arguments(entry["config"])
        now = arguments(tfvae_config.load(os.path.join(ROOT, config)))
        changed += [f"--set model.{key}={override_text(was.get(key))}" for key in sorted(was)
                    if was.get(key) != now.get(key)]
    return f"`tfvae train {' '.join([config] + changed)}`"


HEADER = "| name | model | epochs | test NLL | test ELBO | published | target | active units | reproduce |"
README = os.path.join(ROOT, "README.md")


def table():
    """The markdown table of every zoo entry, one row each, sorted by name."""
    lines = [HEADER, "|---|---|---|---|---|---|---|---|---|"]
    for m in zoo.list_models():
        if m.get("damaged"):
            raise SystemExit(f"zoo_table: {m['name']} is damaged: {m['damaged']}")
        published, what, target = ANCHORS.get(m["name"], ("-", "", "report"))
        lines.append(
            f"| {m['name']} | {m['model']} | {m['epochs']} | {zoo.nll_text(m)} | {zoo.held_out(m, 'elbo')[0]:.2f} "
            f"| {published}{' (' + what + ')' if what else ''} | {target} "
            f"| {m['active_units'] if m['active_units'] is not None else '-'} | {reproduce_command(m)} |")
    return "\n".join(lines)


def readme_table(text):
    """(start, end) of the zoo table in README text: from its header line to the blank line."""
    start = text.index(HEADER)
    return start, text.index("\n\n", start)


def main(argv):
    if argv == ["--readme"]:
        text = open(README, encoding="utf-8").read()
        start, end = readme_table(text)
        with files.atomic_path(README) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text[:start] + table() + text[end:])
        print(f"wrote the zoo table ({len(zoo.list_models())} entries) into {README}")
    elif not argv:
        print(table())
    else:
        sys.exit("usage: python zoo/zoo_table.py [--readme]")


if __name__ == "__main__":
    main(sys.argv[1:])
