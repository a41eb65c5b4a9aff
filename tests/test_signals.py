"""A stop signal is honoured in every phase of ``jaxgan train``, and the rerun continues exactly.

Each case trains a tiny ring8 run (4 steps: a sample grid and an evaluation at step 2, a checkpoint
at step 3, the final save, grid and evaluation at step 4) with ``jaxgan train`` in this process and
sends a real signal to this process at a chosen moment: from the run's phase hook
(``StopSignal(on_phase=...)``) or from inside the phase's own work (a wrapped ``build``, restore,
compile, checkpoint save or ``evaluate``), never by sleeping. It checks how the run ended (exit 0,
the one line it ended with, what is on disk), then reruns the same command and compares the result
with an uninterrupted run: the final state bit for bit, every metric record (but the timings), the
evaluation and the sample grids.

The last test starts the command as ``nohup jaxgan train ... &`` does (SIGINT and SIGHUP ignored
on entry) and checks that those stay ignored while SIGTERM still stops the run with a checkpoint.
"""
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

import chex
import pytest

from conftest import final_state
from jaxgan import checkpoint as checkpoint_lib, cli, periodic
from jaxgan import train as train_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# 4 steps of 64 examples: a log line every step, sample grids at steps 2 and 4, an evaluation at step 2,
# a periodic checkpoint at step 3 and the final one at 4, the final evaluation
ARGS = ["train", "ring8", "--smoke", "--set", "train.total_kimg=0.256", "--set", "checkpoint_every_steps=3",
        "--set", "sample_every_steps=2", "--set", "log_every_steps=1", "--set", "eval.every_kimg=0.128"]
RATES = {"steps_per_sec", "images_per_sec"}  # and input/* (the input pipeline's wait and rate): timings


def jaxgan(workdir, *extra) -> int:
    return cli.main([*ARGS, "--workdir", str(workdir), *extra])


def kill(sig):
    os.kill(os.getpid(), sig)


@pytest.fixture(autouse=True)
def handlers_as_from_a_terminal():
    """Each case signals this process as a run started from a terminal has it (the suite itself may run
    as a background job, SIGINT ignored, or under nohup, SIGHUP ignored: those would stay ignored);
    the suite's own handlers come back afterwards, and StopSignal must have restored the case's."""
    suite = {s: signal.getsignal(s) for s in periodic.STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    before = {s: signal.getsignal(s) for s in periodic.STOP_SIGNALS}
    try:
        yield
        assert {s: signal.getsignal(s) for s in before} == before, "StopSignal did not restore the handlers"
    finally:
        for s, handler in suite.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def outcome(workdir: pathlib.Path) -> dict:
    """What a finished run leaves: its final state, metric records without rates, eval.json, grids."""
    records = [{k: v for k, v in json.loads(line).items() if k not in RATES and not k.startswith("input/")}
               for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {"state": final_state(workdir), "records": records,
            "eval": json.loads((workdir / "eval.json").read_text()),
            "samples": sorted(p.name for p in (workdir / "samples").iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    wd = tmp_path_factory.mktemp("straight") / "run"
    assert jaxgan(wd) == 0
    return outcome(wd)


def steps_on_disk(workdir: pathlib.Path) -> list[int]:
    """The committed checkpoint steps (and no save cut off: no orbax temporary folder)."""
    names = [p.name for p in (workdir / "checkpoints").glob("*")]
    assert not [n for n in names if "tmp" in n], f"a save was cut off: {names}"
    return sorted(int(n) for n in names if n.isdigit())


def on_phase(phase: str, step: int, sig):
    """A StopSignal hook that sends ``sig`` to this process when the run enters ``phase`` at ``step``."""
    def hook(name, at):
        if (name, at) == (phase, step):
            kill(sig)
    return hook


def signal_inside(monkeypatch, target, name: str, sig, when=lambda *a, **k: True, after: bool = False):
    """Wraps ``target.name`` so that ``sig`` is sent to this process inside it (before or after the real
    call: after ``Checkpointer.save`` returns, its write is still in flight)."""
    real, sent = getattr(target, name), []

    def wrapped(*args, **kwargs):
        now = not sent and when(*args, **kwargs)  # once: a second SIGINT would abort the run
        if now and not after:
            sent.append(kill(sig))
        out = real(*args, **kwargs)
        if now and after:
            sent.append(kill(sig))
        return out
    monkeypatch.setattr(target, name, wrapped)


# phase: how the signal is sent (inside a function of jaxgan.train, from the phase hook at a step, or
# right after a checkpoint save of a step started), the signal, the run's last line, the checkpoints
# left (None: no workdir), the sample grids left
NOTHING = "stopped before the first step, nothing to save yet ({}); run the same command to continue"
CASES = {
    "start-up": ("inside build", signal.SIGTERM,
                 "SIGTERM during start-up: " + NOTHING.format("nothing was restored or trained"), None, []),
    "restore": ("inside _restore_or_init", signal.SIGINT,
                "SIGINT during restore: " + NOTHING.format("the run has no checkpoint yet"), [], []),
    "compile": ("inside _compile", signal.SIGTERM,
                "SIGTERM during compile: " + NOTHING.format("the run has no checkpoint yet"), [], []),
    "training": ("hook@1", signal.SIGHUP, "saved checkpoint at step 2 in {ckpts}", [2], ["00000002.png"]),
    "samples": ("hook@2", signal.SIGTERM, "saved checkpoint at step 2 in {ckpts}", [2], ["00000002.png"]),
    "evaluation": ("hook@2", signal.SIGINT, "saved checkpoint at step 2 in {ckpts}", [2], ["00000002.png"]),
    "save": ("save@3", signal.SIGINT, "saved checkpoint at step 3 in {ckpts}", [3], ["00000002.png"]),
    "final save": ("save@4", signal.SIGTERM, "saved checkpoint at step 4 in {ckpts}; the final evaluation is "
                   "left for the rerun", [3, 4], ["00000002.png", "00000004.png"]),
    "final evaluation": ("inside evaluate", signal.SIGTERM, "SIGTERM during the final evaluation: abandoned it; the "
                         "checkpoint of step 4 is saved in {ckpts}; run the same command to evaluate", [3, 4],
                         ["00000002.png", "00000004.png"]),
}


@pytest.mark.parametrize("phase", list(CASES))
def test_a_stop_in_each_phase_saves_or_has_nothing_to_save_and_the_rerun_continues_exactly(
        phase, reference, tmp_path, monkeypatch, caplog):
    how, sig, last_line, left, grids = CASES[phase]
    wd = tmp_path / "run"
    hook = None
    if how.startswith("hook@"):
        hook = on_phase(phase, int(how[5:]), sig)
    elif how == "inside evaluate":  # the final one (step 4), not the one at step 2
        signal_inside(monkeypatch, train_lib, "evaluate", sig, when=lambda run, state: int(state.step) == 4)
    elif how.startswith("inside "):  # e.g. inside build: the run's data and networks, after the lock
        signal_inside(monkeypatch, train_lib, how[7:], sig)
    elif how.startswith("save@"):  # right after the save started: its files are being written
        signal_inside(monkeypatch, checkpoint_lib.Checkpointer, "save", sig, after=True,
                      when=lambda self, step, *a, **k: step == int(how[5:]))

    class Hooked(periodic.StopSignal):  # what jaxgan train uses, with the hook
        def __init__(self, *args, **kwargs):
            super().__init__(*args, on_phase=hook, **kwargs)

    monkeypatch.setattr(periodic, "StopSignal", Hooked)
    caplog.set_level(logging.INFO, logger="jaxgan")
    assert jaxgan(wd) == 0
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("jaxgan") and r.levelno >= logging.WARNING]
    name = signal.Signals(sig).name
    assert any(line.startswith(f"{name} received during {phase}") for line in lines), lines
    assert lines[-1] == last_line.format(ckpts=wd.resolve() / "checkpoints"), lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if left is None:  # stopped before it wrote anything: the workdir this run made is gone
        assert not wd.exists()
    else:
        assert steps_on_disk(wd) == left
        assert not (wd / "eval.json").exists()
        assert sorted(p.name for p in (wd / "samples").glob("*.png")) == grids

    monkeypatch.undo()  # the rerun: no signal
    assert jaxgan(wd) == 0
    got = outcome(wd)
    chex.assert_trees_all_equal(got.pop("state"), reference["state"])
    assert got == {k: v for k, v in reference.items() if k != "state"}


NOHUP_DRIVER = """
import os, signal, sys
from jaxgan import cli, periodic
entry = {s.name: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
print("entry", {k: "SIG_IGN" if v is signal.SIG_IGN else str(v) for k, v in entry.items()}, flush=True)

def hook(name, step):
    if name == "training" and step == 1:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the launching script's terminal: ignored
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal or SSH session closing: ignored
        os.kill(os.getpid(), signal.SIGTERM)  # kill PID, or the preemption notice: stops after this step

class Hooked(periodic.StopSignal):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, on_phase=hook, **kwargs)

periodic.StopSignal = Hooked
sys.exit(cli.main(sys.argv[1:]))
"""


def test_under_nohup_in_the_background_sigint_and_sighup_stay_ignored_and_sigterm_saves(tmp_path):
    wd = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # JAXGAN_CACHE too: this session's compilation cache
    # literally `nohup CMD &` in a shell script: nohup ignores SIGHUP, the shell's background job SIGINT
    script = 'nohup "$@" & wait $!'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-c", NOHUP_DRIVER, *ARGS, "--workdir", str(wd)],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("entry {'SIGINT': 'SIG_IGN', 'SIGHUP': 'SIG_IGN'}"), proc.stdout
    assert "SIGINT received" not in proc.stderr and "SIGHUP received" not in proc.stderr, proc.stderr[-3000:]
    assert "SIGTERM received during training" in proc.stderr and "workdir:" not in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].endswith(f"saved checkpoint at step 2 in {wd / 'checkpoints'}"), \
        proc.stderr[-3000:]
    assert steps_on_disk(wd) == [2]
