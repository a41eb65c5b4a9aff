"""The engine's view of a network: two pure functions, ``init`` and ``apply``.

The engine never touches a flax module directly; it sees a :class:`Net`. :func:`as_net` wraps a
``flax.linen`` module, and any other pair of pure functions with the same contract plugs in (a
hand-written jnp network, another library's transformed function).

Contract (``inputs`` are ``(z_or_x, labels)``; ``labels`` is None for unconditional networks):

* ``init(rng, *inputs) -> variables``: a dict with a ``'params'`` entry and optionally other
  collections (model state such as ``'batch_stats'``).
* ``apply(variables, *inputs, train: bool) -> (output, model_state)``: ``model_state`` is the dict of
  non-``'params'`` collections after the call (updated in training mode, unchanged otherwise).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class Net:
    """A network as a pair of pure functions (see the module docstring for the contract)."""

    init: Callable[..., dict]
    apply: Callable[..., tuple[Any, dict]]


def as_net(network: Net | nn.Module) -> Net:
    """Returns ``network`` as a :class:`Net`, wrapping a flax.linen module if needed."""
    if isinstance(network, Net):
        return network
    if isinstance(network, nn.Module):
        return _from_flax(network)
    raise TypeError(f"expected a flax.linen Module or a jaxgan.net.Net, got {type(network).__name__}: "
                    "wrap other networks as Net(init=..., apply=...)")


def _from_flax(module: nn.Module) -> Net:
    def init(rng, *inputs):
        return dict(module.init(rng, *inputs, train=False))

    def apply(variables, *inputs, train: bool):
        state_cols = [c for c in variables if c != "params"]
        if train and state_cols:
            out, state = module.apply(variables, *inputs, train=True, mutable=state_cols)
            return out, dict(state)
        out = module.apply(variables, *inputs, train=train)
        return out, {c: variables[c] for c in state_cols}

    return Net(init=init, apply=apply)


def split(variables: dict) -> tuple[Any, dict]:
    """Splits flax-style variables into (params, model_state)."""
    if "params" not in variables:
        raise ValueError(f"network variables have no 'params' entry (found {sorted(variables)}): "
                         "init must return a dict like {'params': ..., 'batch_stats': ...}")
    return variables["params"], {k: v for k, v in variables.items() if k != "params"}


def merge(params: Any, model_state: dict) -> dict:
    """Inverse of :func:`split`."""
    return {"params": params, **model_state}
