"""A prepared store: images decoded once into uint8, read by index with no decoding.

``jaxgan prepare`` (:mod:`jaxgan.prepare`) writes one from any finite image source with the
experiment's image options; training reads it with ``{'name': 'store', 'path': DIR}`` as its data.
A store is a directory:

* ``images.npy``: (N, H, W, C) uint8, the source's examples in index order after crop, resize and
  channels (a plain ``.npy``, memory-mapped for reading: the page cache holds what is read, each
  process maps only what it touches, nothing is held twice);
* ``labels.npy``: (N,) int32 class ids (labelled sources only);
* ``store.json``: the format, the source spec it came from, the image options, the count, shape,
  classes, and a SHA-256 digest of the images' and labels' bytes.

The store's stream is the source's stream: the same ``N`` and seed give the same epoch permutations
(:class:`jaxgan.data.base.EpochShuffle`), so a run reads the same examples in the same order from
the store as from its source, and ``uint8_to_unit`` of the stored pixels is the source's float batch
bit for bit. A store is written in a temporary directory next to its destination and renamed into
place when complete, so a store that exists is whole; what goes wrong afterwards is caught when it
is opened: a missing or short file (truncation) always, changed bytes by the digest (``verify``,
on by default: one read of the store).

Why a memory-mapped ``.npy`` and not ArrayRecord or grain: for reading random rows of fixed-size
uint8 images, a gather from the mapped array is one numpy call with no per-record work, and it needs
no dependency (BENCHMARKS.md measures the alternatives).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np

from jaxgan.data.arrays import Uint8Source
from jaxgan.data.base import DataInfo
from jaxgan.data.images import ImageOptions

FORMAT = "jaxgan-store-1"
META = "store.json"
IMAGES = "images.npy"
LABELS = "labels.npy"
OPTION_KEYS = ("resolution", "channels", "crop")
_DIGEST_BLOCK = 64 << 20  # bytes hashed at a time


def digest_arrays(images: np.ndarray, labels: np.ndarray | None, progress=None) -> str:
    """SHA-256 (hex) of the images' bytes (row order), then the labels' bytes if any.

    Reads ``images`` in 64 MiB blocks, so a memory-mapped store is hashed without loading it whole.
    ``progress(n)`` is called with the number of rows hashed in each block.
    """
    h = hashlib.sha256()
    row = max(1, int(np.prod(images.shape[1:])))
    step = max(1, _DIGEST_BLOCK // row)
    for i in range(0, len(images), step):
        h.update(np.ascontiguousarray(images[i:i + step]).data)
        if progress is not None:
            progress(min(step, len(images) - i))
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int32).data)
    return h.hexdigest()


def read_meta(path) -> dict:
    """A store's ``store.json``, checked to be one (one clear line otherwise)."""
    path = pathlib.Path(path).expanduser()
    meta_path = path / META
    if not meta_path.is_file():
        what = "does not exist" if not path.exists() else f"has no {META}"
        raise FileNotFoundError(f"prepared store {path} {what}: make it with `jaxgan prepare EXPERIMENT {path}` "
                                f"(an unfinished `jaxgan prepare` leaves only a .partial folder)")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as e:
        raise ValueError(f"{meta_path} is not valid JSON ({e}): the store is damaged; prepare it again") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} is not a {FORMAT} store (format {found!r}): prepare it again with this "
                         "jaxgan")
    return meta


def _same_option(key: str, asked, recorded, shape) -> bool:
    """Whether option ``key`` as asked gives the stored images: recorded equal, or recorded unset and a
    no-op on the stored shape (resolution = the stored size, channels = the stored ones, a square crop)."""
    if asked is None or asked == recorded:
        return True
    if recorded is not None:
        return False
    h, w, c = shape
    return {"resolution": h == w == asked, "channels": c == asked, "crop": h == w}[key]


def check_options(meta: dict, asked: ImageOptions, path) -> None:
    """Raises when the experiment's image options (those it sets) differ from the store's."""
    stored, shape = meta["options"], tuple(meta["shape"])
    differ = [k for k in OPTION_KEYS if not _same_option(k, getattr(asked, k), stored.get(k), shape)]
    if differ:
        have = ", ".join(f"{k}={stored.get(k)!r}" for k in differ)
        want = ", ".join(f"{k}={getattr(asked, k)!r}" for k in differ)
        raise ValueError(f"prepared store {path} has {have} but the experiment asks {want}: prepare the store "
                         f"again with the experiment's options (jaxgan prepare EXPERIMENT OUT), or set "
                         + " ".join(f"data.{k}={stored.get(k)!r}" for k in differ))


def _open_npy(path: pathlib.Path, shape: tuple, dtype, store) -> np.ndarray:
    """A read-only memory map of ``path``, refused when missing, truncated or of the wrong shape."""
    if not path.is_file():
        raise FileNotFoundError(f"prepared store {store} has no {path.name}: it is incomplete; prepare it again")
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            header = read_header(f)  # (shape, fortran_order, dtype)
        except ValueError as e:
            raise ValueError(f"{path} is not a .npy file ({e}): the store is damaged; prepare it again") from e
        offset = f.tell()
    got_shape, fortran, got_dtype = header
    if tuple(got_shape) != tuple(shape) or np.dtype(got_dtype) != np.dtype(dtype) or fortran:
        raise ValueError(f"{path} holds {np.dtype(got_dtype)} {tuple(got_shape)} but {store / META} records "
                         f"{np.dtype(dtype)} {tuple(shape)}: the store is damaged; prepare it again")
    need = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = path.stat().st_size
    if size != need:
        raise ValueError(f"{path} has {size:,} bytes but {need:,} are needed for {tuple(shape)} {np.dtype(dtype)}: "
                         f"the store is {'truncated' if size < need else 'damaged'}; prepare it again")
    return np.load(path, mmap_mode="r", allow_pickle=False)


class StoreSource(Uint8Source):
    """A finite source over a prepared store (see the module docstring).

    Args:
      path: the store directory (``jaxgan prepare``'s OUT).
      seed: data seed.
      resolution, channels, crop: the experiment's image options; each one set must equal the
        store's (a store is never resized on the fly: that is what preparing it saved).
      verify: check the digest when opening (one read of the store; False skips it, the size checks
        stay).

    Example:
      >>> src = StoreSource('celeba64', seed=0, resolution=64, crop='center')  # doctest: +SKIP
    """

    def __init__(self, path, seed: int, resolution: int | None = None, channels: int | None = None,
                 crop: str | None = None, verify: bool = True):
        self.path = pathlib.Path(path).expanduser()
        meta = read_meta(self.path)
        check_options(meta, ImageOptions(resolution=resolution, channels=channels, crop=crop), self.path)
        count, shape = int(meta["count"]), tuple(int(d) for d in meta["shape"])
        self.images = _open_npy(self.path / IMAGES, (count, *shape), np.uint8, self.path)
        self.labels = None
        if meta.get("num_classes") is not None:
            self.labels = _open_npy(self.path / LABELS, (count,), np.int32, self.path)
            self.labels = np.array(self.labels)  # small: keep in memory
        if verify:
            digest = digest_arrays(self.images, self.labels)
            if digest != meta["digest"]:
                raise ValueError(f"prepared store {self.path} is corrupted: its bytes do not match the digest in "
                                 f"{META} (sha256 {digest[:12]}... vs {meta['digest'][:12]}...); prepare it again")
        self.meta = meta
        self.classes = tuple(meta.get("classes") or ())
        super().__init__(count, seed)
        self.info = DataInfo(shape=shape, num_classes=meta.get("num_classes"), kind="image", num_examples=count,
                             name=meta.get("name") or self.path.name)

    def stored_examples(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The rows ``indices`` as uint8 (one gather from the memory map)."""
        indices = np.asarray(indices)
        batch = {"x": self.images[indices]}
        if self.labels is not None:
            batch["label"] = self.labels[indices]
        return batch


def store_source(path, seed: int, resolution: int | None = None, channels: int | None = None,
                 crop: str | None = None, verify: bool = True) -> StoreSource:
    """The ``'store'`` data source: ``{'name': 'store', 'path': DIR[, image options][, 'verify': False]}``."""
    return StoreSource(path, seed, resolution=resolution, channels=channels, crop=crop, verify=verify)


def write_store(source: Any, out, *, spec: dict | None = None, chunk: int = 256, workers: int = 1,
                progress: bool = True) -> dict:
    """Writes the finite image ``source`` (all its examples, in index order) as a store at ``out``.

    The rows are built ``chunk`` at a time on ``workers`` threads (in order) and written into a
    memory-mapped ``.npy`` in ``out``'s ``.partial`` sibling, which is renamed to ``out`` when
    complete: only ``workers + 1`` chunks are in memory at any time, and an interrupted write leaves
    no store behind (run it again).

    Args:
      source: a finite source (``examples``/``stored_examples``) of uint8-representable images.
      out: the store directory to create (must not exist).
      spec: the source's config, recorded in ``store.json``.
      chunk: rows per unit of work.
      workers: threads decoding chunks.
      progress: show a progress bar (tqdm).

    Returns:
      The store's metadata (``store.json``).
    """
    from tqdm import tqdm

    from jaxgan.pipeline import Prefetcher

    out = pathlib.Path(out).expanduser()
    info = source.info
    if info.kind != "image":
        raise ValueError(f"only images can be prepared; {info.name!r} gives {info.kind}")
    if not info.num_examples or not hasattr(source, "examples"):
        raise ValueError(f"{info.name!r} is an infinite stream (no fixed set of examples to store): train from "
                         "the source itself")
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose another OUT or remove it first")
    n, shape = int(info.num_examples), tuple(info.shape)
    stored = getattr(source, "stored_examples", None)
    if stored is None:
        raise ValueError(f"{info.name!r} cannot give its images as uint8: train from the source itself")
    probe = stored(np.arange(min(1, n)))["x"]
    if probe.dtype != np.uint8:
        raise ValueError(f"{info.name!r} gives float images under these options (float pixels, or RGB -> grey "
                         "which is computed in float32): a uint8 store would change them; train from the source "
                         "itself, or prepare the RGB images (no channels=1) from uint8 pixels")
    tmp = out.with_name(f"{out.name}.partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)  # an earlier attempt's leftovers: never a store (it was never renamed)
    tmp.mkdir(parents=True)
    images = np.lib.format.open_memmap(tmp / IMAGES, mode="w+", dtype=np.uint8, shape=(n, *shape))
    labels = np.zeros(n, np.int32) if info.has_labels else None
    hasher = hashlib.sha256()
    starts = range(0, n, chunk)
    make = lambda i: stored(np.arange(starts[i], min(starts[i] + chunk, n)))
    with tqdm(total=n, unit="img", desc=f"prepare {out.name}", disable=not progress) as bar, \
            Prefetcher(make, 0, len(starts), depth=workers + 1, workers=workers) as chunks:
        for i, batch in chunks:
            lo = starts[i]
            x = batch["x"]
            if x.dtype != np.uint8 or x.shape[1:] != shape:
                raise ValueError(f"{info.name!r}: examples {lo}..{lo + len(x) - 1} came out {x.dtype} "
                                 f"{x.shape[1:]}, not uint8 {shape}: set `resolution` so every image has one size")
            images[lo:lo + len(x)] = x
            hasher.update(np.ascontiguousarray(x).data)
            if labels is not None:
                labels[lo:lo + len(x)] = batch["label"]
            bar.update(len(x))
    images.flush()
    del images
    if labels is not None:
        np.save(tmp / LABELS, labels)
        hasher.update(labels.data)
    options = {k: getattr(getattr(source, "options", None), k, None) for k in OPTION_KEYS}
    meta = {"format": FORMAT, "name": info.name, "source": spec, "options": options, "count": n,
            "shape": list(shape), "num_classes": info.num_classes,
            "classes": list(getattr(source, "classes", ()) or ()), "digest": hasher.hexdigest()}
    (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    for name in (IMAGES, LABELS, META):
        if (tmp / name).exists():
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
    os.replace(tmp, out)
    return meta
