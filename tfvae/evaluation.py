"""Evaluation of trained models: IWAE log-likelihood, exact log-likelihood by enumeration,
active units, ELBO surgery, the amortization gap, the variance of gradient estimators.

Every function takes a model and data (a `tf.data.Dataset` of batches, or an array) and returns
a dict of plain floats and arrays, ready for JSON.
"""
import hashlib
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import cluster, files
from tfvae import latents
from tfvae.models.base import MAX_ENUMERATED_UNITS

ARRAY_BATCH = 100  # rows of an array per batch (its own seed, progress step and checkpoint)


PROGRESS_LINE_SECONDS = 60  # iwae_nll(verbose=2): at most one progress line per minute


def iwae_nll(model, dataset, num_samples=5000, chunk_size=None, seed=0, verbose=1, checkpoint=None,
             strategy=None, dequantized=False, jit_compile=True):
    """Test negative log-likelihood by the IWAE estimate, -log (1/k) sum_i p(x, z_i)/q(z_i|x).

    Burda, Grosse & Salakhutdinov 2016 (section 5 uses k = 5000). The estimate of log p(x) is
    a stochastic lower bound, so the NLL is an upper bound in expectation.

    Args:
        model: a tfvae model.
        dataset: batches of x (or (x, label) pairs), or an array.
        num_samples: k.
        chunk_size: samples per chunk (see `BaseVAE.log_prob`).
        seed: makes the estimate reproducible.
        verbose: 1 shows a progress bar, 2 (for a log file) a line at most once a minute
            (batch i/n, the NLL so far, minutes per batch and left) and one at the end.
        checkpoint: a JSON file that keeps the finished batches' estimates, so that a run stopped
            part-way continues where it stopped, with the same result (every batch has its own
            seed). A saved batch is used only for the same weights, k, seed, chunk size and
            batch contents (SHA-256 of each); the file is removed at the end.
        strategy: a `tf.distribute.MultiWorkerMirroredStrategy` (default: the current
            strategy): every worker, given the whole `dataset`, estimates batch i when i mod W
            is its place among W workers, and the workers' estimates are then summed into every
            worker's result, the same as one process's (the same batches and seeds).
        jit_compile: XLA for `log_prob`'s chunks (the default), or graphs without it; the
            same draws either way.
        dequantized: the dataset is 8-bit data dequantized for a continuous likelihood
            (`tfvae.data.load(..., dequantize=True)`): bits/dim then counts the D log 256 of the
            discrete bound (`bits_per_dim`).

    Returns:
        dict: `nll` (mean over examples), `stderr` (its standard error over examples), `elbo`
        (mean one-sample ELBO), `num_samples`, `num_examples`, `seconds` (of this call),
        `resumed_batches` (batches taken from `checkpoint`); for discrete data (or
        `dequantized`) also `bits_per_dim` and its `bits_per_dim_stderr`.

    Example:
    >>> tfvae.evaluation.iwae_nll(model, tfvae.data.load("mnist", "test", binarize="fixed"))
    """

    start = time.time()
    strategy = strategy or tf.distribute.get_strategy()
    workers, worker = cluster.num_workers(strategy), cluster.worker_index(strategy)
    key = {"weights_sha256": weights_sha256(model), "num_samples": int(num_samples), "seed": int(seed),
           "worker": [worker, workers]}
    if chunk_size is not None:  # (another chunking draws other samples at the same seed)
        key["chunk_size"] = int(chunk_size)
    saved = files.read_json(checkpoint, default={}) if checkpoint else {}
    done = saved.get("batches", []) if saved.get("key") == key else []  # {x_sha256, log_px, elbo}
    if done and verbose:
        print(f"resuming from {checkpoint}: {len(done)} batches done")
    log_px, elbos, resumed, sizes = [], [], 0, []
    total = _num_batches(dataset)
    progress = (keras.utils.Progbar(total, verbose=verbose, unit_name="batch",
                                    stateful_metrics=["nll"]) if verbose else None)
    computed, last_line = 0, time.time()
    for i, x in enumerate(_batches(dataset, model)):
        sizes.append(int(x.shape[0]))
        if i % workers != worker:  # (another worker's batch)
            continue
        j = len(log_px)  # (the index among this worker's batches; i, of all, gives the seed)
        x_sha256 = hashlib.sha256(np.asarray(x).tobytes()).hexdigest()
        if j < len(done) and done[j]["x_sha256"] == x_sha256:  # the same batch, already estimated
            resumed += 1
        else:
            batch_seed = (seed * 7919 + i) % (2 ** 31 - 1)
            del done[j:]
            done.append({"x_sha256": x_sha256,
                         "log_px": np.asarray(model.log_prob(x, num_samples, chunk_size, seed=batch_seed,
                                                                 jit_compile=jit_compile)).tolist(),
                         "elbo": np.asarray(model.elbo(x, seed=batch_seed)).tolist()})
            if checkpoint:
                files.write_json(checkpoint, {"key": key, "batches": done})
            computed += 1
        log_px.append(np.asarray(done[j]["log_px"]))
        elbos.append(np.asarray(done[j]["elbo"]))
        if verbose == 2 and computed and time.time() - last_line >= PROGRESS_LINE_SECONDS:
            # (a log file gets no bar: a line now and then, so a pass of hours shows it moves)
            last_line = time.time()
            per_batch = (last_line - start) / computed
            left = f", {duration(per_batch * (total - i - 1) / workers)} left" if total else ""
            who = f" (worker {worker} of {workers}: its batches)" if workers > 1 else ""
            print(f"IWAE k={num_samples}: batch {i + 1}/{total or '?'}, NLL so far{who} "
                  f"{-float(np.mean(np.concatenate(log_px))):.3f}, {duration(per_batch)} per "
                  f"batch{left}", flush=True)
        if progress is not None:
            progress.update(len(sizes), [("nll", -float(np.mean(np.concatenate(log_px))))])  # so far
    if workers > 1:  # each worker's batches in their places, zero elsewhere, summed over workers
        ends = np.cumsum(sizes)
        mine = [slice(e - n, e) for b, (e, n) in enumerate(zip(ends, sizes)) if b % workers == worker]
        log_px, elbos = (cluster.all_sum(strategy, _placed(values, mine, int(ends[-1])))
                         for values in (log_px, elbos))
    else:
        log_px, elbos = np.concatenate(log_px), np.concatenate(elbos)
    if checkpoint and os.path.exists(checkpoint):
        os.remove(checkpoint)
    results = {
        "nll": float(-log_px.mean()),
        "stderr": stderr(log_px),
        "elbo": float(elbos.mean()),
        "num_samples": int(num_samples),
        "num_examples": int(len(log_px)),
        "seconds": time.time() - start,
        "resumed_batches": resumed,
    }
    if model.likelihood.discrete or dequantized:  # (discrete x: the NLL is a code length)
        results["bits_per_dim"] = bits_per_dim(results["nll"], model.input_dim, dequantized)
        results["bits_per_dim_stderr"] = bits_per_dim(results["stderr"], model.input_dim)
    return results


def bits_per_dim(nll, num_dims, dequantized=False):
    """-log P(x) / (D ln 2): a negative log-likelihood in nats per example as bits per value
    (the unit of the image-modelling literature; for discrete data, where -log2 P(x) is a code
    length: 8-bit images, binarized pixels).

    With `dequantized=True`, `nll` is a continuous density's -log p(y) of 8-bit data
    dequantized to y = (x + u) / 256 (`tfvae.data.load(..., dequantize=True)`); then
    log P(x) >= E_u log p(y) - D log 256 (Theis, van den Oord & Bethge 2016, section 3.1), and
    the bound's bits/dim is (nll + D log 256) / (D ln 2) = nll / (D ln 2) + 8.

    Example:
    >>> tfvae.evaluation.bits_per_dim(2000.0, 3072)   # 2000 nats on 32x32x3 images: 0.939
    """
    offset = num_dims * math.log(256.0) if dequantized else 0.0
    return (float(nll) + offset) / (num_dims * math.log(2.0))


def _placed(values, places, size):
    """A [size] array of zeros with values[j] at places[j]."""
    out = np.zeros(size)
    for value, place in zip(values, places):
        out[place] = value
    return out


def weights_sha256(model):
    """SHA-256 over a model's weights in order: identifies the model a partial result belongs to."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def active_units(model, dataset, threshold=0.01):
    """Units u with A_u = Cov_x(E_q(z|x)[z_u]) > threshold (Burda et al. 2016, section 5.2).

    Args:
        model: a tfvae model (hierarchical models report every stochastic layer).
        dataset: batches of x, or an array.
        threshold: the activity threshold (0.01 in the paper).

    Returns:
        dict: `active_units` (total), `per_layer` (counts), `activity` (A_u per layer, lists),
        `threshold`.
    """
    means = None
    for x in _batches(dataset, model):
        layer_means = [np.asarray(m, np.float64) for m in model.latent_means(x)]
        means = [[m] for m in layer_means] if means is None else [a + [m] for a, m in zip(means, layer_means)]
    activity = [np.var(np.concatenate(m), axis=0) for m in means]
    per_layer = [int(np.sum(a > threshold)) for a in activity]
    return {"active_units": int(sum(per_layer)), "per_layer": per_layer,
            "activity": [a.tolist() for a in activity], "threshold": threshold}


def elbo_surgery(model, dataset, num_samples=10000, seed=0, chunk_size=1000):
    """The average KL split into index-code mutual information and marginal KL.

    Hoffman & Johnson 2016, "ELBO surgery": with the aggregate posterior
    q(z) = (1/N) sum_n q(z|x_n) over all N examples,
        E_n KL[q(z|x_n) || p(z)] = I_q(n; z) + KL[q(z) || p(z)],
    I(n; z) = E_q(n,z)[log q(z|x_n) - log q(z)] <= log N. Estimated with `num_samples` draws
    (n, z) ~ q(n) q(z|x_n); log q(z) is evaluated exactly as a mixture of all N components
    (in chunks). The average KL is reported in closed form beside its Monte Carlo estimate.

    Args:
        model: a flat tfvae model (one latent layer with a diagonal Gaussian posterior).
        dataset: the whole dataset defining q(z) (e.g. all 60,000 MNIST training images).
        num_samples: draws of (n, z).
        seed: the draws' seed.
        chunk_size: draws evaluated at once against all N components.

    Returns:
        dict: `avg_kl` (closed form; None for a mixture prior), `avg_kl_mc`, `index_code_mi`, `marginal_kl` (each Monte
        Carlo term with a `_stderr`), `log_n`, `num_examples`, `num_samples`.
    """
    params = [model.encode(x) for x in _batches(dataset, model)]
    params = {name: tf.concat([p[name] for p in params], 0) for name in params[0]}
    posterior_layer, prior = model.latent_layers()[-1], model.prior_layer
    n = int(params["loc"].shape[0])
    avg_kl = prior.kl(posterior_layer.distribution(params))  # (None without a closed form,
    avg_kl = None if avg_kl is None else float(tf.reduce_mean(avg_kl))  # e.g. a mixture: avg_kl_mc)

    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=num_samples)
    mi_terms, marginal_terms = [], []
    for start in range(0, num_samples, chunk_size):
        rows = index[start:start + chunk_size]
        own = {name: tf.gather(v, rows) for name, v in params.items()}
        z = posterior_layer.sample(own, seed=[seed, start])
        log_q_own = posterior_layer.distribution(own).log_prob(z)
        log_q_marginal = _log_mixture_density(posterior_layer, params, z) - math.log(n)
        mi_terms.append(np.asarray(log_q_own - log_q_marginal))
        marginal_terms.append(np.asarray(log_q_marginal - prior.log_prob(z)))
    mi, marginal = np.concatenate(mi_terms), np.concatenate(marginal_terms)
    return {
        "avg_kl": avg_kl,
        "avg_kl_mc": float(np.mean(mi + marginal)), "avg_kl_mc_stderr": stderr(mi + marginal),
        "index_code_mi": float(np.mean(mi)), "index_code_mi_stderr": stderr(mi),
        "marginal_kl": float(np.mean(marginal)), "marginal_kl_stderr": stderr(marginal),
        "log_n": math.log(n), "num_examples": n, "num_samples": int(num_samples),
    }


def amortization_gap(model, x, steps=500, learning_rate=1e-2, num_samples=5000, elbo_samples=100,
                     seed=0, log_px=None):
    """The approximation and amortization gaps of Cremer, Li & Duvenaud 2018.

    For each example a free posterior q*(z|x) (same family as the encoder's, started at the
    encoder's output) is fit by maximizing the ELBO (8 samples per step) with Adam and a
    cosine-decayed step size. Then
        approximation gap = log p(x) - ELBO(q*)          (the family's limit)
        amortization gap  = ELBO(q*) - ELBO(q_encoder)   (the encoder's shortfall)
    with log p(x) given by `log_px`, else the model's exact likelihood when it has one, else
    the IWAE estimate with `num_samples` (its bias makes the approximation gap slightly low).

    Returns:
        dict of per-example arrays `log_px`, `elbo_encoder`, `elbo_optimized`,
        `approximation_gap`, `amortization_gap` and their means `mean_*`.
    """
    model.check_data(x, "Data")
    x = model.check_input(x)
    start = {name: tf.identity(v) for name, v in model.encode(x).items()}
    latent = model.latent_layers()[-1]  # (one layer: the model has "gaussian_posterior")
    free = latent.free_parameters(start)
    variables = {name: tf.Variable(v) for name, v in free.items()}
    # Decaying the step size lets the stochastic optimization settle instead of jittering.
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps))

    def elbo_of(variables_or_params, step_seed, samples, from_free=True):
        params = (latent.from_free_parameters(variables_or_params)
                  if from_free else variables_or_params)
        terms = model.loss_terms(x, num_samples=samples, seed=step_seed, posterior_params=params)
        return terms["elbo"]

    @tf.function
    def step(step_seed):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_sum(elbo_of(variables, step_seed, 8))
        grads = tape.gradient(loss, list(variables.values()))
        optimizer.apply_gradients(zip(grads, list(variables.values())))

    for i in range(steps):
        step(tf.constant([seed, i], tf.int32))
    eval_seed = tf.constant([seed + 1, 0], tf.int32)
    elbo_encoder = np.asarray(elbo_of(start, eval_seed, elbo_samples, from_free=False))
    elbo_optimized = np.asarray(elbo_of(variables, eval_seed, elbo_samples))
    if log_px is not None:
        log_px = np.asarray(log_px, np.float32)
    else:
        log_px = np.asarray(model.log_prob(x, num_samples, seed=seed))
    result = {"log_px": log_px, "elbo_encoder": elbo_encoder, "elbo_optimized": elbo_optimized,
              "approximation_gap": log_px - elbo_optimized,
              "amortization_gap": elbo_optimized - elbo_encoder}
    result.update({f"mean_{k}": float(np.mean(v)) for k, v in list(result.items())})
    return result


def supports_exact_likelihood(model):
    """True for models whose latent states `exact_log_likelihood` can enumerate."""
    return "enumerable_latents" in model.capabilities


def exact_log_likelihood(model, data, states_per_chunk=4096, verbose=0):
    """log p(x) = log sum_z p(z) p(x|z) over all 2^m states of a binary latent layer.

    For models with one layer of m <= 20 Bernoulli latents (capability "enumerable_latents":
    `HarmoniumVAE`, `VAE(latent="bernoulli")`). The cost grows as 2^m:
    47 s for the 10,000 MNIST test images with m = 16 and a 784-200-200 decoder on this
    project's two cores (so roughly 16x that at m = 20). The states are taken in chunks; each chunk
    is decoded once and scored against every x by one matrix product (log-space throughout).

    Args:
        model: a `tfvae.HarmoniumVAE` or `tfvae.VAE` with latent="bernoulli".
        data: an array [N, D] or a dataset of batches (all of it is held in memory).
        states_per_chunk: latent states per chunk.
        verbose: 1 shows a progress bar over the chunks, 2 one line at the end.

    Returns:
        float32 numpy array [N] of log p(x).
    """
    if not supports_exact_likelihood(model):
        units, limit = model.latent_shape[0], MAX_ENUMERATED_UNITS
        why = (f"m = {units} is beyond {limit}" if units > limit
               else "its latents are not one layer of binary units")
        raise ValueError("exact_log_likelihood enumerates the 2^m states of one layer of binary "
                         f"latents, m <= {limit} (capability 'enumerable_latents', e.g. "
                         "tfvae.VAE(latent='bernoulli') or tfvae.HarmoniumVAE): "
                         f"{why}. Use iwae_nll instead. Received: "
                         f"{type(model).__name__}, capabilities {sorted(model.capabilities)}")
    m = model.latent_shape[0]
    x = tf.concat(list(_batches(data, model)), axis=0)
    x = model.check_input(x)
    log_partition = model.prior_log_normalizer()

    @tf.function(jit_compile=True, reduce_retracing=True)
    def chunk_log_sum(z):
        log_prior = model.prior_log_prob(z, log_partition=log_partition)              # [S]
        log_likelihood = model.likelihood_layer.log_prob_matrix(model.decode(z), x)   # [N, S]
        return tf.reduce_logsumexp(log_likelihood + log_prior, axis=1)

    total, starts = None, range(0, 2 ** m, states_per_chunk)
    progress = keras.utils.Progbar(len(starts), verbose=verbose, unit_name="chunk") if verbose else None
    for i, start in enumerate(starts):
        part = chunk_log_sum(latents.binary_states(m, start, min(start + states_per_chunk, 2 ** m)))
        total = part if total is None else tf.experimental.numpy.logaddexp(total, part)
        if progress is not None:
            progress.update(i + 1)
    return total.numpy()


def gradient_variance(model, x, num_draws=100, weights=None, seed=0, **settings):
    """Mean and variance over draws of the gradient of the batch-mean training objective with
    respect to `weights` (default: `model.encoder_weights()`, else all trainable weights).

    Compares gradient estimators, or other gradient options, at the same parameters: `settings`
    are model options used for the measurement and restored afterwards, e.g.
    `estimator="score_function", baseline="none"` (HarmoniumVAE),
    `conditional_kl_gradient="stop"` (LadderVAE), or `num_samples=50, iw_gradient="dreg"` (the
    importance-weighted bound's estimators, see `tfvae.VAE`). With a score-function estimator and
    `baseline="moving_average"` the baseline is held at the mean learning signal on x (where a
    long run's moving average settles; the model's `learning_signal` term, returned as
    `held_baseline`). Every draw starts from the same model state (batch-norm
    statistics, baselines), and the state is restored afterwards.

    Args:
        model: a tfvae model.
        x: [B, D] batch.
        num_draws: gradient draws (different seeds).
        weights: the variables to differentiate.
        seed: first seed.
        **settings: model attributes to override, validated by the model's constructor.

    Returns:
        dict: `mean` and `variance` (numpy, per parameter, flattened), `snr` (per parameter,
        |mean| / standard deviation: the signal-to-noise ratio of Rainforth et al. 2018),
        `total_variance` (sum of the variances), `mean_norm` (|mean|), `num_draws`, the settings
        used, and
        `held_baseline` when a moving-average baseline was held.
    """
    type(model).from_config({**model.get_config(), **settings})  # raises on a bad setting
    model.check_data(x, "Data")
    x = model.check_input(x)
    if weights is None:
        weights = model.encoder_weights()
    latent_settings = {k: settings[k] for k in ("estimator", "baseline", "temperature") if k in settings}
    other_settings = {k: v for k, v in settings.items() if k not in latent_settings}
    saved = {name: getattr(model, name) for name in other_settings}
    state = model.non_trainable_variables  # moving averages that training-mode calls update
    saved_state = [v.numpy() for v in state]
    with model.estimators_as(**latent_settings):
        try:
            for name, value in other_settings.items():
                setattr(model, name, value)
            return _gradient_draws(model, x, num_draws, weights, seed, state, settings)
        finally:
            for name, value in saved.items():
                setattr(model, name, value)
            for variable, value in zip(state, saved_state):
                variable.assign(value)


def _gradient_draws(model, x, num_draws, weights, seed, state, settings):
    """`gradient_variance`'s draws, with the model set up for the measurement (the state every
    draw starts from includes a temporary score-function state, see `Latent.estimator_as`)."""
    known = {id(v) for v in state}
    state = list(state) + [latent.signal_mean for latent in model.latent_layers()
                           if latent.signal_mean is not None and id(latent.signal_mean) not in known]
    if any(latent.estimator == "score_function" and latent.baseline == "moving_average"
           for latent in model.latent_layers()):
        before = [v.numpy() for v in state]
        held = float(tf.reduce_mean(model.loss_terms(x, num_samples=1, seed=seed,  # (as drawn)
                                                     training=True)["learning_signal"]))
        for variable, value in zip(state, before):  # (a training-mode call moves the state)
            variable.assign(value)
        settings = dict(settings, held_baseline=held)
        for latent in model.latent_layers():
            if latent.estimator == "score_function":
                latent.signal_mean.assign(held)
    @tf.function
    def draw(step_seed):
        with tf.GradientTape() as tape:
            objective = tf.reduce_mean(model.loss_terms(x, seed=step_seed,  # (model.num_samples)
                                                        training=True)["objective"])
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(objective, weights)], 0)

    held_state = [v.numpy() for v in state]
    total = total_sq = 0.0
    for i in range(num_draws):
        g = draw(tf.constant([seed, i + 1], tf.int32)).numpy().astype(np.float64)
        total, total_sq = total + g, total_sq + g * g
        for variable, value in zip(state, held_state):  # every draw at the same state
            variable.assign(value)
    mean = total / num_draws
    variance = np.maximum(total_sq / num_draws - mean * mean, 0.0) * num_draws / (num_draws - 1)
    snr = np.abs(mean) / np.maximum(np.sqrt(variance), 1e-30)
    return {"mean": mean, "variance": variance, "snr": snr, "total_variance": float(variance.sum()),
            "mean_norm": float(np.linalg.norm(mean)), "num_draws": int(num_draws), **settings}


def _log_mixture_density(posterior_layer, params, z, components_per_chunk=20000):
    """log sum_m q(z_i | x_m) for each row z_i, over all components m (chunked logsumexp)."""
    total = None
    n = int(next(iter(params.values())).shape[0])
    for start in range(0, n, components_per_chunk):
        chunk = {name: v[start:start + components_per_chunk] for name, v in params.items()}
        part = tf.reduce_logsumexp(posterior_layer.log_prob_matrix(chunk, z), axis=1)
        total = part if total is None else tf.experimental.numpy.logaddexp(total, part)
    return total


def _batches(dataset, model):
    """Yields batches of x from a dataset of x or (x, label), or from an array in batches of
    ARRAY_BATCH rows, each checked by `model.check_data` (the shape, dtype and range the model
    takes: integer images are refused, not cast and read as values in [0, 255])."""
    if isinstance(dataset, (np.ndarray, tf.Tensor)):
        batches = (dataset[start:start + ARRAY_BATCH] for start in range(0, len(dataset), ARRAY_BATCH))
    else:
        batches = (batch[0] if isinstance(batch, (tuple, list)) else batch for batch in dataset)
    for x in batches:
        model.check_data(x, "Data")
        yield tf.convert_to_tensor(x)


def duration(seconds):
    """A duration as people read it in a log or a card: '0.4 s', '42 s', '13 min' or '2.1 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _num_batches(dataset):
    if isinstance(dataset, (np.ndarray, tf.Tensor)):
        return -(-len(dataset) // ARRAY_BATCH)
    n = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else -1
    return n if n >= 0 else None


def stderr(values):
    """Standard error of the mean of `values`."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
