"""The train step: ``n_critic`` discriminator updates, then one generator update, compiled once.

The step is ``jax.jit`` over ``jax.shard_map`` on the ``'data'`` mesh axis: per-device code in
pmap's programming model. Parameters and optimiser state are replicated; each device computes
gradients on its slice of the batch and they are averaged with ``lax.pmean``; BatchNorm statistics
are cross-replica (the networks' ``axis_name``); losses see the global batch's logits. Randomness is
folded from (run key, step, phase, global example index), so the same seed and global batch give the
same parameters on 1, 2 or 8 devices. The state argument is donated: its buffers are reused.

Images may arrive as uint8 (a quarter of float32's bytes host -> device): every uint8 leaf of the
batch is pixels in [0, 255] and becomes float32 in [-1, 1] as the step's first operation
(:func:`jaxgan.data.images.uint8_to_unit`, the same bits as the host's conversion).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import rng as rng_lib
from jaxgan.data.images import uint8_to_unit
from jaxgan.precision import platform_of
from jaxgan.sharding import DATA_AXIS, check_divisible, replicated
from jaxgan.state import GANState, ema_beta, ema_update, init_state


def _update(game_loss, tx, params, opt_state, state, batch, keys):
    """One optimiser update of one side; returns (params, opt_state, grads, StepOut)."""
    (_, out), grads = jax.value_and_grad(game_loss, has_aux=True)(params, state, batch, keys)
    return (*_apply(tx, grads, params, opt_state), out)


def _apply(tx, grads, params, opt_state):
    """Averages this device's gradients over the data axis and applies them: (params, opt, grads).
    The updates themselves are not returned: anything that reads them (a norm) makes XLA write them
    out instead of fusing them into the parameter update (31 more kernels in ring8's step);
    ``_norms`` takes the new minus the old parameters instead."""
    grads = jax.lax.pmean(grads, DATA_AXIS)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, grads


_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm


def _norm_keys(side: str) -> tuple[str, str, str]:
    return tuple(f"{kind}_norm/{side}" for kind in ("grad", "update", "param"))


NORM_KEYS = _norm_keys("d") + _norm_keys("g")


def _norms(side: str, grads, old_params, params, on, fused: bool = False) -> dict:
    """The side's gradient, update (new minus old parameters) and parameter norms when ``on`` (a
    traced bool), else zeros.

    Six global norms read every parameter three more times; the runner logs them every
    ``log_every_steps``, so on CPU the step computes them only when asked (a ``lax.cond``: one
    compiled program for both cases; measured about 5% of ring8's step, BENCHMARKS.md). ``fused``
    computes them on every step instead: XLA:TPU fuses the reductions into the optimizer's pass over
    the same arrays and counts no bytes for them, while the cond's operands must be materialised
    (dcgan_mnist's step for v5e:2x2: 138 MB accessed per chip with the cond, 114 MB fused, as without
    norms; temporaries 7.3 MB -> 0; BENCHMARKS.md, "TPU, compiled here").
    """
    keys = _norm_keys(side)

    def compute(trees):
        g, old, p = trees
        return dict(zip(keys, (_norm(g), _norm(jax.tree.map(jnp.subtract, p, old)), _norm(p))))

    def skip(trees):
        return dict.fromkeys(keys, jnp.zeros((), jnp.float32))

    operands = (grads, old_params, params)
    if fused:
        zeros = skip(operands)
        return {k: jnp.where(on, v, zeros[k]) for k, v in compute(operands).items()}
    return jax.lax.cond(on, compute, skip, operands)


def _without_norms(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in NORM_KEYS}


def as_float(batch: Any) -> Any:
    """Every uint8 leaf (pixels in [0, 255]) as float32 in [-1, 1]; other leaves as they are."""
    return jax.tree.map(lambda x: uint8_to_unit(x, jnp) if x.dtype == jnp.uint8 else x, batch)


def seed_key(seed: int) -> jax.Array:
    """The run's key from a seed of up to 64 bits (``PRNGKey`` alone keeps only the low 32: seeds
    ``2**32`` and 0 would collide). Seeds below ``2**32`` give ``PRNGKey(seed)`` exactly."""
    seed = int(seed)
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed {seed} is outside [0, 2**64): use a smaller non-negative integer")
    key = jax.random.PRNGKey(seed & 0xFFFFFFFF)
    return key if seed < 2 ** 32 else jax.random.fold_in(key, seed >> 32)


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
      fused_norms: compute the norms on every step (fused into the optimizer's pass) rather than under
        a ``lax.cond`` (see ``_norms``); default: on TPU meshes only (the platform of ``mesh``'s devices).
      one_gradient_all_reduce: D's parameters after each D update pass an optimization barrier before
        the next update reads them, so D's gradients cross the devices in one all-reduce. Without it
        XLA pipelines the reduction layer by layer into the next update's forward pass, each layer's
        gradient riding with that pass's BatchNorm statistics (DCGAN-64 for v5e:2x4: three
        all-reduces of D's gradients, one with the barrier; bytes and FLOPs unchanged). A D without
        cross-replica statistics gives XLA nothing to pipeline into (StyleGAN2: one all-reduce per
        network either way, and the barrier cost 322 MB more HBM a chip at batch 512: BENCHMARKS.md).
        Default: on where the mesh has more than one device and D keeps BatchNorm statistics
        (``'batch_stats'`` in its model state).
      share_generator_pass: one generator forward pass serves both updates (n_critic = 1 only, and a
        game with ``fake``, ``d_loss_given_fake`` and ``g_loss_given_fake``, as :class:`GAN` has). G's
        parameters do not change during the D update, so the fakes D learns from are the ones G is
        updated through: the G update reuses them and their VJP instead of a second forward pass,
        with the same noise for both updates (the default draws fresh noise for G). Saves one G
        forward per step; the trained result differs by that noise (docs/results.md measures it).

    Batches are dicts of arrays shaped ``(n_critic, global_batch, ...)``, sharded with
    :func:`jaxgan.sharding.batch_sharding` (see :func:`jaxgan.sharding.global_batch`). Metrics are
    replicated float32 scalars: the game's (``loss/d``, ``logits/real``, ...), plus, with
    ``norms=True`` (the default), gradient, update and parameter norms of both sides (``NORM_KEYS``),
    averaged over the critic updates for D. ``step(state, batch, norms=False)`` skips the norms
    (the runner asks for them on logging steps only); both calls run the same compiled program.
    """

    def __init__(self, game, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 mesh: Mesh, *, n_critic: int = 1, ema_half_life_kimg: float | None = None,
                 ema_rampup: float | None = None, max_traces: int | None = None,
                 share_generator_pass: bool = False, fused_norms: bool | None = None,
                 one_gradient_all_reduce: bool | None = None):
        if n_critic < 1:
            raise ValueError(f"n_critic={n_critic} must be >= 1")
        if share_generator_pass:
            missing = [m for m in ("fake", "d_loss_given_fake", "g_loss_given_fake") if not hasattr(game, m)]
            if missing:
                raise ValueError(f"train.share_generator_pass needs a game with fake, d_loss_given_fake and "
                                 f"g_loss_given_fake; {type(game).__name__} has no {', '.join(missing)}: "
                                 "turn the option off for this experiment")
            if n_critic != 1:
                raise ValueError(f"train.share_generator_pass needs n_critic == 1 (this run has {n_critic} D "
                                 "updates per step, each on its own fakes): turn the option off or set "
                                 "train.n_critic=1")
        self.share_generator_pass = share_generator_pass
        if fused_norms is None:
            fused_norms = platform_of(mesh.devices.flat) == "tpu"
        self.fused_norms = bool(fused_norms)
        self.one_gradient_all_reduce = one_gradient_all_reduce  # None: decided by D's state (_settled)
        self.game, self.g_tx, self.d_tx, self.mesh = game, g_tx, d_tx, mesh
        self.n_critic = n_critic
        self.ema_half_life_kimg, self.ema_rampup = ema_half_life_kimg, ema_rampup
        self.trace_count, self.max_traces = 0, max_traces
        self._jitted = self._jit(self._per_device)
        self._flags = {}

    def _jit(self, per_device):
        mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P(None, DATA_AXIS), P()),
                               out_specs=(P(), P()), check_vma=False)
        return jax.jit(mapped, donate_argnums=0)

    # -- per-device code -------------------------------------------------------------------------
    def _per_device(self, state: GANState, batch: dict, norms) -> tuple[GANState, dict]:
        self.trace_count += 1
        if self.max_traces is not None and self.trace_count > self.max_traces:
            raise AssertionError(f"the train step was traced {self.trace_count} times (max_traces="
                                 f"{self.max_traces}): a batch shape, dtype or sharding changed between steps")
        local = jax.tree.leaves(batch)[0].shape[1]
        step_key = jax.random.fold_in(state.rng, state.step)
        batch = as_float(batch)  # uint8 pixels cross to the device as stored and become floats here

        if self.share_generator_pass:
            state, metrics = self._shared_pass(state, jax.tree.map(lambda x: x[0], batch), step_key, local, norms)
        else:
            state, metrics = self._alternating(state, batch, step_key, local, norms)

        if state.g_ema is not None and self.ema_half_life_kimg is not None:
            # kimg counts real images shown to D, batch x n_critic per step: the EMA uses that clock.
            images_per_step = local * jax.lax.axis_size(DATA_AXIS) * self.n_critic
            beta = ema_beta(state.step, images_per_step, self.ema_half_life_kimg, self.ema_rampup)
            metrics["ema/beta"] = beta
            state = state.replace(g_ema=ema_update(state.g_ema, state.g_params, beta),
                                  g_ema_state=ema_update(state.g_ema_state, state.g_state, beta))
        metrics = jax.tree.map(lambda m: jax.lax.pmean(jnp.asarray(m, jnp.float32), DATA_AXIS), metrics)
        return state.replace(step=state.step + 1), metrics

    def _alternating(self, state: GANState, batch: dict, step_key, local: int, norms) -> tuple[GANState, dict]:
        """n_critic D updates, then one G update with fresh noise (the standard schedule)."""
        game = self.game

        def d_update(state, sub, key, norms):
            keys = rng_lib.example_keys(key, local)
            old = state.d_params
            params, opt, grads, out = _update(game.d_loss, self.d_tx, old, state.d_opt_state, state, sub, keys)
            state = state.replace(d_params=self._settled(params, state), d_opt_state=opt, **out.updates)
            return state, {**out.metrics, **_norms("d", grads, old, params, norms, self.fused_norms)}

        # A Python loop, not lax.scan: XLA canonicalises convolution layouts only in the top-level
        # computation, so convolutions inside a scan body fall to slow generic kernels on CPU (2x
        # slower DCGAN steps; sngan_mnist's smoke step 8x at O0, measured). With several updates the
        # update is an inner jit, traced and lowered once and called n_critic times: the same compiled
        # program bit for bit (its XLA calls are inlined), and sngan_mnist's smoke step (n_critic 5)
        # traces in 1.0-1.2 s instead of 2.5-3.0 and compiles in 6.8-7.0 s instead of 7.5-9.1 on CPU
        # at O0 (docs/design.md).
        if self.n_critic > 1:
            d_update = jax.jit(d_update)
        per_update = []
        for i in range(self.n_critic):
            state, metrics = d_update(state, jax.tree.map(lambda x: x[i], batch), jax.random.fold_in(step_key, i),
                                      norms)
            per_update.append(metrics)
        d_metrics = jax.tree.map(lambda *ms: jnp.mean(jnp.stack(ms)), *per_update)

        last = jax.tree.map(lambda x: x[-1], batch)
        keys = rng_lib.example_keys(jax.random.fold_in(step_key, self.n_critic), local)
        old = state.g_params
        params, opt, grads, out = _update(game.g_loss, self.g_tx, old, state.g_opt_state, state, last, keys)
        state = state.replace(g_params=params, g_opt_state=opt, **out.updates)
        return state, {**d_metrics, **out.metrics, **_norms("g", grads, old, params, norms, self.fused_norms)}

    def _shared_pass(self, state: GANState, batch: dict, step_key, local: int, norms) -> tuple[GANState, dict]:
        """One D update and one G update through the same generator forward pass (and its VJP)."""
        game = self.game
        keys = rng_lib.example_keys(jax.random.fold_in(step_key, 0), local)
        fake, g_vjp, g_updates = jax.vjp(lambda p: game.fake(p, state, batch, keys), state.g_params,
                                         has_aux=True)
        (_, out), grads = jax.value_and_grad(game.d_loss_given_fake, has_aux=True)(
            state.d_params, state, batch, jax.lax.stop_gradient(fake), keys)
        old = state.d_params
        params, opt, grads = _apply(self.d_tx, grads, old, state.d_opt_state)
        state = state.replace(d_params=self._settled(params, state), d_opt_state=opt, **out.updates)
        metrics = {**out.metrics, **_norms("d", grads, old, params, norms, self.fused_norms)}
        (_, out), fake_grad = jax.value_and_grad(game.g_loss_given_fake, has_aux=True)(fake, state, batch, keys)
        (grads,) = g_vjp(fake_grad)
        old = state.g_params
        params, opt, grads = _apply(self.g_tx, grads, old, state.g_opt_state)
        state = state.replace(g_params=params, g_opt_state=opt, **out.updates, **g_updates)
        return state, {**metrics, **out.metrics, **_norms("g", grads, old, params, norms, self.fused_norms)}

    def _settled(self, d_params, state: GANState):
        """D's new parameters, all of them computed before anything reads one (see
        ``one_gradient_all_reduce``)."""
        on = self.one_gradient_all_reduce
        if on is None:
            on = self.mesh.size > 1 and isinstance(state.d_state, Mapping) and "batch_stats" in state.d_state
        return jax.lax.optimization_barrier(d_params) if on else d_params

    # -- host side -------------------------------------------------------------------------------
    def check_batch(self, batch: dict) -> None:
        """Raises a clear error for a batch the step cannot take."""
        for name, x in batch.items():
            if x.ndim < 2 or x.shape[0] != self.n_critic:
                raise ValueError(f"batch[{name!r}] has shape {tuple(x.shape)}: expected (n_critic="
                                 f"{self.n_critic}, global_batch, ...); one real sub-batch per critic update")
            check_divisible(x.shape[1], self.mesh.size)

    def flag(self, norms: bool) -> jax.Array:
        """The step's ``norms`` argument: a replicated bool (made once per value and reused)."""
        norms = bool(norms)
        if norms not in self._flags:
            self._flags[norms] = jax.device_put(np.bool_(norms), replicated(self.mesh))
        return self._flags[norms]

    def __call__(self, state: GANState, batch: dict, *, norms: bool = True) -> tuple[GANState, dict]:
        self.check_batch(batch)
        return self._run(self._jitted, state, batch, norms)

    def _run(self, fn, state: GANState, batch: dict, norms: bool) -> tuple[GANState, dict]:
        """Calls the jitted or compiled step ``fn`` with the ``norms`` flag; drops the zeroed norms."""
        state, metrics = fn(state, batch, self.flag(norms))
        return state, metrics if norms else _without_norms(metrics)

    def lower(self, state: Any, batch: Any, *, fresh: bool = False) -> "Lowered":
        """Ahead-of-time lowering (accepts ``jax.ShapeDtypeStruct``s): ``.compile()``, cost analysis.

        ``fresh``: trace the step again rather than take jax's cached trace (a new function for jax's
        caches, which ``jax.clear_caches()`` would empty for every test and program of the process),
        e.g. under ``jaxgan.game.phase_step``.
        """
        self.check_batch(batch)
        flag = jax.ShapeDtypeStruct((), jnp.bool_, sharding=replicated(self.mesh))
        jitted = self._jit(lambda *args: self._per_device(*args)) if fresh else self._jitted
        return Lowered(self, jitted.lower(state, batch, flag))

    def _init_fn(self, example_batch: dict, ema: bool | None):
        """``key -> GANState`` for the data's per-example shapes (shared by the two constructors)."""
        ema = self.ema_half_life_kimg is not None if ema is None else ema
        example = jax.tree.map(lambda x: jnp.zeros((1,) + tuple(x.shape[1:]),
                                                   jnp.float32 if x.dtype == jnp.uint8 else x.dtype), example_batch)
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
        return create(seed_key(seed))

    def abstract_state(self, example_batch: dict, *, ema: bool | None = None) -> GANState:
        """The state's shapes, dtypes and shardings without computing it (for checkpoint restore)."""
        shapes = jax.eval_shape(self._init_fn(example_batch, ema), jax.random.PRNGKey(0))
        sharding = replicated(self.mesh)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


class Lowered:
    """A lowered :class:`TrainStep` (jax's ``Lowered``, whose other attributes it passes through)."""

    def __init__(self, step: TrainStep, lowered):
        self._step, self._lowered = step, lowered

    def compile(self) -> "Compiled":
        return Compiled(self._step, self._lowered.compile())

    def __getattr__(self, name):  # cost_analysis, as_text, ...
        return getattr(self._lowered, name)


class Compiled:
    """A compiled :class:`TrainStep`: ``state, metrics = compiled(state, batch, norms=True)``."""

    def __init__(self, step: TrainStep, compiled):
        self._step, self._compiled = step, compiled

    def __call__(self, state: GANState, batch: dict, *, norms: bool = True) -> tuple[GANState, dict]:
        return self._step._run(self._compiled, state, batch, norms)

    def __getattr__(self, name):  # memory_analysis, cost_analysis, ...
        return getattr(self._compiled, name)
