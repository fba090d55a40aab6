"""The zoo's registry, archives and cache, in this process: the registry describes the shipped
entries byte for byte, `pack` is reproducible, cards are current, fetching through file:// caches
an entry that then loads offline, and crafted archives (`..`, absolute paths, links) are refused
with nothing written. The installed-package test over HTTP is tests/test_zoo_install.py."""
import contextlib
import hashlib
import http.server
import importlib.util
import io
import json
import os
import pty
import re
import shutil
import sys
import tarfile
import threading

import pytest

from tfvae.app import archives, cli, zoo

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHIPPED_DIR = os.path.join(ROOT, "saved_models")
SHIPPED = sorted(n for n in os.listdir(SHIPPED_DIR)
                 if os.path.isfile(os.path.join(SHIPPED_DIR, n, "metadata.json")))
HEADINGS = ("## Data", "## Architecture", "## Training", "## Metrics", "## Intended use", "## Limitations")
SMALL = "harmonium_mnist"  # the smallest entry (0.2 MB archive)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _load_script(name):
    path = os.path.join(ROOT, "zoo", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty local zoo and cache; archives fetched from tmp_path/served via file://."""
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("TFVAE_ZOO_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("TFVAE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFVAE_ZOO_URL", served.as_uri())
    return tmp_path


def _cached_files(tmp_path):
    home = tmp_path / "home"
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())


def test_the_registry_describes_every_shipped_entry_byte_for_byte():
    """Names, every file's SHA-256 and size (metadata.json and the card included) and the
    metrics of metadata.json: `tfvae zoo pack NAME` after a change to an entry updates it."""
    registry = json.load(open(zoo.REGISTRY, encoding="utf-8"))
    assert registry["base_url"].startswith("https://")
    assert sorted(registry["entries"]) == SHIPPED
    for name in SHIPPED:
        folder = os.path.join(SHIPPED_DIR, name)
        line = registry["entries"][name]
        metadata = json.load(open(os.path.join(folder, "metadata.json")))
        on_disk = {os.path.relpath(os.path.join(d, f), folder): {"sha256": _sha256(os.path.join(d, f)),
                                                                   "size": os.path.getsize(os.path.join(d, f))}
                   for d, _, names in os.walk(folder) for f in names}
        assert line["files"] == on_disk, f"{name}: the registry is stale; run tfvae zoo pack {name}"
        assert line["metrics"]["test_elbo"] == metadata["test_elbo"]
        assert line["metrics"]["test_nll"] == metadata["test_nll"]
        assert line["model"] == metadata["model"] and line["archive"]["file"] == f"{name}.tar.gz"


def test_pack_is_reproducible_and_writes_the_registrys_line(tmp_path):
    """Two packs give the same bytes, whose SHA-256 and size are the shipped registry's; members
    are plain files under NAME/ with no owner or time; the registry file given is updated."""
    registry_copy = tmp_path / "registry.json"
    shutil.copy(zoo.REGISTRY, registry_copy)
    before = open(zoo.REGISTRY, "rb").read()
    path, line = zoo.pack(SMALL, str(tmp_path / "a"), root=SHIPPED_DIR, registry_path=str(registry_copy))
    again, _ = zoo.pack(SMALL, str(tmp_path / "b"), root=SHIPPED_DIR, registry_path=str(registry_copy))
    assert open(path, "rb").read() == open(again, "rb").read()
    shipped = json.load(open(zoo.REGISTRY))["entries"][SMALL]["archive"]
    assert (_sha256(path), os.path.getsize(path)) == (shipped["sha256"], shipped["size"])
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    folder = os.path.join(SHIPPED_DIR, SMALL)
    expected = sorted(os.path.relpath(os.path.join(d, f), folder)
                      for d, _, names in os.walk(folder) for f in names)
    assert [m.name for m in members] == sorted(f"{SMALL}/{n}" for n in expected)
    assert all(m.isfile() and m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
    assert json.load(open(registry_copy))["entries"][SMALL] == line[SMALL]
    assert open(zoo.REGISTRY, "rb").read() == before  # (the package's registry is untouched)


def test_cli_pack_prints_the_registry_line_of_the_archive_it_wrote(tmp_path, capsys, monkeypatch):
    registry_copy = tmp_path / "registry.json"
    shutil.copy(zoo.REGISTRY, registry_copy)
    monkeypatch.delenv("TFVAE_ZOO_DIR", raising=False)
    assert cli.main(["zoo", "pack", SMALL, "--out", str(tmp_path), "--registry", str(registry_copy)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])[SMALL]
    archive = tmp_path / f"{SMALL}.tar.gz"
    assert line["archive"] == {"file": archive.name, "sha256": _sha256(archive), "size": archive.stat().st_size}
    assert cli.main(["zoo", "pack", "nope", "--out", str(tmp_path)]) == 2
    assert "No zoo model 'nope'" in capsys.readouterr().err


def test_cli_pack_says_to_upload_to_the_base_url_of_the_registry_it_wrote(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"base_url": "https://example.org/zoo/", "entries": {}}))
    for registry, where in [(other, f"https://example.org/zoo/ (the base_url of {other})"),
                            (tmp_path / "new.json", f"a folder, and write its URL as base_url in {tmp_path / 'new.json'}")]:
        assert cli.main(["zoo", "pack", SMALL, "--out", str(tmp_path / "out"), "--registry", str(registry)]) == 0
        assert capsys.readouterr().err.splitlines()[-1] == f"upload 1 archive(s) in {tmp_path / 'out'} to {where}"
        assert list(json.load(open(registry))["entries"]) == [SMALL]


def test_pack_without_a_name_writes_every_archive_the_registry_promises(tmp_path, capsys, monkeypatch):
    """The release: `tfvae zoo pack --out DIR` writes one archive per shipped entry whose SHA-256
    and size are the shipped registry's (what a fetch checks), and leaves the registry as it is."""
    registry_copy = tmp_path / "registry.json"
    shutil.copy(zoo.REGISTRY, registry_copy)
    monkeypatch.setenv("TFVAE_ZOO_DIR", SHIPPED_DIR)
    out = tmp_path / "release"
    assert cli.main(["zoo", "pack", "--out", str(out), "--registry", str(registry_copy)]) == 0
    shipped = json.load(open(zoo.REGISTRY))["entries"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.tar.gz" for n in SHIPPED)
    for name in SHIPPED:
        archive = out / f"{name}.tar.gz"
        assert {"file": archive.name, "sha256": _sha256(archive), "size": archive.stat().st_size} \
            == shipped[name]["archive"], f"{name}: run tfvae zoo pack {name} and commit the registry"
    assert open(registry_copy, "rb").read() == open(zoo.REGISTRY, "rb").read()
    assert f"upload {len(SHIPPED)} archive(s) in {out}" in capsys.readouterr().err
    monkeypatch.setenv("TFVAE_ZOO_DIR", str(tmp_path / "empty"))
    assert cli.main(["zoo", "pack", "--out", str(out)]) == 2
    assert "No zoo entries to pack" in capsys.readouterr().err


def test_every_card_is_current_and_quotes_its_metadata_and_anchor(capsys):
    """Each shipped README.md is what `python zoo/cards.py` writes; its numbers are the
    metadata's and the published anchor is zoo_table's; `tfvae zoo show` prints it."""
    cards, zoo_table = _load_script("cards"), _load_script("zoo_table")
    for name in SHIPPED:
        metadata = json.load(open(os.path.join(SHIPPED_DIR, name, "metadata.json")))
        text = open(os.path.join(SHIPPED_DIR, name, "README.md"), encoding="utf-8").read()
        assert text == cards.text(metadata), f"{name}: regenerate with python zoo/cards.py {name}"
        for heading in HEADINGS:
            assert heading in text, (name, heading)
        assert f"{metadata['test_elbo']:.2f} +- {metadata['test_elbo_stderr']:.2f}" in text
        nll = metadata["test_exact_nll"] if metadata["test_exact_nll"] is not None else metadata["test_nll"]
        assert f"{nll:.2f}" in text and f"{metadata['params']:,} parameters" in text
        if name in zoo_table.ANCHORS:
            published, what, target = zoo_table.ANCHORS[name]
            # (a target in bits/dim stands on the bits/dim row, any other on the NLL row)
            assert f"| {published}{f' ({what})' if what else ''} | {'' if 'bits/dim' in target else target} |" in text
            assert f" | {target} |" in text
    assert cli.main(["zoo", "show", SMALL]) == 0
    card = open(os.path.join(SHIPPED_DIR, SMALL, "README.md"), encoding="utf-8").read()
    assert capsys.readouterr().out == card


def test_a_fetched_entry_is_cached_checked_and_loads_offline(isolated, capsys):
    served = isolated / "served"
    zoo.pack(SMALL, str(served), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    assert [m["folder"] for m in zoo.list() if m["name"] == SMALL] == [None]
    abandoned = isolated / "home" / "zoo" / ".tmp-killed"  # a fetch killed two days ago
    abandoned.mkdir(parents=True)
    (abandoned / "archive.tar.gz").write_bytes(b"partial")
    os.utime(abandoned, (os.path.getmtime(abandoned) - 2 * 86400,) * 2)
    model = zoo.load(SMALL)
    assert f"fetching {SMALL}" in capsys.readouterr().err and not abandoned.exists()
    cached = isolated / "home" / "zoo" / SMALL
    assert _sha256(cached / "model.keras") == _sha256(os.path.join(SHIPPED_DIR, SMALL, "model.keras"))
    os.remove(served / f"{SMALL}.tar.gz")  # offline: the cache alone
    again = zoo.load(SMALL)
    assert capsys.readouterr().err == ""
    assert [w.tolist() for w in again.get_weights()] == [w.tolist() for w in model.get_weights()]
    assert [m["folder"] for m in zoo.list() if m["name"] == SMALL] == [str(cached)]
    assert not [p for p in _cached_files(isolated) if ".tmp" in p]
    # a damaged cached file is refused against the registry, saying how to fetch it again
    with open(cached / "samples.png", "ab") as f:
        f.write(b"x")
    with pytest.raises(zoo.ZooError, match=f"samples.png has .* bytes.* Delete {cached}"):
        zoo.load(SMALL)


def test_a_cached_folder_without_metadata_is_replaced_by_the_next_fetch(isolated):
    """A cached entry whose metadata.json was deleted is no entry: the next load fetches it
    again and the verified copy takes the folder's place (was: "Directory not empty")."""
    zoo.pack(SMALL, str(isolated / "served"), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    folder = zoo.entry(SMALL)
    os.remove(os.path.join(folder, "metadata.json"))
    with open(os.path.join(folder, "stray.txt"), "w") as f:
        f.write("left by the user")
    assert zoo.entry(SMALL) == folder
    assert zoo.check_folder(folder, exact=True) == folder  # (no stray.txt)
    assert not [p for p in _cached_files(isolated) if ".tmp" in p]


def test_list_shows_an_entry_with_unreadable_metadata_as_damaged_and_the_others(isolated, capsys):
    local = isolated / "local"
    shutil.copytree(os.path.join(SHIPPED_DIR, SMALL), local / SMALL)
    (local / "broken").mkdir()
    (local / "broken" / "metadata.json").write_text('{"name": "broken", "mod')  # truncated
    assert cli.main(["zoo", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert rows["broken"].split(None, 1)[1] == (f"damaged: {local / 'broken' / 'metadata.json'} is "
                                                f"not a zoo entry's metadata; delete {local / 'broken'}")
    assert rows[SMALL].endswith(" local") and rows["vae_mnist"].endswith(" MB")


def test_a_mistyped_name_names_every_place_searched_and_the_closest_name(isolated, capsys):
    assert cli.main(["sample", "vae20_mnist", "--out", str(isolated / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"tfvae sample: No zoo model 'vae20_mnist' in {isolated / 'local'}, "
                          f"{isolated / 'home' / 'zoo'}, the registry {zoo.REGISTRY}. "
                          "Did you mean 'vae20d_mnist'? Known: [")


def test_a_zoo_dir_that_is_missing_or_holds_archives_is_said_by_list_and_lookups(isolated, capsys, monkeypatch):
    """A mix-up with TFVAE_ZOO_URL: `tfvae zoo list` and a failed name lookup say what is wrong."""
    missing = f"TFVAE_ZOO_DIR={isolated / 'local'} is not an existing folder"
    assert cli.main(["zoo", "list"]) == 0
    assert capsys.readouterr().err.startswith(f"tfvae zoo: {missing}")
    with pytest.raises(zoo.ZooError, match=f"No zoo model 'nope' .*{re.escape(missing)}"):
        zoo.entry("nope")
    zoo.pack(SMALL, str(isolated / "served"), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    monkeypatch.setenv("TFVAE_ZOO_DIR", str(isolated / "served"))
    holds = (f"TFVAE_ZOO_DIR={isolated / 'served'} holds archives, not entry folders: for a folder of "
             f"archives set TFVAE_ZOO_URL={(isolated / 'served').as_uri()}/ instead.")
    assert cli.main(["zoo", "list"]) == 0
    assert capsys.readouterr().err == f"tfvae zoo: {holds}\n"
    with pytest.raises(zoo.ZooError, match=re.escape(holds)):
        zoo.entry("nope")
    monkeypatch.setenv("TFVAE_ZOO_DIR", SHIPPED_DIR)
    assert zoo.zoo_dir_problem() == ""


def test_an_archive_url_is_checked_by_its_fragment_and_cached_by_its_address(isolated):
    served = isolated / "served"
    path, line = zoo.pack(SMALL, str(served), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    url = (served / f"{SMALL}.tar.gz").as_uri()
    with pytest.raises(zoo.ZooError, match="does not match the SHA-256 after #sha256="):
        zoo.load(f"{url}#sha256={'0' * 64}")
    assert _cached_files(isolated) == []
    folder = zoo.entry(f"{url}#sha256={line[SMALL]['archive']['sha256']}")
    assert os.path.basename(folder) == SMALL and os.path.isfile(os.path.join(folder, "model.keras"))
    os.remove(path)
    assert zoo.entry(f"{url}#sha256={line[SMALL]['archive']['sha256']}") == folder  # no fetch
    with pytest.raises(zoo.ZooError, match="could not be reached"):
        zoo.entry(url + "?other")


def test_a_local_archive_path_loads_like_its_file_url(isolated, capsys):
    path, _ = zoo.pack(SMALL, str(isolated / "served"), root=SHIPPED_DIR,
                       registry_path=str(isolated / "registry.json"))
    assert zoo.is_zoo_source(path)
    assert zoo.entry(os.path.relpath(path)) == zoo.entry((isolated / "served" / f"{SMALL}.tar.gz").as_uri())
    out = isolated / "grid.png"
    assert cli.main(["sample", path, "--out", str(out), "--num", "4"]) == 0 and out.is_file()
    capsys.readouterr()
    assert cli.main(["sample", str(isolated / "missing.tar.gz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.tar.gz could not be reached" in err


@pytest.mark.parametrize("fragment", ["sha256:{hex}", "md5=abc", "sha256={hex}0", "SHA256={hex}", ""])
def test_a_mistyped_hash_fragment_is_refused_before_any_fetch(isolated, fragment):
    """Anything after # but sha256=<64 hex digits> is an error, not a fetch without a check."""
    _, line = zoo.pack(SMALL, str(isolated / "served"), root=SHIPPED_DIR,
                       registry_path=str(isolated / "registry.json"))
    url = (isolated / "served" / f"{SMALL}.tar.gz").as_uri()
    fragment = fragment.format(hex=line[SMALL]["archive"]["sha256"])
    with pytest.raises(zoo.ZooError, match=r"the only fragment is #sha256=<the archive's 64 hex"):
        zoo.entry(f"{url}#{fragment}")
    assert _cached_files(isolated) == []


def test_an_upper_case_sha256_fragment_is_checked_like_a_lower_case_one(isolated):
    _, line = zoo.pack(SMALL, str(isolated / "served"), root=SHIPPED_DIR,
                       registry_path=str(isolated / "registry.json"))
    url = (isolated / "served" / f"{SMALL}.tar.gz").as_uri()
    folder = zoo.entry(f"{url}#sha256={line[SMALL]['archive']['sha256'].upper()}")
    assert os.path.isfile(os.path.join(folder, "model.keras"))
    with pytest.raises(zoo.ZooError, match="does not match the SHA-256 after #sha256="):
        zoo.entry(f"{url}#sha256={'A' * 64}")


class _HubLikeHandler(http.server.BaseHTTPRequestHandler):
    """The Hugging Face Hub's layout: /OWNER/REPO/resolve/REVISION/FILE answers 302 to where the
    bytes are (/cdn/FILE here), which serves the file from `served`; every path is recorded."""
    served, requests = None, []

    def do_GET(self):
        type(self).requests.append(self.path)
        parts = self.path.split("/")
        if len(parts) == 6 and parts[3] == "resolve" and parts[1:3] == ["tfvae", "zoo"] and parts[4] == "v1":
            self.send_response(302)
            self.send_header("Location", f"/cdn/{parts[5]}")
            self.end_headers()
        elif parts[1] == "cdn" and (self.served / parts[2]).is_file():
            data = (self.served / parts[2]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(handler):
    """An HTTP server of `handler` on 127.0.0.1 at a free port: its address."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def hub(isolated, monkeypatch):
    """A Hub-like server on 127.0.0.1 at a free port, as $HF_ENDPOINT, serving tmp_path/served."""
    _HubLikeHandler.served, _HubLikeHandler.requests = isolated / "served", []
    with _serving(_HubLikeHandler) as address:
        monkeypatch.setenv("HF_ENDPOINT", address)
        yield _HubLikeHandler.requests


class _HangUpHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, sends 500, and closes the connection (HTTP/1.0)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 500)

    def log_message(self, *args):
        pass


def test_a_download_that_stops_ends_the_progress_bar_line(tmp_path, monkeypatch):
    """On a terminal (a real pseudo-terminal here), a cut download's bar stays where it stopped
    (was: a full bar) and its line is ended, so the error printed next does not land on it; the
    same `finally` ends it on Ctrl-C."""
    master, slave = pty.openpty()
    try:
        with open(slave, "w", encoding="utf-8") as terminal, _serving(_HangUpHandler) as address:
            monkeypatch.setattr(sys, "stderr", terminal)
            with pytest.raises(archives.ArchiveError, match="ended after 500 of 1000 bytes"):
                archives.download(f"{address}/x.tar.gz", str(tmp_path / "x.tar.gz"), "x")
        shown = os.read(master, 1 << 16).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    assert shown.endswith(f"\r  [{'#' * 15:<30}]  50%\n"), repr(shown)


def test_a_hugging_face_repository_serves_the_zoo_by_name_and_by_archive(isolated, hub, monkeypatch):
    """TFVAE_ZOO_URL=hf://OWNER/REPO@REVISION fetches NAME.tar.gz from the repository's resolve
    address (following the Hub's redirect) and checks it against the registry;
    hf://OWNER/REPO@REVISION/NAME.tar.gz#sha256= loads one archive; a bad handle is one message."""
    served = isolated / "served"
    _, line = zoo.pack(SMALL, str(served), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    monkeypatch.setenv("TFVAE_ZOO_URL", "hf://tfvae/zoo@v1")
    assert zoo.base_url() == os.environ["HF_ENDPOINT"] + "/tfvae/zoo/resolve/v1/"
    folder = zoo.entry(SMALL)
    assert hub == [f"/tfvae/zoo/resolve/v1/{SMALL}.tar.gz", f"/cdn/{SMALL}.tar.gz"]
    assert _sha256(os.path.join(folder, "model.keras")) == _sha256(os.path.join(SHIPPED_DIR, SMALL, "model.keras"))
    assert zoo.entry(SMALL) == folder and len(hub) == 2  # cached: no request
    digest = line[SMALL]["archive"]["sha256"]
    by_url = zoo.entry(f"hf://tfvae/zoo@v1/{SMALL}.tar.gz#sha256={digest}")
    assert os.path.basename(by_url) == SMALL and len(hub) == 4
    with pytest.raises(zoo.ZooError, match="answered HTTP 404"):  # main is not published here
        zoo.entry(f"hf://tfvae/zoo/{SMALL}.tar.gz")
    with pytest.raises(zoo.ZooError, match="is not a Hugging Face handle: write hf://OWNER/REPO"):
        zoo.entry("hf://tfvae")
    assert not [p for p in _cached_files(isolated) if ".tmp" in p]


@pytest.mark.parametrize("source, folder", [("hf://tfvae/zoo@v1", "hf://tfvae/zoo@v1"),
                                            ("hf://tfvae/zoo/", "hf://tfvae/zoo"),
                                            ("{endpoint}/tfvae/zoo/resolve/v1/", "{endpoint}/tfvae/zoo/resolve/v1")])
def test_a_url_that_names_no_archive_is_refused_before_any_request(isolated, hub, source, folder):
    """A repository or folder, not NAME.tar.gz: one message saying both ways to write it."""
    source, folder = (text.format(endpoint=os.environ["HF_ENDPOINT"]) for text in (source, folder))
    with pytest.raises(zoo.ZooError) as refused:
        zoo.entry(source)
    assert str(refused.value) == (f"{source!r} is not the URL of an entry archive: give "
                                  f"{folder}/NAME.tar.gz, or set TFVAE_ZOO_URL={folder} and pass NAME.")
    assert hub == [] and _cached_files(isolated) == []


def test_an_archive_that_is_no_tar_gz_is_named_by_its_url(isolated):
    junk = isolated / "served" / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(zoo.ZooError, match=f"{junk.as_uri()} is not a readable .tar.gz") as refused:
        zoo.entry(junk.as_uri())
    assert ".tmp-" not in str(refused.value)


def test_a_tfvae_home_that_is_a_file_is_one_message_naming_it(isolated, monkeypatch, capsys):
    image = isolated / "s.png"
    image.write_bytes(b"png")
    monkeypatch.setenv("TFVAE_HOME", str(image))
    said = f"TFVAE_HOME={image} is not a folder: set TFVAE_HOME to a folder"
    assert cli.main(["zoo", "list"]) == 2
    assert capsys.readouterr().err.startswith(f"tfvae zoo: {said}")
    with pytest.raises(zoo.ZooError, match=re.escape(said)):
        zoo.load(SMALL)


def test_a_local_archive_is_cached_by_its_contents(isolated):
    """A local archive path (or file:// URL) without #sha256= is keyed by its SHA-256, so a
    re-packed archive at the same path is fetched anew, not read from the old cache."""
    served = isolated / "served"
    path, _ = zoo.pack(SMALL, str(served), root=SHIPPED_DIR, registry_path=str(isolated / "registry.json"))
    first = zoo.entry(path)
    metadata = json.load(open(os.path.join(first, "metadata.json")))
    assert zoo.entry(path) == first  # unchanged: the cache
    other = isolated / "other"  # the same entry with another card: another archive
    shutil.copytree(os.path.join(SHIPPED_DIR, SMALL), other / SMALL)
    zoo.write_card(str(other / SMALL), "# another card\n")
    zoo.pack(SMALL, str(served), root=str(other), registry_path=str(isolated / "registry.json"))
    second = zoo.entry(path)
    assert second != first and open(os.path.join(second, "README.md")).read() == "# another card\n"
    assert json.load(open(os.path.join(first, "metadata.json"))) == metadata


def test_hugging_face_datasets_and_spaces_are_not_zoo_repositories():
    with pytest.raises(zoo.ZooError, match="model repositories"):
        zoo.resolve("hf://datasets/OWNER/REPO/x.tar.gz")
    assert zoo.resolve("hf://o/r@v1/x.tar.gz#sha256=ab").endswith("/o/r/resolve/v1/x.tar.gz#sha256=ab")


def test_a_base_url_that_is_no_url_is_one_message(isolated, monkeypatch):
    monkeypatch.setenv("TFVAE_ZOO_URL", str(isolated / "served"))  # a path, not file://
    with pytest.raises(zoo.ZooError, match=r"is not an http://, https:// or file:// URL"):
        zoo.load(SMALL)
    assert _cached_files(isolated) == []


def _crafted(path, members):
    """A .tar.gz of (TarInfo, bytes or None) pairs."""
    with tarfile.open(path, "w:gz") as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def _file(name, content=b"{}"):
    return tarfile.TarInfo(name), content


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("members, refused", [
    ([_file("entry/metadata.json"), _file("entry/../../escaped")], "entry/../../escaped"),
    ([_file("entry/metadata.json"), _file("/tmp/escaped-absolute")], "/tmp/escaped-absolute"),
    ([_file("entry/metadata.json"), _link("entry/model.keras", "/etc/passwd")], "is a link"),
    ([_file("entry/metadata.json"), _link("entry/model.keras", "metadata.json", tarfile.LNKTYPE)], "is a link"),
    ([_file("entry/metadata.json"), _file("other/metadata.json")], "one top folder"),
    ([_file("entry/metadata.json"), _file("entry/extra.py", b"print(1)")], "do not cover"),
])
def test_crafted_archives_are_refused_and_nothing_is_written(isolated, members, refused):
    archive = _crafted(str(isolated / "served" / "crafted.tar.gz"), members)
    if refused == "do not cover":  # a consistent metadata.json that does not list the extra file
        members[0] = _file("entry/metadata.json", json.dumps({"name": "entry", "files": {}}).encode())
        archive = _crafted(archive, members)
    with pytest.raises(zoo.ZooError, match=refused.replace(".", r"\.")):
        zoo.load("file://" + archive)
    assert not os.path.exists("/tmp/escaped-absolute") and not (isolated / "escaped").exists()
    assert _cached_files(isolated) == []


def test_a_model_file_that_carries_code_is_refused_from_an_archive_too(isolated):
    """An archive whose checksums all match but whose model.keras holds a Lambda layer's
    bytecode: the cache keeps the files, Keras' safe mode refuses to run them."""
    import keras

    folder = isolated / "build" / "lambda_entry"
    folder.mkdir(parents=True)
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(folder / "model.keras")
    (folder / "metadata.json").write_text(json.dumps(
        {"name": "lambda_entry", "files": {"model.keras": _sha256(folder / "model.keras")}}))
    archive = isolated / "served" / "lambda_entry.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="lambda_entry")
    with pytest.raises(ValueError, match="safe_mode"):
        zoo.load(archive.as_uri())


@pytest.mark.slow  # (15 s: the figures and a pass over the test set)
def test_evaluate_takes_the_dataset_of_a_zoo_entry_given_by_folder(mnist_arrays, tmp_path, monkeypatch):
    """`tfvae evaluate` of an entry folder reads the entry's config (dataset, test binarization)
    from its metadata.json and writes into --out, not into the entry."""
    if os.environ.get("TFVAE_DATA_DIR"):  # (a relative one, as CI's, names a folder from here)
        monkeypatch.setenv("TFVAE_DATA_DIR", os.path.abspath(os.environ["TFVAE_DATA_DIR"]))
    monkeypatch.chdir(tmp_path)
    folder = os.path.join(SHIPPED_DIR, "vae2d_mnist")
    assert cli.main(["evaluate", folder, "--num-samples", "1", "--surgery-samples", "0",
                     "--out", "eval"]) == 0
    results = json.load(open(tmp_path / "eval" / "evaluation.json"))
    assert results["dataset"] == "mnist" and results["binarization"] == "fixed"
    assert results["iwae"]["num_samples"] == 1 and not os.path.exists(os.path.join(folder, "evaluation.json"))
