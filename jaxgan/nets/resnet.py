"""The SNGAN ResNet generator and discriminator (Miyato, Kataoka, Koyama & Yoshida, 2018).

The CIFAR-10 networks of the SNGAN paper (appendix B.4) as in the authors' code (Mimura,
``pfnet-research/sngan_projection``, ``gen_models/resnet_32.py`` and ``dis_models/snresnet_32.py``):

* generator (width 256 at 32x32): z -> Dense(4 * 4 * width) -> ``log2(resolution / 4)`` up-blocks
  [BN, ReLU, nearest x2 upsampling, conv3x3, BN, ReLU, conv3x3; shortcut: upsampling, conv1x1]
  -> BN -> ReLU -> conv3x3 -> tanh;
* discriminator (width 128): an "optimised" first block [conv3x3, ReLU, conv3x3, avg-pool;
  shortcut: avg-pool, conv1x1], down-blocks [ReLU, conv3x3, ReLU, conv3x3, avg-pool; shortcut:
  conv1x1, avg-pool] until 8x8, two blocks without downsampling, ReLU, sum over positions,
  Dense(1). Every weight of the discriminator is spectrally normalised
  (:class:`jaxgan.nets.spectral.SpectralNorm`), and it has no BatchNorm.

Convolutions are initialised Xavier-uniform with gain sqrt(2) on the residual path and gain 1 on
shortcuts and the ends, as in the authors' code. The conditional variant (``num_classes``) uses
conditional BatchNorm in the generator's blocks (a per-class scale and shift) and a projection
discriminator, ``Dense(1)(h) + <Embed(y), h>``, with the embedding spectrally normalised too
(Miyato & Koyama, "cGANs with Projection Discriminator", 2018).

At 32x32x3 with a 128-d latent the widths 256/128 give 4,276,739 generator and 1,053,825
discriminator parameters (unconditional).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.nets.mlp import ProjectionHead, require_labels
from jaxgan.nets.spectral import SpectralNorm
from jaxgan.sharding import DATA_AXIS

Dtype = jnp.dtype

_residual_init = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")  # Xavier, gain sqrt(2)
_plain_init = nn.initializers.xavier_uniform()


def _check_resolution(resolution: int) -> int:
    """Number of x2 stages between 4x4 and ``resolution`` (a power of two >= 8)."""
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"the SNGAN ResNet needs a power-of-two resolution >= 8, got {resolution}: "
                         "set data.resolution (e.g. 32)")
    return resolution.bit_length() - 3


def _upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x):
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are looked up by class (de Vries et al. 2017; Miyato & Koyama 2018).

    ``y = BN(x) * gamma[label] + beta[label]`` with gamma initialised to 1 and beta to 0. Without
    ``num_classes`` it is plain BatchNorm. Statistics are averaged over ``axis_name`` in training.
    """
    num_classes: int | None = None
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool):
        conditional = self.num_classes is not None
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         use_scale=not conditional, use_bias=not conditional, axis_name=self.axis_name,
                         dtype=self.dtype, param_dtype=self.param_dtype)(x)
        if not conditional:
            return h
        features = x.shape[-1]
        gamma = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones, dtype=self.dtype,
                         param_dtype=self.param_dtype, name="gamma")(labels)
        beta = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros, dtype=self.dtype,
                        param_dtype=self.param_dtype, name="beta")(labels)
        return h * gamma[:, None, None, :] + beta[:, None, None, :]


class GeneratorBlock(nn.Module):
    """SNGAN up-block: BN, ReLU, x2 nearest upsampling, conv3x3, BN, ReLU, conv3x3 (+ upsampled 1x1 shortcut)."""
    features: int
    num_classes: int | None = None
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool):
        conv = lambda k, init: nn.Conv(self.features, (k, k), padding="SAME", kernel_init=init,
                                       dtype=self.dtype, param_dtype=self.param_dtype)
        bn = lambda: ConditionalBatchNorm(self.num_classes, self.axis_name, self.dtype, self.param_dtype)
        h = nn.relu(bn()(x, labels, train=train))
        h = conv(3, _residual_init)(_upsample(h))
        h = nn.relu(bn()(h, labels, train=train))
        h = conv(3, _residual_init)(h)
        return h + conv(1, _plain_init)(_upsample(x))


class DiscriminatorBlock(nn.Module):
    """SNGAN D block, every weight spectrally normalised.

    ``optimized`` (the first block): conv3x3, ReLU, conv3x3, avg-pool; shortcut avg-pool then conv1x1.
    Otherwise: ReLU, conv3x3, ReLU, conv3x3, [avg-pool]; shortcut conv1x1 then [avg-pool] when the
    channels change or the block downsamples, else the identity.
    """
    features: int
    downsample: bool = True
    optimized: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        def sn_conv(h, k, init):
            conv = nn.Conv(self.features, (k, k), padding="SAME", kernel_init=init, dtype=self.dtype,
                           param_dtype=self.param_dtype)
            return SpectralNorm(conv)(h, train=train)

        h = x if self.optimized else nn.relu(x)
        h = sn_conv(nn.relu(sn_conv(h, 3, _residual_init)), 3, _residual_init)
        if self.downsample:
            h = _downsample(h)
        if self.optimized:
            shortcut = sn_conv(_downsample(x), 1, _plain_init)
        elif self.downsample or x.shape[-1] != self.features:
            shortcut = sn_conv(x, 1, _plain_init)
            shortcut = _downsample(shortcut) if self.downsample else shortcut
        else:
            shortcut = x
        return h + shortcut


class ResNetGenerator(nn.Module):
    """SNGAN ResNet generator: z (batch, nz) -> images (batch, resolution, resolution, channels).

    Miyato et al., "Spectral Normalization for Generative Adversarial Networks", 2018 (appendix B.4).

    Args:
      resolution: output height and width, a power of two >= 8 (32 in the paper).
      channels: output channels.
      width: channels of every block (256 in the paper's CIFAR-10 network).
      num_classes: classes of a conditional generator (conditional BatchNorm in the blocks), or None.
      axis_name: mesh axis over which BatchNorm statistics are averaged in training mode.
      dtype: compute dtype.
      param_dtype: parameter dtype.
    """
    resolution: int = 32
    channels: int = 3
    width: int = 256
    num_classes: int | None = None
    axis_name: str | None = DATA_AXIS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = True):
        n_up = _check_resolution(self.resolution)
        require_labels(labels, self.num_classes, type(self).__name__)
        h = nn.Dense(4 * 4 * self.width, kernel_init=_plain_init, dtype=self.dtype,
                     param_dtype=self.param_dtype)(z)
        h = h.reshape(z.shape[0], 4, 4, self.width)
        for _ in range(n_up):
            h = GeneratorBlock(self.width, self.num_classes, self.axis_name, self.dtype,
                               self.param_dtype)(h, labels, train=train)
        h = nn.relu(ConditionalBatchNorm(None, self.axis_name, self.dtype, self.param_dtype)(h, train=train))
        h = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=_plain_init, dtype=self.dtype,
                    param_dtype=self.param_dtype)(h)
        return jnp.tanh(h)


class ResNetDiscriminator(nn.Module):
    """SNGAN ResNet discriminator with spectral normalisation: images -> float32 logits (batch,).

    Miyato et al. 2018 (appendix B.4); conditional: projection discriminator (Miyato & Koyama 2018).
    Downsamples (optimised first block, then down-blocks) until 8x8, then two blocks at 8x8.

    Args:
      width: channels of every block (128 in the paper's CIFAR-10 network).
      num_classes: classes of a projection discriminator, or None.
      dtype: compute dtype.
      param_dtype: parameter dtype.
    """
    width: int = 128
    num_classes: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        if x.shape[1] != x.shape[2]:
            raise ValueError(f"ResNetDiscriminator needs square images, got shape {x.shape}: set data.resolution")
        n_down = _check_resolution(x.shape[1]) - 1  # down to 8x8
        require_labels(labels, self.num_classes, type(self).__name__)
        block = lambda **kw: DiscriminatorBlock(self.width, dtype=self.dtype, param_dtype=self.param_dtype, **kw)
        h = block(optimized=True)(x, train=train)
        for _ in range(n_down - 1):
            h = block()(h, train=train)
        for _ in range(2):
            h = block(downsample=False)(h, train=train)
        h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))  # global sum pooling
        head = ProjectionHead(self.num_classes, dtype=jnp.float32, param_dtype=self.param_dtype)
        return SpectralNorm(head)(h, labels, train=train)


def tiny_resnet(resolution: int = 32, channels: int = 3, num_classes: int | None = None, *,
                dtype: Dtype = jnp.float32, axis_name: str | None = DATA_AXIS):
    """A (generator, discriminator) SNGAN ResNet pair of width 8, for tests and smoke runs."""
    g = ResNetGenerator(resolution, channels, width=8, num_classes=num_classes, axis_name=axis_name,
                        dtype=dtype)
    d = ResNetDiscriminator(width=8, num_classes=num_classes, dtype=dtype)
    return g, d
