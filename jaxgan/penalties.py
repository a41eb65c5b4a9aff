"""Gradient penalties on the discriminator, and their lazy (every-k-steps) application.

The penalties are pure functions of a discriminator ``d_apply(params, x) -> logits (B,)``, its
parameters and inputs. They differentiate ``sum(d_apply(params, x))`` with respect to ``x``: that
is each example's own input gradient only when the discriminator treats examples independently
(no batch statistics in training mode, which is why WGAN-GP critics use no BatchNorm).

:class:`Penalty` binds one of them to a weight and an interval for a game. Lazy regularisation
(Karras et al. 2020, StyleGAN2, appendix B) evaluates a penalty only every ``every`` steps, scaled
by ``every``, and corrects Adam's hyper-parameters with :func:`lazy_adam_hyperparams`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
DApply = Callable[[Any, Array], Array]


def _input_grad_sq_norms(d_apply: DApply, params: Any, x: Array) -> Array:
    """Per-example squared L2 norm of the gradient of D's output with respect to its input."""
    grads = jax.grad(lambda x: jnp.sum(d_apply(params, x).astype(jnp.float32)))(x)
    grads = grads.astype(jnp.float32).reshape(grads.shape[0], -1)
    return jnp.sum(grads * grads, axis=1)


def r1(d_apply: DApply, params: Any, real: Array) -> Array:
    """R1 penalty (Mescheder et al. 2018): the expected squared input-gradient norm on real data.

        R1 = E_x~data ||grad_x D(x)||^2

    Multiply by gamma/2 in the loss (:func:`r1_penalty` does). For a discriminator whose output does
    not depend on its input (a constant), R1 is exactly 0.

    Args:
      d_apply: ``(params, x) -> logits`` of shape (B,).
      params: the discriminator's parameters.
      real: a batch of real examples.

    Returns:
      A float32 scalar.
    """
    return jnp.mean(_input_grad_sq_norms(d_apply, params, real))


def r2(d_apply: DApply, params: Any, fake: Array) -> Array:
    """R2 penalty (Mescheder et al. 2018): :func:`r1`'s expectation taken over generated data."""
    return jnp.mean(_input_grad_sq_norms(d_apply, params, fake))


def gradient_penalty(d_apply: DApply, params: Any, real: Array, fake: Array, eps: Array,
                     target: float = 1.0) -> Array:
    """WGAN-GP's two-sided gradient penalty (Gulrajani et al. 2017).

        GP = E[(||grad D(x_hat)||_2 - target)^2],   x_hat = eps * x_real + (1 - eps) * x_fake

    For a linear critic D(x) = <w, x> + b the gradient is w everywhere, so GP = (||w|| - target)^2.

    Args:
      d_apply: ``(params, x) -> critic values`` of shape (B,).
      params: the critic's parameters.
      real: real examples, shape (B, ...).
      fake: generated examples, same shape.
      eps: interpolation weights in [0, 1], shape (B,).
      target: the gradient norm the penalty pulls towards (1 in the paper).

    Returns:
      A float32 scalar.
    """
    eps = eps.reshape((-1,) + (1,) * (real.ndim - 1)).astype(real.dtype)
    x_hat = eps * real + (1.0 - eps) * jax.lax.stop_gradient(fake).astype(real.dtype)
    norms = jnp.sqrt(_input_grad_sq_norms(d_apply, params, x_hat) + 1e-12)
    return jnp.mean((norms - target) ** 2)


# A bound penalty sees (d_apply, params, real, fake, keys) where keys are per-example PRNG keys.
PenaltyFn = Callable[[DApply, Any, Array, Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Penalty:
    """A penalty term of the discriminator's loss: ``weight * fn(...)``, evaluated every ``every`` steps.

    Attributes:
      name: metric name suffix (logged as ``penalty/<name>``).
      fn: ``(d_apply, params, real, fake, keys) -> scalar``; ``keys`` are per-example PRNG keys.
      weight: the multiplier in the loss.
      every: lazy interval k. When k > 1 the term is computed only on steps divisible by k and is
        multiplied by k there; on other steps it costs nothing and is logged as 0.
    """

    name: str
    fn: PenaltyFn
    weight: float
    every: int = 1

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"penalty {self.name!r}: every={self.every} must be >= 1 (1 = every step)")


def r1_penalty(gamma: float = 10.0, every: int = 1) -> Penalty:
    """R1 with weight gamma/2, as in Mescheder et al. 2018 and StyleGAN2 (lazy there with every=16)."""
    return Penalty("r1", lambda d, p, real, fake, keys: r1(d, p, real), gamma / 2.0, every)


def r2_penalty(gamma: float = 10.0, every: int = 1) -> Penalty:
    """R2 with weight gamma/2."""
    return Penalty("r2", lambda d, p, real, fake, keys: r2(d, p, fake), gamma / 2.0, every)


def wgan_gp_penalty(weight: float = 10.0, every: int = 1, target: float = 1.0) -> Penalty:
    """WGAN-GP's penalty with lambda = ``weight`` (10 in the paper); eps ~ U[0,1] per example."""

    def fn(d, p, real, fake, keys):
        eps = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0x6770)))(keys)
        return gradient_penalty(d, p, real, fake, eps, target)

    return Penalty("gp", fn, weight, every)


def lazy_adam_hyperparams(learning_rate: float, b1: float, b2: float, every: int
                          ) -> tuple[float, float, float]:
    """StyleGAN2's correction of Adam for a loss whose penalty runs every ``every`` steps.

    With c = every / (every + 1): ``lr * c``, ``b1 ** c``, ``b2 ** c`` (Karras et al. 2020, app. B).

    Example:
      >>> lazy_adam_hyperparams(0.0025, 0.0, 0.99, 16)
      (0.00235..., 0.0, 0.9906...)
    """
    if every < 1:
        raise ValueError(f"every={every} must be >= 1")
    c = every / (every + 1)
    return learning_rate * c, b1 ** c, b2 ** c
