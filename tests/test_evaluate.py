"""jaxgan.evaluate: which metric families run for which data, the note when none fits, MNIST at
32x32 judged by the digit classifier after a resize to 28x28, and the Inception path's weights."""
import json
import logging
import types

import chex
import jax
import numpy as np
import pytest

from jaxgan import cli
from jaxgan import evaluate as ev
from jaxgan.data import make_source
from jaxgan.eval import inception
from jaxgan.experiment import base_config

CLASSIFIER_STEPS = 300  # enough for ~97% held-out accuracy; shared by the tests (one cached classifier)


def _run(data: dict, **eval_options):
    """The parts of a Run that evaluate_samples reads: its config and its source."""
    config = base_config(data=data, eval={"classifier_steps": CLASSIFIER_STEPS, **eval_options})
    return types.SimpleNamespace(config=config, source=make_source(data, seed=0))


@pytest.fixture
def rgb_run(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", x=x)
    return _run({"name": "npz", "path": str(tmp_path / "rgb.npz")}, inception_weights="off")


def test_no_fitting_family_gives_a_note_in_the_results_and_the_log(rgb_run, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path / "empty_cache"))  # no converted weights anywhere
    samples = np.random.default_rng(1).uniform(-1, 1, (32, 16, 16, 3)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="jaxgan"):
        results = ev.evaluate_samples(rgb_run, samples)
    assert list(results) == ["note"]
    note = results["note"]
    assert "no metric family fits this data (image 16x16x3)" in note
    assert "they are off here (eval.inception_weights=off)" in note
    assert note in caplog.text
    json.dumps(results)  # eval.json can hold it
    rgb_run.config.eval.inception_weights = ""  # none converted: the note says how to
    note = ev.evaluate_samples(rgb_run, samples)["note"]
    assert "tools/convert_fid_inception.py --nvidia" in note and "eval.inception_weights" in note


def test_digits_get_the_classifier_family_beside_inceptions(mnist_dir, tmp_path, monkeypatch):
    """Which families run for which data, with weights: grey digits get the digit classifier's family
    and the Inception one beside it, other images the Inception one alone, digits with the weights
    off the classifier's alone. (The families themselves are computed in test_mnist_at_32... and,
    with stand-in Inception weights, in test_stylegan2_import.py's imported-workdir test; here they
    are replaced by markers.)"""
    weights = tmp_path / "weights.npz"
    calls = []
    monkeypatch.setattr(ev, "_digit_metrics", lambda run, samples, n: calls.append("digits") or {"digits": n})
    monkeypatch.setattr(ev, "_inception_metrics",
                        lambda run, samples, n, w: calls.append("inception") or {"inception": n, "weights": w})
    digits = _run({"name": "mnist_idx", "dir": str(mnist_dir), "split": "test"}, inception_weights=str(weights))
    samples = np.zeros((8, 28, 28, 1), np.float32)
    assert ev.evaluate_samples(digits, samples) == {"digits": 8, "inception": 8, "weights": str(weights)}
    np.savez(tmp_path / "rgb.npz", x=np.zeros((16, 16, 16, 3), np.uint8))
    rgb = _run({"name": "npz", "path": str(tmp_path / "rgb.npz")}, inception_weights=str(weights))
    assert ev.evaluate_samples(rgb, np.zeros((4, 16, 16, 3), np.float32)) == {"inception": 4, "weights": str(weights)}
    digits.config.eval.inception_weights = "off"
    assert ev.evaluate_samples(digits, samples) == {"digits": 8}
    assert calls == ["digits", "inception", "inception", "digits"]


def test_inception_weights_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path))
    config = base_config(eval={"inception_weights": ""})
    assert ev.inception_weights(config) is None  # nothing converted yet
    (tmp_path / inception.NVIDIA_WEIGHTS_FILENAME).write_bytes(b"")
    # the run's platform decides (Run.platform, from the devices it is built for), never jax's default
    # backend: converted weights are the default on accelerators ...
    for platform in ("gpu", "tpu"):
        assert ev.inception_weights(config, platform) == str(tmp_path / "inception_fid_nvidia.npz")
    assert ev.inception_weights(config, "cpu") is None  # ... and hours for 10k samples on CPU: only when named
    assert ev.inception_weights(config) is None  # no platform given: this process's devices (the CPU)
    config.eval.inception_weights = "OFF"
    assert ev.inception_weights(config) is None
    config.eval.inception_weights = "/somewhere/else.npz"  # explicit wins (and must exist when used)
    assert ev.inception_weights(config) == "/somewhere/else.npz"
    with pytest.raises(FileNotFoundError, match="never falls back to random"):
        inception.FIDFeatureExtractor(ev.inception_weights(config))


def test_to_digit_size_resizes_with_antialias_and_passes_28_through():
    x = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
    assert ev.to_digit_size(x) is x
    ramp = np.linspace(-1, 1, 32, dtype=np.float32)[None, None, :, None].repeat(32, 1)  # smooth: kept
    small = ev.to_digit_size(np.concatenate([ramp, -ramp]))
    chex.assert_shape(small, (2, 28, 28, 1))
    centres = (np.arange(28) + 0.5) * 32 / 28 - 0.5  # pixel centres of the 28 grid on the 32 grid
    np.testing.assert_allclose(small[0, 10, 3:-3, 0], np.interp(centres, np.arange(32), ramp[0, 0, :, 0])[3:-3],
                               atol=5e-3)  # a triangle filter 8/7 wide, sampled
    stripes = np.tile(np.array([-1.0, 1.0], np.float32), 16)[None, None, :, None].repeat(32, 1)
    aliased = jax.image.resize(stripes, (1, 28, 28, 1), "linear", antialias=False)
    assert np.abs(ev.to_digit_size(stripes)).max() < 0.8 * np.abs(aliased).max()  # antialiased


@pytest.mark.optimized
def test_mnist_at_32_gets_classifier_metrics_that_separate_real_from_noise(mnist_dir):
    run = _run({"name": "mnist_idx", "dir": str(mnist_dir), "split": "test", "resolution": 32},
               inception_weights="off")
    assert run.source.info.shape == (32, 32, 1) and ev.is_digit_data(run.source.info)
    real = run.source.get_batch(5000, 1000)["x"]  # other digits than the reference (the first 1,000)
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
    on_real, on_noise = ev.evaluate_samples(run, real), ev.evaluate_samples(run, noise)
    print({k: round(v, 3) for k, v in on_real.items()}, {k: round(v, 3) for k, v in on_noise.items()})
    assert on_real["classifier/heldout_accuracy"] > 0.95
    for key in ("classifier_fid1k", "classifier_kid1k/mean", "classifier_pr1k_k3/precision",
                "classifier_score1k/mean", "classes1k/kl_to_uniform"):
        assert np.isfinite(on_real[key]) and np.isfinite(on_noise[key]), key
    assert on_real["classifier_fid1k"] < 0.05 * on_noise["classifier_fid1k"]
    # Recall separates noise robustly (0.0 in every run). Precision, the share of noise inside the real
    # digits' k-NN balls, depends on where this 300-step classifier maps inputs unlike any digit, which
    # moves with the float rounding of its training: 0.003 compiled at O0 and 0.327 at O1 and O2 on an
    # AVX2-only EPYC (2026-12-05), under 0.1 on the machines before. Most noise must stay outside.
    assert on_real["classifier_pr1k_k3/recall"] > 0.6 > 0.1 > on_noise["classifier_pr1k_k3/recall"]
    assert on_real["classifier_pr1k_k3/precision"] > 0.6 > 0.5 > on_noise["classifier_pr1k_k3/precision"]
    assert on_real["classifier_score1k/mean"] > 8.0 > 3.0 > on_noise["classifier_score1k/mean"]
    assert on_real["classes1k/kl_to_uniform"] < 0.05


def test_eval_of_given_samples_equals_eval_of_the_checkpoint(tmp_path, capsys):
    """`jaxgan eval --samples` (samples drawn elsewhere, e.g. on an accelerator) measures exactly what
    `jaxgan eval` does when the file holds the samples eval would draw, and something else otherwise."""
    wd = tmp_path / "run"
    assert cli.main(["train", "ring8", "--smoke", "--workdir", str(wd)]) == 0
    n = 1000  # ring8 --smoke's eval.num_samples
    capsys.readouterr()
    assert cli.main(["eval", str(wd)]) == 0
    direct = json.loads(capsys.readouterr().out)
    same = tmp_path / "same.npy"
    assert cli.main(["sample", str(wd), "--n", str(n), "--seed", str(ev.EVAL_SEED), "--out", str(same)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(wd), "--samples", str(same)]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given.pop("samples") == str(same) and direct.pop("step") == 10
    assert given == direct and direct["modes1k/num_modes"] == 8
    # points on one mode: the same command sees the collapse
    collapsed = tmp_path / "collapsed.npy"
    np.save(collapsed, np.tile(np.array([[2.0, 0.0]], np.float32), (n, 1)))
    assert cli.main(["eval", str(wd), "--samples", str(collapsed)]) == 0
    assert json.loads(capsys.readouterr().out)["modes1k/covered"] == 1
