"""Fréchet distance between feature distributions (FID), with streaming feature statistics.

FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium") fits a Gaussian to the features of real and of generated images and reports the
Fréchet (2-Wasserstein) distance between the two Gaussians::

    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

:class:`FeatureStats` accumulates the mean and covariance batch by batch: each batch's mean and
centred sum of outer products are computed by a jitted function on the accelerator (also when the
batch is sharded over devices: the jit does the cross-device reduction), and batches are merged
exactly on the host in float64 (Chan et al., 1979, "Updating formulae and a pairwise algorithm for
computing sample variances"). Statistics serialise to a dict of numpy arrays, so reference statistics
of a data set can be cached as ``.npz``::

    stats = FeatureStats.empty(2048)
    for images in batches:
        stats = stats.update(extract(images))
    np.savez("cifar10_train_stats.npz", **stats.to_dict())
    ref = FeatureStats.from_dict(np.load("cifar10_train_stats.npz"))
    fid = frechet_distance(stats.mean, stats.cov, ref.mean, ref.cov)
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

HIGHEST = jax.lax.Precision.HIGHEST


@jax.jit
def batch_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and centred sum of outer products of one batch of feature vectors.

    mean = (1/n) sum_i x_i,   M2 = sum_i (x_i - mean)(x_i - mean)^T

    Runs where ``x`` lives; on an array sharded over devices along the batch axis the compiler
    inserts the cross-device sums. Computed in ``x``'s floating dtype (float32, or float64 under
    ``jax.enable_x64``) with full-precision matmuls; centring on the batch mean first keeps float32
    from cancelling.

    Args:
      x: (n, d) features, n >= 1.

    Returns:
      ``(mean, m2)`` of shapes (d,) and (d, d).
    """
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    return mean, jnp.matmul(xc.T, xc, precision=HIGHEST)


def _to_host(a: Any) -> np.ndarray:
    """A device or host array as a float64 numpy array (a replicated multi-host array: its local copy)."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        if not a.is_fully_replicated:
            raise ValueError("batch statistics came back sharded across processes; expected them replicated")
        a = a.addressable_data(0)
    return np.asarray(a, dtype=np.float64)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: no elementwise ==
class FeatureStats:
    """Count, mean and centred sum of outer products (M2) of feature vectors, in float64 on the host.

    Immutable: :meth:`update` and :meth:`merge` return new statistics. Merging is exact (Chan et al.,
    1979)::

        n = n_a + n_b,  delta = mean_b - mean_a
        mean = mean_a + delta n_b / n
        M2 = M2_a + M2_b + delta delta^T n_a n_b / n

    Attributes:
      count: number of feature vectors seen.
      mean: (d,) float64 mean.
      m2: (d, d) float64 sum of outer products of the centred features.

    Example:
      >>> s = FeatureStats.empty(3).update(np.ones((4, 3))).update(np.zeros((2, 3)))
      >>> s.count, s.mean.round(3).tolist()
      (6, [0.667, 0.667, 0.667])
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return int(self.mean.shape[0])

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance M2 / (count - 1), as ``np.cov(features, rowvar=False)``."""
        if self.count < 2:
            raise ValueError(f"the covariance needs at least 2 feature vectors, have {self.count}")
        return self.m2 / (self.count - 1)

    @classmethod
    def empty(cls, dim: int) -> "FeatureStats":
        """Statistics of no features, of dimension ``dim``."""
        if int(dim) < 1:
            raise ValueError(f"feature dimension must be >= 1, got {dim}")
        return cls(0, np.zeros(int(dim)), np.zeros((int(dim), int(dim))))

    @classmethod
    def from_features(cls, features: Any) -> "FeatureStats":
        """Statistics of one (n, d) array of features."""
        return cls.empty(np.shape(features)[-1]).update(features)

    def update(self, features: Any) -> "FeatureStats":
        """These statistics with one more (n, d) batch of features (numpy or jax, sharded or not).

        The batch moments are computed on the batch's device(s) by :func:`batch_moments`, in its dtype
        (float32 normally; float64 when it is float64 under ``jax.enable_x64``), then merged in float64.
        """
        if np.ndim(features) != 2:
            raise ValueError(f"features must be (batch, dim), got shape {np.shape(features)}")
        n, d = np.shape(features)
        if d != self.dim:
            raise ValueError(f"features have dimension {d} but these statistics have {self.dim}")
        if n == 0:
            return self
        mean, m2 = batch_moments(features if isinstance(features, jax.Array) else jnp.asarray(features))
        return self.merge(FeatureStats(int(n), _to_host(mean), _to_host(m2)))

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """The statistics of both sets of features together (exact, order-independent up to rounding)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / n)
        return FeatureStats(n, mean, m2)

    def to_dict(self) -> dict[str, np.ndarray]:
        """``{'count', 'mean', 'm2'}`` as numpy arrays, e.g. for ``np.savez(path, **stats.to_dict())``."""
        return {"count": np.asarray(self.count, np.int64), "mean": self.mean.copy(), "m2": self.m2.copy()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureStats":
        """Inverse of :meth:`to_dict` (also accepts the ``NpzFile`` that ``np.load`` returns)."""
        missing = {"count", "mean", "m2"} - set(d.keys())
        if missing:
            raise KeyError(f"feature statistics need keys count, mean and m2; missing {sorted(missing)}")
        mean = np.asarray(d["mean"], np.float64)
        m2 = np.asarray(d["m2"], np.float64)
        if mean.ndim != 1 or m2.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"inconsistent shapes: mean {mean.shape}, m2 {m2.shape}")
        return cls(int(np.asarray(d["count"])), mean, m2)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's matrix square root with its singular-matrix warning silenced (we check finiteness)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(a)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al., 2017).

    FD = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^{1/2})

    In float64 with ``scipy.linalg.sqrtm``, handled as pytorch-fid and TTUR do: when the square root
    of the product is not finite (a singular product), ``eps * I`` is added to both covariances and
    the root retaken; a complex root whose diagonal's imaginary part is within 1e-3 of zero is
    rounded to its real part, and a larger imaginary part raises (the inputs are not covariances).

    Args:
      mu1, mu2: (d,) means.
      sigma1, sigma2: (d, d) covariances.
      eps: diagonal offset for the singular-product retry.

    Returns:
      The distance, a Python float.

    Example:
      >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 (2 - 1)^2
      4.0
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"means have different shapes: {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}) to match the means, got {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: the product of the covariances is singular; adding {eps} to their diagonals")
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError(f"the square root of the covariance product is not finite even with eps={eps}: "
                             "check the features for NaN/inf, or pass a larger eps")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"the square root of the covariance product has an imaginary component of "
                             f"{np.max(np.abs(covmean.imag)):.3g}: sigma1 and sigma2 must be symmetric "
                             "positive semi-definite covariance matrices")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(real: Any, fake: Any, eps: float = 1e-6) -> float:
    """FID between two sets of features: :func:`frechet_distance` of their means and covariances.

    Args:
      real: (n, d) features of real examples, or their :class:`FeatureStats`.
      fake: (m, d) features of generated examples, or their :class:`FeatureStats`.
      eps: see :func:`frechet_distance`.

    Returns:
      The FID, a Python float.
    """
    s_real = real if isinstance(real, FeatureStats) else FeatureStats.from_features(real)
    s_fake = fake if isinstance(fake, FeatureStats) else FeatureStats.from_features(fake)
    return frechet_distance(s_real.mean, s_real.cov, s_fake.mean, s_fake.cov, eps=eps)
