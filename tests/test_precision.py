"""Mixed precision: networks in bfloat16, log-densities in float32; and the benchmark's FLOP count."""
import contextlib
import os
import sys

import keras
import numpy as np
import pytest

import tfvae
from tfvae.app import config as tfvae_config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import speed  # noqa: E402  (benchmarks/speed.py)


@contextlib.contextmanager
def dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


BUILDERS = {
    "vae": lambda: tfvae.VAE(784, 8, hidden=(32,), seed=0),
    "ladder": lambda: tfvae.LadderVAE(784, latent_dims=(6, 3), hidden=(32, 16), batch_norm=True,
                                      seed=0),
    "harmonium": lambda: tfvae.HarmoniumVAE(784, latent_dim=5, seed=0),
}


def _data(n=64, seed=0):
    return (np.random.default_rng(seed).random((n, 784)) < 0.2).astype("float32")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "ladder" else k
                                  for k in sorted(BUILDERS)])
def test_mixed_bfloat16_networks_compute_in_bf16_and_log_densities_in_f32(kind):
    x = _data()
    keras.utils.set_random_seed(0)
    reference = BUILDERS[kind]()
    reference.build((None, 784))
    with dtype_policy("mixed_bfloat16"):
        model = BUILDERS[kind]()
        model.build((None, 784))
    model.set_weights(reference.get_weights())
    dense = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dense)]
    if kind != "harmonium":  # the tied harmonium has no Dense layers: all of it is f32 maths
        assert dense and all(layer.compute_dtype == "bfloat16" for layer in dense)
    assert all(w.dtype == "float32" for w in model.weights if w.dtype.startswith("float"))
    assert model.compute_dtype == "float32"
    terms = model.loss_terms(x, seed=3)
    assert all(v.dtype == "float32" for v in terms.values())
    ref_elbo, elbo = reference.elbo(x, seed=3).numpy(), model.elbo(x, seed=3).numpy()
    # bf16 keeps 8 bits of mantissa: close to the f32 ELBO, but not equal where networks run
    np.testing.assert_allclose(elbo, ref_elbo, rtol=0.02)
    if kind != "harmonium":
        assert np.max(np.abs(elbo - ref_elbo)) > 1e-3
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(x, batch_size=32, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_mixed_model_saves_float32_weights_and_loads_in_the_current_policy(tmp_path):
    with dtype_policy("mixed_bfloat16"):
        model = BUILDERS["vae"]()
        model.compile(optimizer="adam")
        model.fit(_data(), epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    tfvae.files.save_model(model, path)
    loaded = tfvae.files.load_model(path)  # float32 policy here
    assert loaded.decoder.layers[0].compute_dtype == "float32"
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # (the default step is near its 6 minutes; .ci/run's slow step runs this)
@pytest.mark.parametrize("kind", ["vae", "ladder"])
def test_iwae_chunks_without_xla_draw_the_same_samples(kind):
    """`log_prob(jit_compile=False)` is the same estimate as XLA's (the same draws at the same
    seed: equal to float32 rounding, while another seed moves it), in float32 and with
    mixed_bfloat16 networks. (Not the tied harmonium: its q is the exact posterior, so every
    draw's weight is p(x).)"""
    x = _data(16)
    model = BUILDERS[kind]()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(_data(256), batch_size=32, epochs=2, verbose=0)  # (untrained, q is nearly p: w_i alike)
    xla = model.log_prob(x, 50, seed=3, jit_compile=True).numpy()
    graph = model.log_prob(x, 50, seed=3, jit_compile=False).numpy()
    other_seed = model.log_prob(x, 50, seed=4, jit_compile=False).numpy()
    np.testing.assert_allclose(graph, xla, rtol=0, atol=1e-3)
    assert np.max(np.abs(other_seed - xla)) > 1e-2  # (10x the tolerance of "the same draws")
    with dtype_policy("mixed_bfloat16"):
        mixed = BUILDERS[kind]()
        mixed.build((None, 784))
    mixed.set_weights(model.get_weights())
    mixed_xla = mixed.log_prob(x, 50, seed=3, jit_compile=True).numpy()
    # (XLA and the graph's kernels round bf16 at different points: 3e-4 apart with oneDNN,
    # 1.3e-3 with TF_ENABLE_ONEDNN_OPTS=0; the bound is two bf16 roundings, 2 * 2^-8)
    np.testing.assert_allclose(mixed.log_prob(x, 50, seed=3, jit_compile=False).numpy(), mixed_xla,
                               rtol=2 * 2.0 ** -8)
    np.testing.assert_allclose(mixed_xla, xla, rtol=0.02)  # (bf16 networks: close, not equal)


def test_float16_and_model_level_policies_are_refused():
    with dtype_policy("mixed_float16"), pytest.raises(ValueError, match="mixed_bfloat16"):
        BUILDERS["vae"]()
    with pytest.raises(ValueError, match="set_dtype_policy"):
        tfvae.VAE(784, 8, dtype="mixed_bfloat16")
    config = tfvae_config.merge(tfvae_config.DEFAULTS, {"model": {"class_name": "VAE",
                                                                   "input_dim": 784,
                                                                   "latent_dim": 2}})
    config["training"]["dtype_policy"] = "mixed_float16"
    with pytest.raises(tfvae_config.ConfigError, match="dtype_policy"):
        tfvae_config.validate(config)


def test_benchmark_flop_count_is_the_layer_arithmetic():
    model = tfvae.VAE(784, 50, hidden=(200, 200), seed=0)
    model.build((None, 784))
    forward = (784 * 200 + 200 * 200 + 200 * 2 * 50) + (50 * 200 + 200 * 200 + 200 * 784)
    # backward: twice the forward, minus the data gradient of the first layer
    assert speed.train_flops_per_example(model) == 3 * 2 * forward - 2 * 784 * 200
    images, flops = speed.train_step_throughput(
        lambda: tfvae.VAE(784, 8, hidden=(32,), seed=0), 50, True, "mixed_bfloat16", 3, 1)
    small_forward = (784 * 32 + 32 * 2 * 8) + (8 * 32 + 32 * 784)
    assert images > 0 and flops == 6 * small_forward - 2 * 784 * 32
    assert keras.config.dtype_policy().name == "float32"  # restored after the benchmark
    # IWAE: the decoder's matmuls once per draw (2nm each), k = 5000 draws; issue 33's figure
    # for this model: 20.7 TFLOP over the 10,000 test images
    per_draw = 2 * (50 * 200 + 200 * 200 + 200 * 784)
    assert speed.iwae_flops_per_example(model, 5000) == 5000 * per_draw
    assert round(speed.iwae_flops_per_example(model, 5000) * 10000 / 1e12, 1) == 20.7
    conv = tfvae.VAE(input_shape=(28, 28, 1), latent_dim=4, architecture="residual", hidden=(8,), seed=0)
    conv.build((None, 28, 28, 1))
    assert speed.iwae_flops_per_example(conv, 5000) is None  # not counted, rather than undercounted


def test_benchmark_names_the_machine():
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the flags are read from Linux's /proc/cpuinfo")
    described = speed.machine()
    assert described["cpus"] >= 1 and isinstance(described["cpu_flags"], list)
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        has_avx2 = " avx2" in f.read()
    assert ("avx2" in described["cpu_flags"]) == has_avx2
    assert described["bf16_hardware"] == (bool(described["gpus"]) or any(
        flag in described["cpu_flags"] for flag in ("avx512_bf16", "amx_bf16")))


def test_benchmark_compares_with_pytorch_only_where_it_is_installed():
    import importlib.util
    images = speed.torch_eager_throughput(784, (16,), 4, 32, 2, 1)
    if importlib.util.find_spec("torch") is None:
        assert images is None  # no dependency on torch: the comparison is left out
    else:
        assert images > 0


def test_benchmark_counts_a_convolution_as_its_arithmetic():
    """One more 3x3 conv, 4 -> 4 channels at 4x4 positions, adds 2 * 9 * 4 * 4 * 16 FLOPs per
    example forward, and the same again for its input gradient and for its filter gradient."""
    def model(convolutions):
        encoder = keras.Sequential([keras.layers.Conv2D(4, 3, strides=2, padding="same")]
                                   + [keras.layers.Conv2D(4, 3, padding="same") for _ in range(convolutions)]
                                   + [keras.layers.Flatten()])
        decoder = keras.Sequential([keras.layers.Dense(64), keras.layers.Reshape((8, 8, 1))])
        built = tfvae.VAE(input_shape=(8, 8, 1), latent_dim=2, encoder=encoder, decoder=decoder, seed=0)
        built.build((None, 8, 8, 1))
        return speed.train_flops_per_example(built, 10)
    assert model(1) - model(0) == 3 * 2 * 9 * 4 * 4 * 16


def test_readme_speed_section_is_the_newest_benchmark_run():
    """README's Speed section is what `python benchmarks/speed.py --readme FILE` writes from the
    newest committed results file (benchmarks/results/speed-DATE.json): no figure typed by hand."""
    import glob
    import re
    runs = [p for p in glob.glob(os.path.join(os.path.dirname(speed.README), "benchmarks", "results", "speed-*.json"))
            if re.fullmatch(r"speed-\d{4}-\d{2}-\d{2}\.json", os.path.basename(p))]
    newest = sorted(runs)[-1]
    text = open(speed.README, encoding="utf-8").read()
    start, end = speed.readme_span(text)
    relative = os.path.relpath(newest, os.path.dirname(speed.README))
    expected = speed.readme_section(tfvae.files.read_json(newest), relative)
    assert text[start:end].rstrip("\n") == expected.rstrip("\n"), (
        f"README's Speed section is stale: python benchmarks/speed.py --readme {relative}")
