"""TensorFlow Datasets through ``tfds.data_source``: random access, no TensorFlow needed.

``tensorflow_datasets`` is imported only when such a source is built, so the rest of jaxgan imports
without it. The data must already be prepared in the ArrayRecord format, e.g.
``tfds build mnist --file_format=array_record --data_dir DIR`` on a machine with network (or pass
``download=True``). Feature ``image_key`` (default ``'image'``) becomes ``'x'``, feature
``label_key`` (default ``'label'``, when the data set has it) becomes ``'label'``.
"""
from __future__ import annotations

import difflib

import numpy as np

from jaxgan.data.arrays import FiniteSource, check_finite
from jaxgan.data.base import DataInfo
from jaxgan.data.images import ImageOptions, as_nhwc, keeps_uint8, preprocess, stored_pixels


def open_error(tfds, dataset: str, split: str, data_dir: str | None, error: Exception) -> str:
    """One short line for a TFDS data set that cannot be opened: an unknown name gets the closest
    registered names (TFDS's own message lists every data set, 4,000 characters); other failures
    the first line of TFDS's message and how to prepare the data."""
    name = dataset.split(":")[0].split("/")[0]
    if type(error).__name__ == "DatasetNotFoundError":
        try:
            known = tfds.list_builders(with_community_datasets=False)  # local: no network
        except Exception:  # noqa: BLE001 - the hint is optional
            known = []
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        return (f"TFDS has no data set {name!r}: {hint}set 'dataset' to a TFDS name (python -c "
                "\"import tensorflow_datasets as tfds; print(tfds.list_builders())\" lists them)")
    first = next((line.strip().rstrip(":") for line in str(error).splitlines() if line.strip()),
                 type(error).__name__)
    if len(first) > 300:
        first = first[:300] + "..."
    return (f"TFDS could not open {dataset!r} split {split!r} (data_dir={data_dir or 'TFDS default'}): {first}; "
            f"prepare it on a machine with network: tfds build {name} --file_format=array_record"
            f"{' --data_dir ' + str(data_dir) if data_dir else ''}, or set download=True")


class TfdsSource(FiniteSource):
    """A finite source over a random-access TFDS split (see the module docstring).

    Args:
      dataset: TFDS name, optionally with config and version (``'mnist'``, ``'celeb_a:2.1.0'``).
      seed: data seed.
      split: TFDS split string (``'train'``, ``'test'``, ``'train[:90%]'``, ...).
      data_dir: TFDS data directory (None: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      download: let TFDS download and prepare the data if it is missing.
      image_key: the image feature.
      label_key: the label feature (None: unlabelled; the default ``'label'`` is used only if present).
      resolution, channels, crop: image options (:class:`jaxgan.data.images.ImageOptions`).

    Example:
      >>> src = TfdsSource('mnist', seed=0, split='train', resolution=32)  # doctest: +SKIP
    """

    decodes_per_batch = True  # batches are decoded from files: the input pipeline builds them on one thread per core

    def __init__(self, dataset: str, seed: int, split: str = "train", data_dir: str | None = None,
                 download: bool = False, image_key: str = "image", label_key: str | None = "label",
                 resolution: int | None = None, channels: int | None = None, crop: str | None = None):
        self.options = ImageOptions(resolution=resolution, channels=channels, crop=crop)
        try:
            import tensorflow_datasets as tfds  # lazy: optional dependency
        except ImportError as e:
            raise ImportError("the 'tfds' data source needs tensorflow-datasets: pip install 'jaxgan[tfds]' "
                              "(TensorFlow itself is not needed)") from e
        try:
            self.data = tfds.data_source(dataset, split=split, data_dir=data_dir, download=download)
        except Exception as e:  # tfds raises many types (AssertionError, DatasetNotFoundError, ...)
            raise ValueError(open_error(tfds, dataset, split, data_dir, e)) from e
        features = self.data.dataset_info.features
        if image_key not in features:
            raise ValueError(f"TFDS {dataset!r} has no feature {image_key!r}; its features are {sorted(features)}: "
                             f"set image_key")
        if label_key is not None and label_key not in features:
            if label_key != "label":
                raise ValueError(f"TFDS {dataset!r} has no feature {label_key!r}; its features are "
                                 f"{sorted(features)}: set label_key (or None for no labels)")
            label_key = None
        self.image_key, self.label_key = image_key, label_key
        num_classes = None
        if label_key is not None:
            num_classes = getattr(features[label_key], "num_classes", None)
            if num_classes is None:
                raise ValueError(f"TFDS feature {label_key!r} of {dataset!r} is not a ClassLabel; set label_key=None")
        shape = tuple(features[image_key].shape)
        if len(shape) == 2:
            shape = shape + (1,)
        if len(shape) != 3 or shape[-1] not in (1, 3):
            raise ValueError(f"TFDS feature {image_key!r} of {dataset!r} has shape {shape}; expected (H, W, 1 or 3)")
        if None in shape[:2] and self.options.resolution is None:
            raise ValueError(f"TFDS {dataset!r} has images of varying size {shape}: set `resolution`")
        h, w, c = shape
        dtype = getattr(features[image_key], "np_dtype", None)
        self._keeps_uint8 = dtype is not None and np.dtype(dtype) == np.uint8 and keeps_uint8(self.options, c)
        super().__init__(len(self.data), seed)
        self.info = DataInfo(shape=self.options.output_shape(h or 0, w or 0, c), num_classes=num_classes, kind="image",
                             num_examples=len(self.data), name=f"{dataset}_{split}")

    def examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self._read(indices, preprocess)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 images stay uint8 (cropped, resized); other dtypes are converted as :meth:`examples`."""
        if not self._keeps_uint8:
            return self.examples(indices)
        return self._read(indices, stored_pixels)

    def _read(self, indices: np.ndarray, convert) -> dict[str, np.ndarray]:
        # One record at a time: the batched __getitems__ is not implemented by tfds's mock data.
        records = [self.data[int(i)] for i in indices]
        for i, r in zip(indices, records):  # random access: checked as records are read, not all at load
            check_finite(np.asarray(r[self.image_key]), f"TFDS {self.info.name} record {int(i)} feature "
                                                         f"{self.image_key!r}")
        images = [as_nhwc(np.asarray(r[self.image_key])[None], f"TFDS feature {self.image_key!r}") for r in records]
        if len(images) == 0:
            x = np.zeros((0,) + self.info.shape, np.uint8 if convert is stored_pixels else np.float32)
        elif all(im.shape == images[0].shape for im in images):
            x = convert(np.concatenate(images), self.options)
        else:
            x = np.concatenate([convert(im, self.options) for im in images])
        batch = {"x": x}
        if self.label_key is not None:
            batch["label"] = np.array([r[self.label_key] for r in records], dtype=np.int32)
        return batch
