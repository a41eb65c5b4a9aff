"""Forms of DCGAN's stride-2 4x4 transposed convolution on XLA, forward and with gradients.

    python benchmarks/conv_forms.py [--batch 64] [--repeats 5] [--layers 64]

Three forms compute the same function (checked here to float tolerance):

* ``conv_transpose``: ``lax.conv_transpose(x, k, (2, 2), 'SAME')`` (what flax's ConvTranspose calls);
* ``lhs_dilation``: ``lax.conv_general_dilated`` on the input dilated by 2 (``lhs_dilation``), the
  lowering conv_transpose itself produces, written out;
* ``phases``: the sub-pixel form: one stride-1 3x3 convolution to 4 x C_out channels, then a
  depth-to-space shuffle (each output phase (a, b) is a 2x2 convolution; Shi et al. 2016's pixel
  shuffle), which has no dilation holes to skip;

and a fourth, a different layer with the same output shape, for reference:

* ``upsample_conv``: nearest-neighbour 2x upsampling, then a 3x3 convolution (Odena et al. 2016).

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


def conv_transpose(x, k):
    return jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def lhs_dilation(x, k):
    # conv_transpose 'SAME' (k=4, s=2): dilated input padded by (2, 2) on each spatial side.
    return jax.lax.conv_general_dilated(x, k, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def phase_kernel(k):
    """(4, 4, Ci, Co) transposed-convolution kernel -> (3, 3, Ci, 4 Co) sub-pixel kernel.

    Along one dimension, output 2m takes x[m-1] k[0] + x[m] k[2] and output 2m+1 takes
    x[m] k[1] + x[m+1] k[3]: taps at offsets (-1, 0, +1) are (k0, k2, 0) and (0, k1, k3).
    """
    zero = jnp.zeros_like(k[0])
    taps = [[k[0], k[2], zero], [zero, k[1], k[3]]]  # [phase][offset] along H

    def along_w(row, b):  # row: (4, Ci, Co) along W -> (3, Ci, Co) for phase b
        z = jnp.zeros_like(row[0])
        return jnp.stack([row[0], row[2], z] if b == 0 else [z, row[1], row[3]])

    phases = []
    for a in range(2):
        for b in range(2):
            rows = [taps[a][o] for o in range(3)]  # each (4, Ci, Co) along W
            phases.append(jnp.stack([along_w(r, b) for r in rows]))  # (3, 3, Ci, Co)
    return jnp.concatenate(phases, axis=-1)  # (3, 3, Ci, 4 Co), phase-major


def phases(x, k):
    y = jax.lax.conv_general_dilated(x, phase_kernel(k), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    n, h, w, c4 = y.shape
    co = c4 // 4
    y = y.reshape(n, h, w, 2, 2, co)  # (a, b) phases
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, co)


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


if __name__ == "__main__":
    main()
