"""Prints the ELBO surgery table (markdown) of trained runs from their evaluation.json.

    python zoo/surgery_table.py runs/vae2d_mnist runs/vae10d_mnist runs/vae20d_mnist

Each folder is a `tfvae train` output on which `tfvae evaluate` has run.
"""
import json
import os
import sys


def row(folder):
    with open(os.path.join(folder, "evaluation.json"), encoding="utf-8") as f:
        result = json.load(f)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    iwae, surgery, units = result["iwae"], result["elbo_surgery"], result["active_units"]
    avg_kl = surgery["avg_kl"] if surgery["avg_kl"] is not None else surgery["avg_kl_mc"]
    prior = config["model"].get("prior", "standard_normal")
    return (f"| {config['name']} | {config['model']['latent_dim']} | {prior} | {iwae['elbo']:.2f} "
            f"| {avg_kl:.2f} | {surgery['index_code_mi']:.2f} +- {surgery['index_code_mi_stderr']:.2f} "
            f"| {surgery['marginal_kl']:.2f} +- {surgery['marginal_kl_stderr']:.2f} "
            f"| {units['active_units']} | {iwae['nll']:.2f} +- {iwae['stderr']:.2f} |")


def main(folders):
    print("| run | latents | prior | test ELBO | avg KL (train) | index-code MI | marginal KL "
          "| active units | test NLL (IWAE k=5000) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in folders:
        print(row(folder))
    print("\nlog N = log 60000 = 11.00 bounds the index-code MI. The avg KL is in closed form for "
          "the N(0, I) prior and the Monte Carlo estimate (MI + marginal KL) for learned priors.")


if __name__ == "__main__":
    main(sys.argv[1:])
