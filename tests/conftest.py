"""Shared test fixtures: the real-data location and small helpers."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The one variable for the MNIST location, as the experiments read it (experiments/dcgan_mnist.py).
MNIST_DIR = pathlib.Path(os.environ.get("JAXGAN_MNIST_DIR") or ROOT.parent / "shared" / "data" / "mnist")


@pytest.fixture
def mnist_dir():
    """Directory with the real MNIST test split (IDX, gzipped); skips where it is absent."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {MNIST_DIR} (set JAXGAN_MNIST_DIR to a folder with "
                    "t10k-images-idx3-ubyte.gz, or put ../shared/data/mnist beside the repo)")
    return MNIST_DIR


@pytest.fixture(autouse=True, scope="session")
def _evaluation_cache(tmp_path_factory):
    """Evaluation networks (the digit classifier) are cached per test session, not in ~/.cache."""
    if "JAXGAN_CACHE" not in os.environ:
        os.environ["JAXGAN_CACHE"] = str(tmp_path_factory.mktemp("jaxgan_cache"))
    yield
