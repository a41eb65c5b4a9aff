"""Everything about devices: the mesh, batch placement and the data axis.

jaxgan is data-parallel over one mesh axis, ``'data'``, spanning every device of every process.
Per-device code runs under ``jax.shard_map`` (see ``jaxgan.step``); this is the only module that
builds meshes and shardings. On several hosts, call ``jax.distributed.initialize()`` first: each
process then feeds its own rows of the global batch and :func:`global_batch` assembles them.

Train batches have a leading *critic* axis: every leaf is ``(n_critic, global_batch, ...)``, one
sub-batch of real data per discriminator update, sharded over devices along axis 1.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``'data'`` over ``devices`` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds a full copy (parameters, optimiser state)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, critic_axis: bool = True) -> NamedSharding:
    """Examples split over ``'data'``; with ``critic_axis`` the examples are axis 1."""
    return NamedSharding(mesh, P(None, DATA_AXIS) if critic_axis else P(DATA_AXIS))


def check_divisible(global_batch: int, num_devices: int) -> None:
    """Raises a ValueError that names both numbers when the batch cannot be split evenly."""
    if global_batch % num_devices:
        lo = max(num_devices, global_batch // num_devices * num_devices)
        raise ValueError(f"global batch {global_batch} is not divisible by {num_devices} devices: use a "
                         f"multiple of {num_devices} (e.g. {lo} or {lo + num_devices})")


def global_batch(mesh: Mesh, local: Any, critic_axis: bool = True) -> Any:
    """Assembles this process's rows (numpy) into global, sharded ``jax.Array``s.

    Each process passes its own contiguous slice of the global batch, in process order; with one
    process that is the whole batch, placed in one transfer for all leaves.
    """
    return _place(mesh, local, batch_sharding(mesh, critic_axis), 1 if critic_axis else 0)


def global_batches(mesh: Mesh, local: Any) -> list:
    """The train batches of several steps from one transfer: ``local``'s leaves are shaped
    (steps, n_critic, local_batch, ...) (:func:`jaxgan.run.host_batches`); they cross to the devices
    at once and are split there into one batch per step, each equal to :func:`global_batch` of its
    rows and sharded as it would be. One transfer (and one split) for many small steps instead of one
    each: the host's fixed cost per transfer, tens of microseconds, is paid once.
    """
    steps = int(jax.tree.leaves(local)[0].shape[0])
    placed = _place(mesh, local, NamedSharding(mesh, P(None, None, DATA_AXIS)), 2)
    return list(_splitter(mesh, steps)(placed))


@functools.lru_cache(maxsize=8)
def _splitter(mesh: Mesh, steps: int):
    """A jitted split of a chunk of ``steps`` train batches into one per step (no collective: every
    device slices its own rows)."""
    def split(chunk):
        return tuple(jax.tree.map(lambda a: a[i], chunk) for i in range(steps))

    return jax.jit(split, out_shardings=batch_sharding(mesh))


def _place(mesh: Mesh, local: Any, sharding: NamedSharding, axis: int) -> Any:
    """``local`` (this process's rows along ``axis``) as global arrays with ``sharding``."""
    local = jax.tree.map(np.asarray, local)
    local_devices = len(mesh.local_devices)
    for x in jax.tree.leaves(local):
        if x.shape[axis] % local_devices:
            check_divisible(x.shape[axis] * jax.process_count(), mesh.size)
            raise ValueError(f"this process's batch of {x.shape[axis]} rows does not split over its "
                             f"{local_devices} local devices: use a multiple of {local_devices}")
    if jax.process_count() == 1:  # every row is here: one call places every leaf
        return jax.device_put(local, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Places a pytree of host or device arrays fully replicated on the mesh."""
    return jax.device_put(tree, replicated(mesh))


def replication_error(tree: Any) -> float:
    """The largest absolute difference between any device's copy of a replicated leaf and device 0's.

    The step runs under ``shard_map(check_vma=False)`` (pmap's model: see docs/design.md), so JAX does
    not prove that the state it declares replicated is the same on every device: a network whose
    BatchNorm does not average over the ``'data'`` axis would let the copies drift apart silently.
    This reads each leaf's addressable shards and compares them; 0.0 means truly replicated.
    """
    worst = 0.0
    for leaf in jax.tree.leaves(tree):
        if not isinstance(leaf, jax.Array) or len(leaf.addressable_shards) < 2:
            continue
        if not leaf.sharding.is_fully_replicated:
            continue
        copies = [np.asarray(s.data) for s in leaf.addressable_shards]
        ref = copies[0].astype(np.float64) if copies[0].dtype.kind == "f" else copies[0]
        for c in copies[1:]:
            if c.dtype.kind == "f":
                diff = float(np.max(np.abs(c.astype(np.float64) - ref))) if c.size else 0.0
            else:
                diff = 0.0 if np.array_equal(c, ref) else float("inf")
            worst = max(worst, diff)
    return worst


def assert_replicated(tree: Any, what: str = "state") -> None:
    """Raises an AssertionError naming the difference when replicated copies differ between devices."""
    err = replication_error(tree)
    if err != 0.0:
        raise AssertionError(f"the {what} declared replicated differs between devices by up to {err:g}: "
                             "some per-device computation (e.g. BatchNorm statistics without "
                             "axis_name='data') is not averaged over the data axis")
