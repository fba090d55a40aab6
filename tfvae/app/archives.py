"""Archives of zoo entries: written reproducibly (`.tar.gz`, sorted members, no timestamps or
owners, so the same files give the same SHA-256), fetched over http(s) or file:// with a
progress line on stderr, and extracted only when every member is a plain file or folder inside
one top folder (no absolute paths, no `..`, no links)."""
import gzip
import hashlib
import http.client
import os
import posixpath
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from tfvae import files

SUFFIX = ".tar.gz"
TIMEOUT = 60  # seconds without a byte from the server before a download is given up


class ArchiveError(ValueError):
    """An archive that cannot be fetched, does not match its checksum, or is not safe to open."""


def sha256(path):
    """The SHA-256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(path, folder, names, top):
    """Writes `names` (paths relative to `folder`) into the archive `path` under `top/`.

    The bytes depend only on the files' contents and names: members are sorted, with mode 0644,
    owner 0 and time 0, and the gzip header carries no time or file name. Written atomically.
    """
    with files.atomic_path(path, SUFFIX) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = os.path.getsize(os.path.join(folder, name))
            info.mode = 0o644
            with open(os.path.join(folder, name), "rb") as f:
                tar.addfile(info, f)


def download(url, path, label, size=None):
    """Fetches `url` into the file `path`; returns the number of bytes written.

    Says on stderr what is fetched from where, with a progress bar when stderr is a terminal.

    Raises:
        ArchiveError: no answer, an HTTP error, or a connection that ended before all the bytes
            the server announced (or `size`) arrived.
    """
    done = 0
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ArchiveError(f"{url!r} is not an http://, https:// or file:// URL (a folder is "
                           "file:///path/to/folder/)")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(path, "wb") as f:
            total = int(response.headers.get("Content-Length") or size or 0)
            progress = _Progress(f"fetching {label} ({_megabytes(total)}) from {url}", total)
            try:
                for block in iter(lambda: response.read(1 << 16), b""):
                    f.write(block)
                    done += len(block)
                    progress.update(done)
            finally:  # (also on an error or Ctrl-C: what is printed next starts its own line)
                progress.close()
    except urllib.error.HTTPError as e:
        raise ArchiveError(f"{url} answered HTTP {e.code} ({e.reason})") from None
    except urllib.error.URLError as e:
        raise ArchiveError(f"{url} could not be reached ({e.reason})") from None
    except http.client.IncompleteRead as e:
        raise ArchiveError(f"the connection to {url} ended after {done + len(e.partial)} of "
                           f"{total} bytes") from None
    except (OSError, http.client.HTTPException) as e:  # (timeouts, resets)
        raise ArchiveError(f"the download of {url} failed after {done} bytes ({e})") from None
    expected = total or size
    if expected and done != expected:
        raise ArchiveError(f"the download of {url} ended after {done} of {expected} bytes")
    return done


def extract(path, dest, source=None):
    """Extracts the archive `path` into the folder `dest`; returns the name of its top folder.

    `source` names the archive in errors (default `path`), e.g. the URL it was fetched from.

    Raises:
        ArchiveError: not a readable .tar.gz, or a member that is not a plain file or folder
            under a single top folder (an absolute path, `..`, a link, a device).
    """
    source = source or path
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
            tops = {_check_member(member) for member in members}
            if len(tops) != 1:
                raise ArchiveError(f"{source} must hold one top folder (the entry). "
                                   f"Received: {sorted(tops)}")
            # filter="data" refuses the same things once more, and drops modes such as setuid
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ArchiveError(f"{source} is not a readable .tar.gz archive ({e})") from None
    return tops.pop()


def _check_member(member):
    """The top folder of a safe member's path; an ArchiveError for any other member."""
    name = member.name
    parts = posixpath.normpath(name).split("/")
    if name.startswith("/") or "\\" in name or ".." in name.split("/") or parts[0] in ("", "."):
        raise ArchiveError(f"the archive member {name!r} points outside its folder")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"the archive member {name!r} is a link or a special file; an entry "
                           "archive holds only plain files")
    return parts[0]


def _megabytes(size):
    return f"{size / 1e6:.1f} MB" if size else "size unknown"


class _Progress:
    """One line on stderr naming the download; on a terminal, redrawn with the share done."""

    def __init__(self, line, total):
        self.total, self.tty, self.last, self.drawn = total, sys.stderr.isatty(), 0.0, False
        print(line, file=sys.stderr, flush=True)

    def update(self, done):
        if self.tty and self.total and (done >= self.total or time.monotonic() - self.last > 0.1):
            self.last, self.drawn = time.monotonic(), True
            bar = "#" * int(30 * done / self.total)
            sys.stderr.write(f"\r  [{bar:<30}] {done / self.total:4.0%}")
            sys.stderr.flush()

    def close(self):
        """Ends the bar's line, wherever the download stopped."""
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
