"""Run in a subprocess with 8 forced CPU devices: CycleGAN and SRGAN steps on 1 and 8 devices.

Trains the tiny game ``sys.argv[1]`` ('cyclegan' or 'srgan') from the same seed and global batches
on 1 and 8 devices and prints, as JSON, each run's flattened final state (parameters, model state
and, for CycleGAN, the pool of past fakes), its last metrics, and how far apart the 8 devices' copies
of the state declared replicated are (``sharding.replication_error``: 0.0 when truly replicated).
"""
import json
import os
import sys

from xla_env import host_devices  # noqa: E402 - beside this file

os.environ["XLA_FLAGS"] = host_devices(8, equivalence=True)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxgan import sharding  # noqa: E402
from jaxgan.games import SRGAN, CycleGAN  # noqa: E402
from jaxgan.nets.cyclegan import tiny_cyclegan  # noqa: E402
from jaxgan.nets.srgan import tiny_srgan  # noqa: E402
from jaxgan.step import TrainStep  # noqa: E402

GLOBAL_BATCH = 8
# CycleGAN is compared after one step (the pool fills and swaps within it): its runs agree to 2e-6
# after one step, but Adam's sign-like early updates amplify those rounding-level differences
# ~250x per step (measured against 1 device: up to 5e-4 apart after two steps and 4e-3 to 5e-2
# after four on 2, 4 and 8 devices), so later steps say nothing about the step's math. SRGAN's
# runs agree after four.
STEPS = {"cyclegan": 1, "srgan": 4}


def make_game(kind):
    if kind == "cyclegan":
        g, d = tiny_cyclegan(1)
        g2, d2 = tiny_cyclegan(1)
        return CycleGAN(g, g2, d, d2, pool_size=6)  # fills within the first step, then swaps
    g, d = tiny_srgan(1, 4)  # cross-replica BatchNorm in G and D
    return SRGAN(g, d, adv_weight=0.1)


def batches(kind):
    rs = np.random.RandomState(1)
    for _ in range(STEPS[kind]):
        x = rs.uniform(-1, 1, (1, GLOBAL_BATCH, 28, 28, 1)).astype(np.float32)
        if kind == "cyclegan":
            yield {"x": x, "x_b": rs.uniform(-1, 1, x.shape).astype(np.float32)}
        else:
            yield {"x": x, "lr": rs.uniform(-1, 1, (1, GLOBAL_BATCH, 7, 7, 1)).astype(np.float32)}


def run(kind, num_devices, initial=None):
    """(initial state as a host copy, results); ``initial`` given: put on this mesh instead of compiling
    ``init_state`` again (tests/test_step.py compares the engine's init_state on 8 devices with 1)."""
    mesh = sharding.make_mesh(jax.devices()[:num_devices])
    # Adam's eps at 1e-4, not 1e-8: an element whose gradient is ~1e-9 (rounding noise, which depends
    # on how the batch is split) would otherwise get a full +-lr step of either sign on step 1 and
    # the runs would drift apart chaotically (measured: 1 to 5 such elements per conv kernel here).
    # CycleGAN (one step) uses plain SGD with lr 1, so the parameters move by exactly the averaged
    # gradient: the comparison is of the sharded step's math, not of how Adam's first step (a
    # sign-like g / (|g| + eps)) magnifies rounding in near-zero gradient elements, which differs
    # by machine (with Adam the test passed on one 2-core machine and failed on another, same code:
    # 200 of 129,525 elements up to 1.2e-3 apart). tests/test_cyclegan.py compares leaf by leaf.
    tx = lambda: optax.sgd(1.0) if kind == "cyclegan" else optax.adam(1e-3, 0.5, eps=1e-4)
    step = TrainStep(make_game(kind), tx(), tx(), mesh, max_traces=1)
    if initial is None:
        initial = jax.device_get(step.init_state(0, jax.tree.map(lambda x: x[0], next(batches(kind)))))
    state = sharding.replicate(mesh, initial)  # the step donates its input: each run gets its own copy
    for b in batches(kind):
        state, metrics = step(state, sharding.global_batch(mesh, b))
    leaves = jax.tree.leaves((state.g_params, state.d_params, state.g_state, state.d_state, state.extra))
    flat = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in leaves])
    return initial, {"state": flat.tolist(), "sizes": [int(np.size(x)) for x in leaves],
            "metrics": {k: float(v) for k, v in metrics.items()},
            "replication_error": sharding.replication_error(state)}


if __name__ == "__main__":
    kind = sys.argv[1]
    initial, one = run(kind, 1)
    print(json.dumps({"1": one, "8": run(kind, 8, initial)[1]}))
