"""CycleGAN (Zhu, Park, Isola & Efros, 2017): unpaired translation between domains A and B.

Two generators ``G_ab: A -> B`` and ``G_ba: B -> A`` and two discriminators ``D_a``, ``D_b``::

    L_D   = sum_X 1/2 [ E (D_X(x) - 1)^2 + E D_X(pool_X(fake_x))^2 ]           (least squares)
    L_G   = E (D_b(G_ab(a)) - 1)^2 + E (D_a(G_ba(b)) - 1)^2
          + lambda_cycle (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)
          + lambda_identity lambda_cycle (|G_ba(a) - a|_1 + |G_ab(b) - b|_1)

(``lambda_cycle`` 10 and ``lambda_identity`` 0.5 in the paper.) ``g_params = {'g_ab', 'g_ba'}`` and
``d_params = {'d_a', 'd_b'}``: one optax transform per side updates both networks of that side.

**The pool of past fakes** (Shrivastava et al. 2017; 50 per direction) lives in ``state.extra``.
For each fake of the global batch, in order: while the pool is not full the fake is stored and
shown to D; afterwards, with probability 1/2, a random stored fake is shown instead and the new one
takes its place. The coin flips come from per-example keys folded from (run key, step, global
example index), so every device computes the same, device-count independent answer on the
all-gathered batch. ``d_loss`` asks the pool which images to show (without changing it) and
``g_loss``, computing the same fakes from the same parameters, returns the updated pool through
``updates`` (with ``n_critic`` 1, the paper's setting, the two see the same batch).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import losses as losses_lib
from jaxgan.game import StepOut, gather, global_mean
from jaxgan.net import Net, as_net, merge, split
from jaxgan.sharding import DATA_AXIS

Array = jax.Array
_POOL_STREAM = 0x9001  # folded into the step key for the pool's coin flips


def cyclegan_least_squares() -> losses_lib.Loss:
    """The least-squares loss as CycleGAN's code weights it (LSGAN, Mao et al. 2017)::

        L_D = 1/2 [E (l_real - 1)^2 + E l_fake^2]        L_G = E (l_fake - 1)^2

    (the generator's term without the 1/2 of :func:`jaxgan.losses.least_squares`, so that it keeps
    its weight against the cycle term with lambda 10). Logits may be patch maps of any shape.
    """
    def d(real, fake):
        real, fake = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
        return 0.5 * (jnp.mean((real - 1.0) ** 2) + jnp.mean(fake ** 2))

    def g(real, fake):
        del real
        return jnp.mean((jnp.asarray(fake, jnp.float32) - 1.0) ** 2)

    return losses_lib.custom(d, g, name="cyclegan_least_squares", g_uses_real=False)


def pool_query(pool: Array, count: Array, images: Array, keys: Array) -> tuple[Array, Array, Array]:
    """The image pool of CycleGAN's official code, as a pure function of (pool, images, keys).

    For each image i in order: if ``count < len(pool)`` it is stored at ``count`` and returned;
    otherwise with probability 1/2 a uniformly chosen stored image is returned and replaced by
    image i, else image i itself is returned.

    Args:
      pool: (P, H, W, C) stored images (entries at >= count are unused).
      count: int32 scalar, stored images so far (saturates at P).
      images: (B, H, W, C) new fakes.
      keys: (B, 2) one PRNG key per image.

    Returns:
      (new pool, new count, (B, H, W, C) images to show the discriminator).
    """
    size = pool.shape[0]

    def one(carry, xs):
        pool, count = carry
        image, key = xs
        swap_key, index_key = jax.random.split(key)
        filling = count < size
        swap = jnp.logical_and(~filling, jax.random.uniform(swap_key) < 0.5)
        index = jnp.where(filling, jnp.minimum(count, size - 1), jax.random.randint(index_key, (), 0, size))
        stored = pool[index]
        out = jnp.where(swap, stored, image)
        write = jnp.logical_or(filling, swap)
        pool = pool.at[index].set(jnp.where(write, image, stored))
        return (pool, jnp.minimum(count + 1, size)), out

    (pool, count), shown = jax.lax.scan(one, (pool, count), (images.astype(pool.dtype), keys))
    return pool, count, shown


@dataclasses.dataclass(frozen=True)
class CycleGAN:
    """The CycleGAN game (see the module docstring).

    Attributes:
      g_ab, g_ba: generators A -> B and B -> A (flax modules or Nets taking (x, labels)).
      d_a, d_b: discriminators of domains A and B (patch or scalar logits).
      lambda_cycle: weight of the cycle-consistency L1 terms (10).
      lambda_identity: identity weight as a fraction of lambda_cycle (0.5; 0 turns it off).
      pool_size: past fakes kept per direction (50; 0 shows D the newest fakes only).
      loss: the adversarial loss (least squares weighted as the paper's code).
      axis_name: the data axis of the step.

    Batches: ``{'x': domain A images, 'x_b': domain B images}`` of the same shape. ``generate``
    translates A -> B; :meth:`translate` either way.
    """

    g_ab: Net | nn.Module
    g_ba: Net | nn.Module
    d_a: Net | nn.Module
    d_b: Net | nn.Module
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    loss: losses_lib.Loss = dataclasses.field(default_factory=cyclegan_least_squares)
    axis_name: str | None = DATA_AXIS
    latent_dim: int = 0
    num_classes: int | None = None

    # -- networks ---------------------------------------------------------------------------------
    def _nets(self) -> dict[str, Net]:
        return {"g_ab": as_net(self.g_ab), "g_ba": as_net(self.g_ba),
                "d_a": as_net(self.d_a), "d_b": as_net(self.d_b)}

    def _apply(self, name: str, params, model_state, x, train=True):
        out, new_state = self._nets()[name].apply(merge(params[name], model_state[name]), x, None, train=train)
        return out, new_state

    def init(self, rng, example_batch):
        a, b = _domains(example_batch)
        nets = self._nets()
        variables = {}
        for name, key, x in zip(("g_ab", "g_ba", "d_a", "d_b"), jax.random.split(rng, 4), (a, b, a, b)):
            variables[name] = split(nets[name].init(key, x, None))
        pool_shape = (self.pool_size,) + a.shape[1:]
        extra = {"pool_a": jnp.zeros(pool_shape, jnp.float32), "pool_b": jnp.zeros(pool_shape, jnp.float32),
                 "pool_count": jnp.zeros((), jnp.int32)}
        return dict(g_params={k: variables[k][0] for k in ("g_ab", "g_ba")},
                    g_state={k: variables[k][1] for k in ("g_ab", "g_ba")},
                    d_params={k: variables[k][0] for k in ("d_a", "d_b")},
                    d_state={k: variables[k][1] for k in ("d_a", "d_b")},
                    extra=extra)

    # -- the pool ---------------------------------------------------------------------------------
    def _pool_keys(self, state, local: int) -> Array:
        """(global batch, 2) keys, key i = fold_in(fold_in(fold_in(rng, step), POOL), i)."""
        key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), _POOL_STREAM)
        n = local * (1 if self.axis_name is None else jax.lax.axis_size(self.axis_name))
        return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n))

    def _pooled(self, state, fake_a, fake_b):
        """(extra after the pool update, this device's images to show D_a and D_b)."""
        extra, local = state.extra, fake_a.shape[0]
        if self.pool_size == 0:
            return extra, fake_a, fake_b
        keys = self._pool_keys(state, local)
        all_a, all_b = gather(fake_a, self.axis_name), gather(fake_b, self.axis_name)
        ka, kb = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys), jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
        pool_a, count, shown_a = pool_query(extra["pool_a"], extra["pool_count"], all_a, ka)
        pool_b, _, shown_b = pool_query(extra["pool_b"], extra["pool_count"], all_b, kb)
        start = 0 if self.axis_name is None else jax.lax.axis_index(self.axis_name) * local
        mine = lambda x: jax.lax.dynamic_slice_in_dim(x, start, local)
        return ({"pool_a": pool_a, "pool_b": pool_b, "pool_count": count},
                mine(shown_a).astype(fake_a.dtype), mine(shown_b).astype(fake_b.dtype))

    # -- losses -----------------------------------------------------------------------------------
    def d_loss(self, d_params, state, batch, keys):
        del keys
        a, b = _domains(batch)
        fake_b, _ = self._apply("g_ab", state.g_params, state.g_state, a)
        fake_a, _ = self._apply("g_ba", state.g_params, state.g_state, b)
        _, fake_a, fake_b = self._pooled(state, jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b))
        d_state, metrics, total = dict(state.d_state), {}, 0.0
        for name, real, fake in (("d_a", a, fake_a), ("d_b", b, fake_b)):
            real_logits, d_state[name] = self._apply(name, d_params, d_state, real)
            fake_logits, d_state[name] = self._apply(name, d_params, d_state, fake)
            real_all, fake_all = gather(real_logits, self.axis_name), gather(fake_logits, self.axis_name)
            loss = self.loss.d(real_all, fake_all)
            total = total + loss
            metrics.update({f"loss/{name}": loss, f"logits/real_{name[-1]}": jnp.mean(real_all),
                            f"logits/fake_{name[-1]}": jnp.mean(fake_all)})
        metrics["loss/d"] = total
        return total, StepOut({"d_state": d_state}, metrics)

    def g_loss(self, g_params, state, batch, keys):
        del keys
        a, b = _domains(batch)
        g_state = dict(state.g_state)
        fake_b, g_state["g_ab"] = self._apply("g_ab", g_params, g_state, a)
        fake_a, g_state["g_ba"] = self._apply("g_ba", g_params, g_state, b)
        rec_a, g_state["g_ba"] = self._apply("g_ba", g_params, g_state, fake_b)
        rec_b, g_state["g_ab"] = self._apply("g_ab", g_params, g_state, fake_a)
        d_vars = state.d_state
        adv_ab = self.loss.g(None, gather(self._apply("d_b", state.d_params, d_vars, fake_b)[0], self.axis_name))
        adv_ba = self.loss.g(None, gather(self._apply("d_a", state.d_params, d_vars, fake_a)[0], self.axis_name))
        l1 = lambda x, y: global_mean(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)), self.axis_name)
        cycle_a, cycle_b = l1(rec_a, a), l1(rec_b, b)
        total = adv_ab + adv_ba + self.lambda_cycle * (cycle_a + cycle_b)
        metrics = {"loss/g_ab": adv_ab, "loss/g_ba": adv_ba, "loss/cycle_a": cycle_a, "loss/cycle_b": cycle_b}
        if self.lambda_identity:
            idt_a, g_state["g_ba"] = self._apply("g_ba", g_params, g_state, a)
            idt_b, g_state["g_ab"] = self._apply("g_ab", g_params, g_state, b)
            identity = l1(idt_a, a) + l1(idt_b, b)
            total = total + self.lambda_identity * self.lambda_cycle * identity
            metrics["loss/identity"] = identity
        metrics["loss/g"] = total
        extra, _, _ = self._pooled(state, jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b))
        return total, StepOut({"g_state": g_state, "extra": extra}, metrics)

    # -- inference --------------------------------------------------------------------------------
    def translate(self, g_params, g_state, x: Array, direction: str = "a2b") -> Array:
        """Translates images A -> B (``'a2b'``) or B -> A (``'b2a'``) in inference mode."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction {direction!r}: use 'a2b' or 'b2a'")
        name = "g_ab" if direction == "a2b" else "g_ba"
        return self._apply(name, g_params, g_state, x, train=False)[0]

    def generate(self, g_params, g_state, z, labels=None):
        """``z`` are domain-A images: their translations to B."""
        del labels
        return self.translate(g_params, g_state, z, "a2b")

    def sample_inputs(self, source, n: int, seed: int):
        """Fixed domain-A images for sample grids (the first ``n`` of the stream shifted by ``seed``)."""
        return jnp.asarray(source.get_batch(seed % 997 * n, n)["x"]), None

    def sample_image(self, inputs, outputs) -> np.ndarray:
        """Pairs of rows: inputs (A) above their translations (B), 8 per row."""
        return pair_grid([np.asarray(inputs), np.asarray(outputs)])

    def evaluate(self, run, state) -> dict[str, Any]:
        return evaluate_translation(run, state)


def _domains(batch: dict) -> tuple[Array, Array]:
    if "x_b" not in batch:
        raise ValueError(f"CycleGAN needs batches with 'x' (domain A) and 'x_b' (domain B), got {sorted(batch)}: "
                         "give the run config a 'data_b' spec (two unpaired sources)")
    return batch["x"], batch["x_b"]


def pair_grid(rows_of: list[np.ndarray], per_row: int = 8, padding: int = 2) -> np.ndarray:
    """Stacks several aligned image batches as alternating rows (inputs above outputs), uint8.

    Args:
      rows_of: batches (N, H, W, C) of the same N and shape, floats in [-1, 1].
      per_row: images per row.
    """
    from jaxgan.samples import image_grid

    n = min(len(x) for x in rows_of)
    tiles = []
    for start in range(0, n, per_row):
        for x in rows_of:
            chunk = np.asarray(x[start:start + per_row], np.float32)
            if len(chunk) < per_row:
                chunk = np.concatenate([chunk, np.full((per_row - len(chunk),) + chunk.shape[1:], -1, np.float32)])
            tiles.append(chunk)
    return image_grid(np.concatenate(tiles), nrow=per_row, padding=padding, pad_value=128)


def linear_decay(lr: float, total_steps: int, decay_start: float = 0.5) -> optax.Schedule:
    """CycleGAN's schedule: ``lr`` for the first ``decay_start`` of the run, then linearly to 0.

    (The paper: 100 epochs at 2e-4, then 100 epochs of linear decay.)
    """
    if not 0.0 <= decay_start <= 1.0:
        raise ValueError(f"decay_start={decay_start} must be a fraction of the run in [0, 1]")
    hold = int(round(total_steps * decay_start))
    return optax.join_schedules([optax.constant_schedule(lr),
                                 optax.linear_schedule(lr, 0.0, max(1, total_steps - hold))], [hold])


B_VIEWS = {"none": lambda x: x, "invert": lambda x: -x}


def translate_images(run, state, x: np.ndarray, direction: str, chunk: int = 500) -> np.ndarray:
    """The run's generator of ``direction`` (its EMA where there is one) on images, as float32 numpy."""
    params = state.g_ema if state.g_ema is not None else state.g_params
    fn = jax.jit(run.game.translate, static_argnames="direction")
    return np.concatenate([np.asarray(fn(params, state.g_state, jnp.asarray(x[i:i + chunk]), direction=direction),
                                      np.float32) for i in range(0, len(x), chunk)])


def evaluate_translation(run, state) -> dict[str, Any]:
    """Cycle-reconstruction error, and for labelled 28x28 digits, how often the translations keep their class.

    On the first ``eval.num_samples`` examples of each domain's stream:

    * ``cycle{n}/a_l1`` = mean |G_ba(G_ab(a)) - a|, ``cycle{n}/b_l1`` likewise (pixels in [-1, 1]);
    * with labels in both domains and 28x28x1 images, jaxgan's digit classifier (trained on domain A's
      digits) reads the translations in domain A's view: ``translation{n}/a2b_accuracy`` is the fraction
      of ``b_view(G_ab(a))`` classified as a's label, ``translation{n}/b2a_accuracy`` that of ``G_ba(b)``
      as b's label. ``eval.b_view`` maps a B image to A's look (``'invert'`` for colour-inverted digits,
      ``'none'``). References: the classifier on real A (``a_accuracy``), on real B in A's view
      (``b_view_accuracy``), and on B untranslated (``b_untranslated_accuracy``, what doing nothing scores).
    """
    from jaxgan.evaluate import digit_classifier, protocol_prefix

    source = run.source
    n = int(run.config.eval.num_samples)
    sizes = [s.info.num_examples for s in (source.a, source.b) if s.info.num_examples]
    n = min([n, *sizes])
    a_batch, b_batch = source.a.get_batch(0, n), source.b.get_batch(0, n)
    a, b = a_batch["x"], b_batch["x"]
    fake_b, fake_a = translate_images(run, state, a, "a2b"), translate_images(run, state, b, "b2a")
    rec_a, rec_b = translate_images(run, state, fake_b, "b2a"), translate_images(run, state, fake_a, "a2b")
    c, t = protocol_prefix("cycle", n), protocol_prefix("translation", n)
    results = {f"{c}/a_l1": float(np.mean(np.abs(rec_a - a))), f"{c}/b_l1": float(np.mean(np.abs(rec_b - b)))}
    digits = source.info.shape == (28, 28, 1) and source.info.num_classes == 10 and "label" in a_batch \
        and "label" in b_batch
    if digits:
        view_name = run.config.eval.get("b_view", "none")
        if view_name not in B_VIEWS:
            raise ValueError(f"eval.b_view {view_name!r}: use one of {sorted(B_VIEWS)}")
        view = B_VIEWS[view_name]
        clf = digit_classifier(run)
        la, lb = a_batch["label"], b_batch["label"]
        results.update({f"{t}/a2b_accuracy": clf.accuracy(np.clip(view(fake_b), -1, 1), la),
                        f"{t}/b2a_accuracy": clf.accuracy(np.clip(fake_a, -1, 1), lb),
                        f"{t}/a_accuracy": clf.accuracy(a, la),
                        f"{t}/b_view_accuracy": clf.accuracy(view(b), lb),
                        f"{t}/b_untranslated_accuracy": clf.accuracy(b, lb)})
    return results
