"""One run per workdir (a lock tested with two real processes), the recorded experiment file,
explicit experiment lookup, the smoke workdir, and extending a finished run."""
import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

from jaxgan import cli, config as config_lib
from jaxgan.errors import WorkdirLocked
from jaxgan.workdir import EXPERIMENT_COPY, LOCK_NAME, WorkdirLock

ROOT = pathlib.Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
from jaxgan.workdir import WorkdirLock
lock = WorkdirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def jaxgan(*args):
    return cli.main([str(a) for a in args])


def test_a_second_process_is_refused_with_the_holders_pid_and_host(tmp_path):
    wd = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(wd)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        # A real second jaxgan process on the same workdir.
        second = subprocess.run([sys.executable, "-m", "jaxgan.cli", "train", "ring8", "--smoke", "--workdir", str(wd)],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "Traceback" not in second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert f"in use by another jaxgan run (pid {holder.pid} on host {os.uname().nodename}" in last, last
        assert not (wd / "config.json").exists() and not (wd / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops the lock with its holder (even on SIGKILL): the workdir is usable again.
    with WorkdirLock(wd) as lock:
        assert lock.held


def test_the_lock_is_exclusive_within_a_process_and_released(tmp_path):
    first = WorkdirLock(tmp_path / "w").acquire()
    with pytest.raises(WorkdirLocked, match=f"pid {os.getpid()}"):
        WorkdirLock(tmp_path / "w").acquire()
    first.release()
    WorkdirLock(tmp_path / "w").acquire().release()
    assert json.loads((tmp_path / "w" / LOCK_NAME).read_text())["pid"] == os.getpid()


def _refused(wd):
    with pytest.raises(WorkdirLocked):
        WorkdirLock(wd).acquire()


def _same_file(lock):
    st, fd = os.stat(lock.path), os.fstat(lock._fd)
    return (st.st_dev, st.st_ino) == (fd.st_dev, fd.st_ino)


def test_a_run_that_loses_the_race_for_a_fresh_workdir_removes_nothing(tmp_path, monkeypatch, capsys):
    """Two runs start on a fresh workdir at once; the other one wins the lock between this run's start
    and its own lock attempt (injected: no sleeps). This run is refused and must leave the winner's
    workdir and lock file alone; it once deleted both, and a third run then trained beside the winner."""
    from jaxgan import train as train_lib

    wd, winner = tmp_path / "run", []
    real = train_lib._lock_on_main

    def the_other_run_locks_first(lock, is_main):
        assert not wd.exists()  # this run started on a fresh workdir
        winner.append(WorkdirLock(wd).acquire())
        return real(lock, is_main)

    monkeypatch.setattr(train_lib, "_lock_on_main", the_other_run_locks_first)
    assert jaxgan("train", "ring8", "--smoke", "--workdir", wd) == 2
    assert f"in use by another jaxgan run (pid {os.getpid()}" in capsys.readouterr().err
    assert winner[0].held and _same_file(winner[0]), "the refused run removed the winner's workdir or lock file"
    _refused(wd)  # a third run is refused too
    winner[0].release()


def test_a_run_whose_mkdir_made_the_workdir_but_lost_the_lock_removes_nothing(tmp_path, monkeypatch):
    from jaxgan import workdir as workdir_lib

    wd, winner, first = tmp_path / "run", [], [True]
    real = workdir_lib._make_dir

    def the_other_run_locks_after_our_mkdir(path):
        made = real(path)
        if first.pop() if first else False:
            winner.append(WorkdirLock(wd).acquire())  # its mkdir found ours; it opens and locks first
        return made

    monkeypatch.setattr(workdir_lib, "_make_dir", the_other_run_locks_after_our_mkdir)
    loser = WorkdirLock(wd)
    with pytest.raises(WorkdirLocked):
        loser.acquire()
    monkeypatch.undo()
    assert not winner[0].created and not loser.held
    assert not loser.remove_if_unused() and winner[0].held and _same_file(winner[0])
    _refused(wd)
    winner[0].release()


def test_a_lock_file_moved_away_while_locking_is_not_taken_for_the_workdirs(tmp_path, monkeypatch):
    """This run opens the lock file of a workdir whose creator then fails and removes it (renamed away,
    then deleted) before this run's flock: the flock succeeds on a file no longer in the workdir. The
    run must see that, start over on a new workdir and hold *its* lock file, so a third is refused."""
    from jaxgan import workdir as workdir_lib

    wd = tmp_path / "run"
    creator = WorkdirLock(wd).acquire()
    assert creator.created
    fcntl, calls = workdir_lib.fcntl, []

    def creator_fails_and_cleans_up_first(fd, op):
        if op & fcntl.LOCK_EX:  # this run's attempts to lock
            if not calls:
                assert creator.remove_if_unused() and not wd.exists()
                creator.release()
            calls.append(op)
        return fcntl.flock(fd, op)

    # workdir.py's fcntl, with flock wrapped (the fcntl module itself stays as it is for everyone else)
    monkeypatch.setattr(workdir_lib, "fcntl", types.SimpleNamespace(
        **{k: getattr(fcntl, k) for k in dir(fcntl) if k.startswith("LOCK_")}, flock=creator_fails_and_cleans_up_first))
    lock = WorkdirLock(wd).acquire()
    monkeypatch.undo()
    assert len(calls) == 2, "the first flock's file was not found moved away"
    assert lock.held and lock.created and _same_file(lock)
    _refused(wd)
    assert not [p.name for p in tmp_path.iterdir() if p.name != "run"], "the removed folder was left behind"
    lock.release()


def test_a_failed_run_removes_only_an_empty_workdir_it_made_and_holds(tmp_path):
    made = WorkdirLock(tmp_path / "made").acquire()
    (tmp_path / "made" / "checkpoints").mkdir()  # empty folders are scaffolding
    assert made.remove_if_unused() and not (tmp_path / "made").exists()
    made.release()

    (tmp_path / "there").mkdir()
    found = WorkdirLock(tmp_path / "there").acquire()
    assert not found.created and not found.remove_if_unused() and (tmp_path / "there").is_dir()
    found.release()

    written = WorkdirLock(tmp_path / "written").acquire()
    (tmp_path / "written" / "config.json").write_text("{}")
    assert not written.remove_if_unused() and (tmp_path / "written" / "config.json").exists()
    written.release()

    released = WorkdirLock(tmp_path / "released").acquire()
    released.release()
    assert not released.remove_if_unused() and (tmp_path / "released").is_dir()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wd") / "run"
    assert jaxgan("train", "ring8", "--smoke", "--workdir", wd) == 0
    return wd


def test_the_workdir_keeps_the_experiment_file_and_its_hash(smoke_run, tmp_path, capsys):
    config = json.loads((smoke_run / "config.json").read_text())
    copy = smoke_run / EXPERIMENT_COPY
    assert copy.read_bytes() == (config_lib.EXPERIMENTS_DIR / "ring8.py").read_bytes()
    assert config["experiment_sha256"] == config_lib.file_sha256(copy)
    capsys.readouterr()
    assert jaxgan("sample", smoke_run, "--n", "4", "--out", tmp_path / "x.npy") == 0
    err = capsys.readouterr().err
    assert f"experiment file: {copy} (sha256 {config['experiment_sha256'][:12]}, identical to packaged ring8)" in err


def test_sample_builds_from_the_copy_not_from_the_original_file(tmp_path, capsys):
    exp = tmp_path / "mine.py"
    exp.write_text((config_lib.EXPERIMENTS_DIR / "ring8.py").read_text())
    wd = tmp_path / "run"
    assert jaxgan("train", exp, "--smoke", "--workdir", wd, "--set", "train.total_kimg=0.128") == 0
    exp.write_text("raise SystemExit('the original file must not be imported by sample')\n")
    capsys.readouterr()
    assert jaxgan("sample", wd, "--n", "3", "--out", tmp_path / "s.npy") == 0
    assert f"experiment file: {wd / EXPERIMENT_COPY}" in capsys.readouterr().err
    # a tampered copy is refused (and not imported: it would exit the test process)
    (wd / EXPERIMENT_COPY).write_text("raise SystemExit('tampered copy ran')\n")
    assert jaxgan("sample", wd, "--n", "3", "--out", tmp_path / "s.npy") == 2
    assert "the copy was changed after the run was made" in capsys.readouterr().err


def test_a_name_means_the_packaged_experiment_not_a_local_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "ring8.py").write_text("raise SystemExit('local file imported')\n")
    assert config_lib.find_experiment("ring8") == (config_lib.EXPERIMENTS_DIR / "ring8.py").resolve()
    assert jaxgan("train", "ring8", "--smoke", "--dry-run") == 0
    err = capsys.readouterr().err
    assert "note: using the packaged" in err and "give its path (experiments/ring8.py)" in err
    assert config_lib.find_experiment("experiments/ring8.py") == (tmp_path / "experiments" / "ring8.py").resolve()


def test_smoke_runs_get_their_own_default_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert jaxgan("train", "ring8", "--smoke") == 0
    assert (tmp_path / "runs" / "ring8-smoke" / "eval.json").exists()
    assert not (tmp_path / "runs" / "ring8").exists()


def _steps(wd):
    return [json.loads(l)["step"] for l in (wd / "metrics.jsonl").read_text().splitlines() if "loss/d" in l]


def test_extending_a_finished_run(tmp_path, capsys):
    wd = tmp_path / "run"
    base = ["train", "ring8", "--smoke", "--workdir", wd, "--set", "optim.schedule=constant"]
    assert jaxgan(*base) == 0
    assert json.loads((wd / "eval.json").read_text())["step"] == 10
    assert jaxgan(*base, "--set", "train.total_kimg=1.28") == 0  # 10 -> 20 steps
    assert json.loads((wd / "eval.json").read_text())["step"] == 20, "the extended run was not evaluated"
    assert _steps(wd) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert json.loads((wd / "config.json").read_text())["train"]["total_kimg"] == 1.28
    capsys.readouterr()
    # shortening, a change beside total_kimg, and a cosine schedule (it depends on the total) are refused
    assert jaxgan(*base, "--set", "train.total_kimg=0.64") == 2
    assert "a run can be extended, not shortened" in capsys.readouterr().err
    assert jaxgan(*base, "--set", "train.total_kimg=2.56", "--set", "train.n_critic=2") == 2
    assert "different config (train:" in capsys.readouterr().err


def test_extending_a_cosine_schedule_is_refused(tmp_path, capsys):
    wd = tmp_path / "run"
    assert jaxgan("train", "ring8", "--smoke", "--workdir", wd, "--set", "train.total_kimg=0.128") == 0
    capsys.readouterr()
    assert jaxgan("train", "ring8", "--smoke", "--workdir", wd, "--set", "train.total_kimg=0.256") == 2
    assert "optim.schedule='cosine' decays over total_kimg" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.stem for p in config_lib.EXPERIMENTS_DIR.glob("*.py")))
def test_every_packaged_experiment_loads_from_its_workdir_copy(name, tmp_path, monkeypatch):
    # sample/eval build from <workdir>/experiment.py alone: an experiment that found its base
    # experiment by a path beside its own file failed there (it must load the base by name).
    # ...and the MNIST experiments' default data folder is found from the package, not from the file
    monkeypatch.delenv("JAXGAN_MNIST_DIR", raising=False)
    copy = tmp_path / EXPERIMENT_COPY
    copy.write_bytes((config_lib.EXPERIMENTS_DIR / f"{name}.py").read_bytes())
    module = config_lib.load_experiment(str(copy), module_name=f"copy_of_{name}")
    cfg = config_lib.experiment_config(module, smoke=True)
    assert dict(cfg) == dict(config_lib.experiment_config(config_lib.load_experiment(name), smoke=True))
