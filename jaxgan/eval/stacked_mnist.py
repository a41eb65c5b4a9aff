"""Stacked MNIST mode count: how many of the 1,000 digit triples a generator produces.

The protocol of Metz et al., 2017 ("Unrolled Generative Adversarial Networks"), VEEGAN (Srivastava
et al., 2017) and PacGAN (Lin et al., 2018): a pretrained digit classifier labels each of the three
channels of a generated 28x28x3 sample, the sample's mode is ``100 d0 + 10 d1 + d2``, and one
reports

* modes captured: the number of distinct modes among the samples (a mode counts when at least one
  sample lands in it, as in PacGAN's code), out of 1,000;
* KL(p || uniform): the KL divergence from the histogram of modes to the uniform distribution over
  the 1,000 modes.

VEEGAN and PacGAN use 26,000 samples (VEEGAN's Table 2, reproduced in PacGAN's Table 3: DCGAN 99
modes, KL 3.40; VEEGAN 150 modes, KL 2.95; PacGAN's packed DCGANs reach all 1,000). With N uniform
draws the expected number of distinct modes is ``1000 (1 - (1 - 1/1000)^N)``: about 993 for N = 5,000
and 1000.0 for N = 26,000, so compare counts only at equal N; the plug-in KL of N uniform draws is
about ``(K - 1) / 2N`` (0.10 at N = 5,000, 0.02 at 26,000) rather than 0. The function takes any N; report N with the numbers (``num_samples``).

The classifier is :class:`jaxgan.eval.classifier.DigitClassifier` (trained by jaxgan on real
digits); 32x32x3 samples are resized to 28x28 per channel by the classifier.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jaxgan.eval.classifier import DigitClassifier
from jaxgan.eval.modes import kl_to_uniform

NUM_MODES = 1000
PROTOCOL_SAMPLES = 26_000  # VEEGAN 2017, PacGAN 2018


def expected_modes(num_samples: int, num_modes: int = NUM_MODES) -> float:
    """Expected distinct modes among ``num_samples`` uniform draws: K (1 - (1 - 1/K)^N).

    Example:
      >>> round(expected_modes(5000), 1)
      993.3
    """
    return num_modes * (1.0 - (1.0 - 1.0 / num_modes) ** num_samples)


def stacked_mnist_predictions(clf: DigitClassifier, samples: Any) -> np.ndarray:
    """(N, 3) int32: the classifier's digit for each channel of (N, H, W, 3) samples in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"Stacked MNIST samples must be square RGB images (N, H, W, 3), NHWC, e.g. "
                         f"(N, 28, 28, 3) or (N, 32, 32, 3); got shape {x.shape}")
    n, h, w, _ = x.shape
    per_channel = np.moveaxis(x, -1, 1).reshape(n * 3, h, w, 1)  # sample-major: s0c0, s0c1, s0c2, s1c0, ...
    return clf.predict(per_channel).reshape(n, 3)


def stacked_mnist_modes(clf: DigitClassifier, samples: Any, num_modes: int = NUM_MODES) -> dict[str, Any]:
    """Modes captured and KL to uniform of Stacked MNIST samples (VEEGAN 2017, PacGAN 2018).

    mode_i = 100 d0_i + 10 d1_i + d2_i with d_c the classifier's digit for channel c; with
    counts_k = #{i : mode_i = k}::

        modes_captured = #{k : counts_k >= 1}
        kl_to_uniform = sum_k p_k log(p_k K),  p_k = counts_k / N   (0 log 0 = 0)

    Args:
      clf: a digit classifier (:func:`jaxgan.eval.classifier.get_or_train`).
      samples: (N, 28, 28, 3) or (N, 32, 32, 3) float images in [-1, 1]; the protocol uses N = 26,000.
      num_modes: 1,000 for three digits.

    Returns:
      ``{'modes_captured': int, 'kl_to_uniform': float, 'num_samples': N}``.

    Example:
      >>> stacked_mnist_modes(clf, generator_samples)  # doctest: +SKIP
      {'modes_captured': 998, 'kl_to_uniform': 0.09, 'num_samples': 26000}
    """
    digits = stacked_mnist_predictions(clf, samples)
    if len(digits) == 0:
        raise ValueError("stacked_mnist_modes needs at least one sample")
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    if modes.max() >= num_modes:
        raise ValueError(f"mode {modes.max()} is outside num_modes={num_modes}")
    counts = np.bincount(modes, minlength=num_modes)
    return {"modes_captured": int(np.count_nonzero(counts)), "kl_to_uniform": kl_to_uniform(counts),
            "num_samples": int(len(digits))}
