"""Errors a user can fix, and the one-line messages the ``jaxgan`` command prints for them.

A :class:`UserError` (or a subclass) means "the input is wrong": a bad config value, a missing
file, a workdir another run holds. The command line (:func:`jaxgan.cli.main`) prints its message as
one line on stderr and exits with status 2; ``--debug`` or ``JAXGAN_TRACEBACK=1`` shows the
traceback instead. :func:`describe` turns the other failures a user can meet (an ``OSError`` such as
a full disk or a read-only file system, or a ``ValueError`` from a library) into such a line too.

Example::

    raise ConfigError("train.batch_size", 0, "must be an integer >= 1")
    # jaxgan train: error: train.batch_size = 0: must be an integer >= 1
"""
from __future__ import annotations

import errno
import os
from typing import Any


class UserError(Exception):
    """A failure caused by the user's input; its message says what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config field has a bad value. ``field`` is its dotted name (``train.batch_size``)."""

    def __init__(self, field: str, value: Any, problem: str):
        self.field, self.value = field, value
        super().__init__(f"{field} = {value!r}: {problem}")


class OverrideError(UserError, ValueError):
    """A ``--set KEY=VALUE`` names no field, or its value does not parse as the field's type."""


class ExperimentError(UserError):
    """An experiment file cannot be used (syntax error, no get_config/build, bad config type)."""


class WorkdirError(UserError):
    """A workdir cannot be used: it is a file, is locked by another run, or its files were altered."""


class WorkdirLocked(WorkdirError):
    """Another process holds the workdir's lock (its pid and host are in the message)."""


# OSError kinds a user can act on, with what to do. Others fall through to their own message.
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose a --workdir/--out on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose a --workdir/--out elsewhere",
    errno.EROFS: "the file system is read-only: choose a --workdir/--out on a writable disk",
    errno.EACCES: "permission denied: choose a path you can write, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a path you can write, or fix its permissions",
    errno.EISDIR: "it is a directory, but a file is needed here: give a file name",
    errno.ENOTDIR: "a part of the path is a file, but a directory is needed: choose another path",
    errno.EEXIST: "it already exists",
    errno.ENAMETOOLONG: "the file name is too long: choose a shorter path",
    errno.EIO: "an input/output error (a failing disk or network file system): retry, or check the disk",
    errno.EFBIG: "the file is larger than this file system or your file-size limit (ulimit -f) allows: "
                 "raise the limit or choose a --workdir/--out on another file system",
}


def _find_os_error(e: BaseException) -> OSError | None:
    """The OSError with an errno behind ``e`` (libraries often wrap them), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _OS_HINTS:
            return e
        e = e.__cause__ or e.__context__
    return None


def describe(e: BaseException) -> tuple[str, bool]:
    """``(one-line message, is_user_error)`` for a failure.

    UserErrors, OSErrors a user can act on (full disk, read-only file system, permission,
    is-a-directory, ...) and the ValueError/KeyError/RuntimeError family (whose messages in this
    code base say what is wrong) are user errors. Anything else is probably a bug: its message is
    still one line, prefixed by the exception's type, and the caller says how to see the traceback.
    """
    if isinstance(e, UserError):
        return _one_line(str(e)), True
    os_error = _find_os_error(e)
    if os_error is not None:
        where = os.fspath(os_error.filename) if os_error.filename else ""
        if os_error.filename2:
            where = f"{where} -> {os.fspath(os_error.filename2)}"
        reason = os_error.strerror or errno.errorcode.get(os_error.errno, "")
        return _one_line(f"{where + ': ' if where else ''}{_OS_HINTS[os_error.errno]} ({reason})"), True
    if isinstance(e, MemoryError):
        return ("out of memory: lower train.batch_size, eval.num_samples or the network sizes "
                f"({type(e).__name__}{': ' + str(e) if str(e) else ''})"), True
    if isinstance(e, KeyError) and e.args:
        return _one_line(str(e.args[0])), True
    if isinstance(e, (ValueError, RuntimeError, FloatingPointError, OSError, ImportError)):
        return _one_line(str(e) or type(e).__name__), True
    return _one_line(f"{type(e).__name__}: {e}"), False


def _one_line(text: str, limit: int = 2000) -> str:
    """Joins a multi-line message into one line (``; ``-separated) and bounds its length."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    line = "; ".join(parts)
    return line if len(line) <= limit else line[:limit] + "..."
