"""Shared test fixtures: the real-data location and small helpers."""
import os
import pathlib

# The suite runs on the CPU. The test extra installs libtpu (jaxgan compile's tests compile for TPU
# topologies, which needs no TPU backend), and with libtpu present every process that initialises
# jax's backends probes for a TPU and prints libtpu's warnings to stderr, which tests of the CLI's
# one-line errors read. Set before jax is imported; subprocesses inherit it. A run on an accelerator
# sets JAX_PLATFORMS itself.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# XLA_FLAGS: LLVM O1 for the suite (xla_env.py), which the processes tests start inherit; this
# process compiles its own programs at O0 except where a test or fixture asks for O1.
from xla_env import optimized, quick_compiles, suite_flags  # noqa: E402

os.environ["XLA_FLAGS"] = suite_flags()
quick_compiles()  # this process's own programs: O0 unless a test or fixture asks for O1 (xla_env.py)

import pytest  # noqa: E402

from jaxgan import compile_cache, experiment as experiment_lib

# The MNIST location exactly as the experiments read it ($JAXGAN_MNIST_DIR, else ../shared/data/mnist).
MNIST_DIR = pathlib.Path(experiment_lib.mnist_dir())


def restore_run(workdir: pathlib.Path):
    """``(run, state)``: the run a ``jaxgan train --workdir`` left, built from its config and its own
    copy of the experiment, and its newest checkpointed state."""
    import json

    from jaxgan import config as config_lib, run as run_lib
    from jaxgan.workdir import load_recorded_experiment

    config = config_lib.Config(json.loads((workdir / "config.json").read_text()))
    run = run_lib.build(config, load_recorded_experiment(workdir, config)[0])
    return run, run_lib.restore_latest(run, workdir / "checkpoints")


def final_state(workdir: pathlib.Path):
    """The newest checkpointed state of a ``jaxgan train --workdir`` run, on the host."""
    import jax

    return jax.device_get(restore_run(workdir)[1])


@pytest.fixture(autouse=True)
def _compile_level(request):
    """Tests marked ``optimized`` compile at the process's O1 (see :func:`xla_env.optimized`)."""
    if request.node.get_closest_marker("optimized"):
        with optimized():
            yield
    else:
        yield


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


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory):
    """``make(input_handling) -> path`` of a FID Inception .npz with random weights, standing in for
    converted ones (which cannot be downloaded here) in tests of names and ranges, never of values.

    Filled from the network's shapes (``jax.eval_shape``, under a second) with He-scaled kernels and
    identity BatchNorms, which keep the features finite and spread; compiling the network's ``init``
    would take about 17 s on a 2-core CPU for the same purpose.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxgan.eval import inception

    made = {}

    def make(input_handling: str = "pytorch_fid") -> pathlib.Path:
        if input_handling not in made:
            shapes = jax.eval_shape(inception.InceptionV3FID(input_handling=input_handling).init,
                                    jax.random.key(0), jnp.zeros((1, 75, 75, 3)))
            rs = np.random.RandomState(0)

            def fill(path, leaf):
                name = jax.tree_util.keystr(path[-1:])
                if "kernel" in name:
                    fan_in = int(np.prod(leaf.shape[:-1]))
                    return rs.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(np.float32)
                value = 1.0 if ("scale" in name or "var" in name) else 0.0  # bias, mean: 0
                return np.full(leaf.shape, value, np.float32)

            variables = jax.tree_util.tree_map_with_path(fill, shapes)
            path = tmp_path_factory.mktemp("inception") / f"random_{input_handling}.npz"
            inception.save_npz(path, variables, input_handling=input_handling)
            made[input_handling] = path
        return made[input_handling]

    return make


@pytest.fixture
def restore_compile_cache():
    """For tests that move or turn off the persistent compilation cache: the settings the process had
    before the test come back afterwards (and the folder jax opened during the test is forgotten)."""
    with compile_cache.restoring():
        yield
