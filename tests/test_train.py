"""End to end: the jaxgan command trains, writes its workdir, stops on SIGTERM and resumes exactly."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import chex
import numpy as np
import pytest

from conftest import final_state
from jaxgan import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def jaxgan(*args):
    return cli.main(list(args))


def test_smoke_run_writes_the_whole_workdir(tmp_path):
    wd = tmp_path / "run"
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd)) == 0
    config = json.loads((wd / "config.json").read_text())
    assert config["smoke"] is True and config["data"]["name"] == "ring8"
    lines = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
    train_lines = [l for l in lines if "loss/d" in l]
    assert [l["step"] for l in train_lines] == [2, 4, 6, 8, 10]
    for key in ("kimg", "loss/g", "logits/real", "grad_norm/d", "steps_per_sec", "images_per_sec",
                "input/wait_fraction", "input/images_per_sec"):  # input/: jaxgan.pipeline.InputMeter
        assert key in train_lines[-1], key
    assert all(0 <= l["input/wait_fraction"] <= 1 and l["input/images_per_sec"] > 0 for l in train_lines)
    assert train_lines[-1]["kimg"] == pytest.approx(0.64)
    assert sorted(p.name for p in (wd / "samples").iterdir()) == ["00000005.png", "00000010.png"]
    # each grid's spread against as many real points (10 steps in, G's points still lie inside the
    # ring: about 0.3; the metric's own thresholds are tested on real digits in test_writers.py)
    diversity = [(l["step"], l["samples/diversity"]) for l in lines if "samples/diversity" in l]
    assert [step for step, _ in diversity] == [5, 10]
    assert all(0.1 < d < 2.0 for _, d in diversity), diversity
    assert list((wd / "tb").iterdir()), "no TensorBoard events"
    assert (wd / "checkpoints" / "10").is_dir()
    ev = json.loads((wd / "eval.json").read_text())
    assert ev["step"] == 10 and ev["modes1k/num_modes"] == 8
    compile_info = json.loads((wd / "compile.json").read_text())
    assert compile_info["flops_per_step_lowered"] > 0

    # sample and eval read the same workdir
    out = tmp_path / "s.npy"
    assert jaxgan("sample", str(wd), "--n", "50", "--out", str(out)) == 0
    x = np.load(out)
    assert x.shape == (50, 2) and x.dtype == np.float32
    assert jaxgan("sample", str(wd), "--n", "50", "--out", str(tmp_path / "s.png")) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


def test_eval_prints_json(tmp_path, capsys):
    wd = tmp_path / "run"
    jaxgan("train", "ring8", "--smoke", "--workdir", str(wd))
    capsys.readouterr()
    assert jaxgan("eval", str(wd)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 10 and "modes1k/covered" in out


def test_dry_run_prints_the_config_and_writes_nothing(tmp_path, capsys):
    assert jaxgan("train", "ring8", "--dry-run", "--set", "train.batch_size=32", "--workdir", str(tmp_path / "x")) == 0
    assert json.loads(capsys.readouterr().out)["train"]["batch_size"] == 32
    assert not (tmp_path / "x").exists()


def test_resuming_with_a_different_config_is_refused(tmp_path, capsys):
    wd = str(tmp_path / "run")
    jaxgan("train", "ring8", "--smoke", "--workdir", wd, "--set", "train.total_kimg=0.32")
    assert jaxgan("train", "ring8", "--smoke", "--workdir", wd, "--set", "train.total_kimg=0.32",
                  "--set", "loss=hinge") == 2
    assert "different config (loss: saved 'non_saturating', now 'hinge')" in capsys.readouterr().err


def test_non_finite_metrics_stop_the_run_with_a_clear_message(tmp_path, capsys):
    wd = str(tmp_path / "run")
    code = jaxgan("train", "ring8", "--smoke", "--workdir", wd, "--set", "optim.d_lr=1e30",
                  "--set", "optim.g_lr=1e30", "--set", "penalty.r1_gamma=0.0")
    assert code == 2
    assert "non-finite metrics at step" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    args = ["train", "ring8", "--smoke", "--set", "train.total_kimg=128", "--set", "log_every_steps=20",
            "--set", "checkpoint_every_steps=500", "--set", "sample_every_steps=0"]  # 2,000 steps
    cmd = [sys.executable, "-m", "jaxgan.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    a, b = tmp_path / "interrupted", tmp_path / "straight"

    proc = subprocess.Popen([*cmd, "--workdir", str(a)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = a / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never logged"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "SIGTERM: stopping at step" in err
    assert "saved checkpoint at step" in err
    stopped_at = int(final_state(a).step)
    assert 0 < stopped_at < 2000, f"the signal arrived too late to test anything (step {stopped_at})"
    assert not (a / "eval.json").exists()

    for workdir in (a, b):  # resume a; run b from scratch in one go (neither evaluation is read)
        done = subprocess.run([*cmd, "--workdir", str(workdir), "--set", "eval.at_end=false"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    sa, sb = final_state(a), final_state(b)
    assert int(sa.step) == int(sb.step) == 2000
    chex.assert_trees_all_equal(sa, sb)  # final_state: host arrays already
    lines = [json.loads(l) for l in metrics.read_text().splitlines()]
    steps = [l["step"] for l in lines if "loss/d" in l]  # train lines
    assert steps == list(range(20, 2001, 20)), "metrics.jsonl has missing or repeated steps after resume"


def test_evaluation_during_training_keeps_the_best_checkpoint(tmp_path):
    wd = tmp_path / "run"
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd), "--set", "eval.every_kimg=0.256",
                  "--set", "eval.best_metric=modes1k/high_quality_fraction") == 0
    evals = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()
             if "modes1k/covered" in json.loads(l)]
    assert [e["step"] for e in evals] == [4, 8, 10]  # every 4 steps (0.256 kimg / 64), and the end
    best = json.loads((wd / "best.json").read_text())
    values = [e["modes1k/high_quality_fraction"] for e in evals]
    assert best["value"] == max(values) and best["step"] == evals[values.index(max(values))]["step"]
    assert (wd / "best" / str(best["step"])).is_dir()


def test_an_unknown_best_metric_is_a_clear_error(tmp_path, capsys):
    code = jaxgan("train", "ring8", "--smoke", "--workdir", str(tmp_path / "r"), "--set", "eval.best_metric=fid",
                  "--set", "eval.every_kimg=0.256")
    assert code == 2 and "eval.best_metric 'fid' is not among this run's metrics" in capsys.readouterr().err


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    wd = tmp_path / "run"
    jaxgan("train", "ring8", "--smoke", "--workdir", str(wd))
    before = (wd / "metrics.jsonl").read_text(), (wd / "eval.json").read_text()
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd)) == 0
    assert ((wd / "metrics.jsonl").read_text(), (wd / "eval.json").read_text()) == before


@pytest.mark.parametrize("experiment", ["dcgan_mnist", "cgan_mnist", "dcgan_stacked_mnist"])
def test_image_experiments_train_and_evaluate_on_real_digits(experiment, tmp_path, mnist_dir, capsys):
    wd = tmp_path / "run"
    assert jaxgan("train", experiment, "--smoke", "--workdir", str(wd), "--set", f"data.dir={mnist_dir}") == 0
    ev = json.loads((wd / "eval.json").read_text())
    # Bounds a broken evaluation fails: the same classifier (cached by the run's evaluation) scores
    # real digits against real digits, and the 5-step generator must land clearly on the untrained side.
    from jaxgan.config import Config, load_experiment
    from jaxgan.eval import classifier as C
    from jaxgan.eval.stacked_mnist import stacked_mnist_modes
    from jaxgan.evaluate import digit_classifier
    from jaxgan.run import build
    config = Config(json.loads((wd / "config.json").read_text()))
    run = build(config, load_experiment(config.experiment))
    clf, real = digit_classifier(run), run.source.get_batch(0, 512)["x"]
    if experiment == "dcgan_stacked_mnist":
        real_modes = stacked_mnist_modes(clf, real[:256])["modes_captured"]
        with capsys.disabled():
            print(f"\n{experiment}: modes generated {ev['stacked_mnist256/modes']}, real {real_modes}")
        assert 1 <= ev["stacked_mnist256/modes"] < real_modes and real_modes >= 150
    else:
        fid_real = C.classifier_fid(clf, real[:256], real[256:])
        score_real = C.classifier_score(clf, real[256:])[0]
        with capsys.disabled():
            print(f"\n{experiment}: classifier FID generated {ev['classifier_fid256']:.2f} real {fid_real:.2f}; "
                  f"score generated {ev['classifier_score256/mean']:.2f} real {score_real:.2f}; "
                  f"held-out accuracy {ev['classifier/heldout_accuracy']:.3f}")
        assert ev["classifier/heldout_accuracy"] >= 0.5  # 20 smoke steps; 1,500 give 0.99
        assert ev["classifier_fid256"] > 5 * fid_real and 0 <= ev["classifier_pr256_k3/precision"] <= 1
        assert 1 <= ev["classifier_score256/mean"] < score_real - 0.2  # a 20-step classifier: real ~1.6
    grid = (wd / "samples" / "00000005.png")
    assert grid.stat().st_size > 0
    capsys.readouterr()
    assert jaxgan("eval", str(wd)) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 5


def test_a_relative_workdir_works(tmp_path, monkeypatch):
    # The README's first command uses the default, relative workdir runs/ring8.
    monkeypatch.chdir(tmp_path)
    assert jaxgan("train", "ring8", "--smoke") == 0
    assert (tmp_path / "runs" / "ring8-smoke" / "eval.json").exists()  # smoke runs: their own default
    assert jaxgan("train", "ring8", "--smoke") == 0  # and resumes from it


def test_a_non_finite_state_is_never_checkpointed(tmp_path, capsys):
    wd = tmp_path / "run"
    code = jaxgan("train", "ring8", "--smoke", "--workdir", str(wd), "--set", "optim.d_lr=1e30",
                  "--set", "optim.g_lr=1e30", "--set", "penalty.r1_gamma=0.0",
                  "--set", "log_every_steps=100", "--set", "checkpoint_every_steps=1")
    assert code == 2 and "non-finite metrics at step" in capsys.readouterr().err
    steps = [p.name for p in (wd / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps == [], f"checkpointed a diverged state: {steps}"


def test_a_missing_final_evaluation_is_done_on_rerun(tmp_path, caplog):
    """A run completed without its evaluation (eval.at_end=false here; a stop during the final
    evaluation leaves the same workdir) is evaluated by the same command without the option."""
    wd = tmp_path / "run"
    with caplog.at_level("INFO", logger="jaxgan"):
        assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd), "--set", "eval.at_end=false") == 0
    assert not (wd / "eval.json").exists()
    assert "not evaluated (eval.at_end=false)" in caplog.text
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd)) == 0
    assert json.loads((wd / "eval.json").read_text())["step"] == 10


def test_a_fresh_start_sets_earlier_results_aside(tmp_path):
    wd = tmp_path / "run"
    jaxgan("train", "ring8", "--smoke", "--workdir", str(wd))
    shutil.rmtree(wd / "checkpoints")  # as if the checkpoints had been removed by hand
    old_eval = (wd / "eval.json").read_text()
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(wd), "--set", "seed=1") == 0
    assert (wd / "previous-0" / "eval.json").read_text() == old_eval
    assert json.loads((wd / "eval.json").read_text())["step"] == 10


def test_the_host_runs_at_most_two_steps_ahead_of_the_devices(tmp_path, monkeypatch):
    """Dispatch is asynchronous; the loop waits for the step dispatched MAX_IN_FLIGHT steps earlier,
    so a stop signal (or a log line) never waits for a long queue of steps (it once waited 40-70 s)."""
    from jaxgan import train as train_lib
    waited, dispatched = [], []

    class Probe:  # the first metric of each step: records when the loop waits for it
        def __init__(self, i):
            self.i = i

        def block_until_ready(self):
            waited.append(self.i)
            return self

        def __float__(self):
            return 0.0

    real_compile = train_lib._compile

    def compile_with_probe(*args, **kwargs):
        compiled = real_compile(*args, **kwargs)

        def step(state, batch, norms=True):
            dispatched.append(len(dispatched))
            # the runner must not have let more than MAX_IN_FLIGHT steps pile up unwaited
            assert len(dispatched) - 1 - len(waited) <= train_lib.MAX_IN_FLIGHT
            state, metrics = compiled(state, batch, norms=norms)
            return state, {"probe": Probe(len(dispatched) - 1), **metrics}
        return step

    monkeypatch.setattr(train_lib, "_compile", compile_with_probe)
    assert jaxgan("train", "ring8", "--smoke", "--workdir", str(tmp_path / "run")) == 0
    assert len(dispatched) == 10 and waited == list(range(10 - train_lib.MAX_IN_FLIGHT))


def test_a_save_between_log_steps_checks_the_parameters_themselves():
    """Between log steps the step skips the norms; a save there (a stop signal) still refuses a
    state whose parameters went non-finite, and saves a finite one."""
    import types

    from jaxgan import train as train_lib
    saved = []
    ckpt = types.SimpleNamespace(save=lambda step, state, **kw: saved.append(step))
    run = types.SimpleNamespace(images_per_step=8, config={})
    good = types.SimpleNamespace(g_params={"w": np.ones(3, np.float32)}, d_params={"w": np.zeros(2, np.float32)})
    bad = types.SimpleNamespace(g_params={"w": np.array([1.0, np.nan], np.float32)}, d_params=good.d_params)
    metrics = {"loss/d": np.float32(0.5), "loss/g": np.float32(0.7)}  # finite: taken before the update
    with pytest.raises(train_lib.NonFiniteError, match="parameters/g"):
        train_lib._save(run, ckpt, bad, 7, metrics)
    assert saved == []
    train_lib._save(run, ckpt, good, 7, metrics)
    assert saved == [7]
