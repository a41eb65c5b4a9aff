"""Shared test fixtures: the real-data location and small helpers."""
import os
import pathlib

import pytest

from jaxgan import experiment as experiment_lib

# The MNIST location exactly as the experiments read it ($JAXGAN_MNIST_DIR, else ../shared/data/mnist).
MNIST_DIR = pathlib.Path(experiment_lib.mnist_dir())


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
