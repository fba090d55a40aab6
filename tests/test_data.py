"""tfvae.data on the real MNIST/Fashion-MNIST files, on crafted bad files, and through TFDS."""
import gzip
import os

import numpy as np
import pytest

from tfvae import data


def write_idx(path, array, magic=None, compress=True):
    """Writes an IDX file by the format's definition (independent of tfvae's reader)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 + array.ndim) if magic is None else magic
    payload = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload += array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_split(folder, split, images, labels, **kwargs):
    os.makedirs(folder, exist_ok=True)
    stem = "train" if split == "train" else "t10k"
    write_idx(os.path.join(folder, f"{stem}-images-idx3-ubyte.gz"), images, **kwargs)
    write_idx(os.path.join(folder, f"{stem}-labels-idx1-ubyte.gz"), labels)


def first_batch(ds):
    return np.asarray(next(iter(ds)))


# -- the real files ------------------------------------------------------------------------------

def test_mnist_arrays_are_the_real_dataset(mnist_arrays):
    train_x, train_y, test_x, test_y = mnist_arrays
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    # Facts about MNIST itself: the first training labels and the class counts.
    np.testing.assert_array_equal(train_y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(test_y[:5], [7, 2, 1, 0, 4])
    assert np.bincount(train_y).tolist()[:2] == [5923, 6742]
    assert abs(train_x.mean() / 255.0 - 0.1307) < 1e-3  # the well-known MNIST mean intensity


def test_batches_are_flat_float_in_unit_range(mnist_arrays):
    batch = first_batch(data.load("mnist", "test", batch_size=64))
    assert batch.shape == (64, 784) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and 0 < batch.mean() < 1
    np.testing.assert_allclose(batch, mnist_arrays[2][:64] / 255.0, atol=1e-7)  # test is unshuffled


def test_labels_and_validation_split(mnist_arrays):
    train_x, train_y = mnist_arrays[:2]
    train = data.load("mnist", "train", batch_size=5000, validation_size=10000, shuffle=False)
    valid = data.load("mnist", "validation", batch_size=5000, validation_size=10000, with_labels=True)
    assert sum(b.shape[0] for b in train) == 50000
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in valid])
    np.testing.assert_allclose(np.concatenate(xs), train_x[-10000:] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate(ys), train_y[-10000:])
    with pytest.raises(ValueError, match="validation_size"):
        data.load("mnist", "validation")


def test_dynamic_binarization_resamples_each_epoch_and_is_seeded(mnist_arrays):
    ds = data.load("mnist", "test", binarize="dynamic", batch_size=10000, seed=1)
    epoch1, epoch2 = first_batch(ds), first_batch(ds)
    assert set(np.unique(epoch1)) == {0.0, 1.0}
    assert (epoch1 != epoch2).mean() > 0.01  # redrawn
    # Bernoulli(p) draws: the mean matches the grey levels' mean (4 sigma with 7.8M pixels).
    grey = mnist_arrays[2] / 255.0
    assert abs(epoch1.mean() - grey.mean()) < 4 * np.sqrt((grey * (1 - grey)).sum()) / grey.size
    # Where the pixel is 0 or 1, the draw is exact.
    np.testing.assert_array_equal(epoch1[grey == 0], 0)
    np.testing.assert_array_equal(epoch1[grey == 1], 1)
    again = data.load("mnist", "test", binarize="dynamic", batch_size=10000, seed=1)
    np.testing.assert_array_equal(first_batch(again), epoch1)  # same seed, same first epoch
    other = data.load("mnist", "test", binarize="dynamic", batch_size=10000, seed=2)
    assert (first_batch(other) != epoch1).mean() > 0.01


def test_fixed_binarization_is_identical_across_epochs_and_runs(mnist_arrays):
    ds = data.load("mnist", "test", binarize="fixed", batch_size=10000)
    a, b = first_batch(ds), first_batch(ds)
    c = first_batch(data.load("mnist", "test", binarize="fixed", batch_size=10000))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 1.0}
    assert abs(a.mean() - mnist_arrays[2].mean() / 255.0) < 2e-3


def test_train_split_is_reshuffled_each_epoch():
    ds = data.load("mnist", "train", batch_size=100, with_labels=True, seed=0)
    (_, y1), (_, y2) = next(iter(ds)), next(iter(ds))
    assert not np.array_equal(y1, y2)
    total = np.concatenate([np.asarray(y) for _, y in ds])
    assert len(total) == 60000


def test_fashion_mnist_from_debian_package():
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        if os.environ.get("TFVAE_REQUIRE_DATA") == "1":
            pytest.fail("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
        pytest.skip("dataset-fashion-mnist is not installed")
    images, labels = data.load_arrays("fashion_mnist", "test")
    assert images.shape == (10000, 784)
    assert np.bincount(labels).tolist() == [1000] * 10  # Fashion-MNIST's balanced test set


# -- bad input -------------------------------------------------------------------------------------

@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No data anywhere: empty TFVAE_DATA_DIR, no Debian folder, TFDS not prepared, offline."""
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data, "_DEBIAN_DIRS", {"mnist": str(tmp_path / "deb"),
                                                "fashion_mnist": str(tmp_path / "deb")})
    monkeypatch.setattr(data, "_online", lambda *a, **k: False)  # never wait for a download
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def test_missing_data_names_every_place_looked(nowhere):
    with pytest.raises(FileNotFoundError) as info:
        data.load("mnist", "train")
    message = str(info.value)
    for place in (os.path.join("env", "mnist"), "deb", "tensorflow-datasets", "To get it"):
        assert place in message


@pytest.mark.parametrize("make_folder", [True, False])
def test_an_explicit_data_dir_without_the_data_is_an_error_naming_it(tmp_path, monkeypatch,
                                                                       make_folder):
    """data_dir is the caller's word: the real MNIST in $TFVAE_DATA_DIR is not used instead."""
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_split(tmp_path / "env" / "mnist", "train", images, [1, 2, 3])
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "env"))
    assert len(data.load_arrays("mnist", "train")[0]) == 3  # the fall-back is really there
    explicit = tmp_path / "mine"
    if make_folder:
        explicit.mkdir()
    with pytest.raises(FileNotFoundError, match="data_dir") as info:
        data.load("mnist", "train", data_dir=explicit)
    assert str(explicit) in str(info.value) and "data_dir=None" in str(info.value)


def test_tfds_is_the_last_resort(nowhere):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        images, labels = data.load_arrays("fashion_mnist", "train")
    assert images.shape == (20, 784) and images.dtype == np.uint8
    assert labels.shape == (20,) and labels.max() < 10


def test_explicit_folder_comes_first(tmp_path, monkeypatch):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_split(tmp_path / "mine", "test", images, [1, 2, 3])
    x, y = data.load_arrays("mnist", "test", data_dir=tmp_path / "mine")
    np.testing.assert_array_equal(x, images.reshape(3, 784))
    np.testing.assert_array_equal(y, [1, 2, 3])


@pytest.mark.parametrize("damage, message", [
    ("bad_magic", "bad magic number"),
    ("truncated_payload", "truncated"),
    ("corrupt_gzip", "corrupt or truncated"),
    ("truncated_gzip", "corrupt or truncated"),
    ("wrong_shape", "expected images of shape"),
    ("label_count", "labels to match"),
])
def test_damaged_files_give_an_error_naming_the_file(tmp_path, damage, message):
    folder = tmp_path / "bad"
    images, labels = np.zeros((4, 28, 28)), np.zeros(4)
    if damage == "wrong_shape":
        images = np.zeros((4, 27, 27))
    if damage == "label_count":
        labels = np.zeros(3)
    write_split(folder, "test", images, labels, magic=0x0999 if damage == "bad_magic" else None)
    target = folder / "t10k-images-idx3-ubyte.gz"
    raw = target.read_bytes()
    if damage == "truncated_payload":
        target.write_bytes(gzip.compress(gzip.decompress(raw)[:-100]))
    elif damage == "corrupt_gzip":
        target.write_bytes(raw[:10] + bytes(b ^ 0xFF for b in raw[10:]))
    elif damage == "truncated_gzip":
        target.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match=message) as info:
        data.load_arrays("mnist", "test", data_dir=folder)
    assert "t10k-" in str(info.value)


@pytest.mark.parametrize("kwargs, key", [
    ({"name": "cifar"}, "name"),
    ({"split": "dev"}, "split"),
    ({"binarize": "yes"}, "binarize"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments_name_the_argument(kwargs, key):
    args = {"name": "mnist", "split": "train", **kwargs}
    with pytest.raises(ValueError, match=key):
        data.load(args.pop("name"), args.pop("split"), **args)
