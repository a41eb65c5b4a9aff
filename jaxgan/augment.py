"""Differentiable augmentation of real and generated images for small data sets.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the
discriminator sees every image, real or generated, through the same random, differentiable
transformations, and the generator's gradient flows back through them. The three used here are the
simplest of ADA's pipeline (Karras et al. 2020): horizontal flip, integer translation (zero padded)
and cutout (a zeroed square). Each is a pure function of one PRNG key per example, so an example is
augmented the same way on whichever device computes it.

Example:
  >>> x_aug = diff_augment(x, keys, ("flip", "translation", "cutout"))
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

POLICIES = ("flip", "translation", "cutout")


def flip(x: Array, key: Array) -> Array:
    """Mirrors one image (H, W, C) left-right with probability 1/2."""
    return jnp.where(jax.random.bernoulli(key), x[:, ::-1], x)


def translation(x: Array, key: Array, ratio: float = 0.125) -> Array:
    """Shifts one image by integers (dy, dx) uniform in [-ratio * size, ratio * size], zero padded.

    out[i, j] = x[i - dy, j - dx] where that index is inside the image, else 0.
    """
    h, w = x.shape[0], x.shape[1]
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ky, kx = jax.random.split(key)
    dy = jax.random.randint(ky, (), -sy, sy + 1)
    dx = jax.random.randint(kx, (), -sx, sx + 1)
    rows, cols = jnp.arange(h) - dy, jnp.arange(w) - dx
    valid = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    out = x[jnp.clip(rows, 0, h - 1)][:, jnp.clip(cols, 0, w - 1)]
    return out * valid[:, :, None].astype(x.dtype)


def cutout(x: Array, key: Array, ratio: float = 0.5) -> Array:
    """Zeroes a (ratio*H) x (ratio*W) square at a uniformly random centre (clipped at the border)."""
    h, w = x.shape[0], x.shape[1]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ky, kx = jax.random.split(key)
    cy = jax.random.randint(ky, (), 0, h + (1 - ch % 2))
    cx = jax.random.randint(kx, (), 0, w + (1 - cw % 2))
    rows, cols = jnp.arange(h), jnp.arange(w)
    inside_r = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch)
    inside_c = (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    keep = ~(inside_r[:, None] & inside_c[None, :])
    return x * keep[:, :, None].astype(x.dtype)


_FNS = {"flip": flip, "translation": translation, "cutout": cutout}


def diff_augment(x: Array, keys: Array, policy: Sequence[str] = POLICIES) -> Array:
    """Applies the transformations in ``policy``, in order, to a batch, one key per example.

    Args:
      x: images (B, H, W, C).
      keys: per-example PRNG keys (B, 2) (e.g. ``jaxgan.rng.substream(keys, k)``).
      policy: names among ``POLICIES``; empty: identity.

    Returns:
      Augmented images, same shape and dtype; differentiable in ``x``.
    """
    unknown = [p for p in policy if p not in _FNS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}: choose from {POLICIES}")
    if x.shape[0] != keys.shape[0]:
        raise ValueError(f"diff_augment: {x.shape[0]} images but {keys.shape[0]} keys; pass one key per image")
    for i, name in enumerate(policy):
        sub = jax.vmap(jax.random.fold_in, (0, None))(keys, i)
        x = jax.vmap(_FNS[name])(x, sub)
    return x


def parse_policy(text: str) -> tuple[str, ...]:
    """'flip,translation,cutout' -> ('flip', 'translation', 'cutout'); '' -> () (no augmentation)."""
    policy = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in policy if p not in _FNS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown} in {text!r}: use a comma-separated subset of {POLICIES}")
    return policy
