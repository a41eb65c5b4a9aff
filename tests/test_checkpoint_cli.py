"""Checkpoint integrity and identity from the command line.

A silently corrupt newest step is set aside and the run resumes from the older one exactly; another
run's checkpoints are refused by train, sample and eval, naming both runs; a failed restore or a
failed background save ends in the command's one line, which is the last thing on stderr.
"""
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import chex
import pytest

from conftest import final_state
from jaxgan import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
# 32-wide layers: 4 KiB kernels, stored in orbax's data files (arrays up to 1 KiB are inlined in its
# checksummed b-tree nodes, where a flipped byte is caught by orbax itself).
SMOKE = ["--smoke", "--set", "model.hidden=32"]


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_clear_line(code, err, *expected):
    """Exit 2, no traceback, and the error is the one last line of stderr."""
    assert code == 2, (code, err[-3000:])
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if "error:" in line] == lines[-1:], lines
    for text in expected:
        assert text in lines[-1], (text, lines[-1])


def flip_array_bytes(step_dir, n=64):
    """Flips ``n`` bytes in the middle of the step's largest array data file (zstd-compressed chunks
    without a checksum: orbax reads them without an error, the values change)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    path = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + n] = bytes(b ^ 0xFF for b in data[middle:middle + n])
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished ring8 and grid25 smoke runs (10 steps, checkpoints at 5 and 10, the same shapes)."""
    base = tmp_path_factory.mktemp("runs")
    for name in ("ring8", "grid25"):
        assert cli.main(["train", name, *SMOKE, "--workdir", str(base / name)]) == 0
    return base


def test_a_silently_corrupt_newest_step_is_set_aside_and_the_run_resumes_from_the_older_exactly(runs, tmp_path):
    wd = tmp_path / "run"
    shutil.copytree(runs / "ring8", wd)
    straight = final_state(wd)  # step 10, trained in one go
    flip_array_bytes(wd / "checkpoints" / "10")
    assert cli.main(["train", "ring8", *SMOKE, "--workdir", str(wd)]) == 0
    assert (wd / "checkpoints" / "corrupt" / "10").is_dir()  # kept for inspection
    resumed = final_state(wd)  # restored step 5, trained 5 more steps, saved step 10 again
    assert int(resumed.step) == 10
    chex.assert_trees_all_equal(resumed, straight)


def test_another_runs_checkpoints_are_refused_naming_both_runs(runs, tmp_path, capsys):
    wd = tmp_path / "ring8"
    shutil.copytree(runs / "ring8", wd)
    shutil.rmtree(wd / "checkpoints")
    shutil.copytree(runs / "grid25" / "checkpoints", wd / "checkpoints")  # the same array shapes
    before = sorted(p.name for p in (wd / "checkpoints").iterdir())
    for argv in (["sample", wd, "--out", tmp_path / "s.npy"], ["eval", wd],
                 ["train", "ring8", *SMOKE, "--workdir", wd]):
        code, err = run_cli(argv, capsys)
        assert_one_clear_line(code, err, "grid25", "ring8")
    assert sorted(p.name for p in (wd / "checkpoints").iterdir()) == before  # nothing moved aside
    assert not (tmp_path / "s.npy").exists()


def test_a_checkpoint_of_another_version_of_the_experiment_file_is_refused(runs, tmp_path, capsys):
    edited = tmp_path / "ring8.py"
    edited.write_text((runs / "ring8" / "experiment.py").read_text() + "\n# edited after the run\n")
    code, err = run_cli(["sample", runs / "ring8", "--experiment", edited, "--out", tmp_path / "s.npy"], capsys)
    assert_one_clear_line(code, err, "the file changed since that save", "sha256")


def test_an_extended_run_resumes_and_a_step_from_before_the_extension_still_samples(tmp_path, capsys):
    wd = tmp_path / "run"
    args = ["train", "ring8", "--smoke", "--set", "optim.schedule=constant", "--workdir", str(wd)]
    assert cli.main([*args, "--set", "train.total_kimg=0.32"]) == 0  # 5 steps
    assert cli.main([*args, "--set", "train.total_kimg=0.64"]) == 0  # resumed and extended to 10
    shutil.rmtree(wd / "checkpoints" / "10")  # left: step 5, saved with total_kimg 0.32
    code, err = run_cli(["sample", wd, "--out", tmp_path / "s.npy"], capsys)
    assert code == 0, err
    assert (tmp_path / "s.npy").exists()


# ---------------------------------------------------------------- the one line is the last line
def _jaxgan_process(argv, *, before="", setup=""):
    """``jaxgan ARGV`` in a fresh process (orbax's threads and Python's exit are part of what is tested);
    ``before`` runs before jaxgan is imported, ``setup`` after."""
    code = (f"import sys\n{before}\nfrom jaxgan import cli\n{setup}\n"
            f"sys.exit(cli.main({[str(a) for a in argv]!r}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def assert_ends_in_one_line(proc, *expected):
    assert_one_clear_line(proc.returncode, proc.stderr, *expected)
    assert " ERROR " not in proc.stderr, proc.stderr[-3000:]


@pytest.fixture
def changed_model(runs, tmp_path):
    """The ring8 run, and a ring8.py whose model no longer fits its arrays (the config is unchanged, so
    train resumes with a warning that the file changed, and its restore fails)."""
    wd = tmp_path / "run"
    shutil.copytree(runs / "ring8", wd)
    experiment = tmp_path / "ring8.py"
    experiment.write_text((ROOT / "experiments" / "ring8.py").read_text() + (
        "\n\ndef build(config, info):  # the same config, another model\n"
        "    import copy\n\n"
        "    config = copy.deepcopy(config)\n"
        "    config.model.hidden = 24\n"
        "    return mlp_gan(config, info)\n"))
    return experiment, wd


def test_a_restore_that_fails_ends_in_one_line(changed_model):
    experiment, wd = changed_model
    proc = _jaxgan_process(["train", experiment, *SMOKE, "--workdir", wd])
    assert_ends_in_one_line(proc, "no checkpoint in", "restores")
    # sample would refuse the edited file before reading arrays; without that check, the same failure:
    proc = _jaxgan_process(["sample", wd, "--experiment", experiment, "--out", wd.parent / "s.npy"],
                           setup="cli._same_run_check = lambda *args: None")
    assert_ends_in_one_line(proc, "no checkpoint in", "restores")


async def async_serialize_from_host():
    """Makes a coroutine named as orbax's per-fragment writes (its serialization.py), which a failed
    background save can leave unstarted."""
    async def write_fragment():
        pass
    return write_fragment()


def test_an_orbax_read_left_unawaited_is_quiet_on_the_command_line():
    """The warnings for orbax read coroutines left unstarted by a failed restore (an array's, and a
    metadata file's: met by test_a_restore_that_fails_ends_in_one_line under load) and for a write
    one left by a failed background save (races in orbax: the tests around met each once, after the
    command's last line) are dropped where the command line is quiet, and shown again where it is not
    (--debug)."""
    import gc
    import warnings

    from orbax.checkpoint._src.metadata import array_metadata_store
    from orbax.checkpoint._src.serialization import serialization

    from jaxgan.checkpoint import quiet_orbax_failures

    def left_unawaited():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # Python's own default for this warning
            quiet_orbax_failures(quiet)  # its filter goes in front
            coroutine = serialization._read_array_index_and_device_put(
                [], (), None, global_shape=(), new_shard_shape=(), dtype=None, byte_limiter=None,
                strict=True, dll=None, memory_kind=None)
            metadata = array_metadata_store.Store()._get_array_metadatas(None)
            outer = async_serialize_from_host()
            try:
                outer.send(None)
            except StopIteration as done:
                write = done.value
            del coroutine, metadata, write
            gc.collect()
        return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]

    try:
        quiet = False
        assert left_unawaited() == ["coroutine '_read_array_index_and_device_put' was never awaited",
                                    "coroutine 'Store._get_array_metadatas' was never awaited",
                                    "coroutine 'async_serialize_from_host.<locals>.write_fragment' was never awaited"]
        quiet = True
        assert left_unawaited() == []
    finally:
        quiet_orbax_failures(False)


def test_a_failed_tensorstore_write_never_retrieved_is_quiet_on_the_command_line(caplog):
    """asyncio's "Future exception was never retrieved" record of a tensorstore write that failed in a
    background save (CI met it once after the command's one line: a bare "ValueError: OUT_OF_RANGE:
    ..." with no traceback) is dropped where the command line is quiet; others are kept."""
    import asyncio
    import gc

    from jaxgan.checkpoint import quiet_orbax_failures

    def left_unretrieved(exc):
        loop = asyncio.new_event_loop()
        try:
            future = loop.create_future()
            future.set_exception(exc)  # set from C++ by tensorstore: no Python traceback
            del future
            gc.collect()
        finally:
            loop.close()

    failed_write = ValueError('OUT_OF_RANGE: Error writing "step/0" in OCDBT database: File too large')
    try:
        for quiet in (False, True):
            quiet_orbax_failures(quiet)
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="asyncio"):
                left_unretrieved(ValueError(str(failed_write)))
                left_unretrieved(ValueError("a failure of some other code"))
            shown = [str(r.exc_info[1]) for r in caplog.records if "never retrieved" in r.getMessage()]
            assert shown == ([str(failed_write)] if not quiet else []) + ["a failure of some other code"]
    finally:
        quiet_orbax_failures(False)


# Files over 8 KiB cannot be written (EFBIG, as a full disk fails orbax's background save); the
# limit is set in the child itself (a preexec_fn would fork this multithreaded process).
SMALL_FILE_LIMIT = ("import resource, signal\n"
                    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                    "resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, 8 * 1024))")


def test_a_background_save_that_fails_ends_in_one_line(tmp_path):
    wd = tmp_path / "run"
    proc = _jaxgan_process(["train", "ring8", "--smoke", "--workdir", wd, "--no-compile-cache", "--set",
                            "model.hidden=64", "--set", "sample_every_steps=0"], before=SMALL_FILE_LIMIT)
    assert_ends_in_one_line(proc, "File too large", str(wd / "checkpoints"))
