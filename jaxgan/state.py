"""GANState: everything a GAN run is, as one immutable pytree."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class GANState:
    """One frozen pytree: what is checkpointed, donated to and returned by the train step.

    "G" and "D" are the two sides of the game. For a plain GAN each is one network; for a game with
    several networks per side (CycleGAN's two generators, say) ``g_params`` is a dict of them and
    one optimiser updates them together.

    Attributes:
      step: completed train steps (int32 scalar).
      g_params, d_params: trainable parameters (float32).
      g_state, d_state: non-trainable model state, e.g. ``{'batch_stats': ...}`` (may be empty).
      g_opt_state, d_opt_state: optax states.
      g_ema: exponential moving average of ``g_params`` (None when EMA is off).
      extra: game-specific state (a pool of past fakes, a path-length running mean...); None if unused.
      rng: the run's base PRNG key (raw uint32 key data); step keys are folded from it and the step.
      g_ema_state: the generator's model state to sample ``g_ema`` with (BatchNorm statistics, a
        tracked W average...): its floating-point leaves averaged with the same decay as ``g_ema``,
        so the EMA generator is never run with the live generator's statistics. None without EMA.
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    g_state: Any
    d_state: Any
    g_opt_state: Any
    d_opt_state: Any
    g_ema: Any
    extra: Any
    rng: jax.Array
    g_ema_state: Any = None


def init_state(game, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
               rng: jax.Array, example_batch: dict, *, ema: bool = True) -> GANState:
    """Initialises networks and optimisers (pure: wrap in jit or eval_shape as needed).

    Args:
      game: a game (see ``jaxgan.game``) providing ``init(rng, example_batch)``.
      g_tx, d_tx: the generator's and discriminator's optax transformations.
      rng: a raw PRNG key (``jax.random.PRNGKey(seed)``).
      example_batch: a batch with the data's per-example shapes (its size does not matter).
      ema: keep an exponential moving average of the generator's parameters.
    """
    init_rng, run_rng = jax.random.split(rng)
    v = game.init(init_rng, example_batch)
    g_params = v["g_params"]
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params, d_params=v["d_params"],
        g_state=v.get("g_state", {}), d_state=v.get("d_state", {}),
        g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(v["d_params"]),
        g_ema=jax.tree.map(jnp.copy, g_params) if ema else None,
        extra=v.get("extra"),
        rng=run_rng,
        g_ema_state=jax.tree.map(jnp.copy, v.get("g_state", {})) if ema else None,
    )


def ema_beta(step: jax.Array, images_per_step: int, half_life_kimg: float,
             rampup: float | None = None) -> jax.Array:
    """Per-step EMA decay from a half-life in thousands of images (StyleGAN2-ADA's convention).

    beta = 0.5 ** (images_per_step / half_life_images); with ``rampup`` the half-life is capped at
    ``rampup * images_seen`` so the average forgets the random initialisation quickly.
    """
    half_life = jnp.asarray(half_life_kimg * 1000.0, jnp.float32)
    if rampup is not None:
        half_life = jnp.minimum(half_life, step.astype(jnp.float32) * images_per_step * rampup)
    return 0.5 ** (images_per_step / jnp.maximum(half_life, 1e-8))


def ema_update(ema: Any, live: Any, beta: jax.Array) -> Any:
    """``live + beta * (ema - live)`` on floating-point leaves; other leaves (counters) follow ``live``."""
    def one(e, x):
        if jnp.issubdtype(x.dtype, jnp.floating):
            return (x + beta * (e - x)).astype(x.dtype)
        return x
    return jax.tree.map(one, ema, live)


def param_count(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
