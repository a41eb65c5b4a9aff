"""A folder of image files (png, jpg, ...), decoded with PIL per batch.

Layouts:

* ``root/*.png``: unlabelled;
* ``root/<class>/**/*.png``: labelled, classes are the sub-folder names in sorted order.

Only 8-bit images are read (16-bit and float modes are refused), so pixels cannot be NaN or
infinite; an undecodable file is refused with its path. Paths are sorted, so example ``i`` is the same file on every machine. Images are decoded to grey
(``channels=1``) or RGB (``channels=3``; alpha is dropped); with ``channels=None`` the first image
decides. With ``resolution=None`` every image must have the first image's size (after ``crop``).
"""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from jaxgan.data.arrays import Uint8Source
from jaxgan.data.base import DataInfo
from jaxgan.data.images import ImageOptions, crop_resize_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _is_image(path: pathlib.Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(root) -> tuple[list[pathlib.Path], np.ndarray | None, tuple[str, ...]]:
    """Sorted image paths under ``root``, their labels (or None) and the class names."""
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected a directory of "
                                f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} files, or of one sub-folder per class)")
    top = sorted(p for p in root.iterdir() if _is_image(p))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [sorted(p for p in d.rglob("*") if _is_image(p)) for d in class_dirs]
    class_dirs = [d for d, files in zip(class_dirs, per_class) if files]
    per_class = [files for files in per_class if files]
    if top and per_class:
        raise ValueError(f"{root} has images both at the top level ({top[0].name}, ...) and in sub-folders "
                         f"({class_dirs[0].name}/, ...): put all images in class sub-folders (labelled) or all at "
                         f"the top level (unlabelled)")
    if top:
        return top, None, ()
    if not per_class:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root} or its sub-folders")
    paths = [p for files in per_class for p in files]
    labels = np.concatenate([np.full(len(files), c, np.int32) for c, files in enumerate(per_class)])
    return paths, labels, tuple(d.name for d in class_dirs)


class FolderSource(Uint8Source):
    """A finite source over a folder of images (see the module docstring).

    Args:
      path: the root folder.
      seed: data seed.
      resolution, channels, crop: image options (:class:`jaxgan.data.images.ImageOptions`).

    Attributes:
      paths: the sorted image paths (example ``i`` is ``paths[i]``).
      classes: class names (sub-folders) in label order; empty when unlabelled.

    Example:
      >>> src = FolderSource('celeba/img_align_celeba', seed=0, resolution=64, crop='center')  # doctest: +SKIP
    """

    decodes_per_batch = True  # batches are decoded from files: the input pipeline builds them on one thread per core

    def __init__(self, path, seed: int, resolution: int | None = None, channels: int | None = None,
                 crop: str | None = None):
        self.options = ImageOptions(resolution=resolution, channels=channels, crop=crop)
        self.paths, self.labels, self.classes = list_images(path)
        super().__init__(len(self.paths), seed)
        first = self._open(self.paths[0])
        self.mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if first.mode in ("1", "L", "LA") else "RGB")
        stored = (first.height, first.width, 1 if self.mode == "L" else 3)
        self._stored_hw = stored[:2]
        self.info = DataInfo(shape=self.options.output_shape(*stored),
                             num_classes=len(self.classes) if self.labels is not None else None,
                             kind="image", num_examples=len(self.paths), name=pathlib.Path(path).name)

    @staticmethod
    def _open(path: pathlib.Path) -> Image.Image:
        try:
            image = Image.open(path)
            image.load()
        except (OSError, SyntaxError) as e:  # PIL raises these for unreadable / truncated files
            raise ValueError(f"cannot decode image {path}: {e}. Remove or replace the file") from e
        if image.mode in _HIGH_DEPTH_MODES:
            raise ValueError(f"{path} has {image.mode!r} pixels (16-bit or float); only 8-bit images are "
                             f"supported: convert it to 8-bit grey or RGB")
        return image

    def _decode(self, path: pathlib.Path) -> Image.Image:
        """One file decoded, in the source's mode, centre-cropped and resized (in PIL)."""
        image = self._open(path)
        if image.mode != self.mode:
            image = image.convert(self.mode)
        if self.options.resolution is None:
            hw = (image.height, image.width)
            if self.options.crop == "center":
                hw, want = (min(hw),) * 2, (min(self._stored_hw),) * 2
            else:
                want = self._stored_hw
            if hw != want:
                raise ValueError(f"{path} is {image.width}x{image.height} (WxH) but {self.paths[0]} is "
                                 f"{self._stored_hw[1]}x{self._stored_hw[0]}: set `resolution` to resize all images "
                                 f"to one size")
        # The mode conversion above made the channels, so the pixels stay uint8 (those of
        # stored_pixels on the decoded array, computed in PIL: crop_resize_image).
        return crop_resize_image(image, self.options)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples ``indices`` decoded, cropped and resized, as uint8.

        Each image is written into the batch as it is decoded (one copy out of PIL, no stacking).
        """
        x = np.empty((len(indices),) + self.info.shape, np.uint8)
        for row, i in enumerate(indices):
            x[row] = np.asarray(self._decode(self.paths[i])).reshape(self.info.shape)
        batch = {"x": x}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch
