"""Run in a subprocess with 8 forced CPU devices (XLA_FLAGS must be set before jax is imported).

Trains the same game from the same seed and global batches on 1, 2 and 8 devices and prints, as
JSON, each run's flattened final parameters and metrics and how far the state declared replicated
differs between devices (``sharding.replication_error``), plus the error raised for a global batch
that the device count does not divide. For the DCGAN also the replication error of a deliberately
unsynchronised BatchNorm (the check must see it).
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

from jaxgan import game as game_lib, losses, penalties, sharding  # noqa: E402
from jaxgan.nets import DCGANDiscriminator, DCGANGenerator, tiny_dcgan, tiny_mlp  # noqa: E402
from jaxgan.step import TrainStep  # noqa: E402

GLOBAL_BATCH, STEPS = 16, 10


def make_game(kind):
    if kind == "dcgan":  # BatchNorm in G and D: cross-replica statistics matter
        g, d = tiny_dcgan(28, 1)
        return game_lib.GAN(g, d, latent_dim=8, loss=losses.non_saturating())
    g, d = tiny_mlp((2,), num_classes=3)  # conditional, WGAN-GP with 2 critic updates
    return game_lib.GAN(g, d, latent_dim=4, loss=losses.wasserstein(), num_classes=3,
                        penalties=(penalties.wgan_gp_penalty(10.0), penalties.r1_penalty(1.0, every=2)))


def batches(kind, n_critic):
    rs = np.random.RandomState(1)
    for _ in range(STEPS):
        if kind == "dcgan":
            yield {"x": rs.uniform(-1, 1, (n_critic, GLOBAL_BATCH, 28, 28, 1)).astype(np.float32)}
        else:
            yield {"x": rs.randn(n_critic, GLOBAL_BATCH, 2).astype(np.float32),
                   "label": rs.randint(0, 3, (n_critic, GLOBAL_BATCH)).astype(np.int32)}


def run(kind, num_devices):
    n_critic = 1 if kind == "dcgan" else 2
    mesh = sharding.make_mesh(jax.devices()[:num_devices])
    step = TrainStep(make_game(kind), optax.adam(2e-3, 0.5), optax.adam(2e-3, 0.5), mesh,
                     n_critic=n_critic, ema_half_life_kimg=0.05, max_traces=1)
    first = next(batches(kind, n_critic))
    state = step.init_state(0, jax.tree.map(lambda x: x[0], first))
    # the steps' batches in one transfer, split on the devices: each the step-by-step placement's
    placed = sharding.global_batches(mesh, jax.tree.map(lambda *x: np.stack(x), *batches(kind, n_critic)))
    for b, chunked in zip(batches(kind, n_critic), placed, strict=True):
        one = sharding.global_batch(mesh, b)
        for a, c in zip(jax.tree.leaves(one), jax.tree.leaves(chunked), strict=True):
            assert c.sharding == a.sharding, (c.sharding, a.sharding)
            np.testing.assert_array_equal(np.asarray(c), np.asarray(a))
    for b in placed:
        state, metrics = step(state, b)
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(
        (state.g_params, state.d_params, state.g_state, state.d_state, state.g_ema))])
    return {"params": flat.tolist(), "metrics": {k: float(v) for k, v in metrics.items()},
            "replication_error": sharding.replication_error(state)}


def unsynced_batchnorm_error():
    """Two steps on 8 devices of a DCGAN whose G's BatchNorm uses only its device's slice."""
    g = DCGANGenerator(28, 1, ngf=8, axis_name=None)
    mesh = sharding.make_mesh()
    step = TrainStep(game_lib.GAN(g, DCGANDiscriminator(28, ndf=8), latent_dim=8, loss=losses.non_saturating()),
                     optax.adam(1e-3), optax.adam(1e-3), mesh)
    rs = np.random.RandomState(0)
    batch = lambda: {"x": rs.uniform(-1, 1, (1, GLOBAL_BATCH, 28, 28, 1)).astype(np.float32)}
    state = step.init_state(0, jax.tree.map(lambda x: x[0], batch()))
    for _ in range(2):
        state, _ = step(state, sharding.global_batch(mesh, batch()))
    return sharding.replication_error(state)


def divisibility_error():
    mesh = sharding.make_mesh()
    step = TrainStep(make_game("dcgan"), optax.adam(1e-3), optax.adam(1e-3), mesh)
    try:
        step.check_batch({"x": np.zeros((1, 12, 28, 28, 1), np.float32)})
    except ValueError as e:
        return str(e)
    return None


if __name__ == "__main__":
    kind = sys.argv[1]
    out = {str(n): run(kind, n) for n in (1, 2, 8)}
    out["error"] = divisibility_error()
    if kind == "dcgan":
        out["unsynced_batchnorm"] = unsynced_batchnorm_error()
    print(json.dumps(out))
