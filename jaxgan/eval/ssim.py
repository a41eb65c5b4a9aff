"""PSNR and SSIM, the super-resolution metrics (numpy, per image, then averaged).

* PSNR = 10 log10(R^2 / MSE), R the data range (2 for jaxgan's [-1, 1] images, 255 for uint8).
* SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) with the paper's Gaussian window (11x11, sigma 1.5)
  and constants K1 = 0.01, K2 = 0.03::

      SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

  with C1 = (K1 R)^2, C2 = (K2 R)^2 and local (weighted, biased) means, variances and covariance.
  The map is computed where the window fits entirely ("valid", as scikit-image's
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
  crops its border) and averaged; colour images average over channels.
"""
from __future__ import annotations

import numpy as np

K1, K2 = 0.01, 0.03


def _as_nhwc(x, what: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x[None, :, :, None]
    elif x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{what}: expected images (H, W), (N, H, W) or (N, H, W, C), got shape {x.shape}")
    return x


def psnr(x, y, data_range: float = 2.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each image pair, in dB ((N,) array; inf for identical images).

    Args:
      x, y: images of the same shape: (H, W), (N, H, W) or (N, H, W, C).
      data_range: max - min of the pixel scale (2 for [-1, 1], 1 for [0, 1], 255 for uint8).
    """
    x, y = _as_nhwc(x, "psnr x"), _as_nhwc(y, "psnr y")
    if x.shape != y.shape:
        raise ValueError(f"psnr needs images of the same shape, got {x.shape} and {y.shape}")
    mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian weights of odd length ``size``."""
    if size % 2 == 0 or size < 1:
        raise ValueError(f"the SSIM window size must be odd and positive, got {size}")
    t = np.arange(size) - size // 2
    w = np.exp(-(t ** 2) / (2.0 * sigma ** 2))
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the H and W axes of (N, H, W, C) with the 1-D window ``w``."""
    k = len(w)
    h = sum(w[i] * x[:, i:x.shape[1] - k + 1 + i] for i in range(k))
    return sum(w[i] * h[:, :, i:h.shape[2] - k + 1 + i] for i in range(k))


def ssim(x, y, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Mean structural similarity of each image pair ((N,) array, 1 for identical images).

    Args:
      x, y: images of the same shape, (H, W), (N, H, W) or (N, H, W, C), H and W >= ``window``.
      data_range: max - min of the pixel scale (2 for [-1, 1]).
      window, sigma: the Gaussian window (11 and 1.5 in Wang et al. 2004).
    """
    x, y = _as_nhwc(x, "ssim x"), _as_nhwc(y, "ssim y")
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of the same shape, got {x.shape} and {y.shape}")
    if min(x.shape[1:3]) < window:
        raise ValueError(f"ssim with an {window}x{window} window needs images at least that large, got "
                         f"{x.shape[1]}x{x.shape[2]}: pass a smaller odd window=")
    w = gaussian_window(window, sigma)
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    var_x = _filter_valid(x * x, w) - mu_x ** 2
    var_y = _filter_valid(y * y, w) - mu_y ** 2
    cov = _filter_valid(x * y, w) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.mean(axis=(1, 2, 3))
