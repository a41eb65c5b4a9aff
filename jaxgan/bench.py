"""``jaxgan bench``: how fast an experiment's train step runs, and beside what.

    jaxgan bench [EXPERIMENT] [--set KEY=VALUE ...] [--batch N ...] [--per-device-batch N]
                 [--steps K] [--windows W] [--dtype bfloat16|float32 ...] [--data synthetic|real]
                 [--devices N[,N...]] [--compare handwritten,torch,...] [--json FILE]
                 [--peak table|measure|TFLOPS] [--cache-dir DIR]

For each configuration (batch x dtype x device count) it builds the run with jaxgan's own builder
(``jaxgan.config.resolve``, ``jaxgan.run.build``), so the step timed is the step trained, and reports:

* ``compile_s``: ``cold`` (lowering + compilation, persistent cache empty) and ``warm`` (a second,
  fresh ``TrainStep`` lowered and compiled through the persistent compilation cache; ``warm_method``
  and ``warm_cache_hit`` say whether the cache served it);
* ``step_ms`` median and p90 over ``--windows`` windows of ``--steps`` steps, after two warm-up
  steps, each window closed by ``block_until_ready``; ``images_per_sec`` = batch x n_critic / median;
  jaxgan's step is timed with ``norms=False``, as the runner calls it between logging steps;
* ``flops_per_step``: XLA's cost analysis of the lowered (pre-optimisation) HLO (shard_map's
  per-device program, times the device count) and the analytic
  count of :mod:`jaxgan.flops` (DCGAN and MLP families), with their ratio; ``model`` is the analytic
  count where there is one, else the HLO's: achieved TFLOP/s and MFU divide it (the model's FLOPs,
  not extra products a convolution form may do) by the step time, against the device's dense peak
  (:data:`PEAK_TFLOPS`) or a measured matmul peak (``--peak measure``, and ``auto`` on a device
  without a table entry), timed in the same interleaved rounds as the steps (median of the rounds);
  an MFU above 100% is a measurement error and is reported as ``mfu_error``, never as an MFU;
* memory: the compiled step's argument/output/temp sizes and the device's peak bytes in use where
  the backend reports them.

``--compare`` runs the hand-written JAX step (``benchmarks/handwritten_jax.py``) and PyTorch
(``benchmarks/torch_step.py``: ``torch`` eager, ``torch-compile``, ``torch-channels-last``) on the same
shapes in the same process, in interleaved rounds (one window of each per round), and prints each
one's images/s relative to jaxgan's. ``jaxgan-shared-pass`` is jaxgan's step with
``train.share_generator_pass=true`` (one generator forward serves both updates): its MFU divides its
own, smaller analytic count. PyTorch is optional: without it those rows are skipped with a
message. ``--devices N`` on a CPU with fewer devices re-runs the benchmark in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before jax is imported.

``--data synthetic`` (default) feeds random batches of the data's shape, made before timing;
``--data real`` reads the experiment's source inside the timed loop (the input pipeline included).
Synthetic data needs no files: where the source cannot be built, a stand-in of the shapes its spec
declares is used (the image options, or the format's own: MNIST, a TFDS builder's features).

``--input`` times the input pipeline alone (:func:`bench_input`: the real data, the train loop's
batches and workers, host -> device included): ``input_images_per_sec``, per core and on one
worker, printed beside the step's images/s when ``--json FILE`` holds a step record of the same
experiment and batch.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from jaxgan import provenance
from jaxgan.cli import _at_least_one  # the command line's integer >= 1 (flag named on error)

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = ROOT / "benchmarks"
_CHILD_ENV = "JAXGAN_BENCH_CHILD"

# Dense peak TFLOP/s per chip (no structured sparsity), by device_kind substring, most specific
# first. 'float32' on NVIDIA is the TF32 tensor-core peak (XLA's default precision for float32
# matmuls and convolutions on Ampere and later); TPUs publish bfloat16 only.
# Sources: NVIDIA H100 datasheet (SXM5: 989.4 bf16 / 494.7 tf32; PCIe: 756.5 / 378); NVIDIA H200
# datasheet (SXM: 989.4 / 494.7); NVIDIA A100 datasheet (312 bf16 / 156 tf32); Google Cloud TPU
# system-architecture pages: v4 275, v5e 197, v5p 459, v6e (Trillium) 918 bf16 TFLOP/s per chip.
PEAK_TFLOPS: tuple[tuple[str, dict], ...] = (
    ("H100 PCIe", {"bfloat16": 756.5, "float32": 378.0}),
    ("H100", {"bfloat16": 989.4, "float32": 494.7}),
    ("H200", {"bfloat16": 989.4, "float32": 494.7}),
    ("A100", {"bfloat16": 312.0, "float32": 156.0}),
    ("TPU v4", {"bfloat16": 275.0}),
    ("TPU v5 lite", {"bfloat16": 197.0}),
    ("TPU v5e", {"bfloat16": 197.0}),
    ("TPU v5p", {"bfloat16": 459.0}),
    ("TPU v5", {"bfloat16": 459.0}),
    ("TPU v6 lite", {"bfloat16": 918.0}),
    ("TPU v6e", {"bfloat16": 918.0}),
)

SHARED_PASS = "jaxgan-shared-pass"  # jaxgan's step with train.share_generator_pass=true
COMPARE_CHOICES = ("handwritten", "handwritten-batchnoise", "torch", "torch-compile", "torch-channels-last",
                   SHARED_PASS)


def _device_counts(text: str) -> list[int]:
    """``--devices``: one device count or a comma-separated list of them, each an integer >= 1."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected device counts >= 1 such as 8 or 1,2,4,8, got {text!r}")
    return counts


def register(subparsers) -> None:
    b = subparsers.add_parser("bench", help="benchmark an experiment's train step (compile time, "
                              "images/s, FLOPs, MFU, memory), optionally beside hand-written JAX and PyTorch")
    b.add_argument("experiment", nargs="?", default="dcgan_mnist",
                   help="a name in experiments/ or a path to an experiment file (default dcgan_mnist)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    b.add_argument("--smoke", action="store_true", help="the experiment's tiny variant")
    b.add_argument("--batch", type=_at_least_one, nargs="+", help="global batch size(s) (default: the config's)")
    b.add_argument("--per-device-batch", type=_at_least_one,
                   help="batch per device: the global batch grows with --devices (constant work per device)")
    b.add_argument("--steps", type=_at_least_one, default=10, help="steps per timed window (default 10)")
    b.add_argument("--windows", type=_at_least_one, default=5,
                   help="timed windows; the median is reported (default 5)")
    b.add_argument("--dtype", nargs="+", choices=("bfloat16", "float32"),
                   help="compute dtype(s) (default: the config's, 'auto' = bfloat16 on accelerators)")
    b.add_argument("--data", choices=("synthetic", "real"), default="synthetic")
    b.add_argument("--devices", type=_device_counts,
                   help="device count(s), e.g. 8 or 1,2,4,8 (default: all devices)")
    b.add_argument("--compare", default="", help=f"comma-separated, from {', '.join(COMPARE_CHOICES)}")
    b.add_argument("--json", help="append one JSON object per configuration and implementation to FILE")
    b.add_argument("--peak", default="auto",
                   help="MFU reference: 'table', 'measure' (a timed matmul), 'auto' (table, else measure) "
                        "or a number in TFLOP/s")
    b.add_argument("--cache-dir", help="persistent compilation cache directory (default: a fresh "
                   "temporary one, so that 'cold' is cold)")
    b.add_argument("--torch-threads", type=_at_least_one,
                   help="PyTorch intra-op threads (default: PyTorch's); on a loaded CPU, OpenMP's spinning "
                        "barriers make 2 threads far slower than 1")
    b.add_argument("--no-compile-timing", action="store_true",
                   help="skip the second (warm) compilation")
    b.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs and reports)")
    b.add_argument("--table", metavar="FILE.jsonl",
                   help="print the table of the records saved in FILE by --json, benchmarking nothing")
    b.add_argument("--input", action="store_true",
                   help="time the input pipeline alone (the experiment's real data, the train loop's workers "
                        "and batches, host -> device included): input_images_per_sec, per core, with 1 worker")
    b.set_defaults(handler=main)


# -- entry point ----------------------------------------------------------------------------------
def main(args) -> int:
    if args.table:
        print(format_table(read_records(args.table), markdown=args.markdown))
        return 0
    if args.input:
        return _input_main(args)
    compare = [c for c in (args.compare or "").split(",") if c]
    unknown = sorted(set(compare) - set(COMPARE_CHOICES))
    if unknown:
        raise ValueError(f"--compare {','.join(unknown)}: choose from {', '.join(COMPARE_CHOICES)}")
    device_counts = args.devices or [None]
    if args.json and not os.environ.get(_CHILD_ENV):  # before the run, so that no result is lost at the end
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    records = []
    for n in device_counts:
        child = n is not None and _needs_subprocess(n)
        records += _run_child(args, n) if child else _run_here(args, n, compare)
    if args.json and not os.environ.get(_CHILD_ENV):
        with open(args.json, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    if os.environ.get(_CHILD_ENV):
        print("JAXGAN_BENCH_RECORDS " + json.dumps(records))
    else:
        print(format_table(records, markdown=args.markdown))
    return 0


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records a ``--json FILE`` run appended to ``path`` (one JSON object a line)."""
    from jaxgan.errors import UserError

    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError as e:
        raise UserError(f"--table {path}: cannot read it ({e.strerror or e}); give a file that "
                        "`jaxgan bench --json FILE` wrote") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"--table {path}: line {number} is not JSON ({e.msg}); the file should hold "
                            "one record a line, as `jaxgan bench --json FILE` writes") from None
        if not isinstance(record, dict):
            raise UserError(f"--table {path}: line {number} is not a bench record (not a JSON object)")
        if record.get("kind") == INPUT_KIND:  # `bench --input` records share the file; not step rows
            continue
        missing = [k for k in _TABLE_FIELDS if k not in record]
        if missing:
            raise UserError(f"--table {path}: line {number} is not a bench record (no {', '.join(missing)})")
        wrong = _wrong_table_values(record)
        if wrong:
            raise UserError(f"--table {path}: line {number} is not a bench record ({'; '.join(wrong)})")
        records.append(record)
    if not records:
        raise UserError(f"--table {path}: no records in the file")
    return records


def _needs_subprocess(n: int) -> bool:
    if os.environ.get(_CHILD_ENV):
        return False
    import jax

    have = jax.device_count()
    if have == n or (have > n and jax.default_backend() != "cpu"):
        return False
    if jax.default_backend() != "cpu":
        raise ValueError(f"--devices {n}: this {jax.default_backend()} machine has {have} devices")
    return True


def _run_child(args, n: int) -> list[dict]:
    """Re-runs this benchmark with ``n`` emulated CPU devices (XLA_FLAGS before jax is imported)."""
    env = dict(os.environ, **{_CHILD_ENV: "1", "JAX_PLATFORMS": "cpu"})
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    proc = subprocess.run([sys.executable, "-m", "jaxgan.cli", *_child_argv(args, n)], env=env,
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("JAXGAN_BENCH_RECORDS "):
            return json.loads(line.split(" ", 1)[1])
    raise RuntimeError(f"the {n}-device benchmark subprocess failed (exit {proc.returncode}):\n"
                       f"{proc.stderr[-3000:]}")


def _child_argv(args, n: int) -> list[str]:
    """The command line of this benchmark for one device count (no --json: the parent writes it)."""
    argv = ["bench", args.experiment, "--devices", str(n), "--steps", str(args.steps),
            "--windows", str(args.windows), "--data", args.data, "--peak", str(args.peak)]
    for assignment in args.set:
        argv += ["--set", assignment]
    if args.smoke:
        argv.append("--smoke")
    if args.batch:
        argv += ["--batch", *map(str, args.batch)]
    if args.per_device_batch:
        argv += ["--per-device-batch", str(args.per_device_batch)]
    if args.dtype:
        argv += ["--dtype", *args.dtype]
    if args.compare:
        argv += ["--compare", args.compare]
    if args.cache_dir:
        argv += ["--cache-dir", args.cache_dir]
    if args.no_compile_timing:
        argv.append("--no-compile-timing")
    if args.torch_threads:
        argv += ["--torch-threads", str(args.torch_threads)]
    return argv


def _run_here(args, n_devices: int | None, compare: list[str]) -> list[dict]:
    """The configurations on this process's devices, through the persistent compilation cache in
    ``--cache-dir``, else in a fresh temporary folder (so that 'cold' is cold) removed afterwards."""
    if args.cache_dir:
        pathlib.Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
        with _compilation_cache(args.cache_dir):
            return _configurations(args, n_devices, compare)
    with tempfile.TemporaryDirectory(prefix="jaxgan-bench-cache-") as cache_dir:
        with _compilation_cache(cache_dir):
            return _configurations(args, n_devices, compare)


def _configurations(args, n_devices: int | None, compare: list[str]) -> list[dict]:
    import jax

    devices = jax.devices()[:n_devices] if n_devices else jax.devices()
    batches = _batch_sizes(args, len(devices))
    dtypes = args.dtype or [None]
    records = []
    for batch in batches:
        for dtype in dtypes:
            records += bench_configuration(args.experiment, args.set, batch=batch, dtype=dtype,
                                           devices=devices, data=args.data, steps=args.steps,
                                           windows=args.windows, compare=compare, peak=args.peak,
                                           smoke=args.smoke, warm_compile=not args.no_compile_timing,
                                           torch_threads=args.torch_threads)
    return records


def _batch_sizes(args, n_devices: int) -> list[int | None]:
    if args.per_device_batch:
        return [args.per_device_batch * n_devices]
    return args.batch or [None]


@contextlib.contextmanager
def _compilation_cache(directory: str):
    """The persistent compilation cache in ``directory``, caching every compilation, for the ``with``
    block; the process's own cache settings come back afterwards.

    jax opens its cache folder once per process, at the first compilation that uses it, and keeps
    it even when ``jax_compilation_cache_dir`` changes later. ``compile_cache.enable`` makes the
    benchmark use ``directory`` (not a folder an earlier ``jaxgan train`` in this process opened,
    whose entries would make 'cold' warm) and ``compile_cache.restoring`` lets the folder be deleted.
    """
    import jax

    from jaxgan import compile_cache

    with compile_cache.restoring():
        compile_cache.enable(directory, min_compile_time_s=0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        yield


# -- one configuration ----------------------------------------------------------------------------
@dataclasses.dataclass
class Timed:
    """One implementation under the timer: ``window(k)`` runs k steps and returns seconds."""

    name: str
    window: Any
    info: dict
    calls: int | None = None  # calls per timed window (None: the benchmark's --steps)


def bench_configuration(experiment: str, overrides: list[str], *, batch: int | None, dtype: str | None,
                        devices, data: str, steps: int, windows: int, compare: list[str],
                        peak: str, smoke: bool = False, warm_compile: bool = True,
                        torch_threads: int | None = None) -> list[dict]:
    """Benchmarks jaxgan's step for one configuration (and the ``compare`` implementations)."""
    from jaxgan import config as config_lib

    sets = list(overrides)
    if batch:
        sets.append(f"train.batch_size={batch}")
    if dtype:
        sets.append(f"compute_dtype={dtype}")
    config, module = config_lib.resolve(experiment, sets, smoke=smoke)
    jaxgan_timed, record = _jaxgan_timed(config, module, devices, data, warm_compile)
    timed = [jaxgan_timed]
    skipped = {}
    for name in compare:
        try:
            if name == SHARED_PASS:
                timed.append(_shared_pass_timed(experiment, sets, smoke, devices, data))
                continue
            timed.append(_compare_timed(name, config, record, devices, torch_threads))
        except _Skip as e:
            skipped[name] = str(e)
            print(f"jaxgan bench: skipping {name}: {e}", file=sys.stderr)
    peak_timer = None
    if needs_measured_peak(peak, record["device_kind"], record["dtype"]):
        peak_timer = matmul_peak_timed(record["dtype"], devices[0])
    times = interleaved_rounds(timed + ([peak_timer] if peak_timer else []), windows, steps)
    measured = None
    if peak_timer:
        rates = [peak_timer.info["flops_per_call"] / s / 1e12 for s in times.pop(peak_timer.name)]
        measured = {"tflops": statistics.median(rates), "rounds": rates}
    out = []
    ips_jaxgan = None
    for t in timed:
        r = dict(record) if t.name == "jaxgan" else {**_common_fields(record), **t.info}
        r["implementation"] = t.name
        r["steps_per_window"], r["windows"] = steps, windows
        r.update(_timing_fields(times[t.name], record["images_per_step"]))
        if t.name == "jaxgan":
            ips_jaxgan = r["images_per_sec"]
        # model FLOPs (the analytic count where there is one) for every row: the same work divided
        # by each implementation's time, so a form that does extra products (DCGAN's sub-pixel
        # transposed convolutions on CPU) is not credited with them
        model = t.info.get("flops_per_step", {}).get("model") or record["flops_per_step"]["model"]
        r.update(_throughput_fields(model, r["step_ms"]["median"], record, peak, devices, measured))
        out.append(r)
    for r in out:
        r["images_per_sec_vs_jaxgan"] = r["images_per_sec"] / ips_jaxgan
        if skipped:
            r["skipped"] = skipped
    return out


class _Skip(Exception):
    """An implementation that cannot run here (PyTorch absent, an unsupported config)."""


def _common_fields(record: dict) -> dict:
    keys = ("experiment", "backend", "device_kind", "device_count", "process_count", "versions", "source",
            "batch", "dtype", "data", "data_shape", "n_critic", "images_per_step")
    return {k: record[k] for k in keys}


def _timing_fields(per_step_s: list[float], images_per_step: int) -> dict:
    ms = sorted(1000 * s for s in per_step_s)
    median = statistics.median(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return {"step_ms": {"median": median, "p90": p90, "min": ms[0], "all": ms},
            "images_per_sec": images_per_step / (median / 1000)}


def interleaved_rounds(timed: list[Timed], windows: int, steps: int) -> dict[str, list[float]]:
    """Seconds per call of each implementation, timed in ``windows`` interleaved rounds.

    Every implementation runs two warm-up calls, then each round times one window of each in turn
    (``steps`` calls, or the Timed's own ``calls``), so that a change in the machine's load during
    the benchmark (a shared CPU) reaches all of them alike, the matmul peak included.
    """
    for t in timed:  # warm-up: two calls each, compiled and caches hot
        t.window(2)
    times = {t.name: [] for t in timed}
    for _ in range(windows):
        for t in timed:
            k = t.calls or steps
            times[t.name].append(t.window(k) / k)
    return times


def needs_measured_peak(peak: str, device_kind: str, dtype: str) -> bool:
    """Whether ``--peak`` asks for a matmul peak measured in the benchmark's rounds."""
    return peak == "measure" or (peak == "auto" and table_peak(device_kind, dtype)[0] is None)


MATMUL_PEAK = "matmul-peak"  # the Timed of the measured peak (not a record)


def matmul_peak_timed(dtype: str, device, n: int = 2048, calls: int = 3) -> Timed:
    """An ``n x n x n`` matmul on ``device`` as a :class:`Timed` of ``calls`` products a window: the
    practical peak, timed in the same rounds as the steps (a peak timed at another moment of a loaded
    machine gave an MFU of 2.81)."""
    import jax
    import jax.numpy as jnp

    a = jax.device_put(jnp.ones((n, n), dtype), device)
    f = jax.jit(lambda x: x @ x)

    def window(k):
        t0 = time.perf_counter()
        for _ in range(k):
            out = f(a)
        jax.block_until_ready(out)
        return time.perf_counter() - t0

    return Timed(MATMUL_PEAK, window, {"flops_per_call": 2.0 * n ** 3, "n": n}, calls=calls)


def _throughput_fields(flops: float | None, step_ms: float, record: dict, peak: str, devices,
                       measured: dict | None = None) -> dict:
    """Achieved TFLOP/s and MFU against ``--peak``; an MFU above 1 is reported as an error, not an MFU.

    ``measured``: the matmul peak timed in the benchmark's rounds (``{'tflops', 'rounds'}``), used
    where ``--peak`` asks for a measured one.
    """
    if not flops:
        return {"tflops_per_sec": None, "mfu": None, "peak_tflops": None, "peak_source": None}
    achieved = flops / (step_ms / 1000) / 1e12
    if measured and needs_measured_peak(peak, record["device_kind"], record["dtype"]):
        peak_tflops = measured["tflops"]
        source = (f"measured: {record['dtype']} matmul on {record['device_kind']}, median of "
                  f"{len(measured['rounds'])} rounds interleaved with the steps")
    else:
        peak_tflops, source = peak_per_device(peak, record["device_kind"], record["dtype"], devices)
    total_peak = None if peak_tflops is None else peak_tflops * len(devices)
    out = {"tflops_per_sec": achieved, "peak_tflops": total_peak, "peak_source": source,
           "mfu": None if total_peak is None else achieved / total_peak}
    if measured:
        out["peak_rounds_tflops"] = measured["rounds"]
    return {**out, **mfu_check(out["mfu"])}


def mfu_check(mfu: float | None) -> dict:
    """``{}`` for a possible MFU; for one above 1, ``{'mfu': None, 'mfu_error': ...}``: a step cannot
    beat the peak, so the figure is a measurement error (the peak and the step timed under different
    conditions, a wrong stated peak, or a FLOP model that counts more than the step does)."""
    if mfu is None or mfu <= 1.0:
        return {}
    return {"mfu": None, "mfu_error": f"measured {100 * mfu:.0f}% of the peak: above 100% is a measurement "
                                      "error (the peak or the FLOP count does not hold for this step), not an MFU"}


def _jaxgan_timed(config, module, devices, data: str, warm_compile: bool) -> tuple[Timed, dict]:
    import jax

    from jaxgan import flops as flops_lib, run as run_lib, sharding

    run = _build(config, module, devices, data)
    example = run_lib.example_batch(run)
    state = run.step.init_state(config.seed, jax.tree.map(lambda x: x[0], example))
    batch0 = sharding.global_batch(run.mesh, example)
    hits = _CacheHits()
    t0 = time.perf_counter()
    lowered = run.step.lower(state, batch0)
    compiled = lowered.compile()
    cold = time.perf_counter() - t0
    warm, warm_hit = None, None
    if warm_compile:  # a fresh TrainStep: new trace and lowering, compilation through the cache
        run2 = _build(config, module, devices, data)
        before = hits.count
        t0 = time.perf_counter()
        run2.step.lower(state, batch0).compile()
        warm = time.perf_counter() - t0
        warm_hit = hits.count > before
    hits.close()
    cost = flops_lib.xla_cost(lowered)
    # the lowered module is shard_map's per-device program: its count is one device's share
    per_device = float(cost["flops"]) if cost and "flops" in cost else None
    hlo = per_device and per_device * len(devices)
    analytic = flops_lib.step_flops_for_config(config, run.source.info.shape)
    dtype = _dtype_name(config, run.platform)
    record = {
        "experiment": pathlib.Path(config.experiment).stem,
        **_platform(devices),
        "batch": int(config.train.batch_size), "dtype": dtype, "data": data,
        "data_shape": list(run.source.info.shape),  # one example's, also where a stand-in source was timed
        "n_critic": int(config.train.n_critic), "images_per_step": run.images_per_step,
        "compile_s": {"cold": cold, "warm": warm,
                      "warm_method": "persistent cache: a fresh TrainStep lowered and compiled again",
                      "warm_cache_hit": warm_hit},
        "flops_per_step": {"hlo_lowered": hlo, "hlo_lowered_per_device": per_device, "analytic": analytic and analytic["total"],
                           "analytic_matmul": analytic and analytic["matmul"],
                           # one device's share of each (the optimizer's update of the replicated
                           # parameters runs on every device: flops.per_device)
                           "analytic_per_device": analytic and flops_lib.per_device(analytic, len(devices)),
                           "ratio": (flops_lib.per_device(analytic, len(devices)) / per_device)
                           if (analytic and per_device) else None,
                           "model": (analytic and analytic["total"]) or hlo,
                           "model_source": "analytic" if analytic else "hlo_lowered"},
        "memory": _memory(compiled, devices),
    }
    batches = _batches(run, data, example)
    holder = {"state": state}

    def window(k):
        s = holder["state"]
        t0 = time.perf_counter()
        for i in range(k):
            b = batches(i)
            s, _ = compiled(s, b, norms=False)  # as training runs between logging steps
        jax.block_until_ready(s)
        holder["state"] = s
        return time.perf_counter() - t0

    record["memory"].update(_device_peak_memory(devices))
    return Timed("jaxgan", window, {}), record


def _batches(run, data: str, example: dict):
    """``i -> global batch``: prepared before timing (synthetic) or read in the loop (real)."""
    import numpy as np

    from jaxgan import run as run_lib, sharding

    if data == "real":
        counter = {"step": 0}

        def real(i):
            counter["step"] += 1
            return sharding.global_batch(run.mesh, run_lib.host_batch(run, counter["step"]))
        return real
    rs = np.random.RandomState(0)
    fixed = []
    for _ in range(2):
        b = {k: (rs.uniform(-1, 1, v.shape).astype(v.dtype) if v.dtype.kind == "f"
                 else rs.randint(0, 256, v.shape).astype(v.dtype) if v.dtype == np.uint8  # stored pixels
                 else rs.randint(0, max(run.game.num_classes or 1, 1), v.shape).astype(v.dtype))
             for k, v in example.items()}
        fixed.append(sharding.global_batch(run.mesh, b))
    return lambda i: fixed[i % 2]


def _build(config, module, devices, data: str):
    """``jaxgan.run.build``; for synthetic data whose files are absent, the same with a stand-in source."""
    from jaxgan import run as run_lib

    from jaxgan.data import make_run_source

    try:
        source = make_run_source(config)
    except (FileNotFoundError, ValueError, ImportError) as e:
        if data == "real":
            raise
        print(f"jaxgan bench: the data source cannot be built ({e}); synthetic batches of its declared "
              "shape are used", file=sys.stderr)
        source = _stand_in_source(config)
    return run_lib.build(config, module, devices, source=source)


# -- the input pipeline alone (--input) -------------------------------------------------------------
INPUT_KIND = "input"


def bench_input(experiment: str, overrides: list[str], *, batch: int | None = None, smoke: bool = False,
                steps: int = 10, windows: int = 5, source=None) -> dict:
    """Times the train loop's input pipeline alone: ``host_batch`` + ``global_batch`` on the loop's
    workers (:class:`jaxgan.pipeline.Prefetcher`, ``input_workers`` or one per core for decoding
    sources), ``windows`` windows of ``steps`` batches each, every window on new steps; the same with
    one worker where the loop uses more. Needs the data (a step bench does not), or ``source``: a
    source to read instead of the config's (``benchmarks/feed_table.py`` passes a prepared store of
    the experiment's shape).

    Returns:
      A record with ``kind='input'``, ``input_images_per_sec`` (median over windows),
      ``input_images_per_sec_per_core`` (divided by the cores the workers can use),
      ``input_images_per_sec_1_worker``, ``bytes_per_image`` (what crosses host -> device per image),
      the workers, CPU count and load average.
    """
    from jaxgan import config as config_lib, run as run_lib
    from jaxgan.pipeline import close_processes

    overrides = list(overrides) + ([f"train.batch_size={batch}"] if batch else [])
    config, module = config_lib.resolve(experiment, overrides, smoke=smoke)
    run = run_lib.build(config, module, source=source)
    try:
        return _time_input(run, steps, windows)
    finally:
        close_processes(run.source)  # a folder's decoding processes and their shared memory


def _time_input(run, steps: int, windows: int) -> dict:
    """:func:`bench_input`'s timing of ``run``'s input pipeline."""
    import jax

    from jaxgan import run as run_lib
    from jaxgan.pipeline import Prefetcher, decoding_processes

    config = run.config
    make, workers, chunk = run_lib.input_pipeline(run)
    processes = decoding_processes(run.source)
    place = lambda s, n: jax.block_until_ready(make(s, n))
    first = place(0, chunk)[0]  # warm: the first read, the transfer's compilation
    nbytes = sum(x.nbytes for x in jax.tree.leaves(first))
    steps = -(-steps // chunk) * chunk  # whole transfers
    cursor = {"step": chunk}

    def rate(n_workers: int) -> float:
        times = []
        for _ in range(windows):
            start = cursor["step"]
            cursor["step"] += steps
            t0 = time.perf_counter()
            with Prefetcher(place, start, start + steps, depth=n_workers + 1, workers=n_workers,
                            chunk=chunk) as it:
                for _ in it:
                    pass
            times.append(time.perf_counter() - t0)
        return steps * run.images_per_step / statistics.median(times)

    cpus = os.cpu_count() or 1
    record = {"kind": INPUT_KIND, "experiment": pathlib.Path(config.experiment).stem, "source": run.source.info.name,
              "batch": int(config.train.batch_size), "images_per_step": run.images_per_step,
              "image_shape": list(run.source.info.shape), "dtype": str(first["x"].dtype),
              "bytes_per_image": nbytes / run.images_per_step, "input_workers": workers,
              "input_steps_per_transfer": chunk,
              "input_processes": processes, "cpu_count": cpus,
              "steps": steps, "windows": windows, "load_average": list(os.getloadavg())}
    record["input_images_per_sec"] = rate(workers)
    record["input_images_per_sec_per_core"] = record["input_images_per_sec"] / min(processes or workers, cpus)
    record["input_images_per_sec_1_worker"] = rate(1) if workers > 1 else record["input_images_per_sec"]
    return record


def format_input(record: dict, step_records: list[dict] = ()) -> str:
    """One line for a ``bench_input`` record, beside the step's images/s where ``step_records`` (the
    ``--json`` file's) time the same experiment and batch."""
    r = record
    line = (f"input pipeline of {r['experiment']} ({r['source']}, batch {r['batch']}, {r['dtype']} "
            f"{'x'.join(map(str, r['image_shape']))}, {r['bytes_per_image']:,.0f} bytes/image to the device): "
            f"{r['input_images_per_sec']:,.0f} images/s on {r['input_workers']} worker(s)"
            f"{' decoding in %d processes' % r['input_processes'] if r.get('input_processes') else ''}"
            f"{', %d steps a transfer' % chunk if (chunk := r.get('input_steps_per_transfer', 1)) > 1 else ''}, "
            f"{r['input_images_per_sec_per_core']:,.0f} per core, {r['input_images_per_sec_1_worker']:,.0f} on one "
            f"({r['cpu_count']} CPUs, load {r['load_average'][0]:.1f})")
    steps = [s for s in step_records if s.get("experiment") == r["experiment"] and s.get("batch") == r["batch"]
             and s.get("implementation", "jaxgan") == "jaxgan" and s.get("images_per_sec")]
    for s in steps:
        line += (f"\n  the step ({s.get('device_kind', '?')} x{s.get('device_count', '?')}, {s.get('dtype')}): "
                 f"{s['images_per_sec']:,.0f} images/s: the input is "
                 f"{r['input_images_per_sec'] / s['images_per_sec']:.2f}x the step's need")
    if not steps:
        line += ("\n  compare: `jaxgan bench EXPERIMENT --json FILE` (the step's images/s, printed here when FILE is "
                 "given to both) and `jaxgan compile EXPERIMENT --topology v5e:2x4` (its TPU roofline bound)")
    return line


def _input_main(args) -> int:
    record = bench_input(args.experiment, args.set, batch=(args.batch or [None])[0], smoke=args.smoke,
                         steps=args.steps, windows=args.windows)
    previous = []
    if args.json and pathlib.Path(args.json).is_file():  # step records of earlier runs, to print beside
        for line in pathlib.Path(args.json).read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and r.get("kind") != INPUT_KIND:
                previous.append(r)
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    print(format_input(record, previous))
    return 0


def _stand_in_source(config):
    """Random images of the shapes, dtypes, labels and views the config's data declares, for timing or
    compiling a step without its data (:func:`jaxgan.data.factory.stand_in_source`)."""
    from jaxgan.data.factory import make_run_source

    return make_run_source(config, stand_in=True)


def _dtype_name(config, platform: str | None = None) -> str:
    """The compute dtype's name for ``platform`` (a run's; None: the default devices', which are the
    ones bench times)."""
    import jax.numpy as jnp

    from jaxgan.precision import compute_dtype

    return jnp.dtype(compute_dtype(config.compute_dtype, platform)).name


def _platform(devices) -> dict:
    import flax
    import jax
    import jaxlib
    import optax

    return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "device_count": len(devices), "process_count": jax.process_count(),
            "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
                         "optax": optax.__version__, "python": sys.version.split()[0]},
            "source": provenance.source()}


def _memory(compiled, devices) -> dict:
    out = {}
    try:
        mem = compiled.memory_analysis()
        for k in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"):
            out[k] = int(getattr(mem, k))
    except Exception:  # not every backend reports it
        pass
    return out


def _device_peak_memory(devices) -> dict:
    try:
        stats = devices[0].memory_stats()
    except Exception:
        stats = None
    if not stats or "peak_bytes_in_use" not in stats:
        return {"peak_bytes_in_use": None}
    return {"peak_bytes_in_use": int(stats["peak_bytes_in_use"])}


class _CacheHits:
    """Counts persistent-compilation-cache hits (jax's monitoring events) while open."""

    def __init__(self):
        import jax

        self.count = 0
        self._listener = self._on_event
        jax.monitoring.register_event_listener(self._listener)

    def _on_event(self, event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            self.count += 1

    def close(self):
        try:
            from jax._src import monitoring

            monitoring.unregister_event_listener(self._listener)
        except Exception:  # an older jax: the listener stays, harmless
            pass


# -- peaks ----------------------------------------------------------------------------------------
def peak_per_device(peak: str, device_kind: str, dtype: str, devices) -> tuple[float | None, str | None]:
    """(dense peak TFLOP/s of one device, where it came from) for ``--peak``."""
    if peak not in ("auto", "table", "measure"):
        try:
            return float(peak), "given (--peak)"
        except ValueError:
            raise ValueError(f"--peak {peak!r}: use 'auto', 'table', 'measure' or a number in TFLOP/s") from None
    if peak in ("auto", "table"):
        value, source = table_peak(device_kind, dtype)
        if value is not None or peak == "table":
            return value, source
    value = measured_matmul_peak(dtype, devices[0])
    return value, f"measured: {dtype} matmul on {device_kind}"


def table_peak(device_kind: str, dtype: str) -> tuple[float | None, str | None]:
    """(dense peak TFLOP/s from :data:`PEAK_TFLOPS`, its source), or (None, None) for another device."""
    for name, by_dtype in PEAK_TFLOPS:
        if name.lower() in device_kind.lower() and dtype in by_dtype:
            return by_dtype[dtype], f"table: {name} {dtype} dense"
    return None, None


_MEASURED: dict = {}


def measured_matmul_peak(dtype: str, device, n: int = 2048, repeats: int = 5) -> float:
    """The best TFLOP/s of an n x n x n matmul on ``device`` (a practical, not a datasheet, peak)."""
    import jax
    import jax.numpy as jnp

    key = (dtype, device.id)
    if key not in _MEASURED:
        a = jax.device_put(jnp.ones((n, n), dtype), device)
        f = jax.jit(lambda x: x @ x)
        jax.block_until_ready(f(a))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(f(a))
            best = min(best, time.perf_counter() - t0)
        _MEASURED[key] = 2 * n**3 / best / 1e12
    return _MEASURED[key]


# -- comparisons ----------------------------------------------------------------------------------
def _load_benchmark_module(name: str):
    path = BENCHMARKS_DIR / f"{name}.py"
    if not path.exists():
        raise _Skip(f"{path} not found (the comparisons live in the repository's benchmarks/ folder)")
    spec = importlib.util.spec_from_file_location(f"jaxgan_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def handwritten_spec(config, data_shape, *, noise: str = "per_example") -> dict:
    """The hand-written step's ``Spec`` fields for a run config (a clear error for what it lacks)."""
    from jaxgan.experiment import total_steps

    m, t, o, p = config.model, config.train, config.optim, config.penalty
    problems = []
    if m.get("conditional"):
        problems.append("conditional models")
    if config.loss != "non_saturating":
        problems.append(f"loss {config.loss!r}")
    if p.get("r2_gamma") or p.get("gp_weight") or p.get("every", 1) != 1:
        problems.append("penalties other than R1 on every step")
    if t.get("ema_rampup"):
        problems.append("EMA ramp-up")
    if "ngf" in m and len(data_shape) == 3:
        family = {"family": "dcgan", "ngf": m.ngf, "ndf": m.ndf}
    elif "hidden" in m:
        family = {"family": "mlp", "hidden": m.hidden, "depth": m.depth}
    else:
        problems.append("networks other than DCGAN and the MLP")
        family = {}
    if problems:
        raise _Skip(f"the hand-written steps do not implement {', '.join(problems)}")
    return dict(family, data_shape=tuple(data_shape), batch=int(t.batch_size), latent_dim=m.latent_dim,
                g_lr=o.g_lr, d_lr=o.d_lr, b1=o.b1, b2=o.b2, schedule=o.schedule,
                total_steps=total_steps(config), final_lr_fraction=o.final_lr_fraction,
                r1_gamma=p.get("r1_gamma", 0.0), ema_half_life_images=1000.0 * (t.ema_half_life_kimg or 0.0),
                n_critic=int(t.n_critic), dtype=_dtype_name(config), noise=noise)


def _shared_pass_timed(experiment: str, sets: list[str], smoke: bool, devices, data: str) -> Timed:
    """jaxgan's step with ``train.share_generator_pass=true`` (no warm compile: the main row has it)."""
    from jaxgan import config as config_lib

    config, module = config_lib.resolve(experiment, [*sets, "train.share_generator_pass=true"], smoke=smoke)
    try:
        timed, rec = _jaxgan_timed(config, module, devices, data, warm_compile=False)
    except ValueError as e:  # n_critic > 1, or a game without the split losses
        raise _Skip(str(e)) from None
    info = {k: rec[k] for k in ("compile_s", "flops_per_step", "memory")}
    return Timed(SHARED_PASS, timed.window, info)


def _compare_timed(name: str, config, record: dict, devices, torch_threads: int | None = None) -> Timed:
    """A comparison timed on the examples jaxgan's row timed (``record['data_shape']``: its source's, or
    the stand-in's where the data's files are absent), without building the source again."""
    shape = tuple(record["data_shape"])
    if name.startswith("handwritten"):
        if len(devices) != 1:
            raise _Skip("the hand-written step runs on one device: compare with --devices 1")
        noise = "batch" if name.endswith("batchnoise") else "per_example"
        return _handwritten_timed(name, handwritten_spec(config, shape, noise=noise), config.seed, devices[0])
    spec = handwritten_spec(config, shape)
    return _torch_timed(name, spec, record["backend"], torch_threads)


def _handwritten_timed(name, spec_fields, seed, device) -> Timed:
    import jax
    import numpy as np

    from jaxgan.flops import xla_cost

    hw = _load_benchmark_module("handwritten_jax")
    spec = hw.Spec(**spec_fields)
    step = hw.HandwrittenStep(spec)
    with jax.default_device(device):
        state = step.init(seed)
        rs = np.random.RandomState(0)
        shape = (spec.n_critic, spec.batch, *spec.data_shape)
        batches = [{"x": jax.device_put(rs.uniform(-1, 1, shape).astype(np.float32), device)} for _ in range(2)]
    t0 = time.perf_counter()
    lowered = step.lower(state, batches[0])
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    cost = xla_cost(lowered)
    holder = {"state": state}

    def window(k):
        s = holder["state"]
        t0 = time.perf_counter()
        for i in range(k):
            s, _ = compiled(s, batches[i % 2])
        jax.block_until_ready(s)
        holder["state"] = s
        return time.perf_counter() - t0

    info = {"compile_s": {"cold": compile_s, "warm": None, "warm_method": None},
            "flops_per_step": {"hlo_lowered": float(cost["flops"]) if cost and "flops" in cost else None},
            "noise": spec.noise}
    return Timed(name, window, info)


def _torch_timed(name, spec_fields, backend: str, threads: int | None = None) -> Timed:
    try:
        import torch
    except ImportError:
        raise _Skip("PyTorch is not installed (pip install torch; it is optional)") from None
    ts = _load_benchmark_module("torch_step")
    if threads:
        torch.set_num_threads(threads)
    variant = {"torch": "eager", "torch-compile": "compile", "torch-channels-last": "channels_last"}[name]
    device = "cuda" if backend in ("gpu", "cuda") else "cpu"
    runner = ts.TorchStep(ts.Spec(**{k: v for k, v in spec_fields.items() if k != "noise"}),
                          variant=variant, device=device)
    return Timed(name, runner.window, runner.info())


# -- the table ------------------------------------------------------------------------------------
_TABLE_FIELDS = ("experiment", "implementation", "device_count", "batch", "dtype", "step_ms", "images_per_sec",
                 "images_per_sec_vs_jaxgan", "backend", "device_kind", "versions", "data")


def _wrong_table_values(record: dict) -> list[str]:
    """What in a record the table cannot show (a field of the wrong kind), named for the error."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    wrong = []
    for key in ("device_count", "batch", "images_per_sec", "images_per_sec_vs_jaxgan"):
        if not number(record[key]):
            wrong.append(f"{key} is {record[key]!r}, not a number")
    step_ms = record["step_ms"]
    if not (isinstance(step_ms, dict) and all(number(step_ms.get(k)) for k in ("median", "p90"))):
        wrong.append(f"step_ms is {step_ms!r}, not {{'median': ms, 'p90': ms, ...}}")
    versions = record["versions"]
    if not (isinstance(versions, dict) and all(k in versions for k in ("jax", "flax"))):
        wrong.append(f"versions is {versions!r}, not {{'jax': ..., 'flax': ...}}")
    for key in ("compile_s", "flops_per_step", "memory", "source"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            wrong.append(f"{key} is {record[key]!r}, not an object")
    return wrong


def _source_tag(record: dict) -> str:
    """``'; jaxgan 4971345'`` where the record names the commit it measured
    (:func:`jaxgan.provenance.describe`); empty for older records."""
    what = provenance.describe(record.get("source"))
    return f"; jaxgan {what}" if what else ""


def format_table(records: list[dict], markdown: bool = False) -> str:
    """The records as a table, one line per configuration and implementation: aligned plain text, or
    Markdown (``markdown=True``). Above it, one line for each distinct setting among the records
    (backend, device kind, jax and flax versions, data, MFU reference, the jaxgan commit)."""
    head = ("experiment", "impl", "dev", "batch", "dtype", "compile cold/warm s", "step ms med/p90",
            "img/s", "vs jaxgan", "GFLOP/step", "HLO/analytic", "TFLOP/s", "MFU", "peak mem GiB")
    rows = [head]
    for r in records:
        c, f = r.get("compile_s") or {}, r.get("flops_per_step") or {}
        peak_bytes = (r.get("memory") or {}).get("peak_bytes_in_use")  # None where the backend does not say
        flops = f.get("hlo_lowered")
        ratio = f.get("ratio")
        rows.append((
            r["experiment"], r["implementation"], str(r["device_count"]), str(r["batch"]), r["dtype"],
            f"{_num(c.get('cold'), '.1f')}/{_num(c.get('warm'), '.1f')}",
            f"{r['step_ms']['median']:.1f}/{r['step_ms']['p90']:.1f}",
            f"{r['images_per_sec']:.1f}", f"{r['images_per_sec_vs_jaxgan']:.2f}x",
            _num(flops and flops / 1e9, ".2f"), _num(ratio and 1 / ratio, ".3f"),
            _num(r.get("tflops_per_sec"), ".4f"), ("error >100%" if r.get("mfu_error") else _num(r.get("mfu") and 100 * r["mfu"], ".2f", "%")),
            _num(peak_bytes and peak_bytes / 2**30, ".2f"),
        ))
    settings = list(dict.fromkeys(
        f"{r['backend']} {r['device_kind']}, jax {r['versions']['jax']}, flax {r['versions']['flax']}, "
        f"data {r['data']}; MFU vs {r.get('peak_source')}{_source_tag(r)}" for r in records))
    if markdown:
        lines = [f"| {' | '.join(row)} |" for row in rows]
        lines.insert(1, "|" + "---|" * len(head))
        return "\n\n".join(settings + ["\n".join(lines)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([f"# {s}" for s in settings] + lines)


def _num(x, fmt: str, suffix: str = "") -> str:
    return "-" if x is None else f"{x:{fmt}}{suffix}"
