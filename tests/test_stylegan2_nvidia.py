"""jaxgan's StyleGAN2 is NVIDIA's StyleGAN2: the same function given the same weights.

tests/fixtures/stylegan2_nvidia.npz holds random weights of NVIDIA's own networks
(NVlabs/stylegan2-ada-pytorch) at three tiny configurations with every block type jaxgan supports,
and what NVIDIA's code computed from them in float32 (``tools/stylegan2_nvidia_reference.py`` made
it; NVIDIA's code is not part of jaxgan). Each test transplants the weights and compares jaxgan's
images, logits, losses, R1 and path-length penalties and their gradients row by row.
"""
import json

import numpy as np
import pytest

from jaxgan.interop import nvidia, nvidia_check

FIXTURE = "tests/fixtures/stylegan2_nvidia.npz"
CONFIGS = ("res32", "cond16_clamp", "orig16")
# float32 rounding: NVIDIA's own fused and non-fused paths differ by ~5e-7; gradients through two
# networks and a second derivative (R1, path length) accumulate more.
VALUE_TOL, GRAD_TOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def _config(fixture, name):
    sub = lambda p: {k[len(p):]: v for k, v in fixture.items() if k.startswith(p)}
    return (sub(f"{name}/G/"), json.loads(str(fixture[f"{name}/G_kwargs"])), sub(f"{name}/D/"),
            json.loads(str(fixture[f"{name}/D_kwargs"])), sub(f"{name}/out/"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_row_equals_nvidia_to_float32_rounding(fixture, name):
    rows = nvidia_check.compare(*_config(fixture, name))
    assert len(rows) == 20
    bad = {row: err for row, err in rows.items() if err > (GRAD_TOL if row.startswith("grad_") else VALUE_TOL)}
    assert not bad, f"{name}: rows above float32 rounding: {bad}"


def test_the_fixture_covers_every_block_type(fixture):
    """up/down-sampling, toRGB skip, residual and 'orig' D, labels in G and D, clamp, mbstd."""
    kw = {n: _config(fixture, n) for n in CONFIGS}
    assert {json.loads(str(fixture[f"{n}/D_kwargs"])).get("architecture") for n in CONFIGS} == {"resnet", "orig"}
    assert any(k[1]["c_dim"] > 0 for k in kw.values()) and any(k[1]["c_dim"] == 0 for k in kw.values())
    assert any(k[1]["synthesis_kwargs"]["conv_clamp"] for k in kw.values())
    g_state = kw["res32"][0]
    assert {"synthesis.b32.conv0.weight", "synthesis.b32.torgb.weight", "synthesis.b4.const"} <= set(g_state)
    d_state = kw["res32"][2]
    assert {"b32.fromrgb.weight", "b32.skip.weight", "b4.fc.weight"} <= set(d_state)
    assert "mapping.embed.weight" in kw["cond16_clamp"][2]  # D's label mapping


def test_strided_order_maps_nvidia_groups_to_consecutive_groups():
    order = nvidia.strided_order(8, 4)
    # NVIDIA's group of position i is i mod 2; the examples it holds must be jaxgan's groups {0..3}, {4..7}
    groups = [sorted(order[i] for i in range(8) if i % 2 == j) for j in range(2)]
    assert groups == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_gradient_rows_keep_a_float64_reference_exact(fixture):
    """A float64 reference (tools/stylegan2_nvidia_reference.py --float64) is compared in float64.

    The transplant is float32; mapping it over the values would round NVIDIA's float64 gradient to
    float32 and hide differences below ~6e-8. The rows map indices instead: a 1e-12 change shows.
    """
    g_state, g_kw, d_state, d_kw, out = _config(fixture, "res32")
    d = nvidia.discriminator_from_kwargs(d_kw)
    grads32 = {k[len("grad_d/"):]: v for k, v in out.items() if k.startswith("grad_d/")}
    ours = nvidia.discriminator_variables(d, grads32, with_buffers=False)["params"]
    ref64 = {f"grad_d/{k}": v.astype(np.float64) * (1 + 1e-12) for k, v in grads32.items()}
    rows = nvidia_check.differences({}, {"grad_d": ours}, (None, d), ref64)
    assert 5e-13 < rows["grad_d"] < 2e-12, rows
