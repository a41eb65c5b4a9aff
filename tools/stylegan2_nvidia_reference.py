"""NVIDIA's StyleGAN2-ADA outputs for fixed random weights: the fixture behind tests/test_stylegan2_nvidia.py.

Imports a user-supplied checkout of NVlabs/stylegan2-ada-pytorch (nothing of it is copied into jaxgan),
builds its ``training.networks.Generator``/``Discriminator`` at small configurations that contain
every block type jaxgan supports (up-sampling synthesis layers, the toRGB skip path, residual and
'orig' D blocks with their fromRGB, mapping with and without labels, minibatch stddev, ``conv_clamp``
on and off), perturbs the weights so that biases, noise strengths and w_avg are not zero, and records
in float32: the mapping output, images (psi 1 and 0.7, truncation cutoff, noise fixed and off), D's
logits, the non-saturating losses and their gradients, R1 and its gradient, and the path-length
penalty (pl_mean 0 and 0.5) and its gradient, each computed as ADA's ``loss.py`` does.

  --fixture FILE.npz   the weights (NVIDIA names and layouts), inputs and outputs
  --pickles DIR        network pickles written the way ADA's training_loop.py writes them
                       (dict(training_set_kwargs, G, D, G_ema, augment_pipe) through pickle.dump)
  --generate DIR       NVIDIA's generate.py output (PNG per seed) for the pickled 'res32' network (its
                       G_ema, seeds 0-15, psi 0.7, const noise), also saved as
                       stylegan2_nvidia_generate.npz beside the pickles
  --compare CONFIGS    also build the configurations listed (e.g. res64,res256) and print the
                       largest relative difference of jaxgan's output for every row (docs/results.md)
  --float64            with --compare: also run both sides in float64 on the same weights and inputs
                       and print, per row, jax32 vs nv32 (the comparison above), nv32 vs nv64 (the
                       size of float32 rounding in NVIDIA's own result), jax32 vs nv64 and jax64 vs
                       nv64 (the two functions, without float32 rounding); and, per side, the
                       leaky-ReLU units whose input is on the other side of 0 in float32 than in
                       float64 (where float32 rounding moves gradients by far more than an ulp)

float64: NVIDIA's networks cast activations to torch.float32 by name (their fp16/fp32 switch); the
tool runs a float64 copy of them with ``training.networks``' ``torch.float32`` read as float64 (the
[1,3,3,1] resampling filters stay float32, as upfirdn2d asserts; they are exact in it), and checks
that no tensor bigger than that 4x4 filter is float32 during the run. jaxgan's networks keep
styles, the mapping, logits and the penalties in float32 for mixed precision: the tool reads
``jnp.float32`` as float64 in those modules under ``jax_enable_x64`` and checks that the traced
computation holds no float32 value. Both overrides are local to the run; the weights and inputs are
the float32 ones, exact in float64.

Usage (PyTorch on CPU; NVIDIA's custom ops fall back to their reference implementations):
  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
  pip install torch==2.13.0   # the CPU wheel
  python tools/stylegan2_nvidia_reference.py --official /tmp/sg2ada \\
      --fixture tests/fixtures/stylegan2_nvidia.npz --pickles tests/fixtures --generate /tmp/sg2_generate
  python tools/stylegan2_nvidia_reference.py --official /tmp/sg2ada --compare res32,res64,res256
  python tools/stylegan2_nvidia_reference.py --official /tmp/sg2ada --compare res64 --float64
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import json
import os
import pickle
import re
import sys
import time
import types

import numpy as np

# Small configurations for the CI fixture (every block type) and larger ones for --compare.
CONFIGS = {
    # 32x32 RGB, unconditional, residual D, no clamp (the pickled test network, generate.py's input)
    "res32": dict(res=32, channels=3, c_dim=0, channel_base=128, channel_max=8, z_dim=8, w_dim=8, map=2,
                  d_arch="resnet", clamp=None, mbstd=2, batch=4),
    # 16x16, conditional (3 classes) G and D, conv_clamp 0.5 (active almost everywhere), group 4
    "cond16_clamp": dict(res=16, channels=3, c_dim=3, channel_base=64, channel_max=8, z_dim=8, w_dim=8, map=2,
                         d_arch="resnet", clamp=0.5, mbstd=4, batch=4),
    # 16x16 greyscale, ADA's CIFAR-10 D ('orig'), one mapping layer
    "orig16": dict(res=16, channels=1, c_dim=0, channel_base=64, channel_max=8, z_dim=6, w_dim=8, map=1,
                   d_arch="orig", clamp=None, mbstd=2, batch=4),
    # --compare only (figures for docs/results.md)
    "res64": dict(res=64, channels=3, c_dim=0, channel_base=2048, channel_max=64, z_dim=64, w_dim=64, map=8,
                  d_arch="resnet", clamp=None, mbstd=4, batch=4),
    "res64_cond_clamp": dict(res=64, channels=3, c_dim=10, channel_base=2048, channel_max=64, z_dim=64, w_dim=64,
                             map=8, d_arch="resnet", clamp=0.5, mbstd=4, batch=4),
    "res256": dict(res=256, channels=3, c_dim=0, channel_base=4096, channel_max=64, z_dim=64, w_dim=64, map=8,
                   d_arch="resnet", clamp=None, mbstd=2, batch=2),
}
FIXTURE_CONFIGS = ("res32", "cond16_clamp", "orig16")
GENERATE_SEEDS = list(range(16))
GENERATE_PSI = 0.7


def _load_official(path):
    sys.path.insert(0, os.path.abspath(path))
    import torch
    from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
    conv2d_gradfix.enabled = False      # CUDA-only, version-gated to torch 1.7-1.9
    grid_sample_gradfix.enabled = False
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from training import networks
    return torch, networks


def build(torch, networks, cfg: dict, seed: int):
    """NVIDIA's G and D for ``cfg``, with every parameter and buffer perturbed away from its init."""
    from dnnlib import EasyDict  # kwargs as ADA's train.py passes them (the pickles then name EasyDict)
    torch.manual_seed(seed)
    common = dict(c_dim=cfg["c_dim"], img_resolution=cfg["res"], img_channels=cfg["channels"])
    G = networks.Generator(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], mapping_kwargs=EasyDict(num_layers=cfg["map"]),
                           synthesis_kwargs=EasyDict(channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
                                                     num_fp16_res=0, conv_clamp=cfg["clamp"]), **common)
    D = networks.Discriminator(architecture=cfg["d_arch"], channel_base=cfg["channel_base"],
                               channel_max=cfg["channel_max"], num_fp16_res=0, conv_clamp=cfg["clamp"],
                               mapping_kwargs=EasyDict(num_layers=2), block_kwargs=EasyDict(),
                               epilogue_kwargs=EasyDict(mbstd_group_size=cfg["mbstd"]), **common)
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    p.add_(0.2 * torch.randn_like(p))
                elif name.endswith("noise_strength"):
                    p.copy_(0.3 * torch.randn_like(p))
                else:
                    p.mul_(1 + 0.1 * torch.randn_like(p))
        G.mapping.w_avg.copy_(0.5 * torch.randn_like(G.mapping.w_avg))
    return G.eval().requires_grad_(False), D.eval().requires_grad_(False)


def _state(net) -> dict:
    out = {n: p.detach().numpy().astype(np.float32) for n, p in net.named_parameters()}
    out.update({n: b.detach().numpy().astype(np.float32) for n, b in net.named_buffers()})
    return out


def _grads(torch, net, value, dtype=np.float32) -> dict:
    params = [(n, p) for n, p in net.named_parameters()]
    gs = torch.autograd.grad(value, [p for _, p in params], allow_unused=True)
    return {n: (np.zeros(p.shape, dtype) if g is None else g.numpy().astype(dtype))
            for (n, p), g in zip(params, gs)}


def inputs(cfg: dict, seed: int):
    """(z, labels, one-hot labels, real NCHW images, pl_y NCHW), float32, drawn from ``seed``."""
    rng = np.random.RandomState(seed + 1)
    n, res, ch = cfg["batch"], cfg["res"], cfg["channels"]
    z = rng.randn(n, cfg["z_dim"]).astype(np.float32)
    labels = rng.randint(0, max(cfg["c_dim"], 1), size=n).astype(np.int32)
    c = np.eye(cfg["c_dim"], dtype=np.float32)[labels] if cfg["c_dim"] else np.zeros((n, 0), np.float32)
    real = rng.uniform(-1, 1, size=(n, ch, res, res)).astype(np.float32)
    pl_y = (rng.randn(n, ch, res, res) / np.sqrt(res * res)).astype(np.float32)
    return z, labels, c, real, pl_y


def reference(torch, G, D, cfg: dict, seed: int, dtype=np.float32) -> dict:
    """Every row's NVIDIA output for ``cfg`` (NCHW images as NHWC; logits in jaxgan's batch order).

    The inputs are drawn in float32 whatever ``dtype``; ``dtype`` is that of the computation (G and D
    must be in it: :func:`as_float64`) and of the outputs.
    """
    from jaxgan.interop.nvidia import strided_order  # numpy only
    n = cfg["batch"]
    z, labels, c, real, pl_y = inputs(cfg, seed)
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    F = lambda a: T(np.asarray(a, dtype))  # a float input in the computation's dtype
    nhwc = lambda t: np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 3, 1)).astype(dtype)
    zt, ct = F(z), F(c)
    order = strided_order(n, cfg["mbstd"])
    back = np.argsort(order)
    d_of = lambda img, cc: D(img[T(order)], cc[T(order)])[:, 0][T(back)]

    out = {"z": z, "labels": labels, "real": nhwc(F(real)), "pl_y": nhwc(F(pl_y))}
    with torch.no_grad():
        out["ws_psi1"] = G.mapping(zt, ct).numpy()
        out["img_psi1_const"] = nhwc(G(zt, ct, truncation_psi=1, noise_mode="const"))
        out["img_psi07_none"] = nhwc(G(zt, ct, truncation_psi=0.7, noise_mode="none"))
        out["img_psi07_cut2_const"] = nhwc(G(zt, ct, truncation_psi=0.7, truncation_cutoff=2, noise_mode="const"))
        out["d_real"] = d_of(F(real), ct).numpy()
    G.requires_grad_(True)
    D.requires_grad_(True)
    # G's non-saturating loss through D (noise fixed: 'const'), and D's on that fake and the reals.
    fake = G(zt, ct, noise_mode="const")
    fake_logits = d_of(fake, ct)
    out["d_fake"] = fake_logits.detach().numpy()
    g_loss = torch.nn.functional.softplus(-fake_logits).mean()
    out["g_loss"] = dtype(g_loss.item())
    out.update({f"grad_g/{k}": v for k, v in _grads(torch, G, g_loss, dtype).items()})
    d_loss = (torch.nn.functional.softplus(d_of(fake.detach(), ct)).mean()
              + torch.nn.functional.softplus(-d_of(F(real), ct)).mean())
    out["d_loss"] = dtype(d_loss.item())
    out.update({f"grad_d/{k}": v for k, v in _grads(torch, D, d_loss, dtype).items()})
    # R1 (loss.py: r1_grads over the reals' logits sum, squared, summed over C, H, W; mean over the batch).
    real_t = F(real).requires_grad_(True)
    r1_grads = torch.autograd.grad(d_of(real_t, ct).sum(), [real_t], create_graph=True)[0]
    r1 = r1_grads.square().sum([1, 2, 3]).mean()
    out["r1"] = dtype(r1.item())
    out.update({f"grad_r1/{k}": v for k, v in _grads(torch, D, r1, dtype).items()})
    # Path length (loss.py, Greg), with fixed noise and y; the mean update keeps its gradient.
    for pl_mean0 in (0.0, 0.5):
        ws = G.mapping(zt, ct)
        img = G.synthesis(ws, noise_mode="const")
        pl_grads = torch.autograd.grad((img * F(pl_y)).sum(), [ws], create_graph=True)[0]
        lengths = pl_grads.square().sum(2).mean(1).sqrt()
        pl_mean = F(pl_mean0).lerp(lengths.mean(), 0.01)
        penalty = (lengths - pl_mean).square().mean()
        tag = f"pl{pl_mean0:g}"
        out[f"{tag}/lengths"] = lengths.detach().numpy()
        out[f"{tag}/pl_mean"] = dtype(pl_mean.item())
        out[f"{tag}/penalty"] = dtype(penalty.item())
        out.update({f"grad_{tag}/{k}": v for k, v in _grads(torch, G, penalty, dtype).items()})
    G.requires_grad_(False)
    D.requires_grad_(False)
    return out


# ---------------------------------------------------------------------------------------- float64

def as_float64(net):
    """A float64 copy of NVIDIA's network (parameters and buffers; the resampling filters stay float32,
    as ``upfirdn2d`` asserts: [1,3,3,1]'s 4x4 filter, /64, is exact there)."""
    net64 = copy.deepcopy(net).double()
    for m in net64.modules():
        if m._buffers.get("resample_filter") is not None:
            m._buffers["resample_filter"] = m._buffers["resample_filter"].float()
    return net64


@contextlib.contextmanager
def nvidia_float64(torch, networks):
    """NVIDIA's networks run in float64: ``torch.float32`` read as float64 in ``training.networks``.

    Its blocks cast to ``torch.float32`` by name (``dtype = float16 if use_fp16 else float32``, the
    mapping's input, the images); only that module's name for float32 changes, for the block.
    Yields a census of the float32 tensors any operation made meanwhile (``.largest`` elements).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Census(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.largest = collections.Counter(), 0

        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                    self.ops[str(func)] += 1
                    self.largest = max(self.largest, t.numel())
            return out

    shim = types.ModuleType("torch_float32_as_float64")
    shim.__dict__.update(torch.__dict__)
    shim.float32 = torch.float64
    real, networks.torch = networks.torch, shim
    try:
        with Census() as census:
            yield census
    finally:
        networks.torch = real


# the jaxgan modules that name jnp.float32 on the compared path (mixed precision: "at least float32")
_JAX_MODULES = ("jaxgan.nets.stylegan2", "jaxgan.games.stylegan2", "jaxgan.penalties", "jaxgan.interop.nvidia_check")


@contextlib.contextmanager
def jax_float64():
    """jax_enable_x64, and ``jnp.float32`` read as float64 in :data:`_JAX_MODULES` (restored after)."""
    import importlib

    import jax
    import jax.numpy as jnp
    shim = types.ModuleType("jnp_float32_as_float64")
    shim.__dict__.update(jnp.__dict__)
    shim.float32 = jnp.float64
    mods = [importlib.import_module(m) for m in _JAX_MODULES]
    saved = [m.jnp for m in mods]
    try:
        for m in mods:
            m.jnp = shim
        with jax.enable_x64(True):
            yield
    finally:
        for m, j in zip(mods, saved):
            m.jnp = j


def ref_differences(a: dict, ref: dict, rows) -> dict:
    """``{row: rel}`` of one set of NVIDIA outputs against another (a gradient row: all its entries)."""
    from jaxgan.interop.nvidia_check import rel
    out = {}
    for row in rows:
        if row.startswith("grad_"):
            keys = sorted(k for k in ref if k.startswith(row + "/"))
            flat = lambda d: np.concatenate([np.ravel(np.asarray(d[k], np.float64)) for k in keys])
            out[row] = rel(flat(a), flat(ref))
        else:
            out[row] = rel(a[row], ref[row])
    return out


def _flips(a: dict, b: dict) -> dict:
    """``{layer: (count, largest |float64 value|)}`` of outputs whose sign differs between ``a`` and ``b``."""
    out = {}
    for k in a:
        flip = np.sign(a[k]) != np.sign(b[k])
        if flip.any():
            out[k] = (int(flip.sum()), float(np.abs(b[k][flip]).max()))
    return out


def kink_flips(torch, networks, G, D, G64, D64, cfg: dict, seed: int) -> dict:
    """Leaky-ReLU units whose input is on the other side of 0 in float32 than in float64.

    For jaxgan and NVIDIA each: G(z) (psi 1, fixed noise), D on the reals, D on its own G's image.
    At such a unit the slope is 0.2 sqrt(2) instead of sqrt(2) (or the reverse) in one precision:
    float32 rounding that changes the gradients through that unit by far more than an ulp.

    Returns:
      ``{side: {pass: {layer: (count, largest |value| in float64)}}}``.
    """
    import jax
    import jax.numpy as jnp
    from jaxgan.nets.stylegan2 import SynthesisLayer
    z, labels, c, real, _ = inputs(cfg, seed)
    nhwc = lambda a: np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))
    lrelu = lambda mdl, method: method == "__call__" and (
        isinstance(mdl, SynthesisLayer) or getattr(mdl, "act", None) == "lrelu")

    def jax_side(dtype):
        from jaxgan.interop import nvidia
        g, _ = nvidia.generator_from_kwargs(G.init_kwargs)
        d = nvidia.discriminator_from_kwargs(D.init_kwargs)
        g, d = g.clone(dtype=dtype), d.clone(dtype=dtype)
        cast = lambda t: jax.tree.map(lambda x: jnp.asarray(x, dtype), t)
        gv, dv = cast(nvidia.generator_variables(g, _state(G))), cast(nvidia.discriminator_variables(d, _state(D)))
        lab = jnp.asarray(labels) if g.num_classes is not None else None

        def run(gv, dv, z, real):
            img, gi = g.apply(gv, z, lab, noise_mode="const", capture_intermediates=lrelu, mutable=["intermediates"])
            _, di = d.apply(dv, real, lab, capture_intermediates=lrelu, mutable=["intermediates"])
            _, fi = d.apply(dv, img, lab, capture_intermediates=lrelu, mutable=["intermediates"])
            return gi, di, fi

        out = jax.jit(run)(gv, dv, jnp.asarray(z, dtype), jnp.asarray(nhwc(real), dtype))
        return [{"/".join(p.key for p in path[:-2]): np.asarray(x, np.float64) for path, x in
                 jax.tree_util.tree_flatten_with_path(o["intermediates"])[0]} for o in out]

    def nv_side(g_net, d_net, dtype):
        from jaxgan.interop.nvidia import strided_order
        taps, hooks = {}, []
        for name, m in list(g_net.named_modules()) + [("D." + n, m) for n, m in d_net.named_modules()]:
            if getattr(m, "activation", None) == "lrelu":
                hooks.append(m.register_forward_hook(
                    lambda m, i, o, name=name: taps.__setitem__(name, o.detach().double().numpy().copy())))
        order = torch.from_numpy(strided_order(cfg["batch"], cfg["mbstd"]))
        F = lambda a: torch.from_numpy(np.asarray(a, dtype))
        passes = []
        try:
            with torch.no_grad():
                img = g_net(F(z), F(c), noise_mode="const")
                passes.append(dict(taps))
                taps.clear()
                d_net(F(real)[order], F(c)[order])
                passes.append(dict(taps))
                taps.clear()
                d_net(img[order], F(c)[order])
                passes.append(dict(taps))
        finally:
            for h in hooks:
                h.remove()
        return passes

    j32 = jax_side(jnp.float32)
    with jax_float64():
        j64 = jax_side(jnp.float64)
    n32 = nv_side(G, D, np.float32)
    with nvidia_float64(torch, networks):
        n64 = nv_side(G64, D64, np.float64)
    names = ("G", "D(reals)", "D(fakes)")
    return {"jaxgan": {p: _flips(a, b) for p, a, b in zip(names, j32, j64)},
            "NVIDIA": {p: _flips(a, b) for p, a, b in zip(names, n32, n64)}}


def compare_float64(torch, networks, G, D, cfg: dict, seed: int, ref32: dict) -> dict:
    """``{row: (jax32 vs nv32, nv32 vs nv64, jax32 vs nv64, jax64 vs nv64)}`` for one configuration."""
    import jax
    import jax.numpy as jnp
    from jaxgan.interop import nvidia_check
    g_state, d_state = _state(G), _state(D)
    G64, D64 = as_float64(G), as_float64(D)
    t = time.time()
    with nvidia_float64(torch, networks) as census:
        ref64 = reference(torch, G64, D64, cfg, seed, dtype=np.float64)
    print(f"  nv64: {time.time() - t:.0f} s; float32 tensors made: {census.largest} elements at most "
          f"({dict(census.ops)})", flush=True)
    if census.largest > 16:
        raise SystemExit(f"NVIDIA's float64 run made a float32 tensor of {census.largest} elements (more than "
                         "its 4x4 resampling filter): something still runs in float32")
    t = time.time()
    res32 = nvidia_check.compute(g_state, G.init_kwargs, d_state, D.init_kwargs, ref32)
    print(f"  jax32: {time.time() - t:.0f} s", flush=True)
    t = time.time()
    with jax_float64():
        args = (g_state, G.init_kwargs, d_state, D.init_kwargs, ref32)
        jaxpr = str(jax.make_jaxpr(lambda: nvidia_check.compute(*args, dtype=jnp.float64)[:2])())
        found = re.search(r"\bf32\b|float32", jaxpr)
        if found:
            at = found.start()
            raise SystemExit(f"jaxgan's float64 run still holds a float32 value: ...{jaxpr[at - 200:at + 100]}...")
        res64 = nvidia_check.compute(*args, dtype=jnp.float64)
        leaves = jax.tree.leaves(res64[:2])
        assert all(x.dtype == jnp.float64 for x in leaves), {x.dtype for x in leaves}
    print(f"  jax64: {time.time() - t:.0f} s (no float32 in its jaxpr)", flush=True)
    t = time.time()
    flips = kink_flips(torch, networks, G, D, G64, D64, cfg, seed)
    say = lambda f: ", ".join(f"{p} " + (" ".join(f"{k}: {n} (|x| {x:.0e})" for k, (n, x) in layers.items()) or "0")
                              for p, layers in f.items())
    print(f"  leaky-ReLU inputs on the other side of 0 in float32 than in float64 ({time.time() - t:.0f} s): "
          f"jaxgan {say(flips['jaxgan'])}; NVIDIA {say(flips['NVIDIA'])}", flush=True)
    a = nvidia_check.differences(*res32, ref32)
    b = ref_differences(ref32, ref64, a)
    c = nvidia_check.differences(*res32, ref64)
    d = nvidia_check.differences(*res64, ref64)
    return {row: (a[row], b[row], c[row], d[row]) for row in a}


def write_pickle(torch, networks, G, D, path: str, cfg: dict) -> None:
    """A snapshot as ADA's training_loop.py writes it (G, D, G_ema, augment_pipe, training_set_kwargs)."""
    from training import augment
    G_ema = copy.deepcopy(G).eval()
    with torch.no_grad():  # G_ema a little different from G, as after training
        for p in G_ema.parameters():
            p.mul_(0.9)
    pipe = augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                               brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    pipe.p.copy_(torch.as_tensor(0.25))
    training_set_kwargs = dict(class_name="training.dataset.ImageFolderDataset", path="/data/test.zip",
                               use_labels=cfg["c_dim"] > 0, max_size=100, xflip=False,
                               resolution=cfg["res"], random_seed=0)
    snapshot = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", pipe)]:
        snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
    with open(path, "wb") as f:
        pickle.dump(snapshot, f)


def run_generate(official: str, pkl: str, outdir: str) -> None:
    """NVIDIA's generate.py on CPU (it hard-codes torch.device('cuda'); mapped to 'cpu' for the call)."""
    import torch
    import generate
    real_device = torch.device

    class _Device:
        def __call__(self, *a, **k):
            return real_device("cpu") if a and a[0] == "cuda" else real_device(*a, **k)

        def __instancecheck__(self, obj):
            return isinstance(obj, real_device)

    generate.torch = type(sys)("torch_cpu_shim")
    generate.torch.__dict__.update(torch.__dict__)
    generate.torch.device = _Device()
    args = [f"--network={pkl}", f"--outdir={outdir}", f"--trunc={GENERATE_PSI}",
            f"--seeds={','.join(map(str, GENERATE_SEEDS))}", "--noise-mode=const"]
    generate.generate_images.main(args=args, standalone_mode=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--fixture", help="write the CI fixture (.npz) here")
    p.add_argument("--pickles", help="write network pickles (stylegan2_nvidia_<config>.pkl) into this folder")
    p.add_argument("--generate", help="write generate.py's PNGs for the pickled res32 network here")
    p.add_argument("--compare", help="comma-separated configs to compare against jaxgan (prints a table)")
    p.add_argument("--float64", action="store_true",
                   help="with --compare: also compare both sides in float64 (four columns per row)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch, networks = _load_official(args.official)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    if args.fixture or args.pickles:
        arrays = {}
        for i, name in enumerate(FIXTURE_CONFIGS):
            cfg = CONFIGS[name]
            G, D = build(torch, networks, cfg, args.seed + 10 * i)
            for k, v in _state(G).items():
                arrays[f"{name}/G/{k}"] = v
            for k, v in _state(D).items():
                arrays[f"{name}/D/{k}"] = v
            arrays[f"{name}/G_kwargs"] = np.array(json.dumps(G.init_kwargs))
            arrays[f"{name}/D_kwargs"] = np.array(json.dumps(D.init_kwargs))
            for k, v in reference(torch, G, D, cfg, args.seed + 10 * i).items():
                arrays[f"{name}/out/{k}"] = np.asarray(v)
            if args.pickles:
                os.makedirs(args.pickles, exist_ok=True)
                write_pickle(torch, networks, G, D, os.path.join(args.pickles, f"stylegan2_nvidia_{name}.pkl"), cfg)
        if args.fixture:
            np.savez_compressed(args.fixture, **arrays)
            print(f"wrote {args.fixture} ({os.path.getsize(args.fixture) / 1e3:.0f} kB, {len(arrays)} arrays)")
    if args.generate:
        if not args.pickles:
            p.error("--generate needs --pickles (it runs generate.py on the pickled res32 network)")
        run_generate(args.official, os.path.join(args.pickles, "stylegan2_nvidia_res32.pkl"), args.generate)
        from PIL import Image
        images = np.stack([np.asarray(Image.open(os.path.join(args.generate, f"seed{s:04d}.png")))
                           for s in GENERATE_SEEDS])
        np.savez_compressed(os.path.join(args.pickles, "stylegan2_nvidia_generate.npz"), images=images,
                            seeds=np.asarray(GENERATE_SEEDS), psi=np.float32(GENERATE_PSI))
        print(f"wrote generate.py's images for seeds {GENERATE_SEEDS} at psi {GENERATE_PSI} into {args.generate}")
    if args.float64 and not args.compare:
        p.error("--float64 goes with --compare CONFIGS")
    if args.compare:
        from jaxgan.interop import nvidia_check
        rows = []
        for name in args.compare.split(","):
            cfg = CONFIGS[name]
            t = time.time()
            G, D = build(torch, networks, cfg, args.seed)
            ref = reference(torch, G, D, cfg, args.seed)
            if args.float64:
                print(f"{name}: nv32 {time.time() - t:.0f} s", flush=True)
                for row, errs in compare_float64(torch, networks, G, D, cfg, args.seed, ref).items():
                    rows.append((name, row, errs))
            else:
                for row, err in nvidia_check.compare(_state(G), G.init_kwargs, _state(D), D.init_kwargs, ref).items():
                    rows.append((name, row, (err,)))
            print(f"{name}: {time.time() - t:.0f} s", flush=True)
        if args.float64:
            print("| config | row | jax32 vs nv32 | nv32 vs nv64 | jax32 vs nv64 | jax64 vs nv64 |\n"
                  "|---|---|---|---|---|---|")
        else:
            print("| config | row | max relative difference |\n|---|---|---|")
        for name, row, errs in rows:
            print(f"| {name} | {row} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")

if __name__ == "__main__":
    main()
