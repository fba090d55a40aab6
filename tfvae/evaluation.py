"""Evaluation of trained models: the importance-weighted log-likelihood and related diagnostics."""
import math
import time

import keras
import numpy as np


def iwae_nll(model, dataset, num_samples=5000, chunk_size=None, seed=0, verbose=1):
    """Test negative log-likelihood by the IWAE estimate, -log (1/k) sum_i p(x, z_i)/q(z_i|x).

    Burda, Grosse & Salakhutdinov 2016 (section 5 uses k = 5000). The estimate of log p(x) is
    a stochastic lower bound, so the NLL is an upper bound in expectation.

    Args:
        model: a tfvae model.
        dataset: batches of x (or (x, label) pairs).
        num_samples: k.
        chunk_size: samples per chunk (see `BaseVAE.log_prob`).
        seed: makes the estimate reproducible.
        verbose: 1 shows a progress bar.

    Returns:
        dict: `nll` (mean over examples), `stderr` (its standard error over examples), `elbo`
        (mean one-sample ELBO), `num_samples`, `num_examples`, `seconds`.
    """
    start = time.time()
    log_px, elbos = [], []
    total = _num_batches(dataset)
    progress = keras.utils.Progbar(total, unit_name="batch") if verbose else None
    for i, batch in enumerate(dataset):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        batch_seed = (seed * 7919 + i) % (2 ** 31 - 1)
        log_px.append(np.asarray(model.log_prob(x, num_samples, chunk_size, seed=batch_seed)))
        elbos.append(np.asarray(model.elbo(x, seed=batch_seed)))
        if progress is not None:
            progress.update(i + 1, [("nll", -float(np.mean(np.concatenate(log_px))))])
    log_px, elbos = np.concatenate(log_px), np.concatenate(elbos)
    return {
        "nll": float(-log_px.mean()),
        "stderr": float(log_px.std(ddof=1) / math.sqrt(len(log_px))),
        "elbo": float(elbos.mean()),
        "num_samples": int(num_samples),
        "num_examples": int(len(log_px)),
        "seconds": time.time() - start,
    }


def _num_batches(dataset):
    try:
        n = int(dataset.cardinality())
    except (AttributeError, TypeError):
        return None
    return n if n >= 0 else None
