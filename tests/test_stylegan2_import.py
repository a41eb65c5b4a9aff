"""NVIDIA's StyleGAN2-ADA pickles in jaxgan: read without running their code, imported, sampled.

The pickles in tests/fixtures/ were written by NVIDIA's own code (networks built by its
training.networks, dumped as its training_loop.py does) for the tiny random networks whose weights
and outputs tests/fixtures/stylegan2_nvidia.npz holds; stylegan2_nvidia_generate.npz is NVIDIA's
generate.py output for the res32 pickle (tools/stylegan2_nvidia_reference.py made all of them).
"""
import builtins
import json
import pickle
import sys

import numpy as np
import pytest

from conftest import restore_run
from jaxgan.interop import nvidia, nvidia_pickle

FIX = "tests/fixtures"
CONFIGS = ("res32", "cond16_clamp", "orig16")


@pytest.fixture(scope="module")
def weights():
    with np.load(f"{FIX}/stylegan2_nvidia.npz") as f:
        return {k: f[k] for k in f.files if "/out/" not in k}


@pytest.mark.parametrize("name", CONFIGS)
def test_pickles_read_without_torch_give_nvidias_weights(weights, name, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now fails
    data = nvidia_pickle.load(f"{FIX}/stylegan2_nvidia_{name}.pkl")
    assert sorted(data) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]
    for net in ("G", "D"):
        ours = data[net].state_dict
        theirs = {k[len(f"{name}/{net}/"):]: v for k, v in weights.items() if k.startswith(f"{name}/{net}/")}
        assert set(ours) == set(theirs)
        for k in theirs:
            np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
        assert data[net].init_kwargs == json.loads(str(weights[f"{name}/{net}_kwargs"]))
    # G_ema (0.9 G in the fixture) has its own parameters and G's buffers
    g, ema = data["G"].state_dict, data["G_ema"].state_dict
    np.testing.assert_allclose(ema["synthesis.b4.const"], 0.9 * g["synthesis.b4.const"], rtol=1e-6)
    np.testing.assert_array_equal(ema["mapping.w_avg"], g["mapping.w_avg"])
    assert data["training_set_kwargs"]["resolution"] == data["G"].init_kwargs["img_resolution"]


class _Payload:
    """Runs code when unpickled the ordinary way: writes ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.exec, (f"open({self.path!r}, 'w').write('pwned')",)


def test_a_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "network-snapshot-000000.pkl"
    hostile.write_bytes(pickle.dumps({"G_ema": _Payload(marker), "G": None}))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload is live with a plain load
    assert (tmp_path / "control").exists()
    with pytest.raises(nvidia_pickle.NotANetworkPickle, match="builtins.exec.*refused"):
        nvidia_pickle.load(hostile)
    assert not marker.exists()


def test_a_payload_inside_a_real_pickle_is_refused_and_nothing_runs(tmp_path):
    """A sixth entry spliced into NVIDIA's own snapshot, after its networks: the reader gets through
    every real global and tensor, then refuses the payload's global before calling it."""
    marker = tmp_path / "ran"
    real = open(f"{FIX}/stylegan2_nvidia_orig16.pkl", "rb").read()
    assert real.endswith(b"u.")  # the snapshot dict's last SETITEMS, then STOP
    payload = pickle.dumps(_Payload(marker), protocol=2)[2:-1]  # the opcodes that build the payload
    path = tmp_path / "network-snapshot-000000.pkl"
    # "u." becomes "N0" (push None, pop it: the protocol-4 frame keeps its length), then the entry
    path.write_bytes(real[:-2] + b"N0" + b"X\x07\x00\x00\x00payload" + payload + b"u.")
    with pytest.raises(nvidia_pickle.NotANetworkPickle, match="builtin__.exec.*refused"):  # protocol 2's name
        nvidia_pickle.load(path)
    assert not marker.exists()
    # without the payload's entry the same splice reads (the refusal is the payload's)
    path.write_bytes(real[:-2] + b"N0u.")
    assert sorted(nvidia_pickle.load(path)) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]


def test_not_a_pickle_and_a_pickle_without_a_generator_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(nvidia_pickle.NotANetworkPickle, match="not a readable"):
        nvidia_pickle.load(junk)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(nvidia_pickle.NotANetworkPickle, match="no StyleGAN2-ADA generator"):
        nvidia_pickle.load(empty)


def test_architectures_jaxgan_lacks_are_refused_with_one_line():
    g_kwargs = dict(z_dim=8, w_dim=8, c_dim=0, img_resolution=32, img_channels=3,
                    synthesis_kwargs={"architecture": "resnet"})
    with pytest.raises(nvidia.NotConvertible, match="architecture='resnet'.*cannot be converted"):
        nvidia.generator_from_kwargs(g_kwargs)
    with pytest.raises(nvidia.NotConvertible, match="'skip'"):
        nvidia.discriminator_from_kwargs(dict(c_dim=0, img_resolution=32, img_channels=3, architecture="skip"))


def test_config_overrides_describe_the_pickle():
    data = nvidia_pickle.load(f"{FIX}/stylegan2_nvidia_cond16_clamp.pkl")
    sets = dict(s.split("=", 1) for s in __import__("jaxgan.interop.stylegan2_import",
                                                    fromlist=["x"]).config_overrides(data))
    assert sets["data.resolution"] == "16" and sets["model.conditional"] == "true"
    assert sets["model.conv_clamp"] == "0.5" and sets["model.mbstd_group"] == "4"
    assert sets["sample.noise_mode"] == "const" and sets["model.d_architecture"] == "resnet"


def _image_folder(path, n=8, res=32, seed=0):
    from PIL import Image

    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (res, res, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


@pytest.mark.slow  # builds a whole run, checkpoints it and restores it: ~25 s of CPU on the 2-core machine
def test_imported_workdir_samples_what_nvidias_generate_py_draws(tmp_path, capsys, random_inception_weights):
    """import-stylegan2, then the workdir's G_ema with NVIDIA's seeds and psi: generate.py's pixels;
    and jaxgan eval on the imported workdir gives its FID family: a random weights file stands in for
    the converted pytorch-fid weights (which cannot be downloaded here), so names and ranges, not
    values (NVIDIA's input handling is the same path with another preprocessing, checked against
    NVIDIA's TorchScript in test_inception.py; digits get the classifier's family beside it,
    test_evaluate.py)."""
    from jaxgan import cli
    from jaxgan import run as run_lib

    workdir = tmp_path / "imported"
    rc = cli.main(["import-stylegan2", f"{FIX}/stylegan2_nvidia_res32.pkl", "--workdir", str(workdir),
                   "--data", str(_image_folder(tmp_path / "images")), "--set", "train.batch_size=4"])
    # jaxgan sample's --set sample.truncation, as a user would pass it
    assert rc == 0
    ref = np.load(f"{FIX}/stylegan2_nvidia_generate.npz")
    run, state = cli._load_run(workdir, [f"sample.truncation={float(ref['psi'])}"])
    assert int(state.step) == 0
    z = np.concatenate([np.random.RandomState(int(s)).randn(1, run.game.latent_dim) for s in ref["seeds"]])
    x = run_lib.generate(run, state, z.astype(np.float32))
    ours = np.clip(x * 127.5 + 128, 0, 255).astype(np.uint8)  # generate.py's conversion
    diff = np.abs(ours.astype(int) - ref["images"].astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99, (diff.max(), np.mean(diff == 0))

    capsys.readouterr()
    assert cli.main(["eval", str(workdir), "--set", "eval.num_samples=16", "--no-compile-cache",
                     "--set", f"eval.inception_weights={random_inception_weights('pytorch_fid')}"]) == 0
    ev = json.loads(capsys.readouterr().out)  # the Inception family's names and ranges, not values
    assert ev["step"] == 0 and np.isfinite(ev["fid16"]) and ev["fid16"] > 0, ev
    for key in ("kid16/mean", "pr16_k3/precision", "pr16_k3/recall", "dc16_k5/density", "dc16_k5/coverage"):
        assert key in ev and np.isfinite(ev[key]), key
    assert ev["kid16/std"] >= 0 and ev["dc16_k5/density"] >= 0
    for key in ("pr16_k3/precision", "pr16_k3/recall", "dc16_k5/coverage"):
        assert 0.0 <= ev[key] <= 1.0, key


@pytest.mark.slow  # two short training runs and a resume: ~30 s of CPU on the 2-core machine
def test_fine_tuning_from_a_pickle_starts_from_its_weights_with_fresh_adam_and_resumes_exactly(tmp_path):
    """stylegan2_folder fine-tuned from NVIDIA's conditional 16x16 pickle on a folder whose three
    sub-folders are its classes, with DiffAugment: the first step starts from the pickle's weights
    with a fresh Adam, and a resume equals the straight run. (It is also the test that the folder
    experiment trains a conditional StyleGAN2 on class sub-folders of images of another size.)"""
    import shutil

    import chex
    import jax

    from jaxgan import cli
    from jaxgan.interop import stylegan2_import

    pkl = f"{FIX}/stylegan2_nvidia_cond16_clamp.pkl"  # c_dim 3, 16x16, conv_clamp
    data = nvidia_pickle.load(pkl)
    images = tmp_path / "images"
    for seed, cls in enumerate(("cats", "dogs", "owls")):  # sub-folders are the classes
        _image_folder(images / cls, n=4, res=24, seed=seed)
    sets = [a for s in stylegan2_import.config_overrides(data) for a in ("--set", s)]
    args = ["train", "stylegan2_folder", *sets, "--set", f"data.path={images}",
            "--set", f"init_from={pkl}", "--set", "train.batch_size=4", "--set", "train.total_kimg=0.008",
            "--set", "checkpoint_every_steps=1", "--set", "sample_every_steps=2", "--set", "eval.every_kimg=0",
            "--set", "augment.policy=flip,translation,cutout", "--set", "log_every_steps=1",
            "--set", "eval.at_end=false",
            "--set", "reg.pl_every=2", "--set", "penalty.every=2"]  # no eval read
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main([*args, "--workdir", str(a)]) == 0  # 2 steps
    config = json.loads((a / "config.json").read_text())
    assert config["data"]["resolution"] == 16 and config["model"]["conditional"] is True
    lines = [json.loads(l) for l in (a / "metrics.jsonl").read_text().splitlines() if "loss/g" in l]
    assert [l["step"] for l in lines] == [1, 2]
    assert all(np.isfinite(l["loss/d"]) and np.isfinite(l["loss/g"]) for l in lines)
    assert lines[0]["penalty/pl"] > 0 and lines[0]["penalty/r1"] > 0  # step 0: both lazy terms ran
    assert (a / "samples" / "00000002.png").stat().st_size > 0  # a grid of the three classes

    # step 1 (the first checkpoint): D moved one Adam step from the pickle's D, Adam's count is 1
    shutil.copytree(a, b)
    shutil.rmtree(b / "checkpoints" / "2")
    run, s1 = restore_run(b)
    assert int(s1.step) == 1
    d0 = nvidia.discriminator_variables(nvidia.discriminator_from_kwargs(data["D"].init_kwargs),
                                        data["D"].state_dict)["params"]
    moved = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - y))), s1.d_params, d0)
    assert 0 < max(jax.tree.leaves(moved)) < 0.05  # one small step away from the pickle's weights
    counts = [int(x) for x in jax.tree.leaves(jax.device_get(s1.d_opt_state)) if np.ndim(x) == 0]
    assert counts and set(counts) == {1}  # a fresh Adam that has taken one step
    # resume to step 2: equal to the straight run
    assert cli.main([*args, "--workdir", str(b)]) == 0
    (_, sa), (_, sb) = restore_run(a), restore_run(b)
    assert int(sa.step) == int(sb.step) == 2
    chex.assert_trees_all_equal(jax.device_get(sa), jax.device_get(sb))
