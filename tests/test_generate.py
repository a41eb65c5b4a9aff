"""sample/eval's generator forward (``jaxgan.run.generate``) is data parallel over the run's devices."""
import json
import os
import pathlib
import subprocess
import sys

from xla_env import host_devices

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, os, sys
import jax, numpy as np
from jaxgan import config as config_lib, run as run_lib

out = {}
for name in ("ring8", "cgan_mnist"):
    config, module = config_lib.resolve(name, [], smoke=True)
    samples, shards = [], []
    for devices in (jax.devices()[:1], jax.devices()):
        run = run_lib.build(config, module, devices)
        state = run.step.init_state(0, jax.tree.map(lambda x: x[0], run_lib.example_batch(run)))
        fn = run.generate_fn
        def spy(*args, fn=fn):
            x = fn(*args)
            shards.append([len(devices), x.shape[0], x.sharding.shard_shape(x.shape)[0],
                           len(x.sharding.device_set)])
            return x
        run.__dict__["generate_fn"] = spy  # the cached property, observed
        z, labels = run_lib.sample_inputs(run, 21, 3)  # 21 latents in chunks of 12: the last one padded
        samples.append(run_lib.generate(run, state, z, labels, chunk=12))
    out[name] = {"shape": list(samples[1].shape), "max_abs_diff": float(np.abs(samples[0] - samples[1]).max()),
                 "shards": shards}
print(json.dumps(out))
'''


def test_generate_splits_each_chunk_over_the_devices_and_equals_one_device():
    """On 8 devices each call of the generator gets a chunk rounded up to a multiple of 8 (12 -> 16),
    split 2 per device, and the last call its 5 remaining latents padded to 8 (trimmed after), 1 per
    device; on 1 device the calls are 12 and 9, as before. The samples equal the
    1-device ones to float32 rounding (different per-device batch sizes may round differently).
    Before, the latents were replicated and every device drew the whole chunk."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=host_devices(8, equivalence=True))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in out.items():
        assert r["shape"][0] == 21, name
        assert r["max_abs_diff"] < 1e-5, (name, r["max_abs_diff"])
        # [devices, rows per call, rows per device, devices holding the output]
        assert r["shards"] == [[1, 12, 12, 1], [1, 9, 9, 1], [8, 16, 2, 8], [8, 8, 1, 8]], (name, r["shards"])
