"""Bad input to jaxgan train/sample/eval: one clear line on stderr, exit 2, no traceback, nothing half-made.

The table runs the command in-process (fast: validation fails before jax does any work); a trained
smoke workdir (made once per module) serves the sample/eval rows.
"""
import errno
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxgan import cli, config as config_lib, errors

ring8_smoke = ["train", "ring8", "--smoke"]


def run_cli(argv, capsys):
    try:
        code = cli.main(list(map(str, argv)))
    except SystemExit as e:  # argparse usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_line(code, err, expected):
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines, "nothing on stderr"
    error_lines = [l for l in lines if "error:" in l]
    assert len(error_lines) == 1 and error_lines[0] == lines[-1], lines
    assert expected in lines[-1], (expected, lines[-1])


def listing(path: pathlib.Path):
    return sorted((str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", "ring8", "--smoke", "--workdir", str(wd)]) == 0
    return wd


def _experiment(tmp, text):
    path = tmp / "exp.py"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ train: (id, extra argv, message)
TRAIN_SETS = [
    ("batch0", ["train.batch_size=0"], "train.batch_size = 0: must be an integer >= 1"),
    ("batch_neg", ["train.batch_size=-4"], "train.batch_size = -4"),
    ("batch_text", ["train.batch_size=abc"], "expected an integer"),
    ("batch_float", ["train.batch_size=1.5"], "expected an integer"),
    ("n_critic0", ["train.n_critic=0"], "train.n_critic = 0"),
    ("kimg0", ["train.total_kimg=0"], "train.total_kimg = 0.0: must be a finite number > 0"),
    ("kimg_neg", ["train.total_kimg=-1"], "train.total_kimg"),
    ("kimg_inf", ["train.total_kimg=inf"], "train.total_kimg = inf"),
    ("kimg_nan", ["train.total_kimg=nan"], "train.total_kimg = nan"),
    ("kimg_huge", ["train.total_kimg=1e12"], "more than the 2147483647 a run can count"),
    ("latent0", ["model.latent_dim=0"], "model.latent_dim = 0"),
    ("hidden0", ["model.hidden=0"], "model.hidden = 0"),
    ("hidden_neg", ["model.hidden=-3"], "model.hidden = -3"),
    ("depth_neg", ["model.depth=-1"], "model.depth = -1"),
    ("seed_neg", ["seed=-1"], "seed = -1: must be an integer in [0, 2**63)"),
    ("seed_huge", [f"seed={2 ** 64}"], "seed = 18446744073709551616"),
    ("g_lr0", ["optim.g_lr=0"], "optim.g_lr = 0.0"),
    ("d_lr_inf", ["optim.d_lr=inf"], "optim.d_lr = inf"),
    ("g_lr_neg", ["optim.g_lr=-1e-3"], "optim.g_lr"),
    ("b1_one", ["optim.b1=1.0"], "optim.b1 = 1.0"),
    ("loss_unknown", ["loss=nonexistent"], "loss = 'nonexistent': unknown loss"),
    ("schedule_unknown", ["optim.schedule=linear"], "optim.schedule = 'linear'"),
    ("eval_n0", ["eval.num_samples=0"], "eval.num_samples = 0"),
    ("keep0", ["keep_checkpoints=0"], "keep_checkpoints = 0"),
    ("grid0", ["num_grid_samples=0"], "num_grid_samples = 0"),
    ("every0", ["penalty.every=0"], "penalty.every = 0"),
    ("r1_neg", ["penalty.r1_gamma=-1"], "penalty.r1_gamma"),
    ("log_neg", ["log_every_steps=-1"], "log_every_steps = -1"),
    ("best_mode", ["eval.best_mode=median"], "eval.best_mode = 'median'"),
    ("dtype", ["compute_dtype=float8"], "compute_dtype = 'float8'"),
    ("ema_nan", ["train.ema_half_life_kimg=nan"], "train.ema_half_life_kimg = nan"),
    ("typo_key", ["trian.batch_size=3"], "unknown config key 'trian'"),
    ("no_equals", ["train.batch_size"], "expected KEY=VALUE"),
    ("group", ["train=3"], "is a group of fields"),
    ("bool", ["model.conditional=maybe"], "unknown config key"),
]


@pytest.mark.parametrize("overrides, message", [c[1:] for c in TRAIN_SETS], ids=[c[0] for c in TRAIN_SETS])
def test_bad_train_overrides(overrides, message, tmp_path, capsys):
    wd = tmp_path / "wd"
    argv = ring8_smoke + ["--workdir", wd] + [a for o in overrides for a in ("--set", o)]
    code, _, err = run_cli(argv, capsys)
    assert_one_clear_line(code, err, message)
    assert not wd.exists(), "a refused run made its workdir"
    code, _, err = run_cli(argv + ["--dry-run"], capsys)  # --dry-run validates too
    assert_one_clear_line(code, err, message)


EXPERIMENT_FILES = [
    ("syntax", "def get_config(smoke=False)\n    return {}\n", "has a syntax error at line 1"),
    ("no_get_config", "def build(config, info):\n    pass\n", "defines no get_config()"),
    ("no_build", "from jaxgan.experiment import base_config\ndef get_config(smoke=False):\n    return base_config()\n",
     "defines no build()"),
    ("not_a_dict", "def get_config(smoke=False):\n    return [1, 2]\ndef build(config, info):\n    pass\n",
     "returned a list, not a dict"),
    ("raises", "def get_config(smoke=False):\n    raise RuntimeError('boom')\ndef build(c, i):\n    pass\n",
     "exp.py, line 2, in get_config: RuntimeError: boom"),
    ("import_error", "import no_such_module_xyz\n",
     "exp.py, line 1, while importing it: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("not_json", "def get_config(smoke=False):\n    return {'x': object()}\ndef build(c, i):\n    pass\n",
     "is not plain JSON data"),
    ("missing_field", "def get_config(smoke=False):\n    return {'seed': 0}\ndef build(c, i):\n    pass\n",
     "is missing: build the config with jaxgan.experiment.base_config"),
    ("experiment_validate",
     "from jaxgan.experiment import base_config, mlp_gan\nfrom jaxgan.errors import ConfigError\n"
     "def get_config(smoke=False):\n    return base_config(data={'name': 'ring8'}, model={'hidden': 8, 'depth': 1})\n"
     "def validate(config):\n    if config.model.hidden < 16:\n"
     "        raise ConfigError('model.hidden', config.model.hidden, 'this experiment needs >= 16')\n"
     "build = mlp_gan\n", "model.hidden = 8: this experiment needs >= 16"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in EXPERIMENT_FILES], ids=[c[0] for c in EXPERIMENT_FILES])
def test_bad_experiment_files(text, message, tmp_path, capsys):
    path = _experiment(tmp_path, text)
    wd = tmp_path / "wd"
    code, _, err = run_cli(["train", path, "--workdir", wd], capsys)
    assert_one_clear_line(code, err, message)
    assert not wd.exists()


# Mistakes in the user's own experiment code: reported as that file's (its path, the line, what went
# wrong), exit 2, never as jaxgan's internal error. (id, the body of build, message)
_SMOKE_RING8 = ("from jaxgan.experiment import base_config, mlp_gan\n"
                "def get_config(smoke=False):\n"
                "    return base_config(data={'name': 'ring8'}, model={'hidden': 8, 'depth': 1},\n"
                "                       train={'batch_size': 8, 'total_kimg': 0.016})\n")
USER_CODE_ERRORS = [
    ("build_returns_none", "    game = mlp_gan(config, info)\n",
     "build() of experiment file {path} returned None: return (game, g_tx, d_tx)"),
    ("build_returns_game_only", "    return mlp_gan(config, info)[0]\n",
     "build() of experiment file {path} returned"),
    ("misspelled_field_item", "    width = config['model']['hiden']\n    return mlp_gan(config, info)\n",
     "experiment file {path}, line 6, in build: KeyError: config has no field 'hiden' (did you mean 'hidden'?)"),
    ("misspelled_field_attribute", "    width = config.model.hiden\n    return mlp_gan(config, info)\n",
     "experiment file {path}, line 6, in build: AttributeError: config has no field 'hiden' (did you mean"),
    ("plain_key_error", "    width = {'a': 1}['b']\n    return mlp_gan(config, info)\n",
     "experiment file {path}, line 6, in build: KeyError: 'b' (fix the file; --debug shows the traceback)"),
    ("assertion_with_message",
     "    assert config.model.hidden >= 32, 'need 32 units'\n    return mlp_gan(config, info)\n",
     "experiment file {path}, line 6, in build: AssertionError: need 32 units"),
    ("bare_assertion", "    assert config.model.hidden >= 32\n    return mlp_gan(config, info)\n",
     "line 6, in build: AssertionError: `assert config.model.hidden >= 32` failed"),
    ("optimiser_not_optax", "    game, g_tx, d_tx = mlp_gan(config, info)\n    return game, g_tx, 0.001\n",
     "returned a float as d_tx, not an optax GradientTransformation"),
]


@pytest.mark.parametrize("body, message", [c[1:] for c in USER_CODE_ERRORS], ids=[c[0] for c in USER_CODE_ERRORS])
def test_errors_in_the_users_experiment_code_name_the_file_and_line(body, message, tmp_path, capsys):
    path = _experiment(tmp_path, _SMOKE_RING8 + "def build(config, info):\n" + body)
    code, _, err = run_cli(["train", path, "--workdir", tmp_path / "wd"], capsys)
    assert_one_clear_line(code, err, message.format(path=path.resolve()))
    assert "internal error" not in err and "a bug" not in err


def test_errors_in_the_users_validate_and_get_config_name_the_file_and_line(tmp_path, capsys):
    path = _experiment(tmp_path, _SMOKE_RING8 + "build = mlp_gan\ndef validate(config):\n"
                       "    assert config.model.hidden > 100\n")
    code, _, err = run_cli(["train", path, "--dry-run"], capsys)
    assert_one_clear_line(code, err, f"experiment file {path.resolve()}, line 7, in validate: AssertionError: "
                                     "`assert config.model.hidden > 100` failed")
    path = _experiment(tmp_path, "from jaxgan.experiment import base_config, mlp_gan\nbuild = mlp_gan\n"
                       "def get_config(smoke=False):\n    config = base_config()\n"
                       "    config.train.batch_size = config.train.batchsize * 2\n    return config\n")
    code, _, err = run_cli(["train", path, "--dry-run"], capsys)
    assert_one_clear_line(code, err, f"experiment file {path.resolve()}, line 5, in get_config: AttributeError: "
                                     "config has no field 'batchsize' (did you mean 'batch_size'?)")


# data.part and the other views of a data spec: (--set, message); cyclegan_mnist has data.part = [0, 2]
DATA_VIEW_SETS = [
    ("part_float", "data.part=[0.5,2]", "data.part = [0.5, 2]: must be [k, n], two integers with 0 <= k < n"),
    ("part_three", "data.part=[0,2,1]", "data.part = [0, 2, 1]: must be [k, n]"),
    ("part_text", 'data.part=[0,"two"]', "data.part = [0, 'two']: must be [k, n]"),
    ("part_k_too_big", "data_b.part=[2,2]", "data_b.part = [2, 2]: must be [k, n]"),
    ("part_negative", "data.part=[-1,2]", "data.part = [-1, 2]"),
    ("part_bool", "data.part=[true,2]", "data.part = [True, 2]"),
    ("transform_unknown", 'data_b.transform=["thick"]', "data_b.transform = ['thick']: must be a transform name"),
]


@pytest.mark.parametrize("assignment, message", [c[1:] for c in DATA_VIEW_SETS], ids=[c[0] for c in DATA_VIEW_SETS])
def test_bad_data_views(assignment, message, tmp_path, capsys):
    code, _, err = run_cli(["train", "cyclegan_mnist", "--smoke", "--dry-run", "--set", assignment], capsys)
    assert_one_clear_line(code, err, message)


def test_data_views_are_checked_when_a_source_is_made_directly():
    from jaxgan.data import make_source

    with pytest.raises(errors.ConfigError, match=r"part = \[0.5, 2\]: must be \[k, n\]"):
        make_source({"name": "npy", "path": "unused.npy", "part": [0.5, 2]}, seed=0)
    with pytest.raises(errors.ConfigError, match="sr_factor = 1: must be an integer >= 2"):
        make_source({"name": "npy", "path": "unused.npy", "sr_factor": 1}, seed=0)


def test_an_unknown_tfds_name_is_a_short_line_with_the_closest_names(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from jaxgan.data import make_source

    with pytest.raises(ValueError) as err:
        make_source({"name": "tfds", "dataset": "mnits", "data_dir": str(tmp_path)}, seed=0)
    message, is_user = errors.describe(err.value)
    assert is_user and len(message) < 300, message
    assert "no data set 'mnits'" in message and "did you mean 'mnist'" in message and "list_builders" in message


def test_a_file_too_large_for_the_file_system_says_what_to_do():
    """EFBIG (a file-size limit, ulimit -f, or a file system's largest file) is the user's to fix."""
    e = RuntimeError("saving failed")
    e.__cause__ = OSError(errno.EFBIG, "File too large", "/work/run/checkpoints/tmp")
    message, is_user = errors.describe(e)
    assert is_user and "\n" not in message, message
    assert "ulimit -f" in message and "another file system" in message, message


BENCH_ARGS = [
    ("batch0", ["--batch", "0"], "argument --batch: expected an integer >= 1, got 0"),
    ("batch_text", ["--batch", "64", "x"], "argument --batch: expected an integer >= 1, got 'x'"),
    ("per_device_batch0", ["--per-device-batch", "0"], "argument --per-device-batch: expected an integer >= 1, got 0"),
    ("devices_text", ["--devices", "two"], "argument --devices: expected device counts >= 1 such as 8 or 1,2,4,8, "
                                           "got 'two'"),
    ("devices0", ["--devices", "1,0"], "argument --devices: expected device counts >= 1"),
    ("steps0", ["--steps", "0"], "argument --steps: expected an integer >= 1, got 0"),
    ("windows_text", ["--windows", "many"], "argument --windows: expected an integer >= 1"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in BENCH_ARGS], ids=[c[0] for c in BENCH_ARGS])
def test_bad_bench_arguments(argv, message, capsys):
    code, out, err = run_cli(["bench", "ring8", "--smoke", *argv], capsys)
    assert_one_clear_line(code, err, message)
    assert out == ""  # nothing was benchmarked


@pytest.mark.parametrize("case", ["missing_path", "unknown_name", "not_py", "workdir_file", "workdir_parent_file",
                                  "unknown_data", "partial_distributed"])
def test_bad_train_invocations(case, tmp_path, capsys, monkeypatch):
    wd = tmp_path / "wd"
    argv, message = {
        "missing_path": (["train", tmp_path / "nope.py", "--workdir", wd], "does not exist or is not a file"),
        "unknown_name": (["train", "no_such_experiment", "--workdir", wd], "no packaged experiment 'no_such_experiment'"),
        "not_py": (["train", tmp_path / "exp.txt", "--workdir", wd], "an experiment file is a .py file"),
        "workdir_file": (ring8_smoke + ["--workdir", tmp_path / "file"], "is a file, not a directory"),
        "workdir_parent_file": (ring8_smoke + ["--workdir", tmp_path / "file" / "run"], "is a file, not a directory"),
        "unknown_data": (ring8_smoke + ["--workdir", wd, "--set", "data.name=nosuch"], "unknown data source 'nosuch'"),
        "partial_distributed": (ring8_smoke + ["--workdir", wd], "JAXGAN_COORDINATOR set but"),
    }[case]
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "exp.txt").write_text("")
    if case == "partial_distributed":
        monkeypatch.setenv("JAXGAN_DISTRIBUTED", "1")
        monkeypatch.setenv("JAXGAN_COORDINATOR", "127.0.0.1:1")
    code, _, err = run_cli(argv, capsys)
    assert_one_clear_line(code, err, message)
    assert not wd.exists(), f"left {listing(wd)}"  # unknown_data fails after locking: the workdir is removed
    assert (tmp_path / "file").read_text() == "not a directory"


# ------------------------------------------------------------------ sample / eval
def _copy(trained, tmp_path):
    wd = tmp_path / "copy"
    shutil.copytree(trained, wd)
    return wd


def _tamper(wd):
    (wd / "experiment.py").write_text((wd / "experiment.py").read_text() + "\nimport os  # injected\n")


def _break_config(wd):
    (wd / "config.json").write_text("{not json")


def _no_checkpoints(wd):
    shutil.rmtree(wd / "checkpoints")


def _samples(name, array):
    """A setup that writes ``array`` to ``<wd>/../name`` (outside the workdir) for ``eval --samples``."""
    return lambda wd: np.save(wd.parent / name, array)


SAMPLE_CASES = [
    ("n0", ["sample", "{wd}", "--n", "0"], None, "--n: expected an integer >= 1, got 0"),
    ("n_neg", ["sample", "{wd}", "--n", "-5"], None, "--n: expected an integer >= 1"),
    ("n_text", ["sample", "{wd}", "--n", "abc"], None, "expected an integer >= 1, got 'abc'"),
    ("seed_neg", ["sample", "{wd}", "--seed", "-1"], None, "--seed: expected an integer in [0, 2**63)"),
    ("seed_huge", ["sample", "{wd}", "--seed", str(2 ** 64)], None, "--seed: expected an integer in [0, 2**63)"),
    ("out_dir", ["sample", "{wd}", "--out", "{tmp}"], None, "is a directory: give a file name"),
    ("out_suffix", ["sample", "{wd}", "--out", "{tmp}/x.txt"], None, "use a file name ending in .npy or .png"),
    ("out_no_folder", ["sample", "{wd}", "--out", "{tmp}/nofolder/x.npy"], None, "does not exist; create it"),
    ("set_train", ["sample", "{wd}", "--set", "train.batch_size=3"], None, "takes only sample.* and eval.* fields"),
    ("set_unknown_sample", ["sample", "{wd}", "--set", "sample.truncation=0.5"], None, "unknown config key 'sample'"),
    ("set_eval_bad", ["sample", "{wd}", "--set", "eval.num_samples=0"], None, "eval.num_samples = 0"),
    ("tampered", ["sample", "{wd}"], _tamper, "the copy was changed after the run was made"),
    ("bad_config_json", ["sample", "{wd}"], _break_config, "is not valid JSON"),
    ("no_workdir", ["sample", "{tmp}/absent"], None, "does not exist: give the --workdir"),
    ("workdir_is_file", ["sample", "{wd}/config.json"], None, "is not a directory"),
    ("not_a_workdir", ["sample", "{tmp}"], None, "has no config.json"),
    ("eval_no_checkpoints", ["eval", "{wd}"], _no_checkpoints, "the run has no checkpoint yet"),
    ("eval_set_bad", ["eval", "{wd}", "--set", "eval.num_samples=-1"], None, "eval.num_samples = -1"),
    ("eval_set_unknown", ["eval", "{wd}", "--set", "eval.nope=1"], None, "unknown config key 'eval.nope'"),
    ("eval_set_model", ["eval", "{wd}", "--set", "model.hidden=3"], None, "takes only sample.* and eval.*"),
    ("eval_tampered", ["eval", "{wd}"], _tamper, "sha256"),
    ("eval_samples_absent", ["eval", "{wd}", "--samples", "{tmp}/none.npy"], None, "no such file"),
    ("eval_samples_not_npy", ["eval", "{wd}", "--samples", "{wd}/config.json"], None, "not a .npy array file"),
    ("eval_samples_uint8", ["eval", "{wd}", "--samples", "{tmp}/u8.npy"],
     _samples("u8.npy", np.zeros((8, 2), np.uint8)), "x / 127.5 - 1"),
    ("eval_samples_shape", ["eval", "{wd}", "--samples", "{tmp}/img.npy"],
     _samples("img.npy", np.zeros((8, 4, 4, 1), np.float32)), "but this run's data are (2,)"),
    ("eval_samples_nan", ["eval", "{wd}", "--samples", "{tmp}/nan.npy"],
     _samples("nan.npy", np.full((8, 2), np.nan, np.float32)), "NaN or Inf"),
]


@pytest.mark.parametrize("argv, setup, message", [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES])
def test_bad_sample_and_eval(argv, setup, message, trained, tmp_path, capsys):
    wd = _copy(trained, tmp_path)
    if setup:
        setup(wd)
    before = listing(wd)
    argv = [a.format(wd=wd, tmp=tmp_path) for a in argv]
    code, _, err = run_cli(argv, capsys)
    assert_one_clear_line(code, err, message)
    assert listing(wd) == before, "sample/eval changed the workdir"


IMAGE_INPUTS = [  # jaxgan translate / upscale: (id, --input array or None for a missing file, --out, message)
    ("nan", np.full((2, 8, 8, 1), np.nan, np.float32), "o.npy", "2 of 2 images hold NaN or infinite values"),
    ("inf", np.concatenate([np.zeros((2, 8, 8), np.float32), np.full((1, 8, 8), np.inf, np.float32)]), "o.npy",
     "1 of 3 images hold NaN or infinite values"),
    ("empty", np.zeros((0, 8, 8), np.uint8), "o.npy", "holds no images (shape (0, 8, 8, 1)): give at least one"),
    ("out_of_range", np.full((1, 8, 8), 3.0, np.float32), "o.npy", "float images must be in [-1, 1]"),
    ("int64", np.zeros((1, 8, 8), np.int64), "o.npy", "holds int64 values: give uint8 [0, 255] or float [-1, 1]"),
    ("shape", np.zeros((8, 8), np.uint8), "o.npy", "expected images (N, H, W) or (N, H, W, C)"),
    ("missing", None, "o.npy", "no such file"),
    ("out_suffix", np.zeros((1, 8, 8), np.uint8), "o.png", "--out {tmp}/o.png: use a .npy file name or a folder"),
]


@pytest.mark.parametrize("command", ["translate", "upscale"])
@pytest.mark.parametrize("array, out, message", [c[1:] for c in IMAGE_INPUTS], ids=[c[0] for c in IMAGE_INPUTS])
def test_bad_image_inputs_are_labelled_with_their_command(command, array, out, message, trained, tmp_path, capsys):
    if array is not None:
        np.save(tmp_path / "in.npy", array)
    code, _, err = run_cli([command, trained, "--input", tmp_path / "in.npy", "--out", tmp_path / out], capsys)
    assert_one_clear_line(code, err, message.format(tmp=tmp_path))
    assert err.startswith(f"jaxgan {command}: error: --"), err
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize("command, needs", [("translate", "a CycleGAN run"), ("upscale", "an SRGAN/SRResNet run")])
def test_translate_and_upscale_label_their_lines(command, needs, trained, tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((1, 8, 8), np.uint8))
    code, _, err = run_cli([command, trained, "--input", tmp_path / "in.npy", "--out", tmp_path / "o.npy"], capsys)
    assert_one_clear_line(code, err, f"holds a GAN run: `jaxgan {command}` needs {needs}")
    assert all(line.startswith(f"jaxgan {command}: ") for line in err.splitlines() if line.strip()), err


def test_a_full_disk_is_one_line(trained, tmp_path, capsys):
    out = tmp_path / "full.npy"
    out.symlink_to("/dev/full")  # every write to /dev/full fails with ENOSPC
    code, _, err = run_cli(["sample", trained, "--out", out], capsys)
    assert_one_clear_line(code, err, "the disk is full")


def test_a_read_only_file_system_is_one_line(tmp_path, capsys, monkeypatch):
    from jaxgan import workdir as workdir_lib

    def read_only(self):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.path))

    monkeypatch.setattr(workdir_lib.WorkdirLock, "acquire", read_only)
    code, _, err = run_cli(ring8_smoke + ["--workdir", tmp_path / "wd"], capsys)
    assert_one_clear_line(code, err, "the file system is read-only")


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    with pytest.raises(errors.ConfigError, match="train.batch_size"):
        cli.main(["--debug", "train", "ring8", "--dry-run", "--set", "train.batch_size=0"])
    monkeypatch.setenv("JAXGAN_TRACEBACK", "1")
    with pytest.raises(errors.ConfigError):
        cli.main(["train", "ring8", "--dry-run", "--set", "train.batch_size=0"])


def test_a_bug_is_one_line_that_says_how_to_see_it(capsys, monkeypatch):
    monkeypatch.setattr(cli, "cmd_train", lambda args: [][1])  # an IndexError: not the user's fault
    code, _, err = run_cli(["train", "ring8", "--dry-run"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "jaxgan train: internal error: IndexError: list index out of range (a bug: rerun with --debug for the "
        "traceback and report it)"]


def test_help_lists_the_experiments(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("ring8", "grid25", "dcgan_mnist", "cgan_mnist", "dcgan_stacked_mnist"):
        assert f"  {name} " in out, name
    assert "--debug" in out


# ------------------------------------------------------------------ property: random --set never tracebacks
_KEYS = sorted({k for k, _ in __import__("jaxgan.validate", fromlist=["_leaves"])._leaves(
    config_lib.experiment_config(config_lib.load_experiment("ring8"), smoke=True))} | {"train.nope", "nope", "model"})
_VALUES = st.one_of(
    st.integers(-2 ** 70, 2 ** 70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "true", "false", "", "[]", "[1, 2]", "null", "{}", "hinge",
                     "cosine", "grid25", "1e400", "0", "-0.0"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(assignments=st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES), min_size=1, max_size=3))
def test_random_overrides_give_a_valid_config_or_one_clear_line(assignments, capsys):
    from jaxgan import run as run_lib

    sets = [a for k, v in assignments for a in ("--set", f"{k}={v}")]
    code, out, err = run_cli(ring8_smoke + ["--dry-run", *sets], capsys)
    assert "Traceback" not in err and code in (0, 2), (code, err)
    if code == 2:
        assert_one_clear_line(code, err, "error:")
        return
    config = config_lib.Config(json.loads(out))
    try:  # a config that validates builds, or fails with a message a user can act on
        run_lib.build(config, config_lib.load_experiment("ring8"))
    except Exception as e:  # noqa: BLE001
        message, is_user = errors.describe(e)
        assert is_user and "\n" not in message, (assignments, repr(e))


def test_compile_cache_flags(tmp_path, monkeypatch):
    import importlib.machinery
    import sys
    import types

    calls = []
    fake = types.ModuleType("jaxgan.compile_cache")
    fake.__spec__ = importlib.machinery.ModuleSpec("jaxgan.compile_cache", None)
    fake.enable = calls.append
    monkeypatch.setitem(sys.modules, "jaxgan.compile_cache", fake)
    parse = cli._parser().parse_args
    cli._enable_compile_cache(parse(["train", "--compile-cache", str(tmp_path)]))
    cli._enable_compile_cache(parse(["train"]))
    cli._enable_compile_cache(parse(["train", "--no-compile-cache"]))
    assert calls == [str(tmp_path), None]


def test_sample_and_eval_use_the_compile_cache_as_train_does(trained, tmp_path, monkeypatch, capsys):
    """sample and eval compile the generator (and eval its networks) once per machine, not per call:
    they turn on the persistent compilation cache as train does, with the same flags."""
    import importlib.machinery
    import sys
    import types

    calls = []
    fake = types.ModuleType("jaxgan.compile_cache")
    fake.__spec__ = importlib.machinery.ModuleSpec("jaxgan.compile_cache", None)
    fake.enable = calls.append
    monkeypatch.setitem(sys.modules, "jaxgan.compile_cache", fake)
    out = tmp_path / "s.npy"
    assert run_cli(["sample", trained, "--n", "8", "--out", out, "--compile-cache", tmp_path / "xla"], capsys)[0] == 0
    assert run_cli(["sample", trained, "--n", "8", "--out", out, "--no-compile-cache"], capsys)[0] == 0
    assert run_cli(["sample", trained, "--n", "8", "--out", out], capsys)[0] == 0
    assert calls == [str(tmp_path / "xla"), None]
    assert run_cli(["eval", trained, "--compile-cache", tmp_path / "e"], capsys)[0] == 0
    assert run_cli(["eval", trained, "--no-compile-cache"], capsys)[0] == 0
    assert calls[2:] == [str(tmp_path / "e")]


def test_an_unknown_convolution_form_is_one_line(capsys):
    code, _, err = run_cli(["train", "dcgan_mnist", "--dry-run", "--set", "model.upsample=fast"], capsys)
    assert_one_clear_line(code, err, "model.upsample = 'fast'")
    assert "transpose" in err and "phases" in err  # and says what to use instead
    code, _, err = run_cli(["train", "stylegan2_mnist", "--dry-run", "--set", "model.fir=depthwise"], capsys)
    assert_one_clear_line(code, err, "model.fir = 'depthwise'")
    assert "slices" in err and "conv" in err
