"""The encoder's gradient signal-to-noise ratio against k, per `iw_gradient` (README, "The
importance-weighted bound's gradient"): writes zoo/figures/iw_gradient_snr.png and .json.

SNR = |E g| / std(g) per parameter (Rainforth et al. 2018), from `tfvae.evaluation.gradient_variance`:
1. The linear-Gaussian model p(z) = N(0, I), p(x|z) = N(z, I) with q(z|x) = N(m, s^2) away from
   the posterior N(x/2, I/2) (m = (0.3, -0.5), s = (0.6, 1.3), x = (1, 0.2); the model of
   tests/test_iw_gradients.py): the SNR of the gradient in m, averaged over the two units.
2. A trained model (default: the zoo's vae_mnist): the median SNR over the encoder's weights
   on 100 test images.

    python zoo/gradient_snr.py [--draws 400] [--model vae_mnist] [--model-draws 100]
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
    x = tfvae.data.load("mnist", split="test", binarize="fixed")[:100]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--model", default="vae_mnist")
    parser.add_argument("--model-draws", type=int, default=100)
    args = parser.parse_args()
    ks = [1, 3, 10, 30, 100, 300]
    model_ks = [1, 5, 50]
    linear = linear_gaussian_snr(ks, args.draws)
    trained = trained_model_snr(args.model, model_ks, args.model_draws) if args.model else {}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "iw_gradient_snr.json"), "w") as f:
        json.dump({"command": "python zoo/gradient_snr.py", "cpu_flags": cpu_flags(),
                   "linear_gaussian": {"k": ks, "draws": args.draws, **linear},
                   args.model or "model": {"k": model_ks, "draws": args.model_draws, **trained}},
                  f, indent=1)
    fig = tfvae.plots.new_figure((11.0, 4.0))
    axes = fig.subplots(1, 2 if trained else 1)
    axes = np.atleast_1d(axes)
    for ax, (title, k_values, table) in zip(axes, [
            ("linear-Gaussian: SNR of dL/dm", ks, linear),
            (f"{args.model}: median SNR over encoder weights", model_ks, trained)]):
        for name in ESTIMATORS:
            ax.plot(k_values, table[name], marker="o", label=name)
        ax.set(xscale="log", yscale="log", xlabel="k (importance samples)", ylabel="SNR", title=title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "iw_gradient_snr.png"), dpi=100)
    print("wrote", os.path.join(OUT, "iw_gradient_snr.png"))


if __name__ == "__main__":
    main()
