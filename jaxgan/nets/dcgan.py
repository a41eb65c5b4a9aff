"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2015).

The layout of the PyTorch examples' DCGAN: 4x4 (transposed) convolutions without bias, BatchNorm
everywhere except the generator's output layer and the discriminator's input layer, ReLU in the
generator, LeakyReLU(0.2) in the discriminator, tanh output, and weights drawn from N(0, 0.02)
(BatchNorm scales from N(1, 0.02)). At 64x64 with a 100-d latent, ngf = ndf = 64 and 3 channels the
generator has 3,576,704 parameters and the discriminator 2,765,568.

Supported resolutions: 28 (MNIST: 1 -> 7 -> 14 -> 28) and the powers of two 32 to 256
(1 -> 4 -> 8 -> ... -> resolution). BatchNorm statistics are averaged over the ``axis_name`` mesh
axis, so training-mode calls must run inside ``jax.shard_map`` over that axis, or use
``axis_name=None``.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.nets.mlp import LabelConcat, ProjectionHead, require_labels
from jaxgan.nets.strided import Up2
from jaxgan.sharding import DATA_AXIS

Dtype = jnp.dtype

SUPPORTED_RESOLUTIONS = (28, 32, 64, 128, 256)

_conv_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _check_resolution(resolution: int):
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"DCGAN does not support resolution {resolution}: "
                         f"use one of {SUPPORTED_RESOLUTIONS}")


def generator_plan(resolution: int, ngf: int, channels: int) -> list[tuple[int, int, int, str]]:
    """The generator's transposed convolutions as (features, kernel, stride, padding), input first."""
    _check_resolution(resolution)
    if resolution == 28:
        return [(ngf * 2, 7, 1, "VALID"), (ngf, 4, 2, "SAME"), (channels, 4, 2, "SAME")]
    mult = resolution // 8  # channels at 4x4, in units of ngf; halves with each doubling
    plan = [(ngf * mult, 4, 1, "VALID")]
    while mult > 1:
        mult //= 2
        plan.append((ngf * mult, 4, 2, "SAME"))
    return plan + [(channels, 4, 2, "SAME")]


def discriminator_plan(resolution: int, ndf: int) -> list[int]:
    """The discriminator's stride-2 4x4 convolutions as output features, input first.

    The last feature map (7x7 at resolution 28, else 4x4) is then reduced to one logit.
    """
    _check_resolution(resolution)
    if resolution == 28:
        return [ndf, ndf * 2]
    n_down = resolution.bit_length() - 3  # resolution -> 4 in stride-2 steps
    return [ndf * 2**i for i in range(n_down)]


class DCGANGenerator(nn.Module):
    """DCGAN generator: z of shape (batch, nz) -> images (batch, resolution, resolution, channels).

    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
    Generative Adversarial Networks", 2015.

    Args:
      resolution: output height and width, one of ``SUPPORTED_RESOLUTIONS``.
      channels: output channels (1 for MNIST, 3 for RGB; any count works).
      ngf: base width; the layer next to the output has ngf channels.
      num_classes: number of classes for a conditional generator (label embedding concatenated
        to z), or None.
      embed_dim: label embedding width; None uses z's last dimension.
      axis_name: mesh axis over which BatchNorm statistics are averaged in training mode.
      dtype: compute dtype.
      param_dtype: parameter dtype.
      upsample: how the stride-2 4x4 transposed convolutions are computed: 'transpose'
        (``lax.conv_transpose``, as ``nn.ConvTranspose``), 'phases' (the sub-pixel form of
        ``jaxgan.nets.strided``: the same function and parameters, several times faster to
        differentiate on XLA CPU) or 'auto' (phases on CPU, transpose elsewhere).
    """
    resolution: int
    channels: int
    ngf: int = 64
    num_classes: int | None = None
    embed_dim: int | None = None
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    upsample: str = "auto"

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = True):
        plan = generator_plan(self.resolution, self.ngf, self.channels)
        require_labels(labels, self.num_classes, type(self).__name__)
        h = LabelConcat(self.num_classes, self.embed_dim, self.dtype, self.param_dtype)(z, labels)
        h = h.reshape(h.shape[0], 1, 1, h.shape[-1])
        for i, (features, kernel, stride, padding) in enumerate(plan):
            name = f"ConvTranspose_{i}"  # the same parameter tree whichever form computes it
            if (kernel, stride, padding) == (4, 2, "SAME"):
                h = Up2(features, form=self.upsample, kernel_init=_conv_init, dtype=self.dtype,
                        param_dtype=self.param_dtype, name=name)(h)
            else:
                h = nn.ConvTranspose(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                                     use_bias=False, kernel_init=_conv_init, dtype=self.dtype,
                                     param_dtype=self.param_dtype, name=name)(h)
            if i < len(plan) - 1:
                h = nn.relu(_batch_norm(self, train)(h))
        return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: images (batch, resolution, resolution, C) -> float32 logits (batch,).

    Radford, Metz & Chintala, 2015. Unconditional: the last feature map is reduced to one logit by
    a VALID convolution covering it. Conditional: it is flattened into a projection head
    (Miyato & Koyama, "cGANs with Projection Discriminator", 2018).

    Args:
      resolution: input height and width, one of ``SUPPORTED_RESOLUTIONS``.
      ndf: base width; the first convolution has ndf channels, doubling with each halving.
      num_classes: number of classes for a projection discriminator, or None.
      axis_name: mesh axis over which BatchNorm statistics are averaged in training mode.
      dtype: compute dtype.
      param_dtype: parameter dtype.
      norm: the normalisation after each convolution but the first: ``'batch'`` (DCGAN), ``'layer'``
        (over each example's H, W, C, with a per-channel scale and shift; Ba et al. 2016) or None
        (convolutions with a bias instead). A WGAN-GP critic must not use BatchNorm: its gradient
        penalty is per example (Gulrajani et al. 2017).
    """
    resolution: int
    ndf: int = 64
    num_classes: int | None = None
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    norm: str | None = "batch"

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        plan = discriminator_plan(self.resolution, self.ndf)
        if self.norm not in _D_NORMS:
            raise ValueError(f"unknown DCGANDiscriminator norm {self.norm!r}: use one of {_D_NORMS}")
        require_labels(labels, self.num_classes, type(self).__name__)
        if x.shape[1:3] != (self.resolution, self.resolution):
            raise ValueError(f"DCGANDiscriminator built for {self.resolution}x{self.resolution} "
                             f"images got shape {x.shape}: resize the data or set resolution")
        h = x
        for i, features in enumerate(plan):
            h = nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.norm is None,
                        kernel_init=_conv_init, dtype=self.dtype, param_dtype=self.param_dtype)(h)
            if i > 0 and self.norm == "batch":
                h = _batch_norm(self, train)(h)
            elif i > 0 and self.norm == "layer":
                h = nn.LayerNorm(reduction_axes=(1, 2, 3), feature_axes=-1, dtype=self.dtype,
                                 param_dtype=self.param_dtype)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
        if self.num_classes is not None:
            return ProjectionHead(self.num_classes, use_bias=False, dtype=self.dtype,
                                  param_dtype=self.param_dtype)(h, labels)
        logit = nn.Conv(1, h.shape[1:3], padding="VALID", use_bias=False, kernel_init=_conv_init,
                        dtype=self.dtype, param_dtype=self.param_dtype)(h)
        return logit.reshape(h.shape[0]).astype(jnp.float32)


_D_NORMS = ("batch", "layer", None)


def _batch_norm(module, train: bool) -> nn.BatchNorm:
    """The DCGAN BatchNorm, created inside ``module``'s compact scope."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        axis_name=module.axis_name, scale_init=_bn_scale_init, dtype=module.dtype,
                        param_dtype=module.param_dtype)


def tiny_dcgan(resolution: int, channels: int, num_classes: int | None = None, *,
               dtype: Dtype = jnp.float32, axis_name: str | None = DATA_AXIS):
    """A (generator, discriminator) DCGAN pair with ngf = ndf = 8, for tests and smoke runs."""
    g = DCGANGenerator(resolution, channels, ngf=8, num_classes=num_classes, axis_name=axis_name,
                       dtype=dtype)
    d = DCGANDiscriminator(resolution, ndf=8, num_classes=num_classes, axis_name=axis_name,
                           dtype=dtype)
    return g, d
