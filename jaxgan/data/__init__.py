"""Data sources: random-access, host-local numpy batches that are a pure function of the position.

``source.get_batch(start, size)`` returns examples ``start .. start+size-1`` of an infinite shuffled
stream as ``{'x': float32, 'label': int32}``; images are NHWC in [-1, 1], points (B, D) in their own
coordinates. Build sources from a config with :func:`make_source`; take one process's rows of a
global batch with :func:`process_batch`. See ``jaxgan/data/base.py`` for the contract.
"""
from jaxgan.data.arrays import ArraySource, FiniteSource, load_array, npz_source
from jaxgan.data.base import DataInfo, EpochShuffle, Source, process_batch, stored_batch
from jaxgan.data.factory import SOURCES, make_run_source, make_source
from jaxgan.data.folder import FolderSource
from jaxgan.data.idx import find_mnist_files, idx_source, mnist_idx, parse_idx, read_idx
from jaxgan.data.images import ImageOptions, preprocess, stored_pixels, uint8_to_unit
from jaxgan.data.stacked import StackedMNIST, stacked_mnist
from jaxgan.data.store import StoreSource, store_source, write_store
from jaxgan.data.tfds import TfdsSource
from jaxgan.data.toy import (
    GRID25_CENTRES,
    GRID25_STD,
    RING8_CENTRES,
    RING8_RADIUS,
    RING8_STD,
    GaussianMixture,
    grid25,
    ring8,
)

__all__ = [
    "ArraySource", "DataInfo", "EpochShuffle", "FiniteSource", "FolderSource", "GaussianMixture",
    "GRID25_CENTRES", "GRID25_STD", "ImageOptions", "RING8_CENTRES", "RING8_RADIUS", "RING8_STD", "SOURCES",
    "Source", "StackedMNIST", "TfdsSource", "find_mnist_files", "grid25", "idx_source", "load_array", "make_run_source", "make_source",
    "mnist_idx", "npz_source", "parse_idx", "preprocess", "process_batch", "read_idx", "ring8",
    "stacked_mnist", "StoreSource", "store_source", "stored_batch", "stored_pixels", "uint8_to_unit",
    "write_store",
]
