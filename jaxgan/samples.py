"""Sample images for people: tiled grids, PNG files and 2-D scatter plots.

Everything here is host-side numpy; matplotlib is used through ``Figure`` and ``FigureCanvasAgg``
directly, so it never opens a window and never touches pyplot's global state or backend.
"""
from __future__ import annotations

import math
import os
import pathlib

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Maps floats in [-1, 1] to uint8 in [0, 255] (clipped, rounded; NaN -> 128). uint8 passes through."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    x = np.nan_to_num(images.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def image_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tiles a batch of images into one uint8 image, row by row.

    Args:
      images: (N, H, W, C) floats in [-1, 1] (clipped) or uint8, C in {1, 3}.
      nrow: images per row; default ``ceil(sqrt(N))``. Cells past N are left at ``pad_value``.
      padding: pixels between neighbouring tiles (none around the border).
      pad_value: uint8 value of the padding.

    Returns:
      uint8 array (rows*H + (rows-1)*padding, nrow*W + (nrow-1)*padding, C), rows = ceil(N / nrow).
      The channel count is kept: grayscale stays (.., .., 1) (:func:`save_png` writes it as an 'L'
      PNG, the TensorBoard writer as a grayscale image).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"image_grid needs a non-empty (N, H, W, C) batch with C = 1 or 3, got shape "
                         f"{images.shape}: add a channel axis with x[..., None] for (N, H, W) grayscale")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, h, w, c = images.shape
    nrow = min(nrow or math.ceil(math.sqrt(n)), n)
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    rows = math.ceil(n / nrow)
    grid = np.full((rows * h + (rows - 1) * padding, nrow * w + (nrow - 1) * padding, c), pad_value, np.uint8)
    for i, image in enumerate(to_uint8(images)):
        r, col = divmod(i, nrow)
        y, x = r * (h + padding), col * (w + padding)
        grid[y:y + h, x:x + w] = image
    return grid


def spread(x: np.ndarray, cells: int = 8) -> float:
    """How much a set of samples varies: the standard deviation across the set at each position,
    averaged over positions.

    Images (N, H, W, C) are average-pooled to about ``cells`` x ``cells`` first, so that per-pixel
    noise (StyleGAN2's noise inputs, dithering) does not pass for variety: what is measured is where
    the strokes and blobs are. Points (N, D) are taken as they are.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 4:
        n, h, w, c = x.shape
        fh, fw = max(1, h // cells), max(1, w // cells)
        x = x[:, :h - h % fh, :w - w % fw].reshape(n, h // fh, fh, w // fw, fw, c).mean(axis=(2, 4))
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"spread needs at least two samples shaped (N, ...), got shape {x.shape}")
    return float(x.reshape(x.shape[0], -1).std(axis=0).mean())


def diversity(samples: np.ndarray, real: np.ndarray, cells: int = 8) -> float:
    """``spread(samples) / spread(real)``: about 1 when the generator's samples vary as much as the
    data, near 0 when it draws one thing for every latent (mode collapse). The runner logs it as
    ``samples/diversity`` on every sample step (the grid's latents against as many real examples).
    """
    reference = spread(real, cells)
    return spread(samples, cells) / reference if reference > 0 else float("nan")


def save_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
    """Writes a uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image as a PNG, making parent dirs."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"save_png needs uint8 pixels, got {image.dtype}: convert with to_uint8 or image_grid")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"save_png needs (H, W[, 1|3|4]) pixels, got shape {image.shape}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def _scatter_figure(samples, real, *, title, lim, size_inches, dpi):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = np.asarray(samples, np.float32).reshape(-1, 2)
    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if real is not None:
        real = np.asarray(real, np.float32).reshape(-1, 2)
        ax.scatter(real[:, 0], real[:, 1], s=4, c="0.6", alpha=0.5, linewidths=0, label="real")
    ax.scatter(samples[:, 0], samples[:, 1], s=4, c="tab:blue", alpha=0.6, linewidths=0, label="generated")
    if lim is not None:
        lo, hi = (-lim, lim) if np.isscalar(lim) else lim
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    if real is not None:
        ax.legend(loc="upper right", fontsize="small", markerscale=3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig, canvas


def scatter_plot(samples: np.ndarray, real: np.ndarray | None, path: str | os.PathLike, *,
                 title: str | None = None, lim: float | tuple[float, float] | None = None,
                 size_inches: float = 4.0, dpi: int = 100) -> None:
    """Saves a scatter plot of 2-D samples (blue) over real points (grey), equal aspect, as a PNG.

    Args:
      samples: (N, 2) generated points.
      real: (M, 2) real points, or None.
      path: output file; parent dirs are made.
      title: optional title, e.g. ``"step 2000"``.
      lim: axis limits, ``L`` for [-L, L] or ``(lo, hi)``, same on both axes; None: automatic. Fix it
        for plots that are compared across steps.
    """
    fig, _ = _scatter_figure(samples, real, title=title, lim=lim, size_inches=size_inches, dpi=dpi)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def scatter_image(samples: np.ndarray, real: np.ndarray | None = None, *, title: str | None = None,
                  lim: float | tuple[float, float] | None = None, size_inches: float = 4.0,
                  dpi: int = 100) -> np.ndarray:
    """The :func:`scatter_plot` figure as a uint8 (H, W, 3) array (for :meth:`MetricWriter.write_images`)."""
    fig, canvas = _scatter_figure(samples, real, title=title, lim=lim, size_inches=size_inches, dpi=dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
