"""StyleGAN2: networks, the game's regularisers, augmentation, device invariance and exact resume."""
import json
import math
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import final_state
from jaxgan import augment
from xla_env import host_devices
from jaxgan.games.stylegan2 import StyleGAN2, noise_keys_from_latents, path_lengths
from jaxgan.nets import stylegan2 as sg

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The network tests initialise with rbg keys: flax draws every parameter with its own key, and XLA:CPU
# compiles a threefry hash for each parameter shape (tiny_stylegan2(8, 3)'s G and D: 12.4 s of CPU with
# jax's default threefry keys, 8.1 s with rbg; measured). The values differ, their distributions do
# not (tests/test_classics.py does the same).
INIT_KEY = {s: jax.random.key(s, impl="rbg") for s in (1, 2)}


def _keys(n, seed=0):
    return jax.random.split(jax.random.PRNGKey(seed), n)


@pytest.fixture(scope="module")
def tiny16():
    g, d = sg.tiny_stylegan2(16, 1)
    game = StyleGAN2(g, d, latent_dim=8, r1_every=1, pl_every=1, axis_name=None)
    v = jax.jit(game.init)(jax.random.key(0, impl="rbg"), {"x": jnp.zeros((4, 16, 16, 1))})  # see INIT_KEY
    return game, v


# ------------------------------------------------------------------------------------ networks

@pytest.mark.parametrize("res,channels,classes", [(8, 3, None), (16, 1, 10), (32, 3, None)])
def test_shapes_and_dtypes_at_each_resolution(res, channels, classes):
    g, d = sg.tiny_stylegan2(res, channels, num_classes=classes)
    z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
    labels = None if classes is None else jnp.arange(4) % classes
    gv = jax.jit(g.init)(INIT_KEY[1], z, labels)  # jitted: one program instead of one per operation
    assert gv["stats"]["w_avg"].shape == (16,)
    assert g.num_ws == sg.num_ws(res) == 2 * int(math.log2(res)) - 2
    x = jax.jit(lambda v, z: g.apply(v, z, labels, noise_keys=_keys(4)))(gv, z)
    chex.assert_shape(x, (4, res, res, channels))
    assert x.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(x)))
    dv = jax.jit(d.init)(INIT_KEY[2], x, labels)
    logits = jax.jit(lambda v, x: d.apply(v, x, labels))(dv, x)
    chex.assert_shape(logits, (4,))
    assert logits.dtype == jnp.float32
    if res == 8:
        bf = sg.StyleGAN2Generator(res, channels, w_dim=16, mapping_layers=2, channel_base=8 * res, channel_max=8,
                                   num_classes=classes, dtype=jnp.bfloat16)
        assert jax.jit(bf.apply)(gv, z, labels).dtype == jnp.float32  # bfloat16 compute, float32 images


def test_noise_maps_are_drawn_in_the_synthesis_dtype_from_the_float32_draw():
    """bfloat16 synthesis gets bfloat16 noise maps (activations XLA would otherwise keep in float32),
    the float32 draw rounded: the same normal samples, 4x4 then two maps a resolution."""
    keys = _keys(3)
    f32 = jax.jit(lambda k: sg._noise_inputs(k, 16))(keys)
    bf16 = jax.jit(lambda k: sg._noise_inputs(k, 16, jnp.bfloat16))(keys)
    assert [m.shape for m in f32] == [(3, r, r, 1) for r in (4, 8, 8, 16, 16)]
    assert all(m.dtype == jnp.float32 for m in f32) and all(m.dtype == jnp.bfloat16 for m in bf16)
    for a, b in zip(f32, bf16):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a.astype(jnp.bfloat16)))
    assert 0.8 < float(jnp.std(jnp.concatenate([m.ravel() for m in f32]))) < 1.2


def test_channel_widths_follow_ada():
    assert [sg.channels_at(r, 32768, 512) for r in (4, 32, 64, 128, 256)] == [512, 512, 512, 256, 128]


def test_jit_equals_eager(tiny16):
    game, v = tiny16
    z = jax.random.normal(jax.random.PRNGKey(3), (4, 8))
    fn = lambda p, s, z: game.generator.apply({"params": p, **s}, z, noise_keys=noise_keys_from_latents(z))
    chex.assert_trees_all_close(jax.jit(fn)(v["g_params"], v["g_state"], z), fn(v["g_params"], v["g_state"], z),
                                atol=1e-5, rtol=1e-5)


def test_gradients_are_finite_and_reach_every_parameter(tiny16):
    game, v = tiny16
    state = _state(v)
    batch = {"x": jax.random.uniform(jax.random.PRNGKey(4), (4, 16, 16, 1), minval=-1, maxval=1)}
    for side, loss in (("g", game.g_loss), ("d", game.d_loss)):
        grads = jax.jit(jax.grad(lambda p: loss(p, state, batch, _keys(4))[0]))(v[f"{side}_params"])
        leaves = jax.tree_util.tree_leaves_with_path(grads)
        assert all(bool(jnp.all(jnp.isfinite(g))) for _, g in leaves)
        # noise strengths start at 0 and only receive gradient through the noise they scale: all move
        dead = [jax.tree_util.keystr(p) for p, g in leaves if float(jnp.max(jnp.abs(g))) == 0.0]
        assert not dead, f"{side}: parameters without gradient: {dead}"


def test_equalised_learning_rate_scales_weights_at_run_time():
    fan_in, out = 512, 256
    layer = sg.EqualDense(out, lr_mul=0.01)
    v = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, fan_in)))
    stored = v["params"]["kernel"]
    assert abs(float(jnp.std(stored)) - 100.0) < 5.0  # stored N(0, 1) / lr_mul
    effective = layer.apply(v, jnp.eye(fan_in)) - layer.apply(v, jnp.zeros((1, fan_in)))
    assert abs(float(jnp.std(effective)) * math.sqrt(fan_in) - 1.0) < 0.05  # 1 / sqrt(fan_in) at run time
    conv = sg.EqualConv(64, kernel=3, act="linear", use_bias=False)
    cv = conv.init(jax.random.PRNGKey(1), jnp.zeros((1, 8, 8, 32)))
    assert abs(float(jnp.std(cv["params"]["kernel"])) - 1.0) < 0.05
    # a unit-variance input gives a unit-variance output (interior pixels): the point of the scaling
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 32, 32, 32))
    y = conv.apply(cv, x)[:, 1:-1, 1:-1]
    assert abs(float(jnp.var(y)) - 1.0) < 0.1


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), log_scale=st.floats(-3.0, 3.0))
def test_demodulation_normalises_output_variance(seed, log_scale):
    kx, kw, ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    cin, cout = 16, 8
    x = jax.random.normal(kx, (2, 48, 48, cin))
    w = jax.random.normal(kw, (3, 3, cin, cout)) / math.sqrt(cin * 9)
    s = jnp.exp(jax.random.normal(ks, (2, cin))) * 10.0 ** log_scale  # arbitrary style magnitudes
    y = sg.modulated_conv(x, w, s, demodulate=True)[:, 1:-1, 1:-1]
    var = jnp.var(y, axis=(1, 2))  # per example and output channel
    np.testing.assert_allclose(np.asarray(var), 1.0, atol=0.15)
    # the same function as the paper's per-sample weight modulation and demodulation
    for b in range(2):
        wb = w * s[b][None, None, :, None]
        wb = wb / jnp.sqrt(jnp.sum(wb ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
        ref = jax.lax.conv_general_dilated(x[b:b + 1], wb, (1, 1), "SAME",
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(np.asarray(sg.modulated_conv(x[b:b + 1], w, s[b:b + 1])), np.asarray(ref),
                                   rtol=1e-4, atol=1e-4)


def test_fir_resampling_preserves_a_constant_image():
    x = jnp.full((1, 8, 8, 2), 3.0)
    np.testing.assert_allclose(np.asarray(sg.upsample2d(x))[:, 2:-2, 2:-2], 3.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sg.downsample2d(x))[:, 1:-1, 1:-1], 3.0, rtol=1e-6)
    chex.assert_shape(sg.upsample2d(x), (1, 16, 16, 2))
    chex.assert_shape(sg.downsample2d(x), (1, 4, 4, 2))


def _fir_depthwise(x, gain, *, strides=(1, 1), padding, lhs_dilation=(1, 1)):
    """The FIR resampling as ADA's upfirdn2d defines it: a depthwise convolution with the 2-D filter."""
    f = np.outer(sg.FIR, sg.FIR)
    k = jnp.asarray(np.tile((f / f.sum() * gain)[:, :, None, None], (1, 1, 1, x.shape[-1])), x.dtype)
    return jax.lax.conv_general_dilated(x, k, strides, padding, lhs_dilation=lhs_dilation,
                                        feature_group_count=x.shape[-1],
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _assert_same_values_and_gradients(ours, ref, x, probe):
    """``ours(x)`` and ``ref(x)``, jitted as the train step runs them, agree in shape and value, and
    so do their gradients of the sum against ``probe`` (cut to the output's shape)."""
    ours, ref = jax.jit(ours), jax.jit(ref)
    y, y_ref = ours(x), ref(x)
    chex.assert_equal_shape([y, y_ref])
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-5)
    p = probe[tuple(slice(0, n) for n in y.shape)]
    grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(f(x) * p)))(x)
    np.testing.assert_allclose(np.asarray(grad(ours)), np.asarray(grad(ref)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [4, 7, 16])
def test_fir_shifted_slices_equal_the_depthwise_convolution_with_gradients(size):
    x = jax.random.normal(jax.random.PRNGKey(size), (2, size, size, 3))
    cases = [
        (sg.upsample2d, lambda x: _fir_depthwise(x, 4.0, padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))),
        (sg.downsample2d, lambda x: _fir_depthwise(x, 1.0, strides=(2, 2), padding=((1, 1), (1, 1)))),
        # the discriminator's blur before its stride-2 3x3 and 1x1 convolutions
        (lambda x: sg.blur(x, (2, 2)), lambda x: _fir_depthwise(x, 1.0, padding=((2, 2), (2, 2)))),
        (lambda x: sg.blur(x, (1, 1)), lambda x: _fir_depthwise(x, 1.0, padding=((1, 1), (1, 1)))),
    ]
    probe = jax.random.normal(jax.random.PRNGKey(1), _fir_depthwise(x, 4.0, padding=((2, 2), (2, 2)),
                                                                    lhs_dilation=(2, 2)).shape)
    # jitted (op by op they cost ~7 s of CPU a size to compile, jitted ~2 s)
    for ours, ref in cases:
        _assert_same_values_and_gradients(ours, ref, x, probe)


@pytest.mark.parametrize("size", [7, 16])
def test_fir_conv_form_equals_the_slices_with_gradients(size):
    """The 'conv' FIR form (one depthwise convolution, TPU's default) gives the slices' values and
    gradients for every filter the networks use, up-sampling with extra padding included."""
    x = jax.random.normal(jax.random.PRNGKey(size), (2, size, size, 3))
    cases = [lambda x, form: sg.upsample2d(x, form=form), lambda x, form: sg.upsample2d(x, 1, form=form),
             lambda x, form: sg.downsample2d(x, form=form), lambda x, form: sg.blur(x, (2, 2), form=form),
             lambda x, form: sg.blur(x, (1, 1), gain=4.0, form=form), lambda x, form: sg.blur(x, (2, 1), form=form)]
    probe = jax.random.normal(jax.random.PRNGKey(1), (2, 2 * size + 2, 2 * size + 2, 3))  # the largest output
    for fn in cases:
        _assert_same_values_and_gradients(lambda x: fn(x, "conv"), lambda x: fn(x, "slices"), x, probe)


def test_downsampling_1x1_conv_filters_only_the_pixels_it_keeps():
    """In the 'conv' form the residual skip (1x1, down=2) filters with stride 2 and then convolves,
    as ADA's conv2d_resample does for 1x1 kernels: the values and gradients of blurring every pixel
    and striding the convolution (the 'slices' form), from a filtered array a quarter the size."""
    layer = {form: sg.EqualConv(5, kernel=1, down=True, use_bias=False, act="linear", gain=0.5 ** 0.5, fir=form)
             for form in ("slices", "conv")}
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 16, 16, 3))
    v = layer["conv"].init(INIT_KEY[1], x)
    y = {form: jax.jit(m.apply)(v, x) for form, m in layer.items()}
    chex.assert_shape(y["conv"], (2, 8, 8, 5))
    np.testing.assert_allclose(np.asarray(y["conv"]), np.asarray(y["slices"]), rtol=1e-5, atol=1e-5)
    probe = jax.random.normal(jax.random.PRNGKey(1), y["conv"].shape)
    g = {form: jax.jit(jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * probe), argnums=(0, 1)))(v, x)
         for form, m in layer.items()}
    chex.assert_trees_all_close(g["conv"], g["slices"], rtol=1e-5, atol=1e-5)
    # the filtered input is a quarter of the input (the slices form's first filter pass alone
    # writes (16 - 1) x (16 + 2) pixels)
    eqns = jax.make_jaxpr(layer["conv"].apply)(v, x).jaxpr.eqns
    filtered = [math.prod(o.aval.shape) for e in eqns for o in e.outvars if o.aval.shape[-1] == 3]
    assert max(filtered) == x.size // 4, (filtered, x.size)


def test_fir_forms_are_the_same_networks_with_gradients():
    """A generator and a residual discriminator compute the same images, logits and gradients with
    either FIR form; 'auto' is 'slices' on CPU and 'conv' for a TPU run, also for a config saved
    before ``model.fir`` existed; others are refused."""
    from jaxgan import precision
    z = jax.random.normal(jax.random.PRNGKey(2), (4, 16))
    keys = noise_keys_from_latents(z)
    nets = {form: sg.stylegan2_pair(8, 3, w_dim=16, mapping_layers=1, channel_base=64, channel_max=16,
                                    mbstd_group=2, upsample="transpose", fir=form) for form in ("slices", "conv")}
    vg = jax.jit(nets["slices"][0].init)(INIT_KEY[1], z)
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 8, 8, 3))
    vd = jax.jit(nets["slices"][1].init)(INIT_KEY[2], x)

    def loss(form):
        g, d = nets[form]
        return jax.jit(jax.value_and_grad(lambda pg, pd: jnp.sum(d.apply(
            {"params": pd}, g.apply({**vg, "params": pg}, z, noise_keys=keys) + x) ** 2), argnums=(0, 1)))

    (l_s, g_s), (l_c, g_c) = loss("slices")(vg["params"], vd["params"]), loss("conv")(vg["params"], vd["params"])
    assert abs(float(l_s) - float(l_c)) <= 1e-4 * abs(float(l_s)) + 1e-4
    chex.assert_trees_all_close(g_c, g_s, rtol=1e-4, atol=1e-4)
    assert sg.resolve_fir("auto") == "slices" == sg.default_fir("cpu") and sg.default_fir("gpu") == "slices"
    for cfg in ({"model": {"w_dim": 512, "fir": "auto"}}, {"model": {"w_dim": 512}}):
        assert precision.resolve_config(cfg, "tpu")["model"]["fir"] == "conv"
        assert precision.resolve_config(cfg, "cpu")["model"]["fir"] == "slices"
    assert "fir" not in precision.resolve_config({"model": {"ngf": 8}}, "tpu")["model"]  # not a StyleGAN2
    from jaxgan.validate import FIR_FORMS
    assert FIR_FORMS == sg.FIR_FORMS  # what `--set model.fir=...` accepts
    with pytest.raises(ValueError, match="fir='depthwise'"):
        sg.StyleGAN2Discriminator(8, channel_base=64, channel_max=16, fir="depthwise").init(INIT_KEY[1], x)


def test_upsampling_forms_are_the_same_generator_with_gradients():
    """'transpose' (NVIDIA's order: stride-2 transposed convolution, then the filter) and 'filter'
    (filter first, then a 3x3 convolution at the output size) share parameters and compute the same
    images and gradients; 'auto' is 'filter' on CPU and 'transpose' for a TPU run; others are refused."""
    from jaxgan import precision
    g = {form: sg.StyleGAN2Generator(8, 3, w_dim=16, mapping_layers=1, channel_base=64, channel_max=16,
                                     upsample=form) for form in ("filter", "transpose", "auto")}
    z = jax.random.normal(jax.random.PRNGKey(2), (3, 16))
    v = jax.jit(g["filter"].init)(INIT_KEY[1], z)
    chex.assert_trees_all_equal_shapes(v, jax.eval_shape(g["transpose"].init, INIT_KEY[1], z))
    keys = noise_keys_from_latents(z)
    probe = jax.random.normal(jax.random.PRNGKey(3), (3, 8, 8, 3))

    def loss(form):
        return jax.jit(jax.value_and_grad(lambda p: jnp.sum(g[form].apply(
            {**v, "params": p}, z, noise_keys=keys) * probe)))

    (l_f, g_f), (l_t, g_t) = loss("filter")(v["params"]), loss("transpose")(v["params"])
    assert abs(float(l_f) - float(l_t)) <= 1e-4 * abs(float(l_f)) + 1e-4
    chex.assert_trees_all_close(g_t, g_f, rtol=1e-4, atol=1e-4)
    assert sg.resolve_upsample("auto") == "filter" == sg.default_upsample("cpu")
    cfg = {"model": {"w_dim": 512, "upsample": "auto"}}
    assert precision.resolve_config(cfg, "tpu")["model"]["upsample"] == "transpose"
    assert precision.resolve_config(cfg, "cpu")["model"]["upsample"] == "filter"
    with pytest.raises(ValueError, match="upsample='phases'"):
        sg.SynthesisLayer(4, up=True, upsample="phases").init(INIT_KEY[1], jnp.zeros((1, 4, 4, 4)),
                                                              jnp.zeros((1, 8)), None)


def test_kernels_cast_once_give_each_convolutions_own_cast_and_float32_gradients():
    """In bfloat16 the game casts the convolution kernels once per loss, behind an optimization
    barrier (XLA would fold a plain cast back into each convolution): the losses are those of the
    per-convolution casts to bfloat16 rounding, the gradients reach the float32 kernels (R1 and path
    length's second derivatives included), and in float32 nothing is cast."""
    g, d = sg.tiny_stylegan2(8, 1)
    game = StyleGAN2(g.clone(dtype=jnp.bfloat16), d.clone(dtype=jnp.bfloat16), latent_dim=8, r1_every=1,
                     pl_every=1, axis_name=None)
    v = jax.jit(game.init)(INIT_KEY[1], {"x": jnp.zeros((4, 8, 8, 1))})
    state, batch, keys = _state(v), {"x": jax.random.uniform(jax.random.PRNGKey(5), (4, 8, 8, 1), minval=-1)}, _keys(4)
    class EachCast(StyleGAN2):  # each convolution casts its own kernel
        def _kernels_once(self, params, net):
            return params

    plain = EachCast(game.generator, game.discriminator, latent_dim=8, r1_every=1, pl_every=1, axis_name=None)
    (losses, grads) = zip(*[jax.jit(jax.value_and_grad(x.d_loss, has_aux=True))(v["d_params"], state, batch, keys)
                            for x in (game, plain)])  # D's loss with R1 (g_loss compiled too: 10 s more)
    l_once, l_each = float(losses[0][0]), float(losses[1][0])
    assert abs(l_once - l_each) <= 0.02 * abs(l_each) + 1e-3, (l_once, l_each)
    kernels = [x for x in jax.tree.leaves(grads[0]) if x.ndim == 4]
    assert kernels and all(x.dtype == jnp.float32 for x in jax.tree.leaves(grads[0]))
    assert all(float(jnp.max(jnp.abs(x))) > 0 for x in kernels)
    for side, params in (("d_loss", v["d_params"]), ("g_loss", v["g_params"])):  # one cast per network
        text = jax.jit(lambda p: getattr(game, side)(p, state, batch, keys)[0]).lower(params).as_text()
        assert text.count("stablehlo.optimization_barrier") == 2, side
    assert game._kernels_once(v["g_params"], g) is v["g_params"]  # float32 networks: untouched
    cast = game._kernels_once(v["g_params"], game.generator)
    assert {x.dtype for x in jax.tree.leaves(cast) if x.ndim == 4} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(cast) if x.ndim < 4} == {jnp.dtype(jnp.float32)}

def test_minibatch_stddev_groups_consecutive_examples():
    x = jnp.concatenate([jnp.zeros((2, 4, 4, 3)), jnp.ones((2, 4, 4, 3)) * jnp.array([0.0, 2.0])[:, None, None, None]])
    y = sg.minibatch_stddev(x, group_size=2)
    chex.assert_shape(y, (4, 4, 4, 4))
    np.testing.assert_allclose(np.asarray(y[:2, 0, 0, 3]), 1e-4, atol=1e-3)  # identical pair: std ~ 0
    np.testing.assert_allclose(np.asarray(y[2:, 0, 0, 3]), 1.0, atol=1e-3)   # 0 and 2: std 1
    with pytest.raises(ValueError, match="not a multiple of the group size"):
        sg.minibatch_stddev(jnp.zeros((6, 4, 4, 3)), group_size=4)


# ------------------------------------------------------------------------------------ game

def _state(v, step=0, pl_mean=0.0):
    from jaxgan.state import GANState

    return GANState(step=jnp.asarray(step, jnp.int32), g_params=v["g_params"], d_params=v["d_params"],
                    g_state=v["g_state"], d_state=v["d_state"], g_opt_state=None, d_opt_state=None,
                    g_ema=None, extra={"pl_mean": jnp.asarray(pl_mean, jnp.float32)},
                    rng=jax.random.PRNGKey(0))


def test_path_length_matches_a_direct_jacobian(tiny16):
    game, v = tiny16
    p, s = v["g_params"], v["g_state"]
    ws = jax.random.normal(jax.random.PRNGKey(5), (3, game.generator.num_ws, 16))
    noise = _keys(3, 6)
    pl_keys = _keys(3, 7)
    synth = lambda w: game._synthesis(p, s, w, noise)
    lengths = jax.jit(lambda ws: path_lengths(synth, ws, pl_keys))(ws)
    jacobian = jax.jit(lambda w, k: jax.jacrev(lambda w: game._synthesis(p, s, w[None], k[None])[0])(w))
    for i in range(3):
        jac = jacobian(ws[i], noise[i])  # (16, 16, 1, num_ws, w_dim)
        y = jax.random.normal(pl_keys[i], (16, 16, 1)) / 16.0
        jty = jnp.einsum("hwc,hwcld->ld", y, jac)
        expected = jnp.sqrt(jnp.mean(jnp.sum(jty ** 2, axis=1)))
        np.testing.assert_allclose(float(lengths[i]), float(expected), rtol=1e-4)
    # the game's penalty: (length - a)^2 with a moved 1% towards the batch mean, on every 2nd example,
    # with its own latents, mixing and noise (sub-stream 8 of the example's key, as ADA's Greg phase)
    keys = _keys(4, 8)
    penalty, a, mean_len = jax.jit(lambda p: game._path_length(p, _state(v, pl_mean=0.5), keys, None))(p)
    from jaxgan import rng as rng_lib

    @jax.jit  # one program, not one per operation (eager)
    def direct_lengths(p):
        pl_keys = rng_lib.substream(keys[::2], 8)
        ws_sub, _ = game.mixed_ws(p, s, pl_keys, None)
        return path_lengths(lambda w: game._synthesis(p, s, w, rng_lib.substream(pl_keys, 4)), ws_sub,
                            rng_lib.substream(pl_keys, 7))

    direct = direct_lengths(p)
    np.testing.assert_allclose(float(mean_len), float(jnp.mean(direct)), rtol=1e-5)
    np.testing.assert_allclose(float(a), 0.5 + 0.01 * (float(jnp.mean(direct)) - 0.5), rtol=1e-5)
    np.testing.assert_allclose(float(penalty), float(jnp.mean((direct - a) ** 2)), rtol=1e-5)


def test_truncation_psi_zero_gives_the_w_average_image(tiny16):
    import dataclasses

    game, v = tiny16
    w_avg = jax.random.normal(jax.random.PRNGKey(9), (16,))
    g_state = {"stats": {"w_avg": w_avg}}
    z = jax.random.normal(jax.random.PRNGKey(10), (4, 8))
    psi0 = dataclasses.replace(game, truncation=0.0)
    imgs = psi0.generate(v["g_params"], g_state, z)
    ref = game._synthesis(v["g_params"], g_state, jnp.broadcast_to(w_avg, (4, game.generator.num_ws, 16)),
                          noise_keys_from_latents(z))
    chex.assert_trees_all_close(imgs, jnp.clip(ref, -1, 1), atol=1e-6)
    chex.assert_trees_all_close(imgs[0], imgs[3], atol=1e-6)  # noise strengths are 0 at init: one image
    assert float(jnp.std(game.generate(v["g_params"], g_state, z), axis=0).mean()) > 1e-3  # psi=1 varies
    mixed = game.generate_mixed(v["g_params"], g_state, z, z[::-1], cutoff=game.generator.num_ws)
    chex.assert_trees_all_close(mixed, game.generate(v["g_params"], g_state, z), atol=1e-6)


def test_w_average_and_pl_mean_are_updated_through_updates(tiny16):
    game, v = tiny16
    state = _state(v, pl_mean=0.0)
    batch = {"x": jnp.zeros((4, 16, 16, 1))}
    _, out = jax.jit(game.g_loss)(v["g_params"], state, batch, _keys(4))  # jitted: 3x faster than op by op
    _, w = jax.jit(game.mixed_ws, static_argnums=3)(v["g_params"], v["g_state"], _keys(4), None)
    expected = 0.005 * jnp.mean(w, axis=0)  # lerp(mean, w_avg=0, beta=0.995)
    chex.assert_trees_all_close(out.updates["g_state"]["stats"]["w_avg"], expected, rtol=1e-5, atol=1e-7)
    assert float(out.updates["extra"]["pl_mean"]) > 0
    assert float(out.metrics["penalty/pl"]) > 0


# ------------------------------------------------------------------------------------ augmentation

def test_diff_augment_translation_flip_and_cutout():
    x = jnp.arange(2 * 8 * 8, dtype=jnp.float32).reshape(2, 8, 8, 1)
    y = jax.vmap(augment.translation)(x, _keys(2))
    for b in range(2):  # a shifted copy: every non-zero pixel of y is a pixel of x one shift away
        ys = np.asarray(y[b, :, :, 0])
        shifts = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
                  if np.array_equal(ys, _shift(np.asarray(x[b, :, :, 0]), dy, dx))]
        assert len(shifts) == 1
    f = augment.flip(x[0], jax.random.PRNGKey(0))
    assert np.array_equal(np.asarray(f), np.asarray(x[0])) or np.array_equal(np.asarray(f), np.asarray(x[0, :, ::-1]))
    c = jax.vmap(augment.cutout)(jnp.ones((16, 8, 8, 1)), _keys(16))
    zeros = np.asarray(jnp.sum(c == 0, axis=(1, 2, 3)))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border
    a = augment.diff_augment(x, _keys(2), augment.POLICIES)
    g = jax.grad(lambda x: jnp.sum(augment.diff_augment(x, _keys(2)) ** 2))(x)
    assert a.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.parse_policy("flip,rotate")


def _shift(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[i, j] = img[i - dy, j - dx]
    return out


# ------------------------------------------------------------------------------------ engine

_MULTIDEVICE = r"""
import json, os
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax, numpy as np, optax
from jaxgan import sharding
from jaxgan.step import TrainStep
from jaxgan.games.stylegan2 import StyleGAN2
from jaxgan.nets.stylegan2 import tiny_stylegan2
g, d = tiny_stylegan2(8, 1, num_classes=3)
game = StyleGAN2(g, d, latent_dim=8, num_classes=3, r1_gamma=1.0, r1_every=1, pl_every=1,
                 augment=("flip", "translation", "cutout"))
rs = np.random.RandomState(0)
batch = {"x": rs.uniform(-1, 1, (1, 16, 8, 8, 1)).astype(np.float32),
         "label": rs.randint(0, 3, (1, 16)).astype(np.int32)}
out, initial = {}, None
for n in (1, 8):
    mesh = sharding.make_mesh(jax.devices()[:n])
    step = TrainStep(game, optax.adam(1e-2, 0.0, 0.99), optax.adam(1e-2, 0.0, 0.99), mesh,
                     ema_half_life_kimg=0.01, max_traces=1)
    if initial is None:  # compiled once, on 1 device (tests/test_step.py compares init_state on 8 with 1)
        initial = jax.device_get(step.init_state(0, jax.tree.map(lambda x: x[0], batch)))
    state = sharding.replicate(mesh, initial)  # both runs start from this copy (the step donates it)
    for _ in range(2):
        state, metrics = step(state, sharding.global_batch(mesh, batch))
    leaves = jax.tree.leaves((state.g_params, state.d_params, state.g_state, state.extra, state.g_ema))
    out[n] = {"params": np.concatenate([np.ravel(x) for x in leaves]).tolist(),
              "metrics": {k: float(v) for k, v in metrics.items()},
              "replication_error": sharding.replication_error(state)}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_one_step_on_8_devices_equals_1_device():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": host_devices(8, equivalence=True)}
    done = subprocess.run([sys.executable, "-c", _MULTIDEVICE], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one, eight = np.asarray(out["1"]["params"]), np.asarray(out["8"]["params"])
    assert one.shape == eight.shape
    np.testing.assert_allclose(eight, one, rtol=2e-4, atol=2e-5)
    for k in ("loss/d", "loss/g", "penalty/r1", "penalty/pl", "pl/mean"):
        np.testing.assert_allclose(out["8"]["metrics"][k], out["1"]["metrics"][k], rtol=1e-4, atol=1e-6)
    assert out["1"]["metrics"]["penalty/pl"] > 0 and out["1"]["metrics"]["penalty/r1"] > 0
    # the W average, path-length mean and EMA are the same on every device, not just close
    assert out["8"]["replication_error"] == 0.0


@pytest.mark.slow
def test_smoke_experiment_trains_and_evaluates(tmp_path, mnist_dir):
    """stylegan2_mnist --smoke end to end: losses, both lazy terms on step 0, samples, the digit
    evaluation at 16x16, and the W average in the checkpoint. (A StyleGAN2 resume equal to the
    straight run, lazy terms and augmentation included, is tests/test_stylegan2_import.py's
    fine-tuning test.)"""
    from jaxgan import cli

    a = tmp_path / "a"
    assert cli.main(["train", "stylegan2_mnist", "--smoke", "--workdir", str(a), "--set", f"data.dir={mnist_dir}"]) == 0
    lines = [json.loads(l) for l in (a / "metrics.jsonl").read_text().splitlines() if "loss/g" in l]
    assert [l["step"] for l in lines] == [1, 2, 3, 4]
    assert all(np.isfinite(l["loss/d"]) and np.isfinite(l["loss/g"]) for l in lines)
    assert lines[0]["penalty/pl"] > 0 and lines[0]["penalty/r1"] > 0  # step 0: both lazy terms ran
    assert (a / "samples" / "00000004.png").stat().st_size > 0
    ev = json.loads((a / "eval.json").read_text())  # 16x16 digits: the 28x28 digit protocol after resizing
    assert ev["step"] == 4 and ev["classifier_fid64"] > 0 and 1 <= ev["classifier_score64/mean"] <= 10, ev
    state = final_state(a)
    assert int(state.step) == 4
    w_avg = np.asarray(state.g_state["stats"]["w_avg"])
    assert np.all(np.isfinite(w_avg)) and np.abs(w_avg).max() > 0  # the W average moved
