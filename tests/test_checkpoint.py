"""Checkpointer: bit-exact round trips, keep-N, corrupt and incomplete steps, other device counts.

Run as a script (``python tests/test_checkpoint.py worker DIR``) it is the multi-device worker: the
parent sets XLA_FLAGS before this process imports jax.
"""
import errno
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jaxgan.checkpoint import Checkpointer, read_config  # noqa: E402
from xla_env import host_devices  # noqa: E402
from jaxgan.state import GANState  # noqa: E402

CONFIG = {"model": {"name": "tiny", "widths": [4, 8]}, "lr": 1e-3, "smoke": True}


def make_state(seed=0, *, ema=False, mesh=None):
    """A tiny GANState: adam states (NamedTuples), int32 step, uint32 rng, optional None fields."""
    rs = np.random.RandomState(seed)
    g = {"dense": {"kernel": jnp.asarray(rs.randn(3, 4), jnp.float32), "bias": jnp.zeros(4)}}
    d = {"kernel": jnp.asarray(rs.randn(4, 1), jnp.float32)}
    tx = optax.adam(1e-3)
    g_opt, d_opt = tx.init(g), tx.init(d)
    g_opt = tx.update(g, g_opt, g)[1]  # non-zero moments and count
    state = GANState(step=jnp.asarray(seed + 1, jnp.int32), g_params=g, d_params=d, g_state={},
                     d_state={"batch_stats": {"mean": jnp.asarray(rs.randn(2), jnp.float32)}},
                     g_opt_state=g_opt, d_opt_state=d_opt,
                     g_ema=jax.tree.map(lambda x: x + 1, g) if ema else None, extra=None,
                     rng=jax.random.PRNGKey(seed))
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, P()))
    return state


def abstract(state, mesh):
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        jax.eval_shape(lambda: state))


def mesh_of(n=None):
    devices = jax.devices() if n is None else jax.devices()[:n]
    return Mesh(np.array(devices), ("data",))


def save_steps(ckpt, steps, **kw):
    for s in steps:
        assert ckpt.save(s, make_state(s, **kw), data_position={"step": s, "epoch": np.int64(s // 2)},
                         config=CONFIG)
    ckpt.wait()


@pytest.fixture
def ckpt_dir(tmp_path):
    return tmp_path / "checkpoints"


def test_round_trip_is_bit_exact(ckpt_dir):
    state = make_state(3)
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.save(7, state, data_position={"epoch": np.int32(1), "index": 96}, config=CONFIG)
        ckpt.wait()
        assert ckpt.latest_step() == 7
        restored, position, config = ckpt.restore(abstract(state, mesh_of()))
    chex.assert_trees_all_equal(restored, state)
    assert restored.g_ema is None and restored.extra is None
    assert restored.step.dtype == jnp.int32 and restored.rng.dtype == jnp.uint32
    assert type(restored.g_opt_state[0]) is type(state.g_opt_state[0])  # ScaleByAdamState
    assert position == {"epoch": 1, "index": 96} and config == CONFIG
    assert (ckpt_dir / "7" / "state").is_dir() and (ckpt_dir / "7" / "meta").is_dir()
    assert read_config(ckpt_dir) == CONFIG


def test_restore_with_ema_and_explicit_step(ckpt_dir):
    with Checkpointer(ckpt_dir, async_save=False) as ckpt:
        save_steps(ckpt, [1, 2], ema=True)
        restored, position, _ = ckpt.restore(abstract(make_state(ema=True), mesh_of()), step=1)
    chex.assert_trees_all_equal(restored, make_state(1, ema=True))
    assert position == {"step": 1, "epoch": 0}


def test_keep_two_keeps_the_last_two(ckpt_dir):
    with Checkpointer(ckpt_dir, keep=2) as ckpt:
        save_steps(ckpt, [1, 2, 3, 4])
        assert ckpt.all_steps() == [3, 4]
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["3", "4"]


def test_no_checkpoint_and_missing_step_errors(tmp_path, ckpt_dir):
    assert read_config(tmp_path / "nowhere") is None
    target = abstract(make_state(), mesh_of())
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(FileNotFoundError, match="no checkpoint in"):
            ckpt.restore(target)
        save_steps(ckpt, [1, 2])
        with pytest.raises(FileNotFoundError, match=r"step 5 .*available steps are \[1, 2\]"):
            ckpt.restore(target, step=5)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        Checkpointer(ckpt_dir).save(3, make_state(), data_position={"x": object()}, config={})


def test_same_step_twice_does_not_crash(ckpt_dir):
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.save(5, make_state(5), data_position={"i": 1}, config=CONFIG)
        assert not ckpt.save(5, make_state(6), data_position={"i": 2}, config=CONFIG)  # in flight
        ckpt.wait()
        assert not ckpt.save(5, make_state(6), data_position={"i": 2}, config=CONFIG, force=True)
    with Checkpointer(ckpt_dir) as ckpt:  # resumed run, step already on disk
        assert not ckpt.save(5, make_state(6), data_position={"i": 3}, config=CONFIG, force=True)
        restored, position, _ = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(5))
    assert position == {"i": 1}


def _truncate_arrays(step_dir):
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    files = files or [p for p in (step_dir / "state").rglob("*") if p.is_file()]
    for p in files:
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size // 2)


def _delete_meta(step_dir):
    shutil.rmtree(step_dir / "meta")


# orbax leaves the failed read's inner futures unretrieved; their exceptions surface at collection.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("corrupt", [_truncate_arrays, _delete_meta])
def test_corrupt_newest_step_is_skipped_and_moved_aside(ckpt_dir, caplog, corrupt):
    with Checkpointer(ckpt_dir, keep=2) as ckpt:
        save_steps(ckpt, [1, 2])
    corrupt(ckpt_dir / "2")
    caplog.set_level(logging.WARNING, logger="jaxgan.checkpoint")
    with Checkpointer(ckpt_dir, keep=2) as ckpt:
        assert read_config(ckpt_dir) == CONFIG
        restored, position, _ = ckpt.restore(abstract(make_state(), mesh_of()))
        chex.assert_trees_all_equal(restored, make_state(1))
        assert position["step"] == 1
        assert any("step 2" in r.getMessage() for r in caplog.records)
        assert (ckpt_dir / "corrupt" / "2").is_dir() and (ckpt_dir / "1").is_dir()
        assert ckpt.latest_step() == 1
        save_steps(ckpt, [2])  # the run goes on: the old good step is still kept (keep=2)
        assert ckpt.all_steps() == [1, 2]
    assert (ckpt_dir / "corrupt" / "2").is_dir()


def big_state(seed):
    """make_state with a 32x32 kernel: arrays over 1 KiB live in data files, outside orbax's checksummed
    b-tree nodes (smaller ones are inlined there)."""
    kernel = np.random.RandomState(seed).randn(32, 32).astype(np.float32)
    return make_state(seed).replace(d_params={"kernel": jnp.asarray(kernel)})


def _data_file(step_dir):
    """The largest array data file of a step (zstd-compressed chunks, no checksum of their own)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


def _flip_bytes(path, n=64):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + n] = bytes(b ^ 0xFF for b in data[middle:middle + n])
    path.write_bytes(bytes(data))


def _edit_meta(step_dir, edit):
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _from_step_1(item):
    """Replaces the step's ``item`` (state or meta) by step 1's: each well-formed, the pair wrong."""
    def damage(step_dir):
        shutil.rmtree(step_dir / item)
        shutil.copytree(step_dir.parent / "1" / item, step_dir / item)
    return damage


SILENT_CORRUPTIONS = {
    "flip_64_bytes_of_array_data": lambda step_dir: _flip_bytes(_data_file(step_dir)),
    "flip_1_byte_of_array_data": lambda step_dir: _flip_bytes(_data_file(step_dir), 1),
    "arrays_of_another_step": _from_step_1("state"),
    "meta_of_another_step": _from_step_1("meta"),
    "edited_data_position": lambda step_dir: _edit_meta(step_dir, lambda m: m["data_position"].update(step=9)),
    "edited_config": lambda step_dir: _edit_meta(step_dir, lambda m: m["config"].update(lr=1.0)),
}


@pytest.mark.parametrize("corrupt", SILENT_CORRUPTIONS.values(), ids=SILENT_CORRUPTIONS.keys())
def test_silent_corruption_is_caught_by_the_digest_and_set_aside(ckpt_dir, caplog, corrupt):
    """Damage that orbax reads without an error (its checks cover structure, not values)."""
    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        for s in (1, 2):
            ckpt.save(s, big_state(s), data_position={"step": s}, config=CONFIG)
    corrupt(ckpt_dir / "2")
    caplog.set_level(logging.WARNING, logger="jaxgan.checkpoint")
    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        restored, position, config = ckpt.restore(abstract(big_state(0), mesh_of()))
        assert ckpt.all_steps() == [1]
    chex.assert_trees_all_equal(restored, big_state(1))
    assert position == {"step": 1} and config == CONFIG
    assert (ckpt_dir / "corrupt" / "2").is_dir()
    assert any("step 2" in r.getMessage() and "digest" in r.getMessage() for r in caplog.records)


def test_a_read_only_restore_falls_back_past_a_silently_corrupt_step(ckpt_dir):
    with Checkpointer(ckpt_dir) as ckpt:
        for s in (1, 2):
            ckpt.save(s, big_state(s), data_position={"step": s}, config=CONFIG)
    _flip_bytes(_data_file(ckpt_dir / "2"))
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
        restored, _, _ = ckpt.restore(abstract(big_state(0), mesh_of()))
        with pytest.raises(ValueError, match=r"step 2's array values do not match the digest.*d_params"):
            ckpt.restore(abstract(big_state(0), mesh_of()), step=2)
    chex.assert_trees_all_equal(restored, big_state(1))
    assert (ckpt_dir / "2").is_dir() and not (ckpt_dir / "corrupt").exists()  # read-only: nothing moved


@pytest.mark.parametrize("edit, said", [
    (lambda meta: meta.pop("digest"), "has no digest"),  # as a jaxgan before digests wrote it
    (lambda meta: meta["digest"].update(algorithm="newer/v9"), "has a digest of another kind"),
])
def test_a_step_without_a_digest_it_can_check_restores_and_says_it_is_unverified(ckpt_dir, caplog, edit, said):
    with Checkpointer(ckpt_dir) as ckpt:
        save_steps(ckpt, [1])
    _edit_meta(ckpt_dir / "1", edit)
    caplog.set_level(logging.INFO, logger="jaxgan.checkpoint")
    with Checkpointer(ckpt_dir) as ckpt:
        restored, _, config = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(1))
    assert config == CONFIG and not (ckpt_dir / "corrupt").exists()
    assert any(said in r.getMessage() and "not verified" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("where", ["host", "device"])
def test_the_digest_sees_every_bit_and_position_and_not_the_sharding(where, monkeypatch):
    from jaxgan import checkpoint as ckpt_lib
    from jaxgan.checkpoint import state_digest

    if where == "device":  # every array reduced by the jitted function (large arrays are, in a real state)
        monkeypatch.setattr(ckpt_lib, "HOST_DIGEST_WORDS", 0)
    x = np.random.RandomState(0).randn(8, 6).astype(np.float32)
    tree = {"x": x, "step": np.int32(3), "half": x.astype(jnp.bfloat16), "key": jax.random.key(1),
            "mask": x > 0}
    base = state_digest(tree)
    assert set(base) == {"['x']", "['step']", "['half']", "['key']", "['mask']"}
    one_bit = x.copy()
    one_bit.view(np.uint32)[5, 4] ^= 1  # the lowest mantissa bit of one value
    swapped = x.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    transposed = np.ascontiguousarray(x.T).reshape(x.shape)  # the same values, other places
    for other in (one_bit, swapped, transposed, -x, np.zeros_like(x)):
        assert state_digest({**tree, "x": other})["['x']"] != base["['x']"]
    assert state_digest({**tree, "mask": ~(x > 0)})["['mask']"] != base["['mask']"]
    sharded = jax.device_put(x, NamedSharding(mesh_of(), P("data")))
    assert state_digest({**tree, "x": sharded}) == base
    assert base == HOST_AND_DEVICE_DIGESTS  # the two ways compute the same function


# The tree above's digests, pinned: a change to the function would make every saved step look corrupt
# (change DIGEST_ALGORITHM with it: steps of another kind restore unverified, with a warning).
HOST_AND_DEVICE_DIGESTS = {"['x']": "2e1073f77b3be875", "['step']": "85f0b42785f0b427",
                           "['half']": "66c7e70b490a6609", "['key']": "96a0f96bc3e2ec41",
                           "['mask']": "7e2df98092eff586"}


def test_nothing_moved_when_no_step_restores(ckpt_dir):
    with Checkpointer(ckpt_dir) as ckpt:
        save_steps(ckpt, [1, 2])  # saved without EMA; the target below has one
        with pytest.raises(RuntimeError, match="no checkpoint in .* restores"):
            ckpt.restore(abstract(make_state(ema=True), mesh_of()))
        assert ckpt.all_steps() == [1, 2]
    assert not (ckpt_dir / "corrupt").exists()


def test_incomplete_steps_are_ignored(ckpt_dir, caplog):
    with Checkpointer(ckpt_dir) as ckpt:
        save_steps(ckpt, [1])
    shutil.copytree(ckpt_dir / "1", ckpt_dir / "3.orbax-checkpoint-tmp-1234567")  # unfinalised save
    (ckpt_dir / "2" / "state").mkdir(parents=True)  # a bare half-written step (non-atomic store)
    caplog.set_level(logging.WARNING, logger="jaxgan.checkpoint")
    with Checkpointer(ckpt_dir) as ckpt:
        assert ckpt.latest_step() == 1
        assert read_config(ckpt_dir) == CONFIG
        restored, _, _ = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(1))
    assert not any("step 3" in r.getMessage() for r in caplog.records)


def _device_digest(x):
    """state_digest of ``x`` by the jitted reduction (not the host path small arrays take)."""
    from jaxgan import checkpoint as ckpt_lib

    values = np.asarray(ckpt_lib._digest_fn([x])([x]))[0]
    return {"": "%08x%08x" % tuple(int(v) for v in values)}


def _worker(directory):
    """Saves on 4 devices and restores on 1 and 2; saves on 1 and restores on 4."""
    assert jax.device_count() == 4, jax.devices()
    from jaxgan.checkpoint import state_digest

    x = np.arange(48, dtype=np.float32).reshape(8, 6)
    on_4 = jax.device_put(x, NamedSharding(mesh_of(4), P("data")))
    out = {"digest_4_shards": state_digest(on_4) == state_digest(x) == _device_digest(on_4)}
    for save_n, restore_ns in ((4, (1, 2)), (1, (4,))):
        path = pathlib.Path(directory) / f"from{save_n}"
        state = make_state(save_n, ema=True, mesh=mesh_of(save_n))
        with Checkpointer(path) as ckpt:
            ckpt.save(10, state, data_position={"n": save_n}, config=CONFIG)
            ckpt.wait()
        host = jax.device_get(state)
        for n in restore_ns:
            with Checkpointer(path) as ckpt:
                restored, position, config = ckpt.restore(abstract(state, mesh_of(n)))
            chex.assert_trees_all_equal(jax.device_get(restored), host)
            devices = {len(x.sharding.device_set) for x in jax.tree.leaves(restored)}
            assert devices == {n} and position == {"n": save_n} and config == CONFIG
            out[f"{save_n}->{n}"] = "ok"
    print(json.dumps(out))


@pytest.mark.multidevice
def test_restore_onto_other_device_counts(tmp_path):
    env = dict(os.environ, XLA_FLAGS=host_devices(4), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, __file__, "worker", str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"digest_4_shards": True, "4->1": "ok", "4->2": "ok", "1->4": "ok"}


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(sys.argv[2])


def _failing_restore(monkeypatch, fail_step, errors):
    """Makes restoring ``fail_step`` raise the next exception from ``errors`` (then succeed)."""
    real = Checkpointer._restore_step
    errors = list(errors)

    def restore_step(self, abstract_state, step):
        if step == fail_step and errors:
            raise errors.pop(0)
        return real(self, abstract_state, step)

    monkeypatch.setattr(Checkpointer, "_restore_step", restore_step)


@pytest.mark.parametrize("error", [
    OSError(errno.EIO, "Input/output error"),
    OSError(errno.ENOSPC, "No space left on device"),
    PermissionError(errno.EACCES, "Permission denied"),
    ValueError("UNAVAILABLE: Error reading local file: Input/output error"),  # tensorstore's wording
])
def test_an_io_error_on_restore_keeps_the_checkpoint(ckpt_dir, monkeypatch, error):
    from jaxgan.checkpoint import CheckpointIOError

    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        save_steps(ckpt, [1, 2])
    _failing_restore(monkeypatch, 2, [error])
    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        with pytest.raises(CheckpointIOError, match="I/O error.*nothing was moved"):
            ckpt.restore(abstract(make_state(), mesh_of()))
        assert ckpt.all_steps() == [1, 2]
    assert not (ckpt_dir / "corrupt").exists()
    with Checkpointer(ckpt_dir, keep=3) as ckpt:  # the storage recovered: the good newest step restores
        restored, position, _ = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(2))
    assert position["step"] == 2


def test_a_failure_that_does_not_repeat_does_not_demote_the_step(ckpt_dir, monkeypatch):
    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        save_steps(ckpt, [1, 2])
    _failing_restore(monkeypatch, 2, [ValueError("a passing glitch")])
    with Checkpointer(ckpt_dir, keep=3) as ckpt:
        restored, _, _ = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(2))
    assert not (ckpt_dir / "corrupt").exists()


def test_an_io_error_reading_metadata_is_not_taken_for_no_checkpoint(ckpt_dir, monkeypatch):
    from jaxgan import checkpoint as ckpt_lib

    with Checkpointer(ckpt_dir) as ckpt:
        save_steps(ckpt, [1])

    def broken(mngr, step):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ckpt_lib, "_read_meta", broken)
    with Checkpointer(ckpt_dir) as ckpt:  # a fresh start here would overwrite the run
        with pytest.raises(ckpt_lib.CheckpointIOError, match="I/O error"):
            ckpt.latest_step()
    assert (ckpt_dir / "1").is_dir() and not (ckpt_dir / "corrupt").exists()


def test_read_only_checkpointer_restores_without_writing(ckpt_dir):
    with Checkpointer(ckpt_dir) as ckpt:
        save_steps(ckpt, [1])
    before = sorted(p.name for p in ckpt_dir.iterdir())
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
        restored, _, _ = ckpt.restore(abstract(make_state(), mesh_of()))
    chex.assert_trees_all_equal(restored, make_state(1))
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before
