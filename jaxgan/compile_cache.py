"""JAX's persistent compilation cache, on by default for ``jaxgan train`` and ``jaxgan bench``.

A second run of the same experiment (a resume, a rerun with another seed, a benchmark sweep) loads
the compiled train step from disk instead of compiling it again. The cache key is JAX's: the
lowered program, the compile options, the backend and the jax/jaxlib versions, so a changed config or
code never reuses a stale executable.

Directory: ``--compile-cache DIR``, else ``$JAXGAN_COMPILE_CACHE``, else ``<cache dir>/xla`` (the cache
dir is ``$JAXGAN_CACHE`` or ``~/.cache/jaxgan``). ``--no-compile-cache`` or
``JAXGAN_COMPILE_CACHE=off`` turns it off. On a multi-host run point it at a host-local folder, or
at a shared one that every host may write.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pathlib

log = logging.getLogger("jaxgan")

OFF_VALUES = {"off", "0", "false", "no", "none", ""}
# the jax options that enable() and disable() set
OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")


def default_directory() -> pathlib.Path | None:
    """The cache folder when none is given on the command line (None: turned off by the environment)."""
    env = os.environ.get("JAXGAN_COMPILE_CACHE")
    if env is not None:
        return None if env.strip().lower() in OFF_VALUES else pathlib.Path(env).expanduser()
    base = pathlib.Path(os.environ.get("JAXGAN_CACHE", pathlib.Path.home() / ".cache" / "jaxgan"))
    return base / "xla"


def enable(directory: str | os.PathLike | None = None, *, min_compile_time_s: float = 0.5) -> pathlib.Path | None:
    """Turns on JAX's persistent compilation cache in ``directory`` (default :func:`default_directory`).

    Args:
      directory: the cache folder (created if missing); None for the default.
      min_compile_time_s: programs that compile faster than this are not written (JAX's default is
        1 s; the small steps of toy experiments compile in about a second and are worth keeping).

    Returns:
      The folder in use, or None when the cache stays off (turned off by the environment, or the
      folder cannot be created: a warning says why, and the run goes on without a cache).
    """
    import jax

    path = pathlib.Path(directory).expanduser() if directory is not None else default_directory()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("compilation cache off: cannot create %s (%s); pass --compile-cache DIR or "
                    "--no-compile-cache", path, e.strerror or e)
        return None
    reset()  # jax opens its cache folder once per process: make it open this one
    jax.config.update("jax_compilation_cache_dir", str(path.resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def disable() -> None:
    """Turns the persistent cache off for this process (e.g. for a cold compile-time measurement)."""
    import jax

    reset()
    jax.config.update("jax_compilation_cache_dir", None)


def reset() -> None:
    """Forgets the cache folder jax opened (it keeps the first one for the process's life, even
    when ``jax_compilation_cache_dir`` changes), so that the next compilation opens the configured one.
    A jax without ``compilation_cache.reset_cache`` (documented since 0.4) is left as it is."""
    from jax.experimental.compilation_cache import compilation_cache

    reset_cache = getattr(compilation_cache, "reset_cache", None)
    if reset_cache is None:
        log.debug("this jax has no compilation_cache.reset_cache: the cache folder it opened stays")
        return
    reset_cache()


@contextlib.contextmanager
def restoring():
    """The process's cache settings (:data:`OPTIONS`) as they were before the ``with`` block, put back
    after it, and the folder jax opened inside it forgotten (so that it may be deleted)."""
    import jax

    before = {name: getattr(jax.config, name) for name in OPTIONS}
    try:
        yield
    finally:
        reset()
        for name, value in before.items():
            jax.config.update(name, value)
