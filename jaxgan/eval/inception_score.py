"""Inception Score (Salimans et al., 2016, "Improved Techniques for Training GANs").

IS = exp(E_x KL(p(y|x) || p(y))), from a classifier's class probabilities on generated examples: high
when each example is classified confidently (low-entropy p(y|x)) and the classes are varied
(high-entropy marginal p(y)). It is computed on the host in float64 from probabilities that the
classifier (InceptionV3 for images at large, a digit classifier for MNIST) produced on the device.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.special


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation over splits of exp(E_x KL(p(y|x) || p(y))) (Salimans et al., 2016).

    For each split P of the rows (as in the reference code of improved-gan and in torch-fidelity:
    ``splits`` consecutive chunks, the k-th being rows ``k * n // splits`` to ``(k + 1) * n // splits``,
    so every row is used and chunk sizes differ by at most one)::

        p(y) = mean_{x in P} p(y|x)
        IS_P = exp(mean_{x in P} sum_y p(y|x) (log p(y|x) - log p(y)))

    with 0 log 0 = 0. Returns mean and ``np.std`` (ddof=0) of the IS_P. Its range is [1, C]: 1 for
    uninformative (uniform, or identical) predictions, C for confident predictions spread evenly
    over C classes.

    Args:
      probs: (n, C) class probabilities (softmax outputs, rows summing to 1), not logits.
      splits: number of splits, 1 <= splits <= n.

    Returns:
      ``(mean, std)`` as Python floats.

    Example:
      >>> inception_score(np.eye(4)[np.arange(40) % 4], splits=2)
      (4.0, 0.0)
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be (n, num_classes), got shape {p.shape}")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be between 1 and the number of rows ({n}), got {splits}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be class probabilities (non-negative rows that sum to 1): "
                         "apply a softmax to the classifier's logits first")
    scores = []
    for k in range(splits):
        part = p[k * n // splits:(k + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.rel_entr(part, marginal).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def classifier_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """:func:`inception_score` of another classifier's softmax, e.g. a digit classifier on MNIST.

    The same formula, exp(E_x KL(p(y|x) || p(y))), with p(y|x) from a classifier trained on the data
    set itself (the "MNIST score" or "classifier score"); its maximum is the number of classes (10
    for digits). Not comparable with Inception Scores of InceptionV3.

    Args:
      probs: (n, C) class probabilities.
      splits: number of splits.

    Returns:
      ``(mean, std)`` as Python floats.
    """
    return inception_score(probs, splits)
