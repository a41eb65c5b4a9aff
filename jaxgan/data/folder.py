"""A folder of image files (png, jpg, ...), decoded with PIL per batch.

Layouts:

* ``root/*.png``: unlabelled;
* ``root/<class>/**/*.png``: labelled, classes are the sub-folder names in sorted order.

Only 8-bit images are read (16-bit and float modes are refused), so pixels cannot be NaN or
infinite; an undecodable file is refused with its path. Paths are sorted, so example ``i`` is the
same file on every machine. Images are decoded to grey (``channels=1``) or RGB (``channels=3``;
alpha is dropped); with ``channels=None`` the first image decides. With ``resolution=None`` every
image must have the first image's size (after ``crop``).

Each file is decoded, centre-cropped and resized in PIL and written into the batch with one copy
(:func:`jaxgan.data.images.crop_resize_image`: the pixels of ``stored_pixels`` on the decoded
array), in the calling thread or, with ``processes``, in worker processes.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import pathlib
import threading

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


def open_image(path: pathlib.Path) -> Image.Image:
    """One image file, decoded (8-bit modes only); one clear error for a file that is not one."""
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError) as e:  # PIL raises these for unreadable / truncated files
        raise ValueError(f"cannot decode image {path}: {e}. Remove or replace the file") from e
    if image.mode in _HIGH_DEPTH_MODES:
        raise ValueError(f"{path} has {image.mode!r} pixels (16-bit or float); only 8-bit images are "
                         f"supported: convert it to 8-bit grey or RGB")
    return image


@dataclasses.dataclass(frozen=True)
class _Decoding:
    """What decoding a folder's file needs (sent to worker processes with each batch's paths)."""

    mode: str  # 'L' or 'RGB'
    options: ImageOptions
    shape: tuple[int, int, int]  # the batch's image shape
    first: pathlib.Path  # the file that fixed the stored size (named in errors)
    stored_hw: tuple[int, int]  # its (height, width)

    def image(self, path: pathlib.Path) -> Image.Image:
        """One file decoded, in ``mode``, centre-cropped and resized (in PIL)."""
        image = open_image(path)
        if image.mode != self.mode:
            image = image.convert(self.mode)
        if self.options.resolution is None:
            hw = (image.height, image.width)
            if self.options.crop == "center":
                hw, want = (min(hw),) * 2, (min(self.stored_hw),) * 2
            else:
                want = self.stored_hw
            if hw != want:
                raise ValueError(f"{path} is {image.width}x{image.height} (WxH) but {self.first} is "
                                 f"{self.stored_hw[1]}x{self.stored_hw[0]}: set `resolution` to resize all images "
                                 f"to one size")
        # The mode conversion above made the channels, so the pixels stay uint8 (those of
        # stored_pixels on the decoded array, computed in PIL: crop_resize_image).
        return crop_resize_image(image, self.options)

    def batch(self, paths: list[pathlib.Path]) -> np.ndarray:
        """The files decoded into one uint8 (N, H, W, C) batch, each written in as it is decoded."""
        x = np.empty((len(paths),) + self.shape, np.uint8)
        for row, path in enumerate(paths):
            x[row] = np.asarray(self.image(path)).reshape(self.shape)
        return x


class FolderSource(Uint8Source):
    """A finite source over a folder of images (see the module docstring).

    Args:
      path: the root folder.
      seed: data seed.
      resolution, channels, crop: image options (:class:`jaxgan.data.images.ImageOptions`).
      processes: decode each batch in one of this many worker processes (0: in the calling thread;
        the train loop sets it from config ``input_processes``, :func:`jaxgan.pipeline.use_processes`).
        The input pipeline builds batches on one thread per core; part of decoding a file holds
        Python's GIL (PIL parses a JPEG's header in Python), which caps what threads of one process
        can decode however many cores the host has; processes do not share it, but each batch comes
        back through a pipe, which costs the parent per byte (BENCHMARKS.md: 10 us an image at 64x64,
        256 us at 256x256): they pay where images are small. Workers start once (``forkserver``: a
        script that uses them needs ``if __name__ == '__main__':``), on the first batch; the batches
        are the same with or without them.

    Attributes:
      root: the folder.
      paths: the sorted image paths (example ``i`` is ``paths[i]``).
      classes: class names (sub-folders) in label order; empty when unlabelled.

    Example:
      >>> src = FolderSource('celeba/img_align_celeba', seed=0, resolution=64, crop='center')  # doctest: +SKIP
    """

    decodes_per_batch = True  # batches are decoded from files: the input pipeline builds them on one thread per core

    def __init__(self, path, seed: int, resolution: int | None = None, channels: int | None = None,
                 crop: str | None = None, processes: int = 0):
        self.options = ImageOptions(resolution=resolution, channels=channels, crop=crop)
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
            raise ValueError(f"processes must be an integer >= 0 (0: decode in the input pipeline's threads), "
                             f"got {processes!r}")
        self.root = pathlib.Path(path).expanduser()
        self.paths, self.labels, self.classes = list_images(path)
        super().__init__(len(self.paths), seed)
        first = open_image(self.paths[0])
        self.mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if first.mode in ("1", "L", "LA") else "RGB")
        stored = (first.height, first.width, 1 if self.mode == "L" else 3)
        self.info = DataInfo(shape=self.options.output_shape(*stored),
                             num_classes=len(self.classes) if self.labels is not None else None,
                             kind="image", num_examples=len(self.paths), name=pathlib.Path(path).name)
        self._decoding = _Decoding(self.mode, self.options, self.info.shape, self.paths[0], stored[:2])
        self.processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _decode(self, path: pathlib.Path) -> Image.Image:
        """One file decoded, in the source's mode, centre-cropped and resized (in PIL)."""
        return self._decoding.image(path)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples ``indices`` decoded, cropped and resized, as uint8."""
        paths = [self.paths[i] for i in indices]
        x = self._in_process(paths) if self.processes and paths else self._decoding.batch(paths)
        batch = {"x": x}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch

    def _in_process(self, paths: list[pathlib.Path]) -> np.ndarray:
        with self._pool_lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])  # workers fork from a server that imported this
                self._pool = concurrent.futures.ProcessPoolExecutor(self.processes, mp_context=context)
            pool = self._pool
        try:
            return pool.submit(self._decoding.batch, paths).result()
        except concurrent.futures.process.BrokenProcessPool as e:
            raise RuntimeError(
                f"a process decoding the images of {self.root} stopped (killed by the system, e.g. out of "
                f"memory, or it failed to start: a script that trains must guard its code with `if __name__ == "
                f"'__main__':`); set input_processes=0 to decode in threads (now {self.processes}), or prepare the "
                f"data once with `jaxgan prepare`") from e

    def close(self) -> None:
        """Stops the decoding processes (if any started); a later batch starts new ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __getstate__(self) -> dict:  # a copy (pickle, deepcopy) starts its own processes
        state = dict(self.__dict__)
        state["_pool"], state["_pool_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()
