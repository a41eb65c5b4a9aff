"""Sources for image-to-image families: two unpaired domains, low/high-resolution pairs, and views.

* :class:`UnpairedSource` (CycleGAN, Zhu et al. 2017): two sources read *independently*, each with
  its own shuffled stream; batch ``{'x': domain A, 'x_b': domain B}`` (plus ``'label'`` /
  ``'label_b'`` where a domain has labels). Example ``j`` of A and example ``j`` of B are unrelated.
* :class:`SuperResolutionSource` (SRGAN, Ledig et al. 2017): any image source with its images
  downsampled by ``factor`` (bicubic, antialiased): ``{'x': high-res, 'lr': low-res}``.
* :class:`Subset` and :class:`Transformed`: views of a finite source used to build a second domain
  from the same data set, e.g. the odd-indexed MNIST digits colour-inverted and thickened, while
  domain A holds the even-indexed ones (disjoint images: no pairs exist).

In a data spec these are the keys ``part`` (``[k, n]``: examples ``i`` with ``i % n == k``),
``transform`` (a list of :data:`TRANSFORMS` names applied in order) and ``sr_factor``, handled by
:func:`jaxgan.data.factory.make_source`; ``data_b`` in a run config makes an :class:`UnpairedSource`.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from jaxgan.data.base import DataInfo, EpochShuffle, Source, stored_batch


# ------------------------------------------------------------------------------------ resampling

@functools.lru_cache(maxsize=None)
def _jitted_resize():
    import jax

    return jax.jit(jax.image.resize, static_argnames=("shape", "method", "antialias"))


def resize_bicubic(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of NHWC images with antialiasing (a low-pass filter when downsampling).

    Uses ``jax.image.resize(method='bicubic', antialias=True)`` (Keys' cubic, a = -0.5, its support
    widened by the scale factor when shrinking, as PIL and TensorFlow do), so the data's
    downsampling and the bicubic baseline's upsampling are the same function.

    Args:
      x: (N, H, W, C) float images.
      height, width: output size.

    Returns:
      float32 (N, height, width, C), not clipped.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 4:
        raise ValueError(f"resize_bicubic needs NHWC images, got shape {x.shape}")
    shape = (x.shape[0], int(height), int(width), x.shape[3])
    return np.asarray(_jitted_resize()(x, shape=shape, method="bicubic", antialias=True), np.float32)


# ------------------------------------------------------------------------------------- transforms

def invert(x: np.ndarray) -> np.ndarray:
    """Colour inversion in jaxgan's [-1, 1] range: ``-x`` (white digits on black -> black on white)."""
    return -x


def thicken(x: np.ndarray) -> np.ndarray:
    """Grey dilation with a 3x3 cross (each pixel becomes the max of itself and its 4 neighbours)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    return np.maximum.reduce([p[:, 1:-1, 1:-1], p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2],
                              p[:, 1:-1, 2:]])


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"invert": invert, "thicken": thicken}


# ------------------------------------------------------------------------------------------ views

class Subset:
    """Examples ``i`` of a finite source with ``i % n == k``, as a source of their own (own shuffle).

    Args:
      source: a finite source with ``examples(indices)`` (every jaxgan file/array source).
      part: ``(k, n)``, 0 <= k < n.
      seed: shuffling seed of the subset's stream.
    """

    def __init__(self, source, part: Sequence[int], seed: int):
        k, n = (int(v) for v in part)
        if not hasattr(source, "examples") or not source.info.num_examples:
            raise ValueError(f"part={list(part)} needs a finite source (an image folder, MNIST, an array "
                             f"file); {source.info.name!r} is an infinite stream: drop 'part'")
        if not 0 <= k < n:
            raise ValueError(f"part={list(part)} must be [k, n] with 0 <= k < n, e.g. [0, 2] and [1, 2] "
                             "for two disjoint halves")
        self.source, self.k, self.n = source, k, n
        self.indices = np.arange(k, source.info.num_examples, n)
        self.shuffle = EpochShuffle(len(self.indices), seed)
        self.info = dataclasses.replace(source.info, num_examples=len(self.indices),
                                        name=f"{source.info.name}[{k}::{n}]")

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.source.examples(self.indices[np.asarray(indices)])

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        stored = getattr(self.source, "stored_examples", self.source.examples)
        return stored(self.indices[np.asarray(indices)])

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self.examples(self.shuffle(start, size))

    def get_stored_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self.stored_examples(self.shuffle(start, size))


class Transformed:
    """A source whose images pass through named transforms (:data:`TRANSFORMS`), in order."""

    def __init__(self, source: Source, transform: Sequence[str] | str):
        names = [transform] if isinstance(transform, str) else list(transform)
        unknown = [t for t in names if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown image transform(s) {unknown}: choose from {sorted(TRANSFORMS)}")
        if source.info.kind != "image":
            raise ValueError(f"transform {names} needs image data; {source.info.name!r} gives points")
        self.source, self.names = source, names
        self.info = dataclasses.replace(source.info, name=f"{source.info.name}|{'+'.join(names)}")

    def _apply(self, batch: dict) -> dict:
        x = batch["x"]
        for name in self.names:
            x = TRANSFORMS[name](x)
        return {**batch, "x": np.asarray(x, np.float32)}

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self._apply(self.source.examples(indices))

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self._apply(self.source.get_batch(start, size))


class UnpairedSource:
    """Two domains read independently: ``{'x': A, 'x_b': B[, 'label', 'label_b']}``.

    Stream index ``j`` takes example ``j`` of A's stream and example ``j`` of B's (each shuffled
    with its own seed), so the batch of a step is a pure function of the step (exact resume) and no
    A image is ever tied to a B image.

    Attributes:
      info: domain A's :class:`DataInfo` (what the generator G_ab takes).
      info_b: domain B's.
    """

    def __init__(self, a: Source, b: Source):
        for name, s in (("data", a), ("data_b", b)):
            if s.info.kind != "image":
                raise ValueError(f"unpaired translation needs images; {name} ({s.info.name!r}) gives points")
        if a.info.shape != b.info.shape:
            raise ValueError(f"the two domains must have the same image shape: data gives {a.info.shape}, "
                             f"data_b gives {b.info.shape}; set 'resolution' and 'channels' in both specs")
        self.a, self.b = a, b
        self.info = dataclasses.replace(a.info, name=f"{a.info.name} <-> {b.info.name}")
        self.info_b = b.info

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self._join(self.a.get_batch(start, size), self.b.get_batch(start, size))

    def get_stored_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self._join(stored_batch(self.a, start, size), stored_batch(self.b, start, size))

    @staticmethod
    def _join(a: dict, b: dict) -> dict:
        out = {"x": a["x"], "x_b": b["x"]}
        if "label" in a:
            out["label"] = a["label"]
        if "label" in b:
            out["label_b"] = b["label"]
        return out


class SuperResolutionSource:
    """Pairs ``{'x': high-res, 'lr': low-res}`` from any image source (bicubic, antialiased).

    Args:
      source: an image source; its images are the high-resolution targets.
      factor: the downsampling factor (2 or 4 for SRGAN; must divide the height and width).

    Attributes:
      info: the high-resolution images' info. ``lr_shape``: one low-resolution image's shape.
    """

    def __init__(self, source: Source, factor: int):
        factor = int(factor)
        if source.info.kind != "image":
            raise ValueError(f"super-resolution needs images; {source.info.name!r} gives points")
        h, w, c = source.info.shape
        if factor < 2 or h % factor or w % factor:
            raise ValueError(f"sr_factor={factor} must be >= 2 and divide the image size {h}x{w}: e.g. 2 or 4 "
                             "for 28x28 digits, or set 'resolution' to a multiple of it")
        self.source, self.factor = source, factor
        self.lr_shape = (h // factor, w // factor, c)
        self.info = dataclasses.replace(source.info, name=f"{source.info.name} (x{factor} SR)")

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self._pair(self.source.examples(indices))

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        return self._pair(self.source.get_batch(start, size))

    def _pair(self, batch: dict) -> dict:
        hr = batch["x"]
        lr = np.clip(resize_bicubic(hr, *self.lr_shape[:2]), -1.0, 1.0) if len(hr) else \
            np.zeros((0, *self.lr_shape), np.float32)
        return {**batch, "lr": lr}
