"""Training and evaluation speed on this machine, each figure beside the machine's own limit.

Sections (all run by default; `--sections` picks some):
- peak: the fp32 and bf16 matmul peak (square `tf.matmul` with and without XLA, best of three
  sizes);
- train: train-step throughput (images/s after warm-up, median of repeats) of the VAE
  784-200-200-50 (batch 100), the VAE 784-512-512-20 (batch 128) and the 5-layer LadderVAE of
  zoo/configs/lvae_mnist.py (batch 100) and the residual conv VAE of zoo/configs/vae_mnist8.py
  (8-bit values, batch 100), each without and with `jit_compile` and in float32 and
  mixed_bfloat16, at tfvae train's steps per call (10) and, for float32, at one step per call,
  with the achieved GFLOP/s and its ratio to the fp32 peak;
  with torch installed (no dependency), the 784-512-512-20 VAE as a PyTorch eager loop too;
- pipeline: one epoch of `tfvae.data.load("mnist", "train", binarize="dynamic")` alone, against
  the fastest train step of the same batch size;
- iwae: `tfvae.evaluation.iwae_nll` (k = 5000) over the MNIST test set in float32 and
  mixed_bfloat16, each in a fresh process so its peak memory (max RSS) is its own.

Every figure is printed beside its target (issue 33; `of_target` >= 1 meets it): a train step's
share of the fp32 peak >= 0.60 for the two VAEs and >= 0.40 for the LadderVAE and the conv VAE, IWAE's share of
the fp32 limit >= 0.70 with peak memory < 2 GB, and mixed_bfloat16 >= 1.5x fp32 where the
hardware has bf16 arithmetic (AVX512_BF16, AMX or a GPU; otherwise it says so). The CPU's model
and SIMD flags, and the GPUs, are printed first and kept in the JSON. Time it with nothing else
running.

FLOPs are those of the train step's matmuls and convolutions, as TensorFlow's graph profiler
counts them (`train_flops_per_example`: for a Dense kernel [n, m], 2nm per example forward and
4nm backward, 2nm only for the weight gradient of a layer that reads the data). Elementwise work
(activations, log-densities, sampling) is not counted, so the ratio to the matmul peak is a
lower bound on how busy the machine is.

    TFVAE_DATA_DIR=../shared/data python benchmarks/speed.py --out benchmarks/results/speed-DATE.json
    python benchmarks/speed.py --quick      # a one-minute smoke run with tiny settings
"""
import argparse
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import tfvae

PRECISIONS = ("float32", "mixed_bfloat16")
DEFAULT_IWAE_JIT = inspect.signature(tfvae.models.BaseVAE.log_prob).parameters["jit_compile"].default
# Targets (issue 33's; the conv VAE held to the 40% it sets for "the zoo's conv models"): a train step's share of the fp32 matmul peak (by model), IWAE's share of
# the fp32 limit, its memory, and bf16's speed-up over fp32 where the hardware has bf16.
TRAIN_TARGET_OF_PEAK = {"vae_784-200-200-50": 0.60, "vae_784-512-512-20": 0.60, "lvae_5_layers": 0.40,
                        "vae_mnist8_conv": 0.40}
IWAE_TARGET_OF_LIMIT = 0.70
IWAE_TARGET_PEAK_RSS_MB = 2048
BF16_TARGET_SPEEDUP = 1.5
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# tfvae train's default steps per call of the compiled step (training.steps_per_execution)
STEPS_PER_EXECUTION = tfvae.config.DEFAULTS["training"]["steps_per_execution"]
# (precision, jit_compile, steps_per_execution) of the train rows: both precisions with and
# without XLA at tfvae train's default, and float32 one step per call as it was before it
TRAIN_SETTINGS = [(p, jit, STEPS_PER_EXECUTION) for p in PRECISIONS for jit in (False, True)] + [
    ("float32", jit, 1) for jit in (False, True)]
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zoo", "configs")


def models():
    """(name, batch size, constructor) of the benchmarked models."""
    lvae = tfvae.config.load(os.path.join(CONFIGS, "lvae_mnist.py"))["model"]
    conv = tfvae.config.load(os.path.join(CONFIGS, "vae_mnist8.py"))["model"]
    return [
        ("vae_784-200-200-50", 100,
         lambda: tfvae.VAE(784, 50, hidden=(200, 200), activation="tanh", seed=0)),
        ("vae_784-512-512-20", 128,
         lambda: tfvae.VAE(784, 20, hidden=(512, 512), activation="tanh", seed=0)),
        ("lvae_5_layers", 100, lambda: tfvae.config.build_model({"model": lvae})),
        ("vae_mnist8_conv", 100, lambda: tfvae.config.build_model({"model": conv})),
    ]


# the conv VAE's steps take about 0.4 s: fewer of them per repeat
STEPS_FRACTION = {"vae_mnist8_conv": 0.2}


def machine():
    """What the figures were measured on: CPU model and the flags that decide the matmul peak
    (/proc/cpuinfo), the GPUs TensorFlow sees, and whether bf16 has its own arithmetic here."""
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                    break
    except OSError:  # not Linux: the table still prints, without flags
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    return {"cpus": os.cpu_count(), "cpu": model, "cpu_flags": simd, "gpus": gpus,
            "bf16_hardware": bool(gpus) or any(f in flags for f in BF16_CPU_FLAGS),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def median_seconds(fn, repeats):
    fn()  # warm-up: tracing and compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_steps_seconds(model, dataset, steps, repeats):
    """The median seconds of `steps` training steps of a compiled model on `dataset` (after
    one `fit` epoch that builds, traces and compiles the step): `steps / steps_per_execution`
    calls of its train function, as `fit` makes them."""
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    iterator = iter(dataset)

    if steps % model.steps_per_execution:
        raise ValueError(f"steps={steps} is not a multiple of steps_per_execution="
                         f"{model.steps_per_execution}: the timing would count steps not run.")

    def run():
        for _ in range(steps // model.steps_per_execution):
            logs = model.train_function(iterator)
        float(logs["loss"])  # waits for the last step

    return median_seconds(run, repeats)


def matmul_peak(dtype, sizes, repeats):
    """Best GFLOP/s of a square `tf.matmul` over `sizes`, with and without XLA (on a CPU with
    AVX512_BF16, oneDNN's bf16 matmul outside XLA is about twice XLA's: issue 33)."""
    best = 0.0
    for n in sizes:
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)
        for jit_compile in (True, False):
            matmul = tf.function(tf.matmul, jit_compile=jit_compile)
            seconds = median_seconds(lambda: matmul(a, b).numpy(), repeats)
            best = max(best, 2 * n ** 3 / seconds / 1e9)
    return best


def graph_flops_per_example(model, fn, batch_size):
    """FLOPs per example of the matmuls and convolutions in the graph of `fn(x)` on a batch of
    the model's input shape, as TensorFlow's graph profiler counts them (a matmul [b, n] x
    [n, m]: 2bnm; a convolution: 2 k_h k_w C_in C_out per output position)."""
    from tensorflow.python.profiler import model_analyzer, option_builder  # TF1-style API
    graph = tf.function(tf.autograph.experimental.do_not_convert(fn)).get_concrete_function(
        tf.TensorSpec((batch_size,) + tuple(model.input_shape), tf.float32)).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = model_analyzer.profile(graph, options=options)
    types = {op.name: op.type for op in graph.get_operations()}
    total, stack = 0, list(profile.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if types.get(node.name, "").startswith(("MatMul", "BatchMatMul", "Conv")):
            total += node.float_ops
    return total // batch_size


def train_flops_per_example(model, batch_size=100):
    """Forward + backward FLOPs per example of one train step's matmuls and convolutions in the
    gradient graph of the model's ELBO (a Dense kernel [n, m]: 2nm forward, 4nm backward, 2nm
    for the layer that reads the data, whose input gradient is not computed; a convolution the
    same per output position). Checked against that arithmetic in tests/test_precision.py.
    Elementwise work is not counted (see module doc). (One draw, the plain gradient: a model
    trained with k draws or another estimator costs more.)"""
    def step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(model.loss_terms(x, 1, seed=tf.constant([0, 1]))["elbo"])
        return tape.gradient(loss, model.trainable_variables)
    return graph_flops_per_example(model, step, batch_size)


def training_batches(model, batch_size):
    """Ten random batches of the model's input shape: 8-bit values 0..255 where its likelihood
    takes them, else binary (the likelihood's own check decides)."""
    rng = np.random.default_rng(0)
    shape = (batch_size * 10,) + tuple(model.input_shape)
    x = rng.integers(0, 256, shape).astype("float32")
    try:
        model.likelihood_layer.check(x)
    except ValueError:
        x = (rng.random(shape) < 0.2).astype("float32")
    return x


def train_step_throughput(build, batch_size, jit_compile, precision, steps, repeats,
                          steps_per_execution=1):
    """Images/s of `model.fit`'s compiled train function on a fixed set of random batches
    (`steps` a multiple of `steps_per_execution`)."""
    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)
        model.build((None,) + tuple(model.input_shape))
        dataset = tf.data.Dataset.from_tensor_slices(training_batches(model, batch_size)).batch(
            batch_size, drop_remainder=True).repeat().prefetch(4)
        seconds = train_steps_seconds(model, dataset, steps, repeats)
        return steps * batch_size / seconds, train_flops_per_example(model, batch_size)
    finally:
        keras.config.set_dtype_policy("float32")


def iwae_flops_per_example(model, num_samples):
    """Forward FLOPs of one example's IWAE estimate of an MLP VAE: the decoder's and the
    likelihood's Dense kernels (2nm each) once per draw; the encoder's once per example is left
    out (< 0.1% at k = 5000), as are the log-densities, so the ratio to the limit is a lower
    bound. None for other models (convolutions, hierarchies): the graph profiler cannot size
    the per-draw matmuls of `log_prob`, whose draws are folded into a dynamic batch."""
    parts = [model.decoder, model.likelihood_layer] if hasattr(model, "decoder") else []
    kernels = [w for part in parts for w in part.weights if len(w.shape) >= 2]
    if not kernels or any(len(w.shape) != 2 for w in kernels) or len(model.latent_layers()) != 1:
        return None
    return num_samples * sum(2 * int(w.shape[0]) * int(w.shape[1]) for w in kernels)


def torch_eager_throughput(input_dim, hidden, latent_dim, batch_size, steps, repeats):
    """Images/s of the same VAE (tanh MLPs, Bernoulli logits, diagonal Gaussian q, analytic KL,
    Adam) as a plain PyTorch eager loop, or None when torch is not installed (it is no
    dependency of tfvae). The comparison issue 33 asks for: tfvae's fastest step >= 2x this."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)

    def mlp(sizes):
        layers = []
        for n, m in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(n, m), torch.nn.Tanh()]
        return torch.nn.Sequential(*layers[:-1])  # the last layer gives parameters

    encoder = mlp((input_dim, *hidden, 2 * latent_dim))
    decoder = mlp((latent_dim, *reversed(hidden), input_dim))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    batches = [(torch.rand(batch_size, input_dim) < 0.2).float() for _ in range(10)]

    def step(x):
        loc, log_scale = encoder(x).chunk(2, dim=-1)
        z = loc + torch.exp(log_scale) * torch.randn_like(loc)
        distortion = torch.nn.functional.binary_cross_entropy_with_logits(
            decoder(z), x, reduction="none").sum(-1)
        kl = 0.5 * (loc ** 2 + torch.exp(2 * log_scale) - 1 - 2 * log_scale).sum(-1)
        loss = (distortion + kl).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def run():
        for i in range(steps):
            step(batches[i % len(batches)])

    return steps * batch_size / median_seconds(run, repeats)


def pipeline_throughput(batch_size, repeats):
    """Images/s of one epoch of the dynamically binarized MNIST training pipeline alone."""
    train = tfvae.data.load("mnist", "train", binarize="dynamic", batch_size=batch_size)
    count = int(train.cardinality()) * batch_size
    return count / median_seconds(lambda: [None for _ in train], repeats)


def iwae_in_subprocess(model_path, precision, examples, num_samples, jit):
    """Runs `iwae_worker` in a fresh Python so max RSS measures this evaluation alone."""
    command = [sys.executable, os.path.abspath(__file__), "--iwae-worker", precision,
               "--iwae-jit", jit, "--model", model_path, "--iwae-examples", str(examples),
               "--num-samples", str(num_samples)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"IWAE worker ({precision}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mb():
    """This process's peak resident memory: VmHWM of /proc/self/status. (Not getrusage's
    ru_maxrss: Linux keeps that across fork and exec, so a worker would report the parent's
    memory at the fork, which is how an earlier run of this script came to show 2.77 GB.)"""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def iwae_worker(model_path, precision, examples, num_samples, jit):
    """Loads the model with its networks in `precision` and times iwae_nll on the test set,
    its chunks compiled by XLA ("xla", `log_prob`'s default) or graphs without it ("graph")."""
    keras.config.set_dtype_policy(precision)
    model = tfvae.files.load_model(model_path)
    test = tfvae.data.load("mnist", "test", binarize="fixed", batch_size=500)
    test = test.take(-(-examples // 500))
    jit_compile = jit == "xla"
    start = time.time()
    result = tfvae.evaluation.iwae_nll(model, test, num_samples=num_samples, verbose=0,
                                       jit_compile=jit_compile)
    seconds = time.time() - start
    flops = iwae_flops_per_example(model, num_samples)
    result.update(precision=precision, seconds=seconds, peak_rss_mb=peak_rss_mb(),
                  jit=jit, default=jit_compile == DEFAULT_IWAE_JIT,
                  gflops=None if flops is None else flops * result["num_examples"] / seconds / 1e9)
    print(json.dumps(result))


def default_model(path):
    """The model evaluated by the iwae section: `path`, or a VAE 784-200-200-50 trained one
    epoch here (the timing does not depend on the weights; the bf16-vs-fp32 gap does a little)."""
    if path:
        return path
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "tfvae_speed_vae.keras")
    if not os.path.exists(path):
        model = tfvae.VAE(784, 50, hidden=(200, 200), seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(tfvae.data.load("mnist", "train", binarize="dynamic"), epochs=1, verbose=0)
        tfvae.files.save_model(model, path)
    return path


def print_table(rows, columns):
    widths = [max(len(c), *(len(_format(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_format(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _format(value):
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
SECTION = "### Speed"
MODEL_NAMES = {"vae_784-200-200-50": "VAE 784-200-200-50", "vae_784-512-512-20": "VAE 784-512-512-20",
               "lvae_5_layers": "LadderVAE, 5 layers (lvae_mnist)", "vae_mnist8_conv": "residual conv VAE (vae_mnist8)"}


def readme_section(results, path):
    """README's Speed section, every figure from `results` (the JSON of a run, at `path`)."""
    m, peak = results.get("machine", {}), results.get("peak_gflops")
    percent = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    times = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    lines = [SECTION, "",
             f"`TFVAE_DATA_DIR=../shared/data python benchmarks/speed.py --out {path}` on "
             f"{results.get('date', 'an unrecorded date')} ({results.get('conditions', 'conditions not recorded')}); "
             f"`python benchmarks/speed.py --readme {path}` writes this section. Machine: "
             f"{m.get('cpu', 'not recorded')}, {m.get('cpus', '?')} cores, "
             f"{' '.join(m.get('cpu_flags', [])) or 'no SIMD flags recorded'}; GPUs: {', '.join(m.get('gpus', [])) or 'none'}; "
             f"TensorFlow {m.get('tensorflow', '?')}, Keras {m.get('keras', '?')}. bf16 arithmetic in hardware: "
             f"{'yes' if m.get('bf16_hardware') else 'no (mixed_bfloat16 is emulated and not held to its target)'}."
             + ("" if not peak else f" Matmul peak in the same run (the best with and without XLA): "
                f"**{peak['float32']:.0f} GFLOP/s fp32, {peak['mixed_bfloat16']:.0f} GFLOP/s bf16**."), ""]
    if results.get("train"):
        steps = {}
        for r in results["train"]:
            steps.setdefault(r["steps"], []).append(MODEL_NAMES.get(r["model"], r["model"]))
        lines += [f"Train step: images/s, the median of {results['train_repeats']} repeats of "
                  + " and ".join(f"{n} steps ({', '.join(dict.fromkeys(names))})"
                                 for n, names in sorted(steps.items(), reverse=True)) + " after warm-up; "
                  "GFLOP/s counts the matmuls and convolutions of the forward and backward pass "
                  "(TensorFlow's graph profiler), so the share of the peak is a lower bound on "
                  "how busy the machine is. `steps/call` is `steps_per_execution` "
                  f"(tfvae train's default: {STEPS_PER_EXECUTION}); bf16 / fp32 compares the same "
                  "model, compilation and steps per call.", "",
                  "| model | batch | precision | XLA | steps/call | images/s | GFLOP/s | of the fp32 peak | target | bf16 / fp32 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["train"]:
            lines.append(f"| {MODEL_NAMES.get(r['model'], r['model'])} | {r['batch']} | {r['precision']} "
                         f"| {'yes' if r['jit'] else 'no'} | {r.get('steps_per_execution', 1)} "
                         f"| {r['images_per_s']:,.0f} | {r['gflops']:.1f} | {percent(r['of_fp32_peak'])} "
                         f"| {percent(r['target'])} | {times(r.get('speedup_over_fp32'))} |")
        lines.append("")
        torch = results.get("torch_eager")
        lines.append(
            f"- PyTorch: the VAE 784-512-512-20 as a plain PyTorch eager loop, batch {torch['batch']}: "
            f"{torch['images_per_s']:,.0f} images/s; tfvae's fastest fp32 step is {torch['ratio']:.2f}x "
            f"that (target 2x)." if torch else
            "- PyTorch: torch was not installed for this run, so there is no comparison (it is no "
            "dependency; with it installed the script times the same VAE as a PyTorch eager loop).")
    if results.get("pipeline"):
        pipe = results["pipeline"]
        ratio = pipe.get("ratio_to_fastest_train_step")
        lines.append(f"- The input pipeline alone (dynamic binarization, batch {pipe['batch']}) delivers "
                     f"{pipe['images_per_s']:,.0f} images/s"
                     + ("." if ratio is None else f", {ratio:.1f}x the fastest train step of that batch size."))
    if results.get("iwae"):
        lines.append(f"- IWAE of {results.get('iwae_model', 'a model not recorded')}:")
    for r in results.get("iwae", []):
        limit = (f"{r['gflops']:.1f} GFLOP/s, {percent(r.get('of_fp32_limit'))} of the fp32 peak "
                 f"(target {percent(IWAE_TARGET_OF_LIMIT)})" if r.get("gflops") else "its FLOPs not counted")
        bf16 = ("" if "speedup_over_fp32" not in r else
                f"; {r['speedup_over_fp32']:.2f}x fp32's speed, NLL {r['nll_minus_float32']:+.3f} nats from fp32's")
        jit = ("" if "jit" not in r else  # (results before the XLA choice timed one path)
               f", {'with' if r['jit'] == 'xla' else 'without'} XLA{' (the default)' if r['default'] else ''}")
        lines.append(f"  - `iwae_nll` in {r['precision']}{jit}, k = {r['num_samples']}, {r['num_examples']:,} test "
                     f"images: {r['seconds']:.0f} s (NLL {r['nll']:.2f} +- {r['stderr']:.2f}), {limit}; "
                     f"peak memory {r['peak_rss_mb'] / 1024:.2f} GB (target < "
                     f"{IWAE_TARGET_PEAK_RSS_MB / 1024:.0f} GB){bf16}.")
    return "\n".join(lines) + "\n"


def readme_span(text):
    """(start, end) of the Speed section in README text: to the next heading of its level or
    above, or the end."""
    found = re.search("^" + re.escape(SECTION) + "$", text, re.M)
    if found is None:
        raise SystemExit(f"README has no line {SECTION!r} to write the Speed section under.")
    start = found.start()
    heads = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i >= 0]
    return start, (min(heads) + 1 if heads else len(text))


def write_readme(path):
    """Replaces README's Speed section with `readme_section` of the results JSON at `path`."""
    text = open(README, encoding="utf-8").read()
    start, end = readme_span(text)
    section = readme_section(tfvae.files.read_json(path), os.path.relpath(path, os.path.dirname(README)))
    with tfvae.files.atomic_path(README) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text[:start] + section + ("\n" if end < len(text) else "") + text[end:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--sections", nargs="+", default=["peak", "train", "pipeline", "iwae"],
                        choices=["peak", "train", "pipeline", "iwae"])
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the script")
    parser.add_argument("--model", help="model for the iwae section (.keras or run folder)")
    parser.add_argument("--iwae-examples", type=int, default=10000)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--iwae-worker", choices=PRECISIONS, help=argparse.SUPPRESS)
    parser.add_argument("--iwae-jit", choices=("xla", "graph"), default="xla",
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--conditions", default="nothing else running, by the operator's word",
                        help="what else ran on the machine, kept in the JSON and README")
    parser.add_argument("--readme", metavar="RESULTS_JSON",
                        help="only write README's Speed section from a run's results JSON")
    args = parser.parse_args()
    if args.readme:
        return write_readme(args.readme)
    if args.iwae_worker:
        return iwae_worker(args.model, args.iwae_worker, args.iwae_examples, args.num_samples,
                           args.iwae_jit)
    if args.quick:
        args.iwae_examples, args.num_samples = 500, 20
    steps, repeats = (STEPS_PER_EXECUTION, 2) if args.quick else (100, 5)
    results = {"date": time.strftime("%Y-%m-%d"), "conditions": args.conditions, "machine": machine()}
    print("machine:", json.dumps(results["machine"]))
    if not results["machine"]["bf16_hardware"]:
        print("no bf16 arithmetic here (no AVX512_BF16, AMX or GPU): mixed_bfloat16 is timed but "
              "not held to its target, and float32 stays the default")

    if {"peak", "train", "iwae"} & set(args.sections):  # the limits every figure is held to
        sizes = (256,) if args.quick else (1024, 2048, 3072)
        results["peak_gflops"] = {p: matmul_peak(d, sizes, 3 if args.quick else 7)
                                  for p, d in (("float32", tf.float32), ("mixed_bfloat16", tf.bfloat16))}
        print("matmul peak GFLOP/s:", {k: round(v, 1) for k, v in results["peak_gflops"].items()})

    if "train" in args.sections:
        rows = []
        results.update(train_repeats=repeats)
        for name, batch_size, build in models():
            model_steps = max(STEPS_PER_EXECUTION, int(steps * STEPS_FRACTION.get(name, 1.0)))
            for precision, jit_compile, per_call in TRAIN_SETTINGS:
                images, flops = train_step_throughput(build, batch_size, jit_compile, precision,
                                                      model_steps, repeats, per_call)
                gflops = images * flops / 1e9
                of_fp32_peak = gflops / results["peak_gflops"]["float32"]
                rows.append(dict(model=name, batch=batch_size, precision=precision, jit=jit_compile,
                                 steps_per_execution=per_call, steps=model_steps, images_per_s=images,
                                 mflop_per_image=flops / 1e6, gflops=gflops,
                                 of_peak=gflops / results["peak_gflops"][precision],
                                 of_fp32_peak=of_fp32_peak,
                                 target=TRAIN_TARGET_OF_PEAK[name],
                                 of_target=of_fp32_peak / TRAIN_TARGET_OF_PEAK[name]))
                print_table(rows[-1:], list(rows[-1]))
        for row in rows:  # bf16 against fp32, same model, compilation and steps per call
            if row["precision"] != "float32":
                fp32 = next(r for r in rows if r["model"] == row["model"] and r["jit"] == row["jit"]
                            and r["steps_per_execution"] == row["steps_per_execution"]
                            and r["precision"] == "float32")
                row["speedup_over_fp32"] = row["images_per_s"] / fp32["images_per_s"]
                row["speedup_of_target"] = (row["speedup_over_fp32"] / BF16_TARGET_SPEEDUP
                                            if results["machine"]["bf16_hardware"] else None)
        results["train"] = rows
        torch_images = torch_eager_throughput(784, (512, 512), 20, 128, steps, repeats)
        if torch_images is None:
            print("torch is not installed: no PyTorch comparison")
        else:
            fastest = max(r["images_per_s"] for r in rows
                          if r["model"] == "vae_784-512-512-20" and r["precision"] == "float32")
            results["torch_eager"] = {"model": "vae_784-512-512-20", "batch": 128,
                                      "images_per_s": torch_images, "tfvae_fastest_fp32": fastest,
                                      "ratio": fastest / torch_images, "target": 2.0,
                                      "of_target": fastest / torch_images / 2.0}
            print("PyTorch eager, VAE 784-512-512-20 batch 128:", json.dumps(results["torch_eager"]))
        print()
        print("train steps (target: of_fp32_peak >= target; bf16: speedup_over_fp32 >= "
              f"{BF16_TARGET_SPEEDUP} where the hardware has bf16; of_target >= 1 meets it)")
        print_table(rows, ["model", "batch", "precision", "jit", "steps_per_execution", "images_per_s", "mflop_per_image",
                           "gflops", "of_fp32_peak", "target", "of_target", "speedup_over_fp32",
                           "speedup_of_target"])

    if "pipeline" in args.sections:
        images = pipeline_throughput(100, 1 if args.quick else 3)
        results["pipeline"] = {"images_per_s": images, "batch": 100}
        fastest = [r["images_per_s"] for r in results.get("train", []) if r["batch"] == 100]
        if fastest:
            results["pipeline"]["ratio_to_fastest_train_step"] = images / max(fastest)
        print("pipeline:", results["pipeline"])

    if "iwae" in args.sections:
        model_path = default_model(args.model)
        results["iwae_model"] = (f"`{args.model}`" if args.model else
                                 "a VAE 784-200-200-50 trained one epoch here (`default_model`)")
        # each precision with XLA (`log_prob`'s default) and without
        rows = [iwae_in_subprocess(model_path, p, args.iwae_examples, args.num_samples, jit)
                for p in PRECISIONS for jit in ("xla", "graph")]
        for row in rows:
            row["seconds_per_10000_examples"] = row["seconds"] * 10000 / row["num_examples"]
        fp32 = rows[0]  # (float32 on its default path)
        for row in rows[2:]:
            row["nll_minus_float32"] = row["nll"] - fp32["nll"]
            row["speedup_over_fp32"] = fp32["seconds"] / row["seconds"]
            if results["machine"]["bf16_hardware"]:
                row["speedup_of_target"] = row["speedup_over_fp32"] / BF16_TARGET_SPEEDUP
        for row in rows:
            if "peak_gflops" in results and row["gflops"] is not None:
                row["of_fp32_limit"] = row["gflops"] / results["peak_gflops"]["float32"]
                row["of_target"] = row["of_fp32_limit"] / IWAE_TARGET_OF_LIMIT
            row["memory_of_target"] = row["peak_rss_mb"] / IWAE_TARGET_PEAK_RSS_MB
        results["iwae"] = rows
        print()
        print(f"IWAE (target: of_fp32_limit >= {IWAE_TARGET_OF_LIMIT}, peak_rss_mb < "
              f"{IWAE_TARGET_PEAK_RSS_MB}, bf16 speedup >= {BF16_TARGET_SPEEDUP} where the hardware has bf16)")
        print_table(rows, ["precision", "jit", "default", "num_examples", "num_samples", "nll", "stderr", "seconds",
                           "seconds_per_10000_examples", "gflops", "of_fp32_limit", "of_target",
                           "peak_rss_mb", "memory_of_target", "nll_minus_float32",
                           "speedup_over_fp32", "speedup_of_target"])

    if args.out:
        tfvae.files.write_json(args.out, results)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
