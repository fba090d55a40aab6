"""Training throughput with one and two MultiWorkerMirroredStrategy workers on this machine, and
the gradient all-reduce's cost per step.

Every run is a fresh process (or two, with a TF_CONFIG of two workers on 127.0.0.1, ports chosen
free at run time) that trains the VAE 784-200-200-50 with `model.fit`'s compiled train
function on random binary batches, as benchmarks/speed.py does (no XLA: it cannot compile the
all-reduce on CPUs), and reports images/s of the whole cluster after warm-up (median of
repeats). Rows:

- one_process: no strategy, batch B (the baseline);
- two_workers: the same global batch B split over two workers (B/2 each: strong scaling);
- two_workers_2B: global batch 2B (B each: weak scaling, the same work per worker as the
  baseline, so its step time minus the baseline's is what the cluster adds per step);
- allreduce: one ring all-reduce of a float32 vector of the model's size between two workers,
  alone (median ms), the collective's own share of that difference.

Two workers on one machine share its cores (see `machine`), so two_workers cannot be twice one
process here; the figures say what the collective costs, not what a cluster of machines gains.

    python benchmarks/multi_worker.py --out benchmarks/results/multi_worker.json
    python benchmarks/multi_worker.py --quick      # a smoke run with tiny settings
"""
import argparse
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = 100


def machine():
    """CPU model, flags and load: the figures depend on them."""
    import keras
    import tensorflow as tf

    info = {"cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "load_average_at_start": os.getloadavg()}
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lines.splitlines() if ":" in line)
        info["cpu_model"] = fields.get("Model name", "").strip()
        info["cpu_flags"] = fields.get("Flags", "").split()
    except (OSError, subprocess.CalledProcessError):
        info["cpu_model"] = "unknown (no lscpu)"
    return info


def run(kind, workers, global_batch, steps, repeats, timeout):
    """Starts `workers` processes of this script in `--worker` mode; returns the chief's report."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tfvae.app import multi_worker  # (TensorFlow: the parent imports it for machine() too)

    ports = multi_worker.free_local_ports(workers)
    command = [sys.executable, os.path.abspath(__file__), "--worker", kind,
               "--batch", str(global_batch), "--steps", str(steps), "--repeats", str(repeats)]
    processes = []
    try:
        for index in range(workers):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
            env.pop("TF_CONFIG", None)
            if workers > 1:
                env["TF_CONFIG"] = json.dumps({
                    "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                    "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, env=env, start_new_session=True))
        outputs = [p.communicate(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for p, (out, err) in zip(processes, outputs):
        if p.returncode:
            raise RuntimeError(f"{kind} worker failed ({p.returncode}):\n{err[-3000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def worker(kind, global_batch, steps, repeats):
    """One process of a run: prints a JSON line (the chief's is read)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from speed import median_seconds, train_steps_seconds  # (benchmarks/speed.py)
    from tfvae.app import multi_worker

    strategy = (multi_worker.strategy_from_tf_config() if "TF_CONFIG" in os.environ
                else tf.distribute.get_strategy())
    import tfvae

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfvae.VAE(784, 50, hidden=(200, 200), activation="tanh", seed=0)
        model.build((None, 784))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    if kind == "allreduce":
        size = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        vector = tf.ones([size])

        @tf.function
        def reduce_once():
            return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
                "sum", vector))

        def run_steps():
            for _ in range(steps):
                result = reduce_once()
            strategy.experimental_local_results(result)[0].numpy()

        seconds = median_seconds(run_steps, repeats)
        print(json.dumps({"kind": kind, "floats": size, "ms_per_allreduce": 1e3 * seconds / steps}))
        return
    x = (np.random.default_rng(0).random((global_batch * 10, 784)) < 0.2).astype("float32")
    whole = tf.data.Dataset.from_tensor_slices(x).batch(global_batch, drop_remainder=True).repeat()

    def shard(index_count):
        index, count = index_count
        share = global_batch // count
        return whole.map(lambda b: b[index * share:(index + 1) * share]).prefetch(4)

    dataset = (multi_worker.distribute(strategy, shard) if multi_worker.in_multi_worker_mode(strategy)
               else whole.prefetch(4))
    with multi_worker.keras_workarounds(strategy):
        seconds = train_steps_seconds(model, dataset, steps, repeats)
    print(json.dumps({"kind": kind, "workers": multi_worker.num_workers(strategy),
                      "global_batch": global_batch, "images_per_s": steps * global_batch / seconds,
                      "ms_per_step": 1e3 * seconds / steps}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the script")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.batch, args.steps, args.repeats)
    steps, repeats, timeout = (3, 1, 300) if args.quick else (50, 5, 1800)
    results = {"machine": machine(), "steps": steps, "repeats": repeats, "runs": []}
    for kind, workers, batch in (("one_process", 1, BATCH), ("two_workers", 2, BATCH),
                                 ("two_workers_2B", 2, 2 * BATCH), ("allreduce", 2, BATCH)):
        row = run(kind, workers, batch, steps, repeats, timeout)
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
    one, two_2b = results["runs"][0], results["runs"][2]
    results["cluster_ms_per_step"] = two_2b["ms_per_step"] - one["ms_per_step"]
    results["speedup_two_workers"] = results["runs"][1]["images_per_s"] / one["images_per_s"]
    print(f"two workers vs one process (global batch {BATCH}): {results['speedup_two_workers']:.2f}x; "
          f"the cluster adds {results['cluster_ms_per_step']:.1f} ms per step at equal work per "
          f"worker, of which one all-reduce alone is {results['runs'][3]['ms_per_allreduce']:.2f} ms "
          f"(load average at start: {results['machine']['load_average_at_start'][0]:.1f} on "
          f"{results['machine']['cpus']} CPUs)")
    if args.out:
        from tfvae import files

        files.write_json(args.out, results)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
