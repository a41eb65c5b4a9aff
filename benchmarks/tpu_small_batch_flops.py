"""Where XLA:TPU counts more FLOPs than XLA:CPU for dcgan_mnist's networks at small per-chip batches.

    JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1 python benchmarks/tpu_small_batch_flops.py [--batch 1 4 16]

Needs libtpu (``pip install -e ".[tpu]"``); nothing runs on a TPU. dcgan_mnist's generator and
discriminator (ngf = ndf = 32, bfloat16, ``upsample='transpose'`` as on TPU, BatchNorm without a mesh
axis) are compiled for one v5e chip and for this host's CPU: the forward pass, the gradient of the
generator's output sum, and the discriminator's gradients with respect to its parameters and to its
input, separately. Each line prints both compilers' ``cost_analysis()['flops']``. Then the
convolutions in the TPU program of the discriminator's parameter gradient are listed with their
shapes as XLA:TPU rewrote them, and their products (output elements x the kernel's contraction, 2
FLOPs each; input-dilated convolutions are counted with their zeros, so they read high).
"""
from __future__ import annotations

import argparse
import math
import re

import jax
import jax.numpy as jnp
from jax.experimental import topologies
from jax.sharding import SingleDeviceSharding

from jaxgan.flops import xla_cost
from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator


def _compiled(f, args, sharding):
    specs = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), args)
    return jax.jit(f).lower(*specs).compile()


def _flops(compiled) -> float:
    return xla_cost(compiled)["flops"]


def convolutions(hlo: str) -> list[tuple[str, float]]:
    """(description, FLOPs) of each convolution in an optimised HLO text."""
    shapes = {m.group(1): [int(d) for d in m.group(2).split(",") if d]
              for m in re.finditer(r"%([\w.\-]+) = \w+\[([\d,]*)\]", hlo)}
    rows = []
    for m in re.finditer(r"%([\w.\-]+) = \w+\[([\d,]*)\][^ ]* convolution\(%([\w.\-]+), %([\w.\-]+)\), "
                         r"window=\{([^}]*)\}, dim_labels=(\w+)_(\w+)->(\w+)", hlo):
        name, out, lhs, rhs, window, lhs_labels, rhs_labels, _ = m.groups()
        out = [int(d) for d in out.split(",") if d]
        contraction = math.prod(d for d, c in zip(shapes[rhs], rhs_labels) if c != "o")
        rows.append((f"{name}: out {out}, lhs {shapes[lhs]} ({lhs_labels}), rhs {shapes[rhs]} "
                     f"({rhs_labels}), {window}", 2.0 * math.prod(out) * contraction))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args(argv)
    chip = topologies.get_topology_desc(platform="tpu", topology_name="v5e:2x2").devices[0]
    tpu, cpu = SingleDeviceSharding(chip), SingleDeviceSharding(jax.devices("cpu")[0])
    bf16 = jnp.bfloat16
    g = DCGANGenerator(resolution=28, channels=1, ngf=32, axis_name=None, dtype=bf16, upsample="transpose")
    d = DCGANDiscriminator(resolution=28, ndf=32, axis_name=None, dtype=bf16)
    for batch in args.batch:
        z = jax.ShapeDtypeStruct((batch, 100), jnp.float32)
        x = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
        vg = jax.eval_shape(g.init, jax.random.key(0), z)
        vd = jax.eval_shape(d.init, jax.random.key(0), x)
        g_fwd = lambda v, z: g.apply(v, z, mutable=["batch_stats"])[0]
        d_fwd = lambda v, x: d.apply(v, x, mutable=["batch_stats"])[0]
        programs = {
            "G forward": (g_fwd, (vg, z)),
            "G gradient (parameters)": (jax.grad(lambda v, z: jnp.sum(g_fwd(v, z).astype(jnp.float32))), (vg, z)),
            "D forward": (d_fwd, (vd, x)),
            "D gradient (parameters)": (jax.grad(lambda v, x: jnp.sum(d_fwd(v, x))), (vd, x)),
            "D gradient (input)": (jax.grad(lambda v, x: jnp.sum(d_fwd(v, x)), argnums=1), (vd, x)),
        }
        for name, (f, a) in programs.items():
            on_tpu = _compiled(f, a, tpu)
            t, c = _flops(on_tpu), _flops(_compiled(f, a, cpu))
            print(f"batch {batch:>3}  {name:<24} TPU {t / 1e6:8.3f} MFLOP  CPU {c / 1e6:8.3f} MFLOP  "
                  f"TPU/CPU {t / c:.3f}", flush=True)
            if name == "D gradient (parameters)":
                rows = convolutions(on_tpu.as_text())
                for what, flops in rows:
                    print(f"      {flops / 1e6:8.3f} MFLOP  {what}")
                print(f"      {sum(f for _, f in rows) / 1e6:8.3f} MFLOP in its convolutions")


if __name__ == "__main__":
    main()
