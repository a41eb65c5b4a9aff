"""Generator and discriminator networks (flax.linen modules used as pure functions).

Generators: ``__call__(z, labels=None, *, train=True)`` -> samples in tanh range (images NHWC).
Discriminators: ``__call__(x, labels=None, *, train=True)`` -> float32 logits of shape (batch,).
"""
from jaxgan.nets.dcgan import (
    SUPPORTED_RESOLUTIONS,
    DCGANDiscriminator,
    DCGANGenerator,
    tiny_dcgan,
)
from jaxgan.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, tiny_stylegan2
from jaxgan.nets.mlp import (
    LabelConcat,
    MLPDiscriminator,
    MLPGenerator,
    ProjectionHead,
    require_labels,
    tiny_mlp,
)
from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator, tiny_resnet  # noqa: F401 (SNGAN)

__all__ = [
    "SUPPORTED_RESOLUTIONS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "LabelConcat",
    "MLPDiscriminator",
    "MLPGenerator",
    "ProjectionHead",
    "require_labels",
    "tiny_dcgan",
    "tiny_mlp",
]
