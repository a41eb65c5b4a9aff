import os, sys, time, statistics
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax, numpy as np
from jaxgan import config as config_lib, run as run_lib, sharding
from jaxgan.step import TrainStep
name = sys.argv[1] if len(sys.argv) > 1 else "dcgan_mnist"
config, module = config_lib.resolve(name, [], smoke=False)
run = run_lib.build(config, module, jax.devices())
s = run.step
steps = {flag: TrainStep(s.game, s.g_tx, s.d_tx, s.mesh, n_critic=s.n_critic, ema_half_life_kimg=s.ema_half_life_kimg,
                         ema_rampup=s.ema_rampup, one_gradient_all_reduce=flag) for flag in (False, True)}
example = run_lib.example_batch(run)
batch = sharding.global_batch(run.mesh, example)
states, times = {}, {False: [], True: []}
for flag, st in steps.items():
    states[flag] = st.init_state(0, jax.tree.map(lambda x: x[0], example))
    for _ in range(3):
        states[flag], m = st(states[flag], batch, norms=False)
    jax.block_until_ready(states[flag])
for r in range(7):
    for flag, st in steps.items():
        t0 = time.perf_counter()
        for _ in range(20):
            states[flag], m = st(states[flag], batch, norms=False)
        jax.block_until_ready(states[flag])
        times[flag].append((time.perf_counter() - t0) / 20)
print(name, len(jax.devices()), "devices, batch", config.train.batch_size, {f: round(statistics.median(v) * 1e3, 2) for f, v in times.items()}, "ms/step;",
      "barrier/no barrier per round", [round(b / a, 3) for a, b in zip(times[False], times[True])])
jax.tree.map(np.testing.assert_array_equal, jax.device_get(states[False].d_params), jax.device_get(states[True].d_params))
print("same parameters after", 3 + 7 * 20, "steps")
