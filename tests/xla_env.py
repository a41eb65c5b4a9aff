"""XLA_FLAGS of the suite's processes: conftest.py sets them for pytest's, and the tests and scripts
that start processes with emulated CPU devices change only the device count (imports no jax).

The suite compiles the CPU code of every program at LLVM O1 (``--xla_backend_optimization_level=1``)
rather than XLA's default O2. XLA's own HLO passes (fusion, layout, sharding) are the same at both; the
suite's programs are small and mostly compiled once and run a few steps, and at O1 they compile far
faster and run about as fast (measured on the 2-core machine, README "Run the tests": the whole
suite took 983 s at O2, and 752-817 s in five runs at O1). Bits can differ from O2 in the last place
for some programs (seen in StyleGAN2's step and SNGAN's spectral-norm init), which no test reads:
every check compares programs compiled alike (8 devices against 1, resumed against uninterrupted,
jaxgan against the hand-written step) or within a tolerance. Runs of jaxgan itself (the README's
commands, ``jaxgan bench``) keep XLA's default. A level set in XLA_FLAGS before the suite starts is
kept: run the suite at XLA's default with ``XLA_FLAGS=--xla_backend_optimization_level=2``.

The equivalence subprocesses (one step on 8 emulated devices against 1 device, and the like:
``host_devices(n, equivalence=True)``) compile at O0 instead: each compiles its programs for 1 and
for 8 devices, runs them for a step or two and compares the two within a tolerance, so nearly all of
their time is compiling (the StyleGAN2 one: 37.5 -> 28.1 CPU-s at O0, the same results). Both sides of
each comparison are compiled in the same process, alike. A level the caller set other than the
suite's is kept there too.

In pytest's own processes every program compiles at O0 with LLVM's expensive passes off
(``jax_disable_most_optimizations``, :func:`quick_compiles`): nearly every test compiles its
programs and runs them for a step or a few. Tests marked ``optimized`` (and fixtures that train or
extract features for long, through :func:`optimized`) compile at the process's O1 instead: they
spend their time running what they compiled (training to a threshold, features of thousands of
images), and O0 made them 1.7-3.9x slower (ring8, the README block, the FID check). A test and the
fixtures it compares against bit for bit compile alike (a resumed run against a reference run of the
same level). Measured on the 2-core machine on 2026-12-04, ``pytest -n 2`` of the whole suite one
run each: 929 s with every pytest process at O1, 972 s with everything at O0, 824 s with this split.
The TPU programs of test_aot.py keep O1 (jaxgan compile's programs, as a user compiles them).
Subprocesses keep the levels above.
"""
import contextlib
import os

_LEVEL = "--xla_backend_optimization_level"
SUITE_COMPILE_LEVEL = f"{_LEVEL}=1"
EQUIVALENCE_COMPILE_LEVEL = f"{_LEVEL}=0"
_DEVICE_COUNT = "--xla_force_host_platform_device_count"


def suite_flags(flags: str | None = None) -> str:
    """``flags`` (default: $XLA_FLAGS) with the suite's compile level unless they set a level."""
    flags = (os.environ.get("XLA_FLAGS", "") if flags is None else flags).split()
    if not any(f.startswith(_LEVEL) for f in flags):
        flags.append(SUITE_COMPILE_LEVEL)
    return " ".join(flags)


def host_devices(n: int, flags: str | None = None, *, equivalence: bool = False) -> str:
    """The suite's flags (:func:`suite_flags` of ``flags``) with ``n`` emulated CPU devices in place of
    any device count they had: for a process's XLA_FLAGS, set before it imports jax. ``equivalence``:
    for a process that compares programs it compiles itself, which then compile at O0 (see above)."""
    kept = [f for f in suite_flags(flags).split() if not f.startswith(_DEVICE_COUNT)]
    if equivalence:
        kept = [EQUIVALENCE_COMPILE_LEVEL if f == SUITE_COMPILE_LEVEL else f for f in kept]
    return " ".join(kept + [f"{_DEVICE_COUNT}={n}"])


def level_chosen_by_suite() -> bool:
    """Whether XLA_FLAGS hold the suite's level (the caller set none before the suite started)."""
    return SUITE_COMPILE_LEVEL in os.environ.get("XLA_FLAGS", "").split()


def quick_compiles() -> None:
    """This process's programs compile at O0 (``jax_disable_most_optimizations``), unless the caller
    chose a level in XLA_FLAGS (then that level holds everywhere)."""
    if level_chosen_by_suite():
        import jax

        jax.config.update("jax_disable_most_optimizations", True)


@contextlib.contextmanager
def optimized():
    """Programs compiled inside the block get the process's level (O1), not :func:`quick_compiles`'s O0."""
    import jax

    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)
