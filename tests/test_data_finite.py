"""NaN or Inf in loaded data is refused at load time, naming the file (not found later as a divergence)."""
import gzip

import numpy as np
import pytest

from jaxgan.data.arrays import npz_source
from jaxgan.data.idx import read_idx


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npy_points_and_npz_images_with_non_finite_values_are_refused(tmp_path, bad):
    points = np.random.RandomState(0).randn(50, 2).astype(np.float32)
    points[7, 1] = bad
    np.save(tmp_path / "points.npy", points)
    with pytest.raises(ValueError, match=r"points.npy contains 1 NaN or infinite value\(s\) \(the first at index \(7, 1\)"):
        npz_source(tmp_path / "points.npy", seed=0)
    images = np.random.RandomState(0).rand(4, 8, 8).astype(np.float32)
    images[2, 3, 3] = bad
    np.savez(tmp_path / "images.npz", x=images)
    with pytest.raises(ValueError, match=r"images.npz \(array 'x'\) contains 1 NaN"):
        npz_source(tmp_path / "images.npz", seed=0)
    images[2, 3, 3] = 0.5  # clean data loads
    np.savez(tmp_path / "images.npz", x=images)
    assert npz_source(tmp_path / "images.npz", seed=0).info.num_examples == 4


def test_float_idx_with_nan_is_refused(tmp_path):
    values = np.arange(6, dtype=">f4").reshape(2, 3)
    values[1, 2] = np.nan
    header = bytes([0, 0, 0x0D, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    path = tmp_path / "floats-idx2.gz"
    path.write_bytes(gzip.compress(header + values.tobytes()))
    with pytest.raises(ValueError, match=r"floats-idx2.gz contains 1 NaN or infinite value\(s\) \(the first at index \(1, 2\)"):
        read_idx(path)
