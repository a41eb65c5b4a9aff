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
import itertools
import logging
import multiprocessing
import os
import pathlib
import secrets
import shutil
import threading
import weakref
from multiprocessing import shared_memory

import numpy as np
from PIL import Image

from jaxgan.data.arrays import Uint8Source
from jaxgan.data.base import DataInfo
from jaxgan.data.images import ImageOptions, crop_resize_image

log = logging.getLogger(__name__)

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
        return self.decode_into(paths, np.empty((len(paths),) + self.shape, np.uint8))

    def decode_into(self, paths: list[pathlib.Path], out: np.ndarray) -> np.ndarray:
        """The files decoded into the rows of ``out`` (uint8, (len(paths),) + shape), in order."""
        for row, path in enumerate(paths):
            out[row] = np.asarray(self.image(path)).reshape(self.shape)
        return out


_WORKER: dict = {}  # in a worker process: what _start_worker sent, and the blocks it attached


def _start_worker(decoding: _Decoding, root: pathlib.Path, names: np.ndarray) -> None:
    """A worker process's start: what it decodes, sent once (a batch then sends only indices); the
    files as one array of their names under ``root`` (bytes: 200,000 names pickle in one buffer)."""
    _WORKER.update(decoding=decoding, root=root, names=names, attached={})


def _decode_in_worker(indices: np.ndarray, block: str | None) -> np.ndarray | None:
    """In a worker process: the files ``indices`` decoded into the first rows of shared-memory
    ``block``, or returned (pickled, through the pool's pipe) where the parent has no block."""
    decoding, root, names = _WORKER["decoding"], _WORKER["root"], _WORKER["names"]
    paths = [root / os.fsdecode(names[i]) for i in indices]
    if block is None:
        return decoding.batch(paths)
    memory = _WORKER["attached"].get(block)
    if memory is None:  # attached once per worker; the parent names a block once (_SharedBlocks)
        memory = _WORKER["attached"][block] = shared_memory.SharedMemory(name=block)
    decoding.decode_into(paths, np.ndarray((len(indices),) + decoding.shape, np.uint8, buffer=memory.buf))
    return None


_BLOCK_NAMES = itertools.count()


class _SharedBlocks:
    """Shared-memory blocks that worker processes decode into, so that a decoded batch reaches the
    parent with one copy and no pickling; reused from batch to batch, unlinked on :meth:`close`.

    Each block gets a name never used before in this process, so a worker's cached attachment
    (:func:`_decode_in_worker`) can never stand for another block.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._free: list[shared_memory.SharedMemory] = []
        self._closed = False

    def take(self, nbytes: int) -> shared_memory.SharedMemory | None:
        """A free block of at least ``nbytes``, or a new one; None where the system's shared memory
        cannot hold another (its pages are reserved up front, so that a full ``/dev/shm`` is met
        here and not by a worker writing into it, which would die of SIGBUS)."""
        with self._lock:
            for i, block in enumerate(self._free):
                if block.size >= nbytes:
                    return self._free.pop(i)
        name = f"jaxgan_{os.getpid()}_{next(_BLOCK_NAMES)}_{secrets.token_hex(4)}"
        try:
            block = shared_memory.SharedMemory(name=name, create=True, size=max(nbytes, 1))
        except OSError:
            return None
        try:
            _reserve(block)
        except OSError:
            _release(block)
            return None
        return block

    def give(self, block: shared_memory.SharedMemory) -> None:
        with self._lock:
            if not self._closed:
                self._free.append(block)
                return
        _release(block)

    def close(self) -> None:
        """Unlinks the free blocks now and those in use when they are given back."""
        with self._lock:
            self._closed, free, self._free = True, self._free, []
        for block in free:
            _release(block)


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor, blocks: _SharedBlocks) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    blocks.close()


def _reserve(block: shared_memory.SharedMemory) -> None:
    """Allocates ``block``'s pages now (OSError where the shared memory is full, e.g. the 64 MB
    ``/dev/shm`` of a default Docker container)."""
    fd = getattr(block, "_fd", -1)  # the POSIX descriptor (CPython's SharedMemory keeps it open)
    if fd >= 0 and hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, block.size)


def _release(block: shared_memory.SharedMemory) -> None:
    block.close()
    try:
        block.unlink()
    except FileNotFoundError:  # already gone (e.g. the system's /dev/shm cleaned)
        pass


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
        can decode however many cores the host has; processes do not share it. A worker process
        gets the paths once and then a batch's indices, decodes the batch straight into shared
        memory, and the parent copies it out (no pickling of paths or pixels: BENCHMARKS.md); where
        the system's shared memory is too small for a batch (a default Docker container has 64 MB),
        the batch comes back through a pipe instead, with one warning.
        Workers start once (``forkserver``: a script that uses them needs ``if __name__ ==
        '__main__':``), on the first batch; the batches are the same with or without them.

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
        self._blocks: _SharedBlocks | None = None
        self._stop: weakref.finalize | None = None  # stops _pool and frees _blocks
        self._warned_shared_memory = False
        self._pool_lock = threading.Lock()

    def _decode(self, path: pathlib.Path) -> Image.Image:
        """One file decoded, in the source's mode, centre-cropped and resized (in PIL)."""
        return self._decoding.image(path)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples ``indices`` decoded, cropped and resized, as uint8."""
        if self.processes and len(indices):
            x = self._in_process(indices)
        else:
            x = self._decoding.batch([self.paths[i] for i in indices])
        batch = {"x": x}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch

    def _in_process(self, indices: np.ndarray) -> np.ndarray:
        """The batch decoded by a worker process into a shared-memory block, copied into the batch.

        A call keeps one process busy: the input pipeline has at least one thread calling per
        process (:func:`jaxgan.pipeline.default_workers`), each with its own batch.
        """
        with self._pool_lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])  # workers fork from a server that imported this
                names = np.array([os.fsencode(p.relative_to(self.root)) for p in self.paths])
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.processes, mp_context=context, initializer=_start_worker,
                    initargs=(self._decoding, self.root, names))
                self._blocks = _SharedBlocks()
                # at the latest when the source is collected or the interpreter exits (a script that
                # never calls close): stopping the pool then, before the interpreter tears down the
                # modules its threads use, ends it quietly, and the blocks leave /dev/shm with it
                # (not later, by multiprocessing's resource tracker, with a warning about leaks)
                self._stop = weakref.finalize(self, _stop_workers, self._pool, self._blocks)
            pool, blocks = self._pool, self._blocks
        x = np.empty((len(indices),) + self.info.shape, np.uint8)
        block = blocks.take(x.nbytes)
        if block is None:
            self._warn_no_shared_memory(x.nbytes)
        future = None
        try:
            future = pool.submit(_decode_in_worker, np.asarray(indices, np.int64), block and block.name)
            returned = future.result()
            if block is None:
                return returned
            x[:] = np.ndarray(x.shape, np.uint8, buffer=block.buf)
            return x
        except concurrent.futures.process.BrokenProcessPool as e:
            raise RuntimeError(
                f"a process decoding the images of {self.root} stopped (killed by the system, e.g. out of "
                f"memory, or it failed to start: a script that trains must guard its code with `if __name__ == "
                f"'__main__':`); set input_processes=0 to decode in threads (now {self.processes}), or prepare the "
                f"data once with `jaxgan prepare`") from e
        finally:  # a block goes back only once no worker writes into it
            if future is not None:
                concurrent.futures.wait([future])
            if block is not None:
                blocks.give(block)

    def _warn_no_shared_memory(self, nbytes: int) -> None:
        with self._pool_lock:
            warned, self._warned_shared_memory = self._warned_shared_memory, True
        if not warned:
            free = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else 0
            log.warning("the system's shared memory cannot hold a decoded batch of %.1f MB (/dev/shm has "
                        "%.1f MB free): batches come back from the decoding processes through a pipe, "
                        "which is slower; give it more (e.g. docker run --shm-size=1g), or set "
                        "input_processes=0 to decode in threads", nbytes / 2**20, free / 2**20)

    def close(self) -> None:
        """Stops the decoding processes (if any started) and frees their shared memory; a later
        batch starts new ones."""
        with self._pool_lock:
            self._pool = self._blocks = None
            stop, self._stop = self._stop, None
        if stop is not None:
            stop()  # runs once

    def __getstate__(self) -> dict:  # a copy (pickle, deepcopy) starts its own processes
        state = dict(self.__dict__)
        state["_pool"], state["_pool_lock"], state["_blocks"], state["_stop"] = None, None, None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()
