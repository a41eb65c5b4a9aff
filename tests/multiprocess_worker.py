"""Restores every checkpoint of workdir A and the newest of workdir B and compares their states.

    python tests/multiprocess_worker.py WORKDIR_A WORKDIR_B

Run in a fresh single-process subprocess (by ``tests/test_multiprocess.py``); prints one JSON line:
``{"steps": [...], "positions": {...}, "leaves": N, "max_abs_diff": x, "equal": bool, "step_a": s,
"step_b": s}``. A checkpoint that does not restore raises (non-zero exit).
"""
import json
import os
import pathlib
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxgan import config as config_lib, run as run_lib  # noqa: E402
from jaxgan.checkpoint import Checkpointer  # noqa: E402
from jaxgan.workdir import load_recorded_experiment  # noqa: E402


def load(workdir: pathlib.Path):
    config = config_lib.Config(json.loads((workdir / "config.json").read_text()))
    run = run_lib.build(config, load_recorded_experiment(workdir, config)[0])
    example = jax.tree.map(lambda x: x[0], run_lib.example_batch(run))
    abstract = run.step.abstract_state(example)
    return Checkpointer(workdir / "checkpoints", async_save=False), abstract


def main(a: str, b: str) -> None:
    ckpt_a, abstract_a = load(pathlib.Path(a))
    ckpt_b, abstract_b = load(pathlib.Path(b))
    with ckpt_a, ckpt_b:
        steps = ckpt_a.all_steps()
        positions = {}
        for step in steps:  # every kept step restores, with its data position
            state, position, _ = ckpt_a.restore(abstract_a, step=step)
            assert int(state.step) == step, (int(state.step), step)
            positions[step] = position
        state_a, _, _ = ckpt_a.restore(abstract_a)
        state_b, _, _ = ckpt_b.restore(abstract_b)
    leaves_a = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state_a))]
    leaves_b = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state_b))]
    assert len(leaves_a) == len(leaves_b), (len(leaves_a), len(leaves_b))
    diff = max((float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0)
               for x, y in zip(leaves_a, leaves_b))
    equal = all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
                for x, y in zip(leaves_a, leaves_b))
    print(json.dumps({"steps": steps, "positions": positions, "leaves": len(leaves_a),
                      "max_abs_diff": diff, "equal": equal,
                      "step_a": int(state_a.step), "step_b": int(state_b.step)}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
