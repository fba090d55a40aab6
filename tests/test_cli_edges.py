"""The `tfvae` command at its edges: one line and status 2 for a user error, Ctrl-C (a real
SIGINT) ends with one line and 130, the final IWAE pass is announced and resumes, `--help` needs
no TensorFlow, and a log file gets one line per epoch."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tfvae
from tfvae.app import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_CONFIG = os.path.join(ROOT, "zoo", "configs", "vae_mnist.py")
# (without XLA each process starts training sooner)
TINY = ["--set", "model.hidden=(8,)", "--set", "data.batch_size=500",
        "--set", "evaluation.iwae_samples=0", "--set", "training.jit_compile=False"]
# what pip writes for setup.py's console script `tfvae = tfvae.app.cli:main`
CONSOLE_SCRIPT = """import re
import sys
from tfvae.app.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def _env(**extra):
    """This checkout first on the path; TensorFlow's log level as a user has it (unset)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.update(extra)
    return env


@pytest.fixture
def tfvae_command(tmp_path):
    """The `tfvae` console script, as pip installs it, run by this Python."""
    script = tmp_path / "bin" / "tfvae"
    script.parent.mkdir()
    script.write_text(CONSOLE_SCRIPT)
    return [sys.executable, str(script)]


def _imported(importtime_log):
    return set(re.findall(r"^import time:.*\|\s*([\w.]+)\s*$", importtime_log, re.M))


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["--version"]])
def test_help_and_version_do_not_import_tensorflow(tfvae_command, args):
    for command in (tfvae_command, [sys.executable, "-m", "tfvae.app.cli"]):
        result = subprocess.run(command + args, capture_output=True, text=True, timeout=60,
                                env=_env(PYTHONPROFILEIMPORTTIME="1"))
        assert result.returncode == 0, result.stderr
        imported = _imported(result.stderr)
        assert "tfvae" in imported
        assert not {"tensorflow", "keras", "matplotlib"} & imported, command + args
    if args == ["--version"]:
        assert result.stdout.strip() == f"tfvae {tfvae.__version__}"
    else:
        assert "--verbose" in result.stdout  # both output flags are documented


def test_import_tfvae_registers_the_models_and_leaves_matplotlib_alone(tmp_path):
    """A plain `import tfvae` still makes `keras.saving.load_model` find the model classes,
    does not import the figures module, and leaves the user's matplotlib backend as it was."""
    path = str(tmp_path / "model.keras")
    model = tfvae.VAE(input_dim=6, latent_dim=2, hidden=(4,))
    model.build((None, 6))
    model.save(path)
    program = ("import sys, keras, tfvae\n"
               "assert 'tfvae.plots' not in sys.modules, 'tfvae.plots imported'\n"
               f"model = keras.saving.load_model({path!r})\n"
               "assert type(model).__name__ == 'VAE' and model.input_dim == 6\n"
               "import matplotlib\n"
               "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=120, env=_env(MPLBACKEND="svg", TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_unknown_dataset_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(out), "--set", "data.name=nope"] + TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unknown dataset" in err and "'nope'" in err
    assert not out.exists()


def test_a_file_that_is_no_model_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert cli.main(["sample", str(notes), "--out", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tfvae sample: ") and str(notes) in err


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_a_log_file_gets_one_line_per_epoch(mnist_arrays, tmp_path, capsys):
    """Without --verbose and with stdout not a terminal (here pytest's capture), no progress bar
    redraws: no carriage returns, backspaces or escape codes, one line per epoch."""
    out = tmp_path / "run"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(out), "--set", "training.epochs=2"] + TINY) == 0
    printed = capsys.readouterr().out
    assert not {"\r", "\x08", "\x1b"} & set(printed)
    assert [line for line in printed.splitlines() if line.startswith("Epoch ")] == ["Epoch 1/2", "Epoch 2/2"]
    assert len([line for line in printed.splitlines() if " - loss: " in line]) == 2


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_a_changed_model_in_the_same_out_is_refused_naming_the_keys(mnist_arrays, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", ZOO_CONFIG, "--out", str(out), "--verbose", "0", "--set", "training.epochs=1"]
    assert cli.main(common + TINY) == 0
    config = (out / "config.json").read_text()
    capsys.readouterr()
    assert cli.main(common + TINY + ["--set", "model.hidden=(16,)", "--set", "model.latent_dim=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.hidden=[8]" in err and "model.latent_dim=50" in err
    assert "Received: model.hidden=[16], model.latent_dim=3" in err and "--out" in err
    assert (out / "config.json").read_text() == config  # the run's own config is kept
    # The same model spelled differently (a default given explicitly) resumes as before.
    seed = tfvae.config.model_arguments(json.loads(config))["seed"]
    assert cli.main(common + TINY + ["--set", f"model.seed={seed!r}"]) == 0


@pytest.fixture(scope="session")
def wide_model(tmp_path_factory):
    """A model of 65-dimensional data, which MNIST (784) does not fit (nor a square image)."""
    path = tmp_path_factory.mktemp("wide") / "model.keras"
    model = tfvae.VAE(input_dim=65, latent_dim=2, hidden=(8,))
    model.build((None, 65))
    model.save(str(path))
    return str(path)


def test_evaluate_and_sample_refuse_a_model_of_another_width(mnist_arrays, wide_model, tmp_path, capsys):
    assert cli.main(["evaluate", wide_model, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(65,)" in err and "(784,)" in err and "mnist" in err
    assert not (tmp_path / "eval").exists()
    assert cli.main(["sample", wide_model, "--out", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(65,)" in err and "(784,)" in err
    assert not (tmp_path / "grid.png").exists()


def test_train_refuses_a_model_of_another_width(mnist_arrays, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", ZOO_CONFIG, "--out", str(out), "--set", "model.input_shape=(64,)"] + TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(64,)" in err and "(784,)" in err
    assert not out.exists()


def _wait_for(path, process, seconds=240):
    deadline = time.time() + seconds
    while not path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} not written in {seconds} s"
    assert process.poll() is None, "the run ended before it could be interrupted"


def _as_from_a_terminal(command):
    """`command` with SIGINT at its default action, as a shell's foreground job has it: a job
    started with `&` by a non-interactive shell (a CI script, `nohup ... &`) inherits SIGINT
    ignored, Python then installs no KeyboardInterrupt handler, and the run ignores Ctrl-C."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset] + command


def _interrupt(process):
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def test_ctrl_c_during_training_is_one_line_and_130(mnist_arrays, tfvae_command, tmp_path):
    """A real SIGINT once the first epoch's backup is written: exit status 130 and exactly one
    line on stderr (no traceback, and no TensorFlow start-up logging) naming the epoch a rerun
    starts from; on a pipe, stdout has one line per finished epoch."""
    out = tmp_path / "run"
    process = subprocess.Popen(_as_from_a_terminal(tfvae_command + [
                                   "train", ZOO_CONFIG, "--out", str(out),
                                   "--set", "training.epochs=100"] + TINY),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(out / "backup" / "state.json", process)
        status, stdout, stderr = _interrupt(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    finished = json.loads((out / "backup" / "state.json").read_text())["epoch"]
    assert status == 130, stderr
    assert stderr.splitlines() == [
        f"interrupted; rerun the same command to resume (from epoch {finished + 1})"]
    assert not {"\r", "\x08"} & set(stdout)
    # (Keras prints an epoch's line after the backup callback has run, so the last finished
    # epoch's line may not be out yet)
    assert finished - 1 <= len([line for line in stdout.splitlines() if " - loss: " in line]) <= finished


@pytest.mark.slow  # long: CI runs it in its second step (`-m slow`)
def test_the_iwae_pass_is_announced_and_resumes_after_ctrl_c(mnist_arrays, tfvae_command, tmp_path, capsys):
    """The IWAE pass after training says what it will cost and how to skip it; interrupted
    after some of its batches, the rerun takes them from iwae.partial.json. The data has no
    test split, so the pass measures (and every line names) the validation split."""
    out = tmp_path / "run"
    np.savez(tmp_path / "digits.npz", x=mnist_arrays[0][:2000])
    command = ["train", ZOO_CONFIG, "--out", str(out), "--set", "training.epochs=1",
               "--set", f"data.name={tmp_path / 'digits.npz'}",
               "--set", "model.hidden=(8,)", "--set", "data.batch_size=500",
               "--set", "training.jit_compile=False",
               # the pass over 320 held-out images in 20 batches of 16, 16 chunks of 256 samples
               # each: the batches and the timed probe (16 images) share one compiled shape
               "--set", "data.validation_size=320", "--set", "data.test_batch_size=16",
               "--set", "evaluation.iwae_samples=4096"]
    process = subprocess.Popen(_as_from_a_terminal(tfvae_command + command), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(out / "iwae.partial.json", process)
        status, stdout, stderr = _interrupt(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 130, stderr
    assert re.fullmatch(r"interrupted; rerun the same command to resume \(from the validation "
                        r"evaluation, \d+ IWAE batch(es)? done\)\n", stderr), stderr
    announced = [line for line in stdout.splitlines() if line.startswith("validation NLL by IWAE")]
    assert len(announced) == 1 and "k=4096, over 20 validation batches: about " in announced[0]
    assert re.search(r"--set evaluation.iwae_samples=81 takes about [0-9.]+ s, =0 skips it", announced[0])

    assert cli.main(command) == 0
    printed = capsys.readouterr().out
    assert "resuming from its saved batches" in printed and "validation NLL (IWAE, k=4096)" in printed
    assert not re.search(r"^test ", printed, re.M)  # (no line calls the validation split "test")
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert results["epochs"] == 1 and results["nll_resumed_batches"] >= 1
    assert not (out / "iwae.partial.json").exists()


def test_a_ctrl_c_that_tensorflow_turned_into_another_error_is_still_an_interrupt(monkeypatch, capsys):
    """tf.function's argument tracing re-raises a Ctrl-C that lands in it as a TypeError (seen
    in CI); the command still ends with its one line and 130. Any other error propagates."""
    def traced_during_ctrl_c(args):
        try:
            raise KeyboardInterrupt
        except:  # noqa: E722  (as trace_type_builder.from_value does)
            raise TypeError("Could not generate a generic TraceType for 256.")
    monkeypatch.setattr(cli, "_train", traced_during_ctrl_c)
    assert cli.main(["train", ZOO_CONFIG]) == 130
    assert capsys.readouterr().err.startswith("interrupted; rerun the same command to resume")

    def plain_error(args):
        raise TypeError("a real bug")
    monkeypatch.setattr(cli, "_train", plain_error)
    with pytest.raises(TypeError, match="a real bug"):
        cli.main(["train", ZOO_CONFIG])
