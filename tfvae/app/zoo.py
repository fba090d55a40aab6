"""The pretrained zoo: entries by name, folder or archive URL, verified, cached and loaded.

An entry is a folder `<name>/` holding `model.keras`, the TF Serving SavedModel `serving/1/`,
`samples.png`, a model card `README.md` and `metadata.json`: the training config, dataset and
binarization, epochs and training time, test ELBO (recomputed at publication with a fixed
seed), IWAE-5000 NLL with its standard error, active units, parameter count, values of the
model's outputs on the first test images (for the zoo test), and under `files` the SHA-256 of
every other file. The registry shipped in the package (`zoo_registry.json`) names every entry
with its metrics, the SHA-256 and size of each file and of its archive `<name>.tar.gz`, fetched
from `$TFVAE_ZOO_URL` (default: the registry's `base_url`) into the cache `$TFVAE_HOME/zoo`
(default ~/.cache/tfvae). Every hash is checked before a model is read, in Keras' safe mode
(no pickle, no code).

    tfvae zoo list                                          # local, cached and fetchable
    tfvae zoo publish runs/zoo/vae_mnist --name vae_mnist   # a finished `tfvae train` folder
    tfvae zoo pack vae_mnist                                # its archive and registry line
    model = tfvae.zoo.load("vae_mnist")
"""
import contextlib
import difflib
import hashlib
import os
import pathlib
import re
import shutil
import tempfile
import time
import urllib.parse
import urllib.request

import numpy as np

from tfvae import files
from tfvae.app import archives
from tfvae.app.archives import sha256

# (data, evaluation, export and plots, i.e. TensorFlow, are imported by the functions that use
# them: listing, fetching and packing entries need none of it)

METADATA = "metadata.json"
CARD = "README.md"
NUM_CHECK_EXAMPLES = 8
CHECK_SEED = 0
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tfvae/, beside app/
CHECKOUT = os.path.dirname(PACKAGE)  # the repository, when tfvae runs from a checkout
REGISTRY = os.path.join(PACKAGE, "zoo_registry.json")
HF_PREFIX = "hf://"
HF_ENDPOINT = "https://huggingface.co"  # $HF_ENDPOINT overrides it, as for huggingface_hub
STALE = 24 * 3600  # seconds after which a fetch's temporary folder is taken as abandoned
# the registry's summary of an entry: these metadata.json values, and HELD_OUT_METRICS of the
# split its final evaluation measured (`split`; "test_elbo", or "validation_elbo" for data
# without a test split)
METRICS = ("epochs", "params", "num_samples", "active_units")
HELD_OUT_METRICS = ("elbo", "elbo_stderr", "nll", "nll_stderr", "exact_nll")


class ZooError(ValueError):
    """A zoo entry that is missing, incomplete, fails its checksums or cannot be fetched."""


def home():
    """$TFVAE_HOME, else ~/.cache/tfvae: where fetched entries are kept (under `zoo/`)."""
    path = os.path.expanduser(os.environ.get("TFVAE_HOME") or os.path.join("~", ".cache", "tfvae"))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ZooError(f"TFVAE_HOME={path} is not a folder: set TFVAE_HOME to a folder for the "
                       "zoo's cache, or unset it (default ~/.cache/tfvae).")
    return path


def cache_dir():
    """The folder of fetched entries, `$TFVAE_HOME/zoo`."""
    return os.path.join(home(), "zoo")


def in_checkout():
    """Whether tfvae runs from a repository (its saved_models/ beside the package), not an install."""
    return os.path.isdir(os.path.join(CHECKOUT, "saved_models"))


def zoo_dir():
    """The local zoo, where `publish` writes and `pack` reads: $TFVAE_ZOO_DIR, else the
    checkout's `saved_models/` (tfvae run from a repository), else the cache."""
    checkout = os.path.join(CHECKOUT, "saved_models") if in_checkout() else None
    return os.environ.get("TFVAE_ZOO_DIR") or checkout or cache_dir()


def zoo_dir_problem():
    """What is wrong with $TFVAE_ZOO_DIR, in a sentence: no such folder, or a folder of archives
    (which is what TFVAE_ZOO_URL takes); "" if it is unset or fine."""
    folder = os.environ.get("TFVAE_ZOO_DIR")
    if not folder:
        return ""
    if not os.path.isdir(folder):
        return (f"TFVAE_ZOO_DIR={folder} is not an existing folder (the folder of local entries "
                "NAME/metadata.json, which `tfvae zoo publish` creates).")
    if not list_models(folder) and any(n.endswith(archives.SUFFIX) for n in os.listdir(folder)):
        return (f"TFVAE_ZOO_DIR={folder} holds archives, not entry folders: for a folder of archives "
                f"set TFVAE_ZOO_URL={pathlib.Path(os.path.abspath(folder)).as_uri()}/ instead.")
    return ""


def roots():
    """The folders searched for an entry by name, in order: `zoo_dir()`, then the cache."""
    return [*dict.fromkeys([zoo_dir(), cache_dir()])]  # (not list(): this module rebinds it)


def configs_dir():
    """The zoo's training configs: `zoo/configs/` of a checkout, else the copy a wheel
    installs as `tfvae/zoo_configs/`."""
    checkout = os.path.join(CHECKOUT, "zoo", "configs")
    return checkout if os.path.isdir(checkout) else os.path.join(PACKAGE, "zoo_configs")


def config_file(name):
    """The path of zoo config `name` (for `tfvae train PATH`), or None if there is none."""
    path = os.path.join(configs_dir(), f"{name}.py")
    return path if os.path.isfile(path) else None


def registry(path=REGISTRY):
    """The registry: {"base_url": ..., "entries": {name: {description, model, dataset, metrics,
    files: {path: {sha256, size}}, archive: {file, sha256, size}}}}."""
    return files.read_json(path, default=None) or {"base_url": "", "entries": {}}


def base_url(path=REGISTRY):
    """$TFVAE_ZOO_URL, else the registry's `base_url`: the folder (http(s)://, file:// or a
    Hugging Face repository hf://OWNER/REPO[@REVISION], see `resolve`) that holds the entries'
    archives."""
    url = resolve(os.environ.get("TFVAE_ZOO_URL") or registry(path)["base_url"])
    return url if url.endswith("/") else url + "/"


def resolve(url):
    """`url` with a Hugging Face handle written out; any other URL as it is.

    hf://OWNER/REPO[@REVISION][/FILE] is $HF_ENDPOINT/OWNER/REPO/resolve/REVISION/FILE (endpoint
    default https://huggingface.co, revision default main), the address of a file in a model
    repository that huggingface_hub's `hf_hub_url` gives; a `#sha256=` after it is kept.
    """
    if not url.startswith(HF_PREFIX):
        return url
    handle, hash_mark, fragment = url[len(HF_PREFIX):].partition("#")
    owner, _, rest = handle.partition("/")
    repo, _, path = rest.partition("/")
    repo, _, revision = repo.partition("@")
    if owner in ("datasets", "spaces"):
        raise ZooError(f"{url!r}: tfvae reads zoo archives from Hugging Face model repositories "
                       "(hf://OWNER/REPO), not from datasets or spaces.")
    if not owner or not repo:
        raise ZooError(f"{url!r} is not a Hugging Face handle: write hf://OWNER/REPO for a "
                       "repository of entry archives (hf://OWNER/REPO@REVISION for another "
                       "revision than main), hf://OWNER/REPO/NAME.tar.gz for one archive.")
    endpoint = (os.environ.get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{owner}/{repo}/resolve/{revision or 'main'}/{path}{hash_mark}{fragment}"


def list_models(root=None):
    """The metadata of every zoo entry under `root` (default `zoo_dir()`), sorted by name; an
    entry whose metadata.json is unreadable as {"name": folder name, "damaged": why}."""
    root = root or zoo_dir()
    if not os.path.isdir(root):
        return []
    entries = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, METADATA)
        if os.path.isfile(path):
            try:
                metadata = files.read_json(path)  # (and the keys a listing shows, or KeyError)
                entries.append(dict(metadata, name=metadata["name"], model=metadata["model"],
                                    dataset=metadata["dataset"]))
            except (ValueError, KeyError, TypeError):  # (JSONDecodeError is a ValueError)
                entries.append({"name": name, "damaged": f"{path} is not a zoo entry's metadata; "
                                                         f"delete {os.path.dirname(path)}"})
    return entries


def available(root=None):
    """Every entry that `load` finds by name, sorted by name: the local and cached ones (with
    their `folder`), then the registry's others (`folder` None, `archive_size` in bytes); or
    only those in the folder `root`. `damaged` says why an entry's metadata is unreadable."""
    found = {}
    for folder_root in reversed([root] if root else roots()):  # (zoo_dir() hides the cache)
        for m in list_models(folder_root):
            found[m["name"]] = dict(_summary(m), folder=os.path.join(folder_root, m["name"]),
                                    archive_size=None)
    for name, entry in ({} if root else registry()["entries"]).items():
        found.setdefault(name, dict(_summary(entry["metrics"]), name=name, model=entry["model"],
                                    dataset=entry["dataset"], folder=None,
                                    archive_size=entry["archive"]["size"]))
    return [found[name] for name in sorted(found)]


def _files_in(folder):
    """The paths of every file under `folder`, relative to it."""
    return [os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names]


def _summary(metadata):
    return dict(summary_metrics(metadata),
                **{key: metadata.get(key) for key in ("name", "model", "dataset", "damaged")})


def summary_metrics(metadata):
    """The registry's `metrics` of an entry: METRICS and the HELD_OUT_METRICS of its split
    (with `split` when the metadata names it; older entries measured "test")."""
    split = metadata.get("split", "test")
    summary = {key: metadata.get(key) for key in METRICS}
    summary.update({f"{split}_{key}": metadata.get(f"{split}_{key}") for key in HELD_OUT_METRICS})
    if "split" in metadata:
        summary["split"] = split
    return summary


def check_folder(folder, expected=None, exact=False):
    """`folder`, after checking every file against `expected` ({path: {"sha256", "size"}}, the
    registry's) or, without it, against the SHA-256s in the folder's own metadata.json.

    Args:
        exact: also refuse files that are not expected (an extracted archive holds no others).

    Raises:
        ZooError: a missing metadata.json or file, an unexpected file, or a checksum or size
            mismatch (naming the file).
    """
    name = os.path.basename(os.path.normpath(folder))
    metadata_path = os.path.join(folder, METADATA)
    if not os.path.isfile(metadata_path):
        raise ZooError(f"{folder} is not a zoo entry: it has no {METADATA}.")
    if expected is None:
        try:
            expected = {path: {"sha256": digest} for path, digest in
                        files.read_json(metadata_path)["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):  # (JSONDecodeError is a ValueError)
            raise ZooError(f"{metadata_path} is not a zoo entry's metadata (a JSON object with "
                           "the SHA-256 of every file under 'files').") from None
        expected[METADATA] = {}  # (it holds the others' hashes; the registry holds its own)
    for relative, want in sorted(expected.items()):
        path = os.path.join(folder, relative)
        if not os.path.isfile(path):
            raise ZooError(f"Zoo model {name!r} is incomplete: {relative} is missing from {folder}.")
        if "size" in want and os.path.getsize(path) != want["size"]:
            raise ZooError(f"Zoo model {name!r}: {relative} has {os.path.getsize(path)} bytes, "
                           f"expected {want['size']}; the file was changed after publication. "
                           "Refusing to load it.")
        actual = sha256(path) if "sha256" in want else None
        if actual != want.get("sha256"):
            raise ZooError(f"Zoo model {name!r}: {relative} does not match its checksum "
                           f"(expected sha256 {want['sha256']}, found {actual}); the file was changed "
                           "after publication. Refusing to load it.")
    if exact:
        present = set(_files_in(folder))
        if present - set(expected):
            raise ZooError(f"Zoo model {name!r} holds files its checksums do not cover: "
                           f"{sorted(present - set(expected))}. Refusing to load it.")
    return folder


def verify(name, root=None):
    """The folder of the local or cached entry `name`, after `check_folder` (a cached entry of
    the registry against the registry's checksums); no fetching.

    Raises:
        ZooError: unknown name, missing metadata or file, or a checksum mismatch (naming the file).
    """
    searched = [root] if root else roots()
    for folder_root in searched:
        folder = os.path.join(folder_root, name)
        if os.path.isfile(os.path.join(folder, METADATA)):
            entry = registry()["entries"].get(name)
            cached = not root and folder_root == cache_dir() and entry is not None
            try:
                return check_folder(folder, entry["files"] if cached else None)
            except ZooError as e:
                if cached:  # (a stale or damaged cache: deleting it makes the next load fetch)
                    raise ZooError(f"{e} Delete {folder} to fetch it again.") from None
                raise
    known = [m["name"] for m in available(root)]
    places = searched if root else [*searched, f"the registry {REGISTRY}"]
    close = difflib.get_close_matches(name, known, n=1)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    raise ZooError(f"No zoo model {name!r} in {', '.join(places)}.{guess} Known: {known} "
                   f"{'' if root else zoo_dir_problem()}".rstrip())


def entry(source, root=None):
    """The verified folder of `source`: a zoo name (found locally or in the cache, else fetched
    by the registry), a folder holding metadata.json, the path of an entry archive (as its
    file:// URL), or an http(s)://, file:// or hf:// URL of an entry archive (`#sha256=<64 hex
    digits>` after it is checked too; any other `#` is refused).

    Raises:
        ZooError: an unknown name, a failed check or download; nothing partial is kept.
    """
    source = os.fspath(source)
    if "://" not in source and source.endswith(archives.SUFFIX):  # a local archive
        source = pathlib.Path(os.path.abspath(source)).as_uri()
    if "://" in source:
        url = resolve(source)
        if not urllib.parse.urlsplit(url).path.endswith(archives.SUFFIX):
            folder = source.partition("#")[0].rstrip("/")
            raise ZooError(f"{source!r} is not the URL of an entry archive: give "
                           f"{folder}/NAME{archives.SUFFIX}, or set TFVAE_ZOO_URL={folder} and "
                           "pass NAME.")
        return _fetch_url(url)
    if not root and os.path.isfile(os.path.join(source, METADATA)):
        return check_folder(source)
    try:
        return verify(source, root)
    except ZooError:
        known = registry()["entries"].get(source)
        if root or not known or any(os.path.isfile(os.path.join(r, source, METADATA)) for r in roots()):
            raise
    url = base_url() + known["archive"]["file"]
    return _install(url, cache_dir(), source, known["archive"], known["files"])


def _fetch_url(url):
    """The folder of the archive at `url`, cached under $TFVAE_HOME/urls/ by the URL."""
    address, hash_mark, fragment = url.partition("#")
    digest = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
    if hash_mark and not digest:  # (a mistyped check must not become no check)
        raise ZooError(f"{url!r} ends in #{fragment}: the only fragment is #sha256=<the "
                       "archive's 64 hex digits> (`sha256sum NAME.tar.gz`); fix it, or drop "
                       "the # part to fetch without that check.")
    if not digest and urllib.parse.urlsplit(address).scheme == "file":
        local = urllib.request.url2pathname(urllib.parse.urlsplit(address).path)
        if os.path.isfile(local):  # a local archive is cached by what it holds now
            return _fetch_url(f"{address}#sha256={sha256(local)}")
    want = {"sha256": digest[1].lower()} if digest else {}
    root = os.path.join(home(), "urls", hashlib.sha256(url.encode()).hexdigest()[:16])
    if os.path.isdir(root):
        for name in os.listdir(root):
            if not name.startswith(".") and os.path.isfile(os.path.join(root, name, METADATA)):
                return check_folder(os.path.join(root, name))
    return _install(address, root, None, want, None)


def _install(url, root, name, archive_expected, files_expected):
    """Downloads the archive at `url` and unpacks it into `root/<name>`, both in a temporary
    folder beside it, renamed into place only once every checksum has matched."""
    os.makedirs(root, exist_ok=True)
    for old in os.listdir(root):  # (left by a killed fetch; a running one is younger)
        if old.startswith(".tmp-") and time.time() - os.path.getmtime(os.path.join(root, old)) > STALE:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    label = name or os.path.basename(url)
    hint = (f"Point TFVAE_ZOO_URL at a folder (http(s):// or file://) that holds "
            f"{os.path.basename(url)}, or TFVAE_ZOO_DIR at a folder of entries." if name else
            "Check the address.")
    try:
        archive = os.path.join(tmp, "archive" + archives.SUFFIX)
        size = archives.download(url, archive, label, archive_expected.get("size"))
        if archive_expected.get("size") not in (None, size):
            raise ZooError(f"{url} has {size} bytes, the registry's archive {archive_expected['size']}: "
                           f"a truncated download or another release; nothing was kept. {hint}")
        actual = sha256(archive)
        if archive_expected.get("sha256") not in (None, actual):
            source = "of the registry" if name else "after #sha256="
            raise ZooError(f"{url} does not match the SHA-256 {source} (expected "
                           f"{archive_expected['sha256']}, found {actual}): a damaged download or "
                           f"another release; nothing was kept. {hint}")
        top = archives.extract(archive, os.path.join(tmp, "entry"), url)
        if name not in (None, top):
            raise ZooError(f"{url} holds the entry {top!r}, not {name!r}; nothing was kept. {hint}")
        try:
            folder = check_folder(os.path.join(tmp, "entry", top), files_expected, exact=True)
        except ZooError as e:
            raise ZooError(f"{e} (in {url}; nothing was kept)") from None
        final = os.path.join(root, top)
        if os.path.isdir(final) and not os.path.isfile(os.path.join(final, METADATA)):
            # no entry (its metadata.json deleted): set aside, to be removed with tmp, so that
            # the verified copy takes its place (a concurrent fetch may have done so first)
            with contextlib.suppress(FileNotFoundError):
                os.replace(final, os.path.join(tmp, "damaged"))
        try:
            os.replace(folder, final)
        except OSError:  # (another process fetching the same entry renamed its copy first)
            if not os.path.isfile(os.path.join(final, METADATA)):
                raise
        return final
    except archives.ArchiveError as e:
        raise ZooError(f"Could not fetch zoo model {label!r}: {e}; nothing was kept. {hint}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(root)  # (only if a failed fetch left it empty)


def load(source, root=None):
    """A zoo model, after every checksum is checked, loaded in Keras' safe mode.

    Args:
        source: a zoo name (`tfvae zoo list`), the folder of an entry, the path of an entry
            archive, or the http(s)://, file:// or hf://OWNER/REPO/NAME.tar.gz URL of one.
        root: look up a name only in this folder (no cache, no fetching).

    Returns:
        The Keras model.

    Example:
        model = tfvae.zoo.load("vae2d_mnist")   # fetched once into ~/.cache/tfvae/zoo
    """
    return files.load_model(os.path.join(entry(source, root), "model.keras"))


def is_zoo_source(source):
    """Whether `source` is read by the zoo: a URL, an entry folder or archive, or a name that
    is no path."""
    source = os.fspath(source)
    return ("://" in source or source.endswith(archives.SUFFIX)
            or os.path.isfile(os.path.join(source, METADATA))
            or (not os.path.exists(source) and os.sep not in source and not source.endswith(".keras")))


def load_name_or_path(source):
    """A model from a zoo source (`is_zoo_source`: `load`), else from a `.keras` file or a run
    folder."""
    return load(source) if is_zoo_source(source) else files.load_model(source)


def metadata(source):
    """The metadata.json of the zoo source `source` (a name, an entry folder, an archive URL)."""
    return files.read_json(os.path.join(entry(source), METADATA))


def without_optimizer(model):
    """A copy of `model` with the same weights (and generator state) but no optimizer, so the
    shipped `.keras` file holds the weights once instead of with Adam's two moments."""
    clean = type(model).from_config(model.get_config())
    clean.build((None,) + model.input_shape)
    clean.set_weights(model.get_weights())
    return clean


def check_outputs(model, x):
    """Values recorded at publication and recomputed by the zoo test: per-example ELBO (seed
    CHECK_SEED), the mean of each reconstruction, and the mean of each of 4 samples."""
    return {
        "elbo": np.asarray(model.elbo(x, seed=CHECK_SEED)).tolist(),
        "reconstruction_mean": np.asarray(model.reconstruct(x)).mean(axis=1).tolist(),
        "sample_mean": np.asarray(model.sample(4, seed=CHECK_SEED)).mean(axis=1).tolist(),
    }


def held_out_elbo(model, dataset):
    """Per-example ELBO over the batches of `evaluation_data`, batch i at seed CHECK_SEED + i:
    the metadata's held-out ELBO, recomputed by the zoo test."""
    return np.concatenate([np.asarray(model.elbo(x, seed=CHECK_SEED + i)) for i, x in enumerate(dataset)])


def run_starts(starts):
    """A run's (re)starts (`metrics.json` "starts") as the metadata keeps them: the epoch each
    trained from, when, and the config values it changed ({"optimizer.learning_rate": 0.0003}),
    each against the start before it."""
    kept, previous = [], None
    for entry in starts:
        flat = _flatten(entry["config"])
        changed = {} if previous is None else {k: v for k, v in flat.items() if previous.get(k) != v}
        kept.append({"from_epoch": entry["from_epoch"], "time": entry["time"], "changed": changed})
        previous = flat
    return kept


def _flatten(config, prefix=""):
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def evaluation_data(config):
    """The split of a run's final evaluation (`tfvae.data.splits`: the test split where the data
    has one), binarized as its config says, in batches of 500: (dataset, binarization, split)."""
    from tfvae import data, likelihoods

    d = config["data"]
    binary = likelihoods.get(config["model"].get("likelihood", "bernoulli")).binary
    binarize = d.get("test_binarize", "fixed") if binary else None
    split = data.splits(d["name"], d.get("validation_size", 0)).evaluation
    return data.load(d["name"], split, binarize=binarize, batch_size=500,
                     validation_size=d.get("validation_size", 0), flatten=d.get("flatten", True),
                     eight_bit=d.get("eight_bit", False)), binarize, split


def held_out(results, name):
    """The value `name` ("elbo", "nll", "nll_stderr", ...) that results or zoo metadata hold for
    the split they measured (`results["split"]`; "test" in files written before it was named),
    with the split: (value or None, split)."""
    split = results.get("split", "test")
    return results.get(f"{split}_{name}"), split




LOG_PROB_SAMPLES = 100  # k of an entry's served log_prob (zoo/served_nll.py combines its calls)


def publish(run_dir, name, root=None, log_prob_samples=LOG_PROB_SAMPLES):
    """Writes zoo entry `name` from a finished `tfvae train` folder; returns its metadata.

    The IWAE NLL and active units come from the run (`metrics.json` results, or
    `evaluation.json` of `tfvae evaluate`); the test ELBO is recomputed here. The folder is
    assembled under a temporary name and renamed into place, replacing an older entry.
    """
    from tfvae import evaluation, export, plots

    root = root or zoo_dir()
    config = files.read_json(os.path.join(run_dir, "config.json"))
    record = files.read_json(os.path.join(run_dir, "metrics.json"), default={})
    evaluated = files.read_json(os.path.join(run_dir, "evaluation.json"), default={})
    if config is None or "results" not in record:
        raise ZooError(f"{run_dir} is not a finished `tfvae train` folder (config.json and the "
                       "results in metrics.json are needed).")
    model = without_optimizer(files.load_model(run_dir))
    held_out_ds, binarize, split = evaluation_data(config)
    x_check = next(iter(held_out_ds))[:NUM_CHECK_EXAMPLES]

    final = os.path.join(root, name)
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files.save_model(model, os.path.join(tmp, "model.keras"))
    export.export_saved_model(model, os.path.join(tmp, "serving"), version=1,
                              log_prob_samples=log_prob_samples, name=name)
    plots.sample_grid(model, os.path.join(tmp, "samples.png"), num_samples=64, seed=CHECK_SEED)

    start = time.time()
    elbo = held_out_elbo(model, held_out_ds)
    results = record["results"]
    if held_out(results, "elbo")[1] != split:
        raise ZooError(f"{run_dir}'s results measure the {held_out(results, 'elbo')[1]} split, "
                       f"its config the {split} split: rerun `tfvae train` on it to finish it.")
    iwae = evaluated.get("iwae") or {}
    if evaluated and evaluated.get("split", split) != split:
        iwae, evaluated = {}, {}  # (`tfvae evaluate --dataset` of other data)
    metadata = {
        "name": name,
        "model": type(model).__name__,
        "config": config,
        "dataset": config["data"]["name"],
        "split": split,
        "binarization": {"train": config["data"]["binarize"], split: binarize},
        "epochs": results["epochs"],
        "train_seconds": results["train_seconds"],
        "seconds_per_epoch": median_epoch_seconds(record),
        "starts": run_starts(record.get("starts", [])),
        "params": int(model.count_params()),
        f"{split}_elbo": float(elbo.mean()),
        f"{split}_elbo_stderr": evaluation.stderr(elbo),
        f"{split}_elbo_seconds": time.time() - start,
        f"{split}_nll": results.get(f"{split}_nll", iwae.get("nll")),
        f"{split}_nll_stderr": results.get(f"{split}_nll_stderr", iwae.get("stderr")),
        "num_samples": results.get("num_samples", iwae.get("num_samples")),
        f"{split}_bits_per_dim": results.get(f"{split}_bits_per_dim", iwae.get("bits_per_dim")),
        f"{split}_bits_per_dim_stderr": results.get(f"{split}_bits_per_dim_stderr",
                                                    iwae.get("bits_per_dim_stderr")),
        f"{split}_exact_nll": results.get(f"{split}_exact_nll", (evaluated.get("exact") or {}).get("nll")),
        "active_units": (evaluated.get("active_units") or {}).get("active_units"),
        "kl_estimate": model.kl_estimate,
        "checks": {"num_examples": NUM_CHECK_EXAMPLES, "seed": CHECK_SEED,
                   "values": check_outputs(model, x_check)},
        "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    metadata["files"] = {path: sha256(os.path.join(tmp, path)) for path in _files_in(tmp)}
    files.write_json(os.path.join(tmp, METADATA), metadata)
    write_card(tmp, card(metadata))
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return files.read_json(os.path.join(final, METADATA))


def reexport(name, root=None, log_prob_samples=LOG_PROB_SAMPLES):
    """Rewrites entry `name`'s `serving/1/` from its own model.keras with this version's export
    (e.g. for the `log_prob_seeded` signature that zoo/served_nll.py calls); returns the metadata.

    The model and its figures stay as published: the entry is verified, the model is loaded in
    safe mode and must reproduce the metadata's recorded outputs (`check_outputs`) to float32
    rounding (128 eps of the largest value, as tests/helpers.py's cross-program check) before
    anything is written, and the metadata's SHA-256s then cover the new files. The old
    `serving/` is kept aside until the metadata names the new one. A `served_nll` measured from
    the old export is dropped, since its files are gone, and the card is then rewritten without
    it (`card`, no published anchor: zoo/cards.py NAME in a checkout adds it back).

    Raises:
        ZooError: a failed verification, or a model that no longer gives its recorded outputs.
    """
    from tfvae import export

    root = root or zoo_dir()
    folder = verify(name, root)
    metadata = files.read_json(os.path.join(folder, METADATA))
    model = files.load_model(os.path.join(folder, "model.keras"))
    checks = metadata["checks"]
    x_check = next(iter(evaluation_data(metadata["config"])[0]))[:checks["num_examples"]]
    for key, values in check_outputs(model, x_check).items():
        recorded = np.asarray(checks["values"][key], np.float32)
        tolerance = 128 * np.finfo(np.float32).eps * np.abs(recorded).max()
        if not np.allclose(values, recorded, rtol=0, atol=tolerance):
            raise ZooError(f"Zoo model {name!r} no longer gives the {key} recorded at publication "
                           f"(max difference {np.abs(np.asarray(values) - recorded).max():.3g}): "
                           "its figures would not describe a re-export; republish it from its run.")
    serving = os.path.join(folder, "serving")
    for stale in (f for f in os.listdir(folder) if f.startswith((".tmp-serving-", ".old-serving-"))):
        shutil.rmtree(os.path.join(folder, stale))  # (left by an interrupted re-export)
    tmp, old = (os.path.join(folder, f".{what}-serving-{os.getpid()}") for what in ("tmp", "old"))
    export.export_saved_model(model, tmp, version=1, log_prob_samples=log_prob_samples, name=name)
    os.replace(serving, old)
    os.replace(tmp, serving)
    metadata["files"] = {path: digest for path, digest in metadata["files"].items()
                         if not path.startswith("serving/")}
    metadata["files"].update({f"serving/{path}": sha256(os.path.join(serving, path))
                              for path in _files_in(serving)})
    measured_old_files = metadata.pop("served_nll", None) is not None
    metadata["reexported"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    files.write_json(os.path.join(folder, METADATA), metadata)
    shutil.rmtree(old)
    if measured_old_files:
        write_card(folder, card(metadata))
    return files.read_json(os.path.join(folder, METADATA))


def median_epoch_seconds(record):
    """The median of a run's epoch times (metrics.json): an epoch that spans a suspended or
    replaced machine would skew a mean. None for a record without epochs."""
    seconds = sorted(e["seconds"] for e in record.get("epochs", []) if e.get("seconds") is not None)
    return float(np.median(seconds)) if seconds else None


def nll_text(m):
    """The held-out NLL of metadata `m` (of its `split`) as the zoo table and the cards print it."""
    exact, _ = held_out(m, "exact_nll")
    if exact is not None:
        return f"{exact:.2f} (exact)"
    nll, _ = held_out(m, "nll")
    if nll is None:
        return "not measured"
    bits = held_out(m, "bits_per_dim")[0]
    return (f"{nll:.2f} +- {held_out(m, 'nll_stderr')[0]:.2f} (IWAE k={m['num_samples']})"
            + ("" if bits is None else f" = {bits:.3f} bits/dim"))


def data_text(m):
    """How an entry saw its data, for its card: binarized, 8-bit integers or dequantized."""
    d, split = m["config"]["data"], held_out(m, "elbo")[1]
    if not (d.get("eight_bit") or d.get("dequantize")):
        return (f"trained on the training split with `{m['binarization']['train']}` binarization, "
                f"measured on the {split} split with `{m['binarization'][split]}` binarization "
                f"(data seed {d['seed']}).")
    seen = ("dequantized to (x + u) / 256, u ~ U[0, 1), with the log 256 per dimension counted in "
            "its bits/dim" if d.get("dequantize") else "as 8-bit integers 0..255, neither scaled "
            "nor binarized")
    return f"trained on the training split and measured on the {split} split {seen} (data seed {d['seed']})."


def same_data_text(m):
    """What NLLs must share with the entry's to be compared with it: its binarization, its 8-bit
    values, or its dequantization."""
    d = m["config"]["data"]
    if d.get("dequantize"):
        return "dequantization of the same 8-bit values"
    return "8-bit values (0..255, not binarized)" if d.get("eight_bit") else "binarization"


def description(metadata):
    """One line saying what the entry is, from its metadata: model, dataset, model settings."""
    settings = ", ".join(f"{k}={v}" for k, v in sorted(metadata["config"]["model"].items())
                         if k != "class_name")
    return (f"{metadata['model']} on {metadata['dataset']} ({settings}), trained by "
            f"zoo/configs/{metadata['config']['name']}.py.")


def card(metadata, reproduce=None, anchor=None, beside=()):
    """The model card (README.md) of an entry: every number from `metadata`.

    Args:
        reproduce: the training command (default `tfvae train zoo/configs/<config name>.py`).
        anchor: (published value, what it is, our target), as in `zoo/zoo_table.py`.
        beside: more rows of the metrics table, (metric, value, published, target) each: e.g.
            lossless compressors on the same images.
    """
    from tfvae import evaluation

    m, name = metadata, metadata["name"]
    published, what, target = anchor or ("-", "", "report")
    reproduce = reproduce or f"`tfvae train zoo/configs/{m['config']['name']}.py`"
    model_config = "\n".join(f"{k} = {v!r}" for k, v in sorted(m["config"]["model"].items()))
    (elbo_value, split), elbo_stderr = held_out(m, "elbo"), held_out(m, "elbo_stderr")[0]
    elbo = f"{elbo_value:.2f} +- {elbo_stderr:.2f}"
    restarts = [s for s in m.get("starts", [])[1:]]
    history = "".join(
        f"\nRestarted at epoch {s['from_epoch']}" + (
            " with " + ", ".join(f"{k}={v!r}" for k, v in sorted(s["changed"].items()))
            if s["changed"] else " with the same config") + "." for s in restarts)
    units = "-" if m.get("active_units") is None else m["active_units"]
    per_epoch = (f" (median {m['seconds_per_epoch']:.0f} s per epoch)" if m.get("seconds_per_epoch")
                 else f" ({m['train_seconds'] / max(m['epochs'], 1):.0f} s per epoch on average)")
    # An anchor's target in bits/dim stands on the bits/dim row, any other on the NLL row.
    bits_target, target = (target, "") if "bits/dim" in target else ("", target)
    rows = []
    bits, bits_stderr = held_out(m, "bits_per_dim")[0], held_out(m, "bits_per_dim_stderr")[0]
    if bits is not None:
        rows.append((f"{split} bits/dim, -log2 p(x) / D (IWAE k={m['num_samples']})",
                     f"{bits:.4f}" + ("" if bits_stderr is None else f" +- {bits_stderr:.4f}"), "", bits_target))
    served = m.get("served_nll")
    if served:
        rows.append((f"{split} NLL re-measured from `serving/1/` by TensorFlow alone (k={served['num_samples']}, "
                     f"`{served['command']}`)", f"{served['nll']:.2f} +- {served['stderr']:.2f}",
                     "", "within 0.3 of the NLL above"))
    rows.extend(beside)  # (not list(): this module has its own `list`)
    more = "".join(f"\n| {' | '.join(str(cell) for cell in row)} |" for row in rows)
    return f"""# {name}

{description(m)}

## Data

`{m['dataset']}` (`tfvae.data.load("{m['dataset']}")`): {data_text(m)}

## Architecture

`{m['model']}`, {m['params']:,} parameters; the config's model section:

```
{model_config}
```

## Training

{reproduce} (the config file's docstring explains the recipe; a pip install carries the file
as `tfvae.zoo.config_file("{m['config']['name']}")`):
{m['epochs']} epochs, {evaluation.duration(m['train_seconds'])}{per_epoch} on the machine that published it ({m['published']}).
The whole config is `config` in metadata.json.{history}

## Metrics

| metric | this entry | published | target |
|---|---|---|---|
| {split} NLL (nats) | {nll_text(m)} | {published}{' (' + what + ')' if what else ''} | {target} |
| {split} ELBO (nats) | {elbo} | | |
| active units | {units} | | |{more}

## Samples

![64 samples of the model, seed {CHECK_SEED}](samples.png)

## Intended use

Research and teaching: samples (`tfvae sample {name} --out grid.png`), likelihood comparisons on
the same data and {same_data_text(m)}, latent-space studies, a starting point for fine-tuning
(`--set training.init_from={name}`), and serving (`serving/1/`, TF Serving; see the tfvae README).

```python
model = tfvae.zoo.load("{name}")
```

## Limitations

Trained only on {m['dataset']}: its likelihoods, samples and latents say nothing about other
data, and its NLL is comparable only with numbers on the same {same_data_text(m)} of the same
{split} split. Not validated as a classifier, anomaly detector or for any decision about people. The
published column is the paper's number, not a result of this code; where the two differ, the
entry does not reproduce the paper.
"""


def write_card(folder, text):
    """Writes `text` as the entry's README.md and its SHA-256 into metadata.json."""
    with files.atomic_path(os.path.join(folder, CARD)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    metadata = files.read_json(os.path.join(folder, METADATA))
    metadata["files"][CARD] = sha256(os.path.join(folder, CARD))
    files.write_json(os.path.join(folder, METADATA), metadata)


def release_registry(path=None):
    """The registry file `pack` updates: `path`, else the checkout's tfvae/zoo_registry.json.

    Raises:
        ZooError: no `path` in an installed package, whose registry is what that install
            trusts, not a release's file to edit.
    """
    if path or in_checkout():
        return path or REGISTRY
    raise ZooError("tfvae runs from an installed package, whose zoo_registry.json is not the "
                   "release's to edit: give the registry file for the archives' lines, e.g. "
                   "`tfvae zoo pack --registry runs/zoo-release/zoo_registry.json`.")


def pack(name, out_dir, root=None, registry_path=None):
    """Writes `out_dir/<name>.tar.gz` of a verified local entry and its line into the registry
    `release_registry(registry_path)`.

    The archive holds metadata.json and the files it hashes, under `<name>/`, and is the same
    bytes for the same files (`archives.write`). The entry needs its model card.

    Returns:
        (the archive's path, the registry line {name: entry}).
    """
    registry_path = release_registry(registry_path)
    folder = verify(name, root or zoo_dir())
    metadata = files.read_json(os.path.join(folder, METADATA))
    if CARD not in metadata["files"]:
        raise ZooError(f"Zoo model {name!r} has no model card ({CARD} in its metadata files); "
                       "write one with `python zoo/cards.py NAME` in a checkout, or zoo.write_card.")
    names = sorted(metadata["files"]) + [METADATA]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name + archives.SUFFIX)
    archives.write(path, folder, names, name)
    line = {"description": description(metadata), "model": metadata["model"],
            "dataset": metadata["dataset"], "metrics": summary_metrics(metadata),
            "files": {n: {"sha256": sha256(os.path.join(folder, n)),
                          "size": os.path.getsize(os.path.join(folder, n))} for n in names},
            "archive": {"file": os.path.basename(path), "sha256": sha256(path),
                        "size": os.path.getsize(path)}}
    table = registry(registry_path)
    table["entries"][name] = line
    files.write_json(registry_path, table)
    return path, {name: line}


list = available  # noqa: A001  (the public spelling, as in README: tfvae.zoo.list())
