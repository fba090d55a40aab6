"""The zoo as a user of `pip install .` meets it: a fresh venv holding a non-editable install of
a clean copy of this tree, run from a folder outside the repository (no TFVAE_ZOO_DIR, the repo
not on sys.path), fetching entries from a real HTTP server on 127.0.0.1 that counts requests.
A corrupted, truncated or foreign archive, a server that hangs up mid-file and a closed port
each end with one message and leave nothing in the cache.

Every process has a timeout and the server is shut down by its fixture, also on failure."""
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from helpers import assert_float32_close
from tfvae.app import zoo

pytestmark = pytest.mark.xdist_group("zoo_install")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME, URL_NAME = "vae2d_mnist", "harmonium_mnist"  # fetched by name; by archive URL (0.2 MB)
TIMEOUT = 180  # seconds, for each process
# case: (the server's behaviour as the first part of the path, the source loaded)
CASES = {
    "corrupted": ("corrupt", NAME),       # one byte flipped: not the registry's SHA-256
    "truncated": ("truncate", NAME),      # the first half, served as a whole file
    "other_entry": ("other", NAME),       # a valid archive of another entry
    "hangup": ("hangup", NAME),           # Content-Length of the whole, half the bytes, then close
    "corrupted_url": ("corrupt", "url"),  # an archive URL, checked by its own metadata.json
    "wrong_hash": ("good", "url#sha256=" + "0" * 64),  # the right archive, the wrong SHA-256
}


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /<behaviour>/<file> serves <file> of the server's folder as the behaviour says."""

    def do_GET(self):
        self.server.requests.append(self.path)
        behaviour, _, name = self.path.lstrip("/").partition("/")
        path = os.path.join(self.server.folder, f"{URL_NAME}.tar.gz" if behaviour == "other" else name)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        half = len(body) // 2
        if behaviour == "corrupt":
            body = body[:half] + bytes([body[half] ^ 0xFF]) + body[half + 1:]
        sent = body[:half] if behaviour in ("truncate", "hangup") else body
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body) if behaviour == "hangup" else len(sent)))
        self.end_headers()
        self.wfile.write(sent)  # (HTTP/1.0: the connection closes when this returns)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """An HTTP server on a free port of 127.0.0.1 serving this tree's packed entries."""
    folder = tmp_path_factory.mktemp("served")
    for name in (NAME, URL_NAME):
        zoo.pack(name, str(folder), root=os.path.join(ROOT, "saved_models"),
                 registry_path=str(folder / "registry.json"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.folder, httpd.requests = str(folder), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _closed_port_url():
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.fixture(scope="session")
def venv(tmp_path_factory):
    """A venv with a non-editable install of a clean copy of this tree (code, setup.py,
    README.md, zoo/; no saved_models/), reusing this environment's TensorFlow."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "figures")
    shutil.copytree(os.path.join(ROOT, "tfvae"), source / "tfvae", ignore=ignore)
    shutil.copytree(os.path.join(ROOT, "zoo"), source / "zoo", ignore=ignore)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
                   check=True, timeout=TIMEOUT)
    python = str(base / "venv" / "bin" / "python")
    # This environment's packages (TensorFlow, pip, setuptools) for the new venv, by a .pth
    # file: `--system-site-packages` would give a venv's base Python instead, when these tests
    # run in a venv. Paths added by a .pth file are not site folders, so their own .pth files
    # (this checkout's editable install) are not read: tfvae comes from the new install alone.
    outer = [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, timeout=TIMEOUT, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "outer_environment.pth"), "w", encoding="utf-8") as f:
        f.write("\n".join(outer) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--no-cache-dir", "--quiet", str(source)], check=True, timeout=TIMEOUT,
                   capture_output=True, cwd=str(base))
    return base / "venv"


def _env(home, url):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "TFVAE_ZOO_DIR", "TFVAE_ZOO_URL", "TFVAE_HOME", "TFVAE_DATA_DIR")}
    return dict(env, TFVAE_HOME=str(home), TFVAE_ZOO_URL=url, TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONDONTWRITEBYTECODE="1")


def _run(command, cwd, env):
    result = subprocess.run(command, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return {"status": result.returncode, "out": result.stdout, "err": result.stderr}


@pytest.fixture(scope="session")
def session(venv, server, tmp_path_factory):
    """Everything the user does, in order, from a folder under /tmp outside the repository:
    `tfvae zoo list`, `tfvae sample NAME` (fetches), the client's loads (from the cache) and
    failure cases, and `tfvae zoo show NAME` with no server; with the requests after each step."""
    base_url, requests = server
    work = tmp_path_factory.mktemp("user")
    assert not str(work).startswith(ROOT)
    home = work / "home"
    env = _env(home, f"{base_url}/good/")
    tfvae = str(venv / "bin" / "tfvae")
    steps = {"list": _run([tfvae, "zoo", "list"], work, env)}
    steps["list"]["requests"] = list(requests)
    steps["sample"] = _run([tfvae, "sample", NAME, "--out", "grid.png", "--num", "4"], work, env)
    steps["sample"]["requests"] = list(requests)
    steps["sample"]["grid_bytes"] = os.path.getsize(work / "grid.png") if (work / "grid.png").exists() else 0
    steps["pack"] = _run([tfvae, "zoo", "pack", NAME, "--out", "release"], work, env)
    steps["pack"]["wrote"] = (work / "release").exists()
    steps["pack_to"] = _run([tfvae, "zoo", "pack", NAME, "--out", "release", "--registry",
                             "release/zoo_registry.json"], work, env)
    shutil.copy(os.path.join(ROOT, "tests", "zoo_install_client.py"), work)
    cases = {case: {"url": f"{base_url}/{behaviour}/",
                    "source": source.replace("url", f"{base_url}/{behaviour}/{URL_NAME}.tar.gz", 1)
                    if source.startswith("url") else source}
             for case, (behaviour, source) in CASES.items()}
    cases["no_server"] = {"url": _closed_port_url(), "source": NAME}
    (work / "cases.json").write_text(json.dumps(cases))
    url_source = f"{base_url}/good/{URL_NAME}.tar.gz"
    client = _run([str(venv / "bin" / "python"), "zoo_install_client.py", "out.json", ROOT, NAME,
                   url_source, "cases.json"], work, env)
    assert client["status"] == 0, client["err"][-3000:]
    steps["client"] = json.loads((work / "out.json").read_text())
    steps["client"]["requests"] = list(requests)
    # (`zoo show` fetches as `sample` does, without starting TensorFlow: a second saved)
    no_server = _run([tfvae, "zoo", "show", NAME], work, _env(work / "home-cli", _closed_port_url()))
    no_server["left"] = os.listdir(work / "home-cli") if (work / "home-cli").exists() else []
    steps["no_server"] = no_server
    return steps, venv, home


def test_the_wheel_carries_code_registry_and_configs_but_no_weights(venv):
    site = next((venv / "lib").glob("python*/site-packages"))
    installed = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert (site / "tfvae" / "zoo_registry.json").read_bytes() == open(zoo.REGISTRY, "rb").read()
    configs = sorted(os.listdir(os.path.join(ROOT, "zoo", "configs")))
    assert sorted(p.name for p in (site / "tfvae" / "zoo_configs").glob("*.py")) == \
        [c for c in configs if c.endswith(".py")]
    assert not [p for p in installed if p.endswith((".keras", ".pb", ".png")) or "saved_models" in p]
    assert not [p for p in installed if (p.endswith(".pth") and p != "outer_environment.pth")
                or "__editable__" in p]  # not editable


def test_zoo_list_from_outside_the_repo_shows_what_can_be_fetched_without_a_request(session):
    steps, _, _ = session
    listed = steps["list"]
    assert listed["status"] == 0, listed["err"]
    line = next(line for line in listed["out"].splitlines() if line.startswith(NAME + " "))
    shipped = json.load(open(os.path.join(ROOT, "saved_models", NAME, "metadata.json")))
    assert "to fetch" in line and f"{shipped['test_nll']:.2f}" in line
    assert "no zoo models" not in listed["out"] and listed["requests"] == []


def test_sample_by_name_fetches_once_and_later_loads_make_no_request(session):
    steps, venv, home = session
    sample, client = steps["sample"], steps["client"]
    assert sample["status"] == 0, sample["err"][-2000:]
    assert sample["grid_bytes"] > 0 and f"fetching {NAME}" in sample["err"]
    assert sample["requests"] == [f"/good/{NAME}.tar.gz"]
    good = [r for r in client["requests"] if r.startswith("/good/")]
    # the client's two loads by name came from the cache
    assert good.count(f"/good/{NAME}.tar.gz") == 1
    # its two loads by URL: one fetch, then the cache; the wrong_hash case: two refused fetches
    assert good.count(f"/good/{URL_NAME}.tar.gz") == 1 + 2
    assert client["tfvae_file"].startswith(str(venv)) and client["repo_on_path"] == []
    assert client["zoo_dir"] == client["cache_dir"] == str(home / "zoo")
    assert client["config_file"].startswith(str(venv)) and client["weights_equal"]
    assert os.path.basename(client["url_folder"]) == URL_NAME
    shipped = json.load(open(os.path.join(ROOT, "saved_models", NAME, "metadata.json")))
    assert client["metadata"] == shipped
    assert_float32_close(client["sample_mean"], shipped["checks"]["values"]["sample_mean"], "sample_mean")
    assert client["cached_files"] == sorted([*shipped["files"], "metadata.json"])
    status, out, _ = client["list"]
    assert status == 0 and "cached" in next(line for line in out.splitlines() if line.startswith(NAME + " "))


def test_pack_from_an_install_needs_a_registry_and_leaves_the_installed_one(session):
    """Without --registry, one line asking for it, nothing written; with it, the archive and
    the line there, and the upload line names that file (its base_url is empty)."""
    steps, venv, _ = session
    refused, packed = steps["pack"], steps["pack_to"]
    assert refused["status"] == 2 and refused["err"].count("\n") == 1 and "--registry" in refused["err"]
    assert not refused["wrote"]
    site = next((venv / "lib").glob("python*/site-packages"))
    assert (site / "tfvae" / "zoo_registry.json").read_bytes() == open(zoo.REGISTRY, "rb").read()
    assert packed["status"] == 0, packed["err"]
    assert list(json.loads(packed["out"])) == [NAME]
    assert packed["err"].splitlines()[-1] == ("upload 1 archive(s) in release to a folder, and write "
                                              "its URL as base_url in release/zoo_registry.json")


@pytest.mark.parametrize("case, expected", [
    pytest.param("corrupted", "does not match the SHA-256 of the registry", id="corrupted"),
    pytest.param("truncated", "has 2[0-9]+ bytes, the registry's archive 4[0-9]+", id="truncated"),
    pytest.param("other_entry", "has [0-9]+ bytes, the registry's archive", id="other_entry"),
    pytest.param("wrong_hash", "does not match the SHA-256 after #sha256=", id="wrong_hash"),
    pytest.param("hangup", "ended after [0-9]+ of [0-9]+ bytes", id="hangup"),
    pytest.param("corrupted_url", "not a readable .tar.gz|does not match its checksum", id="corrupted_url"),
    pytest.param("no_server", "could not be reached", id="no_server"),
])
def test_a_failed_fetch_ends_with_one_message_and_leaves_nothing(session, case, expected):
    report = session[0]["client"]["failures"][case]
    status, _, err = report["cli"]
    lines = [line for line in err.splitlines() if not line.startswith("fetching ")]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("tfvae sample: "), err
    assert re.search(expected, lines[0]) and "nothing was kept" in lines[0], lines[0]
    assert report["load"].startswith("ZooError: ") and re.search(expected, report["load"]), report["load"]
    assert report["left"] == []


def test_the_command_with_no_server_prints_one_line_and_exits_2(session):
    """The console script itself (not main() in a process of ours): no traceback."""
    no_server = session[0]["no_server"]
    lines = [line for line in no_server["err"].splitlines() if not line.startswith("fetching ")]
    assert no_server["status"] == 2 and len(lines) == 1 and "Traceback" not in no_server["err"], no_server["err"]
    assert lines[0].startswith(f"tfvae zoo: Could not fetch zoo model '{NAME}'")
    assert "TFVAE_ZOO_URL" in lines[0]
    assert no_server["left"] == []
