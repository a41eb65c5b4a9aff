"""The data-source contract: random-access batches that are a pure function of the position.

A source is an infinite, shuffled stream of examples that can be sliced anywhere without iterating:
``get_batch(start, size)`` returns the examples with global indices ``start .. start+size-1``. The
training loop asks for global batch ``step`` as indices ``step * B .. step * B + B - 1`` and each
process takes its own rows (:func:`process_batch`), so

* resuming is exact: the saved data position is just the global example counter;
* results do not depend on how many processes or devices share the batch.

For a finite data set of ``N`` examples the stream is: global index ``j`` -> epoch ``e = j // N``,
position ``p = j % N``, example ``perm_e[p]`` with
``perm_e = np.random.default_rng([seed, e]).permutation(N)``. Every epoch visits each example once.

Batches are dicts of host-local numpy arrays: ``{'x': float32, 'label': int32}`` (``'label'`` only
when the source has labels). Images are NHWC float32 in [-1, 1]; points are (B, D) float32 in their
natural coordinates.

Stored batches: a source of uint8 images may also offer ``get_stored_batch(start, size)``, the same
examples with images left uint8 in [0, 255] (:func:`stored_batch`). The training step is fed those
(a quarter of the bytes) and converts every uint8 leaf with
:func:`jaxgan.data.images.uint8_to_unit`, which gives the float batch bit for bit.
"""
from __future__ import annotations

import dataclasses
import operator
import threading
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Kind = Literal["image", "points"]


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a source yields.

    Attributes:
      shape: shape of one example's ``'x'``, e.g. ``(28, 28, 1)`` (HWC) or ``(2,)``.
      num_classes: number of label classes, or None when batches carry no ``'label'``.
      kind: ``'image'`` (NHWC in [-1, 1]) or ``'points'`` (natural coordinates).
      num_examples: size of one epoch, or None for an infinite generator (toy data).
      name: a short human-readable name, for logs.
    """

    shape: tuple[int, ...]
    num_classes: int | None
    kind: Kind
    num_examples: int | None
    name: str

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.kind not in ("image", "points"):
            raise ValueError(f"DataInfo.kind must be 'image' or 'points', got {self.kind!r}")
        if self.kind == "image" and len(self.shape) != 3:
            raise ValueError(f"image examples must be HWC (3 dims), got shape {self.shape}")

    @property
    def has_labels(self) -> bool:
        return self.num_classes is not None


@runtime_checkable
class Source(Protocol):
    """A random-access, infinite, shuffled stream of examples (see the module docstring)."""

    info: DataInfo

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """Examples with global indices ``start .. start+size-1`` of the infinite, shuffled stream."""
        ...


def check_seed(seed) -> int:
    """Returns ``seed`` as a Python int, or raises if it is not a non-negative integer."""
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"data seed must be an integer, got {seed!r} ({type(seed).__name__})") from None
    if seed < 0:
        raise ValueError(f"data seed must be >= 0, got {seed}")
    return seed


def check_range(start, size) -> tuple[int, int]:
    """Validates the ``(start, size)`` arguments of ``get_batch``; returns them as ints."""
    try:
        start, size = operator.index(start), operator.index(size)
    except TypeError:
        raise TypeError(f"get_batch(start, size) needs integers, got start={start!r}, size={size!r}") from None
    if start < 0 or size < 0:
        raise ValueError(f"get_batch(start, size) needs start >= 0 and size >= 0, got start={start}, size={size}")
    return start, size


class EpochShuffle:
    """Maps global stream indices to example indices: a fresh permutation per epoch.

    ``perm_e = np.random.default_rng([seed, e]).permutation(num_examples)``; the last few epochs'
    permutations are cached (a batch touches at most two epochs unless it is larger than one).

    Example:
      >>> shuffle = EpochShuffle(num_examples=5, seed=0)
      >>> sorted(shuffle(0, 5)) == [0, 1, 2, 3, 4]
      True
    """

    _CACHE = 4

    def __init__(self, num_examples: int, seed: int):
        if num_examples <= 0:
            raise ValueError(f"a finite data source needs at least one example, got {num_examples}")
        self.num_examples = int(num_examples)
        self.seed = check_seed(seed)
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for multi-process loaders: the lock and cache stay behind
        return {"num_examples": self.num_examples, "seed": self.seed}

    def __setstate__(self, state):
        self.__init__(state["num_examples"], state["seed"])

    def permutation(self, epoch: int) -> np.ndarray:
        """The (read-only) order in which epoch ``epoch`` visits the examples."""
        with self._lock:
            perm = self._perms.get(epoch)
            if perm is None:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
                perm.setflags(write=False)
                if len(self._perms) >= self._CACHE:
                    self._perms.pop(next(iter(self._perms)))  # oldest first (insertion order)
                self._perms[epoch] = perm
            return perm

    def __call__(self, start: int, size: int) -> np.ndarray:
        """Example indices (int64) of global stream indices ``start .. start+size-1``."""
        start, size = check_range(start, size)
        n = self.num_examples
        j = np.arange(start, start + size, dtype=np.int64)
        epochs, pos = np.divmod(j, n)
        out = np.empty(size, dtype=np.int64)
        for e in range(start // n, (start + size - 1) // n + 1) if size else ():
            sel = epochs == e
            out[sel] = self.permutation(e)[pos[sel]]
        return out


def stored_batch(source: Source, start: int, size: int) -> dict[str, np.ndarray]:
    """Examples ``start .. start+size-1`` with images in their stored dtype where the source keeps it.

    ``source.get_stored_batch`` where the source has one (uint8 image leaves, converted by the
    consumer with :func:`jaxgan.data.images.uint8_to_unit`), else ``source.get_batch``.
    """
    get = getattr(source, "get_stored_batch", None)
    return get(start, size) if get is not None else source.get_batch(start, size)


def process_batch(source: Source, step: int, global_batch: int, process_index: int = 0,
                  process_count: int = 1, *, stored: bool = False) -> dict[str, np.ndarray]:
    """This process's rows of global batch ``step``.

    Global batch ``step`` is stream indices ``step * global_batch .. (step + 1) * global_batch - 1``;
    process ``i`` of ``n`` gets the ``i``-th contiguous block of ``local = global_batch // n`` rows,
    so concatenating every process's rows in process order gives the one-process batch.

    Args:
      source: any :class:`Source`.
      step: the (non-negative) step number.
      global_batch: examples per step, summed over all processes.
      process_index: ``jax.process_index()``.
      process_count: ``jax.process_count()``.
      stored: images in their stored dtype (:func:`stored_batch`) instead of float32.

    Returns:
      ``source.get_batch(step * global_batch + process_index * local, local)``.

    Example:
      >>> from jaxgan.data import ring8
      >>> process_batch(ring8(seed=0), step=3, global_batch=8, process_index=1, process_count=2)['x'].shape
      (4, 2)
    """
    step, global_batch = operator.index(step), operator.index(global_batch)
    process_index, process_count = operator.index(process_index), operator.index(process_count)
    if process_count < 1:
        raise ValueError(f"process_count must be >= 1, got {process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is outside 0..{process_count - 1} "
                         f"(process_count={process_count})")
    if global_batch < 1:
        raise ValueError(f"global batch must be >= 1, got {global_batch}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if global_batch % process_count:
        lower = global_batch // process_count * process_count
        upper = lower + process_count
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise ValueError(
            f"global batch {global_batch} is not divisible by {process_count} processes: use a "
            f"multiple of {process_count} (e.g. {hint})")
    local = global_batch // process_count
    start = step * global_batch + process_index * local
    return stored_batch(source, start, local) if stored else source.get_batch(start, local)
