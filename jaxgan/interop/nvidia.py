"""NVIDIA's StyleGAN2-ADA networks as jaxgan networks: modules from init kwargs, weights by name.

NVlabs/stylegan2-ada-pytorch (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data") stores a network as its constructor's keyword arguments (``init_kwargs``) and a
PyTorch state dict (parameters and buffers, NCHW/OIHW layouts). This module turns the two into a
:class:`~jaxgan.nets.stylegan2.StyleGAN2Generator` or :class:`~jaxgan.nets.stylegan2.StyleGAN2Discriminator`
and its flax variables, with numpy only (no torch): the state dict is a ``{name: np.ndarray}``.

Layout changes (all exact permutations, so gradients map the same way):

* fully connected ``weight`` (out, in) -> ``kernel`` (in, out);
* convolution ``weight`` (O, I, kh, kw) -> ``kernel`` (kh, kw, I, O); ADA's up-sampling synthesis
  layers (``b*.conv0``) *convolve* (a transposed convolution), everything else correlates, so their
  kernel is flipped in space;
* ``const`` (C, 4, 4) -> (4, 4, C); ``noise_const`` (r, r) -> ``stats``;
* D's ``b4.fc.weight`` reads a (C, 4, 4) flattened input, jaxgan's a (4, 4, C) one: its input axis
  is permuted.

Anything the jaxgan networks cannot express (G architectures other than 'skip', D 'skip', other
resampling filters or activations, ...) is refused with one line (:class:`NotConvertible`).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jaxgan.errors import UserError
from jaxgan.nets.stylegan2 import FIR, StyleGAN2Discriminator, StyleGAN2Generator, channels_at

_FIR_2D = np.outer(FIR, FIR) / np.sum(np.outer(FIR, FIR))


class NotConvertible(UserError, ValueError):
    """An NVIDIA network uses an option jaxgan's StyleGAN2 does not implement."""


def _kw(d: Mapping | None) -> dict:
    return dict(d or {})


def _only(kind: str, kwargs: Mapping, allowed: Mapping[str, Any]) -> None:
    """Refuses keyword values the jaxgan networks do not implement (``allowed``: name -> default)."""
    for name, ok in allowed.items():
        if name in kwargs and kwargs[name] != ok:
            raise NotConvertible(f"NVIDIA {kind} with {name}={kwargs[name]!r}: jaxgan's StyleGAN2 implements "
                              f"only {name}={ok!r}; this network cannot be converted")


def generator_from_kwargs(kwargs: Mapping) -> tuple[StyleGAN2Generator, int]:
    """(jaxgan generator with ADA's fixed noise maps, z_dim) from ``training.networks.Generator`` kwargs."""
    kwargs = dict(kwargs)
    m, s = _kw(kwargs.get("mapping_kwargs")), _kw(kwargs.get("synthesis_kwargs"))
    _only("mapping network", m, {"embed_features": None, "layer_features": None, "activation": "lrelu"})
    _only("synthesis network", s, {"architecture": "skip", "resample_filter": [1, 3, 3, 1], "activation": "lrelu",
                                   "use_noise": True, "kernel_size": 3})
    clamp = s.get("conv_clamp")
    g = StyleGAN2Generator(
        resolution=int(kwargs["img_resolution"]), channels=int(kwargs["img_channels"]), w_dim=int(kwargs["w_dim"]),
        mapping_layers=int(m.get("num_layers", 8)), mapping_lr_mul=float(m.get("lr_multiplier", 0.01)),
        channel_base=int(s.get("channel_base", 32768)), channel_max=int(s.get("channel_max", 512)),
        num_classes=int(kwargs["c_dim"]) or None, clamp=None if clamp is None else float(clamp), const_noise=True)
    return g, int(kwargs["z_dim"])


def discriminator_from_kwargs(kwargs: Mapping) -> StyleGAN2Discriminator:
    """The jaxgan discriminator of ``training.networks.Discriminator`` kwargs."""
    kwargs = dict(kwargs)
    b, m, e = _kw(kwargs.get("block_kwargs")), _kw(kwargs.get("mapping_kwargs")), _kw(kwargs.get("epilogue_kwargs"))
    arch = kwargs.get("architecture", "resnet")
    if arch not in ("resnet", "orig"):
        raise NotConvertible(f"NVIDIA discriminator with architecture={arch!r}: jaxgan implements 'resnet' and "
                          "'orig'; this network cannot be converted")
    _only("discriminator block", b, {"activation": "lrelu", "resample_filter": [1, 3, 3, 1]})
    _only("discriminator mapping", m, {"embed_features": None, "layer_features": None, "activation": "lrelu"})
    _only("discriminator epilogue", e, {"activation": "lrelu"})
    if "cmap_dim" in kwargs and kwargs["cmap_dim"] is not None:
        res4 = channels_at(4, int(kwargs.get("channel_base", 32768)), int(kwargs.get("channel_max", 512)))
        if int(kwargs["cmap_dim"]) != res4:
            raise NotConvertible(f"NVIDIA discriminator with cmap_dim={kwargs['cmap_dim']}: jaxgan uses the 4x4 "
                              f"width ({res4}); this network cannot be converted")
    group = e.get("mbstd_group_size", 4)
    if group is None:
        raise NotConvertible("NVIDIA discriminator with mbstd_group_size=None (the whole minibatch): jaxgan needs a "
                          "fixed group size (device invariance); this network cannot be converted")
    clamp = kwargs.get("conv_clamp")
    return StyleGAN2Discriminator(
        resolution=int(kwargs["img_resolution"]), channel_base=int(kwargs.get("channel_base", 32768)),
        channel_max=int(kwargs.get("channel_max", 512)), mbstd_group=int(group),
        mbstd_channels=int(e.get("mbstd_num_channels", 1)), num_classes=int(kwargs["c_dim"]) or None,
        mapping_layers=int(m.get("num_layers", 8)), clamp=None if clamp is None else float(clamp), architecture=arch)


# ---------------------------------------------------------------------------------------- weights

def _dense(sd, prefix) -> dict:
    out = {"kernel": np.asarray(sd[f"{prefix}.weight"], np.float32).T}
    if f"{prefix}.bias" in sd:
        out["bias"] = np.asarray(sd[f"{prefix}.bias"], np.float32)
    return out


def _conv_kernel(w: np.ndarray, flip: bool = False) -> np.ndarray:
    w = np.asarray(w, np.float32)
    if flip:
        w = w[:, :, ::-1, ::-1]
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _check_filters(sd: Mapping[str, np.ndarray]) -> None:
    for name, f in sd.items():
        if name.endswith("resample_filter"):
            f = np.asarray(f, np.float64)
            f2 = np.outer(f, f) if f.ndim == 1 else f
            if f2.shape != (4, 4) or not np.allclose(f2, _FIR_2D, rtol=1e-6, atol=1e-7):
                raise NotConvertible(f"NVIDIA network with resample filter {name} != [1,3,3,1]: cannot be converted")


def _mapping(sd, prefix: str, num_layers: int, conditional: bool) -> dict:
    p = {f"fc{i}": _dense(sd, f"{prefix}.fc{i}") for i in range(num_layers)}
    if conditional:
        p["embed"] = _dense(sd, f"{prefix}.embed")
    return p


def _missing(sd: Mapping, used: set[str], what: str) -> None:
    extra = sorted(k for k in sd if k not in used and not k.endswith("resample_filter"))
    if extra:
        raise NotConvertible(f"NVIDIA {what} has entries jaxgan does not map ({', '.join(extra[:4])}"
                          f"{' ...' if len(extra) > 4 else ''}): this network cannot be converted")


class _Tracked(dict):
    """A state dict that records which names were read (so nothing is silently dropped)."""

    def __init__(self, d):
        super().__init__(d)
        self.used: set[str] = set()

    def __getitem__(self, k):
        self.used.add(k)
        return super().__getitem__(k)


def generator_variables(g: StyleGAN2Generator, state_dict: Mapping[str, np.ndarray], *,
                        with_buffers: bool = True) -> dict:
    """flax variables ``{'params': ..., 'stats': ...}`` of ``g`` from ADA's generator state dict.

    Args:
      g: from :func:`generator_from_kwargs`.
      state_dict: ``{name: array}`` of ``G.named_parameters()`` and ``G.named_buffers()``.
      with_buffers: False maps parameters only (e.g. a dict of gradients); 'stats' is then absent.
    """
    sd = _Tracked(state_dict)
    _check_filters(state_dict)
    syn: dict[str, Any] = {}
    stats_syn: dict[str, Any] = {}
    res = 4
    while res <= g.resolution:
        blk = f"synthesis.b{res}"
        if res == 4:
            syn["const"] = np.ascontiguousarray(np.asarray(sd[f"{blk}.const"], np.float32).transpose(1, 2, 0))
        layers = ["conv1"] if res == 4 else ["conv0", "conv1"]
        for layer in layers:
            src = f"{blk}.{layer}"
            syn[f"b{res}_{layer}"] = {
                "affine": _dense(sd, f"{src}.affine"),
                "kernel": _conv_kernel(sd[f"{src}.weight"], flip=(layer == "conv0")),
                "noise_strength": np.asarray(sd[f"{src}.noise_strength"], np.float32).reshape(()),
                "bias": np.asarray(sd[f"{src}.bias"], np.float32),
            }
            if with_buffers:
                stats_syn[f"b{res}_{layer}"] = {"noise_const": np.asarray(sd[f"{src}.noise_const"], np.float32)}
        syn[f"b{res}_torgb"] = {"affine": _dense(sd, f"{blk}.torgb.affine"),
                                "kernel": _conv_kernel(sd[f"{blk}.torgb.weight"]),
                                "bias": np.asarray(sd[f"{blk}.torgb.bias"], np.float32)}
        res *= 2
    params = {"mapping": _mapping(sd, "mapping", g.mapping_layers, g.num_classes is not None), "synthesis": syn}
    out = {"params": params}
    if with_buffers:
        out["stats"] = {"w_avg": np.asarray(sd["mapping.w_avg"], np.float32), "synthesis": stats_syn}
        _missing(state_dict, sd.used, "generator")
    return out


def discriminator_variables(d: StyleGAN2Discriminator, state_dict: Mapping[str, np.ndarray], *,
                            with_buffers: bool = True) -> dict:
    """flax variables ``{'params': ...}`` of ``d`` from ADA's discriminator state dict (or its gradients)."""
    sd = _Tracked(state_dict)
    _check_filters(state_dict)
    conv = lambda prefix, bias=True: ({"kernel": _conv_kernel(sd[f"{prefix}.weight"])}
                                      | ({"bias": np.asarray(sd[f"{prefix}.bias"], np.float32)} if bias else {}))
    p: dict[str, Any] = {"fromrgb": conv(f"b{d.resolution}.fromrgb")}
    res = d.resolution
    while res > 4:
        p[f"b{res}_conv0"] = conv(f"b{res}.conv0")
        p[f"b{res}_conv1"] = conv(f"b{res}.conv1")
        if d.architecture == "resnet":
            p[f"b{res}_skip"] = conv(f"b{res}.skip", bias=False)
        res //= 2
    p["b4_conv"] = conv("b4.conv")
    fc = np.asarray(sd["b4.fc.weight"], np.float32)           # (O, C*4*4), input index c*16 + h*4 + w
    o, n = fc.shape
    c = n // 16
    p["b4_fc"] = {"kernel": np.ascontiguousarray(fc.reshape(o, c, 4, 4).transpose(2, 3, 1, 0).reshape(16 * c, o)),
                  "bias": np.asarray(sd["b4.fc.bias"], np.float32)}
    p["out"] = _dense(sd, "b4.out")
    if d.num_classes is not None:
        p["cmap"] = _mapping(sd, "mapping", d.mapping_layers, True)
    if with_buffers:
        _missing(state_dict, sd.used, "discriminator")
    return {"params": p}


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """ADA's (N, C, H, W) images as jaxgan's (N, H, W, C)."""
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


def strided_order(n: int, group: int) -> np.ndarray:
    """The permutation that makes ADA's strided minibatch-stddev groups jaxgan's consecutive ones.

    ADA puts example i of a batch of n into group i mod (n/G); jaxgan puts it into group i // G.
    ``x_ada = x[strided_order(n, G)]`` gives ADA a batch whose groups hold the same examples as
    jaxgan's groups of ``x``; ADA's logits ``l_ada`` map back as ``l = l_ada[argsort(order)]``.
    """
    g = min(group, n) if group else n
    if n % g:
        raise ValueError(f"batch {n} is not a multiple of the group size {g}")
    k = np.arange(n)
    return (k % (n // g)) * g + k // (n // g)


__all__ = ("NotConvertible", "generator_from_kwargs", "discriminator_from_kwargs", "generator_variables", "discriminator_variables",
           "nchw_to_nhwc", "strided_order")
