"""StyleGAN2 networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

The layout of NVlabs/stylegan2-ada-pytorch (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), sized for 8x8 to 256x256 images on one accelerator:

* **Mapping network**: z normalised to unit second moment (and, for a conditional network, a label
  embedding normalised the same way, concatenated), ``mapping_layers`` fully connected layers with
  learning-rate multiplier 0.01, broadcast to one w per synthesis layer. The average w (``w_avg``)
  lives in the ``'stats'`` collection (the game updates it; see ``jaxgan.games.stylegan2``) and
  truncation interpolates towards it: ``w' = w_avg + psi (w - w_avg)``.
* **Synthesis network**: a learned 4x4 constant, then per resolution two modulated/demodulated 3x3
  convolutions (the first upsamples), per-pixel noise with a learned strength, bias + leaky ReLU, and
  a toRGB 1x1 modulated convolution whose output is added to the upsampled image of the resolution
  below (the "skip" generator).
* **Discriminator**: fromRGB, then residual blocks (two 3x3 convolutions, the second downsampling,
  plus a 1x1 downsampling skip, summed with gain sqrt(1/2)), minibatch standard deviation, a 3x3
  convolution and two fully connected layers. A conditional discriminator projects its output on an
  embedding of the label (ADA's ``cmap``).

Modulated convolution. The paper scales the weights per sample, ``w'_oi = s_i w_oi``, and divides by
``sigma_o = sqrt(sum_ik (s_i w_oik)^2 + 1e-8)``. Here the activations are modulated instead:
``conv(x * s, w) * (1 / sigma)``, which is the same function (convolution is linear in x and the
demodulation is a per-output-channel scale), but runs as one ordinary batched convolution that XLA
compiles to its fastest kernels; ``sigma`` is computed as ``sqrt(s^2 @ sum_k w^2 + 1e-8)``. As in ADA,
the demodulated layers use the *stored* weight (no equalised-lr gain: demodulation removes any scale,
except inside the 1e-8).

Equalised learning rate: every weight is stored as N(0, 1) / lr_mul and multiplied at run time by
``lr_mul / sqrt(fan_in)`` (gain 1); biases are multiplied by ``lr_mul`` (ADA's convention). Activations
are bias + leaky ReLU(0.2) times sqrt(2), optionally clamped to ``+-conv_clamp``.

Resampling uses the [1, 3, 3, 1] FIR filter (outer product, normalised): upsampling inserts zeros
and filters with gain 4; downsampling filters and then convolves with stride 2. An up-sampling 3x3
convolution pads once, as ADA's ``conv2d_resample`` does: the filtered image is computed one pixel
beyond each border (``upsample2d(x, padding=1)``) and the 3x3 convolution is VALID. That equals
ADA's transposed convolution followed by the filter, with the kernel flipped in space (ADA's
up-sampling layers convolve, the others correlate; :mod:`jaxgan.interop.nvidia` flips it on import).
Padding twice instead (FIR to 2H, then a SAME 3x3 convolution) gets the 1-pixel border of every
up-sampled feature map wrong (images 8.5% off in the fixture test at 32x32).

The layout, the initialisation and the arithmetic follow ADA closely enough that ADA's weights give
the same function to float32 rounding (tests/test_stylegan2_nvidia.py compares against outputs of
NVIDIA's code frozen in tests/fixtures/). Minibatch standard deviation groups *consecutive* examples
where ADA groups strided ones (device invariance: docs/design.md).

Noise inputs are drawn from per-example PRNG keys (``noise_keys``, shape (B, 2) uint32), so an
example's noise does not depend on which device computes it. Without keys there is no noise.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.precision import resolve_choice

Array = jax.Array

SQRT2 = math.sqrt(2.0)
FIR = (1.0, 3.0, 3.0, 1.0)


# ---------------------------------------------------------------------------------------- helpers

def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution, as in ADA: ``min(channel_base // resolution, channel_max)``."""
    return max(1, min(channel_base // resolution, channel_max))


def num_ws(resolution: int) -> int:
    """Number of w vectors the synthesis network takes: 2 log2(resolution) - 2 (8 at 32x32)."""
    return 2 * int(math.log2(resolution)) - 2


def check_resolution(resolution: int) -> None:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"StyleGAN2 needs a square power-of-two resolution >= 8, got {resolution}: set "
                         "data.resolution (e.g. 32 for MNIST, 64 for faces)")


def normalize_2nd_moment(x: Array, eps: float = 1e-8) -> Array:
    """x / sqrt(mean(x^2) + eps) over the last axis (the mapping network's input normalisation)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def bias_act(x: Array, b: Array | None, act: str = "lrelu", clamp: float | None = None) -> Array:
    """x + b, then leaky ReLU(0.2) times sqrt(2) (``act='lrelu'``) or identity, then clamp."""
    if b is not None:
        x = x + b.astype(x.dtype)
    if act == "lrelu":
        x = jax.nn.leaky_relu(x, 0.2) * jnp.asarray(SQRT2, x.dtype)
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x


def _fir_taps(gain: float) -> np.ndarray:
    """The 1-D [1,3,3,1] filter normalised to sum ``sqrt(gain)`` (the 2-D filter is its outer product)."""
    f = np.asarray(FIR, np.float64)
    return f / f.sum() * math.sqrt(gain)


def _pad_axis(x: Array, axis: int, pad: tuple[int, int]) -> Array:
    return jnp.pad(x, [pad if a == axis else (0, 0) for a in range(x.ndim)])


def _fir_axis(x: Array, axis: int, pad: tuple[int, int], stride: int = 1, gain: float = 1.0) -> Array:
    """The 1-D filter along ``axis`` after ``pad`` zeros, keeping every ``stride``-th output (its taps
    sum to ``sqrt(gain)``: ``gain`` is the 2-D filter's, applied along both axes).

    Four shifted slices, scaled and added: XLA fuses them into one loop. (The same filter as a
    depthwise ``conv_general_dilated`` took 20-90x longer on CPU, forward and backward: docs/design.md;
    it is the reference the tests compare against.)
    """
    f = _fir_taps(gain)
    xp = _pad_axis(x, axis, pad)
    n = (xp.shape[axis] - len(f)) // stride + 1
    taps = [jax.lax.slice_in_dim(xp, k, k + (n - 1) * stride + 1, stride, axis) for k in range(len(f))]
    return sum(t * jnp.asarray(c, x.dtype) for c, t in zip(f, taps))


def _up_axis(x: Array, axis: int) -> Array:
    """2x along ``axis``: zeros inserted after each sample, then the filter with gain 2 and padding
    (2, 1), computed as its two phases (output 2m: f0 x[m-1] + f2 x[m]; 2m+1: f1 x[m] + f3 x[m+1])."""
    f = _fir_taps(4.0)
    n = x.shape[axis]
    xp = _pad_axis(x, axis, (1, 1))
    prev, cur, nxt = (jax.lax.slice_in_dim(xp, k, k + n, axis=axis) for k in range(3))
    c = [jnp.asarray(v, x.dtype) for v in f]
    even, odd = prev * c[0] + cur * c[2], cur * c[1] + nxt * c[3]
    return jnp.stack([even, odd], axis=axis + 1).reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def _fir_conv(x: Array, gain: float, pad: tuple[int, int], *, stride: int = 1, up: bool = False) -> Array:
    """The 2-D [1,3,3,1] filter (normalised to sum ``gain``) as ADA's ``upfirdn2d`` defines it: a
    depthwise convolution of ``x`` (zeros inserted between its pixels when ``up``) after ``pad`` zeros
    before and after each spatial axis, keeping every ``stride``-th output. The ``'conv'`` FIR form."""
    f = _fir_taps(gain)
    k = jnp.asarray(np.tile(np.outer(f, f)[:, :, None, None], (1, 1, 1, x.shape[-1])), x.dtype)
    return jax.lax.conv_general_dilated(x, k, (stride, stride), (tuple(pad), tuple(pad)),
                                        lhs_dilation=(2, 2) if up else None, feature_group_count=x.shape[-1],
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


FIR_FORMS = ("auto", "slices", "conv")


def default_fir(platform: str) -> str:
    """How the [1,3,3,1] resampling filter computes, for the devices a run is built for.

    Both forms give the same function (to float rounding; tests/test_stylegan2.py):

    * ``'slices'``: each axis as four shifted slices, scaled and added (:func:`_fir_axis`); XLA fuses
      them into one loop. On CPU the depthwise convolution took 20-90x longer (docs/design.md).
    * ``'conv'``: one depthwise convolution with the 2-D filter (:func:`_fir_conv`), as ADA's
      ``upfirdn2d`` defines it. On TPU, XLA:TPU runs it in its convolution emitter, which takes the
      padding, stride and zero insertion into the convolution, where the slices' padded and strided
      arrays are written out and read back: a discriminator block's down-sampling skip (64x64, 256
      channels, batch 64, forward and gradients, one v5e chip) accessed 1.31 GB instead of 3.57 GB,
      its down-sampling 3x3 convolution 1.85 GB instead of 2.94 GB, and a generator's up-sampling layer
      2.06 GB instead of 4.09 GB (BENCHMARKS.md).

    ``'conv'`` on TPU; ``'slices'`` on CPU, and on GPU, where XLA fuses the slices into one loop that
    reads the input once (the convolution form is unmeasured there).
    """
    return "conv" if platform == "tpu" else "slices"


def resolve_fir(form: str) -> str:
    """'auto' -> :func:`default_fir` of the default devices (networks used outside a run; a run
    resolves ``model.fir='auto'`` for its own devices in ``jaxgan.precision.resolve_config``)."""
    return resolve_choice("fir", form, FIR_FORMS, default_fir)


def upsample2d(x: Array, padding: int = 0, form: str = "slices") -> Array:
    """2x upsampling: insert zeros, filter with the [1,3,3,1] FIR filter (gain 4).

    Args:
      x: (B, H, W, C).
      padding: extra output pixels computed beyond each border (ADA's ``upfirdn2d`` padding with
        respect to the upsampled image; 1 before a VALID 3x3 convolution).
      form: ``'slices'`` or ``'conv'`` (:func:`default_fir`).

    Returns:
      (B, 2H + 2 padding, 2W + 2 padding, C).
    """
    if padding < 0:
        raise ValueError(f"upsample2d: padding must be >= 0, got {padding}")
    if form == "conv":
        return _fir_conv(x, 4.0, (2 + padding, 2 + padding), up=True)
    q = (padding + 1) // 2  # zero input pixels that give the extra outputs
    if q:
        x = jnp.pad(x, ((0, 0), (q, q), (q, q), (0, 0)))
    y = _up_axis(_up_axis(x, 1), 2)
    if 2 * q != padding:
        c = 2 * q - padding
        y = y[:, c:y.shape[1] - c, c:y.shape[2] - c]
    return y


def blur(x: Array, pad: tuple[int, int], gain: float = 1.0, form: str = "slices") -> Array:
    """The [1,3,3,1] FIR filter with ``pad`` zeros before and after each spatial axis (the 2-D filter
    normalised to sum ``gain``); ``form`` ``'slices'`` or ``'conv'`` (:func:`default_fir`)."""
    if form == "conv":
        return _fir_conv(x, gain, pad)
    return _fir_axis(_fir_axis(x, 1, pad, gain=gain), 2, pad, gain=gain)


def downsample2d(x: Array, form: str = "slices") -> Array:
    """2x downsampling: filter with the [1,3,3,1] FIR filter, keep every second pixel; ``form``
    ``'slices'`` or ``'conv'`` (:func:`default_fir`)."""
    if form == "conv":
        return _fir_conv(x, 1.0, (1, 1), stride=2)
    return _fir_axis(_fir_axis(x, 1, (1, 1), 2), 2, (1, 1), 2)


def _conv(x: Array, w: Array, *, strides=(1, 1), padding="SAME", lhs_dilation=None) -> Array:
    return jax.lax.conv_general_dilated(x, w.astype(x.dtype), window_strides=strides, padding=padding,
                                        lhs_dilation=lhs_dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"))


UPSAMPLE_FORMS = ("auto", "filter", "transpose")


def default_upsample(platform: str) -> str:
    """How the up-sampling synthesis layers compute, for the devices a run is built for.

    Both forms give the same function (to float rounding; tests/test_stylegan2.py):

    * ``'transpose'`` (NVIDIA's order, ADA's ``conv2d_resample`` with ``up=2``): the 3x3 convolution
      as a stride-2 transposed convolution of the input, then the [1,3,3,1] filter of its output. The
      products are those of the input's pixels: a quarter of the other form's.
    * ``'filter'``: the input up-sampled by the filter first (:func:`upsample2d`), then a 3x3
      convolution at the output resolution (4x the products, and the filter runs on the input's
      channels, twice the output's in most layers).

    ``'filter'`` on CPU, where XLA's gradients of a transposed (input-dilated) convolution take a slow
    generic path: stylegan2_cifar10's step (512 channels) took 1.88x as long in the other form there
    (at stylegan2_mnist's 16 channels the other form's step was 12% faster: BENCHMARKS.md);
    ``'transpose'`` on TPU, where XLA:TPU counts and runs the products of the form it is given
    (stylegan2_ffhq64's step compiled for v5e: 21% fewer FLOPs, 10% fewer bytes), and on GPU (cuDNN
    has transposed-convolution kernels; unmeasured there).
    """
    return "filter" if platform == "cpu" else "transpose"


def resolve_upsample(form: str) -> str:
    """'auto' -> :func:`default_upsample` of the default devices (networks used outside a run; a run
    resolves ``model.upsample='auto'`` for its own devices in ``jaxgan.precision.resolve_config``)."""
    return resolve_choice("upsample", form, UPSAMPLE_FORMS, default_upsample)


# ---------------------------------------------------------------------------------------- layers

class EqualDense(nn.Module):
    """Fully connected layer with equalised learning rate.

    y = act(x @ (W * lr_mul / sqrt(fan_in)) + b * lr_mul), W stored ~ N(0, 1) / lr_mul, b = bias_init.

    Args:
      features: output width.
      lr_mul: learning-rate multiplier (0.01 in the mapping network).
      bias_init: initial value of the (effective) bias (1 for the style affines).
      act: 'lrelu' (with gain sqrt(2)) or 'linear'.
    """

    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    act: str = "linear"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        w = self.param("kernel", lambda k, s: jax.random.normal(k, s) / self.lr_mul, (fan_in, self.features))
        b = self.param("bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,))
        y = x @ (w * (self.lr_mul / math.sqrt(fan_in))).astype(x.dtype)
        return bias_act(y, b * self.lr_mul, self.act)


class EqualConv(nn.Module):
    """Convolution with equalised learning rate, optional 2x FIR downsampling, bias and activation.

    Args:
      features: output channels.
      kernel: kernel size (1 or 3).
      down: downsample by 2 (filter, then stride-2 convolution).
      use_bias, act, gain: bias, 'lrelu' or 'linear', and an extra output gain (sqrt(1/2) in the
        residual blocks).
      clamp: optional activation clamp; applied after the gain at ``clamp * gain`` (ADA's rule).
      dtype: compute dtype.
      fir: how the down-sampling filter computes, ``'slices'``, ``'conv'`` or ``'auto'``
        (:func:`default_fir`).
    """

    features: int
    kernel: int = 3
    down: bool = False
    use_bias: bool = True
    act: str = "lrelu"
    gain: float = 1.0
    clamp: float | None = None
    dtype: jnp.dtype = jnp.float32
    fir: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = x.astype(self.dtype)
        k, cin = self.kernel, x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
        w = w * (1.0 / math.sqrt(cin * k * k))
        fir = resolve_fir(self.fir)
        if self.down and k == 1 and fir == "conv":
            # ADA's conv2d_resample for a 1x1 kernel: the filter keeps every second pixel itself,
            # then the 1x1 convolution (the values of the branch below, from a quarter of the pixels)
            x = _conv(downsample2d(x, fir), w)
        elif self.down:
            # ADA's conv2d_resample: pad the filter so a stride-2 VALID convolution halves the size.
            p = (len(FIR) - 2) + (k - 1)
            x = blur(x, ((p + 1) // 2, p // 2), form=fir)
            x = _conv(x, w, strides=(2, 2), padding="VALID")
        else:
            x = _conv(x, w)
        b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        x = bias_act(x, b, self.act)
        if self.gain != 1.0:
            x = x * jnp.asarray(self.gain, x.dtype)
        if self.clamp is None:
            return x
        c = self.clamp * self.gain
        return jnp.clip(x, -c, c)


def modulated_conv(x: Array, weight: Array, styles: Array, demodulate: bool = True,
                   padding="SAME", lhs_dilation=None) -> Array:
    """Modulated (and demodulated) convolution, by modulating activations instead of weights.

        y_o = sum_{i,k} s_i w_oik x_i  /  sqrt(sum_{i,k} (s_i w_oik)^2 + 1e-8)   (demodulated)

    Args:
      x: activations (B, H, W, I).
      weight: the kernel (K, K, I, O) (with demodulation, its scale does not matter but for the 1e-8).
      styles: per-example scales s (B, I).
      demodulate: divide each output channel by sigma_o (per example).
      padding: 'SAME' or 'VALID' (after an up-sampling filter that already padded), or explicit
        ``((lo, hi), (lo, hi))``.
      lhs_dilation: ``(2, 2)`` with padding ``((2, 2), (2, 2))``: the stride-2 transposed convolution
        (output 2H + 1; ``'transpose'`` up-sampling).

    Returns:
      (B, H', W', O) in x's dtype.
    """
    s = styles.astype(jnp.float32)
    y = _conv(x * s[:, None, None, :].astype(x.dtype), weight, padding=padding, lhs_dilation=lhs_dilation)
    if demodulate:
        w2 = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # (I, O)
        d = jax.lax.rsqrt(jnp.square(s) @ w2 + 1e-8)  # (B, O)
        y = y * d[:, None, None, :].astype(y.dtype)
    return y


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling 2x), noise, bias + leaky ReLU.

    The up-sampling layer computes in one of two forms (:func:`default_upsample`): ``'filter'``
    filters to 2H + 2 and convolves VALID; ``'transpose'`` convolves transposed with stride 2 to
    2H + 1 and filters with one padding (ADA's ``conv2d_resample``). The weight is used as stored
    (demodulated: ADA adds its 1e-8 to the raw weights' sum of squares).
    """

    features: int
    up: bool = False
    clamp: float | None = None
    dtype: jnp.dtype = jnp.float32
    const_noise: bool = False
    upsample: str = "auto"
    fir: str = "auto"

    @nn.compact
    def __call__(self, x: Array, w: Array, noise: Array | str | None) -> Array:
        """x (B, H, W, I), w (B, w_dim), noise (B, H', W', 1) at the output size, None, or 'const'.

        ``'const'`` adds the layer's fixed noise map (``stats/noise_const``, (H', W'); ADA's
        ``noise_const``, which its generate.py uses by default); it exists when ``const_noise`` is set.
        """
        cin = x.shape[-1]
        styles = EqualDense(cin, bias_init=1.0, name="affine")(w)
        weight = self.param("kernel", nn.initializers.normal(1.0), (3, 3, cin, self.features))
        x = x.astype(self.dtype)
        if self.up and resolve_upsample(self.upsample) == "transpose":
            x = modulated_conv(x, weight, styles, padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))
            x = blur(x, (1, 1), gain=4.0, form=resolve_fir(self.fir))
        elif self.up:
            x = upsample2d(x, padding=1, form=resolve_fir(self.fir))
            x = modulated_conv(x, weight, styles, padding="VALID")
        else:
            x = modulated_conv(x, weight, styles)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        if self.const_noise:
            r = x.shape[1]
            const = self.variable("stats", "noise_const", lambda: jax.random.normal(self.make_rng("params"), (r, r)))
        if isinstance(noise, str):
            if noise != "const" or not self.const_noise:
                raise ValueError(f"noise={noise!r}: only 'const', and only in a generator built with "
                                 "const_noise=True (an imported NVIDIA network)")
            noise = const.value[None, :, :, None]
        if noise is not None:
            x = x + (noise * strength).astype(x.dtype)
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        return bias_act(x, b, "lrelu", self.clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation, plus bias (linear)."""

    channels: int
    clamp: float | None = None

    @nn.compact
    def __call__(self, x: Array, w: Array) -> Array:
        cin = x.shape[-1]
        styles = EqualDense(cin, bias_init=1.0, name="affine")(w) * (1.0 / math.sqrt(cin))
        weight = self.param("kernel", nn.initializers.normal(1.0), (1, 1, cin, self.channels))
        y = modulated_conv(x, weight, styles, demodulate=False)
        b = self.param("bias", nn.initializers.zeros, (self.channels,))
        return bias_act(y, b, "linear", self.clamp).astype(jnp.float32)


# ---------------------------------------------------------------------------------------- generator

class MappingNetwork(nn.Module):
    """z (and a label) -> w: normalise, ``num_layers`` lr-multiplied FC layers with leaky ReLU.

    Args:
      w_dim: width of w (and of the hidden layers).
      num_layers: 8 in the paper (2 in ADA's CIFAR-10 config).
      lr_mul: learning-rate multiplier (0.01).
      num_classes: label count of a conditional network (embedding concatenated to z), or None.
    """

    w_dim: int = 512
    num_layers: int = 8
    lr_mul: float = 0.01
    num_classes: int | None = None

    @nn.compact
    def __call__(self, z: Array | None, labels: Array | None = None) -> Array:
        parts = []
        if z is not None:
            parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
        if self.num_classes is not None:
            if labels is None:
                raise ValueError(f"this mapping network is conditional ({self.num_classes} classes): pass labels")
            onehot = jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)
            parts.append(normalize_2nd_moment(EqualDense(self.w_dim, name="embed")(onehot)))
        x = jnp.concatenate(parts, axis=-1)
        for i in range(self.num_layers):
            x = EqualDense(self.w_dim, lr_mul=self.lr_mul, act="lrelu", name=f"fc{i}")(x)
        return x


def _noise_inputs(noise_keys: Array | None, resolution: int, dtype=jnp.float32) -> list[Array] | None:
    """Per-layer noise maps (B, r, r, 1), 4x4 then two per resolution, from one draw per example.

    One normal draw of all the maps' pixels per key (a draw per layer would compile ~10x slower on CPU),
    in float32 and rounded to ``dtype``, the synthesis layers' compute dtype, where it is drawn: the
    maps are activations, and in float32 XLA:TPU kept 19 copies of the draw in HBM (bfloat16
    StyleGAN2 at batch 512, BENCHMARKS.md). The layers add ``noise * strength`` rounded to their dtype.
    """
    if noise_keys is None:
        return None
    sizes = [4] + [r for r in (2 ** i for i in range(3, int(math.log2(resolution)) + 1)) for _ in (0, 1)]
    flat = jax.vmap(lambda k: jax.random.normal(k, (sum(r * r for r in sizes),)))(noise_keys).astype(dtype)
    out, start = [], 0
    for r in sizes:
        out.append(flat[:, start:start + r * r].reshape(-1, r, r, 1))
        start += r * r
    return out


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> images (B, resolution, resolution, channels), skip architecture.

    Noise: per-example maps drawn from ``noise_keys``; none without keys; ``noise_mode='const'`` adds
    each layer's fixed map instead (generators built with ``const_noise``).
    """

    resolution: int
    channels: int
    channel_base: int = 16384
    channel_max: int = 512
    clamp: float | None = None
    dtype: jnp.dtype = jnp.float32
    const_noise: bool = False
    upsample: str = "auto"
    fir: str = "auto"

    @nn.compact
    def __call__(self, ws: Array, noise_keys: Array | None = None, noise_mode: str = "random") -> Array:
        check_resolution(self.resolution)
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
        noises = _noise_inputs(noise_keys, self.resolution, self.dtype) if noise_mode == "random" else None
        noise_at = lambda i: "const" if noise_mode == "const" else (None if noises is None else noises[i])
        layer_kw = dict(clamp=self.clamp, dtype=self.dtype, const_noise=self.const_noise)
        fir = resolve_fir(self.fir)
        up_kw = dict(layer_kw, upsample=self.upsample, fir=fir)
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)))
        x = jnp.broadcast_to(const, (ws.shape[0], 4, 4, ch(4)))
        x = SynthesisLayer(ch(4), name="b4_conv1", **layer_kw)(x, ws[:, 0], noise_at(0))
        img = ToRGB(self.channels, self.clamp, name="b4_torgb")(x, ws[:, 1])
        res, w_idx, layer = 8, 1, 1
        while res <= self.resolution:
            x = SynthesisLayer(ch(res), up=True, name=f"b{res}_conv0", **up_kw)(x, ws[:, w_idx], noise_at(layer))
            x = SynthesisLayer(ch(res), name=f"b{res}_conv1", **layer_kw)(x, ws[:, w_idx + 1], noise_at(layer + 1))
            img = upsample2d(img, form=fir)
            img = img + ToRGB(self.channels, self.clamp, name=f"b{res}_torgb")(x, ws[:, w_idx + 2])
            res, w_idx, layer = res * 2, w_idx + 2, layer + 2
        return img


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator: z (B, z_dim) [+ labels] -> images (B, R, R, channels), float32, unclipped.

    Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020.

    Parameters are ``{'mapping': ..., 'synthesis': ...}``; the ``'stats'`` collection holds ``w_avg``.

    Args:
      resolution: output size (power of two, >= 8).
      channels: output channels (1 grey, 3 RGB).
      w_dim: width of w (z's width is the caller's).
      mapping_layers: FC layers of the mapping network (8; ADA uses 2 for CIFAR-10).
      channel_base, channel_max: feature maps min(channel_base // res, channel_max).
      num_classes: conditional generator (label embedding into the mapping network), or None.
      clamp: optional activation clamp (ADA: 256 with float16).
      dtype: compute dtype of the synthesis convolutions (mapping and styles stay float32).
      const_noise: keep ADA's fixed per-layer noise maps in ``'stats'`` (imported networks), for
        ``noise_mode='const'``.
      upsample: how the up-sampling layers compute, ``'filter'``, ``'transpose'`` or ``'auto'`` (the
        same function and parameters; :func:`default_upsample` says which is faster where).
      fir: how the [1,3,3,1] resampling filter computes, ``'slices'``, ``'conv'`` or ``'auto'`` (the
        same function; :func:`default_fir`).

    Example:
      >>> g = StyleGAN2Generator(resolution=32, channels=1, w_dim=64, channel_base=512, channel_max=64)
      >>> v = g.init(jax.random.PRNGKey(0), jnp.zeros((2, 64)))
      >>> g.apply(v, jnp.ones((2, 64))).shape
      (2, 32, 32, 1)
    """

    resolution: int
    channels: int
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 16384
    channel_max: int = 512
    num_classes: int | None = None
    clamp: float | None = None
    dtype: jnp.dtype = jnp.float32
    const_noise: bool = False
    upsample: str = "auto"
    fir: str = "auto"

    @property
    def num_ws(self) -> int:
        return num_ws(self.resolution)

    def setup(self):
        check_resolution(self.resolution)
        self.mapping_net = MappingNetwork(self.w_dim, self.mapping_layers, self.mapping_lr_mul,
                                          self.num_classes, name="mapping")
        self.synthesis_net = SynthesisNetwork(self.resolution, self.channels, self.channel_base,
                                              self.channel_max, self.clamp, self.dtype, self.const_noise,
                                              self.upsample, self.fir, name="synthesis")
        self.w_avg = self.variable("stats", "w_avg", lambda: jnp.zeros((self.w_dim,), jnp.float32))

    def mapping(self, z: Array, labels: Array | None = None, psi: float | Array = 1.0) -> Array:
        """w of shape (B, w_dim), truncated towards ``w_avg`` by ``psi`` (1: no truncation)."""
        w = self.mapping_net(z, labels)
        return self.w_avg.value + psi * (w - self.w_avg.value)

    def mapping_ws(self, z: Array, labels: Array | None = None, psi: float | Array = 1.0,
                   cutoff: int | None = None) -> Array:
        """ws (B, num_ws, w_dim); truncation by ``psi`` on the first ``cutoff`` ws only (None: all).

        ADA's ``truncation_cutoff``: ``ws[:, :cutoff] = w_avg + psi (ws[:, :cutoff] - w_avg)``.
        """
        w = self.mapping_net(z, labels)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
        truncated = self.w_avg.value + psi * (ws - self.w_avg.value)
        if cutoff is None:
            return truncated
        return jnp.where((jnp.arange(self.num_ws) < cutoff)[None, :, None], truncated, ws)

    def synthesis(self, ws: Array, noise_keys: Array | None = None, noise_mode: str = "random") -> Array:
        """Images from ws of shape (B, num_ws, w_dim) (or (B, w_dim), broadcast to every layer).

        ``noise_mode``: 'random' (maps drawn from ``noise_keys``; none without keys), 'const' (the
        fixed maps of a ``const_noise`` generator) or 'none'.
        """
        if ws.ndim == 2:
            ws = jnp.broadcast_to(ws[:, None], (ws.shape[0], self.num_ws, ws.shape[-1]))
        return self.synthesis_net(ws, noise_keys, noise_mode)

    def __call__(self, z: Array, labels: Array | None = None, *, train: bool = False,
                 noise_keys: Array | None = None, psi: float | Array = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "random") -> Array:
        del train  # no batch statistics: training and inference compute the same function
        return self.synthesis(self.mapping_ws(z, labels, psi, truncation_cutoff), noise_keys, noise_mode)


# ---------------------------------------------------------------------------------------- discriminator

def minibatch_stddev(x: Array, group_size: int = 4, num_channels: int = 1) -> Array:
    """Appends the minibatch standard deviation as ``num_channels`` feature maps (Karras et al. 2018).

        y_g = mean_{h,w,c in a channel group} sqrt(var_{examples of group g}(x) + 1e-8)

    Groups are *consecutive* examples (ADA strides them: example i of N joins group i mod N/G), so as
    long as the per-device batch is a multiple of the group size the result does not depend on how
    the batch is sharded. ADA's D given a batch reordered so that its strided groups are these
    consecutive ones gives the same logits (tests/test_stylegan2_nvidia.py).
    """
    n, h, w, c = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"minibatch stddev: batch {n} is not a multiple of the group size {g}: use a "
                         f"per-device batch divisible by {g} or set model.mbstd_group")
    f = num_channels
    y = x.astype(jnp.float32).reshape(n // g, g, h, w, f, c // f)
    y = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)            # (n/g, h, w, f, c/f)
    y = jnp.mean(y, axis=(1, 2, 4))                     # (n/g, f)
    y = jnp.repeat(y, g, axis=0)[:, None, None, :]      # (n, 1, 1, f)
    y = jnp.broadcast_to(y, (n, h, w, f)).astype(x.dtype)
    return jnp.concatenate([x, y], axis=-1)


class StyleGAN2Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator: images (B, R, R, C) [+ labels] -> float32 logits (B,).

    Karras et al. 2020 (residual D, config E/F); projection conditioning as in StyleGAN2-ADA (2020):
    ``logit = <out(x), cmap(label)> / sqrt(cmap_dim)``.

    Args:
      resolution: input size (power of two, >= 8).
      channel_base, channel_max: feature maps per resolution as in the generator.
      mbstd_group: minibatch-stddev group size (4); mbstd_channels: its feature maps (1).
      num_classes: conditional D (label mapped to cmap), or None.
      mapping_layers: layers of the label mapping of a conditional D.
      clamp, dtype: activation clamp (at ``clamp * gain`` after a layer's gain; not on the residual
        skip, as ADA) and compute dtype.
      architecture: 'resnet' (residual blocks, the default) or 'orig' (plain conv0, conv1 blocks, no
        skip and no sqrt(1/2) gain: ADA's CIFAR-10 D).
      fir: how the down-sampling filter computes, ``'slices'``, ``'conv'`` or ``'auto'`` (the same
        function; :func:`default_fir`).
    """

    resolution: int
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group: int = 4
    mbstd_channels: int = 1
    num_classes: int | None = None
    mapping_layers: int = 8
    clamp: float | None = None
    dtype: jnp.dtype = jnp.float32
    architecture: str = "resnet"
    fir: str = "auto"

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None, *, train: bool = False) -> Array:
        del train
        check_resolution(self.resolution)
        if self.architecture not in ("resnet", "orig"):
            raise ValueError(f"StyleGAN2 discriminator architecture must be 'resnet' or 'orig', got "
                             f"{self.architecture!r}")
        if x.shape[1] != self.resolution or x.shape[2] != self.resolution:
            raise ValueError(f"discriminator built for {self.resolution}x{self.resolution} got images of "
                             f"shape {x.shape}")
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
        fir = resolve_fir(self.fir)
        kw = dict(clamp=self.clamp, dtype=self.dtype, fir=fir)
        h = EqualConv(ch(self.resolution), kernel=1, name="fromrgb", **kw)(x)
        res = self.resolution
        while res > 4:
            if self.architecture == "orig":
                h = EqualConv(ch(res), name=f"b{res}_conv0", **kw)(h)
                h = EqualConv(ch(res // 2), down=True, name=f"b{res}_conv1", **kw)(h)
            else:
                skip = EqualConv(ch(res // 2), kernel=1, down=True, use_bias=False, act="linear",
                                 gain=math.sqrt(0.5), name=f"b{res}_skip", dtype=self.dtype, fir=fir)(h)
                h = EqualConv(ch(res), name=f"b{res}_conv0", **kw)(h)
                h = EqualConv(ch(res // 2), down=True, gain=math.sqrt(0.5), name=f"b{res}_conv1", **kw)(h)
                h = skip + h
            res //= 2
        if self.mbstd_group > 0:
            h = minibatch_stddev(h, self.mbstd_group, self.mbstd_channels)
        h = EqualConv(ch(4), name="b4_conv", **kw)(h)
        h = h.reshape(h.shape[0], -1).astype(jnp.float32)
        h = EqualDense(ch(4), act="lrelu", name="b4_fc")(h)
        if self.num_classes is None:
            return EqualDense(1, name="out")(h)[:, 0]
        if labels is None:
            raise ValueError(f"this discriminator is conditional ({self.num_classes} classes): pass labels")
        cmap_dim = ch(4)
        out = EqualDense(cmap_dim, name="out")(h)
        cmap = MappingNetwork(cmap_dim, self.mapping_layers, 0.01, self.num_classes, name="cmap")(None, labels)
        return jnp.sum(out * cmap, axis=-1) / math.sqrt(cmap_dim)


def tiny_stylegan2(resolution: int = 16, channels: int = 1, num_classes: int | None = None,
                   w_dim: int = 16) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    """A tiny generator/discriminator pair for tests (a few thousand parameters)."""
    g = StyleGAN2Generator(resolution, channels, w_dim=w_dim, mapping_layers=2, channel_base=8 * resolution,
                           channel_max=8, num_classes=num_classes)
    d = StyleGAN2Discriminator(resolution, channel_base=8 * resolution, channel_max=8, mbstd_group=2,
                               num_classes=num_classes, mapping_layers=2)
    return g, d


def stylegan2_pair(resolution: int, channels: int, *, w_dim: int = 512, mapping_layers: int = 8,
                   channel_base: int = 16384, channel_max: int = 512, mbstd_group: int = 4,
                   num_classes: int | None = None, clamp: float | None = None, dtype=jnp.float32,
                   d_architecture: str = "resnet", mapping_lr_mul: float = 0.01, d_mapping_layers: int = 8,
                   const_noise: bool = False, upsample: str = "auto", fir: str = "auto",
                   ) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    """A generator and a discriminator with the same widths (the usual configuration)."""
    g = StyleGAN2Generator(resolution, channels, w_dim=w_dim, mapping_layers=mapping_layers,
                           mapping_lr_mul=mapping_lr_mul, channel_base=channel_base, channel_max=channel_max,
                           num_classes=num_classes, clamp=clamp, dtype=dtype, const_noise=const_noise,
                           upsample=upsample, fir=fir)
    d = StyleGAN2Discriminator(resolution, channel_base=channel_base, channel_max=channel_max,
                               mbstd_group=mbstd_group, num_classes=num_classes, mapping_layers=d_mapping_layers,
                               clamp=clamp, dtype=dtype, architecture=d_architecture, fir=fir)
    return g, d


__all__: Sequence[str] = ("StyleGAN2Generator", "StyleGAN2Discriminator", "MappingNetwork", "SynthesisNetwork",
                          "modulated_conv", "minibatch_stddev", "upsample2d", "downsample2d", "tiny_stylegan2",
                          "stylegan2_pair", "EqualDense", "EqualConv", "num_ws", "channels_at", "default_upsample",
                          "UPSAMPLE_FORMS", "default_fir", "FIR_FORMS")
