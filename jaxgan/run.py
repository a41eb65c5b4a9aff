"""A run assembled from a resolved config: data, game, optimisers, mesh and the compiled step.

``train``, ``sample`` and ``eval`` all start from :func:`build`, so they see the same networks. A
run's global batch for step ``s`` is a pure function of ``s`` (see :func:`host_batch`), which is what
makes resumption exact.
"""
from __future__ import annotations

import dataclasses
import functools
import operator
import types
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import data as data_lib
from jaxgan import pipeline, precision, sharding
from jaxgan.config import Config, build_experiment
from jaxgan.experiment import images_per_step, total_steps
from jaxgan.step import TrainStep


@dataclasses.dataclass
class Run:
    config: Config
    source: Any
    game: Any
    step: TrainStep
    mesh: Any
    platform: str  # 'cpu', 'gpu' or 'tpu': the mesh's, what 'auto' config values were resolved for

    @functools.cached_property
    def generate_fn(self):
        """The game's ``generate``, jitted once per run (a new bound method each call would recompile)."""
        return jax.jit(self.game.generate)

    @property
    def total_steps(self) -> int:
        return total_steps(self.config)

    @property
    def images_per_step(self) -> int:
        return images_per_step(self.config)


def build(config: Config, module: types.ModuleType, devices=None, source=None) -> Run:
    """Builds the run described by ``config`` with the experiment ``module``'s ``build``.

    ``devices``: the devices the step is built for (default: all devices of all processes); they
    need not be this host's: ``jaxgan compile`` passes a TPU topology's. Platform-dependent choices
    (``compute_dtype='auto'``, DCGAN's ``model.upsample='auto'``) are made for them
    (:func:`jaxgan.precision.resolve_config`); ``Run.config`` keeps the config as given (what
    ``config.json`` records and resumption compares).
    ``source``: a data source to use instead of the config's (``jaxgan bench`` passes synthetic
    images of the configured shape when the data are absent).
    """
    source = data_lib.make_run_source(config) if source is None else source
    mesh = sharding.make_mesh(devices)
    platform = precision.platform_of(mesh.devices.flat)
    game, g_tx, d_tx = build_experiment(module, precision.resolve_config(config, platform), source.info)
    sharding.check_divisible(config.train.batch_size, mesh.size)  # mesh.size is a multiple of processes
    t = config.train
    step = TrainStep(game, g_tx, d_tx, mesh, n_critic=t.n_critic,
                     ema_half_life_kimg=t.ema_half_life_kimg or None, ema_rampup=t.ema_rampup or None,
                     max_traces=1, share_generator_pass=bool(t.get("share_generator_pass", False)))
    return Run(config=config, source=source, game=game, step=step, mesh=mesh, platform=platform)


def host_batch(run: Run, step: int) -> dict:
    """This process's rows of train step ``step``: leaves shaped (n_critic, local_batch, ...).

    Images stay in their stored dtype where the source keeps it (uint8: the step converts them, see
    :func:`jaxgan.step.as_float`), so they cross to the devices in their stored bytes.
    """
    return {k: v[0] for k, v in host_batches(run, step, 1).items()}


def host_batches(run: Run, step: int, steps: int) -> dict:
    """This process's rows of train steps ``step .. step + steps - 1``: leaves shaped
    (steps, n_critic, local_batch, ...), whose ``[i]`` is ``host_batch(run, step + i)``.

    Critic update ``c`` of step ``s`` reads global batch ``s * n_critic + c`` of the source's stream
    (:func:`jaxgan.data.process_batch`). With one process those batches are one range of the stream,
    read in one call (one gather from a prepared store or in-memory arrays); with several, each
    process reads its block of each in turn.
    """
    n_critic, batch = run.config.train.n_critic, run.config.train.batch_size
    step, steps = operator.index(step), operator.index(steps)
    if step < 0 or steps < 1:
        raise ValueError(f"host_batches needs step >= 0 and steps >= 1, got step={step}, steps={steps}")
    if jax.process_count() == 1:
        rows = data_lib.stored_batch(run.source, step * n_critic * batch, steps * n_critic * batch)
    else:
        subs = [data_lib.process_batch(run.source, b, batch, jax.process_index(), jax.process_count(),
                                       stored=True) for b in range(step * n_critic, (step + steps) * n_critic)]
        rows = {k: np.concatenate([s[k] for s in subs]) for k in subs[0]}
    return {k: v.reshape(steps, n_critic, -1, *v.shape[1:]) for k, v in rows.items()}


def input_pipeline(run: Run) -> tuple[Callable[..., Any], int, int]:
    """What the train loop's :class:`jaxgan.pipeline.Prefetcher` is built from: ``(make_batches,
    workers, chunk)``, ``make_batches(step, n)`` giving the batches of steps ``step .. step+n-1``
    (``n <= chunk``), from config ``input_workers``, ``input_processes`` and
    ``input_steps_per_transfer`` (0: :func:`jaxgan.pipeline.default_workers`,
    :func:`jaxgan.pipeline.steps_per_transfer`). ``jaxgan bench --input`` times the same."""
    config = run.config
    pipeline.use_processes(run.source, config.get("input_processes") or 0)
    workers = config.get("input_workers") or pipeline.default_workers(run.source)
    setting = config.get("input_steps_per_transfer") or 0
    per_step = 0 if setting or pipeline.decodes(run.source) else sum(
        x.nbytes for x in jax.tree.leaves(host_batch(run, 0)))
    chunk = pipeline.steps_per_transfer(run.source, per_step, setting)
    if chunk == 1:  # one step a call: no split on the devices
        return (lambda s, n: [sharding.global_batch(run.mesh, host_batch(run, s))]), workers, 1
    # every call reads and transfers a whole chunk (one shape: one compiled split); a run's last call
    # may need only its first n (the rows after them are read and dropped)
    return (lambda s, n: sharding.global_batches(run.mesh, host_batches(run, s, chunk))[:n]), workers, chunk


def example_batch(run: Run) -> dict:
    """A batch with the per-example shapes and dtypes of the data (for init and restore)."""
    return host_batch(run, 0)


def sample_inputs(run: Run, n: int, seed: int) -> tuple[jax.Array, jax.Array | None]:
    """A fixed set of latents (and labels cycling over the classes for conditional games).

    A game whose generator takes something other than noise (an image to translate or upscale)
    provides ``sample_inputs(source, n, seed) -> (inputs, labels)`` and is asked instead.
    """
    if hasattr(run.game, "sample_inputs"):
        return run.game.sample_inputs(run.source, n, seed)
    z = jax.random.normal(jax.random.PRNGKey(seed), (n, run.game.latent_dim))
    labels = None
    if run.game.num_classes is not None:
        labels = jnp.arange(n, dtype=jnp.int32) % run.game.num_classes
    return z, labels


def sampling_variables(state) -> tuple[Any, Any]:
    """``(params, model_state)`` to sample with: the EMA generator and its own averaged model state
    where the run keeps an EMA, else the live generator."""
    if state.g_ema is None:
        return state.g_params, state.g_state
    ema_state = state.g_ema_state if state.g_ema_state is not None else state.g_state
    return state.g_ema, ema_state


def generate_chunk(mesh, chunk: int = 1000) -> int:
    """Latents per call of ``Run.generate_fn``: ``chunk`` rounded up to a multiple of the mesh's
    devices, so that every call splits evenly over them."""
    return -(-chunk // mesh.size) * mesh.size


def generate(run: Run, state, z: jax.Array, labels: jax.Array | None = None,
             chunk: int = 1000) -> np.ndarray:
    """Samples (float32 numpy) from the EMA generator where there is one, in inference mode.

    Data parallel: each call's latents (``generate_chunk``) are split over the run's devices along
    the batch, so n chips draw a chunk n times faster than one (the parameters are replicated, as in
    training); the last chunk is padded with copies of its last row and trimmed. Every process passes
    the same ``z`` and ``labels`` (drawn from the same key) and gets every sample back. Each sample
    depends only on its own latent: generators run in inference mode (batch-norm statistics frozen)."""
    params, model_state = sampling_variables(state)
    fn = run.generate_fn
    chunk = generate_chunk(run.mesh, chunk)
    spec = sharding.batch_sharding(run.mesh, critic_axis=False)

    def place(x, rows):
        x = np.asarray(x)
        if len(x) < rows:
            x = np.concatenate([x, np.repeat(x[-1:], rows - len(x), axis=0)])
        return jax.make_array_from_callback(x.shape, spec, lambda index: x[index])

    out = []
    for i in range(0, z.shape[0], chunk):
        zc = z[i:i + chunk]
        rows = generate_chunk(run.mesh, len(zc))  # the last chunk: padded to split evenly
        y = None if labels is None else place(labels[i:i + chunk], rows)
        x = fn(params, model_state, place(zc, rows), y)
        if not x.is_fully_addressable:  # a multi-process mesh: gather every process's rows
            from jax.experimental import multihost_utils
            x = multihost_utils.process_allgather(x, tiled=True)
        out.append(np.asarray(jax.device_get(x), np.float32)[:len(zc)])
    return np.concatenate(out)


def restore_latest(run: Run, directory) -> Any:
    """The newest good checkpoint's state in ``directory`` (a workdir's ``checkpoints``)."""
    from jaxgan.checkpoint import Checkpointer

    example = jax.tree.map(lambda x: x[0], example_batch(run))
    with Checkpointer(directory) as ckpt:
        abstract = run.step.abstract_state(example)
        state, _, _ = ckpt.restore(abstract)
    return state
