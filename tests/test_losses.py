"""One battery for every loss: hand-computed values, finite gradients, jit equals eager."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses

REAL = jnp.array([2.0, -1.0, 0.5, 0.0])
FAKE = jnp.array([-3.0, 1.0, 0.25, 0.0])


def sp(x):  # softplus in float64 numpy
    return np.log1p(np.exp(np.asarray(x, np.float64)))


r, f = np.asarray(REAL, np.float64), np.asarray(FAKE, np.float64)
EXPECTED = {  # (d, g), written from the papers' equations
    "minimax": (np.mean(sp(-r)) + np.mean(sp(f)), -np.mean(sp(f))),
    "non_saturating": (np.mean(sp(-r)) + np.mean(sp(f)), np.mean(sp(-f))),
    "wasserstein": (np.mean(f) - np.mean(r), -np.mean(f)),
    "hinge": (np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)), -np.mean(f)),
    "least_squares": (0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2), 0.5 * np.mean((f - 1) ** 2)),
    "relativistic_average": (np.mean(sp(-(r - f.mean()))) + np.mean(sp(f - r.mean())),
                             np.mean(sp(-(f - r.mean()))) + np.mean(sp(r - f.mean()))),
}


def test_every_factory_is_covered():
    assert set(EXPECTED) == set(losses.BY_NAME)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values(name):
    loss = losses.BY_NAME[name]()
    exp_d, exp_g = EXPECTED[name]
    np.testing.assert_allclose(loss.d(REAL, FAKE), exp_d, rtol=1e-6)
    real = REAL if loss.g_uses_real else None
    np.testing.assert_allclose(loss.g(real, FAKE), exp_g, rtol=1e-6)
    assert loss.name == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradients_finite_and_jit_matches_eager(name):
    loss = losses.BY_NAME[name]()
    for fn in (loss.d, loss.g):
        grad = jax.grad(lambda r, f: fn(r, f), argnums=(0, 1))
        eager = grad(REAL, FAKE)
        jitted = jax.jit(grad)(REAL, FAKE)
        chex.assert_tree_all_finite(eager)
        chex.assert_trees_all_close(eager, jitted, rtol=1e-6)
        chex.assert_trees_all_close(fn(REAL, FAKE), jax.jit(fn)(REAL, FAKE), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bfloat16_logits_give_float32_losses(name):
    loss = losses.BY_NAME[name]()
    out = loss.d(REAL.astype(jnp.bfloat16), FAKE.astype(jnp.bfloat16))
    assert out.dtype == jnp.float32


def test_generator_losses_move_fakes_towards_real():
    # Every generator loss decreases as D's output on fakes rises (the relativistic one too).
    for name, factory in losses.BY_NAME.items():
        loss = factory()
        slope = jax.grad(lambda f: loss.g(REAL, f))(jnp.zeros(4))
        assert jnp.all(slope < 0), name


def test_least_squares_targets():
    loss = losses.least_squares(a=-1.0, b=1.0, c=0.0)
    np.testing.assert_allclose(loss.d(jnp.ones(3), -jnp.ones(3)), 0.0)
    np.testing.assert_allclose(loss.g(None, jnp.zeros(3)), 0.0)


def test_custom_requires_callables():
    with pytest.raises(TypeError, match="callables"):
        losses.custom("softplus", lambda r, f: f)
