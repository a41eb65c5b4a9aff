"""The persistent compilation cache: a second process loads the train step instead of compiling it."""
import json
import os
import pathlib
import subprocess
import sys

from jaxgan import compile_cache

HERE = pathlib.Path(__file__).parent


def probe(directory, *extra):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAXGAN_COMPILE_CACHE"):  # a cache the caller's shell set
        env.pop(name, None)
    proc = subprocess.run([sys.executable, str(HERE / "compile_cache_probe.py"), str(directory), *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_second_process_hits_the_cache(tmp_path):
    cache = tmp_path / "xla"
    first = probe(cache)
    assert "cache_misses" in first and "cache_hits" not in first
    assert any(cache.iterdir())  # the compiled step was written
    second = probe(cache)
    assert "cache_hits" in second and "cache_misses" not in second
    assert "cache_hits" not in probe(tmp_path / "unused", "off")


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXGAN_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path))
    assert compile_cache.default_directory() == tmp_path / "xla"
    monkeypatch.setenv("JAXGAN_COMPILE_CACHE", str(tmp_path / "elsewhere"))
    assert compile_cache.default_directory() == tmp_path / "elsewhere"
    monkeypatch.setenv("JAXGAN_COMPILE_CACHE", "off")
    assert compile_cache.default_directory() is None and compile_cache.enable() is None


def test_an_unwritable_directory_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert compile_cache.enable(blocker / "xla") is None


def test_enabling_another_folder_in_the_same_process_moves_the_cache(tmp_path, restore_compile_cache):
    """jax keeps the first cache folder it opens for the process's life; ``enable`` makes the next
    compilation use the folder it names, and ``disable`` stops the writing."""
    import jax
    import numpy as np

    x = np.ones(4, np.float32)
    first = compile_cache.enable(tmp_path / "a", min_compile_time_s=0)
    jax.jit(lambda v: v + 1.0)(x).block_until_ready()
    in_first = sorted(first.iterdir())
    assert in_first
    second = compile_cache.enable(tmp_path / "b", min_compile_time_s=0)
    jax.jit(lambda v: v * 5.0)(x).block_until_ready()
    assert any(second.iterdir()) and sorted(first.iterdir()) == in_first
    compile_cache.disable()
    in_second = sorted(second.iterdir())
    jax.jit(lambda v: v - 7.0)(x).block_until_ready()
    assert sorted(second.iterdir()) == in_second and sorted(first.iterdir()) == in_first
