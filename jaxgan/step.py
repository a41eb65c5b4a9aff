"""The train step: ``n_critic`` discriminator updates, then one generator update, compiled once.

The step is ``jax.jit`` over ``jax.shard_map`` on the ``'data'`` mesh axis: per-device code in
pmap's programming model. Parameters and optimiser state are replicated; each device computes
gradients on its slice of the batch and they are averaged with ``lax.pmean``; BatchNorm statistics
are cross-replica (the networks' ``axis_name``); losses see the global batch's logits. Randomness is
folded from (run key, step, phase, global example index), so the same seed and global batch give the
same parameters on 1, 2 or 8 devices. The state argument is donated: its buffers are reused.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import rng as rng_lib
from jaxgan.sharding import DATA_AXIS, check_divisible, replicated
from jaxgan.state import GANState, ema_beta, init_state


def _update(game_loss, tx, params, opt_state, state, batch, keys):
    """One optimiser update of one side; returns (params, opt_state, StepOut, grads, updates)."""
    (_, out), grads = jax.value_and_grad(game_loss, has_aux=True)(params, state, batch, keys)
    grads = jax.lax.pmean(grads, DATA_AXIS)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, out, grads, updates


_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm


def _norms(side: str, grads, updates, params) -> dict:
    return {f"grad_norm/{side}": _norm(grads), f"update_norm/{side}": _norm(updates),
            f"param_norm/{side}": _norm(params)}


class TrainStep:
    """A compiled GAN train step: ``state, metrics = step(state, batch)``.

    Args:
      game: the game (e.g. :class:`jaxgan.game.GAN`).
      g_tx, d_tx: optax transformations of the generator and discriminator (two learning rates:
        TTUR, Heusel et al. 2017, is just two different ``optax.adam``s).
      mesh: a mesh with a ``'data'`` axis (:func:`jaxgan.sharding.make_mesh`).
      n_critic: discriminator updates per generator update (5 for WGAN-GP).
      ema_half_life_kimg: generator EMA half-life in thousands of images (None: no EMA update).
      ema_rampup: StyleGAN2-ADA's EMA ramp-up (e.g. 0.05), or None.
      max_traces: if set, tracing the step more often raises an AssertionError (a silent recompile
        is a bug). Counted per TrainStep; ``chex.assert_max_traces`` would count across instances.

    Batches are dicts of arrays shaped ``(n_critic, global_batch, ...)``, sharded with
    :func:`jaxgan.sharding.batch_sharding` (see :func:`jaxgan.sharding.global_batch`). Metrics are
    replicated float32 scalars: the game's (``loss/d``, ``logits/real``, ...), plus gradient,
    update and parameter norms of both sides, averaged over the critic updates for D.
    """

    def __init__(self, game, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 mesh: Mesh, *, n_critic: int = 1, ema_half_life_kimg: float | None = None,
                 ema_rampup: float | None = None, max_traces: int | None = None):
        if n_critic < 1:
            raise ValueError(f"n_critic={n_critic} must be >= 1")
        self.game, self.g_tx, self.d_tx, self.mesh = game, g_tx, d_tx, mesh
        self.n_critic = n_critic
        self.ema_half_life_kimg, self.ema_rampup = ema_half_life_kimg, ema_rampup
        self.trace_count, self.max_traces = 0, max_traces
        mapped = jax.shard_map(self._per_device, mesh=mesh, in_specs=(P(), P(None, DATA_AXIS)),
                               out_specs=(P(), P()), check_vma=False)
        self._jitted = jax.jit(mapped, donate_argnums=0)

    # -- per-device code -------------------------------------------------------------------------
    def _per_device(self, state: GANState, batch: dict) -> tuple[GANState, dict]:
        self.trace_count += 1
        if self.max_traces is not None and self.trace_count > self.max_traces:
            raise AssertionError(f"the train step was traced {self.trace_count} times (max_traces="
                                 f"{self.max_traces}): a batch shape, dtype or sharding changed between steps")
        game = self.game
        local = jax.tree.leaves(batch)[0].shape[1]
        step_key = jax.random.fold_in(state.rng, state.step)

        def critic(state, xs):
            i, sub = xs
            keys = rng_lib.example_keys(jax.random.fold_in(step_key, i), local)
            params, opt, out, grads, upd = _update(game.d_loss, self.d_tx, state.d_params,
                                                   state.d_opt_state, state, sub, keys)
            state = state.replace(d_params=params, d_opt_state=opt, **out.updates)
            return state, {**out.metrics, **_norms("d", grads, upd, params)}

        state, d_metrics = jax.lax.scan(critic, state, (jnp.arange(self.n_critic), batch))
        d_metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), d_metrics)

        last = jax.tree.map(lambda x: x[-1], batch)
        keys = rng_lib.example_keys(jax.random.fold_in(step_key, self.n_critic), local)
        params, opt, out, grads, upd = _update(game.g_loss, self.g_tx, state.g_params,
                                               state.g_opt_state, state, last, keys)
        state = state.replace(g_params=params, g_opt_state=opt, **out.updates)
        metrics = {**d_metrics, **out.metrics, **_norms("g", grads, upd, params)}

        if state.g_ema is not None and self.ema_half_life_kimg is not None:
            # kimg counts real images shown to D, batch x n_critic per step: the EMA uses that clock.
            images_per_step = local * jax.lax.axis_size(DATA_AXIS) * self.n_critic
            beta = ema_beta(state.step, images_per_step, self.ema_half_life_kimg, self.ema_rampup)
            metrics["ema/beta"] = beta
            state = state.replace(g_ema=jax.tree.map(lambda e, p: p + beta * (e - p),
                                                     state.g_ema, state.g_params))
        metrics = jax.tree.map(lambda m: jax.lax.pmean(jnp.asarray(m, jnp.float32), DATA_AXIS), metrics)
        return state.replace(step=state.step + 1), metrics

    # -- host side -------------------------------------------------------------------------------
    def check_batch(self, batch: dict) -> None:
        """Raises a clear error for a batch the step cannot take."""
        for name, x in batch.items():
            if x.ndim < 2 or x.shape[0] != self.n_critic:
                raise ValueError(f"batch[{name!r}] has shape {tuple(x.shape)}: expected (n_critic="
                                 f"{self.n_critic}, global_batch, ...); one real sub-batch per critic update")
            check_divisible(x.shape[1], self.mesh.size)

    def __call__(self, state: GANState, batch: dict) -> tuple[GANState, dict]:
        self.check_batch(batch)
        return self._jitted(state, batch)

    def lower(self, state: Any, batch: Any):
        """Ahead-of-time lowering (accepts ``jax.ShapeDtypeStruct``s): ``.compile()``, cost analysis."""
        self.check_batch(batch)
        return self._jitted.lower(state, batch)

    def _init_fn(self, example_batch: dict, ema: bool | None):
        """``key -> GANState`` for the data's per-example shapes (shared by the two constructors)."""
        ema = self.ema_half_life_kimg is not None if ema is None else ema
        example = jax.tree.map(lambda x: jnp.zeros((1,) + tuple(x.shape[1:]), x.dtype), example_batch)
        return lambda key: init_state(self.game, self.g_tx, self.d_tx, key, example, ema=ema)

    def init_state(self, seed: int, example_batch: dict, *, ema: bool | None = None) -> GANState:
        """Creates the state already replicated on the mesh (compiled, no host round trip).

        Args:
          seed: the run's seed (parameters and every later random draw derive from it).
          example_batch: a batch without the critic axis, leaves shaped (B, ...); only per-example
            shapes and dtypes are used.
          ema: keep a generator EMA; default: when this step has an EMA half-life.
        """
        create = jax.jit(self._init_fn(example_batch, ema), out_shardings=replicated(self.mesh))
        return create(jax.random.PRNGKey(seed))

    def abstract_state(self, example_batch: dict, *, ema: bool | None = None) -> GANState:
        """The state's shapes, dtypes and shardings without computing it (for checkpoint restore)."""
        shapes = jax.eval_shape(self._init_fn(example_batch, ema), jax.random.PRNGKey(0))
        sharding = replicated(self.mesh)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)
