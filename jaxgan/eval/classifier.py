"""A small digit classifier that jaxgan trains itself, and the MNIST metrics built on it.

InceptionV3 was trained on ImageNet photographs; on 28x28 digits its features say little. MNIST GAN
papers instead score samples with a classifier trained on MNIST: the "MNIST score" (Inception Score
with a digit classifier's softmax), a Fréchet distance in that classifier's feature space (the
"classifier FID"), the histogram of predicted classes, and the mode count of Stacked MNIST
(:mod:`jaxgan.eval.stacked_mnist`). No such classifier ships with a package, so jaxgan trains one:

* :class:`DigitCNN`: three 3x3 stride-2 conv + ReLU layers (28 -> 14 -> 7 -> 4), a 128-unit ReLU
  layer (the feature layer) and 10 logits; 104k parameters, no batch norm. Strided convolutions
  rather than max-pooling: on XLA:CPU their gradients are about 7x faster to compute.
* :func:`train_digit_classifier`: Adam with a cosine learning-rate decay, light augmentation (random
  shifts of up to 2 pixels), deterministic given the seed. The labelled real digits are first put in
  a canonical order that depends on their content alone (:func:`canonical_order`), then split once,
  by a fixed seeded permutation, into a training part and a held-out part (by default 2,000 digits);
  the held-out accuracy is measured and stored with the weights. So the classifier depends on the
  set of digits, not on the order a data source yields them in: two runs of one experiment with
  different seeds (whose data streams are shuffled differently) get the same classifier, and their
  classifier metrics are comparable. With the 10,000 digits of MNIST's test
  split (8,000 to train, 2,000 held out) the defaults (1,500 steps of 128) reach 99.0% held-out
  accuracy in about 40 s on two CPU cores.
* :class:`DigitClassifier`: the trained network as batched, jitted ``logits`` / ``probs`` /
  ``features`` / ``predict`` / ``accuracy``; saved as ``.npz`` (flattened parameters under
  ``/``-joined names plus a JSON metadata string; no pickle). :func:`get_or_train` caches it in a
  file keyed by the order-independent SHA-256 of the training data (:func:`data_sha256`) and the
  training settings.

Inputs are NHWC grey images in [-1, 1] (jaxgan's image convention), (N, 28, 28, 1) or (N, 28, 28);
other square sizes (e.g. 32x32 MNIST) are resized to 28x28 (bilinear, antialiased) first.

Example::

    x, y = mnist_arrays('../shared/data/mnist', split='test')
    clf = get_or_train('digit_classifier.npz', x, y)
    clf.metadata['heldout_accuracy']            # ~0.99
    classifier_fid(clf, real_images, samples)   # Fréchet distance of 128-d features
    classifier_score(clf, samples)              # (mean, std), at most 10
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import pathlib
import time
import warnings
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxgan.eval.frechet import FeatureStats, frechet_distance
from jaxgan.eval.inception_score import classifier_score as _score_from_probs
from jaxgan.eval.modes import kl_to_uniform

log = logging.getLogger(__name__)

IMAGE_SIZE = 28
NUM_CLASSES = 10
FORMAT = "jaxgan.digit_classifier"
FORMAT_VERSION = 2  # 2: canonical data order (order-independent digest and split)
_METADATA_KEY = "__metadata__"
_EVAL_BATCH = 1024


# ----------------------------------------------------------------------------------------- network

class DigitCNN(nn.Module):
    """3x3 stride-2 Conv + ReLU layers ('SAME' padding), then a ReLU feature layer and the class logits.

    With the defaults: 28x28x1 -> 14x14x32 -> 7x7x64 -> 4x4x32 -> 128 features -> 10 logits,
    104,234 parameters.

    Attributes:
      widths: output channels of the conv layers.
      feature_dim: width of the penultimate (feature) layer.
      num_classes: number of logits.
    """

    widths: tuple[int, ...] = (32, 64, 32)
    feature_dim: int = 128
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(N, 28, 28, 1) images in [-1, 1] -> ``(logits (N, num_classes), features (N, feature_dim))``."""
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2), name=f"conv{i}")(x))
        x = x.reshape(x.shape[0], -1)
        features = nn.relu(nn.Dense(self.feature_dim, name="feature")(x))
        return nn.Dense(self.num_classes, name="logits")(features), features


def _arch(module: DigitCNN) -> dict[str, Any]:
    return {"widths": list(module.widths), "feature_dim": module.feature_dim, "num_classes": module.num_classes}


def _module(arch: Mapping[str, Any]) -> DigitCNN:
    return DigitCNN(widths=tuple(int(w) for w in arch["widths"]), feature_dim=int(arch["feature_dim"]),
                    num_classes=int(arch["num_classes"]))


# ------------------------------------------------------------------------------------------ inputs

def as_digit_batch(x: Any, what: str = "images") -> np.ndarray:
    """Validates grey images: (N, H, W) or (N, H, W, 1) with H == W, float in [-1, 1] -> float32 NHWC.

    Values a little outside [-1, 1] (an unclipped generator) pass; values beyond +-2 are an error.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] != 1 or x.shape[1] != x.shape[2]:
        hint = ""
        if x.ndim == 4 and x.shape[-1] == 3:
            hint = (" It has 3 channels: for Stacked MNIST classify each channel "
                    "(jaxgan.eval.stacked_mnist.stacked_mnist_modes does).")
        elif x.ndim == 4 and x.shape[1] == 1:
            hint = " It looks channels-first (NCHW): transpose it with x.transpose(0, 2, 3, 1)."
        raise ValueError(f"{what} must be square grey images shaped (N, H, W) or (N, H, W, 1), NHWC, "
                         f"got shape {x.shape}.{hint}")
    if x.dtype == np.uint8:
        raise TypeError(f"{what} are uint8: the classifier takes float images in [-1, 1] (jaxgan's convention); "
                        f"convert with x / 127.5 - 1")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{what} must be float images in [-1, 1], got dtype {x.dtype}")
    if x.size and np.abs(x).max() > 2.0:  # far outside [-1, 1]: [0, 255] pixels, or not images at all
        raise ValueError(f"{what} have values up to {np.abs(x).max():g}, but the classifier takes images in "
                         f"[-1, 1]; rescale them (e.g. x / 127.5 - 1 for [0, 255])")
    return x.astype(np.float32, copy=False)


def _resize(x: jax.Array) -> jax.Array:
    """Square images of any size -> 28x28 (bilinear, antialiased when shrinking); 28x28 passes through."""
    if x.shape[1] == IMAGE_SIZE:
        return x
    return jax.image.resize(x, (x.shape[0], IMAGE_SIZE, IMAGE_SIZE, x.shape[3]), "linear", antialias=True)


@functools.partial(jax.jit, static_argnames=("module",))
def _forward(module: DigitCNN, params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return module.apply({"params": params}, _resize(x))


def _chunk_size(n: int, batch_size: int) -> int:
    """A power of two >= n, at most ``batch_size``: few distinct shapes, so few compilations."""
    return min(batch_size, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


# --------------------------------------------------------------------------------------- classifier

@dataclasses.dataclass(frozen=True, eq=False)
class DigitClassifier:
    """A trained :class:`DigitCNN`: its parameters and the metadata of how it was trained.

    All methods take grey images (see :func:`as_digit_batch`) as numpy or jax arrays, run in jitted
    batches of ``batch_size`` and return numpy arrays.

    Attributes:
      module: the network.
      params: its parameters (a nested dict of arrays).
      metadata: a JSON-able dict: ``arch``, ``train`` (seed, steps, ...), ``heldout_accuracy``,
        ``data_sha256`` (of the labelled data it was trained from, in any order), ``num_params``.
      batch_size: rows per jitted call.
    """

    module: DigitCNN
    params: Any
    metadata: dict[str, Any]
    batch_size: int = _EVAL_BATCH

    def _outputs(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        x = as_digit_batch(x)
        n = x.shape[0]
        chunk = _chunk_size(n, self.batch_size)
        logits, features = [], []
        for start in range(0, n, chunk):
            part = x[start:start + chunk]
            rows = part.shape[0]
            if rows < chunk:
                part = np.concatenate([part, np.zeros((chunk - rows,) + part.shape[1:], part.dtype)])
            lg, ft = _forward(self.module, self.params, jnp.asarray(part))
            logits.append(np.asarray(lg)[:rows])
            features.append(np.asarray(ft)[:rows])
        if not logits:
            return (np.zeros((0, self.module.num_classes), np.float32),
                    np.zeros((0, self.module.feature_dim), np.float32))
        return np.concatenate(logits), np.concatenate(features)

    def logits(self, x: Any) -> np.ndarray:
        """(N, num_classes) float32 logits."""
        return self._outputs(x)[0]

    def probs(self, x: Any) -> np.ndarray:
        """(N, num_classes) float32 softmax probabilities."""
        return np.asarray(jax.nn.softmax(jnp.asarray(self.logits(x)), axis=-1))

    def features(self, x: Any) -> np.ndarray:
        """(N, feature_dim) float32 activations of the penultimate layer (the classifier-FID space)."""
        return self._outputs(x)[1]

    def predict(self, x: Any) -> np.ndarray:
        """(N,) int32 predicted classes."""
        return np.argmax(self.logits(x), axis=-1).astype(np.int32)

    def accuracy(self, x: Any, y: Any) -> float:
        """Fraction of ``x`` whose predicted class is ``y``."""
        y = np.asarray(y)
        if y.shape != (np.shape(x)[0],):
            raise ValueError(f"labels must be ({np.shape(x)[0]},) to match the images, got shape {y.shape}")
        return float(np.mean(self.predict(x) == y))

    @property
    def num_params(self) -> int:
        return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(self.params)))

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path`` (``.npz``): every parameter under its ``/``-joined name, plus the metadata as
        a JSON string under ``__metadata__``. Written to a temporary file and renamed, so a reader never
        sees a half-written cache."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        flat = traverse_util.flatten_dict(jax.device_get(self.params), sep="/")
        arrays = {k: np.asarray(v) for k, v in flat.items()}
        metadata = dict(self.metadata, format=FORMAT, version=FORMAT_VERSION, arch=_arch(self.module))
        arrays[_METADATA_KEY] = np.array(json.dumps(metadata, sort_keys=True))
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append '.npz' to the name
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DigitClassifier":
        """Reads a classifier written by :meth:`save` (never unpickles).

        Raises:
          FileNotFoundError: no such file.
          ValueError: not a jaxgan digit-classifier file, or parameters that do not fit its architecture.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"digit classifier file not found: {path} (train one with "
                                    f"jaxgan.eval.classifier.get_or_train)")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"cannot read {path} as a digit classifier .npz (corrupt or truncated?): {e}") from e
        if _METADATA_KEY not in arrays:
            raise ValueError(f"{path} is not a jaxgan digit classifier: it has no {_METADATA_KEY} entry")
        metadata = json.loads(str(arrays.pop(_METADATA_KEY)))
        fmt, version = metadata.pop("format", None), metadata.pop("version", None)
        if fmt != FORMAT or version != FORMAT_VERSION:
            raise ValueError(f"{path} has format {fmt!r} version {version!r}; expected {FORMAT!r} version "
                             f"{FORMAT_VERSION}: delete it to retrain")
        module = _module(metadata["arch"])
        params = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in arrays.items()}, sep="/")
        expected = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))
        got = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), params)
        want = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), expected["params"])
        if got != want:
            raise ValueError(f"{path}: parameters {got} do not match the architecture {metadata['arch']} "
                             f"({want})")
        return cls(module, params, metadata)


# ---------------------------------------------------------------------------------------- training

def _row_keys(images: Any, labels: Any) -> tuple[tuple[int, ...], list[bytes]]:
    """(image shape, per-row BLAKE2b-128 digests of each image's float32 bytes followed by its int32 label)."""
    x = np.ascontiguousarray(as_digit_batch(images))
    y = np.ascontiguousarray(np.asarray(labels), dtype=np.int32)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be ({x.shape[0]},) to match the images, got shape {y.shape}")
    rows = x.reshape(x.shape[0], -1)
    return x.shape, [hashlib.blake2b(r.tobytes() + l.tobytes(), digest_size=16).digest() for r, l in zip(rows, y)]


def canonical_order(images: Any, labels: Any) -> np.ndarray:
    """(N,) indices that put labelled digits in an order fixed by their content alone.

    Rows are sorted by the BLAKE2b digest of each image's float32 bytes followed by its int32 label.
    Any ordering of the same digits (file order, or a data stream shuffled by a run's seed) is put
    in the same order; identical rows are interchangeable, so ties do not matter.

    Example:
      >>> x = np.linspace(-1, 1, 5 * 28 * 28, dtype=np.float32).reshape(5, 28, 28, 1)
      >>> y = np.arange(5)
      >>> perm = np.array([3, 0, 4, 1, 2])
      >>> bool((x[canonical_order(x, y)] == x[perm][canonical_order(x[perm], y[perm])]).all())
      True
    """
    _, keys = _row_keys(images, labels)
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def data_sha256(images: Any, labels: Any) -> str:
    """SHA-256 of labelled digits, independent of their order: of the images' shape and the sorted
    per-row digests of :func:`canonical_order` (float32 NHWC image bytes and int32 label per row).
    The same digits in any order have the same digest; changing one pixel or label changes it."""
    shape, keys = _row_keys(images, labels)
    h = hashlib.sha256()
    h.update(json.dumps({"x": list(shape), "rows": "sorted blake2b-128 of float32 image + int32 label"}).encode())
    for key in sorted(keys):
        h.update(key)
    return h.hexdigest()


def data_split(images: Any, labels: Any, holdout: int = 2000, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's (train, held-out) indices into ``images``: :func:`split_indices` applied to
    the digits in :func:`canonical_order`, so the same digits are held out whatever their order."""
    order = canonical_order(images, labels)
    train, held = split_indices(len(order), holdout, split_seed)
    return order[train], order[held]


def split_indices(n: int, holdout: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The train / held-out split: ``perm = np.random.default_rng(seed).permutation(n)``; the first
    ``n - holdout`` indices train, the last ``holdout`` are held out.

    Example:
      >>> train, held = split_indices(10, holdout=2)
      >>> len(train), len(held), sorted(np.concatenate([train, held]).tolist()) == list(range(10))
      (8, 2, True)
    """
    if not 0 <= holdout < n:
        raise ValueError(f"holdout must be in [0, {n}) for {n} labelled digits, got {holdout}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n - holdout], perm[n - holdout:]


def random_shift(key: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
    """Translates each image by an independent integer offset in [-max_shift, max_shift]^2, filling
    with the background value -1."""
    if max_shift == 0:
        return x
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
    crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


@functools.lru_cache(maxsize=8)  # repeated trainings with the same settings compile once
def _train_step(module: DigitCNN, learning_rate: float, steps: int, max_shift: int):
    """A jitted ``(params, opt_state, key, x, y) -> (params, opt_state, loss)``: one Adam step of
    softmax cross-entropy on ``x`` shifted by up to ``max_shift`` pixels with ``key``.

    A Python loop over this step runs several times faster on CPU than the same steps inside one
    ``lax.scan``: XLA:CPU runs convolution gradients inside a loop body far more slowly.
    """

    tx = _optimizer(learning_rate, steps)

    def loss_fn(params, x, y):
        logits, _ = module.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, opt_state, key, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, random_shift(key, x, max_shift), y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def batch_indices(num_examples: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) training-row indices: step s takes rows ``s % E * B .. + B - 1`` of epoch
    ``s // E``'s permutation ``np.random.default_rng([seed, epoch]).permutation(num_examples)``, with
    ``E = num_examples // batch_size`` full batches per epoch (the remainder is skipped that epoch)."""
    per_epoch = num_examples // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {num_examples} training digits")
    out = np.empty((steps, batch_size), np.int64)
    for epoch in range(-(-steps // per_epoch)):
        perm = np.random.default_rng([seed, epoch]).permutation(num_examples)[:per_epoch * batch_size]
        first = epoch * per_epoch
        rows = perm.reshape(per_epoch, batch_size)[:steps - first]
        out[first:first + len(rows)] = rows
    return out


def train_digit_classifier(images: Any, labels: Any, *, steps: int = 1500, batch_size: int = 128, seed: int = 0,
                           learning_rate: float = 3e-3, augment: bool = True, max_shift: int = 2,
                           holdout: int = 2000, split_seed: int = 0,
                           module: DigitCNN = DigitCNN()) -> DigitClassifier:
    """Trains a :class:`DigitCNN` on labelled real digits; deterministic given the seeds.

    The data are split by :func:`data_split` (``split_seed``): in :func:`canonical_order`, so the
    result does not depend on the order of ``images``, ``N - holdout`` digits train and ``holdout``
    are held out and only measured. Training is ``steps`` Adam steps (Kingma & Ba, 2015)
    of softmax cross-entropy on batches of ``batch_size`` drawn epoch by epoch without replacement,
    learning rate ``learning_rate`` decayed to 0 by a cosine (Loshchilov & Hutter, 2017), each image
    shifted by up to ``max_shift`` pixels when ``augment`` (offsets from ``fold_in(key, step)``); batch
    order from :func:`batch_indices`. One jitted step, called from a Python loop.

    Args:
      images: (N, 28, 28[, 1]) float digits in [-1, 1].
      labels: (N,) class ids in [0, 10).
      steps, batch_size, seed, learning_rate: the optimisation (``seed``: initialisation, batch order
        and augmentation).
      augment, max_shift: random translations of up to ``max_shift`` pixels.
      holdout, split_seed: the held-out split.
      module: the network.

    Returns:
      A :class:`DigitClassifier` whose ``metadata`` records the settings, the training time, the
      held-out accuracy and the data's (order-independent) SHA-256.

    Example:
      >>> x, y = mnist_arrays('../shared/data/mnist', split='test')       # doctest: +SKIP
      >>> train_digit_classifier(x, y).metadata['heldout_accuracy']       # doctest: +SKIP
      0.99...
    """
    x = as_digit_batch(images)
    if x.shape[1] != IMAGE_SIZE:
        raise ValueError(f"train on {IMAGE_SIZE}x{IMAGE_SIZE} digits, got {x.shape[1]}x{x.shape[2]}")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ({x.shape[0]},) integers to match the images, got {y.dtype} {y.shape}")
    if y.size and not 0 <= y.min() <= y.max() < module.num_classes:
        raise ValueError(f"labels must be in [0, {module.num_classes}), got [{y.min()}, {y.max()}]")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    train_idx, held_idx = data_split(x, y, holdout, split_seed)
    order = batch_indices(len(train_idx), batch_size, steps, seed)

    init_key, shift_key = jax.random.split(jax.random.key(seed))
    params = module.init(init_key, jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))["params"]
    opt_state = _optimizer(learning_rate, steps).init(params)
    step_fn = _train_step(module, float(learning_rate), int(steps), int(max_shift) if augment else 0)
    x_train, y_train = x[train_idx], y[train_idx].astype(np.int32)
    t0 = time.perf_counter()
    losses = []
    for s, idx in enumerate(order):
        params, opt_state, loss = step_fn(params, opt_state, jax.random.fold_in(shift_key, s), x_train[idx],
                                          y_train[idx])
        losses.append(loss)
    losses = np.asarray(jax.device_get(losses))
    seconds = time.perf_counter() - t0
    if not np.isfinite(losses).all():
        raise FloatingPointError(f"digit classifier training diverged (non-finite loss); lower learning_rate "
                                 f"({learning_rate})")
    metadata = {
        "train": _train_record(steps, batch_size, seed, learning_rate, augment, max_shift, holdout, split_seed),
        "arch": _arch(module),
        "num_train": int(len(train_idx)),
        "data_sha256": data_sha256(x, y),
        "seconds": round(seconds, 2),
        "final_loss": float(losses[-max(1, steps // 20):].mean()),
    }
    clf = DigitClassifier(module, params, metadata)
    metadata["num_params"] = clf.num_params
    metadata["heldout_accuracy"] = clf.accuracy(x[held_idx], y[held_idx]) if holdout else None
    log.info("digit classifier: %d steps in %.1f s, held-out accuracy %s", steps, seconds,
             metadata["heldout_accuracy"])
    return clf


def get_or_train(cache_path: str | os.PathLike, images: Any, labels: Any, **train_kwargs) -> DigitClassifier:
    """The classifier cached at ``cache_path``, or a freshly trained one (then saved there).

    The cache is used when its ``data_sha256`` matches ``images``/``labels`` (in any order: the
    digest and the classifier depend on the digits, not their order) and its training settings
    and architecture match ``train_kwargs`` (with :func:`train_digit_classifier`'s defaults); otherwise,
    or when the file is unreadable (with a warning), the classifier is retrained and the file replaced.

    Args:
      cache_path: the ``.npz`` file.
      images, labels: the labelled real digits (see :func:`train_digit_classifier`).
      **train_kwargs: passed to :func:`train_digit_classifier`.
    """
    cache_path = pathlib.Path(cache_path)
    settings, arch = _requested(train_kwargs)
    digest = data_sha256(images, labels)
    if cache_path.exists():
        try:
            cached = DigitClassifier.load(cache_path)
        except (ValueError, KeyError) as e:
            warnings.warn(f"ignoring the unreadable digit-classifier cache {cache_path} and retraining: {e}")
            cached = None
        if cached is not None:
            if cached.metadata.get("data_sha256") != digest:
                log.info("digit classifier cache %s was trained on other data: retraining", cache_path)
            elif cached.metadata.get("train") != settings or cached.metadata.get("arch") != arch:
                log.info("digit classifier cache %s has other training settings: retraining", cache_path)
            else:
                return cached
    clf = train_digit_classifier(images, labels, **train_kwargs)
    clf.save(cache_path)
    return clf


def _train_record(steps, batch_size, seed, learning_rate, augment, max_shift, holdout, split_seed) -> dict:
    """The training settings as stored in the metadata (JSON types)."""
    return {"steps": int(steps), "batch_size": int(batch_size), "seed": int(seed),
            "learning_rate": float(learning_rate), "augment": bool(augment), "max_shift": int(max_shift),
            "holdout": int(holdout), "split_seed": int(split_seed)}


def _requested(train_kwargs: Mapping[str, Any]) -> tuple[dict, dict]:
    """(training settings, architecture) that ``train_digit_classifier(x, y, **train_kwargs)`` would use."""
    bound = inspect.signature(train_digit_classifier).bind(None, None, **train_kwargs)  # TypeError if unknown
    bound.apply_defaults()
    args = dict(bound.arguments)
    del args["images"], args["labels"]
    return _train_record(**{k: v for k, v in args.items() if k != "module"}), _arch(args["module"])


def mnist_arrays(dir: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray]:  # noqa: A002
    """All of an MNIST split, in file order: (N, 28, 28, 1) float32 in [-1, 1] and (N,) int32 labels."""
    from jaxgan.data.idx import mnist_idx
    src = mnist_idx(dir, seed=0, split=split)
    batch = src.examples(np.arange(src.info.num_examples))
    return batch["x"], batch["label"]


# ----------------------------------------------------------------------------------------- metrics

def classifier_fid(clf: DigitClassifier, real_x: Any, fake_x: Any, eps: float = 0.0) -> float:
    """Fréchet distance between real and generated digits in the classifier's feature space.

    FD = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}) of the penultimate-layer features
    (Heusel et al., 2017, with a digit classifier in place of InceptionV3). Depends on the
    classifier: compare numbers from the same classifier file only.

    Args:
      clf: the digit classifier.
      real_x: real digits, or the :class:`FeatureStats` of their features (e.g. cached).
      fake_x: generated digits (at least 2).

    Returns:
      The distance, a Python float.
    """
    real = real_x if isinstance(real_x, FeatureStats) else FeatureStats.from_features(clf.features(real_x))
    fake = FeatureStats.from_features(clf.features(fake_x))
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov, eps=eps)


def classifier_score(clf: DigitClassifier, x: Any, splits: int = 10) -> tuple[float, float]:
    """The "MNIST score": Inception Score with the digit classifier's softmax, ``(mean, std)``.

    exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks (Salimans et al., 2016); in [1, 10], about 9.9
    for real digits. See :func:`jaxgan.eval.inception_score.classifier_score`.
    """
    return _score_from_probs(clf.probs(x), splits)


def class_histogram(clf: DigitClassifier, x: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes,) int64 counts of the predicted classes of ``x``."""
    return np.bincount(clf.predict(x), minlength=num_classes).astype(np.int64)


def class_kl_to_uniform(clf: DigitClassifier, x: Any, num_classes: int = NUM_CLASSES) -> float:
    """KL(predicted-class histogram || uniform over ``num_classes``): 0 for balanced classes, log 10
    ~ 2.30 when every sample is one digit (:func:`jaxgan.eval.modes.kl_to_uniform`)."""
    return kl_to_uniform(class_histogram(clf, x, num_classes))
