"""Unpaired domains, low/high-resolution pairs, data views, and the PSNR/SSIM metrics."""
import numpy as np
import pytest

from jaxgan.data import ArraySource, make_source
from jaxgan.data.factory import make_run_source
from jaxgan.data.pairs import (SuperResolutionSource, Subset, Transformed, UnpairedSource, invert,
                               resize_bicubic, thicken)
from jaxgan.eval.ssim import gaussian_window, psnr, ssim


def indexed_source(n=20, size=8, seed=0):
    """Images whose every pixel encodes the example index (read back with ``index_of``)."""
    x = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None], size * size, 1).reshape(n, size, size)
    return ArraySource(x, labels=np.arange(n) % 10, seed=seed, num_classes=10)


def index_of(batch_x):
    return np.rint((batch_x[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


def test_parts_are_disjoint_and_cover_the_data():
    src = indexed_source()
    even, odd = Subset(src, [0, 2], seed=0), Subset(src, [1, 2], seed=1)
    seen_even = set(index_of(even.get_batch(0, 10)["x"]))
    seen_odd = set(index_of(odd.get_batch(0, 10)["x"]))
    assert seen_even == set(range(0, 20, 2)) and seen_odd == set(range(1, 20, 2))
    assert even.info.num_examples == 10
    with pytest.raises(ValueError, match="0 <= k < n"):
        Subset(src, [2, 2], seed=0)


def test_unpaired_domains_are_read_independently_and_deterministically():
    a, b = indexed_source(seed=0), indexed_source(seed=1)
    pairs = UnpairedSource(a, b)
    batch = pairs.get_batch(5, 12)
    assert set(batch) == {"x", "x_b", "label", "label_b"}
    np.testing.assert_array_equal(batch["x"], a.get_batch(5, 12)["x"])
    np.testing.assert_array_equal(batch["x_b"], b.get_batch(5, 12)["x"])
    assert np.mean(index_of(batch["x"]) == index_of(batch["x_b"])) < 0.5  # not paired up
    again = UnpairedSource(indexed_source(seed=0), indexed_source(seed=1)).get_batch(5, 12)
    np.testing.assert_array_equal(again["x_b"], batch["x_b"])  # a pure function of the position


def test_unpaired_domains_must_have_one_shape():
    with pytest.raises(ValueError, match="same image shape"):
        UnpairedSource(indexed_source(size=8), indexed_source(size=4))


def test_transforms_invert_and_thicken():
    x = -np.ones((1, 5, 5, 1), np.float32)
    x[0, 2, 2, 0] = 1.0
    t = thicken(x)[0, ..., 0]
    assert t.sum() == 5 * 1.0 + 20 * -1.0  # the centre and its 4 neighbours are lit
    assert t[1, 2] == t[2, 1] == t[3, 2] == t[2, 3] == 1.0 and t[1, 1] == -1.0
    np.testing.assert_array_equal(invert(x), -x)
    view = Transformed(indexed_source(), ["thicken", "invert"])
    np.testing.assert_allclose(view.get_batch(0, 3)["x"], -thicken(indexed_source().get_batch(0, 3)["x"]))
    with pytest.raises(ValueError, match="unknown image transform"):
        Transformed(indexed_source(), "blur")


def test_super_resolution_pairs_are_antialiased_bicubic_downsamples():
    rs = np.random.RandomState(0)
    hr = rs.uniform(-1, 1, (6, 16, 16, 1)).astype(np.float32)
    src = SuperResolutionSource(ArraySource((hr + 1) / 2, seed=0), factor=4)
    batch = src.get_batch(0, 6)
    assert batch["lr"].shape == (6, 4, 4, 1) and batch["x"].shape == (6, 16, 16, 1)
    np.testing.assert_allclose(batch["lr"], np.clip(resize_bicubic(batch["x"], 4, 4), -1, 1), atol=1e-6)
    # antialiasing: a 1-pixel checkerboard averages out (aliasing would keep +-1 values)
    checker = np.where(np.add.outer(np.arange(16), np.arange(16)) % 2 == 0, 1.0, -1.0)[None, :, :, None]
    assert np.abs(resize_bicubic(checker, 4, 4)[:, 1:-1, 1:-1]).max() < 0.05
    const = np.full((1, 16, 16, 1), 0.3, np.float32)
    np.testing.assert_allclose(resize_bicubic(const, 4, 4), 0.3, atol=1e-5)
    with pytest.raises(ValueError, match="divide the image size"):
        SuperResolutionSource(ArraySource((hr + 1) / 2, seed=0), factor=3)


def test_run_config_with_data_b_reads_two_domains(mnist_dir):
    spec = {"name": "mnist_idx", "dir": str(mnist_dir), "split": "test"}
    config = {"seed": 0, "data": {**spec, "part": [0, 2]},
              "data_b": {**spec, "part": [1, 2], "transform": ["thicken", "invert"]}}
    source = make_run_source(config)
    batch = source.get_batch(0, 8)
    assert batch["x"].shape == batch["x_b"].shape == (8, 28, 28, 1)
    assert np.mean(batch["x"]) < -0.6 and np.mean(batch["x_b"]) > 0.4  # dark digits vs white background
    sr = make_source({**spec, "sr_factor": 2}, seed=0).get_batch(0, 2)
    assert sr["lr"].shape == (2, 14, 14, 1)


# --------------------------------------------------------------------------------------- metrics

def test_psnr_matches_hand_computed_values():
    x = np.zeros((2, 4, 4, 1))
    y = x.copy()
    y[0] += 0.1                 # MSE 0.01, range 2 -> 10 log10(4 / 0.01) = 26.0206 dB
    y[1, 0, 0, 0] = 1.0         # MSE 1/16 -> 10 log10(64) = 18.0618 dB
    np.testing.assert_allclose(psnr(y, x), [26.0206, 18.0618], atol=1e-4)
    np.testing.assert_allclose(psnr(y[:1] * 255 / 2, x[:1] * 255 / 2, data_range=255.0), [26.0206], atol=1e-4)


def test_ssim_of_constant_images_has_its_closed_form_and_identity_is_one():
    c1 = (0.01 * 2) ** 2  # C2 cancels when both variances are zero
    a, b = np.full((1, 12, 12), 0.2), np.full((1, 12, 12), -0.4)
    # zero variances: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    expected = (2 * 0.2 * -0.4 + c1) / (0.2 ** 2 + 0.4 ** 2 + c1)
    np.testing.assert_allclose(ssim(a, b), [expected], rtol=1e-10)
    x = np.random.RandomState(0).uniform(-1, 1, (3, 16, 16, 3))
    np.testing.assert_allclose(ssim(x, x), 1.0, rtol=1e-12)
    noisy, noisier = x + 0.05 * np.sin(np.arange(16))[:, None], x + 0.5 * np.sin(np.arange(16))[:, None]
    assert np.all(1.0 > ssim(x, noisy)) and np.all(ssim(x, noisy) > ssim(x, noisier))


def test_ssim_window_is_the_normalised_gaussian():
    w = gaussian_window(11, 1.5)
    assert w.shape == (11,) and abs(w.sum() - 1) < 1e-12 and w.argmax() == 5
    np.testing.assert_allclose(w[4] / w[5], np.exp(-1 / (2 * 1.5 ** 2)))


def test_ssim_and_psnr_agree_with_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rs = np.random.RandomState(3)
    x = rs.uniform(-1, 1, (2, 28, 28, 1))
    y = np.clip(x + rs.normal(0, 0.3, x.shape), -1, 1)
    ours = ssim(x, y)
    theirs = [metrics.structural_similarity(x[i, ..., 0], y[i, ..., 0], data_range=2.0, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False) for i in range(2)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(psnr(x, y), [metrics.peak_signal_noise_ratio(x[i], y[i], data_range=2.0)
                                            for i in range(2)], rtol=1e-10)
