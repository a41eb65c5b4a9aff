"""The host's side of a step, measured: gathering stored rows and decoding files, in one run.

    python benchmarks/input_pipeline.py [--gather] [--decode] [--grain PATH] [--out FILE.json]

--gather: a batch of random rows (the train loop's access pattern: ``EpochShuffle`` indices) from
  uint8 images at 64x64x3 (20,000 images) and 256x256x3 (2,048), by
  * ``numpy``: ``x[idx]`` on the array in memory (the floor: one gather);
  * ``store``: ``StoreSource.get_stored_batch`` (a ``jaxgan prepare`` store, memory-mapped ``.npy``,
    page cache warm: what training reads);
  * ``arrays``: ``ArraySource.get_stored_batch`` (an ``.npz`` in memory, uint8 kept);
  * ``arrays_float32``: ``ArraySource.get_batch`` (the same converted to float32 on the host: what
    every batch crossed as before uint8 went to the device);
  * ``array_record``: ``ArrayRecordDataSource.__getitems__`` (one record per image) + ``np.frombuffer``;
  * ``grain``: ``grain.MapDataset.source(store).batch(B)[i]`` over the memory-mapped store
    (``--grain``: a folder holding grain 0.2.18, installed with ``pip install --target``).
  Rounds interleave the methods; each figure is the median over rounds; ratios are to ``numpy`` in
  the same round.
--decode: a folder of 2,048 JPEGs at 178x218 (CelebA's aligned size; smooth synthetic images,
  quality 90), centre-cropped and resized to 64 and to 256 (``FolderSource``): one thread, 2 threads,
  2 processes (``ProcessPoolExecutor``, batches returned to the parent), 256-image batches.

Prints one JSON object (also written to --out) with the load average before and after.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

ROUNDS = 7


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def gather(workdir: pathlib.Path, grain_path: str | None) -> dict:
    from jaxgan.data import ArraySource, EpochShuffle
    from jaxgan.data.store import StoreSource, write_store

    out = {}
    for res, n, batch in ((64, 20_000, 512), (256, 2_048, 256)):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
        arrays = ArraySource(x, seed=0)
        store_dir = workdir / f"store{res}"
        write_store(arrays, store_dir, progress=False, chunk=1024)
        store = StoreSource(store_dir, seed=0)
        shuffle = EpochShuffle(n, seed=0)
        methods = {
            "numpy": lambda s: x[shuffle(s * batch, batch)],
            "store": lambda s: store.get_stored_batch(s * batch, batch),
            "arrays": lambda s: arrays.get_stored_batch(s * batch, batch),
            "arrays_float32": lambda s: arrays.get_batch(s * batch, batch),
        }
        try:
            from array_record.python import array_record_data_source, array_record_module

            path = str(workdir / f"images{res}.array_record")
            writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
            for row in x:
                writer.write(row.tobytes())
            writer.close()
            reader = array_record_data_source.ArrayRecordDataSource(path)
            shape = x.shape[1:]
            methods["array_record"] = lambda s: np.stack(
                [np.frombuffer(r, np.uint8).reshape(shape) for r in reader.__getitems__(shuffle(s * batch, batch).tolist())])
        except ImportError as e:
            out[f"array_record_{res}"] = f"not installed ({e})"
        if grain_path:
            sys.path.insert(0, grain_path)
            import grain

            ds = grain.MapDataset.source(store.images).shuffle(seed=0).batch(batch)
            methods["grain"] = lambda s: ds[s % len(ds)]
        for f in methods.values():  # warm: page cache, permutations, first calls
            f(0)
        times = {k: [] for k in methods}
        for r in range(ROUNDS):
            for k, f in methods.items():
                times[k].append(_timed(f, r + 1))
        ratios = {k: statistics.median(t / b for t, b in zip(times[k], times["numpy"])) for k in methods}
        out[f"{res}x{res}x3"] = {
            "images": n, "batch": batch,
            "images_per_sec": {k: batch / statistics.median(v) for k, v in times.items()},
            "time_vs_numpy_same_round": ratios,
        }
    return out


def _smooth_jpegs(root: pathlib.Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (14, 12, 3), dtype=np.uint8)  # upsampled: photo-like smoothness
        Image.fromarray(small).resize((178, 218), Image.Resampling.BICUBIC).save(root / f"{i:05d}.jpg", quality=90)


def _decode_batch(args):
    """A process worker's batch (the source is rebuilt per process: cheap, a path listing)."""
    root, res, lo, hi = args
    from jaxgan.data import FolderSource

    src = FolderSource(root, seed=0, resolution=res, crop="center")
    return src.stored_examples(np.arange(lo, hi))["x"]


def decode(workdir: pathlib.Path, n: int = 2048, batch: int = 256) -> dict:
    from jaxgan.data import FolderSource

    root = workdir / "jpegs"
    _smooth_jpegs(root, n)
    out = {"images": n, "batch": batch, "size": "178x218 JPEG, crop=center"}
    starts = list(range(0, n, batch))
    for res in (64, 256):
        src = FolderSource(root, seed=0, resolution=res, crop="center")
        one = lambda lo: src.stored_examples(np.arange(lo, min(lo + batch, n)))
        src.stored_examples(np.arange(batch))  # warm: page cache
        rows = {"1 thread": [], "2 threads": [], "2 processes": []}
        with concurrent.futures.ThreadPoolExecutor(2) as threads, \
                concurrent.futures.ProcessPoolExecutor(2) as procs:
            list(procs.map(_decode_batch, [(str(root), res, 0, 8)] * 2))  # start the processes
            for _ in range(3):  # rounds, interleaved
                rows["1 thread"].append(_timed(lambda: [one(lo) for lo in starts]))
                rows["2 threads"].append(_timed(lambda: list(threads.map(one, starts))))
                rows["2 processes"].append(_timed(lambda: list(procs.map(
                    _decode_batch, [(str(root), res, lo, min(lo + batch, n)) for lo in starts]))))
        rates = {k: n / statistics.median(v) for k, v in rows.items()}
        out[f"to {res}"] = {"images_per_sec": rates,
                            "per_core_1_thread": rates["1 thread"],
                            "2_threads_vs_1": rates["2 threads"] / rates["1 thread"],
                            "2_processes_vs_1": rates["2 processes"] / rates["1 thread"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gather", action="store_true")
    p.add_argument("--decode", action="store_true")
    p.add_argument("--grain", help="a folder holding grain (pip install --target DIR grain==0.2.18 portpicker)")
    p.add_argument("--out")
    args = p.parse_args()
    result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="jaxgan-input-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        if args.gather or not args.decode:
            result["gather"] = gather(tmp, args.grain)
        if args.decode or not args.gather:
            result["decode"] = decode(tmp)
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
