"""Randomness that does not depend on the device count.

Inside the train step each example gets its own key, folded from the step's key and the example's
*global* index in the batch. An example therefore draws the same noise whether it is computed on
device 0 of 1 or device 5 of 8.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgan.sharding import DATA_AXIS


def example_keys(key: jax.Array, local_batch: int, axis_name: str | None = DATA_AXIS) -> jax.Array:
    """Per-example keys for this device's slice of the global batch.

    Args:
      key: the key of this phase of the step (identical on every device).
      local_batch: examples on this device.
      axis_name: the mapped data axis (None outside shard_map: then the slice is the whole batch).

    Returns:
      Keys of shape (local_batch, *key.shape), key i = fold_in(key, global index of example i).
    """
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
    idx = offset + jnp.arange(local_batch)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)


def substream(keys: jax.Array, stream: int) -> jax.Array:
    """Each per-example key folded with ``stream``: independent draws for another purpose."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, stream)


def normal(keys: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """One standard-normal draw of ``shape`` per key: result shape (len(keys), *shape)."""
    return jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(keys)
