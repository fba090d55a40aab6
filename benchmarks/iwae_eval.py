"""Time and peak memory of `tfvae.evaluation.iwae_nll` on the MNIST test set.

Memory is bounded by one batch x one chunk of samples, so a run over the first N test images
shows the same peak as the full set; the time scales linearly with N.

    TFVAE_DATA_DIR=../shared/data python benchmarks/iwae_eval.py runs/vae_mnist --examples 1000
"""
import argparse
import json
import resource
import time

import tfvae


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file or a `tfvae train` output folder")
    parser.add_argument("--examples", type=int, default=10000, help="test images to use")
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()

    model = tfvae.files.load_model(args.model)
    test = tfvae.data.load("mnist", "test", binarize="fixed", batch_size=args.batch_size)
    test = test.take(-(-args.examples // args.batch_size))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.time()
    result = tfvae.evaluation.iwae_nll(model, test, num_samples=args.num_samples)
    result.update(
        seconds=time.time() - start,
        seconds_per_10000_examples=(time.time() - start) * 10000 / result["num_examples"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_before_mb=before / 1024,
        batch_size=args.batch_size,
    )
    print(json.dumps(result, indent=2))
    if args.out:
        tfvae.files.write_json(args.out, result)


if __name__ == "__main__":
    main()
