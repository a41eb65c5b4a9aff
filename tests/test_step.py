"""The train step: plug-in networks and losses, compile-once, n_critic, EMA, penalties, devices."""
import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import game as game_lib, losses, penalties, sharding
from jaxgan.net import Net
from jaxgan.nets import tiny_dcgan, tiny_mlp
from jaxgan.state import ema_beta
from jaxgan.step import TrainStep

HERE = pathlib.Path(__file__).parent


def points(n_critic=1, batch=8, steps=3, seed=0, labels=False):
    rs = np.random.RandomState(seed)
    for _ in range(steps):
        b = {"x": rs.randn(n_critic, batch, 2).astype(np.float32)}
        if labels:
            b["label"] = rs.randint(0, 3, (n_critic, batch)).astype(np.int32)
        yield b


def train(game, data, *, n_critic=1, seed=0, lr=1e-3, **kw):
    mesh = sharding.make_mesh()
    step = TrainStep(game, optax.adam(lr), optax.adam(lr), mesh, n_critic=n_critic, **kw)
    data = list(data)
    state = step.init_state(seed, jax.tree.map(lambda x: x[0], data[0]))
    history = []
    for b in data:
        state, m = step(state, sharding.global_batch(mesh, b))
        history.append(jax.device_get(m))
    return step, state, history


def mlp_game(**kw):
    g, d = tiny_mlp((2,), num_classes=kw.pop("num_classes", None))
    return game_lib.GAN(g, d, latent_dim=4, num_classes=d.num_classes, **kw)


def test_metrics_have_hierarchical_names_and_are_finite():
    _, state, hist = train(mlp_game(penalties=(penalties.r1_penalty(1.0),)), points())
    expected = {"loss/d", "loss/d_adv", "loss/g", "logits/real", "logits/fake", "penalty/r1",
                "grad_norm/d", "grad_norm/g", "update_norm/d", "update_norm/g", "param_norm/d",
                "param_norm/g"}
    assert expected <= set(hist[-1])
    chex.assert_tree_all_finite(hist)
    assert int(state.step) == 3


def test_norms_are_computed_only_when_asked_and_change_nothing_else():
    """norms=False (the runner between log steps) gives the same state, the same other metrics, and
    no norm keys, from the one compiled program; norms=True gives the true norms."""
    from jaxgan.step import NORM_KEYS
    mesh = sharding.make_mesh()
    step = TrainStep(mlp_game(penalties=(penalties.r1_penalty(1.0),)), optax.adam(1e-3), optax.adam(1e-3),
                     mesh, n_critic=2, max_traces=1)
    batches = [sharding.global_batch(mesh, b) for b in points(n_critic=2, steps=3)]
    example = jax.tree.map(lambda x: x[0], next(points(n_critic=2, steps=1)))
    with_norms, without = step.init_state(0, example), step.init_state(0, example)
    for i, b in enumerate(batches):
        before = jax.tree.map(np.array, with_norms.g_params)  # the state is donated: copy it out
        with_norms, m_on = step(with_norms, b)
        without, m_off = step(without, b, norms=i == 1)
    chex.assert_trees_all_equal(with_norms, without)
    assert set(NORM_KEYS) <= set(m_on) and not set(NORM_KEYS) & set(m_off)
    chex.assert_trees_all_equal({k: v for k, v in m_on.items() if k not in NORM_KEYS}, m_off)
    norm = lambda tree: float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))))
    params_norm = norm(with_norms.g_params)
    assert float(m_on["param_norm/g"]) == pytest.approx(params_norm, rel=1e-5) and params_norm > 0
    assert float(m_on["grad_norm/d"]) > 0 and float(m_on["update_norm/g"]) > 0
    moved = norm(jax.tree.map(lambda a, b: np.asarray(a) - b, with_norms.g_params, before))
    assert float(m_on["update_norm/g"]) == pytest.approx(moved, rel=1e-5)
    compiled = step.lower(with_norms, batches[0]).compile()  # the AOT path the runner uses
    _, m_aot = compiled(without, batches[0], norms=False)
    assert not set(NORM_KEYS) & set(m_aot) and step.trace_count == 1


def test_step_compiles_once_over_five_steps():
    step, _, _ = train(mlp_game(), points(steps=5), max_traces=1)
    assert step.trace_count == 1


def test_n_critic_discriminator_updates_per_generator_update():
    _, state, _ = train(mlp_game(loss=losses.wasserstein()), points(n_critic=5, steps=3), n_critic=5)
    d_count = optax.tree_utils.tree_get(state.d_opt_state, "count")
    g_count = optax.tree_utils.tree_get(state.g_opt_state, "count")
    assert int(d_count) == 15 and int(g_count) == 3


def test_lazy_penalty_runs_every_kth_step_only():
    _, _, hist = train(mlp_game(penalties=(penalties.r1_penalty(1.0, every=2),)), points(steps=4))
    r1 = [float(m["penalty/r1"]) for m in hist]
    assert r1[0] > 0 and r1[2] > 0 and r1[1] == 0 and r1[3] == 0


def test_ema_follows_its_half_life():
    game = mlp_game()
    mesh = sharding.make_mesh()
    step = TrainStep(game, optax.sgd(0.1), optax.sgd(0.1), mesh, ema_half_life_kimg=0.004)
    b = next(points())
    state = step.init_state(0, jax.tree.map(lambda x: x[0], b))
    p0 = jax.device_get(state.g_params)
    state, m = step(state, sharding.global_batch(mesh, b))
    beta = float(ema_beta(jnp.int32(0), 8, 0.004))
    np.testing.assert_allclose(beta, 0.5 ** (8 / 4), rtol=1e-6)
    np.testing.assert_allclose(float(m["ema/beta"]), beta, rtol=1e-6)
    expected = jax.tree.map(lambda e, p: p + beta * (e - p), p0, jax.device_get(state.g_params))
    chex.assert_trees_all_close(jax.device_get(state.g_ema), expected, rtol=1e-5)


def test_a_custom_loss_is_compiled_into_the_step():
    calls = []

    def my_d(real, fake):  # hinge, written by a user
        calls.append(1)
        return jnp.mean(jax.nn.relu(1 - real)) + jnp.mean(jax.nn.relu(1 + fake))

    custom = losses.custom(my_d, lambda real, fake: -jnp.mean(fake), g_uses_real=False)
    step, s1, _ = train(mlp_game(loss=custom), points(steps=4))
    _, s2, _ = train(mlp_game(loss=losses.hinge()), points(steps=4))
    chex.assert_trees_all_close(s1.d_params, s2.d_params)
    chex.assert_trees_all_close(s1.g_params, s2.g_params)
    assert len(calls) == 1 and step.trace_count == 1  # traced once, then run compiled


def pure_mlp_net(sizes):
    """A network written without flax: plain jnp functions under the Net contract."""

    def init(rng, x, labels):
        keys = jax.random.split(rng, len(sizes))
        dims = [x.shape[-1], *sizes]
        return {"params": [{"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
                           for k, a, b in zip(keys, dims[:-1], dims[1:])]}

    def apply(variables, x, labels, train):
        h = x
        for i, layer in enumerate(variables["params"]):
            h = h @ layer["w"] + layer["b"]
            if i < len(sizes) - 1:
                h = jnp.tanh(h)
        return h, {}

    return Net(init=init, apply=apply)


def test_a_network_from_outside_flax_plugs_in():
    g = pure_mlp_net([16, 2])
    d = Net(init=pure_mlp_net([16, 1]).init,
            apply=lambda v, x, y, train: (pure_mlp_net([16, 1]).apply(v, x, y, train)[0][:, 0], {}))
    _, state, hist = train(game_lib.GAN(g, d, latent_dim=4), points(steps=5))
    assert int(state.step) == 5 and hist[-1]["grad_norm/g"] > 0
    assert state.g_state == {} and len(state.g_params) == 2


def test_conditional_game_needs_labels():
    game = mlp_game(num_classes=3)
    with pytest.raises(ValueError, match="'label'"):
        train(game, points())
    _, state, _ = train(game, points(labels=True))
    assert int(state.step) == 3


def test_bfloat16_compute_keeps_float32_parameters():
    g, d = tiny_dcgan(32, 3, dtype=jnp.bfloat16)
    game = game_lib.GAN(g, d, latent_dim=8)
    data = [{"x": np.random.RandomState(0).uniform(-1, 1, (1, 4, 32, 32, 3)).astype(np.float32)}] * 2
    _, state, hist = train(game, data)
    for leaf in jax.tree.leaves((state.g_params, state.d_params, state.d_opt_state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    assert all(v.dtype == np.float32 for v in hist[-1].values())
    chex.assert_tree_all_finite(hist)


def test_state_is_donated():
    game = mlp_game()
    mesh = sharding.make_mesh()
    step = TrainStep(game, optax.adam(1e-3), optax.adam(1e-3), mesh)
    b = next(points())
    state = step.init_state(0, jax.tree.map(lambda x: x[0], b))
    old = jax.tree.leaves(state.g_params)[0]
    step(state, sharding.global_batch(mesh, b))
    assert old.is_deleted()


def test_bad_batch_shape_is_a_clear_error():
    game = mlp_game()
    step = TrainStep(game, optax.adam(1e-3), optax.adam(1e-3), sharding.make_mesh(), n_critic=2)
    with pytest.raises(ValueError, match=r"expected \(n_critic=2, global_batch"):
        step.check_batch({"x": np.zeros((8, 2), np.float32)})


@pytest.mark.multidevice
@pytest.mark.parametrize("kind", ["dcgan", "mlp_conditional_wgan_gp"])
def test_same_parameters_on_1_2_and_8_devices(kind):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(HERE / "multidevice_check.py"), kind],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = np.asarray(out["1"]["params"])
    for n in ("2", "8"):
        np.testing.assert_allclose(np.asarray(out[n]["params"]), ref, rtol=2e-5, atol=2e-6,
                                   err_msg=f"{n} devices differ from 1")
        for k, v in out["1"]["metrics"].items():
            np.testing.assert_allclose(out[n]["metrics"][k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    assert out["error"] == "global batch 12 is not divisible by 8 devices: use a multiple of 8 (e.g. 8 or 16)"
    # check_vma=False leaves replication unchecked by JAX (docs/design.md): the state declared
    # replicated is the same on every device, not just close, and the check sees a BatchNorm that is
    # not synchronised over the devices. (StyleGAN2, SNGAN, the WGAN-GP critic with layer norm,
    # CycleGAN and SRGAN assert it in their own 8-device tests, which compile those networks anyway.)
    for n in ("2", "8"):
        assert out[n]["replication_error"] == 0.0, f"{n} devices: replicated state differs by {out[n]['replication_error']}"
    if kind == "dcgan":
        assert out["unsynced_batchnorm"] > 1e-6


def test_state_has_an_ema_only_when_the_step_keeps_one():
    b = jax.tree.map(lambda x: x[0], next(points()))
    for half_life, has_ema in ((None, False), (1.0, True)):
        step = TrainStep(mlp_game(), optax.adam(1e-3), optax.adam(1e-3), sharding.make_mesh(),
                         ema_half_life_kimg=half_life)
        assert (step.init_state(0, b).g_ema is not None) is has_ema
        assert (step.abstract_state(b).g_ema is not None) is has_ema


def test_ema_half_life_counts_the_images_of_every_critic_update():
    mesh = sharding.make_mesh()
    step = TrainStep(mlp_game(loss=losses.wasserstein()), optax.sgd(0.1), optax.sgd(0.1), mesh, n_critic=5,
                     ema_half_life_kimg=0.08)
    b = next(points(n_critic=5))
    state = step.init_state(0, jax.tree.map(lambda x: x[0], b))
    _, m = step(state, sharding.global_batch(mesh, b))
    np.testing.assert_allclose(float(m["ema/beta"]), 0.5 ** (8 * 5 / 80), rtol=1e-6)  # 40 images a step


def test_ema_keeps_its_own_averaged_model_state():
    """The EMA generator is sampled with BatchNorm statistics averaged like its parameters."""
    from jaxgan.run import sampling_variables

    g, d = tiny_dcgan(28, 1)
    game = game_lib.GAN(g, d, latent_dim=8)
    mesh = sharding.make_mesh()
    step = TrainStep(game, optax.adam(1e-3), optax.adam(1e-3), mesh, ema_half_life_kimg=0.01)
    rs = np.random.RandomState(0)
    data = [{"x": rs.uniform(-1, 1, (1, 8, 28, 28, 1)).astype(np.float32)} for _ in range(3)]
    state = step.init_state(0, jax.tree.map(lambda x: x[0], data[0]))
    expected = jax.device_get(state.g_state)
    for b in data:
        state, m = step(state, sharding.global_batch(mesh, b))
        beta = float(m["ema/beta"])
        expected = jax.tree.map(lambda e, x: x + beta * (e - x), expected, jax.device_get(state.g_state))
    chex.assert_trees_all_close(jax.device_get(state.g_ema_state), expected, rtol=1e-5, atol=1e-7)
    live = jax.tree.leaves(jax.device_get(state.g_state))
    ema = jax.tree.leaves(jax.device_get(state.g_ema_state))
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(live, ema)) > 1e-4  # they really differ
    params, model_state = sampling_variables(state)
    assert params is state.g_ema and model_state is state.g_ema_state


def test_shared_generator_pass_is_the_two_pass_math_with_the_same_noise():
    """share_generator_pass: the G update reuses the D update's fakes (and their VJP); the result
    equals doing both updates with separate forward passes of the same noise."""
    from jaxgan import rng as rng_lib
    from jaxgan.state import GANState

    g, d = tiny_dcgan(28, 1, axis_name=None)  # 1 device: BatchNorm over the whole batch either way
    game = game_lib.GAN(g, d, latent_dim=8, penalties=(penalties.r1_penalty(0.1),), axis_name=None)
    mesh = sharding.make_mesh(jax.devices()[:1])
    tx = optax.adam(1e-3, 0.5)
    step = TrainStep(game, tx, tx, mesh, share_generator_pass=True)
    batch = {"x": np.random.RandomState(0).uniform(-1, 1, (1, 8, 28, 28, 1)).astype(np.float32)}
    state = step.init_state(0, jax.tree.map(lambda x: x[0], batch))
    s0: GANState = jax.device_get(state)
    new, _ = step(state, sharding.global_batch(mesh, batch))

    # The same math by hand: D update, then G update through a second forward pass of the same z
    # (jitted as one program: op by op, its double backward pass took most of this test's time).
    @jax.jit
    def by_hand(s0, sub):
        keys = rng_lib.example_keys(jax.random.fold_in(jax.random.fold_in(s0.rng, 0), 0), 8, axis_name=None)
        (_, out), dg = jax.value_and_grad(game.d_loss, has_aux=True)(s0.d_params, s0, sub, keys)
        upd, _ = tx.update(dg, s0.d_opt_state, s0.d_params)
        mid = s0.replace(d_params=optax.apply_updates(s0.d_params, upd), **out.updates)
        (_, out), gg = jax.value_and_grad(game.g_loss, has_aux=True)(mid.g_params, mid, sub, keys)
        upd, _ = tx.update(gg, mid.g_opt_state, mid.g_params)
        return mid.d_params, optax.apply_updates(mid.g_params, upd), out.updates["g_state"]

    d_params, g_params, g_state = by_hand(s0, jax.tree.map(lambda x: jnp.asarray(x[0]), batch))
    chex.assert_trees_all_close(jax.device_get(new.d_params), d_params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(jax.device_get(new.g_params), g_params, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(jax.device_get(new.g_state), g_state, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="n_critic == 1 .this run has 2 D updates"):
        TrainStep(game, tx, tx, mesh, n_critic=2, share_generator_pass=True)
    no_hooks = type("NoHooks", (), {"d_loss": game.d_loss, "g_loss": game.g_loss})()
    with pytest.raises(ValueError, match="NoHooks has no fake, d_loss_given_fake, g_loss_given_fake"):
        TrainStep(no_hooks, tx, tx, mesh, share_generator_pass=True)


def test_seeds_above_32_bits_give_their_own_keys():
    from jaxgan.step import seed_key

    assert (np.asarray(seed_key(5)) == np.asarray(jax.random.PRNGKey(5))).all()  # unchanged below 2**32
    keys = {tuple(np.asarray(seed_key(s)).tolist()) for s in (0, 2**32, 2**33, 2**63 - 1, 2**32 + 1)}
    assert len(keys) == 5
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        seed_key(2**64)



def test_uint8_batches_train_exactly_as_their_float_conversion():
    """A uint8 batch crosses as uint8 (its stored bytes) and the step's result is the float batch's."""
    from jaxgan.data import uint8_to_unit

    rs = np.random.RandomState(0)
    stored = [{"x": rs.randint(0, 256, (1, 8, 6, 6, 3)).astype(np.uint8),
               "label": rs.randint(0, 3, (1, 8)).astype(np.int32)} for _ in range(2)]
    floats = [{"x": uint8_to_unit(b["x"]), "label": b["label"]} for b in stored]
    results = []
    for data in (stored, floats):
        g, d = tiny_mlp((6, 6, 3), num_classes=3, output_activation="tanh")
        game = game_lib.GAN(g, d, latent_dim=4, num_classes=3)
        step, state, hist = train(game, data)
        results.append(jax.device_get((state, hist)))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), *results)
    batch = sharding.global_batch(sharding.make_mesh(), stored[0])
    assert batch["x"].dtype == jnp.uint8 and batch["x"].nbytes == 8 * 6 * 6 * 3  # the stored bytes cross


def test_the_game_docstring_examples_run():
    import doctest

    from jaxgan import game

    result = doctest.testmod(game, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0, result
