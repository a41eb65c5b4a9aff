"""Multi-layer perceptron generator and discriminator, and the class-conditioning blocks.

The MLP pair is the network of the original GAN paper (Goodfellow et al., 2014) and the usual
choice for 2-D toy data (a ring or grid of Gaussians) and for flattened MNIST. The conditioning
blocks here are shared with every other network family:

* ``require_labels`` checks that a conditional network was given its labels;
* ``LabelConcat`` embeds the label and concatenates it to the generator input (conditional GAN,
  Mirza & Osindero, 2014);
* ``ProjectionHead`` turns a discriminator feature vector into a logit, with the label entering by
  an inner product (projection discriminator, Miyato & Koyama, 2018).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

Dtype = jnp.dtype

_ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.2)}
_OUTPUT_ACTIVATIONS = {None: lambda x: x, "tanh": jnp.tanh}


def _lookup(table: dict, name, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}: use one of {sorted(table, key=str)}")
    return table[name]


def require_labels(labels, num_classes: int | None, who: str):
    """Checks that a class-conditional network was given labels (unconditional ones ignore them).

    Args:
      labels: int array of shape (batch,), or None.
      num_classes: the network's ``num_classes`` (None = unconditional).
      who: the network's name, for the error message.

    Returns:
      ``labels`` unchanged.
    """
    if num_classes is not None and labels is None:
        raise ValueError(
            f"{who} is class-conditional (num_classes={num_classes}) but was called without labels: "
            "pass labels, an int32 array of shape (batch,)")
    return labels


class LabelConcat(nn.Module):
    """Concatenates a learned label embedding to the latent vector (Mirza & Osindero, 2014).

    Args:
      num_classes: number of classes, or None for an unconditional network (z passes through).
      embed_dim: embedding width; None uses z's last dimension.
      dtype: compute dtype of the embedding.
      param_dtype: dtype of the embedding table.
    """
    num_classes: int | None
    embed_dim: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z, labels):
        if self.num_classes is None:
            return z
        width = self.embed_dim or z.shape[-1]
        emb = nn.Embed(self.num_classes, width, dtype=self.dtype, param_dtype=self.param_dtype)(labels)
        return jnp.concatenate([z.astype(self.dtype), emb], axis=-1)


class ProjectionHead(nn.Module):
    """Logit of a feature vector: ``Dense(1)(h) + <Embed(y), h>`` (Miyato & Koyama, 2018).

    Without ``num_classes`` this is just ``Dense(1)(h)``. The inner product is summed in float32.

    Args:
      num_classes: number of classes, or None for an unconditional discriminator.
      use_bias: whether the Dense(1) has a bias.
      dtype: compute dtype.
      param_dtype: parameter dtype.
    """
    num_classes: int | None
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h, labels):
        h = h.reshape(h.shape[0], -1)
        logit = nn.Dense(1, use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype)(h)
        logit = logit[:, 0].astype(jnp.float32)
        if self.num_classes is None:
            return logit
        emb = nn.Embed(self.num_classes, h.shape[-1], dtype=self.dtype, param_dtype=self.param_dtype,
                       embedding_init=nn.initializers.xavier_uniform(), name="projection")(labels)
        return logit + jnp.sum(emb.astype(jnp.float32) * h.astype(jnp.float32), axis=-1)


class MLPGenerator(nn.Module):
    """Fully connected generator: z -> (Dense, ReLU) x depth -> Dense -> output activation.

    The original GAN generator (Goodfellow et al., 2014). The output is reshaped to
    ``(batch, *out_shape)``.

    Args:
      out_shape: shape of one sample, e.g. ``(2,)`` for 2-D points or ``(28, 28, 1)`` for MNIST.
      hidden: width of each hidden layer.
      depth: number of hidden layers.
      output_activation: ``None`` (identity, for toy data outside [-1, 1]) or ``"tanh"`` (images).
      num_classes: number of classes for a conditional generator, or None.
      embed_dim: label embedding width; None uses z's last dimension.
      dtype: compute dtype.
      param_dtype: parameter dtype.
    """
    out_shape: tuple[int, ...]
    hidden: int = 128
    depth: int = 3
    output_activation: str | None = None
    num_classes: int | None = None
    embed_dim: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = True):
        del train  # no batch statistics in an MLP
        out_act = _lookup(_OUTPUT_ACTIVATIONS, self.output_activation, "output_activation")
        require_labels(labels, self.num_classes, type(self).__name__)
        h = LabelConcat(self.num_classes, self.embed_dim, self.dtype, self.param_dtype)(z, labels)
        for _ in range(self.depth):
            h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)(h))
        out = nn.Dense(math.prod(self.out_shape), dtype=self.dtype, param_dtype=self.param_dtype)(h)
        return out_act(out).reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator: flatten -> (Dense, activation) x depth -> logit.

    The original GAN discriminator (Goodfellow et al., 2014); conditional versions use a projection
    head (Miyato & Koyama, 2018).

    Args:
      hidden: width of each hidden layer.
      depth: number of hidden layers.
      activation: ``"leaky_relu"`` (slope 0.2) or ``"relu"``.
      num_classes: number of classes for a projection discriminator, or None.
      dtype: compute dtype.
      param_dtype: parameter dtype.
    """
    hidden: int = 128
    depth: int = 3
    activation: str = "leaky_relu"
    num_classes: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool = True):
        del train  # no batch statistics in an MLP
        act = _lookup(_ACTIVATIONS, self.activation, "activation")
        require_labels(labels, self.num_classes, type(self).__name__)
        h = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            h = act(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype)(h))
        return ProjectionHead(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype)(h, labels)


def tiny_mlp(out_shape: tuple[int, ...], num_classes: int | None = None, *,
             output_activation: str | None = None, dtype: Dtype = jnp.float32):
    """A (generator, discriminator) MLP pair with 16-wide hidden layers, for tests and smoke runs."""
    g = MLPGenerator(out_shape, hidden=16, depth=2, output_activation=output_activation,
                     num_classes=num_classes, dtype=dtype)
    d = MLPDiscriminator(hidden=16, depth=2, num_classes=num_classes, dtype=dtype)
    return g, d
