"""Shared fixtures. MNIST comes from $TFVAE_DATA_DIR (CI: ../shared/data); tests that need it
are skipped with a reason when it is absent, unless TFVAE_REQUIRE_DATA=1 (set by .ci/run), in
which case they fail."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfvae import data  # noqa: E402



@pytest.fixture(scope="session")
def mnist_arrays():
    """(train_images, train_labels, test_images, test_labels) of the real MNIST files."""
    try:
        train = data.load_arrays("mnist", "train")
        test = data.load_arrays("mnist", "test")
    except FileNotFoundError as e:
        if os.environ.get("TFVAE_REQUIRE_DATA") == "1":
            raise
        pytest.skip(f"MNIST not available: {e}")
    return train + test


@pytest.fixture(scope="session")
def binary_mnist_subset(mnist_arrays):
    """2,000 training and 1,000 test images, binarized once with seed 0, as float32."""
    train_x, _, test_x, _ = mnist_arrays
    return (data.binarize_fixed(train_x[:2000], 0).astype(np.float32),
            data.binarize_fixed(test_x[:1000], 1).astype(np.float32))
