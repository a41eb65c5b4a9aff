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
=============  ==========================================================================
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from jaxgan.data.arrays import npz_source
from jaxgan.data.base import Source
from jaxgan.data.folder import FolderSource
from jaxgan.data.idx import idx_source, mnist_idx
from jaxgan.data.stacked import stacked_mnist
from jaxgan.data.tfds import TfdsSource
from jaxgan.data.toy import grid25, ring8

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
}


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
    return build(seed=seed, **options)
