"""Games: what the two sides of a GAN compute. The train step decides how (devices, optimisers).

A game is any object with the methods of :class:`Game`. The step calls them inside ``shard_map``,
on this device's slice of the batch, with one PRNG key per example:

* ``init(rng, example_batch)`` returns ``{'g_params', 'd_params', 'g_state', 'd_state', 'extra'}``;
* ``d_loss(d_params, state, batch, keys)`` and ``g_loss(g_params, state, batch, keys)`` return
  ``(loss, StepOut(updates, metrics))``: the step differentiates the loss with respect to the first
  argument, pmeans the gradients, applies the optax update, then replaces the GANState fields named
  in ``updates`` (model state such as BatchNorm statistics, or ``extra``);
* ``generate(g_params, g_state, z, labels)`` samples in inference mode, for grids and evaluation;
* ``latent_dim`` and ``num_classes`` say what ``generate`` takes.

:class:`GAN` is the standard game: one generator, one discriminator, a :class:`~jaxgan.losses.Loss`
and :class:`~jaxgan.penalties.Penalty` terms. Other families are other games: CycleGAN keeps two
generators in ``g_params`` and two discriminators in ``d_params``, adds cycle and identity terms to
``g_loss`` and keeps its pool of past fakes in ``extra``; SRGAN reads the low-resolution input from
the batch and adds a pixel loss; StyleGAN2 adds path-length regularisation to ``g_loss`` with its
running mean in ``extra``. All of them run in the same compiled, sharded step.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import NamedTuple, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import losses as losses_lib
from jaxgan import rng as rng_lib
from jaxgan.net import Net, as_net, merge, split
from jaxgan.penalties import Penalty
from jaxgan.sharding import DATA_AXIS

Array = jax.Array

# Sub-streams of each example's key.
_Z_STREAM, _PENALTY_STREAM = 1, 100


class StepOut(NamedTuple):
    """Auxiliary output of a game's loss: GANState fields to replace, and scalar metrics."""

    updates: dict
    metrics: dict


class Game(Protocol):
    latent_dim: int
    num_classes: int | None

    def init(self, rng: Array, example_batch: dict) -> dict: ...

    def d_loss(self, d_params, state, batch: dict, keys: Array) -> tuple[Array, StepOut]: ...

    def g_loss(self, g_params, state, batch: dict, keys: Array) -> tuple[Array, StepOut]: ...

    def generate(self, g_params, g_state, z: Array, labels: Array | None = None) -> Array: ...


def gather(x: Array, axis_name: str | None = DATA_AXIS) -> Array:
    """This device's per-example values concatenated over the data axis (the global batch)."""
    return x if axis_name is None else jax.lax.all_gather(x, axis_name, tiled=True)


def global_mean(x: Array, axis_name: str | None = DATA_AXIS) -> Array:
    """Mean of ``x`` over the global batch: this device's mean, averaged over the data axis
    (every device holds the same number of examples)."""
    m = jnp.mean(x)
    return m if axis_name is None else jax.lax.pmean(m, axis_name)


@dataclasses.dataclass(frozen=True)
class GAN:
    """The standard game: G(z[, y]) against D(x[, y]) under a loss, with optional penalties.

    Attributes:
      generator: a flax module or :class:`~jaxgan.net.Net` mapping (z, labels) to data.
      discriminator: a flax module or Net mapping (x, labels) to logits of shape (B,).
      latent_dim: size of z ~ N(0, I).
      loss: the adversarial objective (default non-saturating).
      penalties: discriminator penalty terms (R1, R2, WGAN-GP...), each possibly lazy.
      num_classes: set for a class-conditional game; batches then carry ``'label'`` and fakes are
        generated with the real batch's labels.
      axis_name: the data axis the step maps over (None only when calling outside shard_map).

    Example:
      >>> from jaxgan import losses, penalties
      >>> from jaxgan.nets import MLPDiscriminator, MLPGenerator
      >>> game = GAN(MLPGenerator(out_shape=(2,)), MLPDiscriminator(), latent_dim=8,
      ...            loss=losses.hinge(), penalties=(penalties.r1_penalty(gamma=1.0),))
    """

    generator: Net | nn.Module
    discriminator: Net | nn.Module
    latent_dim: int
    loss: losses_lib.Loss = dataclasses.field(default_factory=losses_lib.non_saturating)
    penalties: tuple[Penalty, ...] = ()
    num_classes: int | None = None
    axis_name: str | None = DATA_AXIS

    @property
    def g(self) -> Net:
        return as_net(self.generator)

    @property
    def d(self) -> Net:
        return as_net(self.discriminator)

    def _labels(self, batch: dict) -> Array | None:
        if self.num_classes is None:
            return None
        if "label" not in batch:
            raise ValueError(f"a conditional game (num_classes={self.num_classes}) needs batches with a "
                             f"'label' entry; this batch has {sorted(batch)}: use a labelled data source")
        return batch["label"]

    def init(self, rng, example_batch):
        g_rng, d_rng = jax.random.split(rng)
        n = example_batch["x"].shape[0]
        labels = self._labels(example_batch)
        z = jnp.zeros((n, self.latent_dim), jnp.float32)
        g_params, g_state = split(self.g.init(g_rng, z, labels))
        d_params, d_state = split(self.d.init(d_rng, example_batch["x"], labels))
        return dict(g_params=g_params, g_state=g_state, d_params=d_params, d_state=d_state, extra=None)

    def latents(self, keys: Array) -> Array:
        return rng_lib.normal(rng_lib.substream(keys, _Z_STREAM), (self.latent_dim,))

    def _fake(self, g_params, g_state, keys, labels, *, train=True):
        return self.g.apply(merge(g_params, g_state), self.latents(keys), labels, train=train)

    def fake(self, g_params, state, batch, keys):
        """G's train-mode samples for this slice of the batch: ``(fake, {'g_state': new G state})``."""
        fake, g_state = self._fake(g_params, state.g_state, keys, self._labels(batch))
        return fake, {"g_state": g_state}

    def d_loss(self, d_params, state, batch, keys):
        fake, _ = self.fake(state.g_params, state, batch, keys)  # G's state moves in g_loss
        return self.d_loss_given_fake(d_params, state, batch, jax.lax.stop_gradient(fake), keys)

    def d_loss_given_fake(self, d_params, state, batch, fake, keys):
        """D's loss (with penalties) against given fakes; ``d_loss`` draws them first."""
        labels = self._labels(batch)
        real = batch["x"]
        real_logits, d_state = self.d.apply(merge(d_params, state.d_state), real, labels, train=True)
        fake_logits, d_state = self.d.apply(merge(d_params, d_state), fake, labels, train=True)
        real_all, fake_all = gather(real_logits, self.axis_name), gather(fake_logits, self.axis_name)
        adv = self.loss.d(real_all, fake_all)
        total, metrics = adv, {"loss/d_adv": adv}
        d_apply = lambda p, x: self.d.apply(merge(p, state.d_state), x, labels, train=True)[0]
        for i, pen in enumerate(self.penalties):
            pen_keys = rng_lib.substream(keys, _PENALTY_STREAM + i)
            value = _lazy(pen, state.step, lambda: pen.fn(d_apply, d_params, real, fake, pen_keys))
            total = total + pen.weight * pen.every * value
            metrics[f"penalty/{pen.name}"] = value
        metrics.update({"loss/d": total,
                        "logits/real": jnp.mean(real_all.astype(jnp.float32)),
                        "logits/fake": jnp.mean(fake_all.astype(jnp.float32))})
        return total, StepOut({"d_state": d_state}, metrics)

    def g_loss(self, g_params, state, batch, keys):
        fake, g_updates = self.fake(g_params, state, batch, keys)
        loss, out = self.g_loss_given_fake(fake, state, batch, keys)
        return loss, StepOut({**out.updates, **g_updates}, out.metrics)

    def g_loss_given_fake(self, fake, state, batch, keys):
        """G's adversarial loss as a function of its samples (differentiable in ``fake``)."""
        labels = self._labels(batch)
        d_vars = merge(state.d_params, state.d_state)
        fake_logits = gather(self.d.apply(d_vars, fake, labels, train=True)[0], self.axis_name)
        real_logits = None
        if self.loss.g_uses_real:
            real_logits = gather(self.d.apply(d_vars, batch["x"], labels, train=True)[0], self.axis_name)
        loss = self.loss.g(real_logits, fake_logits)
        return loss, StepOut({}, {"loss/g": loss})

    def generate(self, g_params, g_state, z, labels=None):
        out, _ = self.g.apply(merge(g_params, g_state), z, labels, train=False)
        return out


def _lazy(pen: Penalty, step: Array, compute) -> Array:
    """``compute()`` on steps divisible by ``pen.every`` and 0 otherwise (always, when every == 1)."""
    return every(step, pen.every, compute)


# -- lazy terms (regularisers computed every k-th step) ----------------------------------------------
_PHASE_STEP: contextvars.ContextVar[int | None] = contextvars.ContextVar("jaxgan_phase_step", default=None)
_INTERVALS: contextvars.ContextVar[set | None] = contextvars.ContextVar("jaxgan_lazy_intervals", default=None)


def every(step: Array, interval: int, compute, zeros=None):
    """``compute()`` on steps divisible by ``interval``, else zeros (a float32 0, or float32 arrays
    of the pytree ``zeros``): one ``lax.cond``, so the step stays one program. Games use it for lazy
    regularisers (R1 every 16 steps, path length every 4).

    XLA's cost analysis counts both branches of a ``lax.cond`` as if each ran every step; inside
    :func:`phase_step` the branch that step takes is traced alone, which is how ``jaxgan compile
    --phases`` counts each phase of the period and their average.
    """
    if interval == 1:
        return compute()
    seen = _INTERVALS.get()
    if seen is not None:
        seen.add(int(interval))
    skip = ((lambda: jnp.zeros((), jnp.float32)) if zeros is None
            else (lambda: jax.tree.map(lambda z: jnp.asarray(z, jnp.float32), zeros)))
    fixed = _PHASE_STEP.get()
    if fixed is not None:
        return compute() if fixed % interval == 0 else skip()
    return jax.lax.cond(step % interval == 0, compute, skip)


@contextlib.contextmanager
def phase_step(step: int):
    """Within this context, games trace the lazy terms as they run at ``step`` (only the taken
    branch). Functions already traced are cached by jax: lower a new function
    (``TrainStep.lower(..., fresh=True)``)."""
    token = _PHASE_STEP.set(int(step))
    try:
        yield
    finally:
        _PHASE_STEP.reset(token)


@contextlib.contextmanager
def recording_intervals():
    """Collects the intervals of the lazy terms traced within (a set, filled as the context runs)."""
    seen: set = set()
    token = _INTERVALS.set(seen)
    try:
        yield seen
    finally:
        _INTERVALS.reset(token)


def lazy_phases(intervals) -> list[tuple[int, float]]:
    """The distinct phases of lazy terms with these intervals: ``[(step, weight)]``, one step that
    runs each distinct set of terms (the smallest in the period) and the fraction of steps that do.

    Example:
      >>> lazy_phases({4, 16})   # path length every 4 steps, R1 every 16
      [(0, 0.0625), (1, 0.75), (4, 0.1875)]
    """
    intervals = sorted({int(k) for k in intervals if int(k) > 1})
    if not intervals:
        return [(0, 1.0)]
    period = math.lcm(*intervals)
    counts: dict[tuple, list[int]] = {}
    for r in range(period):
        counts.setdefault(tuple(r % k == 0 for k in intervals), []).append(r)
    return sorted((steps[0], len(steps) / period) for steps in counts.values())
