"""The host's cost per train step of placing batches on the devices, one step per transfer against
several (``jaxgan.run.host_batches`` + ``jaxgan.sharding.global_batches``).

    python benchmarks/input_transfers.py [EXPERIMENT] [BATCH]        # default dcgan_mnist 128
    NDEV=8 python benchmarks/input_transfers.py ...                   # over 8 emulated CPU devices

Reads a prepared store of random uint8 images of the experiment's shape (``feed_table._store_spec``),
checks that chunked batches equal the step-by-step ones, then prints the host's microseconds per step
(read, transfer and split, waited for with ``block_until_ready``) for 1 to 64 steps per transfer, twice,
and the split of that time into the read, the transfer and the on-device split.
"""
import os
import pathlib
import sys
import tempfile
import time

NDEV = int(os.environ.get("NDEV", "1"))
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={NDEV}"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import feed_table  # noqa: E402
from jaxgan import config as config_lib, run as run_lib, sharding  # noqa: E402
from jaxgan.data.factory import make_run_source  # noqa: E402


def main() -> None:
    experiment = sys.argv[1] if len(sys.argv) > 1 else "dcgan_mnist"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="jaxgan-transfers-"))
    config, module = config_lib.resolve(experiment, [f"train.batch_size={batch}"])
    source = make_run_source({"data": feed_table._store_spec(config.data, workdir, 0), "seed": config.seed,
                              "data_b": None})
    run = run_lib.build(config, module, source=source)
    per_step = sum(v.nbytes for v in run_lib.host_batch(run, 0).values())
    print(f"{experiment}, batch {batch}: {per_step:,} bytes a step, {NDEV} device(s), load {os.getloadavg()[0]:.2f}")

    def one(s):
        return jax.block_until_ready(sharding.global_batch(run.mesh, run_lib.host_batch(run, s)))

    def many(s, k):
        return jax.block_until_ready(sharding.global_batches(run.mesh, run_lib.host_batches(run, s, k)))

    for i, got in enumerate(many(7, 4)):  # the same batches, sharded the same
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(got), jax.device_get(one(7 + i)))
        assert got["x"].sharding == sharding.batch_sharding(run.mesh)
    for _ in range(2):
        for k in (1, 2, 4, 8, 16, 32, 64):
            f = one if k == 1 else (lambda s, k=k: many(s, k))
            for s in range(0, 5 * k, k):
                f(s)
            n = max(200 // k, 8)
            t0 = time.perf_counter()
            for j in range(n):
                f(1000 + j * k)
            print(f"{k:3d} steps a transfer: {1e6 * (time.perf_counter() - t0) / (n * k):7.1f} us a step "
                  f"({per_step * k / 1e6:.2f} MB a transfer)")
    chunk_sharding = NamedSharding(run.mesh, P(None, None, sharding.DATA_AXIS))
    for k in (1, 16, 64):
        n = max(400 // k, 10)
        t0 = time.perf_counter()
        for j in range(n):
            rows = run_lib.host_batches(run, 2000 + j * k, k)
        t1 = time.perf_counter()
        for j in range(n):
            placed = jax.block_until_ready(jax.device_put(rows, chunk_sharding))
        t2 = time.perf_counter()
        split = sharding._splitter(run.mesh, k)
        for j in range(n):
            jax.block_until_ready(split(placed))
        t3 = time.perf_counter()
        print(f"{k:3d} steps a transfer, us a step: read {1e6 * (t1 - t0) / n / k:.1f}, transfer "
              f"{1e6 * (t2 - t1) / n / k:.1f}, split {1e6 * (t3 - t2) / n / k:.1f}")


if __name__ == "__main__":
    main()
