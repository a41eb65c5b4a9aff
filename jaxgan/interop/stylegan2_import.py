"""NVIDIA's StyleGAN2-ADA pickles as jaxgan runs: ``jaxgan import-stylegan2`` and ``init_from``.

* :func:`config_overrides`: the ``--set`` assignments that make a StyleGAN2 experiment build the
  pickle's networks (resolution, channels, widths, mapping, conditioning, clamp, D architecture,
  minibatch-stddev group, ADA's fixed noise maps; sampling as NVIDIA's generate.py: const noise).
* :func:`initialise`: a fresh run state with G, G_ema, D and the W average (and the noise maps)
  taken from the pickle; the optimiser states stay as initialised (fresh). The training loop calls
  it for a run whose config sets ``init_from=PKL`` and that has no checkpoint yet.
* ``jaxgan import-stylegan2 PKL --workdir DIR --data FOLDER``: that state saved as step 0 of a
  ``stylegan2_folder`` workdir. ``jaxgan sample DIR`` / ``jaxgan eval DIR`` read it like any run,
  and ``jaxgan train stylegan2_folder --workdir DIR`` fine-tunes it on FOLDER.

Reading the pickle runs none of its code (:mod:`jaxgan.interop.nvidia_pickle`).
"""
from __future__ import annotations

import json
import pathlib

from jaxgan.errors import UserError

# jax, numpy and the networks are imported inside the functions: the CLI imports this module to
# build its parser on every invocation (jaxgan.cli.EXTRA_COMMANDS).

INIT_FROM_NOTE = "set the model fields `jaxgan import-stylegan2 PKL --print-config` prints"


def config_overrides(data: dict) -> list[str]:
    """``--set`` assignments (``key=json value``) that describe the pickle's networks."""
    from jaxgan.interop import nvidia
    g_rec, d_rec = data.get("G_ema") or data["G"], data.get("D")
    g, z_dim = nvidia.generator_from_kwargs(g_rec.init_kwargs)
    m = dict(g_rec.init_kwargs.get("mapping_kwargs") or {})
    fields = {
        "data.resolution": g.resolution, "data.channels": g.channels,
        "model.latent_dim": z_dim, "model.w_dim": g.w_dim, "model.mapping_layers": g.mapping_layers,
        "model.mapping_lr_mul": g.mapping_lr_mul, "model.channel_base": g.channel_base,
        "model.channel_max": g.channel_max, "model.conditional": g.num_classes is not None,
        "model.conv_clamp": g.clamp or 0.0, "model.const_noise": True,
        "model.w_avg_beta": float(m.get("w_avg_beta", 0.995)), "sample.noise_mode": "const",
    }
    if d_rec is not None:
        d = nvidia.discriminator_from_kwargs(d_rec.init_kwargs)
        if (d.channel_base, d.channel_max) != (g.channel_base, g.channel_max):
            raise UserError(f"NVIDIA pickle with G widths ({g.channel_base}, {g.channel_max}) and D widths "
                              f"({d.channel_base}, {d.channel_max}): jaxgan's StyleGAN2 config has one pair")
        if (d.clamp or 0.0) != (g.clamp or 0.0):
            raise UserError(f"NVIDIA pickle with G conv_clamp {g.clamp} and D conv_clamp {d.clamp}: jaxgan's "
                              "config has one")
        fields.update({"model.mbstd_group": d.mbstd_group, "model.d_architecture": d.architecture,
                       "model.d_mapping_layers": d.mapping_layers})
    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in fields.items()]


def _replace(tree, new, what: str):
    """``new`` (numpy) placed like ``tree``'s leaves (same structure and shapes, or one line why not)."""
    import jax
    import numpy as np
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    try:
        new_leaves = treedef.flatten_up_to(new)
    except (ValueError, TypeError) as e:
        raise UserError(f"init_from: the pickle's {what} does not have this run's layers ({e}); "
                          f"{INIT_FROM_NOTE}") from None
    out = []
    for (path, old), value in zip(leaves, new_leaves):
        value = np.asarray(value, np.float32)
        if value.shape != old.shape:
            raise UserError(f"init_from: {what}{jax.tree_util.keystr(path)} has shape {value.shape} in the "
                              f"pickle and {old.shape} in this run; {INIT_FROM_NOTE}")
        out.append(jax.device_put(value.astype(old.dtype), old.sharding))
    return jax.tree_util.tree_unflatten(treedef, out)


def initialise(state, path: str | pathlib.Path):
    """``state`` (a fresh run state) with G, G_ema, D and their model state from the pickle at ``path``.

    The optimiser states, the step, the rng and the game's extra state are kept as given.
    """
    from jaxgan.interop import nvidia, nvidia_pickle
    data = nvidia_pickle.load(path)
    g_rec = data.get("G")
    ema_rec = data.get("G_ema") or g_rec
    g_rec = g_rec or ema_rec
    g, _ = nvidia.generator_from_kwargs(ema_rec.init_kwargs)
    g_vars = nvidia.generator_variables(g, g_rec.state_dict)
    ema_vars = nvidia.generator_variables(g, ema_rec.state_dict)
    if "stats" not in state.g_state or "synthesis" not in state.g_state["stats"]:
        raise UserError("init_from: this run's generator keeps no fixed noise maps; set model.const_noise=true "
                          f"({INIT_FROM_NOTE})")
    if data.get("D") is None:
        raise UserError(f"init_from: {path} holds no discriminator ('D'): a generator-only pickle cannot "
                          "start a training run")
    d = nvidia.discriminator_from_kwargs(data["D"].init_kwargs)
    d_vars = nvidia.discriminator_variables(d, data["D"].state_dict)
    changes = dict(g_params=_replace(state.g_params, g_vars["params"], "G"),
                   g_state=_replace(state.g_state, {"stats": g_vars["stats"]}, "G's state"),
                   d_params=_replace(state.d_params, d_vars["params"], "D"))
    if state.g_ema is not None:
        changes["g_ema"] = _replace(state.g_ema, ema_vars["params"], "G_ema")
    if getattr(state, "g_ema_state", None) is not None:
        changes["g_ema_state"] = _replace(state.g_ema_state, {"stats": ema_vars["stats"]}, "G_ema's state")
    return state.replace(**changes)


# ---------------------------------------------------------------------------------------- the command

def register(subparsers) -> None:
    """Adds ``import-stylegan2``."""
    p = subparsers.add_parser(
        "import-stylegan2", help="convert an NVIDIA StyleGAN2-ADA network pickle into a jaxgan workdir (offline)",
        description="Reads an NVIDIA StyleGAN2-ADA pickle (network-snapshot-*.pkl, ffhq.pkl, ...) without running "
                    "code from it and writes a stylegan2_folder workdir whose step 0 holds its G, G_ema, D and W "
                    "average. Then: jaxgan sample DIR, jaxgan eval DIR, jaxgan train stylegan2_folder --workdir DIR "
                    "(fine-tunes on --data).")
    p.add_argument("pickle")
    p.add_argument("--workdir", help="the new workdir (must not hold a run yet)")
    p.add_argument("--data", help="a folder of images (the data to evaluate against and fine-tune on)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the stylegan2_folder config (e.g. train.batch_size=16)")
    p.add_argument("--print-config", action="store_true",
                   help="print the --set assignments that describe the pickle's networks and stop")
    p.set_defaults(handler=cmd_import)


def cmd_import(args) -> int:
    from jaxgan.interop import nvidia_pickle
    data = nvidia_pickle.load(args.pickle)
    sets = config_overrides(data)
    if args.print_config:
        print(" ".join(f"--set {s}" for s in sets))
        return 0
    if not args.workdir or not args.data:
        raise UserError("jaxgan import-stylegan2: give --workdir DIR (the new workdir) and --data FOLDER (images "
                        "to evaluate against and fine-tune on), or --print-config")
    import_workdir(args.pickle, args.workdir, args.data, args.set)
    print(f"workdir: {pathlib.Path(args.workdir).resolve()} (step 0 = {args.pickle}); next: jaxgan sample "
          f"{args.workdir} --out grid.png")
    return 0


def import_workdir(pkl: str | pathlib.Path, workdir: str | pathlib.Path, data_path: str | pathlib.Path,
                   overrides=()) -> pathlib.Path:
    """Writes ``workdir``: the stylegan2_folder config for the pickle's networks and step 0 = its weights."""
    import jax

    from jaxgan import config as config_lib, workdir as workdir_lib
    from jaxgan import train as train_lib
    from jaxgan.interop import nvidia_pickle
    from jaxgan.checkpoint import Checkpointer
    from jaxgan.run import build, example_batch

    data = nvidia_pickle.load(pkl)
    pkl = pathlib.Path(pkl).resolve()
    sets = [*config_overrides(data), f"data.path={pathlib.Path(data_path).resolve()}", f"init_from={pkl}",
            *overrides]
    config, module = config_lib.resolve("stylegan2_folder", sets, smoke=False)
    workdir = pathlib.Path(workdir)
    workdir_lib.check_usable(workdir)
    with Checkpointer(workdir / "checkpoints") as ckpt:
        if ckpt.latest_step() is not None:
            raise UserError(f"{workdir} already holds a run (checkpoint step {ckpt.latest_step()}): give a new "
                            "--workdir")
        run = build(config, module)
        example = jax.tree.map(lambda x: x[0], example_batch(run))
        state = initialise(run.step.init_state(config.seed, example), pkl)
        train_lib._write_run_files(run, workdir)
        ckpt.save(0, state, data_position={"step": 0, "examples_seen": 0}, config=dict(config), force=True)
        ckpt.wait()
    return workdir


__all__ = ("config_overrides", "initialise", "import_workdir", "register")
