"""Mode-collapse metrics of the 2-D toy mixtures: modes covered, sample quality, KL to uniform.

The benchmarks (VEEGAN, Srivastava et al., 2017, "VEEGAN: Reducing Mode Collapse in GANs using
Implicit Variational Learning"; PacGAN, Lin et al., 2018, "PacGAN: The power of two samples in
generative adversarial networks"):

* ring: 8 Gaussians evenly spaced on a circle of radius 2, std 0.02 (the ring of Metz et al., 2017,
  "Unrolled GANs"; VEEGAN's notebook uses std 0.01 and PacGAN's code radius 1, std 0.01).
* grid: 25 Gaussians centred at {-4, -2, 0, 2, 4}^2, std 0.05 (VEEGAN and PacGAN's configs).

These match ``jaxgan.data.toy`` (``RING8_CENTRES``, ``GRID25_CENTRES``), centre for centre.

Following VEEGAN and PacGAN, a sample is *high quality* when it lies within 3 standard deviations of
its nearest centre, and modes are counted from high-quality samples only, each assigned to its nearest
centre. PacGAN's code counts a mode as soon as one high-quality sample lands in it; here a mode must
hold at least ``min_share`` of its uniform share of the samples (``min_share * n_samples /
num_modes``, and at least one), so that a single stray sample does not count as a captured mode
(``min_share=0`` gives PacGAN's count).
"""
from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

RING_STD = 0.02
GRID_STD = 0.05
KL_EPS = 1e-12


def ring_centers(n: int = 8, radius: float = 2.0) -> np.ndarray:
    """Centres of ``n`` modes evenly spaced on a circle: (n, 2), mode k at angle 2 pi k / n.

    Example:
      >>> ring_centers(4, 1.0).round(6).tolist()
      [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-0.0, -1.0]]
    """
    angles = 2.0 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers(n: int = 5, spacing: float = 2.0) -> np.ndarray:
    """Centres of an ``n x n`` grid of modes centred on the origin: (n^2, 2), first coordinate major.

    With the defaults: {-4, -2, 0, 2, 4}^2.
    """
    coords = (np.arange(n) - (n - 1) / 2.0) * spacing
    return np.array(list(itertools.product(coords, coords)), dtype=np.float64)


@jax.jit
def mode_counts(samples: jax.Array, centers: jax.Array, radius: float) -> jax.Array:
    """Number of high-quality samples whose nearest centre is each mode.

    counts_k = #{x : argmin_c ||x - c|| = k and min_c ||x - c|| < radius}

    Args:
      samples: (n, D) points.
      centers: (K, D) mode centres.
      radius: the high-quality distance (``threshold_std * std``).

    Returns:
      (K,) int32 counts; their sum is the number of high-quality samples.
    """
    d2 = jnp.sum((samples[:, None, :] - centers[None, :, :]) ** 2, axis=-1)  # (n, K)
    nearest = jnp.argmin(d2, axis=1)
    good = jnp.min(d2, axis=1) < radius ** 2
    return jax.ops.segment_sum(good.astype(jnp.int32), nearest, num_segments=centers.shape[0])


def kl_to_uniform(counts: Any, eps: float = KL_EPS) -> float:
    """KL(p || uniform) of the histogram ``counts`` over K modes.

    KL = sum_k p_k log((p_k + eps) K),  p_k = counts_k / sum(counts)

    ``eps`` keeps the log finite for empty modes, whose terms are then 0 (0 log 0 = 0); it moves the
    others by less than eps / p_k. 0 for a uniform histogram, log K when one mode holds everything;
    NaN for an empty histogram (no high-quality samples: the distribution over modes is undefined).
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts / total
    return float(np.sum(p * np.log((p + eps) * len(counts))))


def mode_metrics(samples: Any, centers: Any, std: float, *, threshold_std: float = 3.0,
                 min_share: float = 0.1) -> dict[str, Any]:
    """Modes covered, fraction of high-quality samples and KL to uniform (VEEGAN 2017, PacGAN 2018).

    A sample is high quality when ||x - c_nearest|| < threshold_std * std. With counts_k the
    high-quality samples nearest to mode k, n the number of samples and K the number of modes::

        modes_covered = #{k : counts_k >= max(1, min_share * n / K)}
        high_quality_fraction = sum_k counts_k / n
        kl_to_uniform = KL(counts / sum(counts) || uniform)   (see :func:`kl_to_uniform`)

    VEEGAN and PacGAN count modes from high-quality samples; the ``min_share`` guard keeps a single
    stray sample from counting as a mode (``min_share=0``: PacGAN's "at least one").

    Args:
      samples: (n, D) generated points.
      centers: (K, D) mode centres (:func:`ring_centers`, :func:`grid_centers`).
      std: the modes' standard deviation (``RING_STD`` 0.02, ``GRID_STD`` 0.05).
      threshold_std: high-quality radius in standard deviations.
      min_share: fraction of a mode's uniform share of the samples it needs to count as covered.

    Returns:
      ``{'modes_covered': int, 'num_modes': int, 'high_quality_fraction': float,
      'kl_to_uniform': float}``.

    Example:
      >>> mode_metrics(np.repeat(ring_centers(), 10, axis=0), ring_centers(), RING_STD)['modes_covered']
      8
    """
    samples = jnp.asarray(samples, jnp.float32)
    centers = jnp.asarray(centers, jnp.float32)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples (n, D) and centers (K, D) must share D, got {samples.shape} and {centers.shape}")
    n, k = samples.shape[0], centers.shape[0]
    if n == 0 or k == 0:
        raise ValueError(f"need at least one sample and one centre, got {n} and {k}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    counts = np.asarray(mode_counts(samples, centers, float(threshold_std * std)))
    covered = counts >= max(1.0, min_share * n / k)
    return {
        "modes_covered": int(covered.sum()),
        "num_modes": int(k),
        "high_quality_fraction": float(counts.sum()) / n,
        "kl_to_uniform": kl_to_uniform(counts),
    }
