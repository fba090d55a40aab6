"""Variance of the encoder gradient under each gradient option, at a trained model's parameters.

    python zoo/gradient_variance.py runs/harmonium_mnist runs/bvae16_mnist --draws 500
    python zoo/gradient_variance.py runs/lvae_mnist --draws 200

For every run folder (a `tfvae train` output) it draws the gradient of the batch-mean
objective on the first test batch `--draws` times per option, prints a markdown table and
writes gradient_variance.json into the folder. Options compared:
- HarmoniumVAE with binary latents: straight-through, score function without and with a
  moving-average baseline, relaxed (factorized priors only); gradient of the encoder's parameters.
- LadderVAE: conditional_kl_gradient "full" vs "stop"; gradient of the parameters of every
  layer above the bottom one (the q(v) of the issue: they produce the conditioning samples).
"""
import argparse
import os



import tfvae
from tfvae import data, evaluation, files

ESTIMATOR_CASES = [{"estimator": "straight_through"},
                   {"estimator": "score_function", "baseline": "none"},
                   {"estimator": "score_function", "baseline": "moving_average"},
                   {"estimator": "relaxed"}]
LADDER_CASES = [{"conditional_kl_gradient": "full"}, {"conditional_kl_gradient": "stop"}]


def cases(model):
    """(settings list, weights) to compare for this model: the ladder's KL gradient options
    (on the upper layers' weights), or the estimators its binary latent layers can take."""
    config = model.get_config()
    if "conditional_kl_gradient" in config:
        upper = [w for part in model.up_blocks[1:] + model.up_heads[1:] for w in part.trainable_weights]
        return LADDER_CASES, upper
    if any("score_function" in latent.family.estimators for latent in model.latent_layers()):
        valid = []
        for case in ESTIMATOR_CASES:
            try:
                type(model).from_config({**config, **case})
                valid.append(case)
            except ValueError:  # e.g. relaxed draws need a factorized prior
                pass
        return valid, None
    raise SystemExit(f"no gradient options to compare for {type(model).__name__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="tfvae train output folders")
    parser.add_argument("--draws", type=int, default=500, help="gradient draws per estimator")
    parser.add_argument("--batch", type=int, default=100, help="test images in the batch")
    args = parser.parse_args(argv)
    print("| run | option | total variance | mean norm | variance / mean norm^2 |")
    print("|---|---|---|---|---|")
    for folder in args.runs:
        model = files.load_model(folder)
        config = files.read_json(os.path.join(folder, "config.json"))
        test = data.load(config["data"]["name"], "test", binarize=config["data"]["test_binarize"],
                         batch_size=args.batch, shuffle=False)
        x = next(iter(test))
        results = []
        settings_list, weights = cases(model)
        for settings in settings_list:
            r = evaluation.gradient_variance(model, x, num_draws=args.draws, weights=weights, **settings)
            r = {k: v for k, v in r.items() if k not in ("mean", "variance")}
            r["relative_variance"] = r["total_variance"] / max(r["mean_norm"] ** 2, 1e-30)
            results.append(r)
            option = ", ".join(f"{k}={v}" for k, v in settings.items())
            print(f"| {os.path.basename(os.path.normpath(folder))} | {option} | {r['total_variance']:.4g} | {r['mean_norm']:.4g} "
                  f"| {r['relative_variance']:.4g} |", flush=True)
        files.write_json(os.path.join(folder, "gradient_variance.json"),
                         {"batch": args.batch, "draws": args.draws, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
