"""Checkpoints: the GAN state, the data position and the config, saved together with orbax.

Layout on disk (``directory`` is usually ``<workdir>/checkpoints``)::

    checkpoints/
      <step>/                 one orbax step, written to a temporary name and renamed when complete
        state/                the GANState arrays (orbax StandardSave: OCDBT/zarr, one writer per array
                              shard, so every process of a multi-host run writes its own shards)
        meta/metadata         JSON {"data_position": {...}, "config": {...}, "digest": {...}} (process 0)
      <step>.orbax-checkpoint-tmp-*/   a save in flight or cut off: never listed, never restored
      corrupt/<step>/         a step that failed to restore while an older one restored: moved aside
                              for inspection, never deleted, no longer counted by keep-N

Saves are asynchronous: :meth:`Checkpointer.save` returns once the arrays are copied off the
accelerator and the files are written in the background; :meth:`Checkpointer.wait` blocks until they
are durable. Only the newest ``keep`` steps are kept.

Integrity: orbax checks a step's structure, not its values (its data files have no checksum: flipped
bytes restore as other numbers). Each save therefore records a 64-bit digest of every array
(:func:`state_digest`, independent of the sharding) and a sha256 of the data position and config; a
restore recomputes them, and a step that does not match is corrupt like one that does not read. A step
saved before digests restores with a log line saying its values are unverified.

Identity: the config saved with each step (with the experiment file's name and sha256) says which run
it belongs to; ``restore(check=...)`` is given it before any array is read, so that callers refuse
another run's checkpoint (:func:`run_differences`) instead of restoring it.

Restoring takes an abstract state (``jax.ShapeDtypeStruct`` leaves with shardings, e.g.
:meth:`jaxgan.step.TrainStep.abstract_state`): the target shardings decide placement, so a run saved
on 8 devices resumes on 1 or 2. Without an explicit step, the newest step that restores is used; a
newer step that fails twice is skipped with a warning and, once an older one restored, moved to
``corrupt/``. A failure of the storage itself (EIO, ENOSPC, permission, a network file system timing
out: :func:`is_io_error`) is not a corrupt checkpoint: it raises :class:`CheckpointIOError` and nothing
is moved. With several processes, all try each step and agree on the result before going on, so they
restore the same step. When no step restores (often: the model or optimiser changed since the save)
nothing is moved and the error lists why.

Example::

    ckpt = Checkpointer(workdir / "checkpoints", keep=3)
    if ckpt.latest_step() is not None:
        state, data_position, config = ckpt.restore(train_step.abstract_state(example))
    ...
    ckpt.save(int(state.step), state, data_position=it.position(), config=config)
    ckpt.wait()
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import sys
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
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
    """The JSON saved beside the state (the digest is added to it); fails now, with a clear message,
    rather than in a thread."""
    try:
        return json.loads(json.dumps({"data_position": data_position, "config": config},
                                     default=_to_json))
    except (TypeError, ValueError) as e:
        raise TypeError(f"data_position and config must be JSON-serialisable (dicts of str, numbers, "
                        f"bools, lists and None): {e}") from e


# ---------------------------------------------------------------- the state's digest
DIGEST_ALGORITHM = "fmix32-sum2/v1"
_GOLDEN, _M1, _M2 = 0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35  # 2**32 / golden ratio; MurmurHash3's constants


class CheckpointCorrupt(ValueError):
    """A step's arrays restored but do not hash to the digest saved with them (silent corruption)."""


def _fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's finaliser on uint32 (Appleby 2011): a bijection that mixes every input bit into
    every output bit (uint32 products wrap, as the hash wants)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_M1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_M2)
    return h ^ (h >> 16)


def _words(x: jax.Array) -> jax.Array:
    """The bits of ``x`` as uint32 words, same shape (8-byte types gain a trailing axis of 2)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    size = x.dtype.itemsize
    if size == 4:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)
    if size in (1, 2):
        return jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * size}")).astype(jnp.uint32)
    if size == 8:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)
    raise TypeError(f"cannot digest arrays of dtype {x.dtype}")


def _array_digest(x: jax.Array) -> jax.Array:
    """uint32[2]: ``sum_i h_i`` and ``sum_i (2i + 1) h_i`` with ``h_i = fmix32(w_i + i * golden)``, over
    the words ``w_i`` of ``x`` in row-major order (index ``i``).

    Addition mod 2**32 is associative and commutative, so the value is the same however the array is
    sharded and whatever order the reduction runs in: a state saved on 8 devices verifies on 1. Since
    ``w -> fmix32(w + c)`` is a bijection and the weights ``2i + 1`` are odd (invertible mod 2**32), a
    change to any one word changes both sums; a moved word changes the terms of two places. One mix
    per word keeps it memory-bound (measured on CPU: within 1.3x of a plain sum of the words).
    """
    w = _words(x).ravel()
    index = jax.lax.iota(jnp.uint32, w.size)  # wraps past 2**32 words: still a position-dependent hash
    h = _fmix32(w + index * jnp.uint32(_GOLDEN))
    return jnp.stack([jnp.sum(h, dtype=jnp.uint32),
                      jnp.sum(h * (index * jnp.uint32(2) + jnp.uint32(1)), dtype=jnp.uint32)])


def _array_digests(leaves: list) -> jax.Array:
    """uint32[n, 2]: :func:`_array_digest` of each of ``leaves``."""
    return jnp.stack([_array_digest(x) for x in leaves])


def _digest_fn(leaves: list) -> Any:
    """:func:`_array_digests` jitted, its result replicated on the leaves' mesh so that every process
    of a multi-process run reads all of it (jax caches the compiled function across calls)."""
    shardings = [getattr(x, "sharding", None) for x in leaves]
    mesh = next((s.mesh for s in shardings if isinstance(s, jax.sharding.NamedSharding)), None)
    out = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.jit(_array_digests, out_shardings=out)


# Arrays up to this many words (1 MiB) are hashed on the host when their data is there to read: a
# jitted reduction costs a compilation per array (measured on a 2-core CPU at load ~20: 14.6 s for
# StyleGAN2-MNIST's 300 arrays, 2.6 s for ring8's 62), where hashing them all on the host with numpy
# took 36 ms (BENCHMARKS.md, "Checkpoint digest"). Larger arrays are reduced where they live.
HOST_DIGEST_WORDS = 1 << 18


def _np_fmix32(h: np.ndarray) -> np.ndarray:
    """:func:`_fmix32` in numpy (uint32 arrays wrap as XLA's do)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(_M1)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(_M2)
    return h ^ (h >> np.uint32(16))


def _host_digests(arrays: list[np.ndarray]) -> list[tuple[int, int]]:
    """:func:`_array_digest` of each host array of at most 4-byte words: the same two sums, in numpy,
    for all of them at once (one pass over their words laid end to end, sums per array by reduceat)."""
    words = [(x.astype(np.uint32) if x.dtype == np.bool_ else
              x.view(f"uint{8 * x.dtype.itemsize}").astype(np.uint32)).ravel()
             for x in map(np.ascontiguousarray, arrays)]
    sizes = np.array([w.size for w in words], np.int64)
    starts = np.cumsum(sizes) - sizes
    flat = np.concatenate(words) if words else np.zeros(0, np.uint32)
    index = (np.arange(flat.size, dtype=np.int64) - np.repeat(starts, sizes)).astype(np.uint32)
    h = _np_fmix32(flat + index * np.uint32(_GOLDEN))
    weighted = h * (index * np.uint32(2) + np.uint32(1))
    sums = np.zeros((len(words), 2), np.uint32)  # an empty array's sums are 0
    full = sizes > 0
    if full.any():
        sums[full, 0] = np.add.reduceat(h, starts[full], dtype=np.uint32)
        sums[full, 1] = np.add.reduceat(weighted, starts[full], dtype=np.uint32)
    return [(int(a), int(b)) for a, b in sums]


def _on_host(x: Any) -> bool:
    """Whether ``x`` is hashed on the host: small, of at most 4-byte words, and readable here in full
    (on one process, or replicated; a sharded array of a multi-process run is reduced on device)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) or x.dtype.itemsize > 4:
        return False
    if x.size > HOST_DIGEST_WORDS:
        return False
    return not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated


def state_digest(state: Any) -> dict[str, str]:
    """``{path: 16 hex digits}``: a 64-bit digest of every array in ``state`` (:func:`_array_digest`).

    Large arrays never leave the accelerator: each is reduced where it lives, one jitted call for
    all of them, and only 8 bytes per array reach the host. Arrays of at most
    :data:`HOST_DIGEST_WORDS` words are copied to the host and hashed there with the same function
    (no compilation per array). Either way every process of a multi-process run computes the same
    global values (the reduction is collective; a small array is read whole where it is replicated).
    Not cryptographic: it detects corruption (flipped, zeroed, moved or stale bytes), not tampering.

    Args:
      state: a pytree of ``jax.Array`` or numpy arrays.

    Returns:
      One entry per leaf, keyed by ``jax.tree_util.keystr`` of its path.
    """
    items = jax.tree_util.tree_leaves_with_path(state)
    digests: dict[str, tuple[int, int]] = {}
    host = [(jax.tree_util.keystr(p), x) for p, x in items if _on_host(x)]
    device = [(jax.tree_util.keystr(p), x) for p, x in items if not _on_host(x)]
    if host:  # one transfer for all; a replicated array of a multi-process run: its local copy
        local = [x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable else x
                 for _, x in host]
        copies = jax.device_get(local)
        digests.update(zip((k for k, _ in host), _host_digests([np.asarray(c) for c in copies])))
    if device:
        leaves = [x for _, x in device]
        values = np.asarray(jax.device_get(_digest_fn(leaves)(leaves)))
        digests.update((k, (int(a), int(b))) for (k, _), (a, b) in zip(device, values))
    return {jax.tree_util.keystr(p): "%08x%08x" % digests[jax.tree_util.keystr(p)] for p, _ in items}


def _meta_sha256(meta: dict) -> str:
    """The sha256 of the meta's data position and config (canonical JSON): they are checked too."""
    text = json.dumps({"data_position": meta["data_position"], "config": meta["config"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _verify_meta(meta: dict, step: int) -> None:
    """Raises :class:`CheckpointCorrupt` when the meta's data position or config changed after the save."""
    saved = (meta.get("digest") or {}).get("meta_sha256")
    if saved is not None and saved != _meta_sha256(meta):
        raise CheckpointCorrupt(f"step {step}'s data position or config do not match the digest saved with "
                                "them: the files were damaged after the save")


def _verify_digest(state: Any, saved: dict | None, step: int, directory: epath.Path) -> None:
    """Raises :class:`CheckpointCorrupt` when ``state`` does not hash to the ``saved`` digest; a step
    saved without one (by a jaxgan before digests) restores with a log line saying it is unverified."""
    if saved is None:
        _log.info("checkpoint step %d in %s has no digest (saved by an older jaxgan): its array values "
                  "are not verified", step, directory)
        return
    if saved.get("algorithm") != DIGEST_ALGORITHM:  # e.g. a newer jaxgan's: the step may well be good
        _log.warning("checkpoint step %d in %s has a digest of another kind (%r; this jaxgan computes %r): "
                     "its array values are not verified", step, directory, saved.get("algorithm"),
                     DIGEST_ALGORITHM)
        return
    want, got = saved.get("arrays") or {}, state_digest(state)
    bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if bad:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise CheckpointCorrupt(f"step {step}'s array values do not match the digest saved with them "
                                f"({len(bad)} of {len(want)} arrays differ: {shown}): the files were "
                                "damaged after the save")


class _DropReadOnlyNotice(logging.Filter):
    """Drops orbax's "Given directory is read only" warning: jaxgan opens managers read-only on purpose
    (to read a config, or to sample from a workdir), and the directory is not read-only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Given directory is read only")


_READ_ONLY_NOTICE = _DropReadOnlyNotice()


def _manager(directory: epath.Path, *, keep: int | None, async_save: bool,
             read_only: bool = False) -> ocp.CheckpointManager:
    if read_only:
        logging.getLogger("absl").addFilter(_READ_ONLY_NOTICE)  # idempotent: a set of filters
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
    _verify_meta(meta, step)
    if mngr.item_metadata(step)["state"] is None:
        raise ValueError("the state's tree metadata is missing")
    return meta


def _readable_steps(mngr: ocp.CheckpointManager):
    """Yields ``(step, meta)`` for complete steps whose metadata reads, newest first; warns on others."""
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            meta = _read_meta(mngr, step)
        except Exception as e:  # noqa: BLE001 - a bad step is skipped; a failing disk is not hidden
            if is_io_error(e):
                raise CheckpointIOError(f"reading checkpoint step {step} in {mngr.directory} failed with an "
                                        f"I/O error ({_reason(e)}): fix the storage and run again") from e
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


def run_differences(saved: dict, config: dict, *, may_differ=()) -> list[str]:
    """How the run that saved a checkpoint (its config ``saved``) differs from the run ``config``.

    A checkpoint carries its run's identity: the resolved config it was saved with, which includes the
    experiment file's path and sha256. Two configs are the same run when every top-level field is
    equal except ``may_differ`` (fields that can change on resume: logging, checkpointing, evaluation),
    ``train.total_kimg`` (a run may be extended), ``experiment``, compared by file name (a moved
    checkout is the same run), and ``experiment_sha256``, which callers compare with the file that
    builds the model (an edited experiment may resume).

    Returns:
      ``"field: saved X, now Y"`` for each difference (empty: the same run).
    """
    def same(key):
        a, b = saved.get(key), config.get(key)
        if key == "experiment":
            return os.path.basename(str(a or "")) == os.path.basename(str(b or ""))
        if key == "train" and isinstance(a, dict) and isinstance(b, dict):
            return {k: v for k, v in a.items() if k != "total_kimg"} == {k: v for k, v in b.items()
                                                                           if k != "total_kimg"}
        return a == b

    skip = set(may_differ) | {"experiment_sha256"}
    return [f"{k}: saved {saved.get(k)!r}, now {config.get(k)!r}" for k in sorted(set(saved) | set(config))
            if k not in skip and not same(k)]


# Python's "coroutine ... was never awaited" RuntimeWarning for orbax's per-shard coroutines: when
# one array of a restore fails, reads of the others can be left unstarted (the arrays, or the
# metadata files of the processes that wrote them), and when a background save fails (a full disk),
# writes of the others can be (races inside orbax); the warning comes when they are collected, at
# random, up to after the command's last line.
_ORBAX_UNAWAITED = (r"coroutine '(_read_array_index_and_device_put|Store\._get_array_metadatas|"
                    r"async_serialize_from_host\.<locals>\.write_fragment)' was never awaited")
# tensorstore's failures reach Python as ValueErrors raised in C++ (no Python traceback) whose text
# starts with an absl status code, e.g. "OUT_OF_RANGE: Error writing ...".
_TENSORSTORE_STATUS = re.compile(r"[A-Z][A-Z_]+: ")


def _unawaited_filter_removed() -> None:
    """Removes the warnings filter that ``quiet_orbax_failures`` adds (adding it again is a no-op:
    ``filterwarnings`` replaces an equal filter)."""
    kept = [f for f in warnings.filters
            if not (f[0] == "ignore" and getattr(f[1], "pattern", None) == _ORBAX_UNAWAITED)]
    if len(kept) != len(warnings.filters):
        warnings.filters[:] = kept
        getattr(warnings, "_filters_mutated", lambda: None)()  # what filterwarnings calls after an edit


def _is_failed_read_noise(unraisable) -> bool:
    """Whether an unraisable-exception report is the residue of an orbax read that failed: a late
    tensorstore callback finding orbax's event loop closed, or one of orbax's read coroutines that
    raised and was never awaited (collected during the restore, or at exit)."""
    exc = getattr(unraisable, "exc_value", None)
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return True
    code = getattr(getattr(unraisable, "object", None), "cr_code", None)
    return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


class _OrbaxErrorRecords(logging.Filter):
    """Drops orbax's error records (it logs through absl) and the tracebacks of its other records.

    Every orbax failure that matters is raised again in jaxgan's own thread (a failed background save
    at the next ``wait``, a failed read by ``restore``), where the command line turns it into its one
    line; orbax's threads would otherwise log the same failure with tracebacks, also after that line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return False
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


class _OrbaxAsyncioResidue(logging.Filter):
    """Drops asyncio's "exception was never retrieved" records of futures that failed inside orbax
    (left behind by a failed read or a failed background save, reported when collected, often at
    exit): those whose traceback passes through orbax, and those holding a tensorstore failure, which
    has no Python traceback to tell where it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        tb = exc.__traceback__
        if tb is None:
            return not (isinstance(exc, ValueError) and "never retrieved" in record.getMessage()
                        and _TENSORSTORE_STATUS.match(str(exc)))
        while tb is not None:
            if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
                return False
            tb = tb.tb_next
        return True


_ORBAX_ERROR_RECORDS, _ORBAX_ASYNCIO_RESIDUE = _OrbaxErrorRecords(), _OrbaxAsyncioResidue()


def quiet_orbax_failures(quiet: bool = True) -> None:
    """Keeps orbax's reports of a failure that jaxgan raises itself off stderr (``quiet=False`` undoes it).

    When a checkpoint read fails (a corrupt step, or arrays that no longer fit the model), orbax's
    read coroutines and tensorstore's futures are left behind, and Python reports each as an
    unraisable exception, an asyncio "exception was never retrieved" record or a "coroutine ... was
    never awaited" warning when they are collected: dozens of tracebacks, up to after the command's
    last line. A failed background save (a full disk) is logged by orbax's threads with tracebacks.
    Quiet, those reports are dropped (every other unraisable one goes to the previous hook, every
    other record is logged, every other warning is shown) and orbax's error records are dropped (see
    :class:`_OrbaxErrorRecords`); jaxgan's error says what failed. For command-line entry points
    (``--debug`` shows everything); idempotent.
    """
    current = sys.unraisablehook
    installed = getattr(current, "_jaxgan_previous", None)
    absl, asyncio_log = logging.getLogger("absl"), logging.getLogger("asyncio")
    if not quiet:
        _unawaited_filter_removed()
        if installed is not None:
            sys.unraisablehook = installed
        absl.removeFilter(_ORBAX_ERROR_RECORDS)
        asyncio_log.removeFilter(_ORBAX_ASYNCIO_RESIDUE)
        return
    absl.addFilter(_ORBAX_ERROR_RECORDS)  # idempotent: a logger's filters are a set
    asyncio_log.addFilter(_ORBAX_ASYNCIO_RESIDUE)
    warnings.filterwarnings("ignore", message=_ORBAX_UNAWAITED, category=RuntimeWarning)
    if installed is not None:
        return

    def hook(unraisable):
        if not _is_failed_read_noise(unraisable):
            current(unraisable)

    hook._jaxgan_previous = current  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _check_abstract(abstract_state: Any) -> None:
    paths = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(abstract_state)
             if getattr(x, "sharding", None) is None]
    if paths:
        raise ValueError(f"abstract_state leaves {paths[:3]} have no sharding: give every "
                         "jax.ShapeDtypeStruct a sharding (see TrainStep.abstract_state)")


_RESTORED, _CORRUPT, _IO_ERROR = 0, 1, 2

# errno values that say "the storage failed", not "the files are bad".
_IO_ERRNOS = {errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOMEM,
              errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET, errno.ENOLINK,
              errno.EFBIG}
# How tensorstore/orbax spell the same (their errors are ValueErrors wrapping status text).
_IO_MARKERS = ("Input/output error", "No space left", "Permission denied", "Disk quota exceeded",
               "Read-only file system", "Stale file handle", "UNAVAILABLE", "DEADLINE_EXCEEDED",
               "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "Connection reset", "File too large")


class CheckpointIOError(RuntimeError):
    """Reading a checkpoint failed because of the storage (EIO, ENOSPC, permission, ...), not its files."""


def is_io_error(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it wraps) is a storage failure rather than a bad checkpoint."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _IO_ERRNOS:
            return True
        if isinstance(e, (PermissionError, TimeoutError, MemoryError)):
            return True
        if any(marker in str(e) for marker in _IO_MARKERS):
            return True
        e = e.__cause__ or e.__context__
    return False


# tensorstore's status text -> the errno it stands for (its errors are ValueErrors without one).
_MARKER_ERRNOS = (("No space left", errno.ENOSPC), ("RESOURCE_EXHAUSTED", errno.ENOSPC),
                  ("Disk quota exceeded", errno.EDQUOT), ("Read-only file system", errno.EROFS),
                  ("Permission denied", errno.EACCES), ("PERMISSION_DENIED", errno.EACCES),
                  ("Input/output error", errno.EIO), ("File too large", errno.EFBIG))


def _as_os_error(e: Exception, directory: epath.Path) -> Exception:
    """``e`` as an ``OSError`` with an errno when it is a storage failure that tensorstore reported as
    text (so the command line says "the disk is full" rather than a tensorstore spec); else ``e``."""
    if isinstance(e, OSError) or not is_io_error(e):
        return e
    text = str(e)
    code = next((n for marker, n in _MARKER_ERRNOS if marker in text), None)
    if code is None:
        return e
    return OSError(code, os.strerror(code), str(directory))


def _agree(outcome: int) -> int:
    """The worst outcome over all processes (single process: ``outcome`` itself)."""
    if jax.process_count() == 1:
        return outcome
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.asarray(outcome, np.int32))))


class Checkpointer:
    """Saves and restores (state, data position, config) as orbax steps under ``directory``.

    Args:
      directory: where the steps live (created if absent); local or any path orbax supports.
      keep: how many of the newest steps to keep.
      async_save: write in the background (the training loop goes on during the write).
      read_only: only restore (nothing is created, saved or moved aside): for sample and eval.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1: at least the newest checkpoint is kept")
        self.directory = _absolute(directory)
        self.read_only = read_only
        self._mngr = _manager(self.directory, keep=keep, async_save=async_save, read_only=read_only)

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
            _log.debug("checkpoint step %d already exists in %s: not saved again", step, self.directory)
            return False
        meta["digest"] = {"algorithm": DIGEST_ALGORITHM, "arrays": state_digest(state),
                          "meta_sha256": _meta_sha256(meta)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        try:
            saved = self._mngr.save(step, args=args, force=force)
        except Exception as e:  # noqa: BLE001 - e.g. the previous background save failed: as in wait()
            raise _as_os_error(e, self.directory) from e
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

    def set_aside_unreadable(self) -> list[int]:
        """Moves complete steps whose metadata does not read to ``corrupt/`` (process 0 moves).

        Called when a run starts afresh although steps exist: left in place, such a step would block
        this run's save of the same step number. Storage failures raise instead (nothing moved).
        """
        if self.read_only:
            return []
        readable = {step for step, _ in _readable_steps(self._mngr)}
        bad = [s for s in self.all_steps() if s not in readable]
        self._move_aside({s: "unreadable" for s in bad})
        return bad

    def restore(self, abstract_state: Any, step: int | None = None, *,
                check: Callable[[dict, int], None] | None = None) -> tuple[Any, dict, dict]:
        """Restores ``(state, data_position, config)`` placed as ``abstract_state``'s shardings say.

        Args:
          abstract_state: the state's pytree of ``jax.ShapeDtypeStruct`` with shardings.
          step: a step to restore, or None for the newest step that restores. Newer steps that fail
            are skipped with a warning and, once an older one has restored, moved to ``corrupt/``.
          check: called as ``check(saved_config, step)`` before a step's arrays are read; what it
            raises (e.g. "this checkpoint belongs to another run", see :func:`run_differences`) ends
            the restore as is: such a step is not corrupt, and nothing is moved.

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
            self._check(int(step), check, [])
            return self._restore_step(abstract_state, int(step))
        return self._restore_newest(abstract_state, steps[::-1], check)

    def _check(self, step: int, check: Callable[[dict, int], None] | None, passed: list[dict]) -> None:
        """Runs ``check`` on the step's saved config unless it is among the configs that ``passed``
        (appended to; a step whose meta does not read is left to the restore, which counts it as
        corrupt; a storage failure raises CheckpointIOError)."""
        if check is None:
            return
        try:
            meta = _read_meta(self._mngr, step)
        except Exception as e:  # noqa: BLE001 - classified: storage failure, or a bad step for later
            if is_io_error(e):
                raise CheckpointIOError(f"reading checkpoint step {step} in {self.directory} failed with an "
                                        f"I/O error ({_reason(e)}): fix the storage and run again") from e
            return
        if meta["config"] not in passed:
            check(meta["config"], step)
            passed.append(meta["config"])

    def _restore_newest(self, abstract_state: Any, steps: list[int],
                        check: Callable[[dict, int], None] | None = None) -> tuple[Any, dict, dict]:
        """Tries steps newest first. Every process must restore the same step: after each attempt the
        processes agree (one all-gather) whether all of them succeeded, and an I/O error anywhere
        stops all of them without moving anything."""
        failed: dict[int, str] = {}
        passed: list[dict] = []  # configs already checked: each is checked once
        for step in steps:
            self._check(step, check, passed)
            out, outcome, reason = self._attempt(abstract_state, step)
            outcome = _agree(outcome)
            if outcome == _IO_ERROR:
                raise CheckpointIOError(
                    f"reading checkpoint step {step} in {self.directory} failed with an I/O error "
                    f"({reason or 'on another process'}); nothing was moved or deleted. Fix the storage "
                    "(disk full, permissions, a flaky network file system) and run again")
            if outcome == _RESTORED:
                # said once an older step restored (when none does, the error lists them instead)
                for failed_step, failed_reason in failed.items():
                    _log.warning("checkpoint step %d in %s does not restore, restored step %d instead: %s",
                                 failed_step, self.directory, step, failed_reason)
                self._move_aside(failed)
                return out
            failed[step] = reason or "did not restore on another process"
            _log.debug("checkpoint step %d in %s does not restore, trying an older one: %s",
                       step, self.directory, failed[step])
        reasons = "\n".join(f"  step {s}: {r}" for s, r in failed.items())
        raise RuntimeError(f"no checkpoint in {self.directory} restores; nothing was moved or deleted. "
                           "If the model, optimiser or EMA setting changed since they were saved, the "
                           f"abstract state no longer matches them; otherwise they are corrupt.\n{reasons}")

    def _attempt(self, abstract_state: Any, step: int) -> tuple[Any, int, str]:
        """``(restored or None, outcome, reason)``. A failure that is not an I/O error is retried once:
        only a step that fails twice the same way counts as corrupt (a passing glitch does not)."""
        reason = ""
        for attempt in range(2):
            try:
                return self._restore_step(abstract_state, step), _RESTORED, ""
            except Exception as e:  # noqa: BLE001 - classified below
                reason = _reason(e)
                if is_io_error(e):
                    return None, _IO_ERROR, reason
                if attempt == 0:
                    _log.debug("checkpoint step %d did not restore (%s); trying it once more", step, reason)
        return None, _CORRUPT, reason

    def _restore_step(self, abstract_state: Any, step: int) -> tuple[Any, dict, dict]:
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                  meta=ocp.args.JsonRestore())
        out = self._mngr.restore(step, args=args)
        meta = out["meta"]
        _verify_meta(meta, step)
        _verify_digest(out["state"], meta.get("digest"), step, self.directory)
        return out["state"], meta["data_position"], meta["config"]

    def _move_aside(self, failed: dict[int, str]) -> None:
        """Moves failed steps to ``corrupt/<step>`` (process 0 moves; every process reloads)."""
        if not failed or self.read_only:
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
        """Blocks until every save in flight is durable on disk (re-raises a failed save's error; a
        storage failure as an ``OSError`` with its errno, e.g. ENOSPC for a full disk)."""
        try:
            self._mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - re-raised, as an OSError where the storage failed
            raise _as_os_error(e, self.directory) from e

    def close(self) -> None:
        """Waits for saves in flight and releases orbax's threads."""
        self._mngr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
