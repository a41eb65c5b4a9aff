"""Evaluation of a run's generator with the metrics that fit its data.

Metric names state their protocol: ``modes10k/covered`` is computed on 10,000 samples. For 2-D
mixtures of Gaussians (ring8, grid25) these are mode coverage, the fraction of high-quality samples
and the KL divergence of the mode histogram to uniform (VEEGAN 2017, PacGAN 2018).
"""
from __future__ import annotations

from typing import Any

from jaxgan.eval.modes import mode_metrics
from jaxgan.run import Run, generate, sample_inputs

EVAL_SEED = 7_000_001  # fixed latents, independent of the training seed


def protocol_prefix(name: str, num_samples: int) -> str:
    """``'fid'``, 10000 -> ``'fid10k'``; counts under 1000 are written in full (``'fid500'``)."""
    count = f"{num_samples // 1000}k" if num_samples % 1000 == 0 else str(num_samples)
    return f"{name}{count}"


def evaluate(run: Run, state) -> dict[str, Any]:
    """The run's evaluation metrics, as a flat dict of hierarchical names to numbers."""
    n = run.config.eval.num_samples
    z, labels = sample_inputs(run, n, EVAL_SEED)
    samples = generate(run, state, z, labels)
    results: dict[str, Any] = {}
    if hasattr(run.source, "centres") and run.source.info.kind == "points":
        m = mode_metrics(samples, run.source.centres, run.source.std)
        prefix = protocol_prefix("modes", n)
        results.update({f"{prefix}/covered": int(m["modes_covered"]),
                        f"{prefix}/num_modes": int(m["num_modes"]),
                        f"{prefix}/high_quality_fraction": float(m["high_quality_fraction"]),
                        f"{prefix}/kl_to_uniform": float(m["kl_to_uniform"])})
    return results
