"""The prefetching input pipeline yields exactly the synchronous pipeline's batches, in order."""
import random
import time

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib, run as run_lib, sharding
from jaxgan.pipeline import Prefetcher


@pytest.mark.parametrize("workers", [1, 3])
def test_prefetched_batches_equal_the_synchronous_ones(workers):
    config, module = config_lib.resolve("ring8", ["train.n_critic=2"], smoke=True)
    run = run_lib.build(config, module)
    place = lambda s: sharding.global_batch(run.mesh, run_lib.host_batch(run, s))

    def slow_place(s):  # out-of-order completion must not reorder the stream
        time.sleep(random.Random(s).uniform(0, 0.02))
        return place(s)

    with Prefetcher(slow_place, 3, 11, depth=3, workers=workers) as it:
        got = list(it)
    assert [s for s, _ in got] == list(range(3, 11))
    for s, batch in got:
        expected = jax.device_get(place(s))
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(batch), expected)
        assert batch["x"].sharding == sharding.batch_sharding(run.mesh)


def test_a_failing_batch_raises_in_the_consumer_and_stops():
    def make(s):
        if s == 2:
            raise FileNotFoundError("shard 2 is missing")
        return s

    it = Prefetcher(make, 0, 10, depth=2)
    assert next(it) == (0, 0) and next(it) == (1, 1)
    with pytest.raises(FileNotFoundError, match="shard 2"):
        next(it)
    it.close()


def test_nothing_is_built_past_stop_and_bad_arguments_are_refused():
    built = []
    with Prefetcher(lambda s: built.append(s) or s, 5, 7, depth=4) as it:
        assert [s for s, _ in it] == [5, 6]
    assert sorted(built) == [5, 6]
    with pytest.raises(ValueError, match="depth >= 1"):
        Prefetcher(lambda s: s, 0, 1, depth=0)
