"""The encoder's gradient signal-to-noise ratio against k, per `iw_gradient` (README, "The
importance-weighted bound's gradient"): writes zoo/figures/iw_gradient_snr.png and .json.

SNR = |E g| / std(g) per parameter (Rainforth et al. 2018), from `tfvae.evaluation.gradient_variance`:
1. The linear-Gaussian model p(z) = N(0, I), p(x|z) = N(z, I) with q(z|x) = N(m, s^2) away from
   the posterior N(x/2, I/2) (m = (0.3, -0.5), s = (0.6, 1.3), x = (1, 0.2); the model of
   tests/test_iw_gradients.py): the SNR of the gradient in m, averaged over the two units.
2. A trained model (default: the zoo's vae_mnist): the median SNR over the encoder's weights
   on 100 test images.

    TFVAE_DATA_DIR=../shared/data python zoo/gradient_snr.py [--draws 400] [--model vae_mnist] [--model-draws 100]
"""
import argparse
import json
import os
import platform
import subprocess
import time

import keras
import numpy as np

import tfvae
from tfvae import evaluation

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
ESTIMATORS = ("plain", "stl", "dreg")
X = np.array([[1.0, 0.2]], np.float32)
LOC, SCALE = np.array([0.3, -0.5]), np.array([0.6, 1.3])


def linear_gaussian(num_samples):
    """VAE with q(z|x) = N(LOC, SCALE^2) (the latent projection's bias) and p(x|z) = N(z, I)."""
    model = tfvae.VAE(input_shape=(2,), latent_dim=2, encoder=keras.layers.Identity(),
                      decoder=keras.Sequential([keras.layers.Dense(2, kernel_initializer="identity")]),
                      likelihood=tfvae.likelihoods.get("gaussian", scale=1.0), min_scale=0.0,
                      num_samples=num_samples, analytic_kl=False, seed=0)
    model.build((None, 2))
    projection = model.posterior_layer.projection
    projection.kernel.assign(np.zeros(projection.kernel.shape, np.float32))
    projection.bias.assign(np.concatenate([LOC, np.log(np.expm1(SCALE))]).astype(np.float32))
    return model


def linear_gaussian_snr(ks, draws):
    table = {}
    for k in ks:
        model = linear_gaussian(k)
        for name in ESTIMATORS:
            result = evaluation.gradient_variance(model, X, num_draws=draws, iw_gradient=name,
                                                  num_samples=k,
                                                  weights=[model.posterior_layer.projection.bias])
            table.setdefault(name, []).append(float(np.mean(result["snr"][:2])))
        print(f"linear-Gaussian k={k}: " + ", ".join(f"{n} {table[n][-1]:.3f}" for n in ESTIMATORS),
              flush=True)
    return table


def trained_model_snr(name, ks, draws):
    model = tfvae.zoo.load(name)
    images, _ = tfvae.data.load_arrays("mnist", "test")
    x = tfvae.data.binarize_fixed(images[:100]).astype(np.float32)  # (seed 0, as the zoo tests)
    table = {}
    for k in ks:
        for estimator in ESTIMATORS:
            start = time.time()
            result = evaluation.gradient_variance(model, x, num_draws=draws, iw_gradient=estimator,
                                                  num_samples=k)
            table.setdefault(estimator, []).append(float(np.median(result["snr"])))
            print(f"{name} k={k} {estimator}: median SNR {table[estimator][-1]:.4f} "
                  f"({time.time() - start:.0f} s)", flush=True)
    return table


def cpu_flags():
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        line = next(l for l in flags.splitlines() if l.startswith("Flags"))
        return " ".join(f for f in line.split() if f.startswith(("avx", "amx", "fma")))
    except Exception:  # noqa: BLE001  (not Linux)
        return platform.processor()


def plot(results, path):
    """The two panels of SNR against k, with the level pure noise reaches with the same draws."""
    import matplotlib.ticker
    fig = tfvae.plots.new_figure((11.0, 4.0))
    panels = [("linear-Gaussian: SNR of dL/dm (mean of 2 units)", results["linear_gaussian"], 0.798)]
    model = next((k for k in results if k not in ("command", "cpu_flags", "linear_gaussian")), None)
    if model and results[model].get("plain"):
        panels.append((f"{model}: median SNR over the encoder's weights", results[model], 0.674))
    for ax, (title, table, noise) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        for name in ESTIMATORS:
            ax.plot(table["k"], table[name], marker="o", label=name)
        # |mean| / std of a gradient whose true mean is 0, from `draws` draws (E|N(0,1)| or its median)
        ax.axhline(noise / np.sqrt(table["draws"]), color="grey", linestyle="--", linewidth=1,
                   label=f"noise level ({table['draws']} draws)")
        ax.set(xscale="log", yscale="log", xlabel="k (importance samples)", ylabel="SNR", title=title)
        ax.set_xticks(table["k"])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8)
    fig.tight_layout()
    tfvae.plots.save_figure(fig, path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--model", default="vae_mnist")
    parser.add_argument("--model-draws", type=int, default=100)
    parser.add_argument("--plot-only", action="store_true", help="redraw from the JSON")
    args = parser.parse_args()
    json_path = os.path.join(OUT, "iw_gradient_snr.json")
    if not args.plot_only:
        ks = [1, 3, 10, 30, 100, 300]
        model_ks = [2, 10, 50]  # (k = 1 with a closed-form KL has no score term for STL or DReG to drop)
        linear = linear_gaussian_snr(ks, args.draws)
        trained = trained_model_snr(args.model, model_ks, args.model_draws) if args.model else {}
        os.makedirs(OUT, exist_ok=True)
        results = {"command": "TFVAE_DATA_DIR=../shared/data python zoo/gradient_snr.py",
                   "cpu_flags": cpu_flags(),
                   "linear_gaussian": {"k": ks, "draws": args.draws, **linear}}
        if args.model:
            results[args.model] = {"k": model_ks, "draws": args.model_draws, **trained}
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    with open(json_path) as f:
        results = json.load(f)
    plot(results, os.path.join(OUT, "iw_gradient_snr.png"))
    print("wrote", os.path.join(OUT, "iw_gradient_snr.png"))


if __name__ == "__main__":
    main()
