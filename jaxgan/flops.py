"""Analytic FLOP counts of a GAN train step, to check the compiler's count (``jaxgan bench``).

A FLOP here is what XLA's ``HloCostAnalysis`` calls one: a multiply-add is 2 FLOPs, and a
convolution counts only the products that touch a real input element (not the zeros of padding or
of a transposed convolution's input dilation). For a layer with ``M`` such multiply-adds per
example, a train step costs

    forward              2 M        per example and per pass
    input gradient       2 M        (skipped for the first layer: nothing upstream is trained)
    weight gradient      2 M

and a step of the standard game (``jaxgan.game.GAN``, ``n_critic`` D updates then one G update) is,
with ``G``, ``D`` the forward FLOPs of a batch and ``G1``, ``D1`` those of the first layers,

    per D update:  G (fakes, no gradient) + 2 D (real, fake) + 2 D (weight grads) + 2 (D - D1)
    G update:      G + D + D (input grads, all layers) + G (weight grads) + (G - G1)

plus, with R1 (Mescheder et al. 2018) on every D update, the double backward through D on the real
batch: a forward (D), the input gradient (D), and the derivative of that gradient's norm with
respect to the weights: the weight gradients of the backward pass's products (D) and the gradients
flowing down its chain (D - D_last; the last layer's incoming gradient is a constant). The forward
pass gets no second-order gradient because the activations are piecewise linear (ReLU, LeakyReLU):
for a network with BatchNorm this term is an underestimate. Matrix products and convolutions
dominate; BatchNorm, activations, losses and Adam add a few per cent, counted here per element.

With ``train.share_generator_pass`` the G update reuses the D update's fakes and their VJP, so one
G forward (``G``, and its per-element terms) drops out of the step.

The count of the whole step is what ``flops_per_step`` reports next to the lowered HLO's count
(``jitted.lower(...).cost_analysis()['flops']``): on GPU the compiled module's cost analysis may not
count work done in library calls (cuDNN), so the lowered count and this one are the references.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence


def xla_cost(program) -> dict:
    """XLA's cost analysis of a lowered or compiled jax program as one dict (``'flops'``, ``'bytes
    accessed'``, ...; empty where XLA gives none): jax returns the dict itself, or a list of one."""
    cost = program.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return dict(cost or {})


@dataclasses.dataclass(frozen=True)
class Layer:
    """One matrix-product layer of a network, per example.

    Attributes:
      macs: multiply-adds per example (real products only).
      outputs: output elements per example (for the per-element costs of bias, BatchNorm, activation).
      params: trainable parameters of the layer (for Adam's per-parameter cost).
      norm: whether a BatchNorm follows the layer.
    """

    macs: int
    outputs: int
    params: int
    norm: bool = False


def conv_pairs_1d(n_in: int, kernel: int, stride: int, pad_lo: int, n_out: int,
                  lhs_dilation: int = 1) -> int:
    """Pairs (output position, kernel tap) of one spatial dimension that read a real input element.

    The input is dilated by ``lhs_dilation`` (a transposed convolution's stride), padded by
    ``pad_lo`` in front, and read with window ``kernel`` at ``stride``.
    """
    count = 0
    for o in range(n_out):
        for t in range(kernel):
            j = o * stride + t - pad_lo  # index into the dilated input
            if j % lhs_dilation == 0 and 0 <= j // lhs_dilation < n_in:
                count += 1
    return count


def conv_same(n_in: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, pairs) of a 'SAME' convolution along one dimension (TensorFlow's padding rule)."""
    n_out = -(-n_in // stride)
    pad_total = max((n_out - 1) * stride + kernel - n_in, 0)
    return n_out, conv_pairs_1d(n_in, kernel, stride, pad_total // 2, n_out)


def conv_transpose_same(n_in: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, pairs) of a 'SAME' transposed convolution (``lax.conv_transpose``'s padding)."""
    pad_len = kernel + stride - 2
    pad_lo = kernel - 1 if stride > kernel - 1 else math.ceil(pad_len / 2)
    n_out = n_in * stride
    return n_out, conv_pairs_1d(n_in, kernel, 1, pad_lo, n_out, lhs_dilation=stride)


def conv_layer(pairs: int, n_out: int, c_in: int, c_out: int, kernel: int, norm: bool) -> Layer:
    """A square 2-D convolution without bias from its per-dimension pair count."""
    return Layer(macs=pairs * pairs * c_in * c_out, outputs=n_out * n_out * c_out,
                 params=kernel * kernel * c_in * c_out + (2 * c_out if norm else 0), norm=norm)


def dcgan_layers(resolution: int, channels: int, latent_dim: int, ngf: int, ndf: int
                 ) -> tuple[list[Layer], list[Layer]]:
    """(generator layers, discriminator layers) of :class:`jaxgan.nets.DCGANGenerator`/``Discriminator``.

    Radford, Metz & Chintala, 2015; unconditional; the layer plans of :mod:`jaxgan.nets.dcgan`.
    """
    from jaxgan.nets.dcgan import discriminator_plan, generator_plan

    g, n, c_in = [], 1, latent_dim
    plan = generator_plan(resolution, ngf, channels)
    for i, (features, kernel, stride, padding) in enumerate(plan):
        norm = i < len(plan) - 1
        if padding == "VALID":  # from 1x1: every output position takes exactly one tap
            n_out, pairs = kernel, kernel
        else:
            n_out, pairs = conv_transpose_same(n, kernel, stride)
        g.append(conv_layer(pairs, n_out, c_in, features, kernel, norm))
        n, c_in = n_out, features
    d, n, c_in = [], resolution, channels
    for i, features in enumerate(discriminator_plan(resolution, ndf)):
        n_out, pairs = conv_same(n, 4, 2)
        d.append(conv_layer(pairs, n_out, c_in, features, 4, norm=i > 0))
        n, c_in = n_out, features
    d.append(conv_layer(n, 1, c_in, 1, n, norm=False))  # the VALID logit convolution covering n x n
    return g, d


def mlp_layers(data_dim: int, latent_dim: int, hidden: int, depth: int) -> tuple[list[Layer], list[Layer]]:
    """(generator layers, discriminator layers) of :class:`jaxgan.nets.MLPGenerator`/``Discriminator``."""
    def dense(n_in, n_out):
        return Layer(macs=n_in * n_out, outputs=n_out, params=n_in * n_out + n_out)

    g = [dense(latent_dim, hidden)] + [dense(hidden, hidden) for _ in range(depth - 1)] + [dense(hidden, data_dim)]
    d = [dense(data_dim, hidden)] + [dense(hidden, hidden) for _ in range(depth - 1)] + [dense(hidden, 1)]
    return g, d


# Per-element costs, in HloCostAnalysis FLOPs (approximate: a few per cent of the total at most).
_ADAM_PER_PARAM = 12    # moments, bias correction, sqrt, divide, scale, apply
_NORM_PER_OUTPUT = 10   # training-mode BatchNorm forward: mean, variance, normalise, scale, shift
_ACT_PER_OUTPUT = 2     # bias or activation forward


def _matmul(layers: Sequence[Layer]) -> int:
    return 2 * sum(layer.macs for layer in layers)


def _elementwise(layers: Sequence[Layer]) -> int:
    return sum(layer.outputs * (_ACT_PER_OUTPUT + (_NORM_PER_OUTPUT if layer.norm else 0)) for layer in layers)


def gan_step_flops(g_layers: Sequence[Layer], d_layers: Sequence[Layer], batch: int, n_critic: int = 1,
                   r1: bool = False, elementwise: bool = True, shared_g_pass: bool = False) -> dict:
    """FLOPs of one train step of the standard game (see the module docstring for the equations).

    Args:
      g_layers, d_layers: the networks' layers (:func:`dcgan_layers`, :func:`mlp_layers`).
      batch: global batch (examples per D update and per G update).
      n_critic: D updates per step.
      r1: an R1 penalty on every D update.
      elementwise: add the per-element terms (BatchNorm, activations, Adam); False: products only.
      shared_g_pass: one G forward serves both updates (``TrainStep(share_generator_pass=True)``).

    Returns:
      ``{'total', 'matmul', 'elementwise', 'optimizer'}`` in FLOPs (floats); ``optimizer`` (Adam's
      per-parameter terms, part of ``elementwise``) does not divide over data-parallel devices: each
      updates the whole replicated state (:func:`per_device`).
    """
    G, D = _matmul(g_layers) * batch, _matmul(d_layers) * batch
    G1, D1, DL = (_matmul(g_layers[:1]) * batch, _matmul(d_layers[:1]) * batch,
                  _matmul(d_layers[-1:]) * batch)
    d_update = G + 2 * D + 2 * D + 2 * (D - D1)
    if r1:
        d_update += D + D + D + (D - DL)
    g_update = (0 if shared_g_pass else G) + D + D + G + (G - G1)
    matmul = n_critic * d_update + g_update
    elem = adam = 0
    if elementwise:
        eg, ed = _elementwise(g_layers) * batch, _elementwise(d_layers) * batch
        # forward + backward (~2x forward) of each pass that is differentiated, forward only of the rest
        d_pass = eg + 2 * ed * 3 + (3 * ed * 2 if r1 else 0)
        g_pass = eg * (2 if shared_g_pass else 3) + ed * 3
        adam = _ADAM_PER_PARAM * (sum(l.params for l in g_layers) + n_critic * sum(l.params for l in d_layers))
        elem = n_critic * d_pass + g_pass + adam
    return {"total": float(matmul + elem), "matmul": float(matmul), "elementwise": float(elem),
            "optimizer": float(adam)}


def per_device(counts: dict, devices: int) -> float:
    """One data-parallel device's share of a step's FLOPs (``gan_step_flops``'s dict): the batch's
    work divides over the devices, the optimizer's update of the replicated parameters does not."""
    return (counts["total"] - counts["optimizer"]) / devices + counts["optimizer"]


def step_flops_for_config(config, data_shape: Sequence[int]) -> dict | None:
    """The analytic count for a run config of the DCGAN or MLP families, or None for another family.

    The family is read from ``config.model``: ``ngf``/``ndf`` mean DCGAN, ``hidden``/``depth`` the MLP.
    Only unconditional games of one data set with no penalty other than R1 are counted (None
    otherwise): CycleGAN's config also names ``ngf``/``ndf`` (with ``n_blocks``, and a second data set),
    and was counted as a DCGAN until ``jaxgan compile`` showed XLA at 32x that count.
    """
    m, t, p = config.model, config.train, config.penalty
    if m.get("conditional") or p.get("r2_gamma") or p.get("gp_weight") or p.get("every", 1) != 1:
        return None
    if config.get("data_b") or "n_blocks" in m or "latent_dim" not in m:  # image-to-image games
        return None
    r1 = bool(p.get("r1_gamma"))
    if "ngf" in m and len(data_shape) == 3:
        g, d = dcgan_layers(data_shape[0], data_shape[2], m.latent_dim, m.ngf, m.ndf)
    elif "hidden" in m:
        g, d = mlp_layers(math.prod(data_shape), m.latent_dim, m.hidden, m.depth)
    else:
        return None
    return gan_step_flops(g, d, t.batch_size, t.n_critic, r1=r1,
                          shared_g_pass=bool(t.get("share_generator_pass", False)))
