"""Evaluation of a run's generator with the metrics that fit its data.

Metric names state their protocol: ``fid10k`` is computed on 10,000 generated samples, ``pr10k_k3``
is precision/recall with k = 3. Which families run:

* 2-D mixtures of Gaussians (ring8, grid25): ``modes{n}/covered``, ``/high_quality_fraction`` and
  ``/kl_to_uniform`` (VEEGAN 2017, PacGAN 2018).
* Labelled 28x28x1 data with 10 classes (MNIST from ``mnist_idx``, ``idx``, ``npz``...): with jaxgan's
  own digit classifier (trained on the run's real digits once, cached): ``classifier_fid{n}``, ``classifier_kid{n}``,
  ``classifier_pr{n}_k3``, ``classifier_score{n}`` (Inception Score with the digit classifier) and
  ``classes{n}/kl_to_uniform``.
* Stacked MNIST: ``stacked_mnist{n}/modes`` (of 1,000) and ``/kl_to_uniform`` (use n = 26,000 for
  the VEEGAN/PacGAN protocol).
* Any image data, when ``eval.inception_weights`` names a converted FID Inception file:
  ``fid{n}``, ``kid{n}``, ``pr{n}_k3``, ``dc{n}_k5`` on Inception pool3 features.
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
    """The run's evaluation metrics, as a flat dict of hierarchical names to numbers."""
    cfg = run.config.eval
    n = cfg.num_samples
    z, labels = sample_inputs(run, n, EVAL_SEED)
    samples = generate(run, state, z, labels)
    results: dict[str, Any] = {}
    info = run.source.info
    if info.kind == "points" and hasattr(run.source, "centres"):
        results.update(_mode_metrics(run, samples, n))
    elif info.shape == (28, 28, 1) and info.num_classes == 10 and info.num_examples:
        results.update(_digit_metrics(run, samples, n))
    elif run.config.data.get("name") == "stacked_mnist":
        results.update(_stacked_metrics(run, samples, n))
    if cfg.get("inception_weights") and run.source.info.kind == "image":
        results.update(_inception_metrics(run, samples, n, cfg.inception_weights))
    return results


def _mode_metrics(run: Run, samples: np.ndarray, n: int) -> dict:
    m = mode_metrics(samples, run.source.centres, run.source.std)
    p = protocol_prefix("modes", n)
    return {f"{p}/covered": int(m["modes_covered"]), f"{p}/num_modes": int(m["num_modes"]),
            f"{p}/high_quality_fraction": float(m["high_quality_fraction"]),
            f"{p}/kl_to_uniform": float(m["kl_to_uniform"])}


def digit_classifier(run: Run):
    """jaxgan's digit classifier for this run's real digits (trained once, then cached by data hash).

    The digits are the run's own labelled source, or for Stacked MNIST the MNIST digits it stacks.
    """
    from jaxgan.eval import classifier

    if run.config.data.get("name") == "stacked_mnist":  # the MNIST digits it stacks (uint8)
        images, labels = run.source.digits.astype(np.float32) / 127.5 - 1.0, run.source.labels
    else:
        data = run.source.get_batch(0, run.source.info.num_examples)
        images, labels = data["x"], data["label"]
    steps = int(run.config.eval.get("classifier_steps", 1500))
    digest = classifier.data_sha256(images, labels)[:16]
    path = cache_dir() / f"digit_classifier_{digest}_{steps}.npz"
    clf = classifier.get_or_train(path, images, labels, steps=steps)
    log.info("digit classifier %s: held-out accuracy %s", path, clf.metadata.get("heldout_accuracy"))
    return clf


def _real_images(run: Run, n: int) -> np.ndarray:
    total = run.source.info.num_examples
    return run.source.get_batch(0, min(n, total) if total else n)["x"]


def _digit_metrics(run: Run, samples: np.ndarray, n: int) -> dict:
    from jaxgan.eval import classifier
    from jaxgan.eval.frechet import fid_from_features
    from jaxgan.eval.kid import kernel_inception_distance
    from jaxgan.eval.prdc import precision_recall

    clf = digit_classifier(run)
    real_f, fake_f = clf.features(_real_images(run, n)), clf.features(samples)
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
