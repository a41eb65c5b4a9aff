"""SRGAN / SRResNet: networks, pixel shuffle, learning, device invariance and `jaxgan upscale`."""
import json
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import cli, sharding
from jaxgan.data.pairs import resize_bicubic
from jaxgan.eval.ssim import psnr
from jaxgan.games.srgan import SRGAN
from jaxgan.nets.srgan import SRResNet, pixel_shuffle, tiny_srgan
from jaxgan.step import TrainStep

HERE = pathlib.Path(__file__).parent
# The network tests initialise with rbg keys: flax draws every parameter with its own key, and XLA:CPU
# compiles a threefry hash for each parameter shape (tiny_srgan(1, 4)'s G and D: 10.0 s of CPU with
# jax's default threefry keys, 4.1 s with rbg; measured). The values differ, their distributions do
# not (tests/test_classics.py does the same).
INIT_KEY = {s: jax.random.key(s, impl="rbg") for s in (1, 2)}


def test_pixel_shuffle_matches_pytorchs_channel_order():
    r, c = 2, 3
    x = np.random.RandomState(0).randn(2, 4, 5, c * r * r).astype(np.float32)
    y = np.asarray(pixel_shuffle(jnp.asarray(x), r))
    assert y.shape == (2, 8, 10, c)
    for h, w, i, j, ch in [(0, 0, 0, 0, 0), (3, 4, 1, 1, 2), (2, 1, 0, 1, 1), (1, 3, 1, 0, 0)]:
        assert y[1, h * r + i, w * r + j, ch] == x[1, h, w, ch * r * r + i * r + j]


@pytest.mark.parametrize("factor,lr_size", [(4, 7), (2, 14)])
def test_tiny_networks_shapes_jit_equals_eager_and_finite_gradients(factor, lr_size):
    g, d = tiny_srgan(1, factor, axis_name=None)
    lr = jax.random.uniform(jax.random.PRNGKey(0), (3, lr_size, lr_size, 1), minval=-1, maxval=1)
    gv = jax.jit(lambda key, x: g.init(key, x, train=False))(INIT_KEY[1], lr)  # eager: the applies below
    sr, _ = jax.jit(lambda v, x: g.apply(v, x, train=True, mutable=["batch_stats"]))(gv, lr)
    chex.assert_shape(sr, (3, 28, 28, 1))
    dv = jax.jit(lambda key, x: d.init(key, x, train=False))(INIT_KEY[2], sr)
    logits = d.apply(dv, sr, train=False)
    chex.assert_shape(logits, (3,))
    chex.assert_trees_all_close(jax.jit(lambda v, x: g.apply(v, x, train=False))(gv, lr),
                                g.apply(gv, lr, train=False), atol=1e-5)
    chex.assert_trees_all_close(jax.jit(lambda v, x: d.apply(v, x, train=False))(dv, sr), logits, atol=1e-5)

    def loss(p):
        out, _ = g.apply({**gv, "params": p}, lr, train=True, mutable=["batch_stats"])
        return jnp.mean(out ** 2) + jnp.mean(d.apply(dv, out, train=False))

    grads = jax.jit(jax.grad(loss))(gv["params"])
    chex.assert_tree_all_finite(grads)
    assert any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(grads))


def test_factor_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of 2"):
        SRResNet(1, factor=3, features=4, n_blocks=1, axis_name=None).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)))


def smooth_images(rs, n, size=16):
    """Random smooth patterns (sums of low-frequency sinusoids) in [-1, 1]: learnable to upscale."""
    t = np.linspace(0, 1, size)
    x = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        for _ in range(3):
            fy, fx, phase = rs.uniform(0.5, 2.5, 2).tolist() + [rs.uniform(0, 6.3)]
            x[i, ..., 0] += np.sin(2 * np.pi * (fy * t[:, None] + fx * t[None, :]) + phase) / 3
    return x


def train_sr(adv_weight, steps=100):
    g, d = tiny_srgan(1, 4)
    game = SRGAN(g, d, adv_weight=adv_weight)
    mesh = sharding.make_mesh(jax.devices()[:1])
    step = TrainStep(game, optax.adam(3e-3), optax.adam(1e-4), mesh)
    rs = np.random.RandomState(0)

    def batch(n=16):
        hr = smooth_images(rs, n)
        return {"x": hr[None], "lr": np.clip(resize_bicubic(hr, 4, 4), -1, 1)[None]}

    state = step.init_state(0, jax.tree.map(lambda x: x[0], batch()))
    test = batch(64)
    score = lambda s: float(np.mean(psnr(np.clip(np.asarray(game.generate(s.g_params, s.g_state, test["lr"][0])), -1, 1),
                                         test["x"][0])))
    bicubic = float(np.mean(psnr(np.clip(resize_bicubic(test["lr"][0], 16, 16), -1, 1), test["x"][0])))
    before, d_before = score(state), jax.device_get(state.d_params)
    for _ in range(steps):
        state, metrics = step(state, sharding.global_batch(mesh, batch()))
    chex.assert_tree_all_finite(jax.device_get(metrics))
    return before, score(state), bicubic, d_before, state


def test_srresnet_psnr_improves_by_a_clear_margin_and_leaves_d_alone():
    before, after, bicubic, d_before, state = train_sr(adv_weight=0.0)
    # measured: 13.7 -> 18.1 dB after 80 steps, 19.4 after 150; bicubic upsampling about 16.3
    assert after > before + 4.0 and after > bicubic + 1.0, (before, after, bicubic)
    chex.assert_trees_all_equal(d_before, jax.device_get(state.d_params))  # adv_weight 0: D is never used


def test_srgan_psnr_improves_by_a_clear_margin():
    before, after, bicubic, d_before, state = train_sr(adv_weight=1e-3)
    assert after > before + 4.0 and after > bicubic + 1.0, (before, after, bicubic)
    assert any(np.any(np.asarray(a) != b) for a, b in zip(jax.tree.leaves(jax.device_get(state.d_params)),
                                                          jax.tree.leaves(d_before)))  # D trained


@pytest.mark.multidevice
def test_one_step_on_8_devices_equals_1_device():
    proc = subprocess.run([sys.executable, str(HERE / "multidevice_image2image.py"), "srgan"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.asarray(out["8"]["state"]), np.asarray(out["1"]["state"]), atol=2e-5, rtol=1e-4)
    for k, v in out["1"]["metrics"].items():
        assert out["8"]["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
    # cross-replica BatchNorm keeps every device's copy of the replicated state identical
    assert out["8"]["replication_error"] == 0.0


def jaxgan(*args):
    return cli.main(list(args))


def test_mnist_smoke_run_evaluates_and_upscales(tmp_path, mnist_dir, capsys):
    wd = tmp_path / "run"
    mnist = ["--set", f"data.dir={mnist_dir}", "--set", f"eval.data.dir={mnist_dir}"]
    assert jaxgan("train", "srgan_mnist", "--smoke", "--workdir", str(wd), *mnist) == 0
    ev = json.loads((wd / "eval.json").read_text())
    assert set(ev) == {"step", "psnr64/sr", "psnr64/bicubic", "ssim64/sr", "ssim64/bicubic"}
    assert 8.0 < ev["psnr64/bicubic"] < 30.0 and 0.0 < ev["ssim64/bicubic"] < 1.0  # a real, imperfect baseline
    low = np.random.RandomState(0).randint(0, 255, (3, 7, 7), np.uint8)
    np.save(tmp_path / "low.npy", low)
    assert jaxgan("upscale", str(wd), "--input", str(tmp_path / "low.npy"), "--out", str(tmp_path / "big.npy")) == 0
    big = np.load(tmp_path / "big.npy")
    assert big.shape == (3, 28, 28, 1) and np.abs(big).max() <= 1.0
    assert jaxgan("upscale", str(wd), "--input", str(tmp_path / "low.npy"), "--out", str(tmp_path / "big")) == 0
    from PIL import Image

    assert Image.open(tmp_path / "big" / "00002.png").size == (28, 28)
    capsys.readouterr()
    assert jaxgan("translate", str(wd), "--input", str(tmp_path / "low.npy"), "--out", str(tmp_path / "t.npy")) == 2
    assert "needs a CycleGAN run" in capsys.readouterr().err
