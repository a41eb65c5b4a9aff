"""Tests of the network families: shapes, dtypes, parameter counts, conditioning, BatchNorm."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgan.nets import (
    SUPPORTED_RESOLUTIONS,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    tiny_dcgan,
    tiny_mlp,
)
from jaxgan.sharding import DATA_AXIS

B, NZ, NUM_CLASSES = 2, 16, 10
# rbg keys: the default (partitionable threefry) takes seconds to compile per 4-D kernel shape on CPU.
KEY = jax.random.key(0, impl="rbg")


def _inputs(cond, shape):
    labels = jnp.arange(B, dtype=jnp.int32) % NUM_CLASSES if cond else None
    return jax.random.normal(KEY, shape), labels


def _init_apply(module, x, labels, *, abstract=False, **kw):
    """init (train=False, as the engine does) then apply in eval mode; abstract: shapes only."""
    def run(x, labels):
        variables = module.init(KEY, x, labels, train=False)
        return variables, module.apply(variables, x, labels, train=False, **kw)
    return jax.eval_shape(run, x, labels) if abstract else run(x, labels)


def _num_params(variables):
    return sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("cond", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", SUPPORTED_RESOLUTIONS)
def test_dcgan_shapes_and_dtypes(resolution, channels, cond):
    g, d = tiny_dcgan(resolution, channels, NUM_CLASSES if cond else None)
    abstract = resolution >= 128  # shapes only: keeps the big resolutions fast on CPU
    z, labels = _inputs(cond, (B, NZ))
    g_vars, images = _init_apply(g, z, labels, abstract=abstract)
    chex.assert_shape(images, (B, resolution, resolution, channels))
    chex.assert_type(images, jnp.float32)
    assert set(g_vars) == {"params", "batch_stats"}
    d_vars, logits = _init_apply(d, images, labels, abstract=abstract)
    chex.assert_shape(logits, (B,))
    chex.assert_type(logits, jnp.float32)
    assert set(d_vars) == {"params", "batch_stats"}
    if not abstract:
        chex.assert_tree_all_finite((images, logits))


def test_dcgan64_parameter_counts_match_pytorch_example():
    g, d = DCGANGenerator(64, 3, ngf=64), DCGANDiscriminator(64, ndf=64)
    g_vars, images = _init_apply(g, jnp.zeros((B, 100)), None, abstract=True)
    d_vars, _ = _init_apply(d, images, None, abstract=True)
    assert _num_params(g_vars) == 3_576_704
    assert _num_params(d_vars) == 2_765_568
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves((g_vars, d_vars)))


def test_dcgan_has_no_bias_and_no_bn_at_the_ends():
    g, d = tiny_dcgan(32, 3)
    g_vars, images = _init_apply(g, jnp.zeros((B, NZ)), None, abstract=True)
    d_vars, _ = _init_apply(d, images, None, abstract=True)
    for variables in (g_vars, d_vars):
        names = ["/".join(k.key for k in path) for path, _ in jax.tree.leaves_with_path(variables["params"])]
        assert not [n for n in names if n.endswith("bias") and "BatchNorm" not in n]
    assert len(g_vars["batch_stats"]) == 3  # 4x4, 8x8, 16x16; none on the 32x32 output layer
    assert len(d_vars["batch_stats"]) == 2  # 8x8, 4x4; none on the 16x16 input layer


def test_generators_output_in_tanh_range():
    z = 10.0 * jax.random.normal(KEY, (8, NZ))  # large z to push towards saturation
    for g in (tiny_dcgan(28, 1)[0], MLPGenerator((28, 28, 1), hidden=16, output_activation="tanh")):
        _, images = _init_apply(g, z, None)
        assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0


def test_mlp_shapes_and_dtypes():
    for out_shape in [(2,), (28, 28, 1)]:
        for cond in (False, True):
            g, d = tiny_mlp(out_shape, NUM_CLASSES if cond else None)
            z, labels = _inputs(cond, (B, NZ))
            _, x = _init_apply(g, z, labels)
            chex.assert_shape(x, (B, *out_shape))
            _, logits = _init_apply(d, x, labels)
            chex.assert_shape(logits, (B,))
            chex.assert_type(logits, jnp.float32)


def test_mlp_generator_without_output_activation_is_unbounded():
    g = MLPGenerator((2,), hidden=16, depth=1)
    _, x = _init_apply(g, 100.0 * jax.random.normal(KEY, (64, NZ)), None)
    assert float(jnp.abs(x).max()) > 1.0  # toy data (e.g. a ring of radius 2) is not in [-1, 1]


@pytest.mark.parametrize("family", ["dcgan", "mlp"])
def test_bfloat16_compute_keeps_float32_params(family):
    if family == "dcgan":
        g, d = tiny_dcgan(32, 3, NUM_CLASSES, dtype=jnp.bfloat16)
    else:
        g, d = tiny_mlp((8, 8, 3), NUM_CLASSES, dtype=jnp.bfloat16)
    z, labels = _inputs(True, (B, NZ))
    g_vars = g.init(KEY, z, labels, train=False)
    images, state = g.apply(g_vars, z, labels, train=False, capture_intermediates=True)
    chex.assert_type(images, jnp.bfloat16)
    activations = [a for a in jax.tree.leaves(state["intermediates"]) if a.ndim > 1]
    assert activations and all(a.dtype == jnp.bfloat16 for a in activations)
    d_vars = d.init(KEY, images, labels, train=False)
    chex.assert_type(d.apply(d_vars, images, labels, train=False), jnp.float32)
    for variables in (g_vars, d_vars):
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))


@pytest.mark.parametrize("net", [
    lambda: tiny_dcgan(28, 1, NUM_CLASSES)[0],
    lambda: tiny_dcgan(28, 1, NUM_CLASSES)[1],
    lambda: MLPGenerator((2,), hidden=8, num_classes=NUM_CLASSES),
    lambda: MLPDiscriminator(hidden=8, num_classes=NUM_CLASSES),
], ids=["dcgan_g", "dcgan_d", "mlp_g", "mlp_d"])
def test_conditional_net_without_labels_raises(net):
    module = net()
    x = jnp.zeros((B, NZ)) if "Generator" in type(module).__name__ else jnp.zeros((B, 28, 28, 1))
    with pytest.raises(ValueError, match="class-conditional.*without labels"):
        module.init(KEY, x, None, train=False)


@pytest.mark.parametrize("resolution", [16, 48, 100, 512])
def test_unsupported_resolution_raises(resolution):
    with pytest.raises(ValueError, match=r"resolution .*\(28, 32, 64, 128, 256\)"):
        DCGANGenerator(resolution, 3).init(KEY, jnp.zeros((1, NZ)), train=False)
    with pytest.raises(ValueError, match=r"resolution .*\(28, 32, 64, 128, 256\)"):
        DCGANDiscriminator(resolution).init(KEY, jnp.zeros((1, resolution, resolution, 3)), train=False)


def test_discriminator_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="built for 32x32"):
        DCGANDiscriminator(32, ndf=8).init(KEY, jnp.zeros((1, 64, 64, 3)), train=False)


def test_unknown_activation_names_raise():
    with pytest.raises(ValueError, match="unknown output_activation"):
        MLPGenerator((2,), output_activation="sigmoid").init(KEY, jnp.zeros((1, NZ)))
    with pytest.raises(ValueError, match="unknown activation"):
        MLPDiscriminator(activation="gelu").init(KEY, jnp.zeros((1, 2)))


def test_train_mode_updates_batch_stats():
    g, d = tiny_dcgan(28, 1, axis_name=None)
    z = jax.random.normal(KEY, (4, NZ))
    g_vars = g.init(KEY, z, train=False)
    images, g_new = g.apply(g_vars, z, train=True, mutable=["batch_stats"])
    d_vars = d.init(KEY, images, train=False)
    _, d_new = d.apply(d_vars, images, train=True, mutable=["batch_stats"])
    for old, new in ((g_vars, g_new), (d_vars, d_new)):
        chex.assert_trees_all_equal_structs(old["batch_stats"], new["batch_stats"])
        changed = jax.tree.map(lambda a, b: not np.allclose(a, b), old["batch_stats"], new["batch_stats"])
        assert all(jax.tree.leaves(changed))


def test_train_mode_under_shard_map_over_data_axis():
    g, _ = tiny_dcgan(28, 1)  # default axis_name: the 'data' mesh axis
    z = jax.random.normal(KEY, (4, NZ))
    g_vars = g.init(KEY, z, train=False)
    mesh = jax.make_mesh((1,), (DATA_AXIS,))

    def step(variables, z):
        return g.apply(variables, z, train=True, mutable=["batch_stats"])

    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(DATA_AXIS), P()))
    images, new = jax.jit(sharded)(g_vars, jax.device_put(z, NamedSharding(mesh, P(DATA_AXIS))))
    expected, expected_new = g.clone(axis_name=None).apply(g_vars, z, train=True, mutable=["batch_stats"])
    chex.assert_trees_all_close((images, new), (expected, expected_new), atol=1e-5)


@pytest.mark.parametrize("make_d", [
    lambda: tiny_dcgan(28, 1, NUM_CLASSES)[1],
    lambda: MLPDiscriminator(hidden=8, num_classes=NUM_CLASSES),
], ids=["dcgan", "mlp"])
def test_projection_logit_depends_on_label(make_d):
    d = make_d()
    x = jax.random.normal(KEY, (B, 28, 28, 1))
    variables = d.init(KEY, x, jnp.zeros((B,), jnp.int32), train=False)
    logits = [d.apply(variables, x, jnp.full((B,), y, jnp.int32), train=False) for y in (0, 1)]
    assert not np.allclose(logits[0], logits[1])


# -- the sub-pixel form of the stride-2 transposed convolution ------------------------------------
@pytest.mark.parametrize("size,c_in,c_out", [(1, 3, 2), (5, 3, 2), (7, 4, 5), (8, 6, 3)])
def test_subpixel_form_is_the_transposed_convolution_with_its_gradients(size, c_in, c_out):
    from jaxgan.nets import strided
    rs = np.random.RandomState(size)
    x = jnp.asarray(rs.randn(2, size, size + 1, c_in).astype(np.float32))
    k = jnp.asarray(rs.randn(4, 4, c_in, c_out).astype(np.float32))
    w = jnp.asarray(rs.randn(2, 2 * size, 2 * size + 2, c_out).astype(np.float32))
    ref_fn = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=strided.DN)
    ref = ref_fn(x, k)
    chex.assert_shape(ref, (2, 2 * size, 2 * size + 2, c_out))
    chex.assert_trees_all_close(strided.subpixel_conv_transpose(x, k), ref, atol=1e-5, rtol=1e-5)
    loss = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * w), argnums=(0, 1))(x, k)
    chex.assert_trees_all_close(loss(strided.subpixel_conv_transpose), loss(ref_fn), atol=1e-4, rtol=1e-5)


def test_dcgan_generator_forms_share_parameters_and_function():
    """'phases' and 'transpose' build the same parameter tree (checkpoints move between them) and the
    same function, in training mode too; 'auto' is phases on CPU; an unknown form is refused."""
    from jaxgan.nets import strided, stylegan2
    from jaxgan.validate import UPSAMPLE_FORMS
    assert set(UPSAMPLE_FORMS) == set(strided.FORMS) | set(stylegan2.UPSAMPLE_FORMS)
    z = jax.random.normal(KEY, (4, NZ))
    for resolution in (28, 64):
        g_t = DCGANGenerator(resolution, 3, ngf=8, axis_name=None, upsample="transpose")
        g_p = g_t.clone(upsample="phases")
        v_t, v_p = g_t.init(KEY, z, train=False), g_p.init(KEY, z, train=False)
        chex.assert_trees_all_equal(v_t, v_p)
        out_t, _ = g_t.apply(v_t, z, train=True, mutable=["batch_stats"])
        out_p, _ = g_p.apply(v_t, z, train=True, mutable=["batch_stats"])
        chex.assert_trees_all_close(out_p, out_t, atol=2e-5)
        assert float(jnp.abs(out_t).mean()) > 0.01  # not a trivially equal (all-zero) output
    assert strided.resolve_form("auto") == ("phases" if jax.default_backend() == "cpu" else "transpose")
    with pytest.raises(ValueError, match="upsample='nope': use one of 'auto', 'transpose', 'phases'"):
        DCGANGenerator(28, 1, ngf=8, axis_name=None, upsample="nope").init(KEY, z, train=False)
