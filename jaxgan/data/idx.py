"""IDX files (the MNIST format), gzipped or not.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <number of dims>``, one big-endian
uint32 per dimension, then the values in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 (LeCun et al., "The MNIST database", 1998).
Gzip is detected from the file's first bytes, not its name.
"""
from __future__ import annotations

import gzip
import pathlib
import zlib

import numpy as np

from jaxgan.data.arrays import ArraySource, check_finite
from jaxgan.data.images import ImageOptions

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (or a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/)"


def _read_bytes(path: pathlib.Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} looks gzipped but does not decompress (truncated or corrupt download?): {e}. "
                         f"Download it again") from e


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Parses the bytes of an (uncompressed) IDX file into an array in native byte order.

    Raises:
      ValueError: on a bad magic number, unknown type code, or a size that does not match the header.
    """
    if len(data) < 4:
        raise ValueError(f"{what} is too short for an IDX header ({len(data)} bytes; the magic number alone is 4)")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_DTYPES:
        raise ValueError(f"{what} is not an IDX file: magic number {data[:4].hex()} should be 0000TTNN with type "
                         f"code TT in {{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} and NN dimensions")
    if ndim == 0:
        raise ValueError(f"{what}: IDX header says 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{what} is truncated inside its header: {ndim} dimensions need {header} bytes, "
                         f"the file has {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{what} is {problem}: header says {dtype.name} {dims} = {expected} bytes with the header, "
                         f"the file has {len(data)}. Download it again")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (gzipped or not) into a numpy array (uint8 for MNIST).

    Example:
      >>> images = read_idx('t10k-images-idx3-ubyte.gz')  # doctest: +SKIP
      >>> images.shape, images.dtype                        # doctest: +SKIP
      ((10000, 28, 28), dtype('uint8'))
    """
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path} (expected an IDX file such as "
                                f"train-images-idx3-ubyte[.gz], from {_MNIST_URL})")
    array = parse_idx(_read_bytes(path), what=str(path))
    check_finite(array, str(path))
    return array


def idx_source(images, seed: int, labels=None, name: str | None = None, resolution: int | None = None,
               channels: int | None = None, crop: str | None = None) -> ArraySource:
    """A source over an IDX image file (N, H, W) uint8 and an optional IDX label file (N,).

    Args:
      images: path to the images IDX file (e.g. ``train-images-idx3-ubyte.gz``).
      seed: data seed.
      labels: path to the labels IDX file, or None for an unlabelled source.
      name: for logs (default: the image file's name).
      resolution, channels, crop: image options (:class:`jaxgan.data.images.ImageOptions`).
    """
    x = read_idx(images)
    if x.ndim not in (3, 4) or x.dtype != np.uint8:
        raise ValueError(f"{images}: expected uint8 images shaped (N, H, W) or (N, H, W, C), got {x.dtype} {x.shape}")
    y = None
    if labels is not None:
        y = read_idx(labels)
        if len(y) != len(x):
            raise ValueError(f"{labels} has {len(y)} labels but {images} has {len(x)} images: they must match")
    return ArraySource(x, y, seed=seed, name=name or pathlib.Path(images).name.split(".")[0],
                       options=ImageOptions(resolution=resolution, channels=channels, crop=crop))


MNIST_SPLITS = {"test": "t10k", "t10k": "t10k", "train": "train"}


def find_mnist_files(directory, split: str = "train") -> tuple[pathlib.Path, pathlib.Path]:
    """Paths of ``{prefix}-images-idx3-ubyte[.gz]`` and ``{prefix}-labels-idx1-ubyte[.gz]`` in ``directory``.

    ``prefix`` is ``t10k`` for the test split and ``train`` for the training split; the dotted variant
    (``t10k-images.idx3-ubyte``) is also accepted.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"MNIST split must be one of {sorted(MNIST_SPLITS)}, got {split!r}")
    directory, prefix = pathlib.Path(directory).expanduser(), MNIST_SPLITS[split]
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory} (expected a directory with "
                                f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz)")
    found = []
    for kind, dims in (("images", 3), ("labels", 1)):
        names = [f"{prefix}-{kind}{sep}idx{dims}-ubyte{ext}" for sep in ("-", ".") for ext in (".gz", "")]
        path = next((directory / n for n in names if (directory / n).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"MNIST {split} {kind} not found in {directory}: looked for {', '.join(names)}. "
                                    f"Download them from {_MNIST_URL}")
        found.append(path)
    return found[0], found[1]


def mnist_idx(dir, seed: int, split: str = "train", resolution: int | None = None,  # noqa: A002 (config key)
              channels: int | None = None, crop: str | None = None) -> ArraySource:
    """MNIST from its original IDX files in ``dir`` (split ``'train'`` or ``'test'``), with labels.

    Example:
      >>> src = mnist_idx('../shared/data/mnist', seed=0, split='test')  # doctest: +SKIP
      >>> src.info  # doctest: +SKIP
      DataInfo(shape=(28, 28, 1), num_classes=10, kind='image', num_examples=10000, name='mnist_test')
    """
    images, labels = find_mnist_files(dir, split)
    return idx_source(images, seed, labels=labels, name=f"mnist_{'test' if split == 't10k' else split}",
                      resolution=resolution, channels=channels, crop=crop)
