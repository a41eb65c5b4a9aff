"""What the checkpoint digest costs on save and restore, against hashing the same arrays on the host.

jaxgan's checkpoints carry a 64-bit digest per array (jaxgan.checkpoint.state_digest: a jitted
reduction where the arrays live; 8 bytes per array reach the host), verified on every restore. This
times, for each experiment's full-size train state (initialised, stand-in data where the files are
absent, batch 8: the state does not depend on it):

  digest_first_ms     the first state_digest call (tracing and compiling, once per process and state
                      structure; with jaxgan's persistent compilation cache a rerun loads it)
  digest_ms           a state_digest call after that (median of 7): what a save and a restore add
  host_sha256_ms      the alternative: device_get of the state and hashlib.sha256 of every array
                      (median of 7)
  save_ms, restore_ms a whole Checkpointer save (to durable) and restore, digest included (median of 3)

    python benchmarks/checkpoint_digest.py [--all-on-device] [EXPERIMENT ...]
                                    # default ring8 dcgan64 stylegan2_mnist; a few minutes on 2 cores

``--all-on-device`` sets HOST_DIGEST_WORDS = 0: every array by the jitted reduction, as the first
version did (its compilation is what the host path for small arrays saves).
"""
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

from jaxgan import bench, checkpoint, config as config_lib, run as run_lib


def _ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _host_sha256(state):
    return {jax.tree_util.keystr(p): hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
            for p, x in jax.tree_util.tree_leaves_with_path(jax.device_get(state))}


def measure(experiment: str) -> dict:
    config, module = config_lib.resolve(experiment, ["train.batch_size=8"])
    run = bench._build(config, module, None, "synthetic")
    example = jax.tree.map(lambda x: x[0], run_lib.example_batch(run))
    state = jax.block_until_ready(run.step.init_state(0, example))
    leaves = jax.tree.leaves(state)
    record = {"experiment": experiment, "arrays": len(leaves),
              "state_mb": round(sum(x.nbytes for x in leaves) / 2 ** 20, 1)}
    t = time.perf_counter()
    checkpoint.state_digest(state)
    record["digest_first_ms"] = round((time.perf_counter() - t) * 1e3, 1)
    record["digest_ms"] = round(_ms(lambda: checkpoint.state_digest(state), 7), 1)
    record["host_sha256_ms"] = round(_ms(lambda: _host_sha256(state), 7), 1)
    abstract = run.step.abstract_state(example)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint.Checkpointer(os.path.join(tmp, "c"), keep=10)
        steps = iter(range(1, 100))

        def save():
            ckpt.save(next(steps), state, data_position={}, config={})
            ckpt.wait()

        record["save_ms"] = round(_ms(save, 3), 1)
        ckpt.restore(abstract)  # first restore: compiles the restore-side transfers
        record["restore_ms"] = round(_ms(lambda: jax.block_until_ready(ckpt.restore(abstract)[0]), 3), 1)
        ckpt.close()
    return record


def main(argv):
    if "--all-on-device" in argv:
        argv = [a for a in argv if a != "--all-on-device"]
        checkpoint.HOST_DIGEST_WORDS = 0
    print(json.dumps({"backend": jax.default_backend(), "devices": jax.device_count(), "cpus": os.cpu_count(),
                      "host_digest_words": checkpoint.HOST_DIGEST_WORDS, "load_before": os.getloadavg()[0]}))
    for experiment in argv or ["ring8", "dcgan64", "stylegan2_mnist"]:
        print(json.dumps(measure(experiment)), flush=True)
    print(json.dumps({"load_after": os.getloadavg()[0]}))


if __name__ == "__main__":
    main(sys.argv[1:])
