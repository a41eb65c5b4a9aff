"""Run in a subprocess with 2 forced CPU devices: after two train steps of each named experiment's
smoke network, every leaf of the state declared replicated is identical on both devices.

Prints one JSON line: {experiment: max difference, or "skipped: reason"}, plus the difference that a
deliberately unsynchronised BatchNorm produces (the check must see it).
"""
import json
import os
import sys

from xla_env import host_devices  # noqa: E402 - beside this file

os.environ["XLA_FLAGS"] = host_devices(2, equivalence=True)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxgan import config as config_lib, game as game_lib, losses, run as run_lib, sharding  # noqa: E402
from jaxgan.nets import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from jaxgan.step import TrainStep  # noqa: E402


def experiment_error(name):
    config, module = config_lib.resolve(name, [], smoke=True)
    try:
        run = run_lib.build(config, module)
    except (FileNotFoundError, ImportError, ModuleNotFoundError) as e:  # data or optional package absent
        return f"skipped: {type(e).__name__}: {e}"
    state = run.step.init_state(config.seed, jax.tree.map(lambda x: x[0], run_lib.example_batch(run)))
    for s in range(2):
        state, _ = run.step(state, sharding.global_batch(run.mesh, run_lib.host_batch(run, s)))
    return sharding.replication_error(state)


def unsynced_batchnorm_error():
    g = DCGANGenerator(28, 1, ngf=8, axis_name=None)  # BatchNorm statistics of the local slice only
    d = DCGANDiscriminator(28, ndf=8)
    mesh = sharding.make_mesh()
    step = TrainStep(game_lib.GAN(g, d, latent_dim=8, loss=losses.non_saturating()),
                     optax.adam(1e-3), optax.adam(1e-3), mesh)
    rs = np.random.RandomState(0)
    batch = lambda: {"x": rs.uniform(-1, 1, (1, 8, 28, 28, 1)).astype(np.float32)}
    state = step.init_state(0, jax.tree.map(lambda x: x[0], batch()))
    for _ in range(2):
        state, _ = step(state, sharding.global_batch(mesh, batch()))
    return sharding.replication_error(state)


if __name__ == "__main__":
    assert jax.device_count() == 2, jax.devices()
    out = {name: experiment_error(name) for name in sys.argv[1:]}
    out["_unsynced_batchnorm"] = unsynced_batchnorm_error()
    print(json.dumps(out))
