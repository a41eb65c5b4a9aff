"""The ``jaxgan`` command: train, sample and eval.

    jaxgan train [EXPERIMENT] [--workdir DIR] [--set KEY=VALUE ...] [--smoke] [--dry-run]
    jaxgan sample WORKDIR [--n N] [--out FILE.npy|FILE.png]
    jaxgan eval WORKDIR
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys

DEFAULT_EXPERIMENT = "ring8"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxgan", description="Train and evaluate GANs in JAX.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an experiment (resumes from the workdir's latest checkpoint)")
    t.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                   help=f"a name in experiments/ or a path to an experiment file (default {DEFAULT_EXPERIMENT})")
    t.add_argument("--workdir", help="output folder (default runs/<experiment>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field by its dotted name, e.g. train.batch_size=128")
    t.add_argument("--smoke", action="store_true", help="the experiment's tiny CPU variant (for tests)")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    s = sub.add_parser("sample", help="draw samples from a run's latest checkpoint")
    s.add_argument("workdir")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", help="output .npy (float32, the data's layout and range) or .png (a grid)")
    s.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval", help="evaluate a run's latest checkpoint and print JSON")
    e.add_argument("workdir")
    return p


def _load_run(workdir: pathlib.Path):
    from jaxgan import config as config_lib, run as run_lib

    path = workdir / "config.json"
    if not path.exists():
        raise SystemExit(f"{workdir} has no config.json: is it a jaxgan workdir (jaxgan train --workdir ...)?")
    config = config_lib.Config(json.loads(path.read_text()))
    module = config_lib.load_experiment(config.experiment)
    run = run_lib.build(config, module)
    return run, run_lib.restore_latest(run, workdir / "checkpoints")


def cmd_train(args) -> int:
    from jaxgan import config as config_lib, train as train_lib

    config, module = config_lib.resolve(args.experiment, args.set, smoke=args.smoke)
    if args.dry_run:
        print(config.to_json())
        return 0
    workdir = pathlib.Path(args.workdir or pathlib.Path("runs") / pathlib.Path(config.experiment).stem)
    train_lib.train(config, module, workdir)
    print(f"workdir: {workdir.resolve()} (config.json, metrics.jsonl, samples/, checkpoints/, eval.json)")
    return 0


def cmd_sample(args) -> int:
    import numpy as np

    from jaxgan import run as run_lib, samples as samples_lib

    workdir = pathlib.Path(args.workdir)
    run, state = _load_run(workdir)
    z, labels = run_lib.sample_inputs(run, args.n, args.seed)
    x = run_lib.generate(run, state, z, labels)
    out = pathlib.Path(args.out or workdir / "samples.npy")
    if out.suffix == ".npy":
        np.save(out, x)
    elif out.suffix == ".png":
        if run.source.info.kind == "points":
            samples_lib.scatter_plot(x, run.source.get_batch(0, 1000)["x"], out)
        else:
            samples_lib.save_png(out, samples_lib.image_grid(x))
    else:
        raise SystemExit(f"--out {out}: use a .npy or a .png file name")
    print(f"wrote {len(x)} samples to {out}")
    return 0


def cmd_eval(args) -> int:
    from jaxgan.evaluate import evaluate
    from jaxgan.train import json_dumps

    run, state = _load_run(pathlib.Path(args.workdir))
    print(json_dumps({"step": int(state.step), **evaluate(run, state)}))
    return 0


def _init_distributed() -> None:
    """``JAXGAN_DISTRIBUTED=1``: join a multi-process run (one process per host) before using jax.

    On Cloud TPU, SLURM and Open MPI, ``jax.distributed.initialize()`` finds the cluster by itself.
    Elsewhere (several processes on one machine, or a generic cluster) set all three of
    ``JAXGAN_COORDINATOR`` (host:port of process 0), ``JAXGAN_NUM_PROCESSES`` and
    ``JAXGAN_PROCESS_ID``, and optionally ``JAXGAN_LOCAL_DEVICE_IDS`` (e.g. ``0,1``).
    """
    if os.environ.get("JAXGAN_DISTRIBUTED") != "1":
        return
    import jax

    names = {"coordinator_address": "JAXGAN_COORDINATOR", "num_processes": "JAXGAN_NUM_PROCESSES",
             "process_id": "JAXGAN_PROCESS_ID"}
    given = {arg: os.environ[var] for arg, var in names.items() if os.environ.get(var)}
    if given and len(given) < len(names):
        missing = [var for arg, var in names.items() if arg not in given]
        raise SystemExit(f"JAXGAN_DISTRIBUTED=1 with {', '.join(names[a] for a in given)} set but "
                         f"{', '.join(missing)} unset: set all three, or none of them to let "
                         "jax.distributed.initialize() detect the cluster (Cloud TPU, SLURM, Open MPI)")
    kwargs: dict = dict(given)
    try:
        for arg in ("num_processes", "process_id"):
            if arg in kwargs:
                kwargs[arg] = int(kwargs[arg])
        if os.environ.get("JAXGAN_LOCAL_DEVICE_IDS"):
            kwargs["local_device_ids"] = [int(i) for i in os.environ["JAXGAN_LOCAL_DEVICE_IDS"].split(",")]
    except ValueError as e:
        raise SystemExit(f"JAXGAN_NUM_PROCESSES, JAXGAN_PROCESS_ID and JAXGAN_LOCAL_DEVICE_IDS must be "
                         f"integers (the last comma-separated, e.g. 0,1): {e}") from None
    # Several CPU processes need cross-process collectives: every jax this project supports (>= 0.7)
    # defaults jax_cpu_collectives_implementation to gloo, so nothing is set here.
    jax.distributed.initialize(**kwargs)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    _init_distributed()
    try:
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval}[args.command](args)
    except (ValueError, KeyError, FileNotFoundError, FloatingPointError, RuntimeError) as e:
        if os.environ.get("JAXGAN_TRACEBACK"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"jaxgan {args.command}: error: {msg}\n(set JAXGAN_TRACEBACK=1 for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
