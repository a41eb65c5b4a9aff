"""Where a record came from: jaxgan's source revision and the time it was made.

``jaxgan compile --json`` and ``jaxgan bench --json`` put :func:`source` in every record, so that a
table built from saved records (``--table``) can say which code each row measured, and a row older
than the code it is shown beside can be told apart.
"""
from __future__ import annotations

import datetime
import pathlib
import subprocess

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source() -> dict:
    """``{'jaxgan', 'commit', 'dirty', 'utc'}``: the package version; the git commit of the checkout
    jaxgan is imported from and whether its tracked files differ from it (both None outside a git
    checkout, e.g. an installed wheel); the time now, UTC, to the second."""
    from jaxgan import __version__

    commit = _git("rev-parse", "HEAD") if (_ROOT / ".git").exists() else None
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"jaxgan": __version__, "commit": commit,
            "dirty": None if status is None else bool(status),
            "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def describe(src: dict | None) -> str | None:
    """A record's ``source`` in a table: ``'4971345'``, ``'4971345 with uncommitted changes'``, or
    None where it names no commit (records made before it existed, or outside a git checkout)."""
    if not (src or {}).get("commit"):
        return None
    return src["commit"][:7] + (" with uncommitted changes" if src.get("dirty") else "")
