"""Multi-process training with ``jax.distributed`` on localhost.

Two processes with one CPU device each (``JAXGAN_DISTRIBUTED=1`` and the coordinator variables) run
``jaxgan train ring8 --smoke``; one process with two CPU devices runs the same command. The files
only process 0 writes exist once, the collectively written checkpoints restore (in a single process,
and in two processes on resume), and the final states are bit-identical: each process feeds its own
rows of the same global batch, so the mesh sees the same data either way.

Also: the ``JAXGAN_*`` variables of ``jaxgan.cli._init_distributed`` (fast, no processes started).
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxgan import cli
from xla_env import host_devices
from jaxgan.errors import UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent
TIMEOUT_S = 300  # per group of subprocesses; a smoke run takes ~30 s on 2 busy cores
DIST_VARS = ("JAXGAN_DISTRIBUTED", "JAXGAN_COORDINATOR", "JAXGAN_NUM_PROCESSES", "JAXGAN_PROCESS_ID",
             "JAXGAN_LOCAL_DEVICE_IDS")


# ---------------------------------------------------------------- _init_distributed (no processes)

@pytest.fixture
def fake_initialize(monkeypatch):
    """Records the kwargs of jax.distributed.initialize instead of calling it."""
    import jax

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    for var in DIST_VARS:
        monkeypatch.delenv(var, raising=False)
    return calls


def test_init_distributed_off_by_default(fake_initialize):
    cli._init_distributed()
    assert fake_initialize == []


def test_init_distributed_auto_detects_without_coordinator(fake_initialize, monkeypatch):
    monkeypatch.setenv("JAXGAN_DISTRIBUTED", "1")
    cli._init_distributed()
    assert fake_initialize == [{}]  # Cloud TPU / SLURM / Open MPI: jax finds everything


def test_init_distributed_passes_explicit_cluster(fake_initialize, monkeypatch):
    monkeypatch.setenv("JAXGAN_DISTRIBUTED", "1")
    monkeypatch.setenv("JAXGAN_COORDINATOR", "10.0.0.1:1234")
    monkeypatch.setenv("JAXGAN_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAXGAN_PROCESS_ID", "3")
    monkeypatch.setenv("JAXGAN_LOCAL_DEVICE_IDS", "0,1")
    cli._init_distributed()
    assert fake_initialize == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                                "process_id": 3, "local_device_ids": [0, 1]}]


def test_init_distributed_refuses_partial_settings(fake_initialize, monkeypatch):
    monkeypatch.setenv("JAXGAN_DISTRIBUTED", "1")
    monkeypatch.setenv("JAXGAN_COORDINATOR", "localhost:1234")
    with pytest.raises(UserError, match="JAXGAN_NUM_PROCESSES, JAXGAN_PROCESS_ID unset: set all three"):
        cli._init_distributed()
    monkeypatch.setenv("JAXGAN_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAXGAN_PROCESS_ID", "first")
    with pytest.raises(UserError, match="must be integers"):
        cli._init_distributed()
    assert fake_initialize == []


# ---------------------------------------------------------------- real processes on localhost

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=host_devices(devices),
               JAXGAN_TRACEBACK="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update(extra)
    return env


class Group:
    """Subprocesses started together, each in its own session, all killed if any one fails."""

    def __init__(self, logdir: pathlib.Path):
        self.logdir, self.procs = logdir, []

    def start(self, name: str, args: list, env: dict) -> None:
        log = open(self.logdir / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text()

    def wait(self, timeout: float = TIMEOUT_S) -> None:
        """Waits for all; on a failure or the timeout kills the rest and fails with the logs."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                codes = {name: p.poll() for name, p, _ in self.procs}
                failed = [n for n, c in codes.items() if c not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    why = f"{failed} exited non-zero" if failed else f"timed out after {timeout} s"
                    self.kill()
                    tails = "\n".join(f"--- {n} (exit {c}):\n{self.log(n)[-3000:]}" for n, c in codes.items())
                    pytest.fail(f"{why}\n{tails}")
                if all(c == 0 for c in codes.values()):
                    return
                time.sleep(0.2)
        finally:
            for _, _, log in self.procs:
                log.close()

    def kill(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the session we started for it
                proc.wait()


@pytest.fixture
def group(tmp_path):
    g = Group(tmp_path)
    yield g
    g.kill()  # nothing is left behind, whatever failed


def _train_two_processes(group: Group, workdir: pathlib.Path, tag: str) -> None:
    port = _free_port()
    for pid in range(2):
        group.start(f"{tag}{pid}", ["-m", "jaxgan.cli", "train", "ring8", "--smoke", "--workdir", workdir],
                    _env(1, JAXGAN_DISTRIBUTED="1", JAXGAN_COORDINATOR=f"127.0.0.1:{port}",
                         JAXGAN_NUM_PROCESSES="2", JAXGAN_PROCESS_ID=str(pid)))


@pytest.mark.multidevice
@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tmp_path, group):
    multi, single = tmp_path / "multi", tmp_path / "single"
    _train_two_processes(group, multi, "train")
    group.start("single", ["-m", "jaxgan.cli", "train", "ring8", "--smoke", "--workdir", single], _env(2))
    group.wait()
    for pid in range(2):
        assert "'devices': 2" in group.log(f"train{pid}")  # one mesh over both processes

    # Files that only process 0 writes: there, and written once.
    for name in ("config.json", "compile.json", "eval.json"):
        assert (multi / name).is_file(), name
    assert json.loads((multi / "config.json").read_text()) == json.loads((single / "config.json").read_text())
    records = [json.loads(line) for line in (multi / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss/d" in r]
    assert train_steps == [2, 4, 6, 8, 10]
    assert len(records) == len([line for line in (single / "metrics.jsonl").read_text().splitlines()])
    assert json.loads((multi / "eval.json").read_text())["step"] == 10
    assert sorted(p.name for p in (multi / "samples").iterdir()) == ["00000005.png", "00000010.png"]
    for key in ("loss/d", "loss/g", "grad_norm/d"):  # the same global batch gives the same metrics
        single_records = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
        assert [r[key] for r in records if key in r] == [r[key] for r in single_records if key in r], key

    # Every checkpoint restores in a fresh process; the final states are identical.
    group.start("compare", [HERE / "multiprocess_worker.py", multi, single], _env(1))
    group.start("sample_multi", ["-m", "jaxgan.cli", "sample", multi, "--n", "64", "--out",
                                 tmp_path / "multi.npy"], _env(1))
    group.start("sample_single", ["-m", "jaxgan.cli", "sample", single, "--n", "64", "--out",
                                  tmp_path / "single.npy"], _env(1))
    group.wait()
    out = json.loads(group.log("compare").strip().splitlines()[-1])
    assert out["steps"] == [5, 10]
    assert out["positions"] == {"5": {"step": 5, "examples_seen": 320},
                                "10": {"step": 10, "examples_seen": 640}}
    assert out["step_a"] == out["step_b"] == 10
    assert out["equal"], f"final states differ by up to {out['max_abs_diff']}"
    x_multi, x_single = np.load(tmp_path / "multi.npy"), np.load(tmp_path / "single.npy")
    assert x_multi.shape == (64, 2)
    np.testing.assert_array_equal(x_multi, x_single)

    # Two processes resume from the collectively written checkpoint (nothing left to train).
    resumed = tmp_path / "resumed"
    shutil.copytree(multi, resumed)
    _train_two_processes(group, resumed, "resume")
    group.wait()
    for pid in range(2):
        assert "resumed from step 10" in group.log(f"resume{pid}")
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["10", "5"]
    assert json.loads((resumed / "eval.json").read_text())["step"] == 10


@pytest.mark.multidevice
@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path, group):
    """Saving is collective: a preemption notice reaching one host must stop every host at one step."""
    workdir, port = tmp_path / "run", _free_port()
    long_run = ["--set", "train.total_kimg=128", "--set", "log_every_steps=20",
                "--set", "checkpoint_every_steps=0", "--set", "sample_every_steps=0"]  # 2,000 steps
    for pid in range(2):
        group.start(f"p{pid}", ["-m", "jaxgan.cli", "train", "ring8", "--smoke", "--workdir", workdir, *long_run],
                    _env(1, JAXGAN_DISTRIBUTED="1", JAXGAN_COORDINATOR=f"127.0.0.1:{port}",
                         JAXGAN_NUM_PROCESSES="2", JAXGAN_PROCESS_ID=str(pid)))
    metrics, deadline = workdir / "metrics.jsonl", time.monotonic() + TIMEOUT_S
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and all(p.poll() is None for _, p, _ in group.procs), \
            "the two-process run never logged:\n" + group.log("p0")[-2000:]
        time.sleep(0.05)
    group.procs[1][1].send_signal(signal.SIGTERM)  # process 1 only
    group.wait()
    stops = [line for pid in range(2) for line in group.log(f"p{pid}").splitlines() if "stopping at step" in line]
    assert len(stops) == 2, stops
    steps = {int(line.split("stopping at step ")[1].split()[0]) for line in stops}
    assert len(steps) == 1, stops
    step = steps.pop()
    assert 0 < step < 2000 and (workdir / "checkpoints" / str(step)).is_dir(), stops
    assert not (workdir / "eval.json").exists()
