"""Damages the newest of two checkpoint steps in 17 ways and reports what a restore then does.

Each kind: save steps 1 and 2 of a small GANState (arrays of 48x48 and 64x64 float32 live in orbax's
data files, not inlined in its checksummed b-tree nodes), damage step 2, restore the newest good
step. 'set aside' means step 2 went to corrupt/ and step 1 restored; 'values intact' that step 2
restored bit-identical to what was saved (the damage touched bytes no value is read from).

    python tools/checkpoint_corruption.py        # about a minute on a 2-core CPU
"""
import json
import logging
import pathlib
import shutil
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from jaxgan.checkpoint import Checkpointer  # noqa: E402
from test_checkpoint import CONFIG, abstract, make_state, mesh_of  # noqa: E402


def state(seed):
    rs = np.random.RandomState(seed)
    return make_state(seed).replace(
        d_params={"kernel": jnp.asarray(rs.randn(64, 64), jnp.float32)},
        g_params={"dense": {"kernel": jnp.asarray(rs.randn(3, 4), jnp.float32),
                            "bias": jnp.asarray(rs.randn(4), jnp.float32)},
                  "w2": jnp.asarray(rs.randn(48, 48), jnp.float32)})


def data_files(step_dir):
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return sorted(files, key=lambda p: -p.stat().st_size)


def largest(step_dir):
    return data_files(step_dir)[0]


def rewrite(path, offset, n, fn):
    data = bytearray(path.read_bytes())
    data[offset:offset + n] = bytes(fn(b) for b in data[offset:offset + n])
    path.write_bytes(bytes(data))


def flip(path, offset, n):
    rewrite(path, offset, n, lambda b: b ^ 0xFF)


def edit_meta(step_dir, edit):
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def replace(step_dir, item):
    shutil.rmtree(step_dir / item)
    shutil.copytree(step_dir.parent / "1" / item, step_dir / item)


def middle(path):
    return path.stat().st_size // 2


KINDS = {
    "flip 64 bytes in the middle of the largest data file": lambda s: flip(largest(s), middle(largest(s)), 64),
    "flip 1 byte in the middle of the largest data file": lambda s: flip(largest(s), middle(largest(s)), 1),
    "flip the last byte of the largest data file": lambda s: flip(largest(s), largest(s).stat().st_size - 1, 1),
    "zero 512 bytes in the middle of the largest data file":
        lambda s: rewrite(largest(s), middle(largest(s)), 512, lambda b: 0),
    "flip 64 bytes in every data file": lambda s: [flip(p, middle(p), 64) for p in data_files(s)],
    "truncate the largest data file to half": lambda s: open(largest(s), "r+b").truncate(middle(largest(s))),
    "append 100 bytes to the largest data file": lambda s: open(largest(s), "ab").write(b"x" * 100),
    "delete the largest data file": lambda s: largest(s).unlink(),
    "the older step's arrays (state/ replaced)": lambda s: replace(s, "state"),
    "the older step's meta (meta/ replaced)": lambda s: replace(s, "meta"),
    "data position edited": lambda s: edit_meta(s, lambda m: m["data_position"].update(step=9)),
    "config edited": lambda s: edit_meta(s, lambda m: m["config"].update(lr=1.0)),
    "a digest entry edited":
        lambda s: edit_meta(s, lambda m: m["digest"]["arrays"].update({".step": "0" * 16})),
    "meta deleted": lambda s: shutil.rmtree(s / "meta"),
    "state/_METADATA deleted": lambda s: (s / "state" / "_METADATA").unlink(),
    "8 bytes of state/manifest.ocdbt flipped": lambda s: flip(s / "state" / "manifest.ocdbt", 40, 8),
    "state/ emptied": lambda s: (shutil.rmtree(s / "state"), (s / "state").mkdir()),
}


def outcome(directory) -> str:
    with Checkpointer(directory, keep=3) as ckpt:
        restored, position, _ = ckpt.restore(abstract(state(0), mesh_of()))
    if position["step"] == 1 and (directory / "corrupt" / "2").is_dir():
        return "set aside, step 1 restored"
    same = all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state(2))))
    return f"step {position['step']} restored, values {'intact' if same else 'CHANGED (undetected)'}"


def main():
    logging.disable(logging.WARNING)
    detected = 0
    for name, damage in KINDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            directory = pathlib.Path(tmp) / "checkpoints"
            with Checkpointer(directory, keep=3) as ckpt:
                for s in (1, 2):
                    ckpt.save(s, state(s), data_position={"step": s}, config=CONFIG)
            damage(directory / "2")
            try:
                result = outcome(directory)
            except Exception as e:  # noqa: BLE001 - reported
                result = f"error: {type(e).__name__}: {str(e)[:120]}"
        detected += result.startswith("set aside")
        print(f"{name}: {result}", flush=True)
    print(f"{detected} of {len(KINDS)} set aside")


if __name__ == "__main__":
    main()
