"""CycleGAN: networks, the pool of past fakes, learning, device invariance, resume and `jaxgan translate`."""
import json
import pathlib
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import final_state
from jaxgan import cli, config as config_lib, run as run_lib, sharding
from jaxgan.games.cyclegan import CycleGAN, linear_decay, pair_grid, pool_query
from jaxgan.nets.cyclegan import PatchDiscriminator, ResnetGenerator, reflect_pad, tiny_cyclegan
from jaxgan.step import TrainStep

HERE = pathlib.Path(__file__).parent
# The network tests initialise with rbg keys: flax draws every parameter with its own key, and XLA:CPU
# compiles a threefry hash for each parameter shape (tiny_cyclegan(1)'s G and D: 13.4 s of CPU with
# jax's default threefry keys, 4.4 s with rbg; measured). The values differ, their distributions do
# not (tests/test_classics.py does the same).
INIT_KEY = {s: jax.random.key(s, impl="rbg") for s in (1, 2)}


def tiny_game(channels=1, **kw):
    g1, d1 = tiny_cyclegan(channels)
    g2, d2 = tiny_cyclegan(channels)
    return CycleGAN(g1, g2, d1, d2, **kw)


# -------------------------------------------------------------------------------------- networks

@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_tiny_networks_shapes_jit_equals_eager_and_finite_gradients(shape):
    g, d = tiny_cyclegan(shape[-1])
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape), minval=-1, maxval=1)
    gv, dv = jax.jit(g.init)(INIT_KEY[1], x), jax.jit(d.init)(INIT_KEY[2], x)  # eager: the applies below
    y = g.apply(gv, x)
    chex.assert_shape(y, (2, *shape))
    assert float(jnp.abs(y).max()) <= 1.0
    logits = d.apply(dv, x)
    side = shape[0] // 4 - 2  # two stride-2 4x4 convs, then two stride-1 4x4 convs with padding 1
    chex.assert_shape(logits, (2, side, side))
    chex.assert_trees_all_close(jax.jit(g.apply)(gv, x), y, atol=1e-5)
    chex.assert_trees_all_close(jax.jit(d.apply)(dv, x), logits, atol=1e-5)
    grads = jax.jit(jax.grad(lambda p: jnp.mean(d.apply(dv, g.apply({"params": p}, x)) ** 2)))(gv["params"])
    chex.assert_tree_all_finite(grads)
    assert any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(grads))  # G learns from D


def test_reflection_padding_matches_numpy_and_sizes_are_checked():
    x = jnp.arange(2 * 5 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 5, 3)
    np.testing.assert_array_equal(reflect_pad(x, 2), np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), "reflect"))
    with pytest.raises(ValueError, match="divisible by 4"):
        ResnetGenerator(1, ngf=4, n_blocks=1).init(jax.random.PRNGKey(0), jnp.zeros((1, 30, 30, 1)))


def test_seventy_by_seventy_patchgan_has_the_papers_output_size():
    d = PatchDiscriminator(ndf=4, n_layers=3)
    out = d.init_with_output(jax.random.PRNGKey(0), jnp.zeros((1, 256, 256, 3)))[0]
    chex.assert_shape(out, (1, 30, 30))  # pix2pix's 70x70 PatchGAN on 256x256 images


# ------------------------------------------------------------------------------------------ pool

def test_pool_fills_first_then_swaps_about_half_and_conserves_images():
    size, n = 5, 400
    images = jnp.arange(n, dtype=jnp.float32).reshape(n, 1, 1, 1)
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    pool, count, shown = pool_query(jnp.zeros((size, 1, 1, 1)), jnp.zeros((), jnp.int32), images, keys)
    shown = np.asarray(shown).ravel()
    np.testing.assert_array_equal(shown[:size], np.arange(size))  # filling: the new images themselves
    assert int(count) == size
    # every image ends either shown-once or still in the pool, exactly once overall
    everything = np.sort(np.concatenate([shown, np.asarray(pool).ravel()]))
    np.testing.assert_array_equal(everything, np.sort(np.concatenate([np.arange(n), np.arange(size)])))
    swapped = np.mean(shown[size:] != np.arange(size, n))
    assert 0.4 < swapped < 0.6, swapped
    again = pool_query(jnp.zeros((size, 1, 1, 1)), jnp.zeros((), jnp.int32), images, keys)
    chex.assert_trees_all_equal((pool, count, shown), jax.tree.map(np.asarray, (again[0], again[1], again[2].ravel())))


def test_linear_decay_holds_then_falls_to_zero():
    s = linear_decay(2e-4, 100, 0.5)
    assert float(s(0)) == float(s(49)) == pytest.approx(2e-4)
    assert float(s(75)) == pytest.approx(1e-4, rel=1e-3) and float(s(100)) == pytest.approx(0.0, abs=1e-12)


def test_pair_grid_puts_inputs_above_outputs():
    a, b = np.full((3, 4, 4, 1), -1.0), np.full((3, 4, 4, 1), 1.0)
    grid = pair_grid([a, b], per_row=3, padding=1)
    assert grid.shape == (9, 14, 1) and grid[0, 0, 0] == 0 and grid[5, 0, 0] == 255


# -------------------------------------------------------------------------------------- learning

def blobs(rs, n, size=16):
    """Random bright squares on black (domain A); domain B is the same kind of image inverted."""
    x = -np.ones((n, size, size, 1), np.float32)
    for i in range(n):
        r, c, w = rs.randint(0, size - 6), rs.randint(0, size - 6), rs.randint(3, 6)
        x[i, r:r + w, c:c + w] = 1.0
    return x


@pytest.mark.optimized
def test_cycle_error_falls_by_a_clear_margin_in_a_short_run():
    game = tiny_game(pool_size=8)
    mesh = sharding.make_mesh(jax.devices()[:1])
    step = TrainStep(game, optax.adam(2e-3, 0.5), optax.adam(2e-4, 0.5), mesh)
    rs = np.random.RandomState(0)
    batch = lambda: {"x": blobs(rs, 8)[None], "x_b": -blobs(rs, 8)[None]}
    state = step.init_state(0, jax.tree.map(lambda x: x[0], batch()))
    history = []
    for _ in range(60):
        state, m = step(state, sharding.global_batch(mesh, batch()))
        history.append(float(m["loss/cycle_a"]) + float(m["loss/cycle_b"]))
    first, last = np.mean(history[:3]), np.mean(history[-5:])
    assert last < 0.4 * first, (first, last)
    assert int(state.extra["pool_count"]) == 8


@pytest.mark.multidevice
def test_one_step_on_8_devices_equals_1_device():
    proc = subprocess.run([sys.executable, str(HERE / "multidevice_image2image.py"), "cyclegan"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ref, got = np.asarray(out["1"]["state"]), np.asarray(out["8"]["state"])
    bounds = np.cumsum([0] + out["1"]["sizes"])
    # leaf by leaf, relative to the leaf's scale: float32 sums split over 8 devices round
    # differently (measured 7e-6 on 2 devices, 2.6e-5 on 8), which an element near zero turns
    # into any relative error; a wrong average or a missing term is off by O(1)
    for s, e in zip(bounds[:-1], bounds[1:]):
        scale = np.abs(ref[s:e]).max()
        assert np.abs(got[s:e] - ref[s:e]).max() <= 1e-4 * scale + 1e-7, (s, e, scale)
    for k, v in out["1"]["metrics"].items():
        assert out["8"]["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
    # every device holds the same copy of the state declared replicated (shard_map does not check it)
    assert out["8"]["replication_error"] == 0.0


# ------------------------------------------------------------------------------- CLI end to end

def jaxgan(*args):
    return cli.main(list(args))


@pytest.mark.slow
def test_mnist_smoke_run_resumes_the_pool_bit_for_bit_and_translates(tmp_path, mnist_dir, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ["--smoke", "--set", f"data.dir={mnist_dir}", "--set", f"data_b.dir={mnist_dir}"]
    assert jaxgan("train", "cyclegan_mnist", "--workdir", str(straight), *args) == 0  # 6 steps, ckpts 3 and 6
    ev = json.loads((straight / "eval.json").read_text())
    for key in ("cycle64/a_l1", "cycle64/b_l1", "translation64/a2b_accuracy", "translation64/b2a_accuracy"):
        assert np.isfinite(ev[key]), key
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    assert jaxgan("train", "cyclegan_mnist", "--workdir", str(resumed), *args,
                  "--set", "eval.at_end=false") == 0  # steps 4..6; its evaluation is not read
    a, b = final_state(straight), final_state(resumed)
    assert int(a.step) == int(b.step) == 6 and int(a.extra["pool_count"]) == 4
    assert float(jnp.abs(a.extra["pool_b"]).sum()) > 0
    chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))

    digits = run_lib.build(config_lib.Config(json.loads((straight / "config.json").read_text())),
                           config_lib.load_experiment("cyclegan_mnist")).source.get_batch(0, 5)["x"]
    np.save(tmp_path / "in.npy", ((digits[..., 0] + 1) * 127.5).astype(np.uint8))  # (N, H, W) uint8
    capsys.readouterr()
    assert jaxgan("translate", str(straight), "--input", str(tmp_path / "in.npy"), "--direction", "b2a",
                  "--out", str(tmp_path / "out.npy")) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (5, 28, 28, 1) and out.dtype == np.float32 and np.abs(out).max() <= 1.0
    assert jaxgan("translate", str(straight), "--input", str(tmp_path / "in.npy"), "--out", str(tmp_path / "pngs")) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    assert jaxgan("translate", str(straight), "--input", str(tmp_path / "in.npy"), "--out", str(tmp_path / "x.txt")) == 2


def test_folder_experiment_trains_on_two_image_folders(tmp_path):
    from PIL import Image

    rs = np.random.RandomState(0)
    for domain, count in (("trainA", 6), ("trainB", 5)):
        (tmp_path / domain).mkdir()
        for i in range(count):
            Image.fromarray(rs.randint(0, 255, (40, 48, 3), np.uint8)).save(tmp_path / domain / f"{i}.png")
    wd = tmp_path / "run"
    assert jaxgan("train", "cyclegan_folder", "--smoke", "--workdir", str(wd), "--set", f"data.path={tmp_path / 'trainA'}",
                  "--set", f"data_b.path={tmp_path / 'trainB'}") == 0
    ev = json.loads((wd / "eval.json").read_text())
    assert set(ev) == {"step", "cycle4/a_l1", "cycle4/b_l1"} and ev["step"] == 3
    assert (wd / "samples" / "00000003.png").exists()
    (tmp_path / "testA").mkdir()
    for i in range(2):
        Image.fromarray(rs.randint(0, 255, (32, 32, 3), np.uint8)).save(tmp_path / "testA" / f"img{i}.png")
    assert jaxgan("translate", str(wd), "--input", str(tmp_path / "testA"), "--out", str(tmp_path / "o.npy")) == 0
    assert np.load(tmp_path / "o.npy").shape == (2, 32, 32, 3)
