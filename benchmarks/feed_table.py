"""Can one TPU host feed each image experiment's step? The host's input pipeline, measured here and
scaled to a Cloud TPU v5e host's CPUs, beside the step's roofline bound from the TPU compiler.

    python benchmarks/feed_table.py [--compile benchmarks/results/tpu_compile.jsonl] [--topology v5e:2x2]
                                    [--experiments A,B] [--steps 10] [--windows 5] [--out FILE.json]

The step's side: for each experiment, its last record for ``--topology`` (else for any v5e topology)
in the ``--compile`` file (``jaxgan compile EXP --topology v5e:2x2 --json FILE``). Its
``programs.train_step.bound.images_per_s`` is the slice's images per step over the per-chip roofline
time (max(FLOPs / peak, bytes / HBM bandwidth), XLA's counts): a bound, not a measurement. Divided
by ``chips``: what one chip consumes. (Experiments without a record: the host side only, at their
configured batch x 2, the rows of an 8-chip host if compiled for v5e:2x2.)

The host's side, measured on this machine:

* ``store``: the train loop's input pipeline (:func:`jaxgan.bench.bench_input`: ``host_batch`` and
  ``global_batch`` on one :class:`~jaxgan.pipeline.Prefetcher` worker, and on 2) reading a prepared store
  (:mod:`jaxgan.data.store`, memory-mapped) of random uint8 images of the experiment's shape and
  classes, with its views (``part``, ``transform``, ``sr_factor``, the second domain), at the batch an
  8-chip host builds per step (the record's batch per chip x 8): images/s on one core.
* ``decode`` (experiments whose data is an image folder): ``FolderSource`` decoding 512 JPEGs at
  178x218 (CelebA's aligned size) to the experiment's resolution and crop, on one thread: images/s
  per core, the rate a folder would be read at without a store.

Scaled: a v5e host has 28 vCPUs per chip (``ct5lp-hightpu-4t``: 112 vCPUs for 4 chips; ``-8t``: 224
for 8; https://cloud.google.com/tpu/docs/v5e, "VM types"). The table gives, for an 8-chip host, the
images/s its chips consume at the bound and the vCPUs that the measured per-core rate needs to make
them (linear in cores: each worker builds whole batches). Prints the Markdown table and writes the
records (``--out``, JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

VCPUS_PER_CHIP = 28  # ct5lp-hightpu-4t / -8t (https://cloud.google.com/tpu/docs/v5e)
HOST_CHIPS = 8  # ct5lp-hightpu-8t: one host of a v5e:2x4 slice
STORE_BYTES = 128 << 20  # each stand-in store's size (rows: between 1,024 and 20,000)
HERE = pathlib.Path(__file__).resolve().parent


def compile_records(path, prefer: str = "v5e:2x2") -> dict[str, dict]:
    """Each experiment's last record for the ``prefer`` topology in a ``jaxgan compile --json`` file,
    else its last record of any v5e topology."""
    preferred, other = {}, {}
    for line in pathlib.Path(path).read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        topology = str(r.get("topology", ""))
        if topology.startswith("v5e:") and r.get("programs", {}).get("train_step", {}).get("bound"):
            (preferred if topology == prefer else other)[r["experiment"]] = r
    return {**other, **preferred}


def image_experiments() -> list[str]:
    """Every experiment in experiments/ whose data is images (the toy point sources left out)."""
    from jaxgan import config as config_lib

    names = []
    for path in sorted((HERE.parent / "experiments").glob("*.py")):
        config, _ = config_lib.resolve(path.stem)
        if config.data.get("name") not in ("ring8", "grid25"):
            names.append(path.stem)
    return names


def _store_spec(spec, workdir: pathlib.Path, seed: int) -> dict:
    """A prepared store of random images of ``spec``'s declared shape and classes; ``spec``'s views kept."""
    from jaxgan.data import ArraySource
    from jaxgan.data.factory import VIEW_OPTIONS, declared_info
    from jaxgan.data.store import write_store

    spec = dict(spec)
    shape, classes = declared_info(spec)
    n = int(np.clip(STORE_BYTES // int(np.prod(shape)), 1024, 20_000))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = None if classes is None else rng.integers(0, classes, n)
    out = workdir / f"store-{seed}"
    write_store(ArraySource(x, labels, seed=seed, num_classes=classes), out, progress=False, chunk=2048)
    return {"name": "store", "path": str(out), **{k: spec[k] for k in VIEW_OPTIONS if spec.get(k) is not None}}


def store_rate(experiment: str, batch: int, workdir: pathlib.Path, steps: int, windows: int) -> dict:
    """``bench_input`` of ``experiment`` at ``batch`` reading a stand-in store of its data's shape."""
    from jaxgan import config as config_lib
    from jaxgan.bench import bench_input
    from jaxgan.data.factory import make_run_source

    config, _ = config_lib.resolve(experiment, [f"train.batch_size={batch}"])
    spec = {"data": _store_spec(config.data, workdir, 0), "seed": config.seed, "data_b": None}
    if config.get("data_b"):
        spec["data_b"] = _store_spec(config.data_b, workdir, 1)
    source = make_run_source(spec)
    record = bench_input(experiment, ["input_workers=2"], batch=batch, steps=steps, windows=windows, source=source)
    out = {k: record[k] for k in ("batch", "images_per_step", "image_shape", "bytes_per_image",
                                  "input_images_per_sec_1_worker", "load_average")}
    out["input_images_per_sec_2_workers"] = record["input_images_per_sec"]
    out["host_us_per_step_1_worker"] = 1e6 * record["images_per_step"] / record["input_images_per_sec_1_worker"]
    return out


def decode_rate(resolution, crop, channels, jpegs: pathlib.Path, n: int = 512, rounds: int = 3) -> float:
    """Images/s of ``FolderSource`` decoding ``n`` 178x218 JPEGs with these options, on one thread."""
    from jaxgan.data import FolderSource

    src = FolderSource(jpegs, seed=0, resolution=resolution, channels=channels, crop=crop)
    idx = np.arange(min(n, len(src.paths)))
    src.stored_examples(idx[:64])  # warm
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for lo in range(0, len(idx), 256):
            src.stored_examples(idx[lo:lo + 256])
        times.append(time.perf_counter() - t0)
    return len(idx) / sorted(times)[len(times) // 2]


def row(experiment: str, record: dict | None, workdir: pathlib.Path, jpegs: pathlib.Path, steps: int,
        windows: int) -> dict:
    """One experiment's bound (from ``record``; None: not compiled yet) and its host-side rates."""
    from jaxgan import config as config_lib

    config, _ = config_lib.resolve(experiment)
    out = {"experiment": experiment}
    host_batch = int(config.train.batch_size) * HOST_CHIPS // 4  # uncompiled: as if for v5e:2x2 (4 chips)
    if record is not None:
        bound = record["programs"]["train_step"]["bound"]
        per_chip = bound["images_per_s"] / record["chips"]
        host_batch = record["batch"] * HOST_CHIPS // record["chips"]  # the rows an 8-chip host builds per step
        out.update(topology=record["topology"], batch=record["batch"], chips=record["chips"],
                   hosts=record.get("hosts"), compute_dtype=record.get("compute_dtype"),
                   bound_images_per_s=bound["images_per_s"], limited_by=bound.get("limited_by"),
                   bound_per_chip=per_chip, need_per_host=per_chip * HOST_CHIPS)
    # windows of at least ~20,000 images (up to 200 steps): a window's thread start and join stay small
    out["store"] = store_rate(experiment, host_batch, workdir / experiment, max(steps, min(200, 20_000 // host_batch)),
                              windows)
    for key in ("data", "data_b"):
        spec = config.get(key) or {}
        if spec.get("name") == "folder" and "decode_per_core" not in out:
            out["decode_per_core"] = decode_rate(spec.get("resolution"), spec.get("crop"), spec.get("channels"), jpegs)
    if record is not None:
        out["step_us_at_bound"] = 1e6 * out["store"]["images_per_step"] / out["need_per_host"]
        out["store_vcpus_needed_per_host"] = out["need_per_host"] / out["store"]["input_images_per_sec_1_worker"]
        if "decode_per_core" in out:
            out["decode_vcpus_needed_per_host"] = out["need_per_host"] / out["decode_per_core"]
    return out


def _cores(n: float) -> str:
    return f"{n:,.0f}" if n >= 10 else f"{n:.1f}" if n >= 0.1 else "<0.1"


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (experiments without a compile record: the host side only)."""
    vcpus = VCPUS_PER_CHIP * HOST_CHIPS
    lines = [f"| experiment | compiled for | bound / chip (img/s) | an {HOST_CHIPS}-chip host's chips consume "
             f"(img/s) | its step at the bound (us) | store: img/s on one core here (images per step) | "
             f"host us per step | 2 workers / 1 | store: vCPUs needed of {vcpus} | "
             f"JPEG decode: img/s per core | decode: vCPUs needed of {vcpus} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["store"]
        rate = (f"{s['input_images_per_sec_1_worker']:,.0f} ({s['images_per_step']}) | "
                f"{s['host_us_per_step_1_worker']:,.0f} | "
                f"{s['input_images_per_sec_2_workers'] / s['input_images_per_sec_1_worker']:.2f}")
        decode = f"{r['decode_per_core']:,.0f}" if "decode_per_core" in r else "-"
        if "topology" not in r:
            lines.append(f"| {r['experiment']} | no v5e compile record | - | - | - | {rate} | - | {decode} | - |")
            continue
        decode_need = _cores(r["decode_vcpus_needed_per_host"]) if "decode_per_core" in r else "-"
        lines.append(f"| {r['experiment']} | {r['topology']}, batch {r['batch']}, {r['compute_dtype']} "
                     f"({r['limited_by']}-bound) | {r['bound_per_chip']:,.0f} | {r['need_per_host']:,.0f} | "
                     f"{r['step_us_at_bound']:,.0f} | {rate} | {_cores(r['store_vcpus_needed_per_host'])} | {decode} | "
                     f"{decode_need} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compile", default=str(HERE / "results" / "tpu_compile.jsonl"))
    p.add_argument("--topology", default="v5e:2x2", help="the compile records to prefer (else any v5e record)")
    p.add_argument("--experiments", help="comma-separated (default: every image experiment)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--out")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from input_pipeline import _smooth_jpegs

    records = compile_records(args.compile, args.topology)
    names = args.experiments.split(",") if args.experiments else image_experiments()
    missing = [n for n in names if n not in records]
    result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "vcpus_per_chip": VCPUS_PER_CHIP,
              "host_chips": HOST_CHIPS, "rows": [], "missing": missing}
    with tempfile.TemporaryDirectory(prefix="jaxgan-feed-table-") as tmp:
        tmp = pathlib.Path(tmp)
        _smooth_jpegs(tmp / "jpegs", 512)
        for name in names:
            result["rows"].append(row(name, records.get(name), tmp, tmp / "jpegs", args.steps, args.windows))
            print(json.dumps(result["rows"][-1]), file=sys.stderr)
    result["load_after"] = os.getloadavg()
    result["markdown"] = markdown(result["rows"])
    print(result["markdown"])
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
