"""Spectral normalisation (Miyato et al. 2018): the estimate, where its state lives, when it moves."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxgan.net import as_net, split
from jaxgan.nets.spectral import SPECTRAL_COLLECTION, SpectralNorm, power_iteration, spectral_estimate

KEY = jax.random.key(0, impl="rbg")


def _train(module, variables, x, calls):
    """``calls`` training-mode applications, threading the spectral state; returns the variables."""
    apply = jax.jit(lambda v: module.apply(v, x, train=True, mutable=[SPECTRAL_COLLECTION])[1])
    for _ in range(calls):
        variables = {**variables, **apply(variables)}
    return variables


def _only_u(variables):
    (u,) = jax.tree.leaves(variables[SPECTRAL_COLLECTION])
    return u


def test_dense_estimate_converges_to_the_largest_singular_value():
    layer = SpectralNorm(nn.Dense(24))
    x = jax.random.normal(KEY, (3, 40))
    variables = layer.init(KEY, x, train=False)
    w = np.asarray(variables["params"]["layer"]["kernel"], np.float64)
    top = np.linalg.svd(w, compute_uv=False)[0]
    u0 = _only_u(variables)
    first = float(spectral_estimate(jnp.asarray(w, jnp.float32), u0))
    assert first < 0.9 * top  # a random start is far from the top singular vector
    variables = _train(layer, variables, x, calls=60)
    estimate = float(spectral_estimate(jnp.asarray(w, jnp.float32), _only_u(variables)))
    np.testing.assert_allclose(estimate, top, rtol=1e-4)
    # The layer then computes x @ (W / sigma) + b: the normalised matrix has top singular value 1.
    eye = jnp.eye(40)
    w_sn = layer.apply(variables, eye, train=False) - variables["params"]["layer"]["bias"]
    np.testing.assert_allclose(np.linalg.svd(np.asarray(w_sn), compute_uv=False)[0], 1.0, rtol=1e-4)


def test_conv_normalises_the_reshaped_kernel_not_the_convolution_operator():
    layer = SpectralNorm(nn.Conv(16, (3, 3), padding="SAME", use_bias=False))
    x = jax.random.normal(KEY, (2, 12, 12, 8))
    variables = _train(layer, layer.init(KEY, x, train=False), x, calls=80)
    kernel = np.asarray(variables["params"]["layer"]["kernel"])
    reshaped = kernel.reshape(-1, kernel.shape[-1])  # (kh * kw * c_in, c_out), as the paper does
    top = np.linalg.svd(reshaped.astype(np.float64), compute_uv=False)[0]
    estimate = float(spectral_estimate(jnp.asarray(reshaped), _only_u(variables)))
    np.testing.assert_allclose(estimate, top, rtol=1e-4)
    # The layer convolves with kernel / top.
    expected = jax.lax.conv_general_dilated(x, jnp.asarray(kernel / top), (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    chex.assert_trees_all_close(layer.apply(variables, x, train=False), expected, atol=1e-4, rtol=1e-4)

    # The normalised convolution, as a linear map on 12x12x8 inputs, does not have norm 1.
    conv = lambda v: layer.apply(variables, v, train=False)
    v = jax.random.normal(jax.random.key(1), (1, 12, 12, 8))
    for _ in range(200):  # power iteration on conv^T conv
        _, vjp = jax.vjp(conv, v)
        v = vjp(conv(v))[0]
        v = v / jnp.linalg.norm(v)
    operator_norm = float(jnp.linalg.norm(conv(v)))
    assert operator_norm > 1.2, operator_norm  # measured 1.94 for this seed
    assert operator_norm <= 3.0 + 1e-3  # at most sqrt(kh * kw) times the reshaped norm


@settings(max_examples=10, deadline=None)
@given(rows=st.integers(2, 24), cols=st.integers(2, 24), seed=st.integers(0, 2**16), gap=st.floats(1.5, 4.0))
def test_power_iteration_finds_the_top_singular_value(rows, cols, seed, gap):
    rs = np.random.RandomState(seed)
    k = min(rows, cols)
    left, _ = np.linalg.qr(rs.randn(rows, k))
    right, _ = np.linalg.qr(rs.randn(cols, k))
    singular = np.sort(rs.uniform(0.1, 1.0, k))[::-1] * 3.0
    singular[0] = gap * singular[1] if k > 1 else singular[0]
    w = jnp.asarray((left * singular) @ right.T, jnp.float32)
    u = jnp.asarray(rs.randn(cols), jnp.float32)
    u = power_iteration(w, u / jnp.linalg.norm(u), n_steps=40)
    np.testing.assert_allclose(float(spectral_estimate(w, u)), singular[0], rtol=1e-4)
    np.testing.assert_allclose(float(jnp.linalg.norm(u)), 1.0, rtol=1e-5)


def test_u_moves_only_in_training():
    layer = SpectralNorm(nn.Dense(8))
    x = jax.random.normal(KEY, (4, 6))
    variables = layer.init(KEY, x, train=False)
    assert set(variables) == {"params", SPECTRAL_COLLECTION}
    _, frozen = layer.apply(variables, x, train=False, mutable=[SPECTRAL_COLLECTION])
    chex.assert_trees_all_equal(frozen[SPECTRAL_COLLECTION], variables[SPECTRAL_COLLECTION])
    _, moved = layer.apply(variables, x, train=True, mutable=[SPECTRAL_COLLECTION])
    assert not np.allclose(_only_u(moved), _only_u(variables))
    # Through the engine's view of a network: the spectral collection is model state.
    net = as_net(layer)
    params, state = split(net.init(KEY, x))
    assert set(state) == {SPECTRAL_COLLECTION}
    y_eval, state_eval = net.apply({"params": params, **state}, x, train=False)
    chex.assert_trees_all_equal(state_eval, state)
    y_train, state_train = net.apply({"params": params, **state}, x, train=True)
    assert not np.allclose(_only_u(state_train), _only_u(state))
    # Inference uses the stored u as it is: the same call twice gives the same output.
    chex.assert_trees_all_equal(y_eval, net.apply({"params": params, **state}, x, train=False)[0])


def test_gradient_flows_through_sigma_with_u_fixed():
    """d/dW <A, W / sigma(W)> with sigma = ||W u|| (u fixed): A / sigma - <A, W> v u^T / sigma^2."""
    layer = SpectralNorm(nn.Dense(5, use_bias=False))
    x = jax.random.normal(KEY, (7, 9))
    variables = layer.init(KEY, x, train=False)
    w, u = variables["params"]["layer"]["kernel"], _only_u(variables)
    a = jax.random.normal(jax.random.key(3), (7, 5))
    loss = lambda p: jnp.sum(a * layer.apply({"params": p, **{SPECTRAL_COLLECTION:
                                                               variables[SPECTRAL_COLLECTION]}}, x, train=False))
    grad = jax.grad(loss)(variables["params"])["layer"]["kernel"]
    sigma = jnp.linalg.norm(w @ u)
    v = w @ u / sigma
    g_out = x.T @ a  # d loss / d W_SN
    expected = g_out / sigma - jnp.sum(g_out * w) * jnp.outer(v, u) / sigma**2
    chex.assert_trees_all_close(grad, expected, atol=1e-5, rtol=1e-4)


def test_bfloat16_layer_keeps_float32_weights_and_state():
    layer = SpectralNorm(nn.Dense(8, dtype=jnp.bfloat16))
    x = jnp.ones((2, 4), jnp.bfloat16)
    variables = layer.init(KEY, x, train=False)
    y, state = layer.apply(variables, x, train=True, mutable=[SPECTRAL_COLLECTION])
    chex.assert_type(y, jnp.bfloat16)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((variables, state)))


@pytest.mark.parametrize("n_steps", [0, 3])
def test_n_steps_controls_the_iterations_per_call(n_steps):
    layer = SpectralNorm(nn.Dense(6), n_steps=n_steps)
    x = jax.random.normal(KEY, (2, 10))
    variables = layer.init(KEY, x, train=False)
    once = layer.apply(variables, x, train=True, mutable=[SPECTRAL_COLLECTION])[1]
    w = variables["params"]["layer"]["kernel"]
    chex.assert_trees_all_close(_only_u(once), power_iteration(w, _only_u(variables), n_steps), atol=1e-6)
