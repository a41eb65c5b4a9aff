"""A run's workdir: one run at a time (an exclusive lock), and the experiment file it was made with.

**The lock.** ``<workdir>/.jaxgan.lock`` is locked with ``fcntl.flock`` (exclusive, non-blocking)
for the whole run and records the holder's pid, host and start time. A second ``jaxgan train`` on
the same workdir is refused with a message naming them. The kernel drops the lock when the holder
exits, even on ``kill -9``, so a stale file never blocks a run. In a multi-process run, process 0
holds the lock and tells the others whether it got it (``jaxgan.train``). ``flock`` is reliable on
local disks; on a network file system (NFS) it depends on the server. Creating the workdir and
taking its lock is one sequence that is safe when runs start on the same fresh workdir at the same
moment; a run that fails (or is stopped) before writing anything removes the workdir only if it made
it and holds its lock (:class:`WorkdirLock`).

**The experiment copy.** An experiment file is Python code. The workdir keeps a copy of the file
it was trained with (``<workdir>/experiment.py``) and ``config.json`` records its sha256
(``experiment_sha256``); ``jaxgan sample``/``eval`` build the run from that copy, and only after
checking its hash (:func:`load_recorded_experiment`). A workdir someone sent you is still their
code: read its ``experiment.py`` before running ``sample`` or ``eval`` on it.
"""
from __future__ import annotations

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
    """An exclusive, non-blocking ``flock`` on ``<workdir>/.jaxgan.lock``, creating the workdir if needed.

    Creating the workdir and taking the lock is one sequence that is safe against other runs doing the
    same at the same moment: the process whose ``mkdir`` made the folder is its creator
    (:attr:`created`), and after ``flock`` succeeds the locked file is checked to still be the file at
    ``<workdir>/.jaxgan.lock`` (a failed run may have moved its empty workdir away in between; then the
    sequence starts again). Only the holder of the lock that also created the workdir may remove it
    (:meth:`remove_if_unused`), and it never deletes a folder in place: it renames it away first, so no
    other run can ever find its lock file gone. A run refused the lock never removes anything.

    Example::

        with WorkdirLock(workdir):
            ...  # this process is the only jaxgan run in workdir
    """

    ATTEMPTS = 20  # tries of the mkdir-open-lock sequence (each retry means another run removed the folder)

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = pathlib.Path(workdir)
        self.path = self.workdir / LOCK_NAME
        self.created = False  # whether this lock's acquire made the workdir folder itself
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WorkdirLock":
        """Takes the lock or raises WorkdirLocked naming the holder's pid and host."""
        for _ in range(self.ATTEMPTS):
            check_usable(self.workdir)
            created = _make_dir(self.workdir)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue  # the folder was removed after our mkdir (its creator's run failed): again
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
            if not _is_file_at(fd, self.path):
                os.close(fd)  # we locked a lock file that was moved away with its folder: again
                continue
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": datetime.datetime.now().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self._fd, self.created = fd, created
            return self
        raise WorkdirError(f"workdir {self.workdir} was removed {self.ATTEMPTS} times while this run tried to "
                           "lock it: another program keeps deleting it; choose another --workdir")

    def remove_if_unused(self) -> bool:
        """Removes the workdir if this lock created it, still holds it, and it holds nothing but empty
        folders and the lock file (a run that failed or stopped before writing anything). Returns
        whether it was removed.

        The folder is first renamed to a hidden name beside it, then deleted: a run that opened its
        lock file meanwhile finds the file moved away and starts over on a new folder
        (:meth:`acquire`); the folder's name never leads to a lock file that is about to vanish.
        """
        doomed = self.workdir.with_name(f".{self.workdir.name}.jaxgan-removed-{os.getpid()}-{id(self):x}")
        try:  # never raises: it runs while another error may be on its way out
            if not (self.held and self.created and _is_file_at(self._fd, self.path)
                    and _only_scaffolding(self.workdir)):
                return False
            os.rename(self.workdir, doomed)
        except OSError as e:
            log.debug("could not remove the unused workdir %s: %s", self.workdir, e)
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True

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


def _make_dir(workdir: pathlib.Path) -> bool:
    """Creates ``workdir`` (and its parents); True when this call made ``workdir`` itself."""
    workdir.parent.mkdir(parents=True, exist_ok=True)
    try:
        workdir.mkdir()
    except FileExistsError:
        if not workdir.is_dir():
            raise WorkdirError(f"workdir {workdir} is a file, not a directory: choose another --workdir") from None
        return False
    return True


def _is_file_at(fd: int, path: pathlib.Path) -> bool:
    """Whether the open file ``fd`` is (still) the file named ``path``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


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
