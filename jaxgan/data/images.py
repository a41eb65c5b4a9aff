"""Image preprocessing, in one place: crop, resize, channel conversion, scaling to [-1, 1].

Every image source stores or decodes raw pixels (uint8 in [0, 255], or float in a stated range) and
calls :func:`preprocess` per batch, so one set of options means the same thing for every source:

* ``crop='center'``: take the largest centred square (before resizing), as is usual for CelebA or
  LSUN; ``None`` keeps the whole image.
* ``resolution``: resize to ``resolution x resolution`` with PIL's bilinear filter (antialiased when
  downsampling); ``None`` keeps the stored size.
* ``channels``: 1 or 3; grey -> RGB repeats the channel, RGB -> grey uses the ITU-R 601 luma weights
  (as PIL's ``convert('L')``); ``None`` keeps the stored channels.

uint8 images are kept uint8 as long as the options allow (:func:`stored_pixels`: crop, resize and
grey -> RGB all stay in uint8), so a batch can cross to the device in its stored bytes and become
floats inside the compiled step with :func:`uint8_to_unit`, the one formula host and device share.
"""
from __future__ import annotations

import dataclasses
import operator

import numpy as np
from PIL import Image

UINT8_RANGE = (0.0, 255.0)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class ImageOptions:
    """Options shared by every image source (see the module docstring)."""

    resolution: int | None = None
    channels: int | None = None
    crop: str | None = None

    def __post_init__(self):
        if self.resolution is not None:
            try:
                res = operator.index(self.resolution)
            except TypeError:
                raise TypeError(f"resolution must be an integer or None, got {self.resolution!r}") from None
            if res < 1:
                raise ValueError(f"resolution must be >= 1, got {res}")
            object.__setattr__(self, "resolution", res)
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (grey), 3 (RGB) or None (keep), got {self.channels!r}")
        if self.crop not in (None, "center"):
            raise ValueError(f"crop must be 'center' or None, got {self.crop!r}")

    def output_shape(self, height: int, width: int, channels: int) -> tuple[int, int, int]:
        """HWC shape of a preprocessed stored image of shape (height, width, channels)."""
        if self.crop == "center":
            height = width = min(height, width)
        if self.resolution is not None:
            height = width = self.resolution
        return (height, width, self.channels or channels)


def as_nhwc(images: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) with C in {1, 3} -> (N, H, W, C); anything else is an error."""
    if images.ndim == 3:
        return images[..., None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return images
    hint = ""
    if images.ndim == 4 and images.shape[1] in (1, 3):
        hint = " It looks channels-first (NCHW): transpose it with x.transpose(0, 2, 3, 1)."
    elif images.ndim == 4 and images.shape[-1] == 4:
        hint = " It has 4 channels (RGBA?): drop the alpha channel with x[..., :3]."
    raise ValueError(f"{what} must be images shaped (N, H, W) or (N, H, W, C) with C = 1 or 3 "
                     f"(NHWC), got shape {images.shape}.{hint}")


def check_value_range(images: np.ndarray, value_range, what: str) -> tuple[float, float]:
    """The pixel range of ``images``, validated against the data.

    uint8 is [0, 255]. Other dtypes use ``value_range`` when given, else [0, 255] for integers and
    [0, 1] for floats; values outside the range are an error (never silently clipped).
    """
    if images.dtype == np.uint8:
        if value_range is not None and tuple(value_range) != UINT8_RANGE:
            raise ValueError(f"{what} is uint8, so its range is [0, 255]; got value_range={value_range}")
        return UINT8_RANGE
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
        raise TypeError(f"{what} must hold uint8 or float pixels, got dtype {images.dtype}")
    if value_range is None:
        value_range = UINT8_RANGE if np.issubdtype(images.dtype, np.integer) else (0.0, 1.0)
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    if images.size:
        found_lo, found_hi = float(np.min(images)), float(np.max(images))
        if not (np.isfinite(found_lo) and np.isfinite(found_hi)):
            raise ValueError(f"{what} contains NaN or infinite values")
        if found_lo < lo or found_hi > hi:
            raise ValueError(
                f"{what} ({images.dtype}) has values in [{found_lo:g}, {found_hi:g}] but the assumed range is "
                f"[{lo:g}, {hi:g}]: pass value_range=(low, high) with the range it was saved in, e.g. "
                f"(-1, 1) or (0, 255)")
    return lo, hi


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """One HWC image -> (size, size, C), PIL bilinear (antialiased), same dtype family."""
    if image.dtype == np.uint8:
        mode = "L" if image.shape[-1] == 1 else "RGB"
        pil = Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode)
        out = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
        return out.reshape(size, size, image.shape[-1])
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F")
                        .resize((size, size), Image.Resampling.BILINEAR)) for c in range(image.shape[-1])]
    return np.stack(chans, axis=-1)


def uint8_to_unit(x, xp=np):
    """uint8 pixels in [0, 255] -> float32 in [-1, 1]: ``(x - 127.5) * float32(1 / 127.5)``.

    The one conversion of uint8 pixels, on the host (``xp=numpy``) and inside the compiled step
    (``xp=jax.numpy``), and the same bits on both: ``x - 127.5`` is exact in float32, so the result
    has one rounding (the multiply), which no backend can fuse into anything else. (The earlier host
    formula ``x * float32(2 / 255) - 1`` is a multiply-add that XLA contracts into an FMA, so it gives
    other bits on the device; the two differ by at most 1 ulp, 6e-8, at 222 of the 256 values.)

    Args:
      x: integer array of pixel values in [0, 255] (any shape).
      xp: ``numpy`` or ``jax.numpy``.

    Returns:
      float32 array of ``x``'s shape, in [-1, 1] (0 -> -1, 255 -> 1 exactly).

    Example:
      >>> uint8_to_unit(np.array([0, 255], np.uint8)).tolist()
      [-1.0, 1.0]
    """
    y = (x.astype(xp.float32) - xp.float32(127.5)) * xp.float32(1.0 / 127.5)
    return xp.clip(y, xp.float32(-1.0), xp.float32(1.0))  # a no-op for 0..255; kept as a guarantee


def keeps_uint8(options: ImageOptions, stored_channels: int) -> bool:
    """Whether uint8 images with ``stored_channels`` stay uint8 under ``options``.

    Everything but RGB -> grey does: its luma weights need floats (rounding them to uint8 would
    change the values), so that one conversion is done on the host in float32.
    """
    return not (options.channels == 1 and stored_channels == 3)


def stored_pixels(images: np.ndarray, options: ImageOptions) -> np.ndarray:
    """uint8 NHWC images -> uint8 NHWC, cropped, resized and grey -> RGB as ``options`` say.

    ``uint8_to_unit(stored_pixels(x, o))`` equals ``preprocess(x, o)`` bit for bit.

    Args:
      images: (N, H, W, C) uint8, C in {1, 3}, with ``keeps_uint8(options, C)``.
      options: the crop / resolution / channels to apply.

    Returns:
      uint8 array of shape (N,) + options.output_shape(H, W, C).
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"stored_pixels expects uint8 NHWC images with 1 or 3 channels, got "
                         f"{images.dtype} {images.shape}")
    if not keeps_uint8(options, images.shape[-1]):
        raise ValueError("RGB -> grey (channels=1 on RGB images) is computed in float32: use preprocess")
    images = _crop_resize(images, options)
    if options.channels == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def _center_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred square of a height x width image."""
    m = min(height, width)
    top, left = (height - m) // 2, (width - m) // 2
    return left, top, left + m, top + m


def _crop_resize(images: np.ndarray, options: ImageOptions) -> np.ndarray:
    """Centre crop and resize (the spatial options), in the images' dtype family."""
    n, h, w, c = images.shape
    if options.crop == "center" and h != w:
        left, top, right, bottom = _center_box(h, w)
        images = images[:, top:bottom, left:right]
        h = w = right - left
    if options.resolution is not None and (h, w) != (options.resolution,) * 2:
        if images.dtype != np.uint8:
            images = images.astype(np.float32, copy=False)
        out = np.empty((n, options.resolution, options.resolution, c), images.dtype)
        for i, image in enumerate(images):  # written in place: no list of images to stack
            out[i] = _resize(image, options.resolution)
        images = out
    return images


def crop_resize_image(image: Image.Image, options: ImageOptions) -> Image.Image:
    """One decoded PIL image (mode ``L`` or ``RGB``), centre-cropped and resized as ``options`` say.

    The pixels of :func:`stored_pixels` on the image's array, without leaving PIL: the crop is
    ``Image.crop`` of the same square (the same pixels), the resize the same PIL call on the same
    image, so only the final array is made (a decoding source's per-image work stays in PIL's C
    code, which releases the GIL, instead of three copies between PIL and numpy). The crop comes
    first, not as ``resize(box=...)``: with a box, PIL's filter also reads the pixels just outside
    it, which changes the edge rows (``tests/test_data.py`` compares the two paths).

    Args:
      image: a loaded PIL image in mode ``L`` or ``RGB``.
      options: the crop and resolution to apply (channels are the caller's mode conversion).

    Returns:
      A PIL image of ``options.output_shape``'s height and width (``image`` itself when nothing
      changes).
    """
    if options.crop == "center" and image.width != image.height:
        image = image.crop(_center_box(image.height, image.width))
    size = options.resolution
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image


def preprocess(images: np.ndarray, options: ImageOptions, value_range=UINT8_RANGE) -> np.ndarray:
    """Raw NHWC pixels -> NHWC float32 in [-1, 1], cropped, resized and channel-converted.

    Args:
      images: (N, H, W, C) array, C in {1, 3}; uint8 or float.
      options: the crop / resolution / channels to apply.
      value_range: (low, high) of the stored pixels; low maps to -1, high to +1.

    Returns:
      float32 array of shape (N,) + options.output_shape(H, W, C), values in [-1, 1].

    Example:
      >>> x = np.full((2, 8, 6, 1), 255, np.uint8)
      >>> preprocess(x, ImageOptions(resolution=4, channels=3, crop='center')).shape
      (2, 4, 4, 3)
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"preprocess expects NHWC images with 1 or 3 channels, got shape {images.shape}")
    c = images.shape[-1]
    if images.dtype == np.uint8 and keeps_uint8(options, c):
        return uint8_to_unit(stored_pixels(images, options))
    images = _crop_resize(images, options)
    if images.dtype == np.uint8:
        x = uint8_to_unit(images)
    else:
        lo, hi = value_range
        x = images.astype(np.float32)
        x = (x - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
    if options.channels == 3 and c == 1:
        x = np.repeat(x, 3, axis=-1)
    elif options.channels == 1 and c == 3:
        x = (x @ _LUMA)[..., None]
    return np.clip(x, -1.0, 1.0, out=x)  # x is a fresh array; clipping only removes rounding error
