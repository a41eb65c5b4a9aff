"""Precision, recall, density and coverage of generated features against real ones, in blocks.

* Improved precision and recall (Kynkaanniemi et al., 2019, "Improved Precision and Recall Metric
  for Assessing Generative Models"), k = 3: the real manifold is the union of balls around each real
  feature with radius its distance to its k-th nearest real neighbour; precision is the fraction of
  fake features inside it, recall the fraction of real features inside the fake manifold.
* Density and coverage (Naeem et al., 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models"), k = 5: density counts how many real balls hold each fake feature, coverage is the
  fraction of real balls holding at least one fake.

With real features X_1..X_N, fake Y_1..Y_M, r_k(Z) the distance from Z to its k-th nearest neighbour
in its own set (the point itself excluded) and B(x, r) the ball of radius r about x::

    precision = (1/M) sum_j 1[exists i: ||Y_j - X_i|| <= r_k(X_i)]
    recall    = (1/N) sum_i 1[exists j: ||X_i - Y_j|| <= r_k(Y_j)]
    density   = (1/(k M)) sum_j sum_i 1[||Y_j - X_i|| < r_k(X_i)]
    coverage  = (1/N) sum_i 1[min_j ||X_i - Y_j|| < r_k(X_i)]

The comparisons follow each reference implementation: closed balls for precision and recall
(Kynkaanniemi et al.'s code and StyleGAN2-ADA), open balls for density and coverage (Naeem et al.'s
``prdc`` package); they differ only on exact distance ties.

Everything runs on the device with jnp, in blocks of rows (``block_size x N`` floats, never
``N x N``): the k-NN radii by ``lax.top_k`` per block, and one pass over all real/fake pairs
accumulating the four counts. Squared distances come first from the expansion
|a|^2 + |b|^2 - 2 a.b (full-precision matmuls, after centring both sets on the real mean), whose
rounding error is about eps (|a|^2 + |b|^2): far larger than the distance itself where the k-NN balls
are small against the norms (low-dimensional or clustered data, e.g. the ring of 8 Gaussians, where
float32 expansions moved density by 2%). Every distance a result depends on is therefore made exact
from differences of the features as given (not centred: centring rounds each coordinate by as much
as such distances), sum_d (a_d - b_d)^2, which float32 computes to a few ulps of the distance itself:

* k-NN radii: each row's ``CANDIDATES`` nearest rows by the expansion are recomputed from
  differences and the radii taken from those; a block where some row's next-nearest could, within
  the rounding bound (:func:`rounding_bound`), be nearer than its k-th exact one recomputes all its
  distances from differences (``lax.cond``);
* the cross pass: every pair whose expansion lies within its rounding bound of a radius it is
  compared with is recomputed from differences (up to ``CANDIDATES`` a row: ~1 a row for 2048-d
  Inception-like features; a row with more makes its block exact throughout).

So float32 gives the counts of exact distances (those of float64 inputs, and of the ``prdc``
package) at the cost of the matmul plus ``CANDIDATES`` exact distances a row.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

HIGHEST = jax.lax.Precision.HIGHEST
DEFAULT_BLOCK_SIZE = 1024
CANDIDATES = 16  # distances a row recomputes exactly from differences (its nearest, or its unsure ones)
_EXACT_ROWS = 256  # rows at a time in exact recomputations (memory: _EXACT_ROWS x max(CANDIDATES, n) x d)


def squared_distances(a: jax.Array, b: jax.Array, b_sq_norms: jax.Array | None = None) -> jax.Array:
    """||a_i - b_j||^2 for all pairs: (m, d), (n, d) -> (m, n), clipped at 0 against rounding."""
    if b_sq_norms is None:
        b_sq_norms = jnp.sum(b * b, axis=1)
    ab = jnp.matmul(a, b.T, precision=HIGHEST)
    return jnp.maximum(jnp.sum(a * a, axis=1)[:, None] + b_sq_norms[None, :] - 2.0 * ab, 0.0)


def exact_squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """||a_i - b_j||^2 from differences, sum_d (a_id - b_jd)^2: (m, d), (n, d) -> (m, n).

    Accurate to a few ulps of the distance itself (the expansion in :func:`squared_distances` only to
    a few ulps of |a|^2 + |b|^2), at elementwise rather than matmul cost; rows of ``a`` a few at a
    time, so memory stays ``_EXACT_ROWS x n``.
    """
    return jax.lax.map(lambda row: jnp.sum(jnp.square(row[None, :] - b), axis=1), a, batch_size=_EXACT_ROWS)


def _exact_at(a: jax.Array, b: jax.Array, idx: jax.Array) -> jax.Array:
    """||a_i - b_idx[i, c]||^2 from differences: (m, d), (n, d), (m, c) int -> (m, c)."""
    def row(a_i, idx_i):
        return jnp.sum(jnp.square(a_i[None, :] - b[idx_i]), axis=1)

    return jax.lax.map(lambda args: row(*args), (a, idx), batch_size=_EXACT_ROWS)


def rounding_bound(a_sq_norms: jax.Array, b_sq_norms: jax.Array, dim: int) -> jax.Array:
    """A bound on the rounding error of :func:`squared_distances`: ``tau (|a_i|^2 + |b_j|^2)``, (m, n).

    tau = 4 (2 + sqrt(d)) u, u the unit roundoff of the dtype: four times the typical error of
    d-term dot products; measured errors on CPU were 4.4 u (d = 2) to 10.5 u (d = 2048) times
    |a|^2 + |b|^2, well inside tau (14 u and 189 u).
    """
    u = jnp.finfo(a_sq_norms.dtype).eps / 2
    tau = 4.0 * (2.0 + float(np.sqrt(dim))) * u
    return tau * (a_sq_norms[:, None] + b_sq_norms[None, :])


def _as_blocks(x: jax.Array, block_size: int) -> jax.Array:
    """(n, d) -> (ceil(n / b), b, d), zero-padded at the end."""
    n = x.shape[0]
    nb = -(-n // block_size)
    return jnp.pad(x, ((0, nb * block_size - n), (0, 0))).reshape(nb, block_size, x.shape[1])


@functools.partial(jax.jit, static_argnames=("k_max", "block_size"))
def _knn_sq_distances(x: jax.Array, center: jax.Array, *, k_max: int, block_size: int) -> jax.Array:
    """Squared distances from each row to its 0..k_max-th nearest rows (0-th: itself), (n, k_max + 1),
    exact: the ``CANDIDATES`` nearest by the expansion (of the rows less ``center``) are recomputed
    from differences of the rows as given (centring rounds each coordinate: an error as large as the
    distances where they are small), and a block where a row's next-nearest by the expansion could
    be nearer than its k_max-th exact one (within the rounding bound) recomputes all its distances so."""
    n, dim = x.shape
    xc = x - center
    sq = jnp.sum(xc * xc, axis=1)
    cands = min(max(CANDIDATES, k_max + 1), n)

    def block(args):
        xb, xcb = args
        d2 = squared_distances(xcb, xc, sq)
        neg, idx = jax.lax.top_k(-d2, cands)
        exact = jnp.sort(_exact_at(xb, x, idx), axis=1)[:, : k_max + 1]
        if cands < n:  # every other row is farther than the last candidate, less the rounding bound
            slack = rounding_bound(jnp.sum(xcb * xcb, axis=1), jnp.max(sq)[None], dim)[:, 0]
            unsure = jnp.any(-neg[:, -1] - slack <= exact[:, k_max])
            exact = jax.lax.cond(unsure, lambda: jnp.sort(exact_squared_distances(xb, x), axis=1)[:, : k_max + 1],
                                 lambda: exact)
        return exact

    out = jax.lax.map(block, (_as_blocks(x, block_size), _as_blocks(xc, block_size)))
    return out.reshape(-1, k_max + 1)[: x.shape[0]]


def _prepare(real: Any, fake: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Both sets as floating jax arrays of one dtype, and the real mean (the expansion's origin)."""
    real, fake = jnp.asarray(real), jnp.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (n, d) arrays of the same d, got {real.shape} and {fake.shape}")
    dtype = jnp.result_type(real.dtype, fake.dtype, jnp.float32)
    real, fake = real.astype(dtype), fake.astype(dtype)
    return real, fake, jnp.mean(real, axis=0)


def _check_k(n: int, k: int, which: str) -> None:
    if not 1 <= k < n:
        raise ValueError(f"k={k} nearest neighbours need at least k + 1 {which}features, have {n}: "
                         "use a smaller k or more samples")


def _fraction(flags: jax.Array) -> float:
    return float(np.mean(np.asarray(flags), dtype=np.float64))


def _density(counts: jax.Array, k: int) -> float:
    return float(np.sum(np.asarray(counts), dtype=np.int64)) / (k * counts.shape[0])


def knn_radii(features: Any, ks: Sequence[int], block_size: int = DEFAULT_BLOCK_SIZE) -> dict[int, jax.Array]:
    """Distance from each feature to its k-th nearest neighbour in the same set, itself excluded.

    r_k(Z_i) = the (k+1)-th smallest of ||Z_i - Z_l|| over l = 1..n (the smallest is Z_i itself).

    Args:
      features: (n, d) features.
      ks: the neighbourhood sizes wanted; one blocked top_k serves them all.
      block_size: rows per block (memory ~ block_size * n floats).

    Returns:
      ``{k: (n,) distances}``.
    """
    x = jnp.asarray(features)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    for k in ks:
        _check_k(x.shape[0], k, "")
    sq = _knn_sq_distances(x, jnp.mean(x, axis=0), k_max=max(ks), block_size=min(int(block_size), x.shape[0]))
    return {k: jnp.sqrt(sq[:, k]) for k in ks}


@functools.partial(jax.jit, static_argnames=("block_size",))
def _cross_counts(real, fake, center, r2_real_closed, r2_real_open, r2_fake_closed, *, block_size: int):
    """One pass over all (real, fake) pairs, fake rows in blocks (the expansion about ``center``).

    Returns:
      fake_in_real: (M,) bool, ||Y_j - X_i||^2 <= r2_real_closed[i] for some i (precision).
      fake_density: (M,) int, number of i with ||Y_j - X_i||^2 < r2_real_open[i] (density).
      real_in_fake: (N,) bool, ||X_i - Y_j||^2 <= r2_fake_closed[j] for some j (recall).
      real_covered: (N,) bool, ||X_i - Y_j||^2 < r2_real_open[i] for some j (coverage).
    """
    m = fake.shape[0]
    real_c = real - center
    real_sq = jnp.sum(real_c * real_c, axis=1)
    blocks, blocks_c = _as_blocks(fake, block_size), _as_blocks(fake - center, block_size)
    valid = (jnp.arange(blocks.shape[0] * block_size) < m).reshape(blocks.shape[:2])
    # Padding rows get radius -1, so no real point lies in their ball, and never cover a real point.
    r2_fake = jnp.pad(r2_fake_closed, (0, blocks.shape[0] * block_size - m), constant_values=-1.0)
    r2_fake = r2_fake.reshape(blocks.shape[:2])

    n, dim = real.shape
    cands = min(CANDIDATES, n)

    def exact_where_it_matters(yb, ycb, r2_yb, valid_b):
        """(b, N) squared distances, exact wherever a comparison with a radius depends on rounding:
        the pairs whose expansion lies within the rounding bound of a radius it is compared with,
        up to ``CANDIDATES`` a row (a row with more makes the block exact throughout)."""
        d2 = squared_distances(ycb, real_c, real_sq)
        bound = rounding_bound(jnp.sum(ycb * ycb, axis=1), real_sq, dim)
        close = lambda r2: jnp.abs(d2 - r2) <= bound  # noqa: E731
        unsure = (close(r2_real_closed[None, :]) | close(r2_real_open[None, :]) | close(r2_yb[:, None]))
        unsure = unsure & valid_b[:, None]
        _, idx = jax.lax.top_k(unsure.astype(d2.dtype), cands)  # a row's unsure pairs first
        d2 = d2.at[jnp.arange(yb.shape[0])[:, None], idx].set(_exact_at(yb, real, idx))
        overflow = jnp.any(jnp.sum(unsure, axis=1) > cands)
        return jax.lax.cond(overflow, lambda: exact_squared_distances(yb, real), lambda: d2)

    def step(carry, inputs):
        real_in_fake, real_covered = carry
        yb, ycb, r2_yb, valid_b = inputs
        d2 = exact_where_it_matters(yb, ycb, r2_yb, valid_b)  # (b, N)
        in_open = (d2 < r2_real_open[None, :]) & valid_b[:, None]
        real_in_fake = real_in_fake | jnp.any(d2 <= r2_yb[:, None], axis=0)
        real_covered = real_covered | jnp.any(in_open, axis=0)
        per_fake = (jnp.any(d2 <= r2_real_closed[None, :], axis=1), jnp.sum(in_open, axis=1, dtype=jnp.int32))
        return (real_in_fake, real_covered), per_fake

    init = (jnp.zeros(real.shape[0], bool), jnp.zeros(real.shape[0], bool))
    inputs = (blocks, blocks_c, r2_fake, valid)
    (real_in_fake, real_covered), (fake_in_real, fake_density) = jax.lax.scan(step, init, inputs)
    return fake_in_real.reshape(-1)[:m], fake_density.reshape(-1)[:m], real_in_fake, real_covered


def prdc(real: Any, fake: Any, k_pr: int = 3, k_dc: int = 5,
         block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, float]:
    """Precision and recall (k = ``k_pr``) and density and coverage (k = ``k_dc``) in one pass.

    See the module docstring for the definitions (Kynkaanniemi et al., 2019; Naeem et al., 2020). The
    real k-NN radii for both ks come from one blocked top_k.

    Args:
      real: (N, d) features of real examples.
      fake: (M, d) features of generated examples.
      k_pr: neighbourhood size of precision and recall (3 in Kynkaanniemi et al.).
      k_dc: neighbourhood size of density and coverage (5 in Naeem et al.).
      block_size: rows per block; peak memory is a few ``block_size x max(N, M)`` arrays.

    Returns:
      ``{'precision', 'recall', 'density', 'coverage'}`` as Python floats.

    Example:
      >>> x = np.random.default_rng(0).normal(size=(1000, 2))
      >>> m = prdc(x[:500], x[500:], block_size=128)  # one distribution: all four near 1
      >>> round(m['precision'], 3), round(m['recall'], 3)
      (0.984, 0.984)
    """
    real, fake, center = _prepare(real, fake)
    _check_k(real.shape[0], max(k_pr, k_dc), "real ")
    _check_k(fake.shape[0], k_pr, "fake ")
    n, m = real.shape[0], fake.shape[0]
    r2_real = _knn_sq_distances(real, center, k_max=max(k_pr, k_dc), block_size=min(int(block_size), n))
    r2_fake = _knn_sq_distances(fake, center, k_max=k_pr, block_size=min(int(block_size), m))
    fake_in_real, fake_density, real_in_fake, real_covered = _cross_counts(
        real, fake, center, r2_real[:, k_pr], r2_real[:, k_dc], r2_fake[:, k_pr], block_size=min(int(block_size), m))
    return {"precision": _fraction(fake_in_real), "recall": _fraction(real_in_fake),
            "density": _density(fake_density, k_dc), "coverage": _fraction(real_covered)}


def precision_recall(real: Any, fake: Any, k: int = 3, block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019).

    precision = (1/M) sum_j 1[exists i: ||Y_j - X_i|| <= r_k(X_i)]
    recall    = (1/N) sum_i 1[exists j: ||X_i - Y_j|| <= r_k(Y_j)]

    Args:
      real: (N, d) real features.
      fake: (M, d) generated features.
      k: neighbourhood size (3 in the paper).
      block_size: rows per block.

    Returns:
      ``{'precision', 'recall'}`` as Python floats.
    """
    out = prdc(real, fake, k_pr=k, k_dc=k, block_size=block_size)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real: Any, fake: Any, k: int = 5, block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, float]:
    """Density and coverage (Naeem et al., 2020).

    density  = (1/(k M)) sum_j sum_i 1[Y_j in B(X_i, r_k(X_i))]
    coverage = (1/N) sum_i 1[exists j: Y_j in B(X_i, r_k(X_i))]

    (open balls). The fake set's own k-NN radii are not needed and not computed.

    Args:
      real: (N, d) real features.
      fake: (M, d) generated features.
      k: neighbourhood size (5 in the paper).
      block_size: rows per block.

    Returns:
      ``{'density', 'coverage'}`` as Python floats.
    """
    real, fake, center = _prepare(real, fake)
    _check_k(real.shape[0], k, "real ")
    r2_real = _knn_sq_distances(real, center, k_max=k, block_size=min(int(block_size), real.shape[0]))[:, k]
    no_radius = jnp.full(fake.shape[0], -1.0, real.dtype)
    _, fake_density, _, real_covered = _cross_counts(real, fake, center, r2_real, r2_real, no_radius,
                                                     block_size=min(int(block_size), fake.shape[0]))
    return {"density": _density(fake_density, k), "coverage": _fraction(real_covered)}
