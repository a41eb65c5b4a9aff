"""Data sources: the batch is a pure function of the position, and every loader reads what it says."""
import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxgan import data
from jaxgan.data import (
    GRID25_CENTRES,
    GRID25_STD,
    RING8_CENTRES,
    RING8_STD,
    ArraySource,
    ImageOptions,
    make_source,
    parse_idx,
    preprocess,
    process_batch,
    read_idx,
)

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def sub(batch, lo, hi):
    return {k: v[lo:hi] for k, v in batch.items()}


def small_arrays(n=13, seed=0):
    """n distinct 4x4 uint8 grey images whose first pixel encodes the example index."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n)
    return x, np.arange(n) % 3


def example_ids(batch):
    """Recovers the example indices of a batch of :func:`small_arrays` (pixel [0, 0])."""
    return np.rint((batch["x"][:, 0, 0, 0] + 1) * 127.5).astype(int)


# --- sources used by the generic contract tests -------------------------------------------------

def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 4)):
        for i in range(n):
            _write_png(tmp_path / "imgs" / cls / f"{i:02d}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    return {"name": "folder", "path": str(tmp_path / "imgs")}


def _npz(tmp_path):
    x, y = small_arrays()
    np.savez(tmp_path / "d.npz", images=x, y=y)
    return {"name": "npz", "path": str(tmp_path / "d.npz"), "x_key": "images", "label_key": "y"}


SPECS = {
    "ring8": lambda tmp_path: "ring8",
    "grid25": lambda tmp_path: {"name": "grid25"},
    "npz": _npz,
    "folder": _folder,
}


@pytest.fixture(params=sorted(SPECS))
def spec(request, tmp_path):
    return SPECS[request.param](tmp_path)


def test_same_seed_same_batch_different_seed_differs(spec):
    a, b, c = make_source(spec, seed=3), make_source(spec, seed=3), make_source(spec, seed=4)
    assert_batches_equal(a.get_batch(5, 9), b.get_batch(5, 9))
    assert not np.array_equal(a.get_batch(5, 9)["x"], c.get_batch(5, 9)["x"])


def test_slicing_invariance(spec):
    src = make_source(spec, seed=1)
    big = src.get_batch(0, 10)
    assert_batches_equal(sub(big, 3, 7), src.get_batch(3, 4))
    # Anywhere in the stream, across epochs, and with a fresh source (no cached state matters).
    far = make_source(spec, seed=1).get_batch(1000, 25)
    for lo, n in ((1000, 1), (1003, 7), (1010, 15)):
        assert_batches_equal(sub(far, lo - 1000, lo - 1000 + n), src.get_batch(lo, n))


def test_batch_contract(spec):
    src = make_source(spec, seed=0)
    batch = src.get_batch(2, 5)
    assert isinstance(src, data.Source)
    assert batch["x"].dtype == np.float32 and batch["x"].shape == (5,) + src.info.shape
    assert ("label" in batch) == (src.info.num_classes is not None)
    if "label" in batch:
        assert batch["label"].dtype == np.int32 and batch["label"].shape == (5,)
        assert 0 <= batch["label"].min() and batch["label"].max() < src.info.num_classes
    if src.info.kind == "image":
        assert -1 <= batch["x"].min() and batch["x"].max() <= 1
    empty = src.get_batch(7, 0)
    assert empty["x"].shape == (0,) + src.info.shape


def test_process_split_matches_one_process(spec):
    src = make_source(spec, seed=2)
    for step in (0, 3):
        whole = process_batch(src, step, global_batch=8)
        assert_batches_equal(whole, src.get_batch(step * 8, 8))
        for count in (2, 4):
            parts = [process_batch(src, step, 8, process_index=i, process_count=count) for i in range(count)]
            assert_batches_equal({k: np.concatenate([p[k] for p in parts]) for k in whole}, whole)


def test_process_batch_errors():
    src = data.ring8(seed=0)
    with pytest.raises(ValueError, match=r"global batch 10 is not divisible by 4 processes: use a multiple of 4 "
                                         r"\(e\.g\. 8 or 12\)"):
        process_batch(src, 0, global_batch=10, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="process_index 2 is outside 0..1"):
        process_batch(src, 0, global_batch=8, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="start >= 0"):
        src.get_batch(-1, 3)


# --- shuffling ------------------------------------------------------------------------------------

def test_each_epoch_is_a_permutation():
    n = 13
    src = ArraySource(*small_arrays(n), seed=7)
    ids = example_ids(src.get_batch(0, 4 * n)).reshape(4, n)
    for e, epoch in enumerate(ids):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))  # each example exactly once
        np.testing.assert_array_equal(epoch, np.random.default_rng([7, e]).permutation(n))  # the documented order
    assert len({tuple(e) for e in ids}) == 4  # epochs are shuffled differently
    np.testing.assert_array_equal(src.get_batch(0, n)["label"], (ids[0] % 3).astype(np.int32))


def test_batch_crossing_epoch_boundaries():
    n = 10
    src = ArraySource(*small_arrays(n), seed=0)
    # One batch spanning the end of epoch 1, all of epoch 2 and the start of epoch 3.
    ids = example_ids(src.get_batch(17, 16))
    expected = np.concatenate([np.random.default_rng([0, 1]).permutation(n)[7:],
                               np.random.default_rng([0, 2]).permutation(n),
                               np.random.default_rng([0, 3]).permutation(n)[:3]])
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(ids, np.concatenate([example_ids(src.get_batch(17, 3)),
                                                       example_ids(src.get_batch(20, 13))]))


# --- toy data -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,centres,std", [("ring8", RING8_CENTRES, RING8_STD),
                                              ("grid25", GRID25_CENTRES, GRID25_STD)])
def test_toy_statistics(name, centres, std):
    src = make_source(name, seed=0)
    assert src.info == data.DataInfo(shape=(2,), num_classes=None, kind="points", num_examples=None, name=name)
    x = src.get_batch(10**9, 50_000)["x"].astype(np.float64)  # far into the stream: no overflow trouble
    nearest = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    residual = x - centres[nearest]
    assert np.abs(residual).max() < 6 * std  # every sample belongs to a mode
    np.testing.assert_allclose(residual.std(0), std, rtol=0.03)
    np.testing.assert_allclose(residual.mean(0), 0, atol=3 * std / np.sqrt(len(x)) * 2)
    counts = np.bincount(nearest, minlength=len(centres)) / len(x)
    np.testing.assert_allclose(counts, 1 / len(centres), atol=4 * np.sqrt(1 / len(centres) / len(x)))


def test_toy_constants():
    assert RING8_CENTRES.shape == (8, 2) and GRID25_CENTRES.shape == (25, 2)
    np.testing.assert_allclose(np.linalg.norm(RING8_CENTRES, axis=1), 2.0)
    assert sorted(set(GRID25_CENTRES.ravel())) == [-4, -2, 0, 2, 4]
    assert (RING8_STD, GRID25_STD) == (0.02, 0.05)
    with pytest.raises(ValueError):
        RING8_CENTRES[0, 0] = 1.0  # read-only: the evaluation relies on them


def test_toy_labels_are_the_component():
    src = make_source({"name": "ring8", "with_labels": True}, seed=0)
    batch = src.get_batch(0, 1000)
    assert src.info.num_classes == 8
    nearest = ((batch["x"][:, None] - RING8_CENTRES[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(batch["label"], nearest)


# --- IDX ------------------------------------------------------------------------------------------

def idx_bytes(array, code=0x08, dtype=">u1"):
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_synthetic_file(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    write = gzip.compress if compress else (lambda b: b)
    (tmp_path / "im").write_bytes(write(idx_bytes(images)))
    (tmp_path / "lb").write_bytes(write(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "im"), images)
    src = make_source({"name": "idx", "images": str(tmp_path / "im"), "labels": str(tmp_path / "lb")}, seed=0)
    assert src.info.shape == (5, 4, 1) and src.info.num_classes == 10 and src.info.num_examples == 6
    batch = src.get_batch(0, 6)
    order = np.random.default_rng([0, 0]).permutation(6)
    np.testing.assert_array_equal(batch["label"], labels[order])
    np.testing.assert_allclose(batch["x"][..., 0], images[order] / 127.5 - 1, atol=1e-6)


def test_idx_other_dtypes():
    values = np.arange(-6, 6).reshape(3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(values, 0x0C, ">i4")), values)
    out = parse_idx(idx_bytes(values / 4, 0x0D, ">f4"))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values / 4)


def test_idx_errors(tmp_path):
    good = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="not an IDX file: magic number 00001503"):
        parse_idx(b"\x00\x00\x15\x03" + good[4:])
    with pytest.raises(ValueError, match="truncated: header says uint8 \\(3, 2, 2\\) = 28 bytes"):
        parse_idx(good[:-1])
    with pytest.raises(ValueError, match="longer than its header says"):
        parse_idx(good + b"\x00")
    with pytest.raises(ValueError, match="truncated inside its header"):
        parse_idx(good[:9])
    with pytest.raises(ValueError, match="too short"):
        parse_idx(b"\x00\x00")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match="looks gzipped but does not decompress"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError, match="IDX file not found: .*nothing-here"):
        read_idx(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match=r"MNIST train images not found in .*train-images-idx3-ubyte\.gz"):
        make_source({"name": "mnist_idx", "dir": str(tmp_path)}, seed=0)
    with pytest.raises(ValueError, match="MNIST split must be one of"):
        make_source({"name": "mnist_idx", "dir": str(tmp_path), "split": "validation"}, seed=0)


def test_real_mnist(mnist_dir):
    src = make_source({"name": "mnist_idx", "dir": str(mnist_dir), "split": "test"}, seed=0)
    assert src.info == data.DataInfo(shape=(28, 28, 1), num_classes=10, kind="image", num_examples=10_000,
                                     name="mnist_test")
    epoch = src.get_batch(0, 10_000)
    assert epoch["x"].shape == (10_000, 28, 28, 1) and epoch["x"].dtype == np.float32
    assert epoch["x"].min() == -1.0 and epoch["x"].max() == 1.0
    assert np.bincount(epoch["label"]).tolist() == MNIST_TEST_COUNTS
    assert abs(float(epoch["x"].mean()) - (2 * 0.1325 - 1)) < 0.01  # MNIST's mean intensity is ~0.13
    resized = make_source({"name": "mnist_idx", "dir": str(mnist_dir), "split": "test", "resolution": 32,
                           "channels": 3}, seed=0).get_batch(0, 16)
    assert resized["x"].shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(resized["label"], epoch["label"][:16])


# --- npz / npy ------------------------------------------------------------------------------------

def test_npz_and_npy(tmp_path):
    x, y = small_arrays(8)
    np.savez(tmp_path / "a.npz", x=x, label=y)
    src = make_source({"name": "npz", "path": str(tmp_path / "a.npz"), "label_key": "label"}, seed=0)
    assert src.info.shape == (4, 4, 1) and src.info.num_classes == 3
    batch = src.get_batch(0, 8)
    ids = example_ids(batch)
    np.testing.assert_array_equal(batch["label"], y[ids])
    np.testing.assert_allclose(batch["x"][..., 0], x[ids] / 127.5 - 1, atol=1e-6)

    np.save(tmp_path / "f.npy", x.astype(np.float32) / 255)  # float images: assumed [0, 1]
    fsrc = make_source({"name": "npy", "path": str(tmp_path / "f.npy")}, seed=0)
    assert fsrc.info.num_classes is None
    np.testing.assert_allclose(fsrc.get_batch(0, 8)["x"], batch["x"], atol=1e-6)

    np.save(tmp_path / "pm1.npy", x.astype(np.float32) / 127.5 - 1)
    with pytest.raises(ValueError, match=r"in \[-1, 0\.9\d*\] but the assumed range is \[0, 1\]: pass value_range"):
        make_source({"name": "npy", "path": str(tmp_path / "pm1.npy")}, seed=0)
    ok = make_source({"name": "npy", "path": str(tmp_path / "pm1.npy"), "value_range": (-1, 1)}, seed=0)
    np.testing.assert_allclose(ok.get_batch(0, 8)["x"], batch["x"], atol=1e-6)

    pts = np.random.default_rng(0).normal(size=(20, 2))
    np.savez(tmp_path / "pts.npz", x=pts)
    psrc = make_source({"name": "npz", "path": str(tmp_path / "pts.npz")}, seed=0)
    assert psrc.info.kind == "points" and psrc.info.shape == (2,)
    np.testing.assert_allclose(np.sort(psrc.get_batch(0, 20)["x"][:, 0]), np.sort(pts[:, 0]), rtol=1e-6)


def test_npz_errors(tmp_path):
    x, y = small_arrays(8)
    np.savez(tmp_path / "a.npz", images=x, y=y[:5])
    with pytest.raises(ValueError, match=r"has no array 'x' \(it has \['images', 'y'\]\)"):
        make_source({"name": "npz", "path": str(tmp_path / "a.npz")}, seed=0)
    with pytest.raises(ValueError, match=r"must be a vector of 8 labels .* got shape \(5,\)"):
        make_source({"name": "npz", "path": str(tmp_path / "a.npz"), "x_key": "images", "label_key": "y"}, seed=0)
    np.save(tmp_path / "nchw.npy", np.zeros((4, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"channels-first \(NCHW\): transpose it"):
        make_source({"name": "npy", "path": str(tmp_path / "nchw.npy")}, seed=0)
    with pytest.raises(FileNotFoundError, match="array file .* not found: .*missing.npz"):
        make_source({"name": "npz", "path": str(tmp_path / "missing.npz")}, seed=0)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="no pickle"):
        make_source({"name": "npy", "path": str(tmp_path / "obj.npy")}, seed=0)


# --- image folder ---------------------------------------------------------------------------------

def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for cls, n in (("b_dog", 2), ("a_cat", 3)):
        for i in range(n):
            pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            _write_png(tmp_path / "root" / cls / f"{i}.png", pixels)
            written[(cls, i)] = pixels
    (tmp_path / "root" / "a_cat" / "notes.txt").write_text("not an image")
    src = make_source({"name": "folder", "path": str(tmp_path / "root")}, seed=0)
    assert src.classes == ("a_cat", "b_dog") and src.info.num_classes == 2
    assert src.info.shape == (6, 6, 3) and src.info.num_examples == 5
    assert [p.parent.name + "/" + p.name for p in src.paths] == ["a_cat/0.png", "a_cat/1.png", "a_cat/2.png",
                                                                  "b_dog/0.png", "b_dog/1.png"]
    batch = src.get_batch(0, 5)
    for row, i in enumerate(np.random.default_rng([0, 0]).permutation(5)):
        path = src.paths[i]
        assert batch["label"][row] == src.classes.index(path.parent.name)
        expected = written[(path.parent.name, int(path.stem))] / 127.5 - 1
        np.testing.assert_allclose(batch["x"][row], expected, atol=1e-6)

    grey = make_source({"name": "folder", "path": str(tmp_path / "root"), "channels": 1, "resolution": 3},
                       seed=0)
    assert grey.info.shape == (3, 3, 1) and grey.get_batch(0, 5)["x"].shape == (5, 3, 3, 1)


def test_folder_unlabelled_mixed_sizes(tmp_path):
    _write_png(tmp_path / "f" / "a.png", np.full((4, 8), 255, np.uint8))  # grey, 8 wide x 4 high
    _write_png(tmp_path / "f" / "b.jpg", np.zeros((6, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="is 6x6 \\(WxH\\) but .*a.png is 8x4: set `resolution`"):
        make_source({"name": "folder", "path": str(tmp_path / "f")}, seed=0).get_batch(0, 2)
    src = make_source({"name": "folder", "path": str(tmp_path / "f"), "resolution": 4, "crop": "center"}, seed=0)
    assert src.info.num_classes is None and src.info.shape == (4, 4, 1)
    batch = src.get_batch(0, 2)
    assert "label" not in batch
    by_name = dict(zip([src.paths[i].name for i in np.random.default_rng([0, 0]).permutation(2)], batch["x"]))
    np.testing.assert_allclose(by_name["a.png"], 1.0, atol=1e-6)
    np.testing.assert_allclose(by_name["b.jpg"], -1.0, atol=0.02)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found: .*nowhere"):
        make_source({"name": "folder", "path": str(tmp_path / "nowhere")}, seed=0)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        make_source({"name": "folder", "path": str(tmp_path / "empty")}, seed=0)
    _write_png(tmp_path / "mixed" / "top.png", np.zeros((2, 2), np.uint8))
    _write_png(tmp_path / "mixed" / "cls" / "x.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="both at the top level .* and in sub-folders"):
        make_source({"name": "folder", "path": str(tmp_path / "mixed")}, seed=0)
    _write_png(tmp_path / "bad" / "a.png", np.zeros((2, 2), np.uint8))
    (tmp_path / "bad" / "b.png").write_bytes(b"\x89PNG not really")
    src = make_source({"name": "folder", "path": str(tmp_path / "bad")}, seed=0)
    with pytest.raises(ValueError, match="cannot decode image .*b.png"):
        src.get_batch(0, 2)


def _every_kind_of_image(root, size=(23, 17)):
    """Files of one non-square size (WxH) in each mode a folder meets: JPEG RGB and grey, PNG RGB,
    grey, RGBA, grey+alpha, palette, 1-bit; smooth content, so resizing has real work to do."""
    rng = np.random.default_rng(0)
    w, h = size
    coarse = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    rgb = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC))
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    root.mkdir()
    Image.fromarray(rgb).save(root / "a_rgb.jpg", quality=85)
    Image.fromarray(noise[..., 0]).save(root / "b_grey.jpg")
    Image.fromarray(noise).save(root / "c_rgb.png")
    Image.fromarray(rgb[..., 1]).save(root / "d_grey.png")
    Image.fromarray(np.dstack([rgb, noise[..., :1]])).save(root / "e_rgba.png")
    Image.fromarray(np.dstack([noise[..., 1], rgb[..., 2]])).save(root / "f_grey_alpha.png")
    Image.fromarray(noise).quantize(16).save(root / "g_palette.png")
    Image.fromarray(rgb[..., 0]).convert("1").save(root / "h_bits.png")
    return root


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_folder_decoding_in_pil_gives_the_pixels_of_the_numpy_path_bit_for_bit(channels, tmp_path):
    """FolderSource crops and resizes in PIL (crop_resize_image); the pixels equal those of the
    earlier path, which copied each decoded image to numpy and applied stored_pixels to it: every
    mode, crop on and off, resize down, up and not at all."""
    from jaxgan.data import FolderSource, stored_pixels

    root = _every_kind_of_image(tmp_path / "f")
    for crop in (None, "center"):
        for resolution in (None, 9, 40):
            src = FolderSource(root, seed=0, resolution=resolution, channels=channels, crop=crop)
            got = src.stored_examples(np.arange(len(src.paths)))["x"]
            mode = src.mode
            assert mode == {None: "RGB", 1: "L", 3: "RGB"}[channels]  # the first file (JPEG RGB) decides
            for row, path in enumerate(src.paths):
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert(mode) if image.mode != mode else image, dtype=np.uint8)
                pixels = pixels[..., None] if pixels.ndim == 2 else pixels
                expected = stored_pixels(pixels[None], src.options)[0]
                assert got[row].shape == expected.shape == src.info.shape, (path.name, crop, resolution)
                np.testing.assert_array_equal(got[row], expected, err_msg=f"{path.name} crop={crop} "
                                                                          f"resolution={resolution}")


# --- TFDS -----------------------------------------------------------------------------------------

def test_tfds_mock():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        src = make_source({"name": "tfds", "dataset": "mnist", "split": "train", "data_dir": None}, seed=0)
        assert src.info == data.DataInfo(shape=(28, 28, 1), num_classes=10, kind="image", num_examples=12,
                                         name="mnist_train")
        batch = src.get_batch(0, 12)
        assert batch["x"].shape == (12, 28, 28, 1) and batch["x"].dtype == np.float32
        assert batch["label"].dtype == np.int32 and batch["label"].max() < 10
        assert -1 <= batch["x"].min() and batch["x"].max() <= 1
        assert_batches_equal(sub(batch, 3, 7), src.get_batch(3, 4))
        assert_batches_equal(src.get_batch(10, 5), {k: np.concatenate([src.get_batch(10, 2)[k],
                                                                       src.get_batch(12, 3)[k]]) for k in batch})
        order = np.random.default_rng([0, 0]).permutation(12)
        raw = np.stack([src.data[int(i)]["image"] for i in order])
        np.testing.assert_allclose(batch["x"], raw / 127.5 - 1, atol=1e-6)
        small = make_source({"name": "tfds", "dataset": "mnist", "resolution": 8, "channels": 3}, seed=0)
        assert small.info.shape == (8, 8, 3) and small.get_batch(0, 2)["x"].shape == (2, 8, 8, 3)
        with pytest.raises(ValueError, match=r"has no feature 'img'; its features are \['image', 'label'\]"):
            make_source({"name": "tfds", "dataset": "mnist", "image_key": "img"}, seed=0)


def test_tfds_missing_data_says_how_to_prepare(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="(?s)could not open 'mnist'.*tfds build mnist --file_format=array_record"):
        make_source({"name": "tfds", "dataset": "mnist", "data_dir": str(tmp_path)}, seed=0)


def test_importing_jaxgan_data_does_not_import_tfds():
    code = "import sys, jaxgan.data; assert 'tensorflow_datasets' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --- preprocessing and the factory ----------------------------------------------------------------

def test_preprocess():
    img = np.zeros((1, 4, 6, 3), np.uint8)
    img[0, :, 1:5] = (255, 0, 0)  # the centred 4x4 square is pure red, the side columns black
    red = preprocess(img, ImageOptions(crop="center"))
    assert red.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(red[0, ..., 0], 1.0)
    np.testing.assert_allclose(red[0, ..., 1:], -1.0)
    grey = preprocess(img, ImageOptions(crop="center", channels=1, resolution=2))
    assert grey.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(grey, 0.299 * 2 - 1, atol=1e-5)  # ITU-R 601 luma of red
    rgb = preprocess(np.full((2, 5, 5, 1), 51, np.uint8), ImageOptions(channels=3, resolution=3))
    assert rgb.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(rgb, 51 / 127.5 - 1, atol=1e-6)
    floats = preprocess(np.full((1, 5, 5, 1), 0.25, np.float32), ImageOptions(resolution=2), value_range=(0, 1))
    np.testing.assert_allclose(floats, -0.5, atol=1e-6)
    with pytest.raises(ValueError, match="channels must be 1 .* or None"):
        ImageOptions(channels=2)
    with pytest.raises(ValueError, match="crop must be 'center' or None"):
        ImageOptions(crop="random")


def test_factory_errors():
    with pytest.raises(ValueError, match=r"unknown data source 'cifar'.*choose one of \[.*'folder'.*'ring8'"):
        make_source("cifar", seed=0)
    with pytest.raises(ValueError, match=r"data source 'ring8' has no option\(s\) \['resolution'\]"):
        make_source({"name": "ring8", "resolution": 32}, seed=0)
    with pytest.raises(ValueError, match=r"data source 'npz' needs option\(s\) \['path'\]"):
        make_source({"name": "npz"}, seed=0)
    with pytest.raises(ValueError, match="'name' key"):
        make_source({"path": "x"}, seed=0)
    with pytest.raises(ValueError, match="data seed must be >= 0"):
        make_source("ring8", seed=-1)
    assert set(data.SOURCES) == {"ring8", "grid25", "idx", "mnist_idx", "npz", "npy", "folder", "tfds",
                                 "stacked_mnist", "store"}


# --- uint8 batches: stored bytes to the device, the same floats after conversion -----------------

def test_uint8_to_unit_is_the_same_bits_in_numpy_and_in_a_compiled_function():
    import jax
    import jax.numpy as jnp

    from jaxgan.data import uint8_to_unit
    from jaxgan.step import as_float

    x = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    host = uint8_to_unit(x)
    device = np.asarray(jax.jit(as_float)({"x": x, "label": np.arange(4, dtype=np.int32)})["x"])
    assert host.dtype == device.dtype == np.float32
    np.testing.assert_array_equal(host.view(np.uint32), device.view(np.uint32))
    assert host.min() == -1.0 and host.max() == 1.0 and np.all(np.diff(host.ravel()) > 0)
    np.testing.assert_allclose(host.ravel(), np.arange(256) / 127.5 - 1, rtol=0, atol=1.2e-7)  # 1 ulp
    np.testing.assert_array_equal(preprocess(x, ImageOptions()).view(np.uint32), host.view(np.uint32))
    assert jnp.issubdtype(jax.eval_shape(as_float, {"x": x})["x"].dtype, jnp.floating)


def _grey_npz(tmp_path):
    x, y = small_arrays()
    np.savez(tmp_path / "g.npz", images=x, y=y)
    return {"name": "npz", "path": str(tmp_path / "g.npz"), "x_key": "images", "label_key": "y",
            "resolution": 6, "channels": 3}


@pytest.mark.parametrize("make", [_npz, _grey_npz, _folder,
                                  lambda p: {**_folder(p), "resolution": 4, "crop": "center", "part": [1, 2]}],
                         ids=["npz", "grey-npz-resized-to-rgb", "folder", "folder-part"])
def test_stored_batches_convert_to_the_float_batches_bit_for_bit(make, tmp_path):
    from jaxgan.data import stored_batch, uint8_to_unit

    src = make_source(make(tmp_path), seed=2)
    for start, size in ((0, 5), (9, 11)):
        floats, stored = src.get_batch(start, size), stored_batch(src, start, size)
        assert stored["x"].dtype == np.uint8 and stored["x"].shape == floats["x"].shape
        np.testing.assert_array_equal(uint8_to_unit(stored["x"]).view(np.uint32), floats["x"].view(np.uint32))
        assert stored.keys() == floats.keys()
        for k in set(floats) - {"x"}:
            np.testing.assert_array_equal(stored[k], floats[k])
    stored = process_batch(src, 1, 4, process_index=1, process_count=2, stored=True)
    np.testing.assert_array_equal(stored["x"], stored_batch(src, 6, 2)["x"])


def test_float_sources_and_float_transforms_stay_float(tmp_path):
    from jaxgan.data import stored_batch

    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((6, 4, 4, 3), dtype=np.float32))
    rgb = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    for spec in ({"name": "npy", "path": str(tmp_path / "f.npy")},
                 {"name": "npy", "path": str(tmp_path / "rgb.npy"), "channels": 1},  # luma: computed in float32
                 {"name": "npy", "path": str(tmp_path / "rgb.npy"), "transform": "invert"},
                 {"name": "npy", "path": str(tmp_path / "rgb.npy"), "sr_factor": 2}, "ring8"):
        src = make_source(spec, seed=0)
        assert_batches_equal(stored_batch(src, 3, 4), src.get_batch(3, 4))
