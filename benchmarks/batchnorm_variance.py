"""How far float32 gradients of DCGAN are from float64 with flax's one-pass BatchNorm variance
(E[x^2] - E[x]^2, flax's default, used by jaxgan's DCGAN) and with the two-pass variance.

docs/design.md asks new normalisation layers for the two-pass variance, because the one-pass form put
the tiny CycleGAN's instance-norm gradients 1.6% off float64. This measures whether the DCGAN networks
(which keep the one-pass form) have the same problem: dcgan_mnist's sizes (ngf = ndf = 32), a batch of
64 real digits (mean -0.74: mostly background), the non-saturating D and G losses, at initialisation,
with every parameter perturbed, and (given a dcgan_mnist workdir) at its trained checkpoint.

    python benchmarks/batchnorm_variance.py [DCGAN_MNIST_WORKDIR]      # CPU, about a minute
"""
import functools
import sys

import jax

jax.config.update("jax_enable_x64", True)

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxgan.nets.dcgan as dc  # noqa: E402
from jaxgan.data.idx import mnist_idx  # noqa: E402
from jaxgan.experiment import mnist_dir  # noqa: E402


_BATCH_NORM = nn.BatchNorm


def networks(fast: bool):
    """dcgan_mnist's networks on one device. Their BatchNorm is built by jaxgan's own
    ``dcgan._batch_norm``, with only ``use_fast_variance`` set here (this process builds no other
    network, so the class is swapped for a partial while it traces)."""
    nn.BatchNorm = functools.partial(_BATCH_NORM, use_fast_variance=fast)
    return dc.DCGANGenerator(28, 1, ngf=32, axis_name=None), dc.DCGANDiscriminator(28, ndf=32, axis_name=None)


def gradients(dtype, fast, gv, dv, x, z):
    g, d = networks(fast)
    cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)
    gv, dv, x, z = cast(gv), cast(dv), jnp.asarray(x, dtype), jnp.asarray(z, dtype)
    apply = lambda net, v, inp: net.apply(v, inp, train=True, mutable=["batch_stats"])[0]

    def d_loss(dp, x, z):
        fake = apply(g, gv, z)
        return (jnp.mean(jax.nn.softplus(-apply(d, {**dv, "params": dp}, x)))
                + jnp.mean(jax.nn.softplus(apply(d, {**dv, "params": dp}, fake))))

    def g_loss(gp, z):
        return jnp.mean(jax.nn.softplus(-apply(d, dv, apply(g, {**gv, "params": gp}, z))))

    return jax.jit(jax.grad(d_loss))(dv["params"], x, z), jax.jit(jax.grad(g_loss))(gv["params"], z)


def relative_error(a, b):
    flat = lambda t: np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(t)])
    return float(np.linalg.norm(flat(a) - flat(b)) / np.linalg.norm(flat(b)))


def main():
    x = np.asarray(mnist_idx(mnist_dir(), 0, split="test").get_batch(0, 64)["x"], np.float64)
    z = np.random.RandomState(1).randn(64, 100)
    print(f"digit batch: mean {x.mean():.3f}, std {x.std():.3f}")
    g, d = networks(True)
    gv = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 100)), train=False)
    dv = d.init(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)), train=False)
    rs = np.random.RandomState(2)
    cases = []
    for scale in (0.0, 0.05, 0.2):  # every parameter moved by scale x its leaf's mean magnitude
        shift = lambda t: jax.tree.map(lambda a: a + scale * rs.randn(*a.shape) * (np.abs(a).mean() + 1e-3), t)
        cases.append((f"initial, perturbed {scale:4.2f}", shift(gv), shift(dv)))
    if len(sys.argv) > 1:
        cases.append(trained(sys.argv[1]))
    for name, gs, ds in cases:
        ref_d, ref_g = gradients(jnp.float64, False, gs, ds, x, z)
        for fast in (True, False):
            gd, gg = gradients(jnp.float32, fast, gs, ds, x, z)
            print(f"{name}, float32 {'one-pass' if fast else 'two-pass'} variance: gradient error vs "
                  f"float64: D {relative_error(gd, ref_d):.1e}, G {relative_error(gg, ref_g):.1e}")


def trained(workdir):
    """The (live, not EMA) networks of a dcgan_mnist checkpoint."""
    import json
    import pathlib

    from jaxgan import config as config_lib, run as run_lib

    workdir = pathlib.Path(workdir)
    config = config_lib.Config(json.loads((workdir / "config.json").read_text()))
    run = run_lib.build(config, config_lib.load_experiment(config.experiment))
    state = jax.device_get(run_lib.restore_latest(run, workdir / "checkpoints"))
    variables = lambda params, model_state: {"params": params, **model_state}
    return (f"trained, step {int(state.step)}", variables(state.g_params, state.g_state),
            variables(state.d_params, state.d_state))


if __name__ == "__main__":
    main()
