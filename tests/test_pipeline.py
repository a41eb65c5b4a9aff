"""The prefetching input pipeline yields exactly the synchronous pipeline's batches, in order."""
import concurrent.futures
import gc
import os
import pathlib
import random
import time

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib, run as run_lib, sharding
from jaxgan.pipeline import Prefetcher


@pytest.mark.parametrize("workers", [1, 3])
def test_prefetched_batches_equal_the_synchronous_ones(workers):
    config, module = config_lib.resolve("ring8", ["train.n_critic=2"], smoke=True)
    run = run_lib.build(config, module)
    place = lambda s: sharding.global_batch(run.mesh, run_lib.host_batch(run, s))

    def slow_place(s):  # out-of-order completion must not reorder the stream
        time.sleep(random.Random(s).uniform(0, 0.02))
        return place(s)

    with Prefetcher(slow_place, 3, 11, depth=3, workers=workers) as it:
        got = list(it)
    assert [s for s, _ in got] == list(range(3, 11))
    for s, batch in got:
        expected = jax.device_get(place(s))
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(batch), expected)
        assert batch["x"].sharding == sharding.batch_sharding(run.mesh)


@pytest.mark.parametrize("workers", [1, 3])
def test_batches_transferred_several_steps_at_once_equal_the_step_by_step_ones(workers):
    """A chunk of 4 steps per transfer, from a resumed step 3 to 14 (the last transfer carries 3): each
    step's batch equals the synchronous one, with the same sharding, and the meter counts steps."""
    config, module = config_lib.resolve("ring8", ["train.n_critic=2", "input_steps_per_transfer=4"], smoke=True)
    run = run_lib.build(config, module)
    make, n_workers, chunk = run_lib.input_pipeline(run)
    assert (n_workers, chunk) == (1, 4)
    calls = []

    def slow_make(s, n):
        calls.append((s, n))
        time.sleep(random.Random(s).uniform(0, 0.02))
        return make(s, n)

    with Prefetcher(slow_make, 3, 14, depth=2, workers=workers, chunk=chunk) as it:
        got = list(it)
        assert it.consumed == 11 and it.build_seconds > 0
    assert sorted(calls) == [(3, 4), (7, 4), (11, 3)]
    assert [s for s, _ in got] == list(range(3, 14))
    for s, batch in got:
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(batch),
                     jax.device_get(sharding.global_batch(run.mesh, run_lib.host_batch(run, s))))
        assert batch["x"].sharding == sharding.batch_sharding(run.mesh)
        assert batch["x"].shape == (2, config.train.batch_size, 2)


def test_one_read_of_several_steps_equals_their_reads_one_by_one(tmp_path):
    """host_batches reads steps s..s+n-1 of a prepared store (uint8 images and labels, 2 critic
    updates, an epoch boundary inside) in one call: the rows of host_batch, step by step, and of the
    stream's batches, update by update."""
    from jaxgan.data import ArraySource
    from jaxgan.data.store import write_store

    rng = np.random.default_rng(0)
    write_store(ArraySource(rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8), rng.integers(0, 5, 37), seed=0,
                            num_classes=5), tmp_path / "st", progress=False)
    from jaxgan.data import make_source

    config, module = config_lib.resolve("cgan_mnist", ["train.batch_size=4", "train.n_critic=2"], smoke=True)
    run = run_lib.build(config, module, source=make_source({"name": "store", "path": str(tmp_path / "st")}, seed=0))
    got = run_lib.host_batches(run, 3, 5)  # stream rows 24..63: past the 37-image epoch
    assert got["x"].shape == (5, 2, 4, 8, 8, 3) and got["x"].dtype == np.uint8
    from jaxgan.data import process_batch

    for i in range(5):
        jax.tree.map(np.testing.assert_array_equal, {k: v[i] for k, v in got.items()}, run_lib.host_batch(run, 3 + i))
        for c in range(2):  # critic update c of step s is global batch s * n_critic + c of the stream
            jax.tree.map(np.testing.assert_array_equal, {k: v[i, c] for k, v in got.items()},
                         process_batch(run.source, (3 + i) * 2 + c, 4, stored=True))
    with pytest.raises(ValueError, match="steps >= 1"):
        run_lib.host_batches(run, 0, 0)


def test_small_batches_travel_several_steps_a_transfer_and_large_or_decoded_ones_one(tmp_path):
    from PIL import Image

    from jaxgan.data import make_source
    from jaxgan.pipeline import MAX_STEPS_PER_TRANSFER, TRANSFER_BYTES, steps_per_transfer

    ring = make_source("ring8", seed=0)
    assert steps_per_transfer(ring, 100_000) == min(MAX_STEPS_PER_TRANSFER, TRANSFER_BYTES // 100_000)
    assert steps_per_transfer(ring, 2_000) == MAX_STEPS_PER_TRANSFER
    assert steps_per_transfer(ring, 6_300_000) == 1  # dcgan64's 512 images: one step a transfer
    assert steps_per_transfer(ring, 6_300_000, setting=3) == 3  # the config's value wins
    (tmp_path / "f").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "f" / "0.png")
    assert steps_per_transfer(make_source({"name": "folder", "path": str(tmp_path / "f")}, seed=0), 100) == 1
    with pytest.raises(ValueError, match="chunk >= 1"):
        Prefetcher(lambda s, n: [s] * n, 0, 1, chunk=0)


def test_a_failing_batch_raises_in_the_consumer_and_stops():
    def make(s):
        if s == 2:
            raise FileNotFoundError("shard 2 is missing")
        return s

    it = Prefetcher(make, 0, 10, depth=2)
    assert next(it) == (0, 0) and next(it) == (1, 1)
    with pytest.raises(FileNotFoundError, match="shard 2"):
        next(it)
    it.close()


def test_nothing_is_built_past_stop_and_bad_arguments_are_refused():
    built = []
    with Prefetcher(lambda s: built.append(s) or s, 5, 7, depth=4) as it:
        assert [s for s, _ in it] == [5, 6]
    assert sorted(built) == [5, 6]
    with pytest.raises(ValueError, match="depth >= 1"):
        Prefetcher(lambda s: s, 0, 1, depth=0)


def test_a_raising_worker_among_several_ends_the_stream_with_its_error_and_no_hang():
    def make(s):
        if s == 4:
            raise ValueError("cannot decode image faces/0004.jpg: truncated. Remove or replace the file")
        return s

    with pytest.raises(ValueError, match="faces/0004.jpg"):
        with Prefetcher(make, 0, 100, depth=4, workers=3) as it:
            for step, batch in it:
                assert batch == step
    # leaving the with block shut the pool down: the remaining steps were cancelled, not built


class _Counters:
    """What InputMeter reads from a Prefetcher, set by hand (no clock in the test)."""
    workers, waited, build_seconds, consumed = 2, 0.0, 0.0, 0


def test_input_meter_reports_the_wait_fraction_and_the_pipeline_rate_and_warns_once(caplog):
    from jaxgan.pipeline import InputMeter

    counters = _Counters()
    meter = InputMeter(counters, images_per_batch=64, remedy="prepare a store")
    meter.reset()
    counters.waited, counters.build_seconds, counters.consumed = 0.01, 0.4, 10  # 10 steps at 10 steps/s
    with caplog.at_level("WARNING", logger="jaxgan.pipeline"):
        m = meter.update(steps_per_sec=10.0)
    assert m == pytest.approx({"input/wait_fraction": 0.01, "input/images_per_sec": 10 * 64 / 0.4 * 2})
    assert not caplog.records  # 1% of the time: fed
    counters.waited, counters.build_seconds, counters.consumed = 0.01 + 0.6, 0.4 + 2.0, 20
    with caplog.at_level("WARNING", logger="jaxgan.pipeline"):
        m = meter.update(steps_per_sec=10.0)
        assert m["input/wait_fraction"] == pytest.approx(0.6)
        meter.update(steps_per_sec=10.0)  # an empty interval: no metrics, no second warning
        counters.waited, counters.consumed = counters.waited + 2.0, 30  # more than the step time: 1
        assert meter.update(steps_per_sec=10.0)["input/wait_fraction"] == 1.0
    [warning] = caplog.records
    assert "input-bound" in warning.getMessage() and "60%" in warning.getMessage()
    assert "prepare a store" in warning.getMessage()


def test_decoding_sources_get_a_worker_per_core_and_arrays_one(tmp_path):
    from PIL import Image

    from jaxgan.data import make_source
    from jaxgan.pipeline import default_workers

    (tmp_path / "f").mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / "f" / f"{i}.png")
    folder = {"name": "folder", "path": str(tmp_path / "f")}
    assert default_workers(make_source(folder, seed=0), cpu_count=16) == 16
    assert default_workers(make_source({**folder, "part": [0, 2], "transform": "invert"}, seed=0), cpu_count=16) == 16
    from jaxgan.pipeline import can_use_processes, use_processes

    viewed = make_source({**folder, "part": [0, 2]}, seed=0)  # input_processes reaches through views
    assert can_use_processes(viewed) and not can_use_processes(make_source("ring8", seed=0))
    assert use_processes(viewed, 24) == 1 and viewed.source.processes == 24
    assert default_workers(viewed, cpu_count=16) == 24  # a thread per process, each with a batch to build
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4, 3), np.uint8))
    assert default_workers(make_source({"name": "npy", "path": str(tmp_path / "x.npy")}, seed=0), cpu_count=16) == 1
    assert default_workers(make_source("ring8", seed=0), cpu_count=16) == 1


def test_the_stream_built_by_several_workers_equals_the_synchronous_one_across_a_resume(tmp_path):
    """A folder run (decoded per batch, stored uint8) from step 0 and one resumed at step 3 read the
    same batches as the synchronous loop, with 3 workers."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "f").mkdir()
    for i in range(11):
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / "f" / f"{i:02d}.png")
    config, module = config_lib.resolve("dcgan64", [f"data.path={tmp_path / 'f'}", "data.resolution=28",
                                                    "train.batch_size=4", "train.n_critic=2"], smoke=True)
    run = run_lib.build(config, module)
    expected = {s: run_lib.host_batch(run, s) for s in range(8)}
    assert expected[0]["x"].dtype == np.uint8 and expected[0]["x"].shape == (2, 4, 28, 28, 3)
    for start in (0, 3):
        with Prefetcher(lambda s: run_lib.host_batch(run, s), start, 8, depth=4, workers=3) as it:
            got = dict(it)
        assert sorted(got) == list(range(start, 8))
        for s in got:
            jax.tree.map(np.testing.assert_array_equal, got[s], expected[s])


def test_a_folder_decoded_in_worker_processes_gives_the_same_stream_and_a_dead_worker_one_line(tmp_path):
    """input_processes=2: the batches of a run decoded in worker processes, built by 3 threads from a
    resumed step, are the synchronous in-thread ones; a killed worker soon ends every batch in one
    RuntimeError that names the remedy, and closing the source lets a later batch start new ones."""
    from jaxgan.pipeline import use_processes

    import os
    import signal

    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "f").mkdir()
    for i in range(11):
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / "f" / f"{i:02d}.jpg")
    runs = {}
    for processes in (0, 2):
        config, module = config_lib.resolve("dcgan64", [f"data.path={tmp_path / 'f'}", "data.resolution=12",
                                                        f"input_processes={processes}", "train.batch_size=4",
                                                        "train.n_critic=2"], smoke=True)
        runs[processes] = run_lib.build(config, module)
        assert use_processes(runs[processes].source, config.input_processes) == 1  # as the train loop does
    source = runs[2].source
    assert source.processes == 2 and runs[0].source.processes == 0 and source._pool is None
    with Prefetcher(lambda s: run_lib.host_batch(runs[2], s), 3, 8, depth=4, workers=3) as it:
        got = dict(it)
    assert sorted(got) == list(range(3, 8))
    for s in got:
        jax.tree.map(np.testing.assert_array_equal, got[s], run_lib.host_batch(runs[0], s))
    os.kill(next(iter(source._pool._processes)), signal.SIGKILL)
    # The pool learns of the death in its own thread: until then the surviving worker may still decode a
    # batch or two (CI met one: the next batch came whole), after that every batch fails.
    deadline = time.monotonic() + 60
    with pytest.raises(RuntimeError, match=r"process decoding the images of .*f stopped .*input_processes=0"):
        while time.monotonic() < deadline:
            run_lib.host_batch(runs[2], 0)
            time.sleep(0.01)
    source.close()
    jax.tree.map(np.testing.assert_array_equal, run_lib.host_batch(runs[2], 1), run_lib.host_batch(runs[0], 1))
    source.close()


def test_worker_processes_decode_into_reused_shared_memory_that_close_frees(tmp_path):
    """input_processes=2: batches decoded in worker processes (indices in any order, repeated, from
    2 threads at once) equal the in-thread ones; an undecodable file fails its batch with its name
    and later batches come whole; the shared-memory blocks are reused (no more than the batches in
    flight) and ``close`` unlinks them."""
    from jaxgan.data import FolderSource

    shm = pathlib.Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm on this system (POSIX shared memory is listed there on Linux)")
    folder = _jpeg_folder(tmp_path / "f")
    (folder / "05.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    threads = FolderSource(folder, seed=0, resolution=16, crop="center")
    procs = FolderSource(folder, seed=0, resolution=16, crop="center", processes=2)
    rows = np.array([0, 11, 3, 3, 7])
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            batches = list(pool.map(lambda _: procs.stored_examples(rows)["x"], range(6)))
        for x in batches:
            np.testing.assert_array_equal(x, threads.stored_examples(rows)["x"])
        with pytest.raises(ValueError, match=r"cannot decode image .*05\.jpg"):
            procs.stored_examples(np.array([4, 5, 6]))
        np.testing.assert_array_equal(procs.stored_examples(np.array([6, 4]))["x"],
                                      threads.stored_examples(np.array([6, 4]))["x"])
        names = [block.name for block in procs._blocks._free]
        assert 1 <= len(names) <= 2 and all((shm / name).exists() for name in names), names
    finally:
        procs.close()
    assert not [name for name in names if (shm / name).exists()]
    # a source dropped without close (a script) frees its blocks when collected, not at the system's leisure
    dropped = FolderSource(folder, seed=0, resolution=16, crop="center", processes=1)
    dropped.stored_examples(rows)
    names = [block.name for block in dropped._blocks._free]
    assert names and all((shm / name).exists() for name in names)
    del dropped
    gc.collect()
    assert not [name for name in names if (shm / name).exists()]


def test_worker_processes_fall_back_to_the_pipe_with_one_warning_where_shared_memory_is_full(
        tmp_path, monkeypatch, caplog):
    """A full /dev/shm (a default Docker container has 64 MB; a 256x256 batch of 256 is 50 MB) is met
    when a block's pages are reserved: the block is unlinked, the batches come back through the
    pool's pipe, equal, and one warning says how to give the container more."""
    import errno
    import logging

    from jaxgan.data import FolderSource, folder as folder_lib

    def full(block):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder_lib, "_reserve", full)
    folder = _jpeg_folder(tmp_path / "f")
    threads = FolderSource(folder, seed=0, resolution=16, crop="center")
    procs = FolderSource(folder, seed=0, resolution=16, crop="center", processes=2)
    rows = np.array([2, 9, 0])
    try:
        with caplog.at_level(logging.WARNING, logger="jaxgan.data.folder"):
            for _ in range(3):
                np.testing.assert_array_equal(procs.stored_examples(rows)["x"], threads.stored_examples(rows)["x"])
        assert procs._blocks._free == []
    finally:
        procs.close()
    warnings = [r.getMessage() for r in caplog.records if "shared memory" in r.getMessage()]
    assert len(warnings) == 1 and "--shm-size" in warnings[0] and "input_processes=0" in warnings[0], warnings
    shm = pathlib.Path("/dev/shm")
    assert not (shm.is_dir() and list(shm.glob(f"jaxgan_{os.getpid()}_*")))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = pathlib.Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_a_training_run_stops_its_decoding_processes_when_it_ends(tmp_path, monkeypatch):
    """input_processes=2: the folder's worker processes are gone when train returns (before, they
    lived on, e.g. in a notebook, until the source was collected)."""
    from jaxgan import cli
    from jaxgan.data.folder import FolderSource

    workers = []
    close = FolderSource.close

    def recording_close(self):  # the workers of the pool that close stops
        if self._pool is not None:
            workers.extend(self._pool._processes)
        close(self)

    monkeypatch.setattr(FolderSource, "close", recording_close)
    folder = _jpeg_folder(tmp_path / "f", n=8)
    assert cli.main(["train", "dcgan64", "--smoke", "--workdir", str(tmp_path / "run"), "--set", f"data.path={folder}",
                     "--set", "data.resolution=32", "--set", "input_processes=2", "--set", "eval.num_samples=16",
                     "--set", "sample_every_steps=0", "--no-compile-cache"]) == 0
    assert len(workers) == 2, workers  # the run's pool, stopped by the run
    assert not [pid for pid in workers if _alive(pid)]


def _jpeg_folder(root, n=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (43, 35, 3), dtype=np.uint8)).save(root / f"{i:02d}.jpg")
    return root


def test_bench_input_times_the_pipeline_alone_on_a_tiny_folder(tmp_path, capsys):
    import json

    from jaxgan import bench, cli
    from jaxgan.errors import UserError

    folder = _jpeg_folder(tmp_path / "f")
    out = tmp_path / "b.jsonl"
    assert cli.main(["bench", "dcgan64", "--smoke", "--input", "--set", f"data.path={folder}", "--set",
                     "data.resolution=32", "--set", "input_workers=2", "--steps", "2", "--windows", "2",
                     "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "input pipeline of dcgan64" in printed and "images/s on 2 worker(s)" in printed
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["kind"] == "input" and record["input_workers"] == 2 and record["dtype"] == "uint8"
    assert record["bytes_per_image"] == 32 * 32 * 3  # uint8 pixels cross as stored; no labels here
    for key in ("input_images_per_sec", "input_images_per_sec_per_core", "input_images_per_sec_1_worker"):
        assert record[key] > 0, key
    assert record["input_steps_per_transfer"] == 1  # a decoding source: one step a transfer
    with pytest.raises(UserError, match="no records"):  # --table shows step records: input records are skipped
        bench.read_records(out)
    # arrays: the loop's transfers of several steps, timed as the loop makes them
    points = bench.bench_input("ring8", [], smoke=True, steps=3, windows=1)
    assert points["input_steps_per_transfer"] == 32 and points["steps"] == 32  # whole transfers
    assert points["bytes_per_image"] == 2 * 4 and points["input_images_per_sec"] > 0


def test_bench_builds_a_tfds_experiment_without_its_data_from_the_declared_shapes(tmp_path, monkeypatch):
    """sngan_cifar10's data (TFDS cifar10) is not on disk: the step is built from a stand-in of the
    shapes TFDS's builder declares (32x32x3 uint8, 10 classes) and lowers (no compile: seconds)."""
    from jaxgan import bench

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    config, module = config_lib.resolve("sngan_cifar10", ["model.g_width=8", "model.d_width=8",
                                                          "train.batch_size=8", "train.n_critic=1"])
    run = bench._build(config, module, jax.devices()[:1], "synthetic")
    example = run_lib.example_batch(run)
    assert example["x"].shape == (1, 8, 32, 32, 3) and example["x"].dtype == np.uint8
    assert run.source.info.num_classes == 10 and example["label"].dtype == np.int32
    state = run.step.abstract_state(jax.tree.map(lambda x: x[0], example))
    batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.batch_sharding(run.mesh)),
                         example)
    assert run.step.lower(state, batch).cost_analysis()
    # an image folder without `resolution` declares no shape: one line that says what to set
    config, module = config_lib.resolve("dcgan64", [f"data.path={tmp_path / 'nowhere'}"])
    del config.data["resolution"]
    with pytest.raises(ValueError, match="declares no image size without its data: set data.resolution"):
        bench._build(config, module, jax.devices()[:1], "synthetic")


def test_a_file_that_fails_to_decode_ends_the_input_pipeline_in_one_line_and_exit_2(tmp_path, capsys):
    from jaxgan import cli

    folder = _jpeg_folder(tmp_path / "f")
    (folder / "05.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert cli.main(["bench", "dcgan64", "--smoke", "--input", "--set", f"data.path={folder}", "--set",
                     "data.resolution=32", "--set", "input_workers=3", "--steps", "2", "--windows", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot decode image" in err[0] and "05.jpg" in err[0], err
