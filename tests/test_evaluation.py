"""tfvae.evaluation against models whose answers are known in closed form."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import evaluation, files

D, L, NOISE = 6, 2, 0.5


def inverse_softplus(y):
    return np.log(np.expm1(y))


def linear_gaussian_vae(kernel, bias, scale_factor=1.0, loc_shift=0.0):
    """p(z) = N(0, I), p(x|z) = N(z K + b, NOISE^2 I), with an encoder that outputs the exact
    posterior mean (shifted by `loc_shift`) and `scale_factor` times the exact posterior's
    marginal standard deviations (Bishop, PRML, eq. 2.116)."""
    model = tfvae.VAE(input_dim=D, latent_dim=L, hidden=(), likelihood="gaussian",
                      likelihood_scale=NOISE, seed=0)
    model.build((None, D))
    post_cov = np.linalg.inv(np.eye(L) + kernel @ kernel.T / NOISE ** 2)
    a = kernel.T @ post_cov / NOISE ** 2                 # posterior mean = (x - b) a
    enc_kernel = np.concatenate([a, np.zeros((D, L))], axis=1)
    target = scale_factor * np.sqrt(np.diag(post_cov)) - model.posterior_layer.family.min_scale
    enc_bias = np.concatenate([-bias @ a + loc_shift, inverse_softplus(target)])
    model.posterior_layer.projection.set_weights([enc_kernel, enc_bias])
    model.likelihood_layer.projection.set_weights([kernel, bias])
    return model, post_cov


def exact_log_px(x, kernel, bias):
    cov = kernel.T @ kernel + NOISE ** 2 * np.eye(D)
    diff = x - bias
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (np.sum(diff @ np.linalg.inv(cov) * diff, -1) + logdet + D * math.log(2 * math.pi))


@pytest.fixture(scope="session")
def linear_gaussian():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(L, D)).astype(np.float32)
    bias = rng.normal(size=D).astype(np.float32)
    z = rng.normal(size=(300, L))
    x = (z @ kernel + bias + NOISE * rng.normal(size=(300, D))).astype(np.float32)
    return kernel, bias, x


def test_iwae_converges_to_the_exact_log_likelihood_from_below(linear_gaussian):
    kernel, bias, x = linear_gaussian
    model, _ = linear_gaussian_vae(kernel, bias, scale_factor=1.6, loc_shift=0.3)
    exact = exact_log_px(x, kernel, bias)
    gaps, stderrs = [], []
    for k in (1, 10, 100, 1000, 5000):
        gap = np.asarray(model.log_prob(x, k, seed=k)) - exact
        gaps.append(gap.mean())
        stderrs.append(gap.std(ddof=1) / math.sqrt(len(gap)))
        # A lower bound in expectation: never above the truth beyond Monte Carlo error.
        assert gaps[-1] < 3 * stderrs[-1] + 1e-3
    assert gaps[0] < -1.0  # the poor encoder's ELBO is well below log p(x)
    for i in range(len(gaps) - 1):  # tightens with k, up to the Monte Carlo error of both
        noise = math.hypot(stderrs[i], stderrs[i + 1])  # independent seeds
        assert gaps[i + 1] > gaps[i] - 3 * noise, (gaps, stderrs)
    assert gaps[0] < gaps[1] < gaps[2]
    assert abs(gaps[-1]) < 0.01


def test_iwae_nll_reports_mean_and_stderr(linear_gaussian):
    kernel, bias, x = linear_gaussian
    model, _ = linear_gaussian_vae(kernel, bias, scale_factor=1.2)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(128)
    result = evaluation.iwae_nll(model, dataset, num_samples=500, verbose=0)
    exact = exact_log_px(x, kernel, bias)
    assert result["num_examples"] == 300 and result["num_samples"] == 500
    assert abs(result["nll"] + exact.mean()) < 0.02
    np.testing.assert_allclose(result["stderr"], exact.std(ddof=1) / math.sqrt(300), rtol=0.05)
    assert result["elbo"] < -result["nll"]


def test_iwae_nll_resumes_an_interrupted_run_with_the_same_result(linear_gaussian, tmp_path):
    kernel, bias, x = linear_gaussian
    model, _ = linear_gaussian_vae(kernel, bias, scale_factor=1.2)
    batches = [x[i:i + 50] for i in range(0, 300, 50)]
    checkpoint = str(tmp_path / "iwae.partial.json")

    def interrupt_after(n, data):  # a run killed while batch n is being estimated
        yield from data[:n]
        raise KeyboardInterrupt

    def estimate(data, num_samples=200, chunk_size=None):
        return evaluation.iwae_nll(model, data, num_samples, chunk_size, seed=3, verbose=0,
                                   checkpoint=checkpoint)

    with pytest.raises(KeyboardInterrupt):
        estimate(interrupt_after(4, batches))
    assert len(files.read_json(checkpoint)["batches"]) == 4
    resumed = estimate(batches)
    assert not os.path.exists(checkpoint)  # removed once the estimate is complete
    uninterrupted = evaluation.iwae_nll(model, batches, 200, seed=3, verbose=0)
    assert (resumed["resumed_batches"], uninterrupted["resumed_batches"]) == (4, 0)
    for key in ("nll", "stderr", "elbo", "num_examples"):
        assert resumed[key] == uninterrupted[key], key

    # Saved batches count only for the same data, weights, k and chunking (the draws at a
    # seed depend on the chunk size).
    with pytest.raises(KeyboardInterrupt):
        estimate(interrupt_after(4, batches))
    other_data = batches[:2] + [batches[2][::-1]] + batches[3:]
    assert estimate(other_data)["resumed_batches"] == 2
    with pytest.raises(KeyboardInterrupt):
        estimate(interrupt_after(4, batches))
    assert estimate(batches, num_samples=100)["resumed_batches"] == 0
    with pytest.raises(KeyboardInterrupt):
        estimate(interrupt_after(4, batches))
    assert estimate(batches, chunk_size=7)["resumed_batches"] == 0
    with pytest.raises(KeyboardInterrupt):
        estimate(interrupt_after(4, batches))
    model.likelihood_layer.projection.set_weights([kernel, bias + 0.1])
    assert estimate(batches)["resumed_batches"] == 0


def test_iwae_nll_in_a_log_file_says_it_moves(linear_gaussian, tmp_path, capsys, monkeypatch):
    """verbose=2 (stdout not a terminal): no bar redraws, a line per computed batch when
    PROGRESS_LINE_SECONDS allows (60 s by default), none for batches taken from a checkpoint."""
    kernel, bias, x = linear_gaussian
    model, _ = linear_gaussian_vae(kernel, bias, scale_factor=1.2)
    batches = [x[i:i + 50] for i in range(0, 300, 50)]
    checkpoint = str(tmp_path / "iwae.partial.json")
    monkeypatch.setattr(evaluation, "PROGRESS_LINE_SECONDS", 0)

    def progress_lines():
        printed = capsys.readouterr().out
        assert not {"\r", "\x08", "\x1b"} & set(printed)
        return [line.split(",")[0] for line in printed.splitlines() if line.startswith("IWAE k=")]

    evaluation.iwae_nll(model, batches, 20, verbose=2)
    assert progress_lines() == [f"IWAE k=20: batch {i}/?" for i in range(1, 7)]
    monkeypatch.setattr(evaluation, "PROGRESS_LINE_SECONDS", 3600)  # a quick pass: no lines
    evaluation.iwae_nll(model, batches, 20, verbose=2)
    assert progress_lines() == []
    monkeypatch.setattr(evaluation, "PROGRESS_LINE_SECONDS", 0)
    def interrupted_after_four():
        yield from batches[:4]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluation.iwae_nll(model, interrupted_after_four(), 20, verbose=2, checkpoint=checkpoint)
    capsys.readouterr()
    evaluation.iwae_nll(model, batches, 20, verbose=2, checkpoint=checkpoint)
    assert progress_lines() == ["IWAE k=20: batch 5/?", "IWAE k=20: batch 6/?"]


def test_active_units_finds_the_dead_units():
    rng = np.random.default_rng(1)
    model = tfvae.VAE(input_dim=20, latent_dim=5, hidden=(), seed=0)
    model.build((None, 20))
    kernel, bias = [w.copy() for w in model.posterior_layer.projection.get_weights()]
    kernel[:, [1, 3]] = 0.0                      # units 1 and 3 ignore x: dead
    kernel[:, 4] *= 0.05                         # unit 4 barely moves: below threshold
    model.posterior_layer.projection.set_weights([kernel, bias])
    x = (rng.uniform(size=(1000, 20)) < 0.5).astype(np.float32)
    result = evaluation.active_units(model, tf.data.Dataset.from_tensor_slices(x).batch(300))
    expected = np.var(x @ kernel[:, :5] + bias[:5], axis=0)  # E_q[z] is the linear map here
    np.testing.assert_allclose(result["activity"][0], expected, rtol=1e-4, atol=1e-7)
    assert result["per_layer"] == [int(np.sum(expected > 0.01))] and result["active_units"] == 2
    assert result["activity"][0][1] == 0.0 and result["activity"][0][3] == 0.0


def numpy_log_normal(z, loc, scale):
    """log N(z_i; loc_m, diag scale_m^2) for all pairs, directly: [Z, M]."""
    diff = (z[:, None, :] - loc[None]) / scale[None]
    return np.sum(-0.5 * diff ** 2 - np.log(scale[None]) - 0.5 * math.log(2 * math.pi), -1)


def test_mixture_density_matches_a_direct_computation():
    rng = np.random.default_rng(2)
    layer = tfvae.distributions.DiagonalGaussian(3)
    params = {"loc": tf.constant(rng.normal(size=(40, 3)), tf.float32),
              "scale": tf.constant(rng.uniform(0.01, 2.0, size=(40, 3)), tf.float32)}
    z = rng.normal(size=(25, 3)).astype(np.float32)
    direct = numpy_log_normal(z, params["loc"].numpy(), params["scale"].numpy())
    np.testing.assert_allclose(layer.log_prob_matrix(params, z), direct, rtol=1e-5, atol=1e-3)
    mixture = evaluation._log_mixture_density(layer, params, z, components_per_chunk=7)
    np.testing.assert_allclose(mixture, np.logaddexp.reduce(direct, axis=1), rtol=1e-5, atol=1e-3)


def test_elbo_surgery_terms_add_up_and_respect_bounds():
    rng = np.random.default_rng(3)
    model = tfvae.VAE(input_dim=20, latent_dim=3, hidden=(16,), seed=0)
    model.build((None, 20))
    x = (rng.uniform(size=(60, 20)) < 0.4).astype(np.float32)
    result = evaluation.elbo_surgery(model, tf.data.Dataset.from_tensor_slices(x).batch(25),
                                     num_samples=20000, chunk_size=3000)
    assert result["num_examples"] == 60 and result["log_n"] == pytest.approx(math.log(60))
    assert 0 <= result["index_code_mi"] <= result["log_n"]
    assert result["marginal_kl"] >= -3 * result["marginal_kl_stderr"]
    np.testing.assert_allclose(result["index_code_mi"] + result["marginal_kl"], result["avg_kl_mc"],
                               rtol=1e-5)
    assert abs(result["avg_kl_mc"] - result["avg_kl"]) < 4 * result["avg_kl_mc_stderr"]
    # The direct computation: draw (n, z) independently and evaluate every density in numpy.
    params = model.encode(x)
    loc, scale = params["loc"].numpy(), params["scale"].numpy()
    n = rng.integers(0, 60, size=20000)
    z = loc[n] + scale[n] * rng.normal(size=(20000, 3))
    log_q_all = numpy_log_normal(z, loc, scale)
    log_q_agg = np.logaddexp.reduce(log_q_all, axis=1) - math.log(60)
    mi = log_q_all[np.arange(20000), n] - log_q_agg
    marginal = log_q_agg - np.sum(-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi), -1)
    assert abs(mi.mean() - result["index_code_mi"]) < 4 * math.hypot(
        mi.std() / math.sqrt(20000), result["index_code_mi_stderr"])
    assert abs(marginal.mean() - result["marginal_kl"]) < 4 * math.hypot(
        marginal.std() / math.sqrt(20000), result["marginal_kl_stderr"])


def test_amortization_gap_vanishes_where_the_family_is_exact():
    # Orthogonal rows in K make the exact posterior covariance diagonal: the diagonal
    # Gaussian family contains it, so the approximation gap is zero and the optimized ELBO
    # reaches log p(x); the deliberately poor encoder leaves an amortization gap.
    rng = np.random.default_rng(4)
    kernel = (np.linalg.qr(rng.normal(size=(D, L)))[0].T * np.array([[2.0], [1.0]])).astype(np.float32)
    bias = rng.normal(size=D).astype(np.float32)
    x = (rng.normal(size=(20, L)) @ kernel + bias + NOISE * rng.normal(size=(20, D))).astype(np.float32)
    model, _ = linear_gaussian_vae(kernel, bias, scale_factor=2.0, loc_shift=0.5)
    exact = exact_log_px(x, kernel, bias)
    result = evaluation.amortization_gap(model, x, steps=400, learning_rate=0.05,
                                         elbo_samples=20000, log_px=exact)
    assert np.all(result["amortization_gap"] > 0.1)
    assert np.all(np.abs(result["approximation_gap"]) < 0.03)  # 0.01 Monte Carlo noise
    estimated = evaluation.amortization_gap(model, x, steps=300, learning_rate=0.05,
                                            num_samples=2000, elbo_samples=2000)
    assert abs(estimated["mean_log_px"] - exact.mean()) < 0.05  # IWAE when log p(x) is not given
    assert abs(estimated["mean_approximation_gap"]) < 0.05


def test_amortization_gap_is_zero_when_the_encoder_is_exact():
    rng = np.random.default_rng(5)
    kernel = (np.linalg.qr(rng.normal(size=(D, L)))[0].T * np.array([[1.5], [0.7]])).astype(np.float32)
    bias = rng.normal(size=D).astype(np.float32)
    x = (rng.normal(size=(20, L)) @ kernel + bias + NOISE * rng.normal(size=(20, D))).astype(np.float32)
    model, _ = linear_gaussian_vae(kernel, bias)  # outputs the exact posterior
    result = evaluation.amortization_gap(model, x, steps=100, learning_rate=0.01,
                                         elbo_samples=20000, log_px=exact_log_px(x, kernel, bias))
    assert np.all(np.abs(result["amortization_gap"]) < 0.02)
    assert np.all(np.abs(result["approximation_gap"]) < 0.02)
