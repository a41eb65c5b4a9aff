"""Mixed precision policy: float32 parameters and optimiser state, a chosen compute dtype.

Parameters and optimiser state are always float32 (``param_dtype`` of every layer). Networks compute
in ``compute_dtype`` (bfloat16 by default on GPU and TPU, float32 on CPU), and the engine computes
losses, penalties and reductions in float32.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_NAMES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def default_compute_dtype(backend: str | None = None):
    """bfloat16 on accelerators (GPU, TPU), float32 on CPU."""
    backend = backend or jax.default_backend()
    return jnp.bfloat16 if backend in ("gpu", "cuda", "rocm", "tpu") else jnp.float32


def compute_dtype(name: str | None):
    """Resolves a config value: None or 'auto' -> :func:`default_compute_dtype`; else by name."""
    if name in (None, "auto"):
        return default_compute_dtype()
    if name not in _NAMES:
        raise ValueError(f"unknown compute dtype {name!r}: use one of 'auto', {', '.join(map(repr, _NAMES))}")
    return _NAMES[name]
