"""The digit classifier jaxgan trains itself, its metrics, and Stacked MNIST (data source and mode count).

Real-data tests use MNIST's 10,000-digit test split (skipped where it is absent). The classifier is
trained once per session (module-scoped fixture, ~40-60 s on 2 CPU cores), so every test that needs it
is marked slow; the determinism and cache tests train tiny classifiers instead.
"""
import math
import time
import warnings

import chex
import jax
import numpy as np
import pytest

from conftest import MNIST_DIR
from xla_env import optimized
from jaxgan import data
from jaxgan.data import ImageOptions, StackedMNIST, make_source, mnist_idx
from jaxgan.eval import classifier as C
from jaxgan.eval.stacked_mnist import expected_modes, stacked_mnist_modes, stacked_mnist_predictions

HOLDOUT = 2000


@pytest.fixture(scope="module")
def digits():
    """All 10,000 real test digits in file order: x (N, 28, 28, 1) in [-1, 1], y (N,)."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {MNIST_DIR} "
                    f"(set JAXGAN_MNIST_DIR or put ../shared/data/mnist beside the repo)")
    return C.mnist_arrays(MNIST_DIR, split="test")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """The default classifier, trained once (8,000 digits; 2,000 held out) and cached in a temp dir."""
    x, y = digits
    t0 = time.perf_counter()
    with optimized():  # trains for long: compiled at O1 (tests/xla_env.py)
        clf = C.get_or_train(tmp_path_factory.mktemp("classifier") / "digits.npz", x, y, holdout=HOLDOUT)
    print(f"\ndigit classifier: trained in {time.perf_counter() - t0:.1f} s "
          f"({clf.metadata['train']['steps']} steps, {clf.num_params} params)")
    return clf


def heldout(digits):
    x, y = digits
    _, held = C.data_split(x, y, HOLDOUT, split_seed=0)
    return x[held], y[held]


# --------------------------------------------------------------------------------- the classifier

@pytest.mark.slow
def test_heldout_accuracy(trained, digits):
    x, y = heldout(digits)
    acc = trained.accuracy(x, y)
    print(f"held-out accuracy on {len(y)} real digits: {acc:.4f}")
    assert acc == trained.metadata["heldout_accuracy"]
    assert acc >= 0.98
    assert trained.metadata["num_train"] == 8000 and trained.metadata["data_sha256"] == C.data_sha256(*digits)
    # The same digits at 32x32 (as a 32x32 MNIST GAN makes them) are resized back and still classified.
    x32 = mnist_idx(MNIST_DIR, seed=0, split="test", resolution=32).examples(C.data_split(*digits, HOLDOUT)[1])
    assert x32["x"].shape[1:] == (32, 32, 1)
    assert trained.accuracy(x32["x"], x32["label"]) >= 0.97


@pytest.mark.slow
def test_outputs_are_consistent(trained, digits):
    x, y = heldout(digits)
    x = x[:300]
    logits, probs, feats, pred = trained.logits(x), trained.probs(x), trained.features(x), trained.predict(x)
    assert logits.shape == (300, 10) and probs.shape == (300, 10) and feats.shape == (300, 128)
    assert pred.dtype == np.int32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pred, logits.argmax(axis=1))
    assert (feats >= 0).all()  # ReLU features
    # Batching does not change the answer: one call of 300 == calls of 7 and 293.
    np.testing.assert_allclose(np.concatenate([trained.logits(x[:7]), trained.logits(x[7:])]), logits,
                               rtol=1e-5, atol=1e-5)
    # (N, 28, 28) is accepted as (N, 28, 28, 1).
    np.testing.assert_array_equal(trained.predict(x[..., 0]), pred)
    with pytest.raises(ValueError, match="3 channels: for Stacked MNIST"):
        trained.predict(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        trained.predict(np.zeros((2, 28, 28, 1), np.uint8))


@pytest.mark.slow
def test_save_load_round_trip(trained, digits, tmp_path):
    x, _ = heldout(digits)
    path = tmp_path / "clf.npz"
    trained.save(path)
    with np.load(path, allow_pickle=False) as f:  # plain arrays: no pickle needed to read it
        assert "conv0/kernel" in f.files and "__metadata__" in f.files
    loaded = C.DigitClassifier.load(path)
    np.testing.assert_array_equal(loaded.logits(x[:500]), trained.logits(x[:500]))
    assert loaded.metadata == trained.metadata
    assert loaded.metadata["arch"] == {"widths": [32, 64, 32], "feature_dim": 128, "num_classes": 10}


@pytest.mark.slow
def test_classifier_fid_and_scores(trained, digits):
    x, y = digits
    perm = np.random.default_rng(1).permutation(len(x))
    half_a, half_b = x[perm[:5000]], x[perm[5000:]]
    noise = np.random.default_rng(2).uniform(-1, 1, half_b.shape).astype(np.float32)
    repeated = np.repeat(half_b[:1], 5000, axis=0)
    fid_halves = C.classifier_fid(trained, half_a, half_b)
    fid_noise = C.classifier_fid(trained, half_a, noise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one repeated digit: singular covariance (eps retry warns)
        fid_repeated = C.classifier_fid(trained, half_a, repeated)
    print(f"classifier FID: real halves {fid_halves:.3f}, real vs noise {fid_noise:.1f}, "
          f"real vs one repeated digit {fid_repeated:.1f}")
    # Unnormalised 128-d ReLU features: real-vs-real is ~2.6 here (mostly the finite-sample bias of
    # 5,000 vs 5,000), the degenerate sets are in the thousands.
    assert 0 <= fid_halves < 10.0
    assert fid_noise > 100 * fid_halves and fid_repeated > 100 * fid_halves
    # Cached real statistics give the same number.
    real_stats = C.FeatureStats.from_features(trained.features(half_a))
    assert math.isclose(C.classifier_fid(trained, real_stats, half_b), fid_halves, rel_tol=1e-9)

    score_real, _ = C.classifier_score(trained, half_b)
    score_repeated, _ = C.classifier_score(trained, repeated)
    print(f"classifier score: real {score_real:.3f}, one repeated digit {score_repeated:.3f}")
    assert score_real > 9.0 and score_repeated < 1.01

    hist = C.class_histogram(trained, half_b)
    assert hist.shape == (10,) and hist.sum() == 5000
    np.testing.assert_allclose(hist, np.bincount(y[perm[5000:]], minlength=10), atol=30)
    assert C.class_kl_to_uniform(trained, half_b) < 0.01
    assert math.isclose(C.class_kl_to_uniform(trained, repeated), math.log(10), rel_tol=1e-6)


# ------------------------------------------------------------------------ training and its cache

def tiny(digits, n=1000):
    x, y = digits
    return x[:n], y[:n]


TINY = dict(steps=15, batch_size=64, holdout=200)


def test_training_is_deterministic(digits):
    x, y = tiny(digits)
    a = C.train_digit_classifier(x, y, seed=3, **TINY)
    b = C.train_digit_classifier(x, y, seed=3, **TINY)
    c = C.train_digit_classifier(x, y, seed=4, **TINY)
    same = jax.tree.map(lambda p, q: np.array_equal(np.asarray(p), np.asarray(q)), a.params, b.params)
    assert all(jax.tree.leaves(same))
    assert not np.array_equal(np.asarray(a.params["logits"]["kernel"]), np.asarray(c.params["logits"]["kernel"]))
    assert a.metadata["train"] == {"steps": 15, "batch_size": 64, "seed": 3, "learning_rate": 3e-3, "augment": True,
                                   "max_shift": 2, "holdout": 200, "split_seed": 0}


def test_cache_reuses_and_retrains(digits, tmp_path):
    x, y = tiny(digits)
    path = tmp_path / "sub" / "clf.npz"
    first = C.get_or_train(path, x, y, **TINY)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    again = C.get_or_train(path, x, y, **TINY)  # same data and settings: loaded, not retrained
    assert path.stat().st_mtime_ns == stamp
    assert again.metadata == C.DigitClassifier.load(path).metadata
    np.testing.assert_array_equal(again.logits(x[:50]), first.logits(x[:50]))

    other = x.copy()
    other[0, 10, 10, 0] = -other[0, 10, 10, 0] if other[0, 10, 10, 0] else 0.5  # one pixel differs
    assert C.data_sha256(other, y) != C.data_sha256(x, y)
    retrained = C.get_or_train(path, other, y, **TINY)
    assert retrained.metadata["data_sha256"] == C.data_sha256(other, y)
    assert C.DigitClassifier.load(path).metadata["data_sha256"] == C.data_sha256(other, y)

    changed = C.get_or_train(path, other, y, **{**TINY, "seed": 1})  # other settings: retrained too
    assert changed.metadata["train"]["seed"] == 1

    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable digit-classifier cache"):
        C.get_or_train(path, x, y, **TINY)
    assert C.DigitClassifier.load(path).metadata["data_sha256"] == C.data_sha256(x, y)
    with pytest.raises(TypeError):
        C.get_or_train(path, x, y, step=10)
    with pytest.raises(FileNotFoundError, match="get_or_train"):
        C.DigitClassifier.load(tmp_path / "missing.npz")


def test_split_and_batches():
    train, held = C.split_indices(10_000, 2000, seed=0)
    assert len(train) == 8000 and len(held) == 2000
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(10_000))
    order = C.batch_indices(10, 3, steps=7, seed=0)
    assert order.shape == (7, 3)
    assert sorted(order[:3].ravel().tolist()) == sorted(set(order[:3].ravel().tolist()))  # an epoch: no repeats
    with pytest.raises(ValueError, match="holdout"):
        C.split_indices(10, 10)


def synthetic_digits(n=300, seed=0):
    """Random labelled 28x28 'digits' in [-1, 1] (no MNIST needed): class k brightens row band k."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int32)
    x = rng.uniform(-1, -0.5, (n, 28, 28, 1)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 2 * k + 4:2 * k + 7] = 1.0
    return x, y


def test_classifier_does_not_depend_on_the_order_of_its_data():
    """The same digits in another order (a run's seed-shuffled stream) give the same digest, the same
    held-out digits and bit-identical parameters; one changed label changes the digest."""
    x, y = synthetic_digits()
    perm = np.random.default_rng(5).permutation(len(x))
    assert C.data_sha256(x, y) == C.data_sha256(x[perm], y[perm])
    y_other = y.copy()
    y_other[7] = (y_other[7] + 1) % 10
    assert C.data_sha256(x, y_other) != C.data_sha256(x, y)
    _, held = C.data_split(x, y, holdout=50)
    _, held_perm = C.data_split(x[perm], y[perm], holdout=50)
    np.testing.assert_array_equal(np.sort(perm[held_perm]), np.sort(held))  # the same digits held out
    kw = dict(steps=6, batch_size=32, holdout=50)
    a = C.train_digit_classifier(x, y, **kw)
    b = C.train_digit_classifier(x[perm], y[perm], **kw)
    chex.assert_trees_all_equal(a.params, b.params)
    assert a.metadata["heldout_accuracy"] == b.metadata["heldout_accuracy"]
    # A different data order within the training batches would change the parameters: the check bites.
    c = C.train_digit_classifier(x, y, **{**kw, "split_seed": 1})
    assert not np.array_equal(np.asarray(a.params["logits"]["kernel"]), np.asarray(c.params["logits"]["kernel"]))


def test_two_seeds_of_one_experiment_share_the_cached_classifier(mnist_dir, tmp_path, monkeypatch):
    """dcgan_mnist with seeds 0 and 1 (differently shuffled data streams): evaluation trains one digit
    classifier, caches it in one file, and both runs get identical features from it."""
    from jaxgan.config import Config, load_experiment
    from jaxgan.evaluate import digit_classifier
    from jaxgan.run import build

    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path / "cache"))
    module = load_experiment("dcgan_mnist")
    runs = []
    for seed in (0, 1):
        config = Config(module.get_config(smoke=True))
        config.update(seed=seed)
        config.data.dir = str(mnist_dir)
        config.eval.classifier_steps = 10
        runs.append(build(config, module))
    first = [r.source.get_batch(0, 64)["label"] for r in runs]
    assert not np.array_equal(*first)  # the two streams really are shuffled differently
    clf0 = digit_classifier(runs[0])
    files = sorted((tmp_path / "cache").iterdir())
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    clf1 = digit_classifier(runs[1])
    assert sorted((tmp_path / "cache").iterdir()) == files and files[0].stat().st_mtime_ns == stamp
    probe = runs[0].source.get_batch(0, 256)["x"]
    np.testing.assert_array_equal(clf0.features(probe), clf1.features(probe))
    assert clf0.metadata == clf1.metadata


# ------------------------------------------------------------------------- Stacked MNIST source

def test_stacked_source_on_synthetic_digits():
    # Digit image i is filled with the value i, so each channel tells which digit it holds.
    n = 37
    imgs = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
    labels = np.arange(n) % 10
    src = StackedMNIST(imgs, labels, seed=5)
    assert src.info == data.DataInfo(shape=(28, 28, 3), num_classes=1000, kind="image", num_examples=None,
                                     name="stacked_mnist")
    b = src.get_batch(100, 50)
    idx = src.digit_indices(100, 50)
    assert idx.shape == (50, 3) and idx.min() >= 0 and idx.max() < n
    pixel = np.rint((b["x"][:, 0, 0, :] + 1) * 127.5).astype(np.int64)
    np.testing.assert_array_equal(pixel, idx)
    composed = labels[idx[:, 0]] * 100 + labels[idx[:, 1]] * 10 + labels[idx[:, 2]]
    np.testing.assert_array_equal(b["label"], composed)
    with pytest.raises(ValueError, match="would mix the three stacked digits"):
        StackedMNIST(imgs, labels, seed=0, options=ImageOptions(channels=1))
    with pytest.raises(ValueError, match="uint8 grey images"):
        StackedMNIST(imgs[..., None].repeat(3, axis=-1), labels, seed=0)


def test_stacked_source_on_real_mnist(digits):
    spec = {"name": "stacked_mnist", "dir": str(MNIST_DIR), "split": "test"}
    src = make_source(spec, seed=0)
    assert src.info == data.DataInfo(shape=(28, 28, 3), num_classes=1000, kind="image", num_examples=None,
                                     name="stacked_mnist_test")
    b = src.get_batch(0, 10)
    assert b["x"].dtype == np.float32 and b["label"].dtype == np.int32 and b["x"].shape == (10, 28, 28, 3)
    # Deterministic, and a pure function of the position.
    for k in b:
        np.testing.assert_array_equal(make_source(spec, seed=0).get_batch(0, 10)[k], b[k])
        np.testing.assert_array_equal(src.get_batch(3, 4)[k], b[k][3:7])
    assert not np.array_equal(make_source(spec, seed=1).get_batch(0, 10)["label"], b["label"])
    # Channel c is the underlying MNIST digit image; the label composes the three digits' labels.
    x, y = digits
    idx = src.digit_indices(0, 10)
    for c in range(3):
        np.testing.assert_array_equal(b["x"][..., c], x[idx[:, c], ..., 0])
    np.testing.assert_array_equal(b["label"], y[idx[:, 0]] * 100 + y[idx[:, 1]] * 10 + y[idx[:, 2]])
    big = src.get_batch(0, 20_000)["label"]
    assert len(np.unique(big)) > 990
    assert make_source({**spec, "resolution": 32}, seed=0).get_batch(0, 2)["x"].shape == (2, 32, 32, 3)
    assert "stacked_mnist" in data.SOURCES


# --------------------------------------------------------------------------- Stacked MNIST modes

@pytest.mark.slow
def test_stacked_mnist_modes(trained):
    src = make_source({"name": "stacked_mnist", "dir": str(MNIST_DIR), "split": "test"}, seed=0)
    batch = src.get_batch(0, 5000)
    digits_pred = stacked_mnist_predictions(trained, batch["x"])
    true = np.stack([batch["label"] // 100, batch["label"] // 10 % 10, batch["label"] % 10], axis=1)
    assert np.mean(digits_pred == true) > 0.98

    real = stacked_mnist_modes(trained, batch["x"])
    collapsed = stacked_mnist_modes(trained, np.repeat(batch["x"][:1], 5000, axis=0))
    print(f"Stacked MNIST, 5,000 real samples: {real} (uniform expectation {expected_modes(5000):.1f}); "
          f"collapsed: {collapsed}")
    assert real["num_samples"] == 5000 and real["modes_captured"] >= 950
    assert real["kl_to_uniform"] < 0.3  # the plug-in estimate's bias alone is ~ (K - 1) / 2N = 0.1
    assert collapsed["modes_captured"] == 1
    assert math.isclose(collapsed["kl_to_uniform"], math.log(1000), rel_tol=1e-6)

    x32 = make_source({"name": "stacked_mnist", "dir": str(MNIST_DIR), "split": "test", "resolution": 32},
                      seed=0).get_batch(0, 2000)["x"]
    assert stacked_mnist_modes(trained, x32)["modes_captured"] >= expected_modes(2000) - 30
    with pytest.raises(ValueError, match="square RGB images"):
        stacked_mnist_modes(trained, batch["x"][..., :1])
