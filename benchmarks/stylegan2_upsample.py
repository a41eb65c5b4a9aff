"""StyleGAN2's up-sampling synthesis layer in its two forms, on this host's XLA, with gradients.

    python benchmarks/stylegan2_upsample.py [--rounds 7] [--calls 3] [--json FILE]

The two forms of ``jaxgan.nets.stylegan2.SynthesisLayer(up=True)`` (``model.upsample``) compute the
same function (checked here to float tolerance):

* ``filter``: the input up-sampled by the [1,3,3,1] filter (zeros inserted, filtered: 2H + 2), then
  a VALID 3x3 modulated convolution at the output resolution (what jaxgan runs on CPU);
* ``transpose``: the 3x3 modulated convolution as a stride-2 transposed convolution of the input
  (``lhs_dilation``, 2H + 1), then the filter of its output (NVIDIA's order; jaxgan on TPU and GPU):
  a quarter of the products.

Each layer (modulation, demodulation, the form) is timed forward + backward (gradients with respect
to the input, the kernel and the styles) in float32, ``--calls`` synchronised calls per round, the
two forms alternating within each of ``--rounds`` rounds; the figure is each form's median round and
the ratio the median of the per-round ratios. Shapes: stylegan2_mnist's up layers (batch 32), one at
64 channels, and a 512-channel layer of stylegan2_cifar10 and of stylegan2_ffhq64 at a small batch.
Whole steps: ``jaxgan bench stylegan2_mnist --set model.upsample=filter|transpose``. Prints one JSON object per line.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.nets import stylegan2 as sg

SHAPES = [  # (batch, input size, in channels, out channels)
    (32, 4, 16, 16),      # stylegan2_mnist (channel_max 16): b8_conv0
    (32, 8, 16, 16),      # b16_conv0
    (32, 16, 16, 16),     # b32_conv0
    (32, 16, 64, 64),     # the same at 64 channels
    (4, 16, 512, 512),    # stylegan2_cifar10: b32_conv0, at 4 images
    (1, 32, 512, 256),    # stylegan2_ffhq64: b64_conv0, at 1 image
]


def layer(form):
    def f(x, w, s):
        if form == "transpose":
            y = sg.modulated_conv(x, w, s, padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))
            return sg.blur(y, (1, 1), gain=4.0)
        return sg.modulated_conv(sg.upsample2d(x, padding=1), w, s, padding="VALID")
    return f


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--json", help="append the records to this file")
    args = ap.parse_args(argv)
    for b, h, ci, co in SHAPES:
        k = jax.random.split(jax.random.PRNGKey(0), 4)
        x = jax.random.normal(k[0], (b, h, h, ci))
        w = jax.random.normal(k[1], (3, 3, ci, co))
        s = 1.0 + 0.1 * jax.random.normal(k[2], (b, ci))
        probe = jax.random.normal(k[3], (b, 2 * h, 2 * h, co))
        fns = {form: jax.jit(jax.value_and_grad(lambda x, w, s, f=layer(form): jnp.sum(f(x, w, s) * probe),
                                                argnums=(0, 1, 2))) for form in ("filter", "transpose")}
        outs = {form: jax.block_until_ready(fn(x, w, s)) for form, fn in fns.items()}  # compile, warm up
        np.testing.assert_allclose(outs["filter"][0], outs["transpose"][0], rtol=1e-4)
        for a, c in zip(jax.tree.leaves(outs["filter"][1]), jax.tree.leaves(outs["transpose"][1])):
            np.testing.assert_allclose(a, c, rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(a))))
        times = {form: [] for form in fns}
        for _ in range(args.rounds):
            for form, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    jax.block_until_ready(fn(x, w, s))
                times[form].append((time.perf_counter() - t0) / args.calls)
        ratios = [t / f for t, f in zip(times["transpose"], times["filter"])]
        rec = {"shape": {"batch": b, "size": h, "c_in": ci, "c_out": co}, "backend": jax.default_backend(),
               "jax": jax.__version__, "machine": platform.machine(), "rounds": args.rounds, "calls": args.calls,
               "ms": {form: 1e3 * statistics.median(v) for form, v in times.items()},
               "transpose_over_filter": statistics.median(ratios),
               "ratio_range": [min(ratios), max(ratios)]}
        print(json.dumps(rec))
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
