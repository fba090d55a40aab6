"""Shared fixtures. MNIST comes from $TFVAE_DATA_DIR (CI: ../shared/data); tests that need it
are skipped with a reason when it is absent, unless TFVAE_REQUIRE_DATA=1 (set by .ci/run), in
which case they fail.

Every random source a test uses is pinned, so a test gives the same verdict in every process and
under any ordering (pytest-xdist included): before each fixture is set up, and again before each
test body runs, Python's, NumPy's, TensorFlow's and Keras' global generators are re-seeded
(`keras.utils.set_random_seed`) from a hash of the fixture's name and parameter, or of the test's
node id. That covers weight initialization (Keras initializers draw from the global generator)
and `SeedGenerator(None)`. A module-level `RNG = np.random.default_rng(...)` is re-created from
the same seed before each test, so its draws do not depend on which tests ran before.

A test module's expensive fixtures (a trained model, a set of exports) are session-scoped: under
`--dist loadgroup` a worker runs other modules' tests between a module's tests, and a
module-scoped fixture would be torn down and built again each time (it was, up to 35 s each).
"""
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras  # noqa: E402

from tfvae import data  # noqa: E402


def stable_seed(text):
    """A seed in [0, 2^31 - 1) that depends only on `text` (not on the process or PYTHONHASHSEED)."""
    return zlib.crc32(text.encode()) % (2 ** 31 - 1)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Fixtures of every scope (a module's trained model, say) start from pinned generators."""
    param = getattr(request, "param", None)
    seed = stable_seed(f"{fixturedef.argname}[{param!r}]")
    keras.utils.set_random_seed(seed)
    # (the module that defines the fixture: a test module's RNG, whatever the fixture's scope)
    _reset_module_rng(sys.modules.get(getattr(fixturedef.func, "__module__", None) or ""), seed)
    yield


@pytest.fixture(autouse=True)
def pinned_seed(request):
    """The test's own seed (from its node id): set before the test body runs (see below) and
    available to tests that want it."""
    return stable_seed(request.node.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Re-seeds every global generator just before the test body, after all its fixtures."""
    seed = stable_seed(item.nodeid)
    keras.utils.set_random_seed(seed)
    _reset_module_rng(getattr(item, "module", None), seed)
    yield


def _reset_module_rng(module, seed):
    if isinstance(getattr(module, "RNG", None), np.random.Generator):
        module.RNG = np.random.default_rng(seed)


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
