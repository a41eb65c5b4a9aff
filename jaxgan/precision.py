"""Mixed precision policy, and every other choice that depends on the platform a program is built for.

Parameters and optimiser state are always float32 (``param_dtype`` of every layer). Networks compute
in ``compute_dtype`` (bfloat16 by default on GPU and TPU, float32 on CPU), and the engine computes
losses, penalties and reductions in float32.

Platform choices follow the *target devices* (the devices the step is built for), never the process's
default backend: ``jaxgan compile`` builds a TPU program on a CPU host, and that program must be the
one the TPU would run. :func:`resolve_config` is the one place that turns a config's ``'auto'`` values
into concrete ones for a platform; ``jaxgan.run.build`` calls it with its mesh's devices before the
experiment's ``build`` sees the config.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import jax.numpy as jnp

_NAMES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
ACCELERATORS = ("gpu", "tpu")


def platform_of(devices: Sequence) -> str:
    """``'cpu'``, ``'gpu'`` or ``'tpu'``: the platform of ``devices`` (jax devices, or the devices of a
    TPU topology description, which cannot run anything here but know their platform).

    Raises:
      ValueError: for an empty list or devices of more than one platform.
    """
    platforms = {("gpu" if d.platform in ("cuda", "rocm") else d.platform) for d in devices}
    if len(platforms) != 1:
        raise ValueError(f"expected devices of one platform, got {sorted(platforms) or 'none'}")
    return platforms.pop()


def default_platform() -> str:
    """The platform of the devices ``jax.jit`` uses when none are named (``jax.devices()[0]``).

    Only for networks used outside a run (a notebook calling ``DCGANGenerator(...).apply``); a run
    resolves its choices for its own devices (:func:`resolve_config`).
    """
    import jax

    return platform_of(jax.devices()[:1])


def resolve_choice(name: str, value: str, choices: Sequence[str], default: Callable[[str], str],
                   platform: str | None = None) -> str:
    """A network's platform-dependent option: ``value`` checked against ``choices``, and ``'auto'``
    made concrete as ``default(platform)`` (None: :func:`default_platform`, for networks used outside
    a run; a run resolves its config's ``'auto'`` values for its own devices in :func:`resolve_config`).

    Raises:
      ValueError: naming the option and its choices, for a value not among them.
    """
    if value not in choices:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(map(repr, choices))}")
    return default(platform or default_platform()) if value == "auto" else value


def default_compute_dtype(platform: str | None = None):
    """bfloat16 on accelerators (GPU, TPU), float32 on CPU.

    Args:
      platform: ``'cpu'``, ``'gpu'`` or ``'tpu'`` (``'cuda'``/``'rocm'`` read as ``'gpu'``); None: the
        default devices' (:func:`default_platform`).
    """
    platform = platform or default_platform()
    return jnp.bfloat16 if platform in (*ACCELERATORS, "cuda", "rocm") else jnp.float32


def compute_dtype(name: str | None, platform: str | None = None):
    """Resolves a config value: None or 'auto' -> :func:`default_compute_dtype` of ``platform``; else
    by name."""
    if name in (None, "auto"):
        return default_compute_dtype(platform)
    if name not in _NAMES:
        raise ValueError(f"unknown compute dtype {name!r}: use one of 'auto', {', '.join(map(repr, _NAMES))}")
    return _NAMES[name]


def resolve_config(config, platform: str):
    """A copy of ``config`` with its platform-dependent ``'auto'`` values made concrete for ``platform``.

    * ``compute_dtype``: ``'bfloat16'`` on GPU/TPU, ``'float32'`` on CPU;
    * ``model.upsample`` (DCGAN's stride-2 transposed convolutions): ``'phases'`` on CPU, where the
      sub-pixel form differentiates several times faster, ``'transpose'`` elsewhere, where it would
      do 2.25x the products (:mod:`jaxgan.nets.strided`); StyleGAN2's up-sampling layers (a model
      with ``w_dim``): ``'filter'`` on CPU, ``'transpose'`` elsewhere, where the filter-first form
      would do 4x the products (:func:`jaxgan.nets.stylegan2.default_upsample`);
    * ``model.fir`` (StyleGAN2's [1,3,3,1] resampling filter): ``'conv'`` on TPU, where the depthwise
      convolution keeps the filter's padded and strided arrays out of memory, ``'slices'`` elsewhere
      (:func:`jaxgan.nets.stylegan2.default_fir`). A StyleGAN2 config saved before the field existed
      gets it here too.

    Values other than ``'auto'`` are kept. The experiment's ``build(config, info)`` then receives a
    config that names what runs, so a step built here for a TPU slice is the TPU's step.
    """
    from jaxgan.nets.strided import default_form
    from jaxgan.nets.stylegan2 import default_fir, default_upsample

    out = copy.deepcopy(config)
    if out.get("compute_dtype", "auto") in (None, "auto"):
        out["compute_dtype"] = jnp.dtype(default_compute_dtype(platform)).name
    model = out.get("model")
    if isinstance(model, dict) and model.get("upsample") == "auto":
        model["upsample"] = (default_upsample if "w_dim" in model else default_form)(platform)
    if isinstance(model, dict) and "w_dim" in model and model.get("fir", "auto") == "auto":
        model["fir"] = default_fir(platform)
    return out
