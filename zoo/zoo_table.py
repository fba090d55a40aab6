"""Prints the README's zoo table (markdown) from saved_models/*/metadata.json.

    python zoo/zoo_table.py            # paste the output under "Pretrained zoo" in README.md

Published anchors (test NLL on MNIST, nats) and the targets of the zoo issue:
vae_mnist 86.76 (Burda et al. 2016, table 1, VAE k=1, 1 stochastic layer); iwae_mnist 84.78
(same, IWAE k=50); hvae2_mnist 85.33 / 82.90 (same, 2 stochastic layers, VAE / IWAE k=50);
lvae_mnist 81.74 (Sonderby et al. 2016, table 1, 5-layer LVAE); bvae_mnist 116.0 (ST) /
105.0 (Gumbel-Softmax), Jang et al. 2017, fixed binarization.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tfvae import zoo  # noqa: E402

ANCHORS = {  # name: (published NLL, what it is, our target)
    "vae_mnist": ("86.76", "IWAE paper, VAE", "<= 88.0"),
    "iwae_mnist": ("84.78", "IWAE paper, k = 50", "<= 86.0"),
    "hvae2_mnist": ("85.33 / 82.90", "IWAE paper, 2 layers, VAE / IWAE", "<= 86.0"),
    "lvae_mnist": ("81.74", "Sonderby et al. 2016", "<= 84.0"),
    "bvae_mnist": ("116.0 / 105.0", "Jang et al. 2017, ST / Gumbel", "<= 110"),
}


def nll_text(m):
    if m.get("test_exact_nll") is not None:
        return f"{m['test_exact_nll']:.2f} (exact)"
    if m.get("test_nll") is None:
        return "not measured"
    return f"{m['test_nll']:.2f} +- {m['test_nll_stderr']:.2f} (IWAE k={m['num_samples']})"


def main():
    print("| name | model | epochs | test NLL | test ELBO | published | target | active units "
          "| reproduce |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in zoo.list():
        published, what, target = ANCHORS.get(m["name"], ("-", "", "report"))
        config = f"zoo/configs/{m['config']['name']}.py"
        command = (f"`tfvae train {config}`" if os.path.exists(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", config))
                   else "see metadata.json config")
        print(f"| {m['name']} | {m['model']} | {m['epochs']} | {nll_text(m)} | {m['test_elbo']:.2f} "
              f"| {published}{' (' + what + ')' if what else ''} | {target} "
              f"| {m['active_units'] if m['active_units'] is not None else '-'} | {command} |")


if __name__ == "__main__":
    main()
