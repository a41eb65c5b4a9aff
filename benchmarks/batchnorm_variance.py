"""How far float32 gradients of DCGAN are from float64 with flax's one-pass BatchNorm variance
(E[x^2] - E[x]^2, flax's default, used by jaxgan's DCGAN) and with the two-pass variance.

docs/design.md asks new normalisation layers for the two-pass variance, because the one-pass form put
the tiny CycleGAN's instance-norm gradients 1.6% off float64. This measures whether the DCGAN networks
(which keep the one-pass form) have the same problem: dcgan_mnist's sizes (ngf = ndf = 32), a batch of
64 real digits (mean -0.74: mostly background), the non-saturating D and G losses, at initialisation,
with every parameter perturbed, and (given a dcgan_mnist workdir) at its trained checkpoint.

    python benchmarks/batchnorm_variance.py [DCGAN_MNIST_WORKDIR]      # CPU, about a minute

``--family srgan`` and ``--family sngan`` measure the other BatchNorm networks the same way, at their
experiments' sizes: srgan_mnist's SRResNet (6 blocks of 32 filters, input the 64 digits average-pooled
4x to 7x7) and VGG discriminator (3 stages, ndf 32), with the non-saturating D loss and G's MSE + 1e-3
adversarial loss; sngan_mnist's ResNet generator (width 32, 32x32 output), whose discriminator has no
BatchNorm, with the loss mean(G(z) * R) for a fixed random R (every BatchNorm's backward pass, no D).

    python benchmarks/batchnorm_variance.py --family srgan|sngan        # CPU, about a minute each
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


def _use_variance(fast: bool) -> None:
    """Networks built from here on get flax's BatchNorm with ``use_fast_variance=fast`` (this process
    builds no other network, so the class is swapped for a partial while they trace)."""
    nn.BatchNorm = functools.partial(_BATCH_NORM, use_fast_variance=fast)


def _digits() -> np.ndarray:
    """The first 64 real test digits, float64 in [-1, 1]."""
    return np.asarray(mnist_idx(mnist_dir(), 0, split="test").get_batch(0, 64)["x"], np.float64)


def _perturbed(rs, tree, scale: float):
    """Every parameter moved by ``scale`` x its leaf's mean magnitude (None stays None)."""
    if tree is None:
        return None
    return jax.tree.map(lambda a: a + scale * rs.randn(*a.shape) * (np.abs(a).mean() + 1e-3), tree)


def networks(fast: bool):
    """dcgan_mnist's networks on one device. Their BatchNorm is built by jaxgan's own
    ``dcgan._batch_norm``, with only ``use_fast_variance`` set here."""
    _use_variance(fast)
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
    x = _digits()
    z = np.random.RandomState(1).randn(64, 100)
    print(f"digit batch: mean {x.mean():.3f}, std {x.std():.3f}")
    g, d = networks(True)
    gv = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 100)), train=False)
    dv = d.init(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)), train=False)
    rs = np.random.RandomState(2)
    cases = []
    for scale in (0.0, 0.05, 0.2):
        cases.append((f"initial, perturbed {scale:4.2f}", _perturbed(rs, gv, scale), _perturbed(rs, dv, scale)))
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


def other_family(family: str):
    """SRGAN's or SNGAN's float32 gradient error against float64, one-pass and two-pass variance."""
    from jaxgan.nets.resnet import ResNetGenerator
    from jaxgan.nets.srgan import SRResNet, VGGDiscriminator

    digits = _digits()
    if family == "srgan":
        def nets(fast):
            _use_variance(fast)
            return (SRResNet(1, 4, features=32, n_blocks=6, axis_name=None),
                    VGGDiscriminator(ndf=32, n_stages=3, axis_name=None))
        g_in = digits.reshape(64, 7, 4, 7, 4, 1).mean(axis=(2, 4))  # 4x average pooling
        target = digits
    else:
        def nets(fast):
            _use_variance(fast)
            return ResNetGenerator(32, 1, width=32, axis_name=None), None
        g_in = np.random.RandomState(1).randn(64, 128)
        target = np.random.RandomState(3).randn(64, 32, 32, 1)  # the fixed R of mean(G(z) * R)
    print(f"{family}: generator input mean {g_in.mean():.3f}, std {g_in.std():.3f}")
    g, d = nets(True)
    gv = g.init(jax.random.PRNGKey(0), jnp.zeros((1,) + g_in.shape[1:]), train=False)
    dv = d and d.init(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)), train=False)

    def grads(dtype, fast, gv, dv):
        """Every array is an argument of the jitted function (closed-over arrays would be constants,
        and XLA would fold the generator's forward pass at compile time, in its own arithmetic)."""
        g, d = nets(fast)
        cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)
        apply = lambda net, v, i: net.apply(v, i, train=True, mutable=["batch_stats"])[0]
        if d is None:
            g_loss = lambda gp, gv, inp, tgt: jnp.mean(apply(g, {**gv, "params": gp}, inp) * tgt)
            return None, jax.jit(jax.grad(g_loss))(*cast((gv["params"], gv, g_in, target)))

        def d_loss(dp, gv, dv, x, inp):
            fake = apply(g, gv, inp)
            return (jnp.mean(jax.nn.softplus(-apply(d, {**dv, "params": dp}, x)))
                    + jnp.mean(jax.nn.softplus(apply(d, {**dv, "params": dp}, fake))))

        def g_loss(gp, gv, dv, inp, tgt):
            sr = apply(g, {**gv, "params": gp}, inp)
            return jnp.mean((sr - tgt) ** 2) + 1e-3 * jnp.mean(jax.nn.softplus(-apply(d, dv, sr)))

        return (jax.jit(jax.grad(d_loss))(*cast((dv["params"], gv, dv, digits, g_in))),
                jax.jit(jax.grad(g_loss))(*cast((gv["params"], gv, dv, g_in, target))))

    def cancellation(gv, dv):
        """max over BatchNorm inputs and channels of mean^2 / variance (float64): one-pass variance
        loses about log10(1 + that) of float32's 7 digits to cancellation; two-pass loses none."""
        g, d = nets(False)
        worst = {}

        def record(next_fun, args, kwargs, context):
            if isinstance(context.module, _BATCH_NORM) and context.method_name == "__call__":
                h = np.asarray(args[0], np.float64).reshape(-1, args[0].shape[-1])
                ratio = float(np.max(h.mean(0) ** 2 / np.maximum(h.var(0), 1e-30)))
                name = "G" if context.module.scope.root is g_root[0] else "D"
                worst[name] = max(worst.get(name, 0.0), ratio)
            return next_fun(*args, **kwargs)

        g_root = [None]
        with nn.intercept_methods(record):
            bound = g.bind(gv, mutable=["batch_stats"])
            g_root[0] = bound.scope.root
            fake = bound(jnp.asarray(g_in), train=True)
            if d is not None:
                d.apply(dv, jnp.concatenate([jnp.asarray(digits), fake]), train=True, mutable=["batch_stats"])
        return ", ".join(f"{k} {v:.1f}" for k, v in sorted(worst.items(), reverse=True))

    rs = np.random.RandomState(2)
    for scale in (0.0, 0.05, 0.2):
        gs, ds = _perturbed(rs, gv, scale), _perturbed(rs, dv, scale)
        ref_d, ref_g = grads(jnp.float64, False, gs, ds)
        print(f"initial, perturbed {scale:4.2f}: largest mean^2/var of a BatchNorm input channel: "
              f"{cancellation(jax.tree.map(np.float64, gs), ds and jax.tree.map(np.float64, ds))}")
        for fast in (True, False):
            gd, gg = grads(jnp.float32, fast, gs, ds)
            d_error = "-" if gd is None else f"{relative_error(gd, ref_d):.1e}"
            print(f"initial, perturbed {scale:4.2f}, float32 {'one-pass' if fast else 'two-pass'} variance: "
                  f"gradient error vs float64: D {d_error}, G {relative_error(gg, ref_g):.1e}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--family"]:
        if sys.argv[2:3] not in (["srgan"], ["sngan"], ["dcgan"]):
            sys.exit("usage: batchnorm_variance.py [DCGAN_MNIST_WORKDIR] | --family dcgan|srgan|sngan")
        if sys.argv[2] == "dcgan":
            del sys.argv[1:3]
            main()
        else:
            other_family(sys.argv[2])
    else:
        main()
