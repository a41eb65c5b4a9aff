"""The classic GANs as experiments: the SNGAN ResNet and the WGAN-GP critic in the network battery,
their step on 8 emulated devices against 1, and each experiment's --smoke run (train, evaluate, resume).

Run as a script (``python tests/test_classics.py KIND...``) it is the multi-device subprocess: XLA_FLAGS is
set before jax is imported.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

if __name__ == "__main__":  # the multi-device subprocess: 8 CPU devices, before jax is imported
    from xla_env import host_devices

    os.environ["XLA_FLAGS"] = host_devices(8, equivalence=True)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import chex  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

from conftest import final_state  # noqa: E402
from jaxgan import game as game_lib, losses, penalties, sharding  # noqa: E402
from jaxgan.nets import DCGANDiscriminator, tiny_resnet  # noqa: E402
from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator  # noqa: E402
from jaxgan.nets.spectral import SPECTRAL_COLLECTION  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
B, NZ, NUM_CLASSES = 4, 16, 10
KEY = jax.random.key(0, impl="rbg")

# name -> (module, input shape, is a generator, conditional)
NETWORKS = {
    "resnet_g": (lambda: tiny_resnet(32, 3, axis_name=None)[0], (B, NZ), True, False),
    "resnet_d": (lambda: tiny_resnet(32, 3)[1], (B, 32, 32, 3), False, False),
    "resnet_g_cond": (lambda: tiny_resnet(32, 1, NUM_CLASSES, axis_name=None)[0], (B, NZ), True, True),
    "resnet_d_proj": (lambda: tiny_resnet(32, 1, NUM_CLASSES)[1], (B, 32, 32, 1), False, True),
    "dcgan_critic_layer": (lambda: DCGANDiscriminator(28, ndf=8, norm="layer"), (B, 28, 28, 1), False, False),
}


def _inputs(shape, cond):
    x = jax.random.normal(KEY, shape)
    return x, (jnp.arange(B, dtype=jnp.int32) % NUM_CLASSES if cond else None)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_battery(name):
    """Shapes and dtypes, jit == eager, finite gradients, train mode moves only the model state."""
    make, shape, is_g, cond = NETWORKS[name]
    module = make()
    x, labels = _inputs(shape, cond)
    # init and gradients as one program each; the forward pass runs eagerly too (jit == eager below)
    variables = jax.jit(lambda key, x: module.init(key, x, labels, train=False))(KEY, x)
    state_cols = [c for c in variables if c != "params"]
    expected_cols = {"resnet": ["batch_stats"] if is_g else [SPECTRAL_COLLECTION], "dcgan": []}[name.split("_")[0]]
    assert state_cols == expected_cols

    def run(v, x):
        return module.apply(v, x, labels, train=True, mutable=state_cols)

    out, new_state = run(variables, x)
    if is_g:
        chex.assert_shape(out, (B, *_g_shape(module)))
        assert float(jnp.abs(out).max()) <= 1.0
    else:
        chex.assert_shape(out, (B,))
        chex.assert_type(out, jnp.float32)
    jit_out, jit_state = jax.jit(run)(variables, x)
    chex.assert_trees_all_close((jit_out, jit_state), (out, new_state), atol=1e-5, rtol=1e-5)
    for col in state_cols:  # training moves the model state (BatchNorm statistics, u vectors)
        # (a u of size 1, the Dense(1) head's, is a unit scalar: it cannot move)
        moved = jax.tree.map(lambda a, b: a.size == 1 or not np.allclose(a, b), variables[col], new_state[col])
        assert all(jax.tree.leaves(moved)), col

    def loss(params):
        y, _ = module.apply({**variables, "params": params}, x, labels, train=True, mutable=state_cols)
        return jnp.mean(jnp.square(y.astype(jnp.float32)))

    grads = jax.jit(jax.grad(loss))(variables["params"])
    chex.assert_tree_all_finite(grads)
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads)), "a parameter gets no gradient"


def _g_shape(module):
    return (module.resolution, module.resolution, module.channels)


def test_resnet_parameter_counts_match_the_paper_networks():
    """The CIFAR-10 SNGAN networks (widths 256/128): 4.28M and 1.05M parameters, as in Mimura's code."""
    g, d = ResNetGenerator(32, 3, width=256), ResNetDiscriminator(width=128)
    g_vars = jax.eval_shape(lambda: g.init(KEY, jnp.zeros((2, 128)), train=False))
    d_vars = jax.eval_shape(lambda: d.init(KEY, jnp.zeros((2, 32, 32, 3)), train=False))
    count = lambda v: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v["params"]))
    assert (count(g_vars), count(d_vars)) == (4_276_739, 1_053_825)
    assert "BatchNorm" not in str(jax.tree_util.tree_structure(d_vars))  # SN only in D


def test_projection_and_conditional_bn_use_the_label():
    g, d = tiny_resnet(32, 1, NUM_CLASSES, axis_name=None)
    z, _ = _inputs((B, NZ), False)
    g_vars = g.init(KEY, z, jnp.zeros((B,), jnp.int32), train=False)
    # conditional BN starts at gamma = 1, beta = 0: perturb it so that the label matters at init
    g_vars = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(KEY, p.shape), g_vars)
    images = [g.apply(g_vars, z, jnp.full((B,), y, jnp.int32), train=False) for y in (0, 1)]
    assert not np.allclose(images[0], images[1])
    d_vars = d.init(KEY, images[0], jnp.zeros((B,), jnp.int32), train=False)
    logits = [d.apply(d_vars, images[0], jnp.full((B,), y, jnp.int32), train=False) for y in (0, 1)]
    assert not np.allclose(logits[0], logits[1])


def test_resnet_rejects_bad_resolutions():
    with pytest.raises(ValueError, match="power-of-two resolution >= 8.*data.resolution"):
        ResNetGenerator(28, 1).init(KEY, jnp.zeros((1, NZ)), train=False)
    with pytest.raises(ValueError, match="power-of-two resolution >= 8"):
        ResNetDiscriminator(width=8).init(KEY, jnp.zeros((1, 28, 28, 1)), train=False)
    with pytest.raises(ValueError, match="unknown DCGANDiscriminator norm"):
        DCGANDiscriminator(28, norm="group").init(KEY, jnp.zeros((1, 28, 28, 1)), train=False)


# ---- one step on 8 emulated devices equals 1 device (subprocess) ----

GLOBAL_BATCH, STEPS = 16, 2


def _multidevice_game(kind):
    if kind == "sngan_cond":
        g, d = tiny_resnet(32, 1, 3)
        return game_lib.GAN(g, d, latent_dim=8, loss=losses.hinge(), num_classes=3)
    from jaxgan.nets import DCGANGenerator
    g = DCGANGenerator(28, 1, ngf=8)
    d = DCGANDiscriminator(28, ndf=8, norm="layer")
    return game_lib.GAN(g, d, latent_dim=8, loss=losses.wasserstein(), penalties=(penalties.wgan_gp_penalty(10.0),))


def _multidevice_run(kind, num_devices, initial=None):
    """``initial``: the 1-device run's initial state (host copy), put on this mesh instead of compiling
    ``init_state`` again for it (the engine's ``init_state`` on 2 and 8 devices is compared with 1 device
    by tests/test_step.py; here the step is)."""
    size = 32 if kind == "sngan_cond" else 28
    n_critic = 2
    rs = np.random.RandomState(1)
    batches = [{"x": rs.uniform(-1, 1, (n_critic, GLOBAL_BATCH, size, size, 1)).astype(np.float32),
                "label": rs.randint(0, 3, (n_critic, GLOBAL_BATCH)).astype(np.int32)} for _ in range(STEPS)]
    if kind != "sngan_cond":
        batches = [{"x": b["x"]} for b in batches]
    from jaxgan.step import TrainStep

    mesh = sharding.make_mesh(jax.devices()[:num_devices])
    # eps 1e-3: a bias just before a BatchNorm has zero gradient in exact arithmetic, and Adam with a
    # tiny eps would blow its rounding noise (which differs with the device count) up to full steps.
    tx = lambda: optax.adam(2e-3, 0.0, 0.9, eps=1e-3)
    step = TrainStep(_multidevice_game(kind), tx(), tx(), mesh, n_critic=n_critic, max_traces=1)
    if initial is None:
        state = step.init_state(0, jax.tree.map(lambda x: x[0], batches[0]))
        initial = jax.device_get(state)  # the step donates its input state: keep a host copy
    state = sharding.replicate(mesh, initial)
    for b in batches:
        state, metrics = step(state, sharding.global_batch(mesh, b))
    flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(
        (state.g_params, state.d_params, state.g_state, state.d_state))])
    return initial, {"params": flat.tolist(), "metrics": {k: float(v) for k, v in metrics.items()},
                     "d_state": sorted(state.d_state), "replication_error": sharding.replication_error(state)}


MULTIDEVICE_KINDS = ["sngan_cond", "wgan_gp_layer_norm"]


@pytest.mark.multidevice
@pytest.mark.slow
def test_one_step_on_8_devices_equals_1():
    """Each kind (one subprocess for both: the process start and imports once) trained on 8 emulated
    devices against 1 device."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()), *MULTIDEVICE_KINDS],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(MULTIDEVICE_KINDS)
    for kind, out in results.items():
        if kind == "sngan_cond":
            assert out["1"]["d_state"] == [SPECTRAL_COLLECTION]
        np.testing.assert_allclose(np.asarray(out["8"]["params"]), np.asarray(out["1"]["params"]), rtol=2e-5,
                                   atol=2e-6, err_msg=f"{kind}: 8 devices differ from 1")
        for k, v in out["1"]["metrics"].items():
            np.testing.assert_allclose(out["8"]["metrics"][k], v, rtol=1e-4, atol=1e-5, err_msg=f"{kind}: {k}")
        # spectral norm's u vectors and BatchNorm statistics: one identical copy on every device
        assert out["8"]["replication_error"] == 0.0, kind


# ---- the experiments, through the CLI ----

def jaxgan(*args):
    from jaxgan import cli
    return cli.main(list(args))


@pytest.mark.parametrize("experiment", ["wgan_gp_mnist", "lsgan_mnist"])
def test_dcgan_classics_smoke_train_and_evaluate(experiment, tmp_path, mnist_dir):
    wd = tmp_path / "run"
    assert jaxgan("train", experiment, "--smoke", "--workdir", str(wd), "--set", f"data.dir={mnist_dir}") == 0
    config = json.loads((wd / "config.json").read_text())
    if experiment == "wgan_gp_mnist":
        assert (config["loss"], config["penalty"]["gp_weight"], config["train"]["n_critic"]) == ("wasserstein", 10.0, 5)
        assert (config["optim"]["d_lr"], config["optim"]["b1"], config["optim"]["b2"]) == (1e-4, 0.0, 0.9)
    else:
        assert config["loss"] == "least_squares"
    lines = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if "loss/d" in line]
    assert train and all(np.isfinite(line["loss/d"]) for line in train)
    if experiment == "wgan_gp_mnist":
        assert all(line["penalty/gp"] > 0 for line in train)
    ev = json.loads((wd / "eval.json").read_text())
    assert ev["classifier_fid256"] > 0 and 1 <= ev["classifier_score256/mean"] <= 10
    assert (wd / "samples").is_dir() and list((wd / "samples").iterdir())


@pytest.mark.slow
def test_sngan_cifar10_smoke_trains_and_evaluates(tmp_path, mnist_dir):
    """sngan_cifar10's smoke is MNIST as 32x32 RGB. sngan_cond_mnist trains, resumes and is evaluated
    in the resume test below; sngan_mnist's networks are sngan_cond_mnist's without the labels."""
    wd = tmp_path / "run"
    assert jaxgan("train", "sngan_cifar10", "--smoke", "--workdir", str(wd), "--set", f"data.dir={mnist_dir}",
                  "--set", "eval.num_samples=128") == 0
    ev = json.loads((wd / "eval.json").read_text())
    assert ev["step"] == 3
    state = final_state(wd)
    assert set(state.d_state) == {SPECTRAL_COLLECTION}
    assert (wd / "samples" / "00000003.png").stat().st_size > 0


@pytest.mark.slow
def test_spectral_state_survives_a_resume_bit_for_bit(tmp_path, mnist_dir):
    """sngan_cond_mnist --smoke, 4 steps in one go (evaluated and sampled: its conditional BatchNorm
    and projection D under the spectral norms), against a copy stopped at step 2 and resumed to 4."""
    args = ["train", "sngan_cond_mnist", "--smoke", "--set", f"data.dir={mnist_dir}", "--set", "train.total_kimg=0.32",
            "--set", "checkpoint_every_steps=2", "--set", "sample_every_steps=4",  # 4 steps of 5 x 16
            "--set", "eval.num_samples=64"]
    a, b = tmp_path / "resumed", tmp_path / "straight"
    assert jaxgan(*args, "--workdir", str(b)) == 0
    shutil.copytree(b, a)
    shutil.rmtree(a / "checkpoints" / "4")
    (a / "eval.json").unlink()
    first = final_state(a)
    assert int(first.step) == 2
    assert jaxgan(*args, "--workdir", str(a), "--set", "eval.at_end=false") == 0  # would be b's: not read
    assert not (a / "eval.json").exists()
    sa, sb = final_state(a), final_state(b)
    assert int(sa.step) == int(sb.step) == 4
    chex.assert_trees_all_equal(sa, sb)  # final_state: host arrays already
    assert set(sa.d_state) == {SPECTRAL_COLLECTION}
    # the u vectors are in the checkpointed state, and they moved between step 2 and step 4
    u2, u4 = first.d_state[SPECTRAL_COLLECTION], sa.d_state[SPECTRAL_COLLECTION]
    assert jax.tree.leaves(u2) and not any(np.array_equal(x, y) for x, y in
                                           zip(jax.tree.leaves(u2), jax.tree.leaves(u4)) if x.size > 1)
    ev = json.loads((b / "eval.json").read_text())  # 32x32 digits: the 28x28 digit protocol after resizing
    assert "note" not in ev and ev["step"] == 4, ev
    assert ev["classifier_fid64"] > 0 and 1 <= ev["classifier_score64/mean"] <= 10, ev
    assert (b / "samples" / "00000004.png").stat().st_size > 0  # the conditional grid


if __name__ == "__main__":
    results = {}
    for kind in sys.argv[1:]:
        initial, one = _multidevice_run(kind, 1)
        _, eight = _multidevice_run(kind, 8, initial)
        results[kind] = {"1": one, "8": eight}
    print(json.dumps(results))
