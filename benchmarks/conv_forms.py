"""Forms of DCGAN's stride-2 4x4 transposed convolution on XLA, forward and with gradients.

    python benchmarks/conv_forms.py [--batch 64] [--repeats 5] [--layers 64] [--down]

Three forms compute the same function (checked here to float tolerance):

* ``conv_transpose``: ``lax.conv_transpose(x, k, (2, 2), 'SAME')`` (what flax's ConvTranspose calls);
* ``lhs_dilation``: ``lax.conv_general_dilated`` on the input dilated by 2 (``lhs_dilation``), the
  lowering conv_transpose itself produces, written out;
* ``phases``: the sub-pixel form: one stride-1 3x3 convolution to 4 x C_out channels, then a
  depth-to-space shuffle (each output phase (a, b) is a 2x2 convolution; Shi et al. 2016's pixel
  shuffle), which has no dilation holes to skip (``jaxgan.nets.strided``: jaxgan's DCGAN on CPU);

and a fourth, a different layer with the same output shape, for reference:

* ``upsample_conv``: nearest-neighbour 2x upsampling, then a 3x3 convolution (Odena et al. 2016).

``--down`` adds the discriminator's stride-2 4x4 convolution against a space-to-depth form of it
(a stride-1 2x2 convolution over 4 C_in channels: no dilation in its gradients either).

Each is timed forward-only and forward + backward (gradients with respect to input and kernel),
median of ``--repeats`` calls after a warm-up, synchronised. Prints one JSON object per line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.nets.strided import subpixel_conv_transpose


def conv_transpose(x, k):
    return jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def lhs_dilation(x, k):
    # conv_transpose 'SAME' (k=4, s=2): dilated input padded by (2, 2) on each spatial side.
    return jax.lax.conv_general_dilated(x, k, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def phases(x, k):
    """The sub-pixel form jaxgan's DCGAN uses on CPU (``jaxgan.nets.strided``)."""
    return subpixel_conv_transpose(x, k)


def strided_conv(x, k):
    """The discriminator's stride-2 4x4 'SAME' convolution, as ``nn.Conv`` computes it."""
    return jax.lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def space_to_depth(x, k):
    """``strided_conv`` as a space-to-depth shuffle of the padded input and a stride-1 2x2 convolution
    over 4 C_in channels (no wasted products; its input gradient is undilated). Even H and W."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # 'SAME' pads 1 and 1; output o reads rows 2o..2o+3
    hb, wb = h // 2 + 1, w // 2 + 1
    xs = xp.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c)
    ks = k.reshape(2, 2, 2, 2, *k.shape[2:]).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, k.shape[-1])
    return jax.lax.conv_general_dilated(xs, ks, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def upsample_conv(x, k3):
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)
    return jax.lax.conv_general_dilated(x, k3, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _time(fn, args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--layers", type=int, default=64, help="ngf of the DCGAN generator (64 = DCGAN-64)")
    p.add_argument("--down", action="store_true",
                   help="also the discriminator's stride-2 convolution against a space-to-depth form")
    args = p.parse_args()
    ngf = args.layers
    # DCGAN-64's stride-2 generator layers: (size in, C in, C out)
    shapes = [(4, 8 * ngf, 4 * ngf), (8, 4 * ngf, 2 * ngf), (16, 2 * ngf, ngf), (32, ngf, 3)]
    rs = np.random.RandomState(0)
    for size, ci, co in shapes:
        x = jnp.asarray(rs.randn(args.batch, size, size, ci), jnp.float32)
        k = jnp.asarray(rs.randn(4, 4, ci, co) * 0.02, jnp.float32)
        k3 = jnp.asarray(rs.randn(3, 3, ci, co) * 0.02, jnp.float32)
        ref = conv_transpose(x, k)
        forms = {"conv_transpose": (conv_transpose, k), "lhs_dilation": (lhs_dilation, k),
                 "phases": (phases, k), "upsample_conv": (upsample_conv, k3)}
        for name, (f, kern) in forms.items():
            out = f(x, kern)
            err = None if name == "upsample_conv" else float(jnp.max(jnp.abs(out - ref)))
            fwd = jax.jit(f)
            g = jnp.asarray(rs.randn(*out.shape), jnp.float32)
            both = jax.jit(jax.grad(lambda x, kk: jnp.sum(f(x, kk) * g), argnums=(0, 1)))
            print(json.dumps({"layer": f"{size}x{size}x{ci}->{2 * size}x{2 * size}x{co}", "batch": args.batch,
                              "form": name, "max_abs_diff_vs_conv_transpose": err,
                              "forward_ms": 1000 * _time(fwd, (x, kern), args.repeats),
                              "forward_backward_ms": 1000 * _time(both, (x, kern), args.repeats),
                              "backend": jax.default_backend()}), flush=True)
    if not args.down:
        return
    # DCGAN-64's discriminator layers: (size in, C in, C out)
    for size, ci, co in [(64, 3, ngf), (32, ngf, 2 * ngf), (16, 2 * ngf, 4 * ngf), (8, 4 * ngf, 8 * ngf)]:
        x = jnp.asarray(rs.randn(args.batch, size, size, ci), jnp.float32)
        k = jnp.asarray(rs.randn(4, 4, ci, co) * 0.02, jnp.float32)
        ref = strided_conv(x, k)
        for name, f in {"strided_conv": strided_conv, "space_to_depth": space_to_depth}.items():
            out = f(x, k)
            g = jnp.asarray(rs.randn(*out.shape), jnp.float32)
            both = jax.jit(jax.grad(lambda x, kk: jnp.sum(f(x, kk) * g), argnums=(0, 1)))
            print(json.dumps({"layer": f"{size}x{size}x{ci}->{size // 2}x{size // 2}x{co}", "batch": args.batch,
                              "form": name, "max_abs_diff_vs_strided_conv": float(jnp.max(jnp.abs(out - ref))),
                              "forward_ms": 1000 * _time(jax.jit(f), (x, k), args.repeats),
                              "forward_backward_ms": 1000 * _time(both, (x, k), args.repeats),
                              "backend": jax.default_backend()}), flush=True)


if __name__ == "__main__":
    main()
