"""tfvae.data.load beyond the built-in IDX files: folders of images (written here with PIL,
independently of TensorFlow's decoder), .npy / .npz files, numpy arrays of images or real
values, tensorflow-datasets image datasets (tfds.testing.mock_data), and `tfvae train` on a
folder of images with a convolutional model."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tfvae import data
from tfvae.app import cli

RNG = np.random.default_rng(0)


def _write_folder(root, sizes=None, splits=("train", "test"), classes=("cat", "dog"), per_class=3):
    """PNG images root/split/class/i.png of shape (6, 5, 3) (or `sizes[i]`); returns the arrays
    written, {split: (images, labels)} in the loader's order (sorted paths)."""
    written = {}
    for split in splits:
        images, labels = [], []
        for label, name in enumerate(classes):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(per_class):
                shape = (sizes or {}).get((split, name, i), (6, 5, 3))
                image = RNG.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(image).save(os.path.join(root, split, name, f"{i}.png"))
                images.append(image)
                labels.append(label)
        written[split] = (np.stack(images) if not sizes else images, np.asarray(labels))
    return written


def _all(ds):
    batches = list(ds)
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(2))
    return np.concatenate([np.asarray(b) for b in batches])


def test_a_folder_of_images_gives_its_pixels_labels_and_splits(tmp_path):
    written = _write_folder(tmp_path / "photos")
    x, y = _all(data.load(tmp_path / "photos", "train", flatten=False, with_labels=True,
                          shuffle=False, batch_size=4))
    images, labels = written["train"]
    assert x.shape == (6, 6, 5, 3) and x.dtype == np.float32
    # every image once with its label (subfolders in sorted order: cat 0, dog 1), in some order
    assert _as_set(x, y) == _as_set(images.astype(np.float32) / 255.0, labels)
    test = _all(data.load(tmp_path / "photos", "test", batch_size=4))
    assert test.shape == (6, 6 * 5 * 3)  # flat by default
    assert _as_set(test, np.zeros(6)) == _as_set(written["test"][0].reshape(6, -1) / np.float32(255.0), np.zeros(6))
    binary = _all(data.load(tmp_path / "photos", "test", binarize="fixed", flatten=False))
    assert set(np.unique(binary)) <= {0.0, 1.0} and binary.shape == (6, 6, 5, 3)


def _as_set(x, y):
    return {(int(label), row.tobytes()) for row, label in zip(np.asarray(x, np.float32), y)}


def test_a_folder_is_held_out_across_its_classes_and_numbers_them_the_same_in_every_split(tmp_path):
    """The last images (validation) are of every class, not the alphabetically last one; a
    class missing from test/ does not renumber the others."""
    written = _write_folder(tmp_path / "photos", splits=("train",), classes=("a", "b", "c"), per_class=10)
    _write_folder(tmp_path / "photos", splits=("test",), classes=("a", "c"), per_class=2)
    _, y = _all(data.load(tmp_path / "photos", "validation", validation_size=9, with_labels=True))
    assert len(set(y.tolist())) == 3
    _, y_test = _all(data.load(tmp_path / "photos", "test", with_labels=True))
    assert sorted(set(y_test.tolist())) == [0, 2]  # c is 2 in test/ too
    assert written["train"][0].shape == (30, 6, 5, 3)


def test_a_folder_without_splits_is_train_and_validation_only(tmp_path):
    _write_folder(tmp_path / "flat", splits=("all",))
    folder = tmp_path / "flat" / "all"
    assert _all(data.load(folder, "train", validation_size=2)).shape == (4, 90)
    assert _all(data.load(folder, "validation", validation_size=2)).shape == (2, 90)
    with pytest.raises(ValueError, match=r"has no test/ folder: load it as 'train' with validation_size"):
        data.load(folder, "test")


@pytest.mark.parametrize("damage, error, message", [
    ("size", data.DataError, r"dog/1.png is 4x6 with 3 channels, .*cat/0.png 5x6 with 3.*one size"),
    ("not_an_image", data.DataError, r"broken.png: not a readable image"),
    ("empty", ValueError, r"holds no images \(.png"),
])
def test_a_bad_folder_is_an_error_naming_the_file(tmp_path, damage, error, message):
    root = tmp_path / "photos"
    if damage == "size":
        _write_folder(root, sizes={("train", "dog", 1): (6, 4, 3)}, splits=("train",))
    elif damage == "not_an_image":
        _write_folder(root, splits=("train",))
        (root / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    else:
        (root / "train").mkdir(parents=True)
    with pytest.raises(error, match=message):
        data.load(root, "train")


def test_npz_and_npy_files(tmp_path):
    x_train, x_test = RNG.normal(size=(7, 4)).astype(np.float32), RNG.normal(size=(3, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x_train, x_test=x_test, y_train=np.arange(7))
    x, y = _all(data.load(str(tmp_path / "d.npz"), with_labels=True, shuffle=False, batch_size=3))
    np.testing.assert_array_equal(x, x_train)  # real values as they are, not divided by 255
    np.testing.assert_array_equal(y, np.arange(7))
    np.testing.assert_array_equal(_all(data.load(str(tmp_path / "d.npz"), "test")), x_test)
    np.save(tmp_path / "x.npy", x_train)
    np.testing.assert_array_equal(_all(data.load(str(tmp_path / "x.npy"), shuffle=False)), x_train)
    with pytest.raises(ValueError, match=r"holds one array, no test split"):
        data.load(str(tmp_path / "x.npy"), "test")
    np.savez(tmp_path / "other.npz", features=x_train)
    with pytest.raises(ValueError, match=r"has no x, x_train or images array. Its arrays: \['features'\]"):
        data.load(str(tmp_path / "other.npz"))


def test_arrays_of_images_and_of_real_values():
    images = RNG.integers(0, 256, (5, 4, 4, 1), dtype=np.uint8)
    x = _all(data.load(images, flatten=False, shuffle=False))
    np.testing.assert_array_equal(x, images / np.float32(255.0))
    probabilities = RNG.random((50, 3)).astype(np.float32)
    fixed = _all(data.load(probabilities, binarize="fixed", shuffle=False, seed=4))
    # x ~ Bernoulli(p) drawn once from the seed: u < p with u of numpy's generator
    np.testing.assert_array_equal(fixed, np.random.default_rng(4).random((50, 3), dtype=np.float32)
                                  < probabilities)
    x, y = _all(data.load((probabilities, np.arange(50)), with_labels=True, shuffle=False))
    np.testing.assert_array_equal(y, np.arange(50))


@pytest.mark.parametrize("source, kwargs, message", [
    (RNG.normal(size=(5, 3)).astype(np.float32), {"binarize": "dynamic"},
     r"binarize='dynamic' draws x ~ Bernoulli\(value\): it needs values in \[0, 1\]"),
    (np.array([[0.5, np.nan]], np.float32), {}, r"example 0 has a non-finite value"),
    (np.zeros((4, 3), np.int64), {}, r"expected uint8 images or float values. Received dtype int64"),
    (np.zeros(4, np.float32), {}, r"expected examples \[N, ...\]"),
    (np.ones((4, 3), np.uint8), {}, r"uint8 values are images in 0..255.*all 0 or 1.*astype\('float32'\)"),
    ((np.zeros((4, 3), np.float32), np.arange(3)), {}, r"4 examples but 3 labels"),
    (np.zeros((4, 3), np.float32), {"split": "test"}, r"Arrays have no test split"),
    ("cifar10", {}, r"Unknown dataset.*'tfds:NAME'.*Received: name='cifar10' \(no such file or folder\)"),
])
def test_bad_sources_name_what_is_wrong(source, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(source, **kwargs)


def test_a_tensorflow_datasets_image_dataset_keeps_its_shape():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        x, y = _all(data.load("tfds:cifar10", "test", flatten=False, with_labels=True, batch_size=5))
    assert x.shape == (12, 32, 32, 3) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (12,) and y.max() < 10


@pytest.mark.slow  # (7-21 s of a full run: the slow step of .ci/run keeps it in CI)
def test_tfvae_train_and_evaluate_on_a_folder_of_images_with_a_conv_model(tmp_path, capsys):
    """A folder without a test split: trained with a validation split, which `tfvae evaluate`
    then measures (a run's data without a test split used to be unmeasurable)."""
    _write_folder(tmp_path / "photos", splits=("all",), per_class=8)  # 16 images
    # (the conv shorthand needs H and W divisible by 4: 8x8 images)
    for path in (tmp_path / "photos").rglob("*.png"):
        Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    photos = tmp_path / "photos" / "all"
    out = tmp_path / "run"
    status = cli.main(["train", os.path.join(os.path.dirname(__file__), "..", "zoo", "configs",
                                             "vae_mnist.py"),
                       "--out", str(out), "--verbose", "0",
                       "--set", f"data.name={photos}", "--set", "data.flatten=False",
                       "--set", "data.validation_size=8",
                       "--set", "data.batch_size=8", "--set", "data.test_batch_size=8",
                       "--set", "model.input_shape=None", "--set", "model.architecture=conv",
                       "--set", "model.hidden=(4,)",
                       "--set", "model.latent_dim=2", "--set", "training.epochs=1",
                       "--set", "training.jit_compile=False", "--set", "evaluation.iwae_samples=0"])
    assert status == 0, capsys.readouterr().err
    import keras

    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.input_shape == (8, 8, 3)
    assert model.reconstruct(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 8, 8, 3)
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--num-samples", "2", "--surgery-samples", "0"]) == 0, \
        capsys.readouterr().err
    evaluated = json.loads((out / "evaluation.json").read_text())
    assert evaluated["iwae"]["num_examples"] == 8  # the validation split
