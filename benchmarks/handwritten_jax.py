"""A GAN train step written by hand in flax + optax, one ``jax.jit``: the baseline for ``jaxgan bench``.

It computes exactly the math of jaxgan's ``TrainStep`` for the standard game with the DCGAN
(Radford, Metz & Chintala, 2015) and MLP (Goodfellow et al., 2014) networks, the non-saturating loss,
an optional R1 penalty (Mescheder et al., 2018), Adam (constant or cosine learning rate) and an
optional generator EMA, but none of jaxgan's code: no shard_map, no Game protocol, no metrics beyond
the two losses. With ``noise='per_example'`` each example's latent is drawn from
``fold_in(fold_in(fold_in(fold_in(rng, step), phase), example), 1)`` as jaxgan draws it, so from the
same initialisation both steps give the same parameters (``tests/test_bench.py`` checks it);
``noise='batch'`` draws the batch's latents at once, as a script written by hand usually does.

The per-step math (n_critic D updates, then one G update):

    L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))] (+ gamma/2 E ||grad_x D(x)||^2)
    L_G = E[softplus(-D(G(z)))]

BatchNorm runs in training mode in both updates; D's statistics move with its update (real batch,
then fake), G's with its own update. Nothing here imports jaxgan.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Spec:
    """What to build: the family, its sizes and the optimisation (a plain, hashable record).

    Attributes:
      family: 'dcgan' or 'mlp'.
      data_shape: one example's shape: (H, W, C) for DCGAN, e.g. (2,) for the MLP.
      batch: global batch per D update and per G update.
      latent_dim: z's size.
      ngf, ndf: DCGAN widths. hidden, depth: MLP width and number of hidden layers.
      g_lr, d_lr, b1, b2: Adam's hyper-parameters.
      schedule: 'constant' or 'cosine' (optax.cosine_decay_schedule over ``total_steps``).
      total_steps, final_lr_fraction: the cosine schedule's length (in train steps) and end fraction.
      r1_gamma: R1 weight gamma (the penalty enters as gamma/2 R1); 0 for none.
      ema_half_life_images: generator EMA half-life in images (0: no EMA).
      n_critic: D updates per step.
      dtype: compute dtype, 'float32' or 'bfloat16' (parameters stay float32).
      noise: 'per_example' (jaxgan's keys) or 'batch' (one draw for the batch).
    """

    family: str
    data_shape: tuple
    batch: int
    latent_dim: int
    ngf: int = 64
    ndf: int = 64
    hidden: int = 128
    depth: int = 3
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    schedule: str = "constant"
    total_steps: int = 1
    final_lr_fraction: float = 0.05
    r1_gamma: float = 0.0
    ema_half_life_images: float = 0.0
    n_critic: int = 1
    dtype: str = "float32"
    noise: str = "per_example"


# -- networks -------------------------------------------------------------------------------------
_conv_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _bn(dtype, train):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=_bn_scale_init, dtype=dtype, param_dtype=jnp.float32)


def _g_plan(resolution, ngf, channels):
    if resolution == 28:
        return [(ngf * 2, 7, 1, "VALID"), (ngf, 4, 2, "SAME"), (channels, 4, 2, "SAME")]
    mult, plan = resolution // 8, []
    plan.append((ngf * mult, 4, 1, "VALID"))
    while mult > 1:
        mult //= 2
        plan.append((ngf * mult, 4, 2, "SAME"))
    return plan + [(channels, 4, 2, "SAME")]


def _d_plan(resolution, ndf):
    if resolution == 28:
        return [ndf, ndf * 2]
    return [ndf * 2**i for i in range((resolution.bit_length() - 3))]


class Generator(nn.Module):
    """DCGAN generator, z (B, nz) -> tanh images (B, R, R, C)."""
    resolution: int
    channels: int
    ngf: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, train: bool = True):
        plan = _g_plan(self.resolution, self.ngf, self.channels)
        h = z.reshape(z.shape[0], 1, 1, z.shape[-1])
        for i, (features, k, s, padding) in enumerate(plan):
            h = nn.ConvTranspose(features, (k, k), strides=(s, s), padding=padding, use_bias=False,
                                 kernel_init=_conv_init, dtype=self.dtype, param_dtype=jnp.float32)(h)
            if i < len(plan) - 1:
                h = nn.relu(_bn(self.dtype, train)(h))
        return jnp.tanh(h)


class Discriminator(nn.Module):
    """DCGAN discriminator, images -> float32 logits (B,)."""
    resolution: int
    ndf: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        h = x
        for i, features in enumerate(_d_plan(self.resolution, self.ndf)):
            h = nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                        kernel_init=_conv_init, dtype=self.dtype, param_dtype=jnp.float32)(h)
            if i > 0:
                h = _bn(self.dtype, train)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
        logit = nn.Conv(1, h.shape[1:3], padding="VALID", use_bias=False, kernel_init=_conv_init,
                        dtype=self.dtype, param_dtype=jnp.float32)(h)
        return logit.reshape(h.shape[0]).astype(jnp.float32)


class MLPGenerator(nn.Module):
    """(Dense, ReLU) x depth, then a linear Dense to the data's size."""
    out_shape: tuple
    hidden: int
    depth: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, train: bool = True):
        h = z
        for _ in range(self.depth):
            h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32)(h))
        out = nn.Dense(math.prod(self.out_shape), dtype=self.dtype, param_dtype=jnp.float32)(h)
        return out.reshape(z.shape[0], *self.out_shape)


class _Head(nn.Module):
    dtype: Any

    @nn.compact
    def __call__(self, h):
        return nn.Dense(1, dtype=self.dtype, param_dtype=jnp.float32)(h)[:, 0].astype(jnp.float32)


class MLPDiscriminator(nn.Module):
    """(Dense, LeakyReLU 0.2) x depth, then a Dense logit."""
    hidden: int
    depth: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        h = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            h = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32)(h), 0.2)
        return _Head(self.dtype, name="ProjectionHead_0")(h)


def networks(spec: Spec) -> tuple[nn.Module, nn.Module]:
    dtype = _DTYPES[spec.dtype]
    if spec.family == "dcgan":
        res, _, channels = spec.data_shape
        return (Generator(res, channels, spec.ngf, dtype), Discriminator(res, spec.ndf, dtype))
    if spec.family == "mlp":
        return (MLPGenerator(tuple(spec.data_shape), spec.hidden, spec.depth, dtype),
                MLPDiscriminator(spec.hidden, spec.depth, dtype))
    raise ValueError(f"unknown family {spec.family!r}: use 'dcgan' or 'mlp'")


def optimizers(spec: Spec):
    def lr(value, per_step):
        if spec.schedule == "cosine":
            return optax.cosine_decay_schedule(value, spec.total_steps * per_step, spec.final_lr_fraction)
        return value

    return (optax.adam(lr(spec.g_lr, 1), b1=spec.b1, b2=spec.b2),
            optax.adam(lr(spec.d_lr, spec.n_critic), b1=spec.b1, b2=spec.b2))


# -- the step -------------------------------------------------------------------------------------
def _with_state(module, params, state, x, train=True):
    """(output, new model state) of a module call; model state is {} for the MLP."""
    if state:
        return module.apply({"params": params, **state}, x, train=train, mutable=list(state))
    return module.apply({"params": params}, x, train=train), state


class HandwrittenStep:
    """``state, losses = step(state, batch)``: one jitted function, state donated.

    ``batch`` is ``{'x': (n_critic, batch, *data_shape) float32}`` (jaxgan's layout).
    """

    def __init__(self, spec: Spec):
        self.spec = spec
        self.g, self.d = networks(spec)
        self.g_tx, self.d_tx = optimizers(spec)
        self._jitted = jax.jit(self._step, donate_argnums=0)

    def init(self, seed: int) -> dict:
        """The state from ``seed``, drawn with the same key splits as jaxgan (same parameters).

        Compiled, as jaxgan's is: XLA may round a fused initialiser differently from eager ops.
        """
        return jax.jit(self._init)(jax.random.PRNGKey(seed))

    def _init(self, key) -> dict:
        s = self.spec
        init_rng, run_rng = jax.random.split(key)
        g_rng, d_rng = jax.random.split(init_rng)
        g_vars = self.g.init(g_rng, jnp.zeros((1, s.latent_dim), jnp.float32), train=False)
        d_vars = self.d.init(d_rng, jnp.zeros((1, *s.data_shape), jnp.float32), train=False)
        g_params, d_params = g_vars["params"], d_vars["params"]
        return {
            "step": jnp.zeros((), jnp.int32), "rng": run_rng,
            "g_params": g_params, "g_state": {k: v for k, v in g_vars.items() if k != "params"},
            "d_params": d_params, "d_state": {k: v for k, v in d_vars.items() if k != "params"},
            "g_opt": self.g_tx.init(g_params), "d_opt": self.d_tx.init(d_params),
            "g_ema": jax.tree.map(jnp.copy, g_params) if s.ema_half_life_images else None,
        }

    def _z(self, rng, step, phase):
        s = self.spec
        key = jax.random.fold_in(jax.random.fold_in(rng, step), phase)
        if s.noise == "batch":
            return jax.random.normal(key, (s.batch, s.latent_dim))
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(s.batch))
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1)
        return jax.vmap(lambda k: jax.random.normal(k, (s.latent_dim,)))(keys)

    def _d_loss(self, d_params, st, x, z):
        fake, _ = _with_state(self.g, st["g_params"], st["g_state"], z)
        fake = jax.lax.stop_gradient(fake)
        real_logits, d_state = _with_state(self.d, d_params, st["d_state"], x)
        fake_logits, d_state = _with_state(self.d, d_params, d_state, fake)
        loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
        if self.spec.r1_gamma:
            d_of_x = lambda x: jnp.sum(_with_state(self.d, d_params, st["d_state"], x)[0].astype(jnp.float32))
            grads = jax.grad(d_of_x)(x).astype(jnp.float32).reshape(x.shape[0], -1)
            loss = loss + self.spec.r1_gamma / 2.0 * jnp.mean(jnp.sum(grads * grads, axis=1))
        return loss, d_state

    def _g_loss(self, g_params, st, z):
        fake, g_state = _with_state(self.g, g_params, st["g_state"], z)
        logits, _ = _with_state(self.d, st["d_params"], st["d_state"], fake)
        return jnp.mean(jax.nn.softplus(-logits)), g_state

    def _step(self, st, batch):
        s = self.spec
        x = batch["x"]
        d_losses = []
        for i in range(s.n_critic):  # a Python loop: unrolled, every convolution at top level
            z = self._z(st["rng"], st["step"], i)
            (loss_d, d_state), grads = jax.value_and_grad(self._d_loss, has_aux=True)(st["d_params"], st, x[i], z)
            updates, d_opt = self.d_tx.update(grads, st["d_opt"], st["d_params"])
            st = {**st, "d_params": optax.apply_updates(st["d_params"], updates), "d_opt": d_opt,
                  "d_state": d_state}
            d_losses.append(loss_d)
        z = self._z(st["rng"], st["step"], s.n_critic)
        (loss_g, g_state), grads = jax.value_and_grad(self._g_loss, has_aux=True)(st["g_params"], st, z)
        updates, g_opt = self.g_tx.update(grads, st["g_opt"], st["g_params"])
        st = {**st, "g_params": optax.apply_updates(st["g_params"], updates), "g_opt": g_opt, "g_state": g_state}
        if st["g_ema"] is not None:
            half_life = jnp.asarray(s.ema_half_life_images, jnp.float32)
            beta = 0.5 ** (s.batch * s.n_critic / jnp.maximum(half_life, 1e-8))
            st["g_ema"] = jax.tree.map(lambda e, p: p + beta * (e - p), st["g_ema"], st["g_params"])
        st["step"] = st["step"] + 1
        return st, {"loss/d": jnp.mean(jnp.stack(d_losses)), "loss/g": loss_g}

    def __call__(self, state, batch):
        return self._jitted(state, batch)

    def lower(self, state, batch):
        return self._jitted.lower(state, batch)
