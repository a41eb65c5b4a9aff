"""Run in a subprocess: compiles jaxgan's ring8 smoke train step with the persistent cache in argv[1]
(argv[2] == 'off': no cache) and prints the compilation-cache events JAX reported, as JSON."""
import json
import sys

import jax

events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))

from jaxgan import compile_cache, config as config_lib, run as run_lib, sharding  # noqa: E402

if sys.argv[2:] != ["off"]:
    compile_cache.enable(sys.argv[1], min_compile_time_s=0)
config, module = config_lib.resolve("ring8", [], smoke=True)
run = run_lib.build(config, module)
state = run.step.init_state(0, jax.tree.map(lambda x: x[0], run_lib.example_batch(run)))
run.step.lower(state, sharding.global_batch(run.mesh, run_lib.host_batch(run, 0))).compile()
print(json.dumps(sorted({e.rsplit("/", 1)[-1] for e in events if "compilation_cache" in e})))
