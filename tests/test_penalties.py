"""Property tests of the penalties and the lazy-regularisation correction."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import penalties


def linear_critic(params, x):
    return x.reshape(x.shape[0], -1) @ params["w"] + params["b"]


@pytest.fixture
def data():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    real = jax.random.normal(k1, (16, 3, 2))
    fake = jax.random.normal(k2, (16, 3, 2)) + 2.0
    params = {"w": jax.random.normal(k3, (6,)), "b": jnp.array(0.3)}
    return real, fake, params


def test_r1_and_r2_are_zero_for_a_constant_discriminator(data):
    real, fake, params = data
    const = lambda p, x: jnp.zeros(x.shape[0]) + p["b"]
    assert float(penalties.r1(const, params, real)) == 0.0
    assert float(penalties.r2(const, params, fake)) == 0.0


def test_r1_of_a_linear_critic_is_the_squared_weight_norm(data):
    real, _, params = data
    np.testing.assert_allclose(penalties.r1(linear_critic, params, real), jnp.sum(params["w"] ** 2), rtol=1e-5)


def test_r1_of_a_quadratic_critic_matches_its_gradient():
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    d = lambda p, x: p * jnp.sum(x ** 2, axis=1)  # grad = 2 p x
    np.testing.assert_allclose(penalties.r1(d, 1.5, x), np.mean(np.sum((3.0 * np.asarray(x)) ** 2, 1)), rtol=1e-5)


def test_gradient_penalty_closed_form_for_a_linear_critic(data):
    real, fake, params = data
    eps = jax.random.uniform(jax.random.PRNGKey(2), (16,))
    expected = (np.linalg.norm(np.asarray(params["w"])) - 1.0) ** 2
    np.testing.assert_allclose(penalties.gradient_penalty(linear_critic, params, real, fake, eps), expected,
                               rtol=1e-5)
    unit = {"w": params["w"] / jnp.linalg.norm(params["w"]), "b": params["b"]}
    assert float(penalties.gradient_penalty(linear_critic, unit, real, fake, eps)) < 1e-8


def test_penalties_are_jittable_and_differentiable(data):
    real, fake, params = data
    keys = jax.random.split(jax.random.PRNGKey(3), 16)
    for pen in (penalties.r1_penalty(), penalties.r2_penalty(), penalties.wgan_gp_penalty()):
        f = lambda p: pen.fn(linear_critic, p, real, fake, keys)
        chex.assert_trees_all_close(f(params), jax.jit(f)(params), rtol=1e-6)
        chex.assert_tree_all_finite(jax.grad(f)(params))


def test_penalty_weights_follow_the_papers():
    assert penalties.r1_penalty(gamma=10.0).weight == 5.0
    assert penalties.wgan_gp_penalty().weight == 10.0
    with pytest.raises(ValueError, match="every"):
        penalties.r1_penalty(every=0)


def test_lazy_adam_hyperparams_match_stylegan2():
    lr, b1, b2 = penalties.lazy_adam_hyperparams(0.0025, 0.0, 0.99, 16)
    c = 16 / 17
    np.testing.assert_allclose((lr, b1, b2), (0.0025 * c, 0.0, 0.99 ** c))
    assert penalties.lazy_adam_hyperparams(1e-3, 0.5, 0.9, 1) == pytest.approx((5e-4, 0.5 ** 0.5, 0.9 ** 0.5))
