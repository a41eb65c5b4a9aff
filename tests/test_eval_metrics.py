"""Evaluation metrics against independent float64 NumPy/SciPy references and known cases.

Each reference below is written from the papers' definitions, not from jaxgan's internals: FD via an
eigendecomposition (not scipy.linalg.sqrtm), KID and IS from explicit sums, PRDC from a full
``scipy.spatial.distance.cdist`` matrix and sorting.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from xla_env import host_devices

from jaxgan.eval.frechet import FeatureStats, batch_moments, fid_from_features, frechet_distance
from jaxgan.eval.inception_score import classifier_score, inception_score
from jaxgan.eval.kid import kernel_inception_distance
from jaxgan.eval.modes import (GRID_STD, RING_STD, grid_centers, kl_to_uniform, mode_metrics,
                               ring_centers)
from jaxgan.eval.prdc import density_coverage, knn_radii, prdc, precision_recall


def rel_err(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def random_features(seed, n, d, shift=0.0, scale=1.0):
    """Correlated Gaussian features with a non-zero mean."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return shift + 3.0 + scale * rng.normal(size=(n, d)) @ (np.eye(d) + 0.5 * mix)


# ----------------------------------------------------------------------------- Fréchet distance

def ref_frechet(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr s1 + Tr s2 - 2 Tr (s1^1/2 s2 s1^1/2)^1/2, via symmetric eigensolvers."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root1 @ s2 @ root1)
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None)))


def test_frechet_distance_matches_eigen_reference():
    a, b = random_features(0, 600, 24), random_features(1, 500, 24, shift=0.3, scale=1.3)
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(got, float)
    assert rel_err(got, ref_frechet(mu1, s1, mu2, s2)) < 1e-8


def test_frechet_distance_of_a_sample_with_itself_is_zero():
    a = random_features(2, 400, 16)
    mu, s = a.mean(0), np.cov(a, rowvar=False)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9 * np.trace(s)


def test_frechet_distance_closed_form_diagonal_and_commuting():
    rng = np.random.default_rng(3)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
    # For commuting covariances: ||mu1 - mu2||^2 + sum_i (sqrt(v1_i) - sqrt(v2_i))^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert rel_err(frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)), expected) < 1e-10
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # same eigenvectors: the covariances commute
    got = frechet_distance(mu1, q @ np.diag(v1) @ q.T, mu2, q @ np.diag(v2) @ q.T)
    assert rel_err(got, expected) < 1e-8


def test_frechet_distance_of_singular_covariances_is_exact():
    # Commuting covariances with zero eigenvalues (rank 3 of 6): the closed form above still holds.
    # scipy.linalg.sqrtm of their singular product (pytorch-fid's way) is 1.5e-8 off in that trace.
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    v1, v2 = np.array([0, 0, 1.0, 2.0, 0.5, 0]), np.array([3.0, 0, 0, 1.0, 2.0, 0])
    got = frechet_distance(np.zeros(6), q @ np.diag(v1) @ q.T, np.zeros(6), q @ np.diag(v2) @ q.T)
    assert rel_err(got, np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)) < 1e-10


def test_frechet_distance_rank_deficient_covariances_equal_the_sample_space_form():
    # n < d: both covariances are singular. With centred samples A (n1 x d) and B (n2 x d),
    # S1 = A'A/(n1-1) and S2 = B'B/(n2-1), so Tr (S1 S2)^1/2 is the nuclear norm of A B' / sqrt((n1-1)(n2-1)):
    # an n1 x n2 singular value problem, independent of the d x d eigensolvers under test.
    a, b = random_features(4, 10, 32), random_features(5, 12, 32, shift=1.0)
    ac, bc = a - a.mean(0), b - b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    nuclear = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / math.sqrt(9 * 11)
    diff = a.mean(0) - b.mean(0)
    want = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * nuclear
    assert rel_err(frechet_distance(a.mean(0), s1, b.mean(0), s2), want) < 1e-10


def test_frechet_distance_rejects_what_is_not_a_covariance_and_bad_shapes():
    with pytest.raises(ValueError, match="sigma1 is not positive semi-definite"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 is not positive semi-definite"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -0.5]))
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        frechet_distance(np.zeros(2), np.array([[0.0, 1.0], [0.0, 0.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="mu2 holds NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    # small negative eigenvalues (a float32 Gram matrix's rounding) are read as 0 in the root, not refused:
    # FD = Tr S1 + Tr S2 - 2 Tr (S1 S2)^1/2 = (1 - 1e-9) + 1 - 2
    got = frechet_distance(np.zeros(2), np.diag([1.0, -1e-9]), np.zeros(2), np.diag([1.0, 0.0]))
    assert abs(got + 1e-9) < 1e-15


# ----------------------------------------------------------------------------- FeatureStats

def test_feature_stats_streaming_uneven_batches_matches_numpy_float64():
    x = random_features(6, 1000, 20, shift=50.0)  # a large offset: merging must not cancel
    with jax.enable_x64(True):
        stats = FeatureStats.empty(20)
        for lo, hi in [(0, 1), (1, 4), (4, 257), (257, 258), (258, 700), (700, 1000)]:
            stats = stats.update(jnp.asarray(x[lo:hi], jnp.float64))
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-10, atol=0)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-10)


def test_feature_stats_merge_is_exact_and_pure():
    x = random_features(7, 300, 5)
    with jax.enable_x64(True):
        a = FeatureStats.from_features(jnp.asarray(x[:100]))
        b = FeatureStats.empty(5).update(jnp.asarray(x[100:130])).update(jnp.asarray(x[130:]))
    ab, ba = a.merge(b), b.merge(a)
    assert a.count == 100 and b.count == 200  # inputs unchanged
    for s in (ab, ba):
        np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    assert a.merge(FeatureStats.empty(5)) is a and FeatureStats.empty(5).merge(a) is a


def test_feature_stats_float32_batches_are_accurate():
    x = random_features(8, 2000, 64, shift=10.0).astype(np.float32)
    stats = FeatureStats.empty(64)
    for lo in range(0, 2000, 300):
        stats = stats.update(x[lo:lo + 300])  # numpy float32 -> per-batch moments in float32 on device
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x64.mean(0), rtol=1e-6)
    cov = np.cov(x64, rowvar=False)
    assert np.max(np.abs(stats.cov - cov)) < 1e-5 * np.max(np.abs(cov))


def test_feature_stats_round_trips_through_npz(tmp_path):
    stats = FeatureStats.from_features(random_features(9, 50, 4))
    path = tmp_path / "stats.npz"
    np.savez(path, **stats.to_dict())
    with np.load(path, allow_pickle=False) as f:
        back = FeatureStats.from_dict(f)
    assert back.count == stats.count
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.m2, stats.m2)
    with pytest.raises(KeyError, match="m2"):
        FeatureStats.from_dict({"count": 1, "mean": np.zeros(2)})


def test_feature_stats_errors():
    with pytest.raises(ValueError, match="dimension 3"):
        FeatureStats.empty(4).update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats.empty(4).update(np.zeros((1, 4))).cov
    with pytest.raises(ValueError, match="batch, dim"):
        FeatureStats.empty(4).update(np.zeros(4))


SHARDED_STATS_CHECK = """
import json, os
os.environ["JAX_PLATFORMS"] = "cpu"
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxgan.eval.frechet import FeatureStats
assert jax.device_count() == 8, jax.devices()
rng = np.random.default_rng(10)
x = (3.0 + rng.normal(size=(16 * 8, 8)) @ (np.eye(8) + 0.5 * rng.normal(size=(8, 8)) / np.sqrt(8))).astype(np.float32)
mesh = Mesh(np.asarray(jax.devices()), ("data",))
sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
assert len(sharded.sharding.device_set) == 8
got, want = FeatureStats.empty(8).update(sharded), FeatureStats.empty(8).update(x)
ref = np.cov(x.astype(np.float64), rowvar=False)
print(json.dumps({"mean": float(np.max(np.abs(got.mean - want.mean))),
                  "cov": float(np.max(np.abs(got.cov - want.cov))),
                  "cov_vs_numpy": float(np.max(np.abs(got.cov - ref))), "scale": float(np.max(np.abs(ref)))}))
"""


@pytest.mark.multidevice
def test_feature_stats_update_on_a_sharded_batch():
    """Statistics of a batch sharded over 8 (forced CPU) devices equal those of the same rows on the
    host; run in a subprocess because the device count is fixed when jax is imported."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS=host_devices(8))
    proc = subprocess.run([sys.executable, "-c", SHARDED_STATS_CHECK], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = json.loads(proc.stdout.strip().splitlines()[-1])
    assert err["mean"] < 1e-5 and err["cov"] < 1e-5 * err["scale"], err
    assert err["cov_vs_numpy"] < 1e-4 * err["scale"], err


def test_batch_moments_is_a_jitted_device_function():
    mean, m2 = batch_moments(jnp.arange(6.0).reshape(3, 2))
    np.testing.assert_allclose(np.asarray(mean), [2.0, 3.0])
    np.testing.assert_allclose(np.asarray(m2), [[8.0, 8.0], [8.0, 8.0]])


def test_fid_from_features_equals_frechet_of_numpy_statistics():
    a, b = random_features(11, 400, 12), random_features(12, 300, 12, shift=0.5)
    want = ref_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    with jax.enable_x64(True):
        got = fid_from_features(jnp.asarray(a), FeatureStats.from_features(jnp.asarray(b)))
    assert rel_err(got, want) < 1e-8
    assert rel_err(fid_from_features(a.astype(np.float32), b.astype(np.float32)), want) < 1e-4


# ----------------------------------------------------------------------------- KID

def ref_mmd2_unbiased(x, y):
    m, d = x.shape
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2


def test_kid_matches_numpy_reference_on_random_subsets():
    real, fake = random_features(13, 300, 16) / 3, random_features(14, 250, 16, shift=0.2) / 3
    rng = np.random.RandomState(5)  # the documented subset protocol: fake draw, then real draw
    mmds = []
    for _ in range(7):
        f = fake[rng.choice(250, 100, replace=False)]
        r = real[rng.choice(300, 100, replace=False)]
        mmds.append(ref_mmd2_unbiased(f, r))
    mean, std = kernel_inception_distance(real, fake, num_subsets=7, subset_size=100, seed=5)
    assert rel_err(mean, np.mean(mmds)) < 1e-9
    assert rel_err(std, np.std(mmds)) < 1e-9


def test_kid_full_set_is_subset_independent_and_clipped():
    # subset_size is clipped to min(n_real, n_fake) = 120: every subset is the whole set, permuted.
    real, fake = random_features(15, 120, 8) / 3, random_features(16, 120, 8, scale=1.2) / 3
    want = ref_mmd2_unbiased(fake, real)
    mean, std = kernel_inception_distance(real, fake, num_subsets=3, subset_size=1000, seed=1)
    assert rel_err(mean, want) < 1e-9 and std < 1e-9 * abs(want)
    # A set against itself: not 0 (the unbiased estimator drops the diagonal from only one term).
    same, _ = kernel_inception_distance(real, real.copy(), num_subsets=1, subset_size=1000)
    assert rel_err(same, ref_mmd2_unbiased(real, real)) < 1e-9 and same < 0


def test_kid_errors():
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same d"):
        kernel_inception_distance(np.zeros((4, 3)), np.zeros((5, 2)))


# ----------------------------------------------------------------------------- Inception Score

def ref_inception_score(p, splits):
    """The improved-gan / torch-fidelity protocol: split k is rows k*n//splits .. (k+1)*n//splits - 1."""
    n = len(p)
    scores = []
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        py = part.mean(0)
        kl = [sum(pi * math.log(pi / qi) for pi, qi in zip(row, py) if pi > 0) for row in part]
        scores.append(math.exp(np.mean(kl)))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize("n,splits", [(503, 5), (13, 4), (10, 10), (1001, 10)])
def test_inception_score_matches_reference(n, splits):
    p = np.random.default_rng(17).dirichlet(np.full(10, 0.3), size=n)
    p[3, :] = np.eye(10)[2]  # exact zeros: 0 log 0 = 0
    got = inception_score(p, splits=splits)
    want = ref_inception_score(p, splits)
    assert rel_err(got[0], want[0]) < 1e-10 and rel_err(got[1], want[1]) < 1e-8


def test_inception_score_uses_every_sample():
    """With n not divisible by splits the last rows count: 13 rows in 4 splits of 3, 3, 3, 4."""
    p = np.tile(np.eye(3), (4, 1))  # 12 rows, each split of 3 holds classes 0, 1, 2: IS 3 in every split
    base = inception_score(p, splits=4)
    assert abs(base[0] - 3.0) < 1e-12 and base[1] < 1e-12
    extra = np.vstack([p, np.eye(3)[:1]])  # a 13th row, class 0: the last split is (1, 2, 0, 0)
    mean, std = inception_score(extra, splits=4)
    last = np.exp(np.mean([math.log(1 / 0.5), math.log(1 / 0.25), math.log(1 / 0.25)] + [math.log(1 / 0.5)]))
    assert abs(mean - (3 * 3.0 + last) / 4) < 1e-12
    assert abs(std - np.std([3.0, 3.0, 3.0, last])) < 1e-12 and std > 0.05  # dropping row 13 gives std 0


def test_inception_score_known_values():
    mean, std = inception_score(np.full((100, 7), 1 / 7), splits=10)
    assert abs(mean - 1.0) < 1e-12 and std < 1e-12
    onehot = np.eye(10)[np.arange(200) % 10]  # each split holds every class equally often
    mean, std = inception_score(onehot, splits=4)
    assert abs(mean - 10.0) < 1e-9 and std < 1e-9
    assert classifier_score(onehot, splits=1) == inception_score(onehot, splits=1)


def test_inception_score_rejects_logits():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(20, 5)), splits=2)
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.full((3, 2), 0.5), splits=4)


# ----------------------------------------------------------------------------- PRDC

def ref_prdc(real, fake, k_pr, k_dc):
    """Float64 reference from full distance matrices (Kynkaanniemi 2019 closed balls, Naeem 2020 open)."""
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(d_rr, axis=1)  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)
    r_pr, r_dc, f_pr = r_real[:, k_pr], r_real[:, k_dc], r_fake[:, k_pr]
    out = {
        "precision": (d_rf <= r_pr[:, None]).any(axis=0).mean(),
        "recall": (d_rf <= f_pr[None, :]).any(axis=1).mean(),
        "density": (d_rf < r_dc[:, None]).sum() / (k_dc * fake.shape[0]),
        "coverage": (d_rf.min(axis=1) < r_dc).mean(),
    }
    # Smallest relative gap between any compared distance and its radius: float32 must not flip it.
    margin = min(np.min(np.abs(d_rf - r[:, None]) / r[:, None]) for r in (r_pr, r_dc))
    margin = min(margin, np.min(np.abs(d_rf - f_pr[None, :]) / f_pr[None, :]))
    return out, r_real, margin


@pytest.fixture(scope="module")
def prdc_data():
    real = random_features(18, 301, 6)
    fake = random_features(19, 257, 6, shift=0.4, scale=1.2)
    want, radii, margin = ref_prdc(real, fake, 3, 5)
    assert margin > 1e-5, "test data has a near tie; pick another seed"
    assert all(0.05 < v < 0.98 for v in want.values()), want  # informative, not saturated
    return real, fake, want, radii


@pytest.mark.parametrize("block_size", [64, 4096])
def test_prdc_matches_reference_float32(prdc_data, block_size):
    real, fake, want, _ = prdc_data
    got = prdc(real.astype(np.float32), fake.astype(np.float32), block_size=block_size)
    for key in want:
        assert rel_err(got[key], want[key]) < 1e-6, (key, got[key], want[key])


def test_prdc_matches_reference_float64(prdc_data):
    real, fake, want, _ = prdc_data
    with jax.enable_x64(True):
        got = prdc(jnp.asarray(real), jnp.asarray(fake), block_size=100)
    for key in want:
        assert rel_err(got[key], want[key]) < 1e-12, key


def test_precision_recall_and_density_coverage_separately(prdc_data):
    real, fake, _, _ = prdc_data
    want_pr, _, _ = ref_prdc(real, fake, 4, 4)
    got = precision_recall(real, fake, k=4, block_size=50)
    assert got.keys() == {"precision", "recall"}
    for key in got:
        assert rel_err(got[key], want_pr[key]) < 1e-6
    want_dc, _, _ = ref_prdc(real, fake, 2, 2)
    got = density_coverage(real, fake, k=2, block_size=50)
    assert got.keys() == {"density", "coverage"}
    for key in got:
        assert rel_err(got[key], want_dc[key]) < 1e-6


def test_knn_radii_match_sorted_distances(prdc_data):
    real, _, _, radii = prdc_data
    got = knn_radii(real, ks=(1, 3, 5), block_size=70)
    for k in (1, 3, 5):
        np.testing.assert_allclose(np.asarray(got[k]), radii[:, k], rtol=1e-4)


def test_prdc_same_distribution_near_one_and_separated_zero():
    rng = np.random.default_rng(20)
    real, fake = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    same = prdc(real, fake, block_size=512)
    assert same["precision"] > 0.95 and same["recall"] > 0.95
    assert same["coverage"] > 0.9 and 0.9 < same["density"] < 1.1
    far = prdc(real, fake + 50.0, block_size=512)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def ring_features(seed, n=2000, std=0.02):
    """float32 points of the ring of 8 Gaussians (radius 2): k-NN balls ~100x smaller than the norms."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    return (np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1) + std * rng.normal(size=(n, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def ring_data():
    """(real, fake, reference) for d = 2, n = 2000, k = 3, the reference on the float32 values in float64."""
    real, fake = ring_features(31), ring_features(32)
    want, _, margin = ref_prdc(real.astype(np.float64), fake.astype(np.float64), 3, 3)
    assert margin > 1e-6, "a near tie: pick other seeds"
    return real, fake, want


def test_prdc_float32_keeps_the_digits_where_balls_are_small_against_the_norms(ring_data):
    """|a|^2 + |b|^2 - 2ab in float32 moved density by 2% here (the issue: 1.7e-4 on such data);
    distances from differences give the float64 counts exactly (so also the prdc package's)."""
    real, fake, want = ring_data
    got = prdc(real, fake, k_pr=3, k_dc=3, block_size=512)
    assert got == pytest.approx(want, rel=1e-12, abs=0), (got, want)


def test_prdc_blocks_that_need_every_distance_exact_fall_back_to_differences(ring_data, monkeypatch):
    """Too few exact candidates per row: rows and blocks whose comparisons the rounding bound cannot
    settle recompute all their distances from differences, and the counts stay exact."""
    import jaxgan.eval.prdc as prdc_lib

    real, fake, want = ring_data
    monkeypatch.setattr(prdc_lib, "CANDIDATES", 4)
    prdc_lib._knn_sq_distances.clear_cache()  # the constant is read when the functions are traced
    prdc_lib._cross_counts.clear_cache()
    try:
        got = prdc(real, fake, k_pr=3, k_dc=3, block_size=300)
        radii = knn_radii(real, ks=(3,), block_size=300)[3]
    finally:
        prdc_lib._knn_sq_distances.clear_cache()
        prdc_lib._cross_counts.clear_cache()
    assert got == pytest.approx(want, rel=1e-12, abs=0), (got, want)
    exact = np.sort(cdist(real.astype(np.float64), real.astype(np.float64)), axis=1)[:, 3]
    np.testing.assert_allclose(np.asarray(radii, np.float64), exact, rtol=1e-6)


def test_exact_squared_distances_are_accurate_to_the_distance_not_the_norms():
    from jaxgan.eval.prdc import exact_squared_distances, squared_distances

    a = np.array([[1000.0, 1000.0], [1000.001, 1000.0]], np.float32)
    want = cdist(a.astype(np.float64), a.astype(np.float64), "sqeuclidean")
    np.testing.assert_allclose(np.asarray(exact_squared_distances(a, a)), want, rtol=1e-6)
    assert abs(float(squared_distances(a, a)[0, 1]) - want[0, 1]) > 0.5 * want[0, 1]  # the expansion: digits gone


def test_prdc_rejects_too_few_samples():
    with pytest.raises(ValueError, match="k=5"):
        prdc(np.zeros((5, 2)), np.ones((10, 2)))


# ----------------------------------------------------------------------------- 2-D mode metrics

def sample_mixture(centers, std, n, seed, modes=None):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(centers) if modes is None else np.asarray(modes), size=n)
    return centers[idx] + std * rng.normal(size=(n, centers.shape[1]))


def test_centers_match_the_toy_data():
    toy = pytest.importorskip("jaxgan.data.toy")
    np.testing.assert_allclose(ring_centers(), toy.RING8_CENTRES, atol=1e-12)
    np.testing.assert_allclose(grid_centers(), toy.GRID25_CENTRES, atol=1e-12)
    assert RING_STD == toy.RING8_STD and GRID_STD == toy.GRID25_STD


def test_mode_metrics_on_exact_ring_samples():
    centers = ring_centers()
    m = mode_metrics(sample_mixture(centers, RING_STD, 4000, seed=21), centers, RING_STD)
    assert m["modes_covered"] == 8 and m["num_modes"] == 8
    # P(|x - c| < 3 std) for a 2-D Gaussian is 1 - exp(-9/2) = 0.9889.
    assert abs(m["high_quality_fraction"] - (1 - math.exp(-4.5))) < 0.01
    assert 0 <= m["kl_to_uniform"] < 0.01
    at_centres = mode_metrics(np.repeat(centers, 5, axis=0), centers, RING_STD)
    assert at_centres["high_quality_fraction"] == 1.0 and abs(at_centres["kl_to_uniform"]) < 1e-9


def test_mode_metrics_grid():
    centers = grid_centers()
    assert centers.shape == (25, 2) and set(centers[:, 0]) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    m = mode_metrics(sample_mixture(centers, GRID_STD, 5000, seed=22), centers, GRID_STD)
    assert m["modes_covered"] == 25 and m["num_modes"] == 25 and m["high_quality_fraction"] > 0.97


def test_mode_metrics_three_modes_and_far_away():
    centers = ring_centers()
    m = mode_metrics(sample_mixture(centers, RING_STD, 3000, seed=23, modes=[0, 3, 5]), centers, RING_STD)
    assert m["modes_covered"] == 3 and m["high_quality_fraction"] > 0.97
    assert abs(m["kl_to_uniform"] - math.log(8 / 3)) < 0.01
    far = mode_metrics(sample_mixture(centers, RING_STD, 500, seed=24) + 100.0, centers, RING_STD)
    assert far["modes_covered"] == 0 and far["high_quality_fraction"] == 0.0
    assert math.isnan(far["kl_to_uniform"])


def test_mode_metrics_min_share_ignores_a_stray_sample():
    centers = ring_centers()
    x = np.concatenate([sample_mixture(centers, RING_STD, 1000, seed=25, modes=range(7)), centers[7:]])
    assert mode_metrics(x, centers, RING_STD)["modes_covered"] == 7
    assert mode_metrics(x, centers, RING_STD, min_share=0.0)["modes_covered"] == 8  # PacGAN's count


def test_mode_metrics_counts_match_numpy_reference():
    centers = ring_centers()
    x = sample_mixture(centers, 0.05, 2000, seed=26)  # wider than the threshold: some samples are bad
    d = cdist(x, centers)
    good = d.min(1) < 3 * RING_STD
    counts = np.bincount(d.argmin(1)[good], minlength=8)
    m = mode_metrics(x, centers, RING_STD)
    assert m["high_quality_fraction"] == good.mean()
    assert m["modes_covered"] == int(np.sum(counts >= max(1, 0.1 * 2000 / 8)))
    p = counts / counts.sum()
    want_kl = np.sum(p[p > 0] * np.log(p[p > 0] * 8))
    assert abs(m["kl_to_uniform"] - want_kl) < 1e-9
    assert kl_to_uniform([5, 0, 0, 0]) == pytest.approx(math.log(4))
