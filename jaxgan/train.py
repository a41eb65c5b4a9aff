"""The training loop: restore or initialise, compile once, step, and run periodic actions.

It is thin on purpose (fork it for unusual runs): everything it calls is importable on its own.
Only process 0 writes files other than checkpoints (which every process writes collectively).
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import samples as samples_lib
from jaxgan import sharding, workdir as workdir_lib, writers as writers_lib
from jaxgan.checkpoint import Checkpointer
from jaxgan.config import Config
from jaxgan.errors import WorkdirLocked
from jaxgan.evaluate import evaluate
from jaxgan.experiment import kimg_to_steps
from jaxgan.flops import xla_cost
from jaxgan.pipeline import InputMeter, Prefetcher, can_use_processes, close_processes, decoding_processes
from jaxgan.periodic import Every, StopSignal, Stopped, Throughput
from jaxgan.run import Run, build, example_batch, generate, input_pipeline, sample_inputs
from jaxgan.step import NORM_KEYS
from jaxgan.validate import validate

log = logging.getLogger("jaxgan")

# Fields that may change when a run is resumed; any other difference is refused.
RESUMABLE_FIELDS = {"log_every_steps", "sample_every_steps", "checkpoint_every_steps",
                    "keep_checkpoints", "num_grid_samples", "eval", "input_workers", "input_processes",
                    "input_steps_per_transfer",
                    "sample"}  # sample.*: how grids are drawn (jaxgan sample --set sample.truncation=0.7)
GRID_SEED = 20240601  # the fixed z of the sample grids
STOP_SYNC_EVERY = 10  # multi-process runs agree on a stop request every this many steps


class NonFiniteError(FloatingPointError):
    """A logged metric became NaN or infinite; the run stopped without saving that state."""


def train(config: Config, module, workdir: str | pathlib.Path, *, stream=None,
          stop: StopSignal | None = None) -> Any:
    """Trains (or resumes) the run ``config`` in ``workdir``; returns the final GANState (None when
    stopped before one existed).

    The workdir is locked for the whole run (:class:`jaxgan.workdir.WorkdirLock`, held by process 0);
    a run that fails or is stopped before writing anything leaves no workdir behind (only one it made).

    A stop signal (SIGTERM, SIGINT, SIGHUP: :class:`jaxgan.periodic.StopSignal`) is honoured from the
    first line to the return, in every phase: before the first step the run ends saying there is
    nothing to save yet; from the first step on, the newest state is in a committed checkpoint when
    ``train`` returns (a save in flight is finished, never cut off); a final evaluation is abandoned
    (the rerun does it). The rerun continues exactly as an uninterrupted run would.

    Args:
      stop: the :class:`StopSignal` to use (a caller's, already entered, covers its own start-up; its
        ``on_phase`` hook sees each phase); default a new one.
    """
    stop = StopSignal() if stop is None else stop
    with stop:
        stop.phase("start-up")
        workdir = pathlib.Path(workdir)
        is_main = jax.process_index() == 0
        if _stop_now(stop):  # already requested in the caller's start-up (jaxgan train's, say)
            return _nothing_to_save(stop, None)
        validate(config, module)
        workdir_lib.check_usable(workdir)
        lock = workdir_lib.WorkdirLock(workdir)
        _lock_on_main(lock, is_main)
        try:
            return _train_locked(config, module, workdir, is_main, stream, stop)
        finally:
            if is_main:
                lock.remove_if_unused()  # only a workdir this run made and left empty (failed or stopped early)
            lock.release()


def _lock_on_main(lock: "workdir_lib.WorkdirLock", is_main: bool) -> None:
    """Process 0 takes the workdir lock; every process learns whether it got it, and all fail if not."""
    error = None
    if is_main:
        try:
            lock.acquire()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the others have heard
            error = e
    if not _decided_by_main(error is None):
        if error is not None:
            raise error
        raise WorkdirLocked(f"process 0 could not lock workdir {lock.workdir} (its log says why)")


def _train_locked(config: Config, module, workdir: pathlib.Path, is_main: bool, stream,
                  stop: StopSignal) -> Any:
    run = build(config, module)
    if _stop_now(stop):
        return _nothing_to_save(stop, None)
    stop.phase("restore")
    with Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints) as ckpt:
        state, start = _restore_or_init(run, ckpt, workdir, is_main)
        if _stop_now(stop):
            return _nothing_to_save(stop, start, state)
        writer = writers_lib.create_writers(workdir, total_steps=run.total_steps, is_main=is_main,
                                            stream=sys.stderr if stream is None else stream)
        try:
            if start >= run.total_steps:
                return _finish(run, state, start, writer, workdir, is_main, stop, ckpt)
            stop.phase("compile")
            compiled = _compile(run, state, workdir, is_main)
            if _stop_now(stop):
                return _nothing_to_save(stop, start, state)
            return _loop(run, compiled, state, start, ckpt, writer, workdir, is_main, stop)
        finally:
            writer.close()
            close_processes(run.source)  # a folder's decoding processes (input_processes) end with the run
            ckpt.wait()


def _stop_now(stop: StopSignal) -> bool:
    """Whether any process was asked to stop (a collective with several processes: call it at the same
    point on every process)."""
    return stop.requested if jax.process_count() == 1 else _any_process(stop.requested)


def _nothing_to_save(stop: StopSignal, start: int | None, state=None):
    """The one line of a stop before the first step: this process trained nothing, so nothing is lost."""
    why = (f"{stop.signal_name} during {stop.phase_name or 'start-up'}" if stop.signal_name
           else "a stop request on another process")
    newest = (f"the checkpoint of step {start} is the newest" if start else
              "the run has no checkpoint yet" if start == 0 else "nothing was restored or trained")
    log.warning("%s: stopped before the first step, nothing to save yet (%s); run the same command to "
                "continue", why, newest)
    return state


def _write_run_files(run: Run, workdir: pathlib.Path) -> None:
    """config.json and the copy of the experiment file (process 0)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if run.config.get("experiment") and pathlib.Path(run.config.experiment).is_file():
        workdir_lib.record_experiment(workdir, run.config)
    _write_atomic(workdir / "config.json", run.config.to_json())


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _restore_or_init(run: Run, ckpt: Checkpointer, workdir: pathlib.Path, is_main: bool):
    example = jax.tree.map(lambda x: x[0], example_batch(run))
    if ckpt.latest_step() is None:
        ckpt.set_aside_unreadable()  # else they would block this run's saves of the same steps
        if is_main:
            _write_run_files(run, workdir)
            _truncate_metrics(workdir, 0)  # lines of an earlier attempt that never checkpointed
            _set_aside_results(workdir)
        state = run.step.init_state(run.config.seed, example)
        if run.config.get("init_from"):  # weights from elsewhere, fresh optimisers (StyleGAN2: an NVIDIA pickle)
            from jaxgan.interop import stylegan2_import

            state = stylegan2_import.initialise(state, run.config.init_from)
            log.info("initialised G, G_ema and D from %s (optimiser states fresh)", run.config.init_from)
        return state, 0
    # the config saved with each step tried is checked before its arrays are read: a different config
    # (e.g. another run's checkpoints copied here) is refused, naming both, and never taken for corrupt
    state, position, _ = ckpt.restore(run.step.abstract_state(example),
                                      check=lambda saved, _: _check_resumable(saved, run.config))
    start = int(state.step)
    if position.get("examples_seen") != start * run.images_per_step:
        raise RuntimeError(f"checkpoint at step {start} records data position {position}, but step "
                           f"{start} at {run.images_per_step} images/step means {start * run.images_per_step}"
                           " examples: the checkpoint does not belong to this config")
    if is_main:
        _truncate_metrics(workdir, start)
        _write_run_files(run, workdir)
    log.info("resumed from step %d (%s)", start, workdir / "checkpoints")
    return state, start


def _set_aside_results(workdir: pathlib.Path) -> None:
    """A fresh start in a workdir holding results of an attempt that never checkpointed: its eval and
    best files would be mistaken for this run's, so they are moved to ``previous-N/`` (not deleted)."""
    stale = [workdir / n for n in ("eval.json", "best.json", "best") if (workdir / n).exists()]
    if not stale:
        return
    n = 0
    while (workdir / f"previous-{n}").exists():
        n += 1
    (workdir / f"previous-{n}").mkdir()
    for path in stale:
        path.rename(workdir / f"previous-{n}" / path.name)
    log.warning("moved results of an earlier attempt without checkpoints to %s", workdir / f"previous-{n}")


def _truncate_metrics(workdir: pathlib.Path, step: int) -> None:
    """Drops metric lines after ``step`` (a resumed run rewrites them)."""
    if (workdir / "metrics.jsonl").exists():
        jsonl = writers_lib.JsonlWriter(workdir / "metrics.jsonl")
        jsonl.truncate_after(step)
        jsonl.close()


def _check_resumable(saved: dict, config: Config) -> None:
    """Refuses to resume with a different config, except for fields that may change.

    * :data:`RESUMABLE_FIELDS` (logging, checkpointing, evaluation) may change freely;
    * ``train.total_kimg`` may grow (extending a run) when nothing else in ``train`` changed and the
      learning rate does not depend on the length (``optim.schedule='constant'``): a cosine schedule
      decays over ``total_kimg``, so extending would change it, and is refused;
    * ``experiment`` is compared by file name (a moved checkout still resumes); a changed experiment
      file (``experiment_sha256``) is allowed with a warning, since a change that alters the model
      fails at restore anyway, and the workdir's copy is replaced by the new file.
    """
    def same(k):
        if k == "experiment":
            return pathlib.Path(saved.get(k, "")).name == pathlib.Path(config.get(k, "")).name
        if k == "experiment_sha256":
            return True
        if k == "train":
            return _without_total(saved.get(k)) == _without_total(config.get(k))
        return saved.get(k) == config.get(k)

    diffs = [k for k in sorted(set(saved) | set(config)) if k not in RESUMABLE_FIELDS and not same(k)]
    if diffs:
        detail = "; ".join(f"{k}: saved {saved.get(k)!r}, now {config.get(k)!r}" for k in diffs)
        raise ValueError(f"this workdir holds a run with a different config ({detail}): use a new "
                         "--workdir, or the same --set options as the original run")
    old_kimg = (saved.get("train") or {}).get("total_kimg")
    new_kimg = config.train.total_kimg
    if old_kimg is not None and new_kimg != old_kimg:
        if new_kimg < old_kimg:
            raise ValueError(f"train.total_kimg {new_kimg} is below the {old_kimg} this run was started with: "
                             "a run can be extended, not shortened (stop it early with Ctrl-C, or use a new "
                             "--workdir)")
        schedule = (config.get("optim") or {}).get("schedule", "constant")
        if schedule != "constant":
            raise ValueError(f"cannot extend this run from train.total_kimg={old_kimg} to {new_kimg}: its "
                             f"optim.schedule={schedule!r} decays over total_kimg, so a longer run would "
                             "have had another learning rate at every step. Start a new --workdir with the "
                             "longer total_kimg")
        log.info("extending the run from train.total_kimg=%s to %s", old_kimg, new_kimg)
    if saved.get("experiment_sha256") and saved.get("experiment_sha256") != config.get("experiment_sha256"):
        log.warning("the experiment file %s changed since this run was started; resuming with the new file "
                    "(the workdir's experiment.py is replaced by it)", config.get("experiment"))


def _without_total(train_fields) -> dict:
    return {k: v for k, v in (train_fields or {}).items() if k != "total_kimg"}


def _compile(run: Run, state, workdir: pathlib.Path, is_main: bool):
    """Compiles the step ahead of time and records its FLOPs and memory in compile.json."""
    batch = sharding.global_batch(run.mesh, example_batch(run))
    lowered = run.step.lower(state, batch)
    compiled = lowered.compile()
    info = {"devices": run.mesh.size, "backend": run.platform, "jax": jax.__version__}
    cost = xla_cost(lowered)
    if cost and "flops" in cost:
        info["flops_per_step_lowered"] = float(cost["flops"])
    try:
        mem = compiled.memory_analysis()
        info.update({f"memory/{k}": int(getattr(mem, k)) for k in
                     ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")})
    except Exception:  # not every backend reports memory
        pass
    if is_main:
        (workdir / "compile.json").write_text(json.dumps(info, indent=2))
    log.info("compiled train step: %s", info)
    return compiled


MAX_IN_FLIGHT = 2  # train steps dispatched ahead of the one the host waits for
_INPUT_REMEDY = ("decode the data once into a uint8 store (jaxgan prepare EXPERIMENT OUT, then --set data.name=store "
                 "data.path=OUT), or raise input_workers (now {workers})")
_PROCESSES_REMEDY = ("; an image folder decodes in worker processes with input_processes={cores} (2 decoded "
                     "1.9x what one did at 64x64 on 2 cores, threads 1.2-1.8x: BENCHMARKS.md)")


def _loop(run: Run, compiled, state, start: int, ckpt, writer, workdir, is_main, stop: StopSignal):
    cfg, total = run.config, run.total_steps
    log_every, sample_every = Every(cfg.log_every_steps), Every(cfg.sample_every_steps)
    ckpt_every = Every(cfg.checkpoint_every_steps)
    eval_every = Every(kimg_to_steps(cfg, cfg.eval.every_kimg))
    z, labels = sample_inputs(run, cfg.num_grid_samples, GRID_SEED)
    real_grid = _real_grid(run, cfg.num_grid_samples)
    speed = Throughput()
    step, stopping = start, False
    in_flight = collections.deque()  # one output of each step dispatched and perhaps not yet run
    make_batch, workers, chunk = input_pipeline(run)
    # built ahead on worker threads, off the step
    with Prefetcher(make_batch, start, total, depth=workers + 1, workers=workers, chunk=chunk) as batches:
        remedy = _INPUT_REMEDY.format(workers=workers)
        if can_use_processes(run.source) and not decoding_processes(run.source):
            remedy += _PROCESSES_REMEDY.format(cores=os.cpu_count() or 1)
        inputs = InputMeter(batches, run.images_per_step, remedy=remedy)
        while step < total and not stopping:
            stop.phase("training", step)
            _, batch = next(batches)
            # the six gradient/update/parameter norms only where they are read: log and save steps
            norms = log_every(step + 1) or ckpt_every(step + 1) or step + 1 == total
            state, metrics = compiled(state, batch, norms=norms)
            step += 1
            # Dispatch is asynchronous: without a bound the host runs ahead of the devices by every
            # step until the next log line (measured: a stop signal waited 40-70 s for 50 queued
            # StyleGAN2 steps on CPU). Waiting for the step dispatched MAX_IN_FLIGHT steps ago keeps
            # the devices fed (the next steps are already queued) and a stop within a step or two.
            in_flight.append(next(iter(metrics.values())))
            if len(in_flight) > MAX_IN_FLIGHT:
                in_flight.popleft().block_until_ready()
            if step == start + 1:
                speed.reset(step, step * run.images_per_step)
                inputs.reset()
            if log_every(step) or step == total:
                _log(run, writer, speed, step, metrics, inputs)
            # a stop in these phases finishes them (their files belong to this step) and then saves it
            if sample_every(step) or step == total:
                stop.phase("samples", step)
                with speed.paused():
                    _write_samples(run, state, z, labels, step, writer, workdir, is_main, real_grid)
            if ckpt_every(step):
                stop.phase("save", step)
                _save(run, ckpt, state, step, metrics)
            if eval_every(step) and step < total:
                stop.phase("evaluation", step)
                with speed.paused():
                    _evaluate(run, state, step, writer, workdir, is_main)
            stopping = _stop_agreed(stop.requested, step)
    if stopping:
        log.warning("%s: stopping at step %d and saving a checkpoint", stop.signal_name or "a stop request "
                    "on another process", step)
    else:
        stop.phase("final save", step)
    _save(run, ckpt, state, step, metrics)  # returns with the write in flight; the handler stays installed
    if stopping or _stop_now(stop):  # a stop during the final save: the checkpoint is finished, not cut off
        _report_saved(ckpt, step, "" if stopping else "; the final evaluation is left for the rerun")
    elif step == total:
        _finish(run, state, step, writer, workdir, is_main, stop, ckpt)
    return state


def _report_saved(ckpt: Checkpointer, step: int, note: str = "") -> None:
    """Waits until the checkpoint of ``step`` is durable and says so (stop requests end here)."""
    ckpt.wait()
    log.warning("saved checkpoint at step %d in %s%s", step, ckpt.directory, note)


def _finish(run: Run, state, step: int, writer, workdir: pathlib.Path, is_main: bool, stop: StopSignal,
            ckpt: Checkpointer):
    """The final evaluation (also when a run was stopped after its last checkpoint, before it), unless
    ``eval.at_end`` is false (a run evaluated elsewhere, or a test that reads only its checkpoints).

    A stop abandons it (with one process; several finish it together): the evaluation is not saved
    state, and the rerun, finding the run complete but not evaluated, evaluates it. The line says so
    once the checkpoint of ``step`` is durable.
    """
    if _decided_by_main(_evaluated_at(workdir, step) if is_main else False):
        log.info("the run in %s is complete (step %d) and evaluated (eval.json)", workdir, step)
        return state
    if not run.config.eval.get("at_end", True):
        log.info("the run in %s is complete (step %d); not evaluated (eval.at_end=false): `jaxgan eval %s` "
                 "evaluates it, and so does the same train command without eval.at_end=false",
                 workdir, step, workdir)
        return state
    stop.phase("final evaluation", step)
    try:
        results = _evaluate(run, state, step, writer, workdir, is_main, stop=stop)
    except Stopped:
        ckpt.wait()
        log.warning("%s during the final evaluation: abandoned it; the checkpoint of step %d is saved in %s; "
                    "run the same command to evaluate", stop.signal_name, step, ckpt.directory)
        return state
    if is_main:
        _write_atomic(workdir / "eval.json", json_dumps({"step": step, **results}))
    return state


def _evaluated_at(workdir: pathlib.Path, step: int) -> bool:
    """Whether eval.json holds the evaluation of ``step`` (an extended run's old one does not count)."""
    try:
        return json.loads((workdir / "eval.json").read_text()).get("step") == step
    except (OSError, ValueError, AttributeError):
        return False


def _stop_agreed(requested: bool, step: int) -> bool:
    """Whether to stop now. Every process must stop at the same step (saving is collective), so with
    several processes the flags are OR-ed across them every ``STOP_SYNC_EVERY`` steps."""
    if jax.process_count() == 1:
        return requested
    if step % STOP_SYNC_EVERY:
        return False
    return _any_process(requested)


def _decided_by_main(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (for decisions that lead to collective work)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def _any_process(flag: bool) -> bool:
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def _evaluate(run: Run, state, step: int, writer, workdir: pathlib.Path, is_main: bool,
              stop: StopSignal | None = None) -> dict:
    """Evaluates, appends the results to the metrics, and keeps the best checkpoint if configured.

    With ``stop`` (and one process) a stop request raises :class:`Stopped` out of the evaluation
    itself, before anything is written.
    """
    abandon = stop is not None and jax.process_count() == 1  # with several, all must leave it together
    with stop.interruptible() if abandon else contextlib.nullcontext():
        results = evaluate(run, state)
    writer.write_scalars(step, {k: v for k, v in results.items()
                                if isinstance(v, (int, float)) and math.isfinite(v)})  # not the 'note'
    log.info("eval at step %d: %s", step, results)
    _keep_best(run, state, step, results, workdir, is_main)
    return results


def _keep_best(run: Run, state, step: int, results: dict, workdir: pathlib.Path, is_main: bool) -> None:
    """Saves ``state`` to <workdir>/best when the configured metric improved (record in best.json)."""
    name, mode = run.config.eval.best_metric, run.config.eval.best_mode
    if not name:
        return
    if name not in results:
        raise ValueError(f"eval.best_metric {name!r} is not among this run's metrics: "
                         f"{', '.join(sorted(results)) or '(none)'}")
    value, record = float(results[name]), workdir / "best.json"
    improved = math.isfinite(value)
    if improved and is_main and record.exists():
        best = json.loads(record.read_text())["value"]
        improved = (value > best) if mode == "max" else (value < best)
    if not _decided_by_main(improved):  # only process 0 is sure to see best.json
        return
    with Checkpointer(workdir / "best", keep=1) as best_ckpt:
        best_ckpt.save(step, state, data_position={"step": step, "examples_seen": step * run.images_per_step},
                       config=dict(run.config))
    if is_main:
        record.write_text(json.dumps({"metric": name, "mode": mode, "value": value, "step": step}))
    log.info("new best %s = %s at step %d (saved in %s)", name, value, step, workdir / "best")


def json_dumps(values: dict) -> str:
    """JSON with NaN and infinities written as null (strict JSON has no NaN)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
    return json.dumps(clean, indent=2)


def _finite_metrics(metrics: dict, step: int) -> dict:
    """The step's metrics as floats; raises NonFiniteError (before anything is saved) if any is not."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteError(
            f"non-finite metrics at step {step}: {bad}. Training stopped and this state was not saved "
            "(the newest checkpoint in the workdir is from before it). Try a lower learning rate, a "
            "gradient penalty (--set penalty.r1_gamma=...), or float32 compute (--set compute_dtype=float32).")
    return values


@jax.jit
def _all_finite(tree) -> jax.Array:
    """0.0 when every element of ``tree`` is finite, NaN otherwise (read by ``_finite_metrics``)."""
    ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
    return jnp.where(ok, 0.0, jnp.nan)


def _log(run: Run, writer, speed: Throughput, step: int, metrics: dict, inputs: InputMeter | None = None) -> None:
    values = _finite_metrics(metrics, step)
    images = step * run.images_per_step
    if step > 1:
        rates = speed.update(step, images)
        values[writers_lib.STEPS_PER_SEC] = rates.get("steps_per_sec", float("nan"))
        values[writers_lib.IMAGES_PER_SEC] = rates.get("images_per_sec", float("nan"))
        if inputs is not None:  # input/wait_fraction, input/images_per_sec (jaxgan.pipeline.InputMeter)
            values.update(inputs.update(rates.get("steps_per_sec")))
        values = {k: v for k, v in values.items() if math.isfinite(v)}
    values[writers_lib.KIMG] = images / 1000.0
    writer.write_scalars(step, values)


def _save(run: Run, ckpt: Checkpointer, state, step: int, metrics: dict) -> None:
    _finite_metrics(metrics, step)  # never checkpoint a state that has gone non-finite
    if not all(k in metrics for k in NORM_KEYS):  # a step without norms (a stop between log steps): check directly
        _finite_metrics({"parameters/g": _all_finite(state.g_params), "parameters/d": _all_finite(state.d_params)},
                        step)
    ckpt.save(step, state, data_position={"step": step, "examples_seen": step * run.images_per_step},
              config=dict(run.config))


def _real_grid(run: Run, n: int) -> np.ndarray | None:
    """As many real examples as the sample grid has latents (the reference of ``samples/diversity``),
    or None for games whose generator maps inputs rather than noise (translation, super-resolution)."""
    if hasattr(run.game, "sample_inputs") or n < 2:
        return None
    return np.asarray(run.source.get_batch(0, n)["x"])


def _write_samples(run: Run, state, z, labels, step: int, writer, workdir: pathlib.Path, is_main: bool,
                   real_grid: np.ndarray | None = None):
    x = generate(run, state, z, labels)
    if real_grid is not None:  # mode collapse, visible in the log: near 0 when every latent draws one thing
        writer.write_scalars(step, {"samples/diversity": samples_lib.diversity(np.asarray(x), real_grid)})
    if hasattr(run.game, "sample_image"):  # e.g. inputs beside outputs for translation
        image = run.game.sample_image(z, x)
    elif run.source.info.kind == "points":
        image = samples_lib.scatter_image(x, run.source.get_batch(0, 1000)["x"], title=f"step {step}")
    else:
        image = samples_lib.image_grid(x)
    if is_main:
        samples_lib.save_png(workdir / "samples" / f"{step:08d}.png", image)
    writer.write_images(step, {"samples": image})
