"""The FID InceptionV3 port (jaxgan.eval.inception): shapes, weight handling, and exactness.

The exactness tests build pytorch-fid's own FID network with random weights (its real weights
cannot be downloaded here), convert its state dict with ``torch_state_dict_to_flax`` and compare
the 2048-d features on the same images. They skip where torch or pytorch_fid is not installed.
"""
import importlib
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.eval import inception as inc

TOL = 1e-4


def _import_or_skip(name, why):
    """The module, or a skip that says why (absent, or broken: e.g. torchvision beside a torch it
    was not built for raises RuntimeError on import)."""
    try:
        return importlib.import_module(name)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"{name} is not importable ({type(err).__name__}: {err}); {why}: install "
                    "torch and torchvision, then pytorch-fid")


def _errors(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return np.linalg.norm(ours - ref) / np.linalg.norm(ref), np.max(np.abs(ours - ref))


# ----------------------------------------------------------------------------- without torch
def test_output_shape_is_2048_at_299_and_any_input_size():
    model = inc.InceptionV3FID()
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 299, 299, 3)))
    for shape in [(2, 299, 299, 3), (3, 32, 48, 1)]:
        out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct(shape, jnp.float32))
        assert out.shape == (shape[0], inc.FEATURE_DIM) and out.dtype == jnp.float32


def test_bad_channel_count_is_refused():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        inc.preprocess(jnp.zeros((1, 8, 8, 4)))


@pytest.mark.parametrize("path", [None, "/nonexistent/fid_inception_v3.npz"])
def test_loader_refuses_missing_weights_with_instructions(path):
    with pytest.raises(FileNotFoundError) as err:
        inc.FIDFeatureExtractor(path)
    text = str(err.value)
    for needle in ["pt_inception-2015-12-05-6726825d.pth", inc.FID_WEIGHTS_URL,
                   "tools/convert_fid_inception.py", "never falls back to random"]:
        assert needle in text


def _synthetic_state_dict():
    """A state dict with the right names and shapes, built from the module's own variables."""
    sd = {"fc.weight": np.zeros((1008, 2048), np.float32), "fc.bias": np.zeros(1008, np.float32)}
    torch_names = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    for key, shape in inc.expected_shapes().items():
        module = ".".join(key.split("/")[1:-1])
        if key.endswith("kernel"):
            h, w, i, o = shape
            sd[f"{module}.weight"] = np.zeros((o, i, h, w), np.float32)
        else:
            sd[f"{module}.{torch_names[key.split('/')[-1]]}"] = np.ones(shape, np.float32)
            sd[f"{module}.num_batches_tracked"] = np.array(0)
    return sd


def test_conversion_maps_names_and_layouts():
    sd = _synthetic_state_dict()
    sd["Conv2d_1a_3x3.conv.weight"] = np.arange(32 * 3 * 3 * 3, dtype=np.float32).reshape(32, 3, 3, 3)
    sd["Mixed_7c.branch_pool.bn.running_var"] = np.full(192, 7.0, np.float32)
    variables = inc.torch_state_dict_to_flax(sd)
    kernel = variables["params"]["Conv2d_1a_3x3"]["conv"]["kernel"]
    assert kernel.shape == (3, 3, 3, 32) and kernel[1, 2, 0, 5] == sd["Conv2d_1a_3x3.conv.weight"][5, 0, 1, 2]
    assert np.all(variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"] == 7.0)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update({"Mixed_5b.branch9x9.conv.weight": np.zeros((1,))}), "unexpected"),
    (lambda sd: sd.pop("Mixed_6e.branch7x7dbl_5.bn.running_mean"), "missing"),
    (lambda sd: sd.update({"Conv2d_1a_3x3.conv.weight": np.zeros((32, 1, 3, 3))}), "wrong shapes"),
    (lambda sd: sd.update({"AuxLogits.fc.weight": np.zeros((1,))}), "not FID InceptionV3"),
])
def test_conversion_rejects_wrong_state_dicts(edit, match):
    sd = _synthetic_state_dict()
    edit(sd)
    with pytest.raises(ValueError, match=match):
        inc.torch_state_dict_to_flax(sd)


def test_npz_round_trip_and_loader_checks(tmp_path):
    variables = inc.torch_state_dict_to_flax(_synthetic_state_dict())
    inc.save_npz(tmp_path / "w.npz", variables)
    loaded = inc.load_npz(tmp_path / "w.npz")
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    np.savez(tmp_path / "bad.npz", **{"params/x": np.zeros(3)})
    with pytest.raises(ValueError, match="not pytorch-fid's FID InceptionV3"):
        inc.load_npz(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- against pytorch-fid
@pytest.mark.parametrize("size", [(7, 5), (64, 64), (299, 299), (300, 512), (1024, 77)])
def test_resize_matches_torch_interpolate(size):
    torch = _import_or_skip("torch", "it is the reference for the resize")
    x = np.random.default_rng(0).uniform(-1, 1, (2, *size, 3)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(299, 299),
                                          mode="bilinear", align_corners=False)
    ours = inc.resize_bilinear(jnp.asarray(x))
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-6)


def _random_fid_inception(torch, monkeypatch):
    """pytorch-fid's FID network (InceptionV3([3])) with random weights and calibrated BN stats.

    ``fid_inception_v3`` builds the FID architecture and then downloads the weights: the download
    and the load are patched away, the Inception3 it built is captured, and its weights are
    randomised: He-normal convolutions, a random BN affine, and BN running statistics measured
    on random images (train mode, cumulative average) and then perturbed, so no BatchNorm is the
    identity. (Unperturbed statistics tested on their own calibration images make the features
    nearly cancel: torch's own float32 result is then 3e-5 from its float64 one.)
    """
    pfi = _import_or_skip("pytorch_fid.inception", "it is the reference network")
    built = []
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(pfi.torchvision.models.inception.Inception3, "load_state_dict",
                        lambda self, *a, **k: built.append(self))
    torch.manual_seed(0)
    model = pfi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, 0.0, 0.2)
    with torch.no_grad():
        model.train()(torch.rand(4, 3, 299, 299))
        for m in model.modules():  # off-calibration, as real data is: no BN output is centred
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean += 0.5 * m.running_var.sqrt() * torch.randn_like(m.running_mean)
                m.running_var *= torch.empty_like(m.running_var).uniform_(0.5, 2.0)
    return model.eval(), built[0].state_dict()


@pytest.fixture(scope="module")
def torch_and_flax():
    torch = _import_or_skip("torch", "pytorch-fid runs on it")
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    with pytest.MonkeyPatch.context() as mp:
        model, state_dict = _random_fid_inception(torch, mp)
    variables = inc.torch_state_dict_to_flax({k: v.numpy() for k, v in state_dict.items()})
    return torch, model, state_dict, jax.jit(inc.InceptionV3FID().apply), variables


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2, 299, 299, 3), (2, 64, 64, 3), (2, 40, 56, 1), (2, 320, 400, 3)])
def test_features_match_pytorch_fid(torch_and_flax, shape):
    torch, model, _, apply, variables = torch_and_flax
    images = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    with torch.no_grad():  # pytorch-fid: [0, 1] NCHW RGB (grayscale files are read as RGB)
        x = torch.from_numpy((images + 1) / 2).permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
        ref = model(x.contiguous())[0].squeeze(-1).squeeze(-1).numpy()
    ours = np.asarray(apply(variables, jnp.asarray(images)))
    rel, max_abs = _errors(ours, ref)
    scale = np.abs(ref).max()
    print(f"{shape}: relative error {rel:.1e}, max abs {max_abs:.1e} (max |feature| {scale:.1f})")
    assert ours.shape == (shape[0], 2048) and ours.dtype == np.float32
    assert np.std(ref) > 1e-2, "degenerate reference features: the random network is too tame"
    assert rel < TOL and max_abs < TOL * max(1.0, scale)


@pytest.mark.slow
def test_converter_tool_and_extractor_end_to_end(torch_and_flax, tmp_path, capsys):
    """.pth -> tools/convert_fid_inception.py -> .npz -> FIDFeatureExtractor == pytorch-fid."""
    torch, model, state_dict, _, variables = torch_and_flax
    script = pathlib.Path(__file__).resolve().parents[1] / "tools" / "convert_fid_inception.py"
    spec = importlib.util.spec_from_file_location("convert_fid_inception", script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torch.save(state_dict, tmp_path / "random.pth")
    tool.main([str(tmp_path / "random.pth"), str(tmp_path / "random.npz")])
    assert "is not the published" in capsys.readouterr().err
    extract = inc.FIDFeatureExtractor(tmp_path / "random.npz")
    jax.tree.map(np.testing.assert_array_equal, extract.variables, variables)
    images = np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy((images + 1) / 2).permute(0, 3, 1, 2).contiguous())[0].flatten(1)
    rel, _ = _errors(extract(images), ref.numpy())
    assert rel < TOL
