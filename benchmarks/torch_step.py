"""The same GAN train step in PyTorch: the outside reference for ``jaxgan bench --compare torch``.

The layers of ``benchmarks/handwritten_jax.py`` (and of jaxgan's DCGAN and MLP): the PyTorch
examples' DCGAN (Radford, Metz & Chintala, 2015; ConvTranspose2d/Conv2d 4x4 without bias,
BatchNorm2d(momentum 0.1 = flax's 0.9), ReLU / LeakyReLU(0.2), tanh), or the MLP of Goodfellow et
al. (2014); the non-saturating loss, optional R1 (Mescheder et al., 2018) through a double
backward, Adam (fused where this PyTorch has it), optional generator EMA. A step is n_critic D
updates, then one G update, with G's fakes drawn afresh in each. Variants:

* ``eager``: plain PyTorch;
* ``compile``: the loss-and-backward functions under ``torch.compile`` (inductor);
* ``channels_last``: NHWC memory format for the convolutional networks;

and on a GPU, with ``dtype='bfloat16'``, forward passes run under bf16 autocast. Initial weights
follow PyTorch's own initialisation (N(0, 0.02) for convolutions), not jaxgan's draws: this step is
for timing, and its math is the same, not its random numbers. The cosine learning-rate schedule is
not reproduced (it changes no FLOP).

Nothing here imports jaxgan or jax.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import time

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class Spec:
    """The fields of ``handwritten_jax.Spec`` that a PyTorch step needs (same names and meanings)."""

    family: str
    data_shape: tuple
    batch: int
    latent_dim: int
    ngf: int = 64
    ndf: int = 64
    hidden: int = 128
    depth: int = 3
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    schedule: str = "constant"
    total_steps: int = 1
    final_lr_fraction: float = 0.05
    r1_gamma: float = 0.0
    ema_half_life_images: float = 0.0
    n_critic: int = 1
    dtype: str = "float32"


def _g_plan(resolution, ngf, channels):
    if resolution == 28:
        return [(ngf * 2, 7, 1, 0), (ngf, 4, 2, 1), (channels, 4, 2, 1)]
    mult, plan = resolution // 8, []
    plan.append((ngf * mult, 4, 1, 0))
    while mult > 1:
        mult //= 2
        plan.append((ngf * mult, 4, 2, 1))
    return plan + [(channels, 4, 2, 1)]


def _d_plan(resolution, ndf):
    if resolution == 28:
        return [ndf, ndf * 2]
    return [ndf * 2**i for i in range(resolution.bit_length() - 3)]


def dcgan_generator(spec: Spec) -> nn.Module:
    res, _, channels = spec.data_shape
    layers, c_in = [], spec.latent_dim
    plan = _g_plan(res, spec.ngf, channels)
    for i, (c_out, k, s, p) in enumerate(plan):
        layers.append(nn.ConvTranspose2d(c_in, c_out, k, s, p, bias=False))
        if i < len(plan) - 1:
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
        c_in = c_out
    layers.append(nn.Tanh())
    return nn.Sequential(nn.Unflatten(1, (spec.latent_dim, 1, 1)), *layers)


def dcgan_discriminator(spec: Spec) -> nn.Module:
    res, _, channels = spec.data_shape
    layers, c_in, n = [], channels, res
    for i, c_out in enumerate(_d_plan(res, spec.ndf)):
        layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
        if i > 0:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.2, True))
        c_in, n = c_out, n // 2
    layers += [nn.Conv2d(c_in, 1, n, 1, 0, bias=False), nn.Flatten(0)]
    return nn.Sequential(*layers)


def mlp_pair(spec: Spec) -> tuple[nn.Module, nn.Module]:
    out = math.prod(spec.data_shape)
    g, d, n_in, m_in = [], [], spec.latent_dim, out
    for _ in range(spec.depth):
        g += [nn.Linear(n_in, spec.hidden), nn.ReLU()]
        d += [nn.Linear(m_in, spec.hidden), nn.LeakyReLU(0.2)]
        n_in = m_in = spec.hidden
    g.append(nn.Linear(n_in, out))
    d += [nn.Linear(m_in, 1), nn.Flatten(0)]
    return nn.Sequential(*g), nn.Sequential(*d)


def _init_dcgan(module):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _adam(params, spec: Spec, lr: float, device: str):
    kwargs = {"lr": lr, "betas": (spec.b1, spec.b2)}
    if "fused" in inspect.signature(torch.optim.Adam).parameters:
        kwargs["fused"] = True  # CPU and CUDA in recent PyTorch
    try:
        return torch.optim.Adam(params, **kwargs), bool(kwargs.get("fused"))
    except (RuntimeError, ValueError):
        kwargs.pop("fused", None)
        return torch.optim.Adam(params, **kwargs), False


class TorchStep:
    """``window(k) -> seconds``: k train steps on fixed random batches, synchronised at the end.

    Args:
      spec: the sizes and optimisation.
      variant: 'eager', 'compile' or 'channels_last'.
      device: 'cpu' or 'cuda'.
      seed: torch's seed for the initial weights and the batches.
    """

    def __init__(self, spec: Spec, variant: str = "eager", device: str = "cpu", seed: int = 0):
        if variant not in ("eager", "compile", "channels_last"):
            raise ValueError(f"unknown variant {variant!r}: use 'eager', 'compile' or 'channels_last'")
        torch.manual_seed(seed)
        self.spec, self.variant, self.device = spec, variant, torch.device(device)
        if spec.family == "dcgan":
            self.g, self.d = dcgan_generator(spec), dcgan_discriminator(spec)
            self.g.apply(_init_dcgan)
            self.d.apply(_init_dcgan)
        elif spec.family == "mlp":
            self.g, self.d = mlp_pair(spec)
        else:
            raise ValueError(f"unknown family {spec.family!r}")
        self.memory_format = torch.channels_last if (variant == "channels_last" and spec.family == "dcgan") \
            else torch.contiguous_format
        self.g.to(self.device, memory_format=self.memory_format)
        self.d.to(self.device, memory_format=self.memory_format)
        self.g_opt, fused = _adam(self.g.parameters(), spec, spec.g_lr, device)
        self.d_opt, _ = _adam(self.d.parameters(), spec, spec.d_lr, device)
        self.fused_adam = fused
        self.ema = [p.detach().clone() for p in self.g.parameters()] if spec.ema_half_life_images else None
        self.ema_beta = 0.5 ** (spec.batch * spec.n_critic / max(spec.ema_half_life_images, 1e-8))
        self.autocast = device == "cuda" and spec.dtype == "bfloat16"
        shape = (spec.n_critic, spec.batch, *spec.data_shape)
        real = [torch.rand(shape, device=self.device) * 2 - 1 for _ in range(2)]
        if spec.family == "dcgan":  # NHWC data -> NCHW tensors
            real = [r.permute(0, 1, 4, 2, 3).contiguous() for r in real]
            real = [torch.stack([x.contiguous(memory_format=self.memory_format) for x in r]) for r in real]
        self.real = real
        d_fn, g_fn = self._d_loss_backward, self._g_loss_backward
        if variant == "compile":
            d_fn, g_fn = torch.compile(d_fn), torch.compile(g_fn)
        self.d_fn, self.g_fn = d_fn, g_fn

    def info(self) -> dict:
        return {"torch": torch.__version__, "variant": self.variant, "fused_adam": self.fused_adam,
                "autocast_bf16": self.autocast, "torch_threads": torch.get_num_threads(),
                "compile_s": {"cold": None, "warm": None, "warm_method": None}}

    def _cast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()

    def _z(self):
        return torch.randn(self.spec.batch, self.spec.latent_dim, device=self.device)

    def _d_loss_backward(self, x, z):
        with self._cast():
            with torch.no_grad():
                fake = self.g(z)
            if self.spec.r1_gamma:
                x = x.detach().requires_grad_(True)
            real_logits = self.d(x).float()
            fake_logits = self.d(fake).float()
            loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if self.spec.r1_gamma:
            (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            loss = loss + self.spec.r1_gamma / 2 * grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean()
        loss.backward()
        return loss.detach()

    def _g_loss_backward(self, z):
        with self._cast():
            logits = self.d(self.g(z)).float()
            loss = F.softplus(-logits).mean()
        loss.backward()
        return loss.detach()

    def step(self, real):
        for i in range(self.spec.n_critic):
            self.d_opt.zero_grad(set_to_none=True)
            self.d_fn(real[i], self._z())
            self.d_opt.step()
        self.g_opt.zero_grad(set_to_none=True)
        for p in self.d.parameters():  # D's weight gradients are not needed in the G update
            p.requires_grad_(False)
        self.g_fn(self._z())
        for p in self.d.parameters():
            p.requires_grad_(True)
        self.g_opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema, self.g.parameters()):
                    e.copy_(p + self.ema_beta * (e - p))

    def window(self, k: int) -> float:
        t0 = time.perf_counter()
        for i in range(k):
            self.step(self.real[i % 2])
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
