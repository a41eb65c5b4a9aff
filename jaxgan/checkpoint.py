"""Checkpoints: the GAN state, the data position and the config, saved together with orbax.

Layout on disk (``directory`` is usually ``<workdir>/checkpoints``)::

    checkpoints/
      <step>/                 one orbax step, written to a temporary name and renamed when complete
        state/                the GANState arrays (orbax StandardSave: OCDBT/zarr, one writer per array
                              shard, so every process of a multi-host run writes its own shards)
        meta/metadata         JSON {"data_position": {...}, "config": {...}} (written by process 0)
      <step>.orbax-checkpoint-tmp-*/   a save in flight or cut off: never listed, never restored
      corrupt/<step>/         a step that failed to restore while an older one restored: moved aside
                              for inspection, never deleted, no longer counted by keep-N

Saves are asynchronous: :meth:`Checkpointer.save` returns once the arrays are copied off the
accelerator and the files are written in the background; :meth:`Checkpointer.wait` blocks until they
are durable. Only the newest ``keep`` steps are kept.

Restoring takes an abstract state (``jax.ShapeDtypeStruct`` leaves with shardings, e.g.
:meth:`jaxgan.step.TrainStep.abstract_state`): the target shardings decide placement, so a run saved
on 8 devices resumes on 1 or 2. Without an explicit step, the newest step that restores is used; a
newer step that fails is skipped with a warning and moved to ``corrupt/``. When no step restores
(often: the model or optimiser changed since the save) nothing is moved and the error lists why.

Example::

    ckpt = Checkpointer(workdir / "checkpoints", keep=3)
    if ckpt.latest_step() is not None:
        state, data_position, config = ckpt.restore(train_step.abstract_state(example))
    ...
    ckpt.save(int(state.step), state, data_position=it.position(), config=config)
    ckpt.wait()
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

_log = logging.getLogger(__name__)
CORRUPT_DIR = "corrupt"


def _to_json(obj: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def _reason(e: BaseException, limit: int = 400) -> str:
    """A one-line reason for a failed read (orbax/tensorstore errors carry long specs)."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _meta(data_position: dict, config: dict) -> dict:
    """The JSON saved beside the state; fails now, with a clear message, rather than in a thread."""
    try:
        return json.loads(json.dumps({"data_position": data_position, "config": config},
                                     default=_to_json))
    except (TypeError, ValueError) as e:
        raise TypeError(f"data_position and config must be JSON-serialisable (dicts of str, numbers, "
                        f"bools, lists and None): {e}") from e


def _manager(directory: epath.Path, *, keep: int | None, async_save: bool,
             read_only: bool = False) -> ocp.CheckpointManager:
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save)
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _read_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
    """The step's JSON meta; raises if it or the state's tree metadata cannot be read."""
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, dict) or not {"data_position", "config"} <= meta.keys():
        raise ValueError(f"meta is {type(meta).__name__} without data_position and config")
    if mngr.item_metadata(step)["state"] is None:
        raise ValueError("the state's tree metadata is missing")
    return meta


def _readable_steps(mngr: ocp.CheckpointManager):
    """Yields ``(step, meta)`` for complete steps whose metadata reads, newest first; warns on others."""
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            meta = _read_meta(mngr, step)
        except Exception as e:  # noqa: BLE001 - any failure to read makes the step unusable
            _log.warning("checkpoint step %d in %s is unreadable, skipping it: %s",
                         step, mngr.directory, _reason(e))
            continue
        yield step, meta


def _absolute(directory: str | os.PathLike) -> epath.Path:
    """orbax needs absolute paths: a relative local path is taken from the working directory."""
    text = os.fspath(directory)
    return epath.Path(text if "://" in text else os.path.abspath(text))


def read_config(directory: str | os.PathLike) -> dict | None:
    """The config saved with the newest readable step, without restoring arrays (None: no step)."""
    directory = _absolute(directory)
    if not directory.exists():
        return None
    mngr = _manager(directory, keep=None, async_save=False, read_only=True)
    try:
        return next((meta["config"] for _, meta in _readable_steps(mngr)), None)
    finally:
        mngr.close()


def _check_abstract(abstract_state: Any) -> None:
    paths = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(abstract_state)
             if getattr(x, "sharding", None) is None]
    if paths:
        raise ValueError(f"abstract_state leaves {paths[:3]} have no sharding: give every "
                         "jax.ShapeDtypeStruct a sharding (see TrainStep.abstract_state)")


class Checkpointer:
    """Saves and restores (state, data position, config) as orbax steps under ``directory``.

    Args:
      directory: where the steps live (created if absent); local or any path orbax supports.
      keep: how many of the newest steps to keep.
      async_save: write in the background (the training loop goes on during the write).
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1: at least the newest checkpoint is kept")
        self.directory = _absolute(directory)
        self._mngr = _manager(self.directory, keep=keep, async_save=async_save)

    def save(self, step: int, state: Any, *, data_position: dict, config: dict,
             force: bool = False) -> bool:
        """Starts saving ``state`` as ``step``; returns whether a save was started.

        A step that already exists (e.g. the final save after a periodic one at the same step) is not
        written again, even with ``force``: the existing complete step is never replaced.
        ``force`` saves even when orbax's save policy would decline (e.g. a step older than the
        newest). ``data_position`` and ``config`` must be JSON-serialisable (tuples come back as lists).
        """
        step = int(step)
        meta = _meta(data_position, config)
        if step in self._mngr.all_steps():
            _log.info("checkpoint step %d already exists in %s: not saved again", step, self.directory)
            return False
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        saved = self._mngr.save(step, args=args, force=force)
        if not saved:
            _log.warning("orbax declined to save step %d in %s (newest is %s): pass force=True",
                         step, self.directory, self._mngr.latest_step())
        return bool(saved)

    def all_steps(self) -> list[int]:
        """Complete steps on disk (not checked for readability), oldest first."""
        self.wait()
        return sorted(self._mngr.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete step whose metadata reads (waits for saves in flight), or None."""
        self.wait()
        return next((step for step, _ in _readable_steps(self._mngr)), None)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, dict]:
        """Restores ``(state, data_position, config)`` placed as ``abstract_state``'s shardings say.

        Args:
          abstract_state: the state's pytree of ``jax.ShapeDtypeStruct`` with shardings.
          step: a step to restore, or None for the newest step that restores. Newer steps that fail
            are skipped with a warning and, once an older one has restored, moved to ``corrupt/``.

        Raises:
          FileNotFoundError: no checkpoint at all, or ``step`` is not among the saved steps.
          RuntimeError: no step restores (the error gives each step's reason).
        """
        _check_abstract(abstract_state)
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}: nothing to restore (start "
                                    "from scratch, or point the run at the workdir that has one)")
        if step is not None:
            if int(step) not in steps:
                raise FileNotFoundError(f"checkpoint step {step} is not in {self.directory}: "
                                        f"available steps are {steps}")
            return self._restore_step(abstract_state, int(step))
        return self._restore_newest(abstract_state, steps[::-1])

    def _restore_newest(self, abstract_state: Any, steps: list[int]) -> tuple[Any, dict, dict]:
        failed: dict[int, str] = {}
        for step in steps:
            try:
                out = self._restore_step(abstract_state, step)
            except Exception as e:  # noqa: BLE001 - any failure: try an older step
                failed[step] = _reason(e)
                _log.warning("checkpoint step %d in %s does not restore, trying an older one: %s",
                             step, self.directory, failed[step])
                continue
            self._move_aside(failed)
            return out
        reasons = "\n".join(f"  step {s}: {r}" for s, r in failed.items())
        raise RuntimeError(f"no checkpoint in {self.directory} restores; nothing was moved or deleted. "
                           "If the model, optimiser or EMA setting changed since they were saved, the "
                           f"abstract state no longer matches them; otherwise they are corrupt.\n{reasons}")

    def _restore_step(self, abstract_state: Any, step: int) -> tuple[Any, dict, dict]:
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                  meta=ocp.args.JsonRestore())
        out = self._mngr.restore(step, args=args)
        meta = out["meta"]
        return out["state"], meta["data_position"], meta["config"]

    def _move_aside(self, failed: dict[int, str]) -> None:
        """Moves failed steps to ``corrupt/<step>`` (process 0 moves; every process reloads)."""
        if not failed:
            return
        if jax.process_index() == 0:
            for step in failed:
                self._move_one(step)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("jaxgan_checkpoint_move_aside")
        self._mngr.reload()

    def _move_one(self, step: int) -> None:
        src = self.directory / str(step)
        if not src.exists():
            _log.warning("checkpoint step %d did not restore but %s is absent: nothing moved", step, src)
            return
        corrupt = self.directory / CORRUPT_DIR
        corrupt.mkdir(parents=True, exist_ok=True)
        dst, n = corrupt / str(step), 1
        while dst.exists():
            dst, n = corrupt / f"{step}.{n}", n + 1
        src.rename(dst)
        _log.warning("moved unrestorable checkpoint step %d to %s (kept for inspection; delete it "
                     "by hand when done)", step, dst)

    def wait(self) -> None:
        """Blocks until every save in flight is durable on disk (re-raises a failed save's error)."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        """Waits for saves in flight and releases orbax's threads."""
        self._mngr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
