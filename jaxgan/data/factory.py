"""Builds a data source from a plain config: ``make_source({'name': 'mnist_idx', 'dir': ...}, seed)``.

The one registry of source names is :data:`SOURCES`; each entry is a function taking ``seed`` and
the spec's other keys as keyword arguments. Image sources share ``resolution``, ``channels`` and
``crop`` (:class:`jaxgan.data.images.ImageOptions`).

=============  ==========================================================================
name           options (besides the image options)
=============  ==========================================================================
ring8, grid25  ``with_labels`` (component index as label; default False)
idx            ``images`` (path), ``labels`` (path or None), ``name``
mnist_idx      ``dir``, ``split`` ('train' | 'test')
stacked_mnist  ``dir``, ``split``: three MNIST digits as RGB, label 100 d0 + 10 d1 + d2 (``channels`` 3 only)
npz, npy       ``path``, ``x_key``, ``label_key``, ``labels_path``, ``value_range``, ``num_classes``
folder         ``path``
tfds           ``dataset``, ``split``, ``data_dir``, ``download``, ``image_key``, ``label_key``
store          ``path`` (made by ``jaxgan prepare``), ``verify``: uint8 images read by index, no decoding
=============  ==========================================================================

Any spec may also carry the view options of :mod:`jaxgan.data.pairs`, applied in this order:
``part`` (``[k, n]``: the examples ``i % n == k`` of a finite source), ``transform`` (``'invert'``,
``'thicken'`` or a list of them) and ``sr_factor`` (batches become ``{'x': high-res, 'lr': low-res}``).
A run config with a ``data_b`` spec reads two unpaired domains (:func:`make_run_source`).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxgan.data.arrays import npz_source
from jaxgan.data.base import Source
from jaxgan.data.folder import FolderSource
from jaxgan.data.idx import idx_source, mnist_idx
from jaxgan.data.pairs import SuperResolutionSource, Subset, Transformed, UnpairedSource
from jaxgan.data.stacked import stacked_mnist
from jaxgan.data.store import store_source
from jaxgan.data.tfds import TfdsSource
from jaxgan.data.toy import grid25, ring8
from jaxgan.validate import VIEW_RULES, VIEW_UNSET

SOURCES: dict[str, Callable[..., Source]] = {
    "ring8": ring8,
    "grid25": grid25,
    "idx": idx_source,
    "mnist_idx": mnist_idx,
    "stacked_mnist": stacked_mnist,
    "npz": npz_source,
    "npy": npz_source,
    "folder": FolderSource,
    "tfds": TfdsSource,
    "store": store_source,
}

# Options any spec may carry: views of the named source (see jaxgan.data.pairs).
VIEW_OPTIONS = ("part", "transform", "sr_factor")


def make_source(spec: Mapping[str, Any] | str, seed: int) -> Source:
    """A data source from a config: a name, or a dict with ``'name'`` and that source's options.

    Args:
      spec: e.g. ``'ring8'``, ``{'name': 'mnist_idx', 'dir': '../shared/data/mnist', 'split': 'test'}``
        or ``{'name': 'folder', 'path': 'faces/', 'resolution': 64, 'crop': 'center'}``.
      seed: the data seed (shuffling order / toy samples).

    Returns:
      A :class:`jaxgan.data.base.Source`.

    Example:
      >>> make_source({'name': 'grid25'}, seed=0).info.shape
      (2,)
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    elif hasattr(spec, "to_dict"):  # ml_collections.ConfigDict and friends
        spec = spec.to_dict()
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a data spec is a source name or a dict with a 'name' key, got {spec!r}; "
                         f"names: {sorted(SOURCES)}")
    options = dict(spec)
    views = {k: options.pop(k) for k in VIEW_OPTIONS if options.get(k) not in VIEW_UNSET}
    options = {k: v for k, v in options.items() if k not in VIEW_OPTIONS}
    name = options.pop("name")
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}: choose one of {sorted(SOURCES)}")
    if "seed" in options:
        raise ValueError(f"data spec {dict(spec)!r} has a 'seed' key; pass the seed as make_source's argument")
    build = SOURCES[name]
    params = inspect.signature(build).parameters
    allowed = [p for p in params if p != "seed"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"data source {name!r} has no option(s) {unknown}; its options are {allowed}")
    missing = [p for p, v in params.items()
               if p != "seed" and v.default is inspect.Parameter.empty and p not in options]
    if missing:
        raise ValueError(f"data source {name!r} needs option(s) {missing} (got {sorted(options)})")
    for key, value in views.items():  # the config's validation names the spec; a direct call gets these
        VIEW_RULES[key](key, value)
    return _views(build(seed=seed, **options), views, seed)


# Image shape (at the stored size) and classes of sources whose format fixes them: a stand-in needs
# no files for these. TFDS data sets declare theirs in their builder (read without the data).
_FIXED = {"mnist_idx": ((28, 28, 1), 10), "stacked_mnist": ((28, 28, 3), 1000)}


def declared_info(spec: Mapping[str, Any] | str) -> tuple[tuple[int, int, int], int | None]:
    """``(image shape, num_classes)`` a data spec declares, without reading its data.

    The image options decide the shape where they fix it (``resolution``, ``channels``); otherwise
    the source's format does (MNIST, Stacked MNIST, a TFDS builder's features). A folder or array
    file without ``resolution`` has no declared shape: that is an error naming the fix.
    """
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.get("name")
    if name in ("ring8", "grid25"):
        raise ValueError(f"{name} is a toy source: build it, it needs no data")
    shape, classes = _FIXED.get(name, (None, spec.get("num_classes")))
    if name == "tfds":
        import tensorflow_datasets as tfds  # the builder's features are code: no data, no network

        features = tfds.builder(spec["dataset"], data_dir=spec.get("data_dir")).info.features
        image = tuple(features[spec.get("image_key", "image")].shape)
        shape = (*image, 1) if len(image) == 2 else image
        label_key = spec.get("label_key", "label")
        classes = getattr(features[label_key], "num_classes", None) if label_key in features else None
    resolution, channels = spec.get("resolution"), spec.get("channels")
    if resolution is None and (shape is None or None in shape[:2]):
        raise ValueError(f"data source {name!r} declares no image size without its data: set data.resolution "
                         "(and data.channels) to the size the experiment trains at")
    h = w = resolution
    if resolution is None:
        h, w = shape[:2]
        if spec.get("crop") == "center":
            h = w = min(h, w)
    c = channels or (shape[2] if shape else 3)
    return (int(h), int(w), int(c)), classes


def stand_in_source(spec: Mapping[str, Any] | str, seed: int, num_examples: int = 256) -> Source:
    """Random uint8 images of the shape (and classes) ``spec`` declares, with ``spec``'s views applied.

    For timing and compiling a step without its data (``jaxgan bench``, ``jaxgan compile``): the
    batches have the real run's shapes, dtypes and keys (labels, a super-resolution pair, ...).
    """
    from jaxgan.data.arrays import ArraySource

    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    shape, classes = declared_info(spec)
    x = np.random.default_rng(seed).integers(0, 256, (num_examples, *shape), dtype=np.uint8)
    labels = None if classes is None else np.arange(num_examples) % classes
    source = ArraySource(x, labels, seed=seed, name=f"stand-in for {spec.get('name')}", num_classes=classes)
    return _views(source, {k: spec[k] for k in VIEW_OPTIONS if spec.get(k) not in VIEW_UNSET}, seed)


def _views(source: Source, views: Mapping[str, Any], seed: int) -> Source:
    if "part" in views:
        source = Subset(source, views["part"], seed=seed)
    if "transform" in views:
        source = Transformed(source, views["transform"])
    if "sr_factor" in views:
        source = SuperResolutionSource(source, views["sr_factor"])
    return source


def make_run_source(config: Mapping[str, Any], stand_in: bool = False) -> Source:
    """The data source of a run config (``config.data`` seeded with ``config.seed``).

    The one place a run's config becomes its source, so families with other data layouts (two
    unpaired domains, low/high-resolution pairs) extend it here rather than in the runner. A
    non-empty ``config.data_b`` makes an :class:`~jaxgan.data.pairs.UnpairedSource` of ``data``
    (domain A, seeded with ``seed``) and ``data_b`` (domain B, seeded with ``seed + 1``).
    ``stand_in=True``: random images of the declared shapes instead (:func:`stand_in_source`).
    """
    make = stand_in_source if stand_in else make_source
    source = make(config["data"], seed=config["seed"])
    if config.get("data_b"):
        source = UnpairedSource(source, make(config["data_b"], seed=config["seed"] + 1))
    return source
