"""The figure gallery of README ("Priors"): writes PNGs into zoo/figures/.

1. aggregate_posterior.png: for 2-latent MNIST models trained with different priors, one
   posterior draw per test image over the prior's density contours (`tfvae.plots.aggregate_posterior`).
2. hierarchical_posterior.png: a two-level Gaussian posterior q(v) = N(0, 1),
   q(u|v) = N(F v, F v v^T F^T + beta I) (u in R^2, F = (1, 0.5)^T, beta = 0.05). Each level is
   Gaussian, but u = F v (1 + e) + sqrt(beta) e' with e, e' ~ N(0, 1) multiplies two Gaussians,
   so the marginal q(u) is heavy-tailed: kurtosis of u_1 = (30 + 12 beta + 3 beta^2) / (2 + beta)^2
   = 7.28 (excess 4.28; a Gaussian has 0).

    TFVAE_DATA_DIR=../shared/data python zoo/figures.py runs/vae2d_mnist runs/vae2d_vamp_wu5_mnist \\
        runs/vae2d_mixture_wu5_mnist
"""
import argparse
import os

import numpy as np

import tfvae

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
BETA, F = 0.05, np.array([1.0, 0.5])


def hierarchical_posterior(path, num_samples=200000, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=num_samples)
    mean = v[:, None] * F                                          # F v
    u = mean * (1 + rng.normal(size=(num_samples, 1))) + np.sqrt(BETA) * rng.normal(size=(num_samples, 2))
    kurtosis = np.mean(u[:, 0] ** 4) / np.mean(u[:, 0] ** 2) ** 2
    expected = (30 + 12 * BETA + 3 * BETA ** 2) / (2 + BETA) ** 2
    fig = tfvae.plots.new_figure((12.5, 4.0))
    axes = fig.subplots(1, 3)
    show = slice(0, 20000)
    axes[0].scatter(v[show], u[show, 0], s=1, alpha=0.3)
    axes[0].set(xlabel="v", ylabel="u_1", title="q(v, u_1): the funnel", xlim=(-4, 4), ylim=(-10, 10))
    axes[1].scatter(u[show, 0], u[show, 1], s=1, alpha=0.3)
    axes[1].set(xlabel="u_1", ylabel="u_2", title="q(u) = integral q(u|v) q(v) dv", xlim=(-10, 10),
                ylim=(-6, 6))
    bins = np.linspace(-15, 15, 151)
    axes[2].hist(u[:, 0], bins=bins, density=True, histtype="step", label="q(u_1)")
    sd = u[:, 0].std()
    centers = 0.5 * (bins[1:] + bins[:-1])
    axes[2].plot(centers, np.exp(-0.5 * (centers / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
                 label="Gaussian, same variance")
    axes[2].set_yscale("log")
    axes[2].set_ylim(1e-6, 1)
    axes[2].set(xlabel="u_1", title=f"kurtosis {kurtosis:.2f} (formula {expected:.2f}; Gaussian 3)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    tfvae.plots.save_figure(fig, path, dpi=110)
    return kurtosis, expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("runs", nargs="*", help="run folders (or .keras files) of 2-latent models")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--examples", type=int, default=5000, help="test images to plot")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    kurtosis, expected = hierarchical_posterior(os.path.join(args.out, "hierarchical_posterior.png"))
    print(f"hierarchical_posterior.png: kurtosis of u_1 {kurtosis:.3f} (formula {expected:.3f})")
    if args.runs:
        images, labels = tfvae.data.load_arrays("mnist", "test")
        x = tfvae.data.binarize_fixed(images[:args.examples], 0).astype("float32")
        models = [tfvae.files.load_model(r) for r in args.runs]
        titles = [f"{os.path.basename(os.path.normpath(r))} (prior: {m.prior_kind})"
                  for r, m in zip(args.runs, models)]
        path = tfvae.plots.aggregate_posterior(models, x, labels[:args.examples],
                                               os.path.join(args.out, "aggregate_posterior.png"),
                                               titles=titles)
        print(f"{os.path.basename(path)}: {len(models)} models")


if __name__ == "__main__":
    main()
