"""CycleGAN's networks (Zhu, Park, Isola & Efros, 2017), sized for small images as well.

* :class:`ResnetGenerator` (Johnson et al. 2016, as in CycleGAN): reflection pad 3, 7x7 conv,
  ``n_down`` stride-2 3x3 convs, ``n_blocks`` residual blocks (reflection pad 1, 3x3 conv, norm,
  ReLU, twice, plus the skip), ``n_down`` stride-2 transposed convs, reflection pad 3, 7x7 conv,
  tanh. Instance norm (no running statistics: the model state is empty). A convolution followed by
  instance norm has no bias: the official code keeps one, but the norm subtracts it exactly, so its
  gradient is zero up to rounding and Adam turns that rounding noise into full +-lr steps (which made
  runs differ with the number of devices); the function class is the same. The paper uses ngf 64 with
  9 blocks at 256 px and 6 at 128 px; 28x28 digits (28 -> 14 -> 7 -> 14 -> 28) use fewer filters.
* :class:`PatchDiscriminator` (the 70x70 PatchGAN of pix2pix, Isola et al. 2017): 4x4 convs with
  padding 1, ``n_layers`` of stride 2 (the first without norm), one of stride 1 with norm, and a
  stride-1 conv to one logit per patch, LeakyReLU 0.2. ``n_layers=3`` gives the 70x70 receptive
  field; ``n_layers=2`` (34x34) fits 28-32 px images. Output: (batch, h, w) float32 patch logits.

:func:`tiny_cyclegan` and :func:`small_cyclegan` are the sizes used by tests and by 28-32 px runs.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = jnp.dtype
_init = nn.initializers.normal(0.02)  # the official code's 'normal' init, gain 0.02


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Reflection padding of the two spatial axes of NHWC images (PyTorch's ReflectionPad2d)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _norm(dtype, name=None) -> nn.InstanceNorm:
    # affine=False in the official code (InstanceNorm2d's default); epsilon as PyTorch's.
    # Two-pass variance (mean of squared deviations): flax's default E[x^2] - E[x]^2 cancels badly when a
    # channel's mean is large against its spread, which made float32 gradients 1.6% off (measured
    # against float64) and dependent on how the batch was split between devices.
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, use_fast_variance=False, dtype=dtype,
                           name=name)


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        conv = lambda: nn.Conv(self.features, (3, 3), padding="VALID", use_bias=False, kernel_init=_init,
                               dtype=self.dtype)
        h = nn.relu(_norm(self.dtype)(conv()(reflect_pad(x, 1))))
        h = conv()(reflect_pad(h, 1))
        return x + _norm(self.dtype)(h)


class ResnetGenerator(nn.Module):
    """Image -> image of the same shape, in [-1, 1] (see the module docstring).

    Attributes:
      channels: output channels (the other domain's).
      ngf: filters of the first layer (doubled at each downsampling).
      n_blocks: residual blocks at the lowest resolution (6 or 9 in the paper).
      n_down: stride-2 down/upsamplings (2 in the paper; the image size must be divisible by 2**n_down).
    """

    channels: int
    ngf: int = 64
    n_blocks: int = 9
    n_down: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        del labels, train  # instance norm behaves the same in training and inference
        h, w = x.shape[1:3]
        if h % 2 ** self.n_down or w % 2 ** self.n_down:
            raise ValueError(f"ResnetGenerator with n_down={self.n_down} needs sizes divisible by "
                             f"{2 ** self.n_down}, got {h}x{w}: resize the images or lower n_down")
        y = nn.Conv(self.ngf, (7, 7), padding="VALID", use_bias=False, kernel_init=_init,
                    dtype=self.dtype)(reflect_pad(x, 3))
        y = nn.relu(_norm(self.dtype)(y))
        for i in range(self.n_down):
            y = nn.Conv(self.ngf * 2 ** (i + 1), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                        use_bias=False, kernel_init=_init, dtype=self.dtype)(y)
            y = nn.relu(_norm(self.dtype)(y))
        for _ in range(self.n_blocks):
            y = ResnetBlock(self.ngf * 2 ** self.n_down, dtype=self.dtype)(y)
        for i in reversed(range(self.n_down)):
            # ConvTranspose2d(k=3, s=2, padding=1, output_padding=1) doubles the size exactly.
            y = nn.ConvTranspose(self.ngf * 2 ** i, (3, 3), strides=(2, 2), padding="SAME",
                                 use_bias=False, kernel_init=_init, dtype=self.dtype)(y)
            y = nn.relu(_norm(self.dtype)(y))
        y = nn.Conv(self.channels, (7, 7), padding="VALID", kernel_init=_init, dtype=self.dtype)(reflect_pad(y, 3))
        return jnp.tanh(y.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
    """Images -> (batch, h, w) float32 patch logits (see the module docstring)."""

    ndf: int = 64
    n_layers: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        del labels, train
        pad = ((1, 1), (1, 1))
        h = nn.leaky_relu(nn.Conv(self.ndf, (4, 4), strides=(2, 2), padding=pad, kernel_init=_init,
                                  dtype=self.dtype)(x), 0.2)
        for i in range(1, self.n_layers + 1):
            stride = 2 if i < self.n_layers else 1
            h = nn.Conv(self.ndf * min(2 ** i, 8), (4, 4), strides=(stride, stride), padding=pad,
                        use_bias=False, kernel_init=_init, dtype=self.dtype)(h)
            h = nn.leaky_relu(_norm(self.dtype)(h), 0.2)
        logits = nn.Conv(1, (4, 4), padding=pad, kernel_init=_init, dtype=self.dtype)(h)
        return logits[..., 0].astype(jnp.float32)


def tiny_cyclegan(channels: int, *, dtype: Dtype = jnp.float32):
    """(generator, discriminator) for tests: ngf 8, 2 residual blocks; ndf 8, 2 layers."""
    return (ResnetGenerator(channels, ngf=8, n_blocks=2, dtype=dtype),
            PatchDiscriminator(ndf=8, n_layers=2, dtype=dtype))


def small_cyclegan(channels: int, *, dtype: Dtype = jnp.float32):
    """(generator, discriminator) for 28-32 px images: ngf 32, 6 residual blocks; ndf 32, 2 layers."""
    return (ResnetGenerator(channels, ngf=32, n_blocks=6, dtype=dtype),
            PatchDiscriminator(ndf=32, n_layers=2, dtype=dtype))
