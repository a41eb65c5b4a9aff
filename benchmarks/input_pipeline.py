"""The host's side of a step, measured: gathering stored rows and decoding files, in one run.

    python benchmarks/input_pipeline.py [--gather] [--decode] [--stages] [--grain PATH] [--out FILE.json]

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
  one process (``FolderSource(processes=1)`` called from one thread), 2 processes
  (``FolderSource(processes=2)``, called from 2 threads as the train loop's workers do: each batch
  decoded by one worker process into shared memory), 256-image batches, ``--rounds`` rounds.
  The worker processes are new in every round: one process decodes these JPEGs 20-40% faster or
  slower than another (``--processes`` measures it), so a figure from one set of processes says
  more of that set than of processes.
--processes: that spread: ``--rounds`` new Python processes, one after another, each decoding 1,024
  of the JPEGs to 64 three times in one thread; user CPU time per image of every pass.
--stages: where decoding's time goes, per image (512 of those JPEGs): each stage's CPU time on one
  thread (``time.thread_time``) and the stage alone on 2 threads against 1 (a stage that holds the
  GIL scales 1.0x, one that releases it up to 2.0x), for the decode before (``_old_decode``: numpy
  between the steps, then ``np.stack``) and after (``FolderSource``: PIL to the end, written into
  the batch).

Prints one JSON object (also written to --out) with the load average before and after.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
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


def decode(workdir: pathlib.Path, n: int = 2048, batch: int = 256, rounds: int = 3) -> dict:
    from jaxgan.data import FolderSource

    root = workdir / "jpegs"
    _smooth_jpegs(root, n)
    out = {"images": n, "batch": batch, "size": "178x218 JPEG, crop=center"}
    starts = list(range(0, n, batch))
    for res in (64, 256):
        src = FolderSource(root, seed=0, resolution=res, crop="center")
        batches = lambda s: lambda lo: s.stored_examples(np.arange(lo, min(lo + batch, n)))
        src.stored_examples(np.arange(batch))  # warm: page cache
        rows = {"1 thread": [], "2 threads": [], "1 process": [], "2 processes": []}
        with concurrent.futures.ThreadPoolExecutor(2) as threads:
            for _ in range(rounds):  # interleaved; new worker processes every round (see the docstring)
                procs = FolderSource(root, seed=0, resolution=res, crop="center", processes=2)
                proc1 = FolderSource(root, seed=0, resolution=res, crop="center", processes=1)
                for source in (procs, proc1):  # start the processes outside the timing (both, as 2
                    list(threads.map(batches(source), (0, 64)))  # batches are in flight at once)
                rows["1 thread"].append(_timed(lambda: [batches(src)(lo) for lo in starts]))
                rows["2 threads"].append(_timed(lambda: list(threads.map(batches(src), starts))))
                rows["1 process"].append(_timed(lambda: [batches(proc1)(lo) for lo in starts]))
                rows["2 processes"].append(_timed(lambda: list(threads.map(batches(procs), starts))))
                procs.close()
                proc1.close()
        rates = {k: n / statistics.median(v) for k, v in rows.items()}
        out[f"to {res}"] = {"images_per_sec": rates,
                            "per_core_1_thread": rates["1 thread"],
                            "2_threads_vs_1": rates["2 threads"] / rates["1 thread"],
                            "2_processes_vs_1": rates["2 processes"] / rates["1 thread"],
                            "2_processes_vs_1_process": rates["2 processes"] / rates["1 process"],
                            "seconds_per_round": rows}
    return out


def _old_decode(src, path) -> np.ndarray:
    """``FolderSource._decode`` before decoding moved into PIL (the reference of ``--stages``): the
    decoded image copied to numpy, then ``stored_pixels`` (``Image.fromarray``, resize, ``np.asarray``)."""
    from PIL import Image

    from jaxgan.data import stored_pixels

    image = Image.open(path)
    image.load()
    if image.mode != src.mode:
        image = image.convert(src.mode)
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return stored_pixels(pixels[None], src.options)[0]


def _each(fn, items) -> list:
    return [fn(item) for item in items]


def _cpu_and_scaling(fn, items, threads, rounds: int = 5) -> dict:
    """``fn`` over ``items``: this thread's CPU time per item (``time.thread_time``, one thread), and
    the wall time of the same items split over 2 threads against 1 (medians over interleaved rounds).
    A stage that holds the GIL throughout scales 1.0x, one that releases it 2.0x on 2 free cores."""
    cpu, one, two = [], [], []
    half = len(items) // 2
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.thread_time()
        _each(fn, items)
        cpu.append(time.thread_time() - c0)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(threads.map(lambda part: _each(fn, part), (items[:half], items[half:])))
        two.append(time.perf_counter() - t0)
    return {"cpu_us_per_image": 1e6 * statistics.median(cpu) / len(items),
            "wall_us_per_image": 1e6 * statistics.median(one) / len(items),
            "2_threads_vs_1": statistics.median(a / b for a, b in zip(one, two))}


def _load_scaling(open_all, threads, rounds: int = 5) -> dict:
    """As :func:`_cpu_and_scaling` for ``ImageFile.load`` (the decode), which needs images opened and
    not yet loaded in every round (opened outside the timing)."""
    cpu, one, two = [], [], []
    for _ in range(rounds):
        images = open_all()
        t0, c0 = time.perf_counter(), time.thread_time()
        for image in images:
            image.load()
        cpu.append(time.thread_time() - c0)
        one.append(time.perf_counter() - t0)
        images = open_all()
        half = len(images) // 2
        t0 = time.perf_counter()
        list(threads.map(lambda part: [image.load() for image in part], (images[:half], images[half:])))
        two.append(time.perf_counter() - t0)
    n = len(images)
    return {"cpu_us_per_image": 1e6 * statistics.median(cpu) / n,
            "wall_us_per_image": 1e6 * statistics.median(one) / n,
            "2_threads_vs_1": statistics.median(a / b for a, b in zip(one, two))}


def _gil_held(src, paths, rounds: int = 7) -> dict:
    """Per image, the CPU time of a whole decode (before / after) and, in the same run, of its calls
    that release the GIL, all on this thread (``time.thread_time``): PIL's decoders
    (``decoder.decode``: the JPEG's, and the raw one behind ``Image.fromarray``), ``Image.resize``
    and ``Image.crop`` (whole methods: their few microseconds of Python count as released). The rest
    (the JPEG header parsed in Python, ``ImageFile.load``'s Python, ``tobytes`` behind ``np.asarray``,
    whose encoder keeps the GIL, our code) is what the GIL serialises: the threads of one process
    decode at most 1 / that many images per second, whatever the cores."""
    from PIL import Image

    spent = {"released": 0.0}

    def timed(fn):
        def call(*args, **kwargs):
            c0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent["released"] += time.thread_time() - c0
        return call

    class _Timed:  # times decode() of the decoder it wraps; everything else passes through
        def __init__(self, decoder):
            self._decoder, self.decode = decoder, timed(decoder.decode)

        def __getattr__(self, name):
            return getattr(self._decoder, name)

    runs = {"before": lambda: np.stack([_old_decode(src, p) for p in paths]),
            "after": lambda: src.stored_examples(np.arange(len(paths)))}
    cpu, released = {k: [] for k in runs}, {k: [] for k in runs}
    originals = Image._getdecoder, Image.Image.resize, Image.Image.crop
    Image._getdecoder = lambda *a, **k: _Timed(originals[0](*a, **k))
    Image.Image.resize, Image.Image.crop = timed(originals[1]), timed(originals[2])
    try:
        for _ in range(rounds):  # interleaved, so drift in the machine's load touches both alike
            for name, run in runs.items():
                spent["released"] = 0.0
                c0 = time.thread_time()
                run()
                cpu[name].append(time.thread_time() - c0)
                released[name].append(spent["released"])
    finally:
        Image._getdecoder, Image.Image.resize, Image.Image.crop = originals
    rows = {}
    for name in runs:
        held = [(c - r) / len(paths) * 1e6 for c, r in zip(cpu[name], released[name])]
        fraction = [(c - r) / c for c, r in zip(cpu[name], released[name])]
        rows[name] = {"cpu_us_per_image": statistics.median(cpu[name]) / len(paths) * 1e6,
                      "gil_held_us_per_image": statistics.median(held),
                      "gil_held_fraction": statistics.median(fraction),
                      "threads_ceiling_images_per_sec": 1e6 / statistics.median(held)}
    return rows


def stages(workdir: pathlib.Path, n: int = 512, batch: int = 256) -> dict:
    """Per image, each stage of decoding a JPEG for a batch: its CPU time on one thread and the same
    stage alone on 2 threads against 1; the decode before this change (numpy between the steps:
    ``_old_decode`` + ``np.stack``) and after (``FolderSource._decode``: PIL to the end, written into
    the batch)."""
    from PIL import Image

    from jaxgan.data import FolderSource, stored_pixels
    from jaxgan.data.images import _center_box

    root = workdir / "jpegs"
    if not root.is_dir():
        _smooth_jpegs(root, n)
    out = {"images": n, "size": "178x218 JPEG, crop=center"}
    with concurrent.futures.ThreadPoolExecutor(2) as threads:
        for res in (64, 256):
            src = FolderSource(root, seed=0, resolution=res, crop="center")
            paths = src.paths[:n]
            open_all = lambda: [Image.open(p) for p in paths]
            loaded = open_all()
            for image in loaded:
                image.load()
            arrays = [np.asarray(image) for image in loaded]
            box = _center_box(loaded[0].height, loaded[0].width)
            cropped = [image.crop(box) for image in loaded]
            resized = [image.resize((res, res), Image.Resampling.BILINEAR) for image in cropped]
            into = np.empty((len(paths), res, res, 3), np.uint8)
            old_images = [_old_decode(src, p) for p in paths[:batch]]

            def into_batch(row):
                into[row] = np.asarray(resized[row])

            def old_batch(part):
                return np.stack([_old_decode(src, p) for p in part])

            def new_batch(part):
                return src.stored_examples(np.asarray(part))["x"]

            chunks = [list(range(lo, lo + batch)) for lo in range(0, len(paths), batch)]
            rows = {
                "open (Image.open: the header, parsed in Python)": _cpu_and_scaling(Image.open, paths, threads),
                "load (ImageFile.load: the JPEG decode)": _load_scaling(open_all, threads),
                "before: np.asarray of the decoded 178x218": _cpu_and_scaling(np.asarray, loaded, threads),
                "before: stored_pixels (crop, fromarray, resize, asarray)": _cpu_and_scaling(
                    lambda a: stored_pixels(a[None], src.options), arrays, threads),
                "before: np.stack": _cpu_and_scaling(lambda _: np.stack(old_images), [0, 1], threads),
                "after: Image.crop": _cpu_and_scaling(lambda image: image.crop(box), loaded, threads),
                "after: Image.resize": _cpu_and_scaling(
                    lambda image: image.resize((res, res), Image.Resampling.BILINEAR), cropped, threads),
                "after: np.asarray into the batch": _cpu_and_scaling(into_batch, list(range(len(paths))), threads),
                "before: whole batches": _cpu_and_scaling(lambda c: old_batch([paths[i] for i in c]), chunks,
                                                          threads),
                "after: whole batches (FolderSource.stored_examples)": _cpu_and_scaling(new_batch, chunks, threads),
            }
            rows["before: np.stack"]["cpu_us_per_image"] /= batch  # it timed whole batches
            rows["before: np.stack"]["wall_us_per_image"] /= batch
            for k in ("before: whole batches", "after: whole batches (FolderSource.stored_examples)"):
                rows[k]["cpu_us_per_image"] /= batch
                rows[k]["wall_us_per_image"] /= batch
            rows["GIL"] = _gil_held(src, paths[:batch])
            out[f"to {res}"] = rows
    return out


_ONE_PROCESS = """
import resource, sys
import numpy as np
from jaxgan.data import FolderSource
src = FolderSource(sys.argv[1], seed=0, resolution=64, crop="center")
passes = []
for _ in range(3):
    t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    src.stored_examples(np.arange(1024))
    passes.append(1e6 * (resource.getrusage(resource.RUSAGE_SELF).ru_utime - t0) / 1024)
print(passes)
"""


def processes(workdir: pathlib.Path, rounds: int) -> dict:
    """User CPU us per image of 3 passes over 1,024 JPEGs (to 64) in each of ``rounds`` new processes."""
    root = workdir / "jpegs"
    if not root.exists():
        _smooth_jpegs(root, 2048)
    runs = [json.loads(subprocess.run([sys.executable, "-c", _ONE_PROCESS, str(root)], check=True,
                                      capture_output=True, text=True).stdout) for _ in range(rounds)]
    fastest = [min(r) for r in runs]
    return {"user_us_per_image_per_pass": runs, "fastest_pass_per_process": fastest,
            "slowest_process_vs_fastest": max(fastest) / min(fastest)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gather", action="store_true")
    p.add_argument("--decode", action="store_true")
    p.add_argument("--stages", action="store_true", help="per-stage CPU time of decoding and its 2-thread scaling")
    p.add_argument("--processes", action="store_true", help="decoding speed in --rounds new processes")
    p.add_argument("--grain", help="a folder holding grain (pip install --target DIR grain==0.2.18 portpicker)")
    p.add_argument("--rounds", type=int, default=3, help="--decode's interleaved rounds (--processes: processes)")
    p.add_argument("--out")
    args = p.parse_args()
    result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="jaxgan-input-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        everything = not (args.gather or args.decode or args.stages or args.processes)
        if args.gather or everything:
            result["gather"] = gather(tmp, args.grain)
        if args.decode or everything:
            result["decode"] = decode(tmp, rounds=args.rounds)
        if args.stages:
            result["stages"] = stages(tmp)
        if args.processes:
            result["processes"] = processes(tmp, args.rounds)
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
