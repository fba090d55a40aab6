"""Datasets as `tf.data` pipelines of float32 examples: images in [0, 1] (or {0, 1} when
binarized), or real values as they are.

`load` takes a built-in name (MNIST, Fashion-MNIST: found in an explicit folder,
`$TFVAE_DATA_DIR/<name>/`, Debian's dataset packages, then tensorflow-datasets), any
tensorflow-datasets image dataset ("tfds:NAME"), numpy arrays, a .npy / .npz file, or a folder
of images; a missing or damaged file is an error that names it.
"""
import collections
import gzip
import os
import socket
import zlib

import numpy as np
import tensorflow as tf

DATASETS = ("mnist", "fashion_mnist")  # built in (IDX files); other sources: see `load`
TFDS_PREFIX = "tfds:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLITS = ("train", "validation", "test")
BINARIZATIONS = (None, "dynamic", "fixed")

# Standard IDX file stems per split (the names used by LeCun's MNIST and Zalando's Fashion-MNIST).
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_DEBIAN_DIRS = {"mnist": "/usr/share/datasets/mnist",
                "fashion_mnist": "/usr/share/datasets/fashion-mnist"}
_HOW_TO_GET = {
    "mnist": "put the four MNIST IDX files (e.g. train-images-idx3-ubyte.gz) in "
             "$TFVAE_DATA_DIR/mnist/, or run on a machine with internet access so "
             "tensorflow-datasets can download it",
    "fashion_mnist": "`apt-get install dataset-fashion-mnist`, or put the Fashion-MNIST IDX "
                     "files in $TFVAE_DATA_DIR/fashion_mnist/, or run on a machine with internet "
                     "access so tensorflow-datasets can download it",
}


class DataError(ValueError):
    """A dataset file is missing, truncated, corrupt or of the wrong shape."""


def load(name, split="train", *, data_dir=None, binarize=None, batch_size=100, shuffle=None,
         seed=0, validation_size=0, with_labels=False, drop_remainder=False, epoch=None,
         shard=None, flatten=True, eight_bit=False, dequantize=False):
    """Loads a dataset as a batched `tf.data.Dataset` of float32 examples.

    Args:
        name: the data: "mnist" or "fashion_mnist" (built in); "tfds:NAME", a
            tensorflow-datasets image classification dataset (read as_supervised: image and
            label, all images of one size, held in memory); a numpy array
            [N, ...] or an (x, labels) pair; the path of a .npy file (x) or .npz file (x, or
            x_train / x_test, with y, labels, y_train / y_test if present); or a folder of
            images (PNG, JPEG, BMP, GIF), all of one size, an image's label the subfolder it
            is in, the splits `train/` and `test/` subfolders if it has them (its images in a
            fixed shuffled order, so that a validation split holds every class). uint8 values
            are images, divided by 255; floats are taken as they are.
        split: "train", "validation" or "test". With `validation_size=v > 0` the last v
            training examples form "validation" and "train" is the rest. Data without a test
            split (an array, a file or folder without one) has "train" and "validation" only.
        data_dir: a folder holding the IDX files; when given, the only place looked in (no
            files there is an error).
        binarize: None (grey levels in [0, 1]); "dynamic" (x ~ Bernoulli(intensity), drawn
            anew every epoch, the protocol of Burda et al. 2016 and Sonderby et al. 2016);
            "fixed" (drawn once from `seed`, identical across runs: use it for test sets).
        batch_size: images per batch.
        shuffle: reshuffle every epoch; defaults to True for "train" only.
        seed: seed of the shuffle and of the binarization.
        validation_size: number of training images held out as "validation".
        with_labels: yield `(x, label)` pairs instead of `x`.
        drop_remainder: drop the last, smaller batch.
        epoch: optional int tf.Variable holding the epoch whose order and binarization to
            produce (`tfvae.callbacks.DataEpoch` sets it); by default each pass over the
            dataset is the next epoch.
        shard: `(index, count)`: only part `index` of `count` of every batch, the rows
            [index * n // count, (index + 1) * n // count) of a batch of n (one worker's share
            under `tfvae.multi_worker`; `batch_size` stays the global batch). The shares are
            exactly the rows one process sees, binarized alike, so the shards of a batch are
            disjoint and together are the batch.

        flatten: examples as flat vectors [batch, D] (MNIST: [batch, 784]); False keeps their
            shape ([batch, 28, 28, 1], [batch, H, W, C] for images).
        eight_bit: uint8 images as their values 0..255 (float32 holding integers), for the
            8-bit likelihoods ("discretized_logistic", "categorical256"): not divided by 255,
            not binarized.
        dequantize: uint8 images as (x + u) / 256, u ~ U[0, 1) per value (Theis, van den Oord
            & Bethge 2016): data for a continuous likelihood whose density then bounds the
            8-bit probability, log P(x) >= E_u log p((x + u) / 256) - D log 256 (see
            `tfvae.evaluation.bits_per_dim(..., dequantized=True)`). The noise is drawn anew
            every epoch for "train" and fixed (seeded by `seed`) for the held-out splits.

    Returns:
        A `tf.data.Dataset` of float32 batches (and int32 labels).

    Example:
    >>> train = tfvae.data.load("mnist", "train", binarize="dynamic", batch_size=100)
    >>> photos = tfvae.data.load("path/to/images", flatten=False, validation_size=500)
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split. Expected one of {SPLITS}. Received: split={split!r}")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"Expected binarize in {BINARIZATIONS}. Received: binarize={binarize!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be (index, count) with 0 <= index < count. Received: shard={shard!r}")
    if split == "validation" and validation_size <= 0:
        raise ValueError("split='validation' needs validation_size > 0 (e.g. 10000). "
                         f"Received: validation_size={validation_size}")

    if dequantize and (binarize is not None or eight_bit):
        raise ValueError("dequantize=True makes 8-bit pixels continuous, (x + u) / 256, for a "
                         "continuous likelihood; it excludes binarize and eight_bit. Received: "
                         f"binarize={binarize!r}, eight_bit={eight_bit!r}")
    if eight_bit and binarize is not None:
        raise ValueError("eight_bit=True keeps the pixels' 8-bit values for an 8-bit likelihood; "
                         f"binarizing them contradicts it. Received: binarize={binarize!r}")
    images, labels = examples(name, "test" if split == "test" else "train", data_dir=data_dir)
    if dequantize and images.dtype != np.uint8:
        raise ValueError(f"dequantize=True is for 8-bit images (uint8); this data is {images.dtype}.")
    if eight_bit and images.dtype != np.uint8:
        raise ValueError(f"eight_bit=True is for 8-bit images (uint8); this data is "
                         f"{images.dtype} (floats are taken as they are: convert 8-bit values "
                         "with x.astype('uint8')).")
    if binarize is not None and images.dtype != np.uint8 and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"binarize={binarize!r} draws x ~ Bernoulli(value): it needs values in "
                         f"[0, 1] (uint8 images are divided by 255). Received values in "
                         f"[{images.min():g}, {images.max():g}]; use binarize=None for real values.")
    if flatten:
        images = images.reshape(len(images), -1)
    if split != "test" and validation_size > 0:
        if validation_size >= len(images):
            raise ValueError(f"validation_size must be below the {len(images)} training images. "
                             f"Received: validation_size={validation_size}")
        keep = slice(-validation_size, None) if split == "validation" else slice(None, -validation_size)
        images, labels = images[keep], labels[keep]
    if shuffle is None:
        shuffle = split == "train"
    if dequantize and split != "train" and epoch is None:  # held out: the same noise every pass
        epoch = tf.constant(0, tf.int64)
    return _pipeline(images, labels, binarize=binarize, batch_size=batch_size, shuffle=shuffle,
                     seed=seed, with_labels=with_labels, drop_remainder=drop_remainder, epoch=epoch,
                     shard=shard, eight_bit=eight_bit, dequantize=dequantize)


def load_arrays(name, split, *, data_dir=None):
    """Returns `(images, labels)`: uint8 [N, 784] and int32 [N] of a built-in dataset, for split
    "train" or "test"."""
    images, labels = _builtin(name, split, data_dir)
    return images.reshape(len(images), -1), labels


def examples(source, split, *, data_dir=None):
    """`(x, labels)` of any source `load` takes, for split "train" or "test": x [N, ...] in the
    examples' own shape (uint8 images [N, H, W, C], or floats), labels int32 [N] (zeros when
    the source has none)."""
    if isinstance(source, (np.ndarray, tuple, list)):
        if split == "test":
            raise ValueError("Arrays have no test split: load them as 'train' with "
                             "validation_size > 0, or load the test arrays by themselves.")
        if isinstance(source, np.ndarray):
            return _checked_arrays(source, None, "the array given")
        if len(source) == 2:
            return _checked_arrays(np.asarray(source[0]), np.asarray(source[1]), "the arrays given")
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"Unknown dataset. Expected one of {DATASETS}, 'tfds:NAME', an array, a "
                         f".npy / .npz file or a folder of images. Received: name={source!r}")
    source = os.fspath(source)
    if source in DATASETS:
        images, labels = _builtin(source, split, data_dir)
        return images[..., None], labels
    if source.startswith(TFDS_PREFIX):
        return _from_tfds(source[len(TFDS_PREFIX):], split)
    if os.path.isdir(source):
        return _from_folder(source, split)
    if os.path.isfile(source) and source.endswith((".npy", ".npz")):
        return _from_numpy_file(source, split)
    raise _unknown_dataset(source)


def _unknown_dataset(source):
    return ValueError(f"Unknown dataset. Expected one of {DATASETS}, 'tfds:NAME' (a "
                      "tensorflow-datasets image dataset), an array, or the path of a .npy / .npz "
                      f"file or of a folder of images. Received: name={source!r}"
                      + (" (no such file or folder)" if not os.path.exists(source) else ""))


class Splits(collections.namedtuple("Splits", ["validation", "evaluation"])):
    """The held-out splits of a run: `validation` is what training measures after every epoch
    (model selection, early stopping, the curves), carved from the training data, or None;
    `evaluation` is the split of the final evaluation, "test" when the data has one."""


def splits(source, validation_size=0):
    """The held-out splits of a run on `source` (the one place they are chosen).

    Validation is always the last `validation_size` training examples ("validation"; None when
    `validation_size` is 0), never the test split. The final evaluation measures "test" when the
    source has one (built-in and tensorflow-datasets names, a folder with test/, an .npz with
    x_test), else the validation split, and every result names the split it measured.

    Returns:
        `Splits(validation, evaluation)`, e.g. Splits(None, "test") for MNIST without
        validation, Splits("validation", "validation") for arrays with validation_size=500.

    Raises:
        ValueError: the source has no test split and `validation_size` is 0.
    """
    validation = "validation" if validation_size else None
    if _has_test_split(source):
        return Splits(validation, "test")
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise _unknown_dataset(os.fspath(source))
    if not validation_size:
        raise ValueError(f"{_describe(source)} has no test split and no validation_size was "
                         "given: train with data.validation_size > 0 (the last N training "
                         "examples, then measured instead of a test split), or give test data.")
    return Splits(validation, "validation")


def _has_test_split(source):
    if not isinstance(source, (str, os.PathLike)):
        return False  # arrays
    path = os.fspath(source)
    if path in DATASETS or path.startswith(TFDS_PREFIX) or os.path.isdir(os.path.join(path, "test")):
        return True
    if path.endswith(".npz") and os.path.isfile(path):
        with np.load(path, allow_pickle=False) as stored:
            return "x_test" in stored.files
    return False


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return "an array" if isinstance(source, np.ndarray) else "the arrays given"


def _checked_arrays(x, labels, what):
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{what}: expected examples [N, ...] (N >= 1, each of shape (D,) or "
                         f"(H, W, C), ...). Received shape {x.shape}")
    if x.dtype == np.uint8 and x.max() <= 1:
        raise ValueError(f"{what}: uint8 values are images in 0..255 (divided by 255), but these "
                         "are all 0 or 1: pass binary data as floats, x.astype('float32').")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what}: expected uint8 images or float values. Received dtype {x.dtype}; "
                         "convert it with x.astype('float32') (or 'uint8' for images in 0..255).")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise ValueError(f"{what}: example {row} has a non-finite value. Fix or drop it.")
    labels = np.zeros(len(x), np.int32) if labels is None else labels.astype(np.int32).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"{what}: {len(x)} examples but {len(labels)} labels.")
    return (x if x.dtype == np.uint8 else x.astype(np.float32, copy=False)), labels


def _from_numpy_file(path, split):
    """x (and labels) of a .npy or .npz file; an .npz holds x or x_train / x_test."""
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable numpy file ({e}).") from None
    if isinstance(stored, np.ndarray):
        if split == "test":
            raise ValueError(f"{path} holds one array, no test split: load it as 'train' with "
                             "validation_size > 0, or give the test data as its own file.")
        return _checked_arrays(stored, None, path)
    with stored:
        keys = set(stored.files)
        x_key = next((k for k in (f"x_{split}", "x", "images") if k in keys), None)
        if x_key is None or (split == "test" and x_key != "x_test"):
            raise ValueError(f"{path} has no {'x_test' if split == 'test' else 'x, x_train or images'} "
                             f"array. Its arrays: {sorted(keys)}")
        y_key = next((k for k in (f"y_{split}", "y", "labels") if k in keys), None)
        return _checked_arrays(stored[x_key], stored[y_key] if y_key else None, f"{path}[{x_key}]")


def _from_folder(folder, split):
    """The images of a folder (recursively), their labels the subfolders they are in (sorted
    names, 0, 1, ...); `train/` and `test/` subfolders are the splits."""
    def images_in(root):
        return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names
                      if f.lower().endswith(IMAGE_SUFFIXES))

    splits = [os.path.join(folder, s) for s in ("train", "test")]
    if os.path.isdir(splits[0]):
        folder = os.path.join(folder, split)
        if not os.path.isdir(folder):
            raise ValueError(f"{os.path.dirname(folder)} has train/ but no {split}/ folder.")
    elif split == "test":
        raise ValueError(f"{folder} has no test/ folder: load it as 'train' with "
                         "validation_size > 0, or give train/ and test/ subfolders.")
    else:
        splits = [folder]
    paths = images_in(folder)
    if not paths:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    # one numbering of the classes for every split: the subfolders of all of them
    classes = sorted({os.path.relpath(os.path.dirname(p), root) for root in splits
                      if os.path.isdir(root) for p in images_in(root)})
    images, labels = [], []
    for path in paths:
        try:
            image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
        except tf.errors.OpError as e:
            raise DataError(f"{path}: not a readable image ({e.message}).") from None
        if images and image.shape != images[0].shape:
            raise DataError(f"{path} is {image.shape[1]}x{image.shape[0]} with {image.shape[2]} "
                            f"channels, {paths[0]} {images[0].shape[1]}x{images[0].shape[0]} with "
                            f"{images[0].shape[2]}: the images of a dataset need one size (resize "
                            "them, e.g. with PIL or tf.image.resize).")
        images.append(image)
        labels.append(classes.index(os.path.relpath(os.path.dirname(path), folder)))
    # a fixed shuffled order, so that the last `validation_size` images are of every class
    order = np.random.default_rng(0).permutation(len(paths))
    return np.stack(images)[order], np.asarray(labels, np.int32)[order]


def _from_tfds(name, split):
    """uint8 images [N, H, W, C] and labels of a tensorflow-datasets image dataset."""
    arrays, note = _load_tfds(name, split, flatten=False)
    if arrays is None:
        raise FileNotFoundError(f"Could not load {TFDS_PREFIX}{name} ({split} split): {note}.")
    return arrays


def _builtin(name, split, data_dir):
    """uint8 [N, 28, 28] and int32 [N] of a built-in dataset."""
    if data_dir is not None:
        # An explicit folder is the caller's word: no data there is an error naming it, never
        # a silent fall-back to $TFVAE_DATA_DIR, Debian's packages or tensorflow-datasets.
        folder = os.fspath(data_dir)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"data_dir {folder!r} is not a folder. Pass the folder that "
                                    f"holds the {name} IDX files, or data_dir=None to search "
                                    "$TFVAE_DATA_DIR, Debian's dataset packages and "
                                    "tensorflow-datasets.")
        if _find_idx_files(folder, split) is None:
            raise FileNotFoundError(
                f"data_dir {folder!r} holds no {name} {split} split: expected "
                f"{' and '.join(s + '[.gz]' for s in _IDX_STEMS[split])} there. Put the files "
                "there, or pass data_dir=None to search $TFVAE_DATA_DIR, Debian's dataset "
                "packages and tensorflow-datasets.")
    looked = []
    for folder in _candidate_dirs(name, data_dir):
        found = _find_idx_files(folder, split)
        if found is None:
            looked.append(f"{folder} (no {' / '.join(_IDX_STEMS[split])}[.gz])")
            continue
        images, labels = (read_idx(path) for path in found)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{found[0]}: expected images of shape [N, 28, 28]. "
                            f"Received shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{found[1]}: expected {len(images)} labels to match {found[0]}. "
                            f"Received shape {labels.shape}")
        return images, labels.astype(np.int32)

    arrays, tfds_note = _load_tfds(name, split)
    if arrays is not None:
        images, labels = arrays
        return images.reshape(len(images), 28, 28), labels
    looked.append(tfds_note)
    raise FileNotFoundError(
        f"Could not find the {name!r} dataset ({split} split). Looked in:\n  - "
        + "\n  - ".join(looked) + f"\nTo get it: {_HOW_TO_GET[name]}.")


def read_idx(path):
    """Reads one IDX file (optionally gzip-compressed) into a numpy array, checking it fully.

    The IDX format (LeCun et al.): a big-endian header of magic number 0x00000800 + ndim
    (0x08 = unsigned byte data), then ndim big-endian int32 sizes, then the bytes.
    """
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read the file, the gzip stream is corrupt or truncated "
                        f"({e}). Delete it and fetch it again.") from e
    if len(raw) < 4:
        raise DataError(f"{path}: file is {len(raw)} bytes, too short for an IDX header.")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
        raise DataError(f"{path}: bad magic number {magic:#010x}; expected {_IMAGE_MAGIC:#010x} "
                        f"(images) or {_LABEL_MAGIC:#010x} (labels). Is this an IDX file?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: header announces shape {shape} ({expected} bytes) but the file "
                        f"holds {len(raw)} bytes: it is truncated or padded.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def binarize_fixed(images, seed=0):
    """x ~ Bernoulli(value), drawn once from `seed`: of uint8 images (value = pixel / 255) uint8
    {0, 1}, of values in [0, 1] float32 {0, 1}, of the same shape."""
    u = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    if images.dtype == np.uint8:
        return (u * 255.0 < images).astype(np.uint8)
    return (u < images).astype(np.float32)


def _candidate_dirs(name, data_dir):
    if data_dir is not None:
        return [os.fspath(data_dir)]
    dirs = []
    if os.environ.get("TFVAE_DATA_DIR"):
        dirs.append(os.path.join(os.environ["TFVAE_DATA_DIR"], name))
    else:
        dirs.append("$TFVAE_DATA_DIR/<name> (TFVAE_DATA_DIR is not set)")
    dirs.append(_DEBIAN_DIRS[name])
    return dirs


def _find_idx_files(folder, split):
    paths = []
    for stem in _IDX_STEMS[split]:
        candidates = [os.path.join(folder, stem + suffix) for suffix in (".gz", "")]
        existing = [p for p in candidates if os.path.isfile(p)]
        if not existing:
            return None
        paths.append(existing[0])
    return paths


def _online(host="storage.googleapis.com", timeout=3.0):
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, split, flatten=True):
    """Returns ((images, labels) or None, a note for the not-found message)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None, "tensorflow-datasets (not installed)"
    try:
        ds = tfds.load(name, split=split, as_supervised=True, download=False)
    except AssertionError:  # tfds' way of saying the dataset is not prepared locally
        if not _online():
            return None, ("tensorflow-datasets (not prepared in its data dir, and the machine "
                          "is offline so it cannot download)")
        ds = tfds.load(name, split=split, as_supervised=True, download=True)
    images, labels = [], []
    for batch_x, batch_y in tfds.as_numpy(ds.batch(10000)):
        images.append(batch_x.reshape(len(batch_x), -1) if flatten else batch_x)
        labels.append(batch_y)
    return (np.concatenate(images), np.concatenate(labels).astype(np.int32)), "tensorflow-datasets"


def _pipeline(images, labels, *, binarize, batch_size, shuffle, seed, with_labels, drop_remainder,
              epoch=None, shard=None, eight_bit=False, dequantize=False):
    """Batches by gathering shuffled indices, so every map runs once per batch (vectorized).

    All randomness is a function of (seed, epoch): the order of epoch e is a stateless shuffle
    seeded by (seed, e), and batch b of epoch e is binarized with the stateless seed
    (seed + 7919 e, b). `epoch` (a tf.Variable, set by `tfvae.callbacks.DataEpoch`) gives e;
    without it, e counts the passes over the dataset (0, 1, 2, ...). So a training run resumed at
    epoch e sees exactly the data an uninterrupted run sees in epoch e. A shard takes its rows of
    each batch after the batch's binarization noise is drawn, so it holds the same values there.
    """
    # uint8 images in [0, 1] (or their 8-bit values as they are), else values as they are
    scale = 255.0 if images.dtype == np.uint8 and not eight_bit else 1.0
    if dequantize:  # (x + u) / 256 below
        scale = 1.0
    if binarize == "fixed":
        images = binarize_fixed(images, seed) * images.dtype.type(scale)
    n = int(images.shape[0])
    images = tf.constant(images)
    labels = tf.constant(labels)
    if epoch is None:
        passes = tf.Variable(-1, dtype=tf.int64, trainable=False)
        epoch_key = tf.data.Dataset.from_tensors(0).map(lambda _: passes.assign_add(1))
    else:
        epoch_key = tf.data.Dataset.from_tensors(0).map(lambda _: tf.cast(epoch, tf.int64))

    def batches_of_epoch(e):
        idx = tf.range(n, dtype=tf.int64)
        if shuffle:
            idx = tf.random.experimental.stateless_shuffle(idx, seed=tf.stack([tf.constant(seed, tf.int64), e]))
        batches = tf.data.Dataset.from_tensor_slices(idx).batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(lambda b, i: (i, tf.stack([seed + 7919 * e, b])))

    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    ds = epoch_key.flat_map(batches_of_epoch).apply(tf.data.experimental.assert_cardinality(num_batches))

    def gather(idx, noise_seed):
        rows = tf.shape(idx, tf.int64)[0]
        start, stop = (0, rows) if shard is None else (shard[0] * rows // shard[1],
                                                       (shard[0] + 1) * rows // shard[1])
        idx = idx[start:stop]
        x, y = tf.cast(tf.gather(images, idx), tf.float32) / scale, tf.gather(labels, idx)
        if dequantize:  # (x + u) / 256, u the whole batch's noise, then this shard's rows;
            # u < 1 - 2^-16, so that x + u rounds below x + 1 in float32 (its spacing up to 256)
            noise = tf.random.stateless_uniform(tf.concat([[rows], tf.shape(x, tf.int64)[1:]], 0),
                                                seed=noise_seed, maxval=1.0 - 2.0 ** -16)
            x = (x + noise[start:stop]) / 256.0
        if binarize == "dynamic":  # (the whole batch's noise, then this shard's rows of it)
            noise = tf.random.stateless_uniform(tf.concat([[rows], tf.shape(x, tf.int64)[1:]], 0),
                                                seed=noise_seed)
            x = tf.cast(noise[start:stop] < x, tf.float32)
        return x, y

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if not with_labels:
        ds = ds.map(lambda x, y: x)
    return ds.prefetch(tf.data.AUTOTUNE)
