"""SRGAN's networks (Ledig et al. 2017), sized for small images as well.

* :class:`SRResNet` (the generator): 9x9 conv + PReLU; ``n_blocks`` residual blocks (3x3 conv, BN,
  PReLU, 3x3 conv, BN, plus the skip); 3x3 conv + BN plus a skip from the first layer; one
  sub-pixel stage per factor of 2 (3x3 conv to 4x the filters, :func:`pixel_shuffle` by 2 (Shi et
  al. 2016), PReLU); 9x9 conv to the image channels. The paper: 64 filters, 16 blocks, 4x.
  The output is linear (not squashed): the pixel loss sees it directly; callers clip for display.
* :class:`VGGDiscriminator`: 3x3 convs with LeakyReLU 0.2, alternately stride 1 and 2, doubling
  the filters every two layers (64, 64, 128, 128, 256, 256, 512, 512 in the paper), BN after all
  but the first, then Dense(16 * ndf) + LeakyReLU and Dense(1): one float32 logit per image.

BatchNorm statistics are averaged over ``axis_name`` (cross-replica, as in the DCGAN nets), so the
result does not depend on the device count; calls in training mode must run inside ``shard_map``
over that axis, or use ``axis_name=None``. Convolutions followed by BatchNorm have no bias: BN
removes it, so its gradient would be rounding noise that Adam amplifies into steps that differ with
the device count.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.sharding import DATA_AXIS

Dtype = jnp.dtype


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """Sub-pixel rearrangement (Shi et al. 2016): (N, H, W, C r^2) -> (N, H r, W r, C).

    Output pixel (h r + i, w r + j, c) is input channel ``c r^2 + i r + j`` at (h, w), the order of
    PyTorch's ``nn.PixelShuffle``.
    """
    n, h, w, cr2 = x.shape
    if cr2 % (r * r):
        raise ValueError(f"pixel_shuffle by {r} needs channels divisible by {r * r}, got {cr2}")
    c = cr2 // (r * r)
    x = x.reshape(n, h, w, c, r, r)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c)


class _Block(nn.Module):
    features: int
    axis_name: str | None
    dtype: Dtype

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                  axis_name=self.axis_name, dtype=self.dtype)
        h = nn.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(x)
        h = nn.PReLU(param_dtype=jnp.float32)(bn()(h))
        h = bn()(nn.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(h))
        return x + h


class SRResNet(nn.Module):
    """Low-resolution image -> ``factor`` x larger image (see the module docstring).

    Attributes:
      channels: output channels.
      factor: upscaling factor, a power of 2 (2 or 4).
      features: filters of the body (64 in the paper).
      n_blocks: residual blocks (16 in the paper).
      axis_name: mesh axis of the cross-replica BatchNorm statistics.
    """

    channels: int
    factor: int = 4
    features: int = 64
    n_blocks: int = 16
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, lr, labels=None, *, train: bool = True):
        del labels
        stages = int(round(math.log2(self.factor)))
        if self.factor < 2 or 2 ** stages != self.factor:
            raise ValueError(f"SRResNet upscales by a power of 2 (2, 4, 8), got factor={self.factor}")
        head = nn.PReLU(param_dtype=jnp.float32)(nn.Conv(self.features, (9, 9), dtype=self.dtype)(lr))
        h = head
        for _ in range(self.n_blocks):
            h = _Block(self.features, self.axis_name, self.dtype)(h, train)
        h = nn.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype)(h)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.axis_name, dtype=self.dtype)(h) + head
        for _ in range(stages):
            h = pixel_shuffle(nn.Conv(self.features * 4, (3, 3), dtype=self.dtype)(h), 2)
            h = nn.PReLU(param_dtype=jnp.float32)(h)
        return nn.Conv(self.channels, (9, 9), dtype=self.dtype)(h).astype(jnp.float32)


class VGGDiscriminator(nn.Module):
    """Images -> float32 logits of shape (batch,) (see the module docstring).

    Attributes:
      ndf: filters of the first layer (64 in the paper).
      n_stages: pairs of (stride 1, stride 2) convs, doubling the filters each pair (4 in the paper;
        2 or 3 for 28-32 px images).
      axis_name: mesh axis of the cross-replica BatchNorm statistics.
    """

    ndf: int = 64
    n_stages: int = 4
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        del labels
        h = x
        for i in range(2 * self.n_stages):
            features, stride = self.ndf * 2 ** (i // 2), 1 + i % 2
            h = nn.Conv(features, (3, 3), strides=(stride, stride), use_bias=i == 0, dtype=self.dtype)(h)
            if i:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 axis_name=self.axis_name, dtype=self.dtype)(h)
            h = nn.leaky_relu(h, 0.2)
        h = h.reshape(h.shape[0], -1)
        h = nn.leaky_relu(nn.Dense(16 * self.ndf, dtype=self.dtype)(h), 0.2)
        return nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)


def tiny_srgan(channels: int, factor: int, *, axis_name: str | None = DATA_AXIS):
    """(generator, discriminator) for tests: 8 filters, 2 blocks; ndf 8, 2 stages."""
    return (SRResNet(channels, factor, features=8, n_blocks=2, axis_name=axis_name),
            VGGDiscriminator(ndf=8, n_stages=2, axis_name=axis_name))


def small_srgan(channels: int, factor: int, *, axis_name: str | None = DATA_AXIS):
    """(generator, discriminator) for 28-32 px images: 32 filters, 6 blocks; ndf 32, 3 stages."""
    return (SRResNet(channels, factor, features=32, n_blocks=6, axis_name=axis_name),
            VGGDiscriminator(ndf=32, n_stages=3, axis_name=axis_name))
