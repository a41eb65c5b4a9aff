"""A run's workdir: one run at a time (an exclusive lock), and the experiment file it was made with.

**The lock.** ``<workdir>/.jaxgan.lock`` is locked with ``fcntl.flock`` (exclusive, non-blocking)
for the whole run and records the holder's pid, host and start time. A second ``jaxgan train`` on
the same workdir is refused with a message naming them. The kernel drops the lock when the holder
exits, even on ``kill -9``, so a stale file never blocks a run. In a multi-process run, process 0
holds the lock and tells the others whether it got it (``jaxgan.train``). ``flock`` is reliable on
local disks; on a network file system (NFS) it depends on the server.

**The experiment copy.** An experiment file is Python code. The workdir keeps a copy of the file
it was trained with (``<workdir>/experiment.py``) and ``config.json`` records its sha256
(``experiment_sha256``); ``jaxgan sample``/``eval`` build the run from that copy, and only after
checking its hash (:func:`load_recorded_experiment`). A workdir someone sent you is still their
code: read its ``experiment.py`` before running ``sample`` or ``eval`` on it.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import shutil
import socket
import types
from typing import Iterator

from jaxgan.errors import WorkdirError, WorkdirLocked

LOCK_NAME = ".jaxgan.lock"
EXPERIMENT_COPY = "experiment.py"
log = logging.getLogger("jaxgan")


def check_usable(workdir: pathlib.Path) -> None:
    """Raises WorkdirError when ``workdir`` exists but is not a directory."""
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"workdir {workdir} is a file, not a directory: choose another --workdir")
    for parent in workdir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise WorkdirError(f"workdir {workdir}: {parent} is a file, not a directory: choose another --workdir")
            break


class WorkdirLock:
    """An exclusive, non-blocking ``flock`` on ``<workdir>/.jaxgan.lock`` (creates the workdir).

    Example::

        with WorkdirLock(workdir):
            ...  # this process is the only jaxgan run in workdir
    """

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = pathlib.Path(workdir)
        self.path = self.workdir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WorkdirLock":
        """Takes the lock or raises WorkdirLocked naming the holder's pid and host."""
        check_usable(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkdirLocked(
                f"workdir {self.workdir} is in use by another jaxgan run (pid {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')}, since {holder.get('since', '?')}): wait for it to finish, "
                "stop it (Ctrl-C or kill PID saves a checkpoint), or use another --workdir") from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Releases the lock (the file stays: removing it could let two runs lock different files)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, OSError):
        return {}


def _only_scaffolding(workdir: pathlib.Path) -> bool:
    """Whether ``workdir`` holds nothing but empty folders and the lock file."""
    for path in workdir.rglob("*"):
        if path.is_file() and path != workdir / LOCK_NAME:
            return False
    return True


@contextlib.contextmanager
def removed_if_unused(workdir: pathlib.Path, *, enabled: bool = True) -> Iterator[None]:
    """Removes ``workdir`` again if the block fails and left nothing in it but empty folders.

    A run that fails before writing anything (bad data path, a model that does not build) leaves no
    half-made workdir behind. A workdir that existed before is never removed.
    """
    existed = workdir.exists()
    try:
        yield
    except BaseException:
        if enabled and not existed and workdir.is_dir() and _only_scaffolding(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def record_experiment(workdir: pathlib.Path, config: dict) -> pathlib.Path:
    """Copies the experiment file ``config['experiment']`` to ``<workdir>/experiment.py``.

    The copy must hash to ``config['experiment_sha256']`` (the file may not change between resolving
    the config and now). Written atomically (a temporary file renamed), so a crash never leaves half
    a copy.
    """
    from jaxgan.config import file_sha256

    source = pathlib.Path(config["experiment"])
    want = config.get("experiment_sha256")
    data = source.read_bytes()
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise WorkdirError(f"experiment file {source} changed while the run was starting (its sha256 no "
                           "longer matches the resolved config): run the command again")
    target = workdir / EXPERIMENT_COPY
    if target.is_file() and file_sha256(target) == hashlib.sha256(data).hexdigest():
        return target
    tmp = workdir / f".{EXPERIMENT_COPY}.tmp-{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def load_recorded_experiment(workdir: pathlib.Path, config: dict) -> tuple[types.ModuleType, pathlib.Path]:
    """The experiment module built from the workdir's copy, after checking the recorded sha256.

    Raises:
      WorkdirError: no copy, no recorded hash, or a copy whose hash differs from config.json's.
    """
    from jaxgan.config import file_sha256, load_experiment

    copy = workdir / EXPERIMENT_COPY
    want = config.get("experiment_sha256")
    if not copy.is_file() or not want:
        raise WorkdirError(f"{workdir} has no recorded experiment file ({EXPERIMENT_COPY} with its sha256 "
                           "in config.json; an older jaxgan did not keep one): pass --experiment FILE, a "
                           "file you trust, to build the run from")
    got = file_sha256(copy)
    if got != want:
        raise WorkdirError(f"{copy} has sha256 {got[:12]}... but config.json records {want[:12]}...: the "
                           "copy was changed after the run was made, so it is not run. Pass --experiment FILE, "
                           "a file you trust, to build the run from")
    return load_experiment(str(copy), module_name="jaxgan_recorded_experiment"), copy


def describe_experiment(path: pathlib.Path) -> str:
    """``path (sha256 abc..., same as packaged ring8)`` for the line saying which file is used."""
    from jaxgan.config import EXPERIMENTS_DIR, file_sha256

    digest = file_sha256(path)
    same = [p.stem for p in sorted(EXPERIMENTS_DIR.glob("*.py")) if p.resolve() != path.resolve()
            and file_sha256(p) == digest]
    note = f", identical to packaged {same[0]}" if same else ""
    return f"{path} (sha256 {digest[:12]}{note})"
