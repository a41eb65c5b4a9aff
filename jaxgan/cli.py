"""The ``jaxgan`` command: train, sample and eval.

    jaxgan [--debug] train [EXPERIMENT] [--workdir DIR] [--set KEY=VALUE ...] [--smoke] [--dry-run]
                           [--compile-cache DIR | --no-compile-cache]
    jaxgan [--debug] sample WORKDIR [--n N] [--out FILE.npy|FILE.png] [--seed S] [--set sample.K=V ...]
    jaxgan [--debug] eval WORKDIR [--set eval.K=V ...]

Every failure a user can fix ends in one line on stderr (``jaxgan <command>: error: ...``) and exit
status 2; ``--debug`` or ``JAXGAN_TRACEBACK=1`` shows the traceback instead. EXPERIMENT is the name
of a packaged experiment (``jaxgan --help`` lists them) or a path to a ``.py`` file: experiment
files are Python code, and the command says which file it used.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys

DEFAULT_EXPERIMENT = "ring8"
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130
# --set prefixes that sample and eval accept (the rest of a run's config is fixed by its checkpoint).
READ_SIDE_PREFIXES = ("sample.", "eval.")

# Commands that live in their own modules: each defines ``register(subparsers)``, which adds its
# sub-parser with ``set_defaults(handler=fn)``; ``fn(args) -> int``. Importing them must be cheap
# (no jax at module level): the parser is built on every invocation.
EXTRA_COMMANDS: tuple[str, ...] = ("jaxgan.bench", "jaxgan.image2image", "jaxgan.aot", "jaxgan.prepare",
                                   "jaxgan.interop.stylegan2_import")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}") from None
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {value}")
    return value


def _experiments_epilog() -> str:
    from jaxgan.config import packaged_experiments

    lines = [f"  {name:<22} {doc}" for name, doc in packaged_experiments().items()]
    return ("experiments (jaxgan train NAME, or a path to your own .py file; experiment files are code):\n"
            + "\n".join(lines or ["  (none found)"])
            + "\n\nerrors print one line; --debug or JAXGAN_TRACEBACK=1 shows the traceback.")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error (also: JAXGAN_TRACEBACK=1)")
    p = _Parser(prog="jaxgan", description="Train and evaluate GANs in JAX.", epilog=_experiments_epilog(),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (also: JAXGAN_TRACEBACK=1)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", parents=[common],
                       help="train an experiment (resumes from the workdir's latest checkpoint)")
    t.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                   help="the name of a packaged experiment (see jaxgan --help) or a path to an experiment "
                        f".py file (default {DEFAULT_EXPERIMENT})")
    t.add_argument("--workdir", help="output folder (default runs/<experiment>, runs/<experiment>-smoke with --smoke)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field by its dotted name, e.g. train.batch_size=128")
    t.add_argument("--smoke", action="store_true", help="the experiment's tiny CPU variant (for tests)")
    t.add_argument("--dry-run", action="store_true", help="validate and print the resolved config, then exit")
    t.add_argument("--topology", metavar="GEN:SHAPE",
                   help="with --dry-run: also compile the step for this Cloud TPU slice (e.g. v5e:2x4) and "
                        "print jaxgan compile's report (needs libtpu: pip install 'jaxgan[tpu]'; no TPU)")
    _add_compile_cache_flags(t)
    s = sub.add_parser("sample", parents=[common], help="draw samples from a run's latest checkpoint")
    s.add_argument("workdir")
    s.add_argument("--n", type=_at_least_one, default=64, help="number of samples (default 64)")
    s.add_argument("--out", help="output .npy (float32, the data's layout and range) or .png (a grid)")
    s.add_argument("--seed", type=_seed, default=0)
    e = sub.add_parser("eval", parents=[common], help="evaluate a run's latest checkpoint and print JSON")
    e.add_argument("workdir")
    e.add_argument("--samples", metavar="FILE.npy",
                   help="evaluate these samples instead of drawing them from the latest checkpoint (e.g. "
                        "written by jaxgan sample --out on another machine: float, the data's layout and range)")
    for q in (s, e):
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a sample.* or eval.* field, e.g. eval.num_samples=1000")
        q.add_argument("--experiment", metavar="FILE",
                       help="build the run from this experiment file instead of the workdir's recorded "
                            "copy (for workdirs made before copies were kept)")
        _add_compile_cache_flags(q)  # the generator and eval's networks compile once, as train's step
    import importlib

    for name in EXTRA_COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def _add_compile_cache_flags(parser) -> None:
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--compile-cache", metavar="DIR",
                       help="persistent compilation cache folder (default: jaxgan.compile_cache's)")
    cache.add_argument("--no-compile-cache", action="store_true", help="do not use a persistent compilation cache")


def _note(command: str, text: str) -> None:
    print(f"jaxgan {command}: {text}", file=sys.stderr)


def _check_workdir(workdir: pathlib.Path) -> None:
    from jaxgan.errors import WorkdirError

    if not workdir.is_dir():
        what = "does not exist" if not workdir.exists() else "is not a directory"
        raise WorkdirError(f"workdir {workdir} {what}: give the --workdir of a jaxgan train run")


def _load_run(workdir: pathlib.Path, overrides=(), experiment: str | None = None, command: str = "sample",
              restore: bool = True):
    """The run recorded in ``workdir`` (built from its checked experiment copy) and its latest state
    (None with ``restore=False``)."""
    from jaxgan import config as config_lib, run as run_lib, workdir as workdir_lib
    from jaxgan.errors import OverrideError, WorkdirError
    from jaxgan.validate import validate

    _check_workdir(workdir)
    path = workdir / "config.json"
    if not path.is_file():
        raise WorkdirError(f"{workdir} has no config.json: is it a jaxgan workdir (jaxgan train --workdir ...)?")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise WorkdirError(f"{path} is not valid JSON ({e}): the workdir is damaged") from e
    if not isinstance(raw, dict):
        raise WorkdirError(f"{path} holds a {type(raw).__name__}, not a config dict: the workdir is damaged")
    config = config_lib.Config(raw)
    if experiment is not None:
        module, used = config_lib.load_experiment(experiment), config_lib.find_experiment(experiment)
    else:
        module, used = workdir_lib.load_recorded_experiment(workdir, config)
    for assignment in overrides:
        key = assignment.split("=", 1)[0].strip()
        if not key.startswith(READ_SIDE_PREFIXES):
            raise OverrideError(f"--set {assignment}: {command} takes only sample.* and eval.* fields; the "
                                "run's other fields are fixed by how it was trained")
        config_lib.override(config, assignment)
    validate(config, module)
    _note(command, f"experiment file: {workdir_lib.describe_experiment(used)}")
    run = run_lib.build(config, module)
    if not restore:
        return run, None
    return run, _restore_read_only(run, workdir / "checkpoints", config_lib.file_sha256(used))


def _same_run_check(config, experiment_sha256: str | None):
    """``check(saved_config, step)`` for :meth:`Checkpointer.restore`: refuses a checkpoint saved by
    another run (another experiment or config; see :func:`jaxgan.checkpoint.run_differences`) or by
    another version of the experiment file than the one that builds the model, naming both."""
    from jaxgan.checkpoint import run_differences
    from jaxgan.errors import WorkdirError
    from jaxgan.train import RESUMABLE_FIELDS

    def describe(c, sha):
        return f"{pathlib.Path(str(c.get('experiment') or '?')).name} (sha256 {(sha or 'unknown')[:12]})"

    def check(saved: dict, step: int) -> None:
        diffs = run_differences(saved, dict(config), may_differ=RESUMABLE_FIELDS)
        if diffs:
            raise WorkdirError(
                f"checkpoint step {step} belongs to another run: it was saved by "
                f"{describe(saved, saved.get('experiment_sha256'))}, this workdir's run is "
                f"{describe(config, experiment_sha256)} ({'; '.join(diffs)}). Were the checkpoints copied "
                "from another workdir? Use the workdir they were trained in")
        old = saved.get("experiment_sha256")
        if old and experiment_sha256 and old != experiment_sha256:
            raise WorkdirError(
                f"checkpoint step {step} was saved by {describe(saved, old)}, but the model is built from "
                f"{describe(config, experiment_sha256)}: the file changed since that save (a run resumed "
                "with an edited file saves with it from its next checkpoint). Pass the file it was "
                "trained with (--experiment FILE), or let jaxgan train save a new checkpoint")
    return check


def _restore_read_only(run, directory: pathlib.Path, experiment_sha256: str | None = None):
    """The newest good state in ``directory``, reading only (a shared or read-only workdir is fine);
    a checkpoint of another run, or of another version of the experiment file, is refused."""
    import jax

    from jaxgan import run as run_lib
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.errors import WorkdirError

    if not directory.is_dir():
        raise WorkdirError(f"{directory} does not exist: the run has no checkpoint yet (train it first)")
    example = jax.tree.map(lambda x: x[0], run_lib.example_batch(run))
    with Checkpointer(directory, read_only=True) as ckpt:
        state, _, _ = ckpt.restore(run.step.abstract_state(example),
                                   check=_same_run_check(run.config, experiment_sha256))
    return state


def _default_workdir(config, smoke: bool) -> pathlib.Path:
    name = pathlib.Path(config.experiment).stem
    return pathlib.Path("runs") / (f"{name}-smoke" if smoke else name)


def _enable_compile_cache(args) -> None:
    """``jaxgan.compile_cache.enable(DIR or None)`` unless --no-compile-cache; skipped without that module."""
    if args.no_compile_cache:
        return
    import importlib
    import importlib.util

    if importlib.util.find_spec("jaxgan.compile_cache") is None:
        if args.compile_cache:
            from jaxgan.errors import UserError
            raise UserError("--compile-cache: this jaxgan has no jaxgan.compile_cache module; drop the flag")
        return
    compile_cache = importlib.import_module("jaxgan.compile_cache")
    compile_cache.enable(args.compile_cache or None)


def cmd_train(args) -> int:
    from jaxgan import config as config_lib, workdir as workdir_lib

    config, module = config_lib.resolve(args.experiment, args.set, smoke=args.smoke)
    note = config_lib.local_shadow_note(args.experiment)
    if note:
        _note("train", note)
    _note("train", f"experiment file: {workdir_lib.describe_experiment(pathlib.Path(config.experiment))}")
    if args.topology and not args.dry_run:
        from jaxgan.errors import UserError

        raise UserError("--topology compiles for a TPU slice without training: add --dry-run "
                        "(or use jaxgan compile)")
    if args.dry_run:
        if args.topology:
            from jaxgan import aot

            aot.chip_for(args.topology)  # a bad name fails before the config is printed
        print(config.to_json())
        if args.topology:
            return aot.report_for_args(config, module, args)
        return 0
    from jaxgan.periodic import StopSignal

    # SIGTERM/Ctrl-C/SIGHUP from here to the exit end in a saved checkpoint or "nothing to save yet", exit 0
    with StopSignal() as stop:
        stop.phase("start-up")
        workdir = pathlib.Path(args.workdir) if args.workdir else _default_workdir(config, args.smoke)
        workdir_lib.check_usable(workdir)
        _enable_compile_cache(args)
        from jaxgan import train as train_lib

        train_lib.train(config, module, workdir, stop=stop)
    if not stop.requested:  # a stopped run's last line says what was saved and where
        print(f"workdir: {workdir.resolve()} (config.json, metrics.jsonl, samples/, checkpoints/, eval.json)")
    return 0


def _check_out(out: pathlib.Path) -> None:
    """Fails before any work when ``--out`` cannot be written: wrong suffix, a directory, no folder."""
    from jaxgan.errors import UserError

    if out.is_dir():
        raise UserError(f"--out {out} is a directory: give a file name ending in .npy or .png")
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out}: use a file name ending in .npy or .png")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another")


def cmd_sample(args) -> int:
    import numpy as np

    from jaxgan import run as run_lib, samples as samples_lib

    workdir = pathlib.Path(args.workdir)
    _check_workdir(workdir)
    out = pathlib.Path(args.out) if args.out else workdir / "samples.npy"
    _check_out(out)
    _enable_compile_cache(args)
    run, state = _load_run(workdir, args.set, args.experiment, "sample")
    z, labels = run_lib.sample_inputs(run, args.n, args.seed)
    x = run_lib.generate(run, state, z, labels)
    if out.suffix == ".npy":
        with open(out, "wb") as f:  # np.save on a path would add .npy to a name without it
            np.save(f, x)
    elif run.source.info.kind == "points":
        samples_lib.scatter_plot(x, run.source.get_batch(0, 1000)["x"], out)
    else:
        samples_lib.save_png(out, samples_lib.image_grid(x))
    print(f"wrote {len(x)} samples to {out}")
    return 0


def cmd_eval(args) -> int:
    from jaxgan.evaluate import evaluate
    from jaxgan.train import json_dumps

    _enable_compile_cache(args)
    if args.samples:
        from jaxgan.evaluate import evaluate_samples

        samples = _read_samples(pathlib.Path(args.samples))  # before the run is built: a bad file fails fast
        run, _ = _load_run(pathlib.Path(args.workdir), args.set, args.experiment, "eval", restore=False)
        _check_samples_fit(run, samples, args.samples)
        print(json_dumps({"samples": str(args.samples), **evaluate_samples(run, samples)}))
        return 0
    run, state = _load_run(pathlib.Path(args.workdir), args.set, args.experiment, "eval")
    print(json_dumps({"step": int(state.step), **evaluate(run, state)}))
    return 0


def _read_samples(path: pathlib.Path):
    """``eval --samples``: a float array from a .npy file, or a clear error."""
    import numpy as np

    from jaxgan.errors import UserError

    if not path.is_file():
        raise UserError(f"--samples {path}: no such file (write one with jaxgan sample WORKDIR --n N --out FILE.npy)")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"--samples {path}: not a .npy array file ({e})") from None
    if not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"--samples {path} holds {x.dtype} values: give floats in the data's range (as "
                        "jaxgan sample writes; map uint8 images to [-1, 1] with x / 127.5 - 1)")
    if x.ndim < 2 or len(x) < 2:
        raise UserError(f"--samples {path} has shape {x.shape}: expected (n >= 2, *example_shape)")
    if not np.isfinite(x).all():
        raise UserError(f"--samples {path} has NaN or Inf values: nothing meaningful can be measured")
    return x.astype(np.float32)


def _check_samples_fit(run, samples, name) -> None:
    from jaxgan.errors import UserError

    if hasattr(run.game, "evaluate"):
        raise UserError(f"--samples: {type(run.game).__name__} runs are evaluated from their checkpoint "
                        "(their metrics need the inputs each output was made from); drop --samples")
    shape = tuple(run.source.info.shape)
    if tuple(samples.shape[1:]) != shape:
        raise UserError(f"--samples {name}: examples of shape {tuple(samples.shape[1:])}, but this run's data "
                        f"are {shape}: samples from another run?")


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

    from jaxgan.errors import UserError

    names = {"coordinator_address": "JAXGAN_COORDINATOR", "num_processes": "JAXGAN_NUM_PROCESSES",
             "process_id": "JAXGAN_PROCESS_ID"}
    given = {arg: os.environ[var] for arg, var in names.items() if os.environ.get(var)}
    if given and len(given) < len(names):
        missing = [var for arg, var in names.items() if arg not in given]
        raise UserError(f"JAXGAN_DISTRIBUTED=1 with {', '.join(names[a] for a in given)} set but "
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
        raise UserError(f"JAXGAN_NUM_PROCESSES, JAXGAN_PROCESS_ID and JAXGAN_LOCAL_DEVICE_IDS must be "
                        f"integers (the last comma-separated, e.g. 0,1): {e}") from None
    # Several CPU processes need cross-process collectives: every jax this project supports (>= 0.7)
    # defaults jax_cpu_collectives_implementation to gloo, so nothing is set here.
    jax.distributed.initialize(**kwargs)


def _traceback_wanted(args) -> bool:
    env = os.environ.get("JAXGAN_TRACEBACK", "")
    return bool(getattr(args, "debug", False)) or env not in ("", "0")


def _quiet_libraries(quiet_failures: bool = True) -> None:
    """Library logs at WARNING and above; unless ``quiet_failures`` is off (--debug), orbax's own reports
    of a failure jaxgan raises itself stay off stderr, so the command's one line is its last."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from jaxgan.checkpoint import quiet_orbax_failures

    quiet_orbax_failures(quiet_failures)


def main(argv=None) -> int:
    """Runs one command; returns the exit status (0 ok, 2 user error, 1 internal error, 130 Ctrl-C)."""
    args = _parser().parse_args(argv)
    command = f"jaxgan {args.command}"
    try:
        _quiet_libraries(not _traceback_wanted(args))
        _init_distributed()
        handler = getattr(args, "handler", None) or {"train": cmd_train, "sample": cmd_sample,
                                                      "eval": cmd_eval}[args.command]
        return handler(args)
    except KeyboardInterrupt:
        if _traceback_wanted(args):
            raise
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one error boundary of the command line
        if _traceback_wanted(args):
            raise
        from jaxgan.config import describe_experiment_error, experiment_frame
        from jaxgan.errors import UserError, describe

        message, is_user = describe(e)
        frame = None if isinstance(e, UserError) else experiment_frame(e)
        if frame is not None:  # raised while the experiment file's own code ran: the file's error
            print(f"{command}: error: {describe_experiment_error(e, '')} (fix the file; --debug shows "
                  "the traceback)", file=sys.stderr)
            return EXIT_USER_ERROR
        if is_user:
            print(f"{command}: error: {message}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"{command}: internal error: {message} (a bug: rerun with --debug for the traceback and "
              "report it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
