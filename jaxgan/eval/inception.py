"""The FID InceptionV3 feature network in flax.linen, ported from pytorch-fid.

FID (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium") compares the statistics of the 2048-d pool3 features of InceptionV3 (Szegedy et al.,
2016, "Rethinking the Inception Architecture for Computer Vision"), and it only means the same
number across papers with the exact network of TensorFlow's FID code (inception-2015-12-05). That
graph differs from torchvision's InceptionV3: its average pools skip the zero padding
(``count_include_pad=False``) and the last block (Mixed_7c) max-pools its pool branch. This module
mirrors pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` port of it (github.com/mseitzer/pytorch-fid),
input handling included, and names every layer as pytorch-fid's state dict does, so its weights
convert by name: ``python tools/convert_fid_inception.py`` turns pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` into an ``.npz`` that ``load_fid_inception`` reads.

Example::

    extract = FIDFeatureExtractor("fid_inception_v3.npz")
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
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPS = 1e-3
HIGHEST = jax.lax.Precision.HIGHEST

# State-dict entries that carry no feature-network weights: the 1008-way logits and BN counters.
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_IGNORED_PREFIXES = ("fc.",)
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def missing_weights_message(path: Any) -> str:
    """The error text for absent weights: what to download and how to convert it."""
    return (
        f"FID InceptionV3 weights not found at {path!r}. jaxgan never downloads weights and never "
        "falls back to random ones. Fetch pytorch-fid's weights once and convert them to .npz:\n"
        f"  wget {FID_WEIGHTS_URL}\n"
        "  pip install torch   # only the converter needs it; the CPU build is enough\n"
        "  python tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth "
        "fid_inception_v3.npz\n"
        "then pass path='fid_inception_v3.npz'."
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
    """FID InceptionV3 (Szegedy et al., 2016) as in pytorch-fid: images -> 2048-d pool3 features.

    Args (call): images, (B, H, W, C) with C in {1, 3}, values in [-1, 1] (jaxgan's convention),
      any H, W: they are resized to 299x299 as pytorch-fid does; 1 channel is repeated to 3.
    Returns: (B, 2048) float32 features (Heusel et al., 2017).
    Attributes: ``dtype`` is the compute dtype (float32 for FID numbers that compare across
      papers; bfloat16 is faster and approximate); ``precision`` that of the convolutions.
    """

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
        x = self._stem(preprocess(images).astype(self.dtype))
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


def check_variables(flat: Mapping[str, np.ndarray], source: str) -> None:
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
        raise ValueError(f"{source} is not pytorch-fid's FID InceptionV3 (pt_inception-2015-12-05): "
                         + "; ".join(d for d in details if d))


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
    check_variables(flat, "the state dict")
    return traverse_util.unflatten_dict(flat, sep="/")


def save_npz(path: str | os.PathLike, variables: Mapping[str, Any]) -> None:
    """Writes flax variables as an uncompressed .npz with '/'-joined keys (no pickle)."""
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in flat.items()})


def load_npz(path: str | os.PathLike | None) -> dict[str, Any]:
    """Reads and checks variables written by ``tools/convert_fid_inception.py`` (numpy arrays)."""
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(missing_weights_message(path))
    with np.load(path, allow_pickle=False) as data:
        flat = {k: data[k] for k in data.files}
    check_variables(flat, repr(str(path)))
    return traverse_util.unflatten_dict(flat, sep="/")


def load_fid_inception(path: str | os.PathLike | None, dtype: Any = jnp.float32
                       ) -> tuple[Callable[[Any, jax.Array], jax.Array], dict[str, Any]]:
    """Loads converted FID weights: returns ``(apply_fn, variables)``.

    ``apply_fn(variables, images)`` is jitted and maps (B, H, W, 1|3) images in [-1, 1] to
    (B, 2048) float32 features. Raises FileNotFoundError, saying how to get the weights, when
    ``path`` is None or absent; never falls back to random weights.
    """
    variables = jax.tree.map(jnp.asarray, load_npz(path))
    return jax.jit(InceptionV3FID(dtype=dtype).apply), variables


class FIDFeatureExtractor:
    """``FIDFeatureExtractor(path)(images) -> (B, 2048) float32``: jitted FID Inception + weights."""

    def __init__(self, path: str | os.PathLike | None, dtype: Any = jnp.float32):
        self.apply_fn, self.variables = load_fid_inception(path, dtype)

    def __call__(self, images) -> jax.Array:
        return self.apply_fn(self.variables, jnp.asarray(images))
