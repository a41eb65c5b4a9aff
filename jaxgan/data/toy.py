"""Two-dimensional toy data: mixtures of isotropic Gaussians (the mode-collapse benchmarks).

* ``ring8``: 8 Gaussians evenly spaced on a circle of radius 2, std 0.02 (the ring of Unrolled GANs,
  Metz et al., 2017, used by VEEGAN and PacGAN with slightly different radius/std).
* ``grid25``: 25 Gaussians centred at {-4, -2, 0, 2, 4}^2, std 0.05 (VEEGAN, Srivastava et al., 2017;
  PacGAN, Lin et al., 2018).

The centres (mode k of the ring at angle 2 pi k / 8; the grid first-coordinate major) and std are
exported for the evaluation and match ``jaxgan.eval.modes`` centre for centre.

The stream is infinite and example ``j`` is a pure function of ``(seed, j)``: its three uniform
draws (component, two Box-Muller inputs) are outputs ``3j+1 .. 3j+3`` of a SplitMix64 counter
generator keyed by the seed, computed vectorised in numpy. So example ``j`` is the same whichever
batch it lands in.
"""
from __future__ import annotations

import itertools

import numpy as np

from jaxgan.data.base import DataInfo, check_range, check_seed


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


RING8_RADIUS = 2.0
RING8_STD = 0.02
RING8_CENTRES = _read_only(np.array(
    [[RING8_RADIUS * np.cos(2 * np.pi * k / 8), RING8_RADIUS * np.sin(2 * np.pi * k / 8)] for k in range(8)]))

GRID25_STD = 0.05
GRID25_CENTRES = _read_only(np.array(list(itertools.product((-4.0, -2.0, 0.0, 2.0, 4.0), repeat=2))))

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 output function (a bijective 64-bit mixer), on uint64 arrays."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def counter_uniforms(seed: int, index: np.ndarray, draws: int) -> np.ndarray:
    """Uniforms in [0, 1) that depend only on ``(seed, index, draw)``: shape ``index.shape + (draws,)``.

    Draw ``k`` of example ``j`` is SplitMix64 output number ``draws * j + k + 1`` of the stream whose
    state starts at ``mix64(seed)``; 53 random bits each.
    """
    key = _mix64(np.array([seed], dtype=np.uint64))
    with np.errstate(over="ignore"):
        counter = index.astype(np.uint64)[..., None] * np.uint64(draws) + np.arange(1, draws + 1, dtype=np.uint64)
        bits = _mix64(key + counter * _GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


class GaussianMixture:
    """An infinite stream of points from an equal-weight mixture of isotropic Gaussians.

    Args:
      centres: (K, D) component means.
      std: the common standard deviation.
      seed: data seed (non-negative integer).
      name: for logs.
      with_labels: also return the component index as ``'label'`` (num_classes = K).

    Example:
      >>> src = GaussianMixture(RING8_CENTRES, RING8_STD, seed=0, name='ring8')
      >>> src.get_batch(0, 4)['x'].shape
      (4, 2)
    """

    def __init__(self, centres, std: float, seed: int, name: str = "gaussian_mixture", with_labels: bool = False):
        centres = np.asarray(centres, dtype=np.float64)
        if centres.ndim != 2 or len(centres) == 0:
            raise ValueError(f"centres must be a (K, D) array with K >= 1, got shape {centres.shape}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.centres = _read_only(centres.copy())
        self.std = float(std)
        self.seed = check_seed(seed)
        self.with_labels = bool(with_labels)
        self.info = DataInfo(shape=(centres.shape[1],), num_classes=len(centres) if with_labels else None,
                             kind="points", num_examples=None, name=name)

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """Examples ``start .. start+size-1``: ``{'x': (size, D) float32[, 'label': (size,) int32]}``."""
        start, size = check_range(start, size)
        d = self.centres.shape[1]
        u = counter_uniforms(self.seed, np.arange(start, start + size, dtype=np.uint64), 1 + d + d % 2)
        comp = np.minimum((u[:, 0] * len(self.centres)).astype(np.int64), len(self.centres) - 1)
        # Box-Muller: pairs (u1, u2) -> two independent standard normals.
        u1, u2 = u[:, 1::2], u[:, 2::2]
        r = np.sqrt(-2.0 * np.log1p(-u1))
        normals = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1)[:, :d]
        batch = {"x": (self.centres[comp] + self.std * normals).astype(np.float32)}
        if self.with_labels:
            batch["label"] = comp.astype(np.int32)
        return batch


def ring8(seed: int, with_labels: bool = False) -> GaussianMixture:
    """8 Gaussians on a circle of radius 2, std 0.02 (Unrolled GANs, Metz et al., 2017)."""
    return GaussianMixture(RING8_CENTRES, RING8_STD, seed, name="ring8", with_labels=with_labels)


def grid25(seed: int, with_labels: bool = False) -> GaussianMixture:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 (VEEGAN 2017; PacGAN, Lin et al., 2018)."""
    return GaussianMixture(GRID25_CENTRES, GRID25_STD, seed, name="grid25", with_labels=with_labels)
