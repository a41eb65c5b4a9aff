"""DCGAN's stride-2 4x4 transposed convolution in a form without dilation (the sub-pixel form).

``subpixel_conv_transpose`` computes ``lax.conv_transpose(x, k, (2, 2), 'SAME')`` with the same
(4, 4, C_in, C_out) kernel as one stride-1 3x3 convolution to 4 x C_out channels followed by a
depth-to-space shuffle: each output phase (a, b) is a 2x2 convolution of the input (the sub-pixel
view of Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network").

Why: XLA lowers a transposed convolution to a convolution of the input dilated by the stride, and
on XLA CPU the gradients of that convolution take a generic path that runs 25-60x slower than its
forward pass (BENCHMARKS.md, "forms of the transposed convolution"). In the sub-pixel form every
convolution of the forward and backward pass is stride 1 and undilated; it does 2.25x the forward
products (the zero taps of the 3x3 phase kernels) and still runs forward + backward 4-13x faster
there. The function equals ``lax.conv_transpose`` to float rounding (tests/test_nets.py), so
parameters and checkpoints are the same whichever form a network uses; only speed differs, and it
differs by platform: 'auto' picks the sub-pixel form on CPU only (on GPU, cuDNN has native
transposed-convolution kernels; which form wins there is unmeasured; on TPU the extra products are
counted and run). A run decides for the devices it is built for, not for the host's default backend
(``jaxgan.precision.resolve_config``), so a TPU program compiled on a CPU host gets the TPU's form.

The discriminator's stride-2 convolution needs no such form: its gradients run at 2-4x its forward
on XLA CPU, and a space-to-depth rewrite of it measured no faster (0.94-1.34x the time of the
strided convolution per layer, BENCHMARKS.md).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.precision import resolve_choice

DN = ("NHWC", "HWIO", "NHWC")
FORMS = ("auto", "transpose", "phases")


def default_form(platform: str) -> str:
    """'phases' on CPU (measured faster there), 'transpose' (``lax.conv_transpose``) on GPU and TPU.

    On a TPU the sub-pixel form costs 2.25x the products of the layer (the zero taps), which XLA:TPU
    counts and runs: DCGAN-64's step compiled for v5e counted 1.39x the analytic FLOPs with it.
    """
    return "phases" if platform == "cpu" else "transpose"


def resolve_form(form: str, platform: str | None = None) -> str:
    """'auto' -> :func:`default_form` of ``platform`` (None: the default devices', for networks used
    outside a run; a run resolves 'auto' for its own devices in ``jaxgan.precision.resolve_config``)."""
    return resolve_choice("upsample", form, FORMS, default_form, platform)


def phase_kernel(k):
    """(4, 4, Ci, Co) transposed-convolution kernel -> (3, 3, Ci, 4 Co) sub-pixel kernel.

    Along one dimension, output 2m takes x[m-1] k[0] + x[m] k[2] and output 2m+1 takes
    x[m] k[1] + x[m+1] k[3]: taps at offsets (-1, 0, +1) are (k0, k2, 0) and (0, k1, k3). The
    output channels are phase-major: (a, b, Co) with a the row phase and b the column phase.
    """
    zero = jnp.zeros_like(k[:1])
    along = (jnp.concatenate([k[0:1], k[2:3], zero]), jnp.concatenate([zero, k[1:2], k[3:4]]))  # (3, 4, Ci, Co)
    phases = []
    for a in range(2):
        rows = along[a]  # (3 offsets in H, 4 taps in W, Ci, Co)
        zw = jnp.zeros_like(rows[:, :1])
        for b in range(2):
            cols = (jnp.concatenate([rows[:, 0:1], rows[:, 2:3], zw], axis=1) if b == 0
                    else jnp.concatenate([zw, rows[:, 1:2], rows[:, 3:4]], axis=1))
            phases.append(cols)  # (3, 3, Ci, Co)
    return jnp.concatenate(phases, axis=-1)


def subpixel_conv_transpose(x, k, precision=None):
    """``lax.conv_transpose(x, k, (2, 2), 'SAME')`` for a (4, 4, Ci, Co) kernel, NHWC, undilated."""
    if k.shape[:2] != (4, 4):
        raise ValueError(f"subpixel_conv_transpose needs a 4x4 kernel, got {k.shape}")
    y = jax.lax.conv_general_dilated(x, phase_kernel(k), (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=DN, precision=precision)
    n, h, w, c4 = y.shape
    co = c4 // 4
    y = y.reshape(n, h, w, 2, 2, co)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, co)


class Up2(nn.Module):
    """Stride-2 4x4 'SAME' transposed convolution without bias; the parameters of ``nn.ConvTranspose``.

    ``form``: 'transpose' (``lax.conv_transpose``, XLA's input-dilated convolution, as flax's
    ConvTranspose computes it), 'phases' (``subpixel_conv_transpose``) or 'auto' (phases on CPU,
    transpose elsewhere). The same function either way.
    """
    features: int
    form: str = "auto"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features), self.param_dtype)
        x, k = nn.dtypes.promote_dtype(x, k, dtype=self.dtype)
        if resolve_form(self.form) == "phases":
            return subpixel_conv_transpose(x, k)
        return jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=DN)
