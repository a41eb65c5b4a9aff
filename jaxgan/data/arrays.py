"""Finite data sets: the shuffled-stream base class and in-memory arrays (``.npz`` / ``.npy``).

Arrays are loaded once and kept in their stored dtype (uint8 images stay uint8); each batch is
gathered and converted (:func:`jaxgan.data.images.preprocess`) on demand.

Pixel ranges: uint8 images are [0, 255]; other integer images are assumed [0, 255] and float images
[0, 1] unless ``value_range`` says otherwise. The range is checked once at load time and values
outside it are an error. A 2-D float array (N, D) is point data, returned as is.
"""
from __future__ import annotations

import abc
import pathlib

import numpy as np

from jaxgan.data.base import DataInfo, EpochShuffle
from jaxgan.data.images import (ImageOptions, as_nhwc, check_value_range, keeps_uint8, preprocess,
                                stored_pixels, uint8_to_unit)


class FiniteSource(abc.ABC):
    """Base of finite sources: epoch-wise shuffling over ``info.num_examples`` examples.

    Subclasses set ``self.info`` and implement :meth:`examples` (a batch of given example indices);
    ``get_batch`` maps stream indices to example indices with :class:`EpochShuffle`.
    """

    info: DataInfo

    def __init__(self, num_examples: int, seed: int):
        self.shuffle = EpochShuffle(num_examples, seed)

    @abc.abstractmethod
    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The batch made of examples ``indices`` (in that order), unshuffled addressing."""

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`examples` with images in their stored dtype (uint8) where the source keeps it.

        The default is :meth:`examples`; a source of uint8 images overrides it so that
        ``uint8_to_unit`` of its ``'x'`` equals ``examples(indices)['x']`` bit for bit.
        """
        return self.examples(indices)

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """Examples with global indices ``start .. start+size-1`` of the infinite, shuffled stream."""
        return self.examples(self.shuffle(start, size))

    def get_stored_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """:meth:`get_batch` with images in their stored dtype (see :meth:`stored_examples`)."""
        return self.stored_examples(self.shuffle(start, size))


def check_labels(labels, n: int, what: str, num_classes: int | None = None) -> tuple[np.ndarray, int]:
    """Labels as an (n,) int32 array of non-negative class ids, and the number of classes."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{what} must be a vector of {n} labels (one per image), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise TypeError(f"{what} must hold integer class ids, got dtype {labels.dtype}")
    lo = int(labels.min()) if n else 0
    hi = int(labels.max()) if n else -1
    if lo < 0:
        raise ValueError(f"{what} must be class ids >= 0, found {lo}")
    if num_classes is None:
        num_classes = hi + 1
    elif hi >= num_classes:
        raise ValueError(f"{what} has class id {hi} but num_classes={num_classes}")
    return labels.astype(np.int32), int(num_classes)


def check_finite(x: np.ndarray, what: str) -> None:
    """Raises ValueError naming ``what`` (the file) and the first bad index if float ``x`` has NaN or Inf.

    Bad values in data would surface much later as a "divergence" of training; they are refused
    when the data is loaded instead.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} contains {int(bad.sum())} NaN or infinite value(s) (the first at index "
                         f"{first}, = {x[first]}): clean the data (e.g. np.nan_to_num) or drop those examples")


class Uint8Source(FiniteSource):
    """A finite source whose images are uint8 (decoded files, a prepared store): subclasses implement
    :meth:`stored_examples`, and :meth:`examples` is its images through ``uint8_to_unit``, so the float
    batch and the device-converted stored batch are the same bits by construction."""

    @abc.abstractmethod
    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples ``indices`` with ``'x'`` as uint8 (N, H, W, C)."""

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = self.stored_examples(indices)
        return {**batch, "x": uint8_to_unit(batch["x"])}


class ArraySource(FiniteSource):
    """A finite source over in-memory arrays: images (N, H, W[, C]) or points (N, D).

    Args:
      x: images (uint8 [0, 255] or float in ``value_range``) or 2-D float points.
      labels: optional (N,) integer class ids.
      seed: data seed.
      name: for logs.
      options: crop / resolution / channels for images (must be default for points).
      value_range: stored pixel range of non-uint8 images (default [0, 255] for integers, [0, 1]
        for floats).
      num_classes: number of classes (default: largest label + 1).

    Example:
      >>> src = ArraySource(np.zeros((10, 4, 4), np.uint8), labels=np.arange(10) % 2, seed=0)
      >>> {k: v.shape for k, v in src.get_batch(0, 3).items()}
      {'x': (3, 4, 4, 1), 'label': (3,)}
    """

    def __init__(self, x: np.ndarray, labels=None, *, seed: int, name: str = "arrays",
                 options: ImageOptions = ImageOptions(), value_range=None, num_classes: int | None = None):
        x = np.asarray(x)
        check_finite(x, f"{name}: x")
        if x.ndim == 2:
            if options != ImageOptions():
                raise ValueError(f"{name}: x has shape {x.shape}, i.e. points, so the image options "
                                 f"{options} do not apply; drop them")
            if not np.issubdtype(x.dtype, np.number):
                raise TypeError(f"{name}: points must be numeric, got dtype {x.dtype}")
            self.kind, shape, self.value_range = "points", x.shape[1:], None
        else:
            x = as_nhwc(x, f"{name}: x")
            self.value_range = check_value_range(x, value_range, f"{name}: x")
            self.kind, shape = "image", options.output_shape(*x.shape[1:])
        if labels is not None:
            labels, num_classes = check_labels(labels, len(x), f"{name}: labels", num_classes)
        else:
            num_classes = None
        super().__init__(len(x), seed)
        self.x, self.labels, self.options = x, labels, options
        self.info = DataInfo(shape=shape, num_classes=num_classes, kind=self.kind, num_examples=len(x), name=name)

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        x = self.x[indices]
        if self.kind == "image":
            x = preprocess(x, self.options, self.value_range)
        else:
            x = x.astype(np.float32)
        return self._with_labels(x, indices)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self.kind != "image" or self.x.dtype != np.uint8 or not keeps_uint8(self.options, self.x.shape[-1]):
            return self.examples(indices)
        x = self.x[indices]
        if self.options.crop or self.options.resolution or self.options.channels:
            x = stored_pixels(x, self.options)
        return self._with_labels(x, indices)

    def _with_labels(self, x: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = {"x": x}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch


def _require_file(path, what: str) -> pathlib.Path:
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} does not exist or is not a file")
    return path


def load_array(path, key: str | None = None, what: str = "array") -> np.ndarray:
    """One array from a ``.npy`` file, or array ``key`` from a ``.npz`` file (never unpickles)."""
    path = _require_file(path, f"{what} file")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"cannot read {path} as a numpy .npy/.npz file (object arrays are refused: "
                         f"no pickle): {e}") from e
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if key is None:
                raise ValueError(f"{path} is an .npz archive with arrays {sorted(data.files)}: say which "
                                 f"one holds the {what}")
            if key not in data.files:
                raise ValueError(f"{path} has no array {key!r} (it has {sorted(data.files)}): set the "
                               f"{what} key to one of those")
            return data[key]
    return data


def npz_source(path, seed: int, x_key: str = "x", label_key: str | None = None, labels_path=None,
               value_range=None, num_classes: int | None = None, resolution: int | None = None,
               channels: int | None = None, crop: str | None = None) -> ArraySource:
    """A source over arrays saved with ``np.savez`` (or one ``.npy`` file).

    Args:
      path: ``.npz`` archive (arrays ``x_key`` and optionally ``label_key``) or ``.npy`` images.
      seed: data seed.
      x_key: name of the image (or points) array inside an ``.npz``; ignored for ``.npy``.
      label_key: name of the label array inside the ``.npz`` (None: no labels).
      labels_path: labels in a separate ``.npy`` file (alternative to ``label_key``).
      value_range: stored range of float images (default [0, 1]); uint8 is always [0, 255].
      num_classes: number of classes (default: largest label + 1).
      resolution, channels, crop: image options (:class:`jaxgan.data.images.ImageOptions`).

    Example:
      >>> src = npz_source('cifar10.npz', seed=0, x_key='x', label_key='y')  # doctest: +SKIP
    """
    path = _require_file(path, "array file (.npz or .npy)")
    is_npz = path.suffix.lower() == ".npz"
    x = load_array(path, x_key if is_npz else None, what="images")
    check_finite(x, f"{path}" + (f" (array {x_key!r})" if is_npz else ""))
    if label_key is not None and labels_path is not None:
        raise ValueError("give the labels either as label_key (inside the .npz) or as labels_path, not both")
    labels = None
    if label_key is not None:
        if not is_npz:
            raise ValueError(f"label_key={label_key!r} needs an .npz archive, but {path} is not one: "
                             f"use labels_path for a separate .npy file")
        labels = load_array(path, label_key, what="labels")
    elif labels_path is not None:
        labels = load_array(labels_path, what="labels")
    return ArraySource(x, labels, seed=seed, name=path.stem, value_range=value_range, num_classes=num_classes,
                       options=ImageOptions(resolution=resolution, channels=channels, crop=crop))
