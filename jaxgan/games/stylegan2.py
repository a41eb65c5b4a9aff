"""StyleGAN2 as a game: the losses, lazy regularisers, style mixing and truncation of Karras et al. 2020.

Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and Improving the Image Quality of
StyleGAN", CVPR 2020; training details as in NVlabs/stylegan2-ada-pytorch (``loss.py``,
``training_loop.py``; Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").

Per step (the engine's :class:`jaxgan.step.TrainStep` runs ``d_loss`` then ``g_loss``):

* D:  L_D = softplus(D(G(z))) + softplus(-D(x))                                 (non-saturating)
          + [step % r1_every == 0] * r1_every * gamma/2 * E ||grad_x D(x)||^2     (lazy R1)
* G:  L_G = softplus(-D(G(z)))
          + [step % pl_every == 0] * pl_every * pl_weight * E (|J_w^T y| - a)^2   (lazy path length)
  with y ~ N(0, I) / sqrt(H W) per image, |J_w^T y| = sqrt(mean over layers of the squared norm of
  grad_w <G(w), y>), and ``a`` the running mean of that length (``extra['pl_mean']``, decay 0.01,
  averaged over the *global* batch; the penalty's gradient flows through this step's batch mean,
  as in ADA), on fresh latents, mixing and noise (as ADA's separate Greg phase draws), for every
  ``pl_batch_shrink``-th example.
* Style mixing regularisation: with probability 0.9 per example, the ws from a layer index drawn
  uniformly in [1, num_ws) onwards come from a second latent.
* ``w_avg`` (in ``g_state['stats']``) tracks the global-batch mean of w with beta 0.995 (updated in
  ``g_loss``, returned through ``updates``); ``generate`` truncates towards it by ``truncation``.
* Optional DiffAugment of everything D sees (:mod:`jaxgan.augment`), keyed per example.

Every random draw (z, the mixing latent and cutoff, the noise inputs, the path-length y, the
augmentations) comes from the per-example keys (:func:`jaxgan.rng.substream`), so a step gives the
same result on 1 or 8 devices.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from jaxgan import augment as augment_lib
from jaxgan import losses as losses_lib
from jaxgan import penalties as penalties_lib
from jaxgan import rng as rng_lib
from jaxgan.game import StepOut, every, gather
from jaxgan.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, stylegan2_pair
from jaxgan.net import merge, split
from jaxgan.sharding import DATA_AXIS

Array = jax.Array

# Sub-streams of each example's key.
_Z, _MIX_Z, _MIX_CUT, _NOISE, _AUG_REAL, _AUG_FAKE, _PL_NOISE, _PL_LATENTS = 1, 2, 3, 4, 5, 6, 7, 8


def noise_keys_from_latents(z: Array) -> Array:
    """Per-sample noise keys derived from the bits of z's first two entries (inference sampling).

    Deterministic per latent, so a sample does not depend on its batch or chunk.
    """
    return jax.lax.bitcast_convert_type(z[:, :2].astype(jnp.float32), jnp.uint32)


def path_lengths(synthesis, ws: Array, keys: Array | None = None, *, y: Array | None = None) -> Array:
    """Per-example path lengths |J_w^T y| (Karras et al. 2020, eq. 4).

        y ~ N(0, I) / sqrt(H W),   g = grad_ws sum(G(ws) * y),   length = sqrt(mean_layers sum_dim g^2)

    Args:
      synthesis: ``ws -> images`` (B, H, W, C); must treat examples independently.
      ws: (B, num_ws, w_dim).
      keys: per-example keys for y.
      y: the projections themselves (B, H, W, C), instead of ``keys`` (tests against a reference).

    Returns:
      (B,) float32 lengths, differentiable with respect to ``ws``' inputs and the parameters
      ``synthesis`` closes over.
    """
    if y is None:
        img_shape = jax.eval_shape(synthesis, ws).shape
        y = rng_lib.normal(keys, img_shape[1:]) / math.sqrt(img_shape[1] * img_shape[2])
    grads = jax.grad(lambda w: jnp.sum(synthesis(w).astype(jnp.float32) * y))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=2), axis=1))


def path_length_penalty(lengths: Array, pl_mean: Array, decay: float, mean=lambda x: jnp.mean(x, axis=0)
                        ) -> tuple[Array, Array, Array]:
    """Path-length penalty against the running mean of the lengths (Karras et al. 2020, eq. 4).

        a' = a + decay (mean(lengths) - a),   penalty = E (length - a')^2

    As in ADA's ``loss.py`` (and TF StyleGAN2), the gradient flows through ``mean(lengths)`` in
    ``a'``; only the stored running mean is a constant.

    Args:
      lengths: (B,) from :func:`path_lengths`.
      pl_mean: the running mean ``a`` so far (a scalar).
      decay: 0.01.
      mean: the batch mean (the game's is over the global batch: the same on any device count).

    Returns:
      (penalty, a' without gradient (the value to store), mean of the lengths without gradient).
    """
    batch_mean = mean(lengths)
    new_mean = pl_mean + decay * (batch_mean - pl_mean)
    penalty = jnp.mean(jnp.square(lengths - new_mean))
    return penalty, jax.lax.stop_gradient(new_mean), jax.lax.stop_gradient(batch_mean)


@dataclasses.dataclass(frozen=True)
class StyleGAN2:
    """The StyleGAN2 game (see the module docstring for the objective).

    Attributes:
      generator, discriminator: :class:`StyleGAN2Generator` and :class:`StyleGAN2Discriminator`.
      latent_dim: size of z.
      num_classes: class-conditional game (batches carry ``'label'``), or None.
      r1_gamma, r1_every: R1 weight gamma (loss gamma/2 R1) and its lazy interval (16).
      pl_weight, pl_every, pl_decay, pl_batch_shrink: path-length regularisation (2, 4, 0.01, 2).
      style_mixing: probability of mixing two latents per example (0.9).
      w_avg_beta: decay of the tracked W average (0.995).
      augment: DiffAugment policy applied to D's inputs, e.g. ('flip', 'translation', 'cutout').
      truncation: psi used by :meth:`generate` (1: none).
      truncation_cutoff: truncate only the first this many ws (ADA's ``truncation_cutoff``; None: all).
      noise_mode: the noise :meth:`generate` uses: 'random' (keyed by z), 'const' (an imported
        network's fixed maps, as NVIDIA's generate.py) or 'none'.
      axis_name: the data axis (None only outside shard_map).
    """

    generator: StyleGAN2Generator
    discriminator: StyleGAN2Discriminator
    latent_dim: int
    num_classes: int | None = None
    r1_gamma: float = 10.0
    r1_every: int = 16
    pl_weight: float = 2.0
    pl_every: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing: float = 0.9
    w_avg_beta: float = 0.995
    augment: tuple[str, ...] = ()
    truncation: float = 1.0
    truncation_cutoff: int | None = None
    noise_mode: str = "random"
    axis_name: str | None = DATA_AXIS
    loss: losses_lib.Loss = dataclasses.field(default_factory=losses_lib.non_saturating)

    def __post_init__(self):
        if self.r1_every < 1 or self.pl_every < 1 or self.pl_batch_shrink < 1:
            raise ValueError(f"r1_every={self.r1_every}, pl_every={self.pl_every} and pl_batch_shrink="
                             f"{self.pl_batch_shrink} must all be >= 1")
        augment_lib.parse_policy(",".join(self.augment))

    # -- plumbing --------------------------------------------------------------------------------
    def _labels(self, batch: dict) -> Array | None:
        if self.num_classes is None:
            return None
        if "label" not in batch:
            raise ValueError(f"a conditional StyleGAN2 ({self.num_classes} classes) needs batches with a "
                             f"'label' entry; this batch has {sorted(batch)}: use a labelled data source")
        return batch["label"]

    def _mapping(self, g_params, g_state, z, labels, psi=1.0) -> Array:
        return self.generator.apply(merge(g_params, g_state), z, labels, psi,
                                    method=StyleGAN2Generator.mapping)

    def _synthesis(self, g_params, g_state, ws, noise_keys) -> Array:
        return self.generator.apply(merge(g_params, g_state), ws, noise_keys,
                                    method=StyleGAN2Generator.synthesis)

    def _d(self, d_params, state, x, labels, keys, stream) -> Array:
        if self.augment:
            x = augment_lib.diff_augment(x, rng_lib.substream(keys, stream), self.augment)
        return self.discriminator.apply(merge(d_params, state.d_state), x, labels).astype(jnp.float32)

    def mixed_ws(self, g_params, g_state, keys, labels) -> tuple[Array, Array]:
        """(ws (B, num_ws, w_dim) with style mixing, w (B, w_dim) of the first latent)."""
        z = rng_lib.normal(rng_lib.substream(keys, _Z), (self.latent_dim,))
        w = self._mapping(g_params, g_state, z, labels)
        n = self.generator.num_ws
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], n, w.shape[1]))
        if self.style_mixing > 0:
            z2 = rng_lib.normal(rng_lib.substream(keys, _MIX_Z), (self.latent_dim,))
            w2 = self._mapping(g_params, g_state, z2, labels)

            def cutoff(k):
                k1, k2 = jax.random.split(k)
                c = jax.random.randint(k1, (), 1, n)
                return jnp.where(jax.random.uniform(k2) < self.style_mixing, c, n)

            cut = jax.vmap(cutoff)(rng_lib.substream(keys, _MIX_CUT))
            ws = jnp.where((jnp.arange(n)[None, :] < cut[:, None])[..., None], ws, w2[:, None])
        return ws, w

    def _fake(self, g_params, g_state, keys, labels) -> tuple[Array, Array]:
        ws, w = self.mixed_ws(g_params, g_state, keys, labels)
        return self._synthesis(g_params, g_state, ws, rng_lib.substream(keys, _NOISE)), w

    def _kernels_once(self, params, net):
        """``params`` with the convolution kernels (rank-4 float32 leaves) cast to ``net``'s compute
        dtype once, behind an optimization barrier, where that dtype is not float32.

        Each kernel is read by many convolutions per loss (the passes of both networks, R1 and path
        length's second derivatives); XLA folds a plain cast back into every one of them, which then
        reads the float32 kernel. On TPU, stylegan2_ffhq64's step at batch 512 (64 a chip, v5e)
        accesses 4.3% fewer bytes this way by XLA's count on steps without lazy terms, 3% fewer on
        average (BENCHMARKS.md); DCGAN, whose kernels are read a few times per cast, accessed 5% more,
        so only this game does it. The values are the ones each convolution's own cast would give;
        the gradient reaches the float32 kernels.
        """
        dtype = jnp.dtype(getattr(net, "dtype", jnp.float32))
        if dtype == jnp.float32:
            return params
        cast = lambda x: x.astype(dtype) if x.ndim == 4 and x.dtype == jnp.float32 else x
        return jax.lax.optimization_barrier(jax.tree.map(cast, params))

    def _global_mean(self, x: Array) -> Array:
        x = jnp.mean(x, axis=0)
        return x if self.axis_name is None else jax.lax.pmean(x, self.axis_name)

    # -- the protocol ----------------------------------------------------------------------------
    def init(self, rng, example_batch):
        g_rng, d_rng = jax.random.split(rng)
        n = example_batch["x"].shape[0]
        labels = self._labels(example_batch)
        z = jnp.zeros((n, self.latent_dim), jnp.float32)
        g_params, g_state = split(self.generator.init(g_rng, z, labels))
        d_params, d_state = split(self.discriminator.init(d_rng, example_batch["x"], labels))
        extra = {"pl_mean": jnp.zeros((), jnp.float32)}
        return dict(g_params=g_params, g_state=g_state, d_params=d_params, d_state=d_state, extra=extra)

    def d_loss(self, d_params, state, batch, keys):
        labels = self._labels(batch)
        d_params = self._kernels_once(d_params, self.discriminator)
        fake, _ = self._fake(self._kernels_once(state.g_params, self.generator), state.g_state, keys, labels)
        fake = jax.lax.stop_gradient(fake)
        real = batch["x"]
        real_logits = gather(self._d(d_params, state, real, labels, keys, _AUG_REAL), self.axis_name)
        fake_logits = gather(self._d(d_params, state, fake, labels, keys, _AUG_FAKE), self.axis_name)
        adv = self.loss.d(real_logits, fake_logits)
        total, metrics = adv, {"loss/d_adv": adv}
        if self.r1_gamma > 0:
            d_apply = lambda p, x: self._d(p, state, x, labels, keys, _AUG_REAL)
            r1 = every(state.step, self.r1_every, lambda: penalties_lib.r1(d_apply, d_params, real))
            total = total + (self.r1_gamma / 2) * self.r1_every * r1
            metrics["penalty/r1"] = r1
        metrics.update({"loss/d": total, "logits/real": jnp.mean(real_logits), "logits/fake": jnp.mean(fake_logits)})
        return total, StepOut({}, metrics)

    def g_loss(self, g_params, state, batch, keys):
        labels = self._labels(batch)
        g_params = self._kernels_once(g_params, self.generator)
        fake, w = self._fake(g_params, state.g_state, keys, labels)
        d_params = self._kernels_once(state.d_params, self.discriminator)
        fake_logits = gather(self._d(d_params, state, fake, labels, keys, _AUG_FAKE), self.axis_name)
        adv = self.loss.g(None, fake_logits)
        total, metrics = adv, {"loss/g_adv": adv}

        w_mean = self._global_mean(jax.lax.stop_gradient(w))
        stats = state.g_state["stats"]
        w_avg = w_mean + self.w_avg_beta * (stats["w_avg"] - w_mean)
        g_state = {**state.g_state, "stats": {**stats, "w_avg": w_avg}}

        pl_mean = state.extra["pl_mean"]
        if self.pl_weight > 0:
            penalty, pl_mean, length = every(state.step, self.pl_every,
                                              lambda: self._path_length(g_params, state, keys, labels),
                                              zeros=(0.0, pl_mean, 0.0))
            total = total + self.pl_weight * self.pl_every * penalty
            metrics.update({"penalty/pl": penalty, "pl/mean": pl_mean, "pl/length": length})
        metrics["loss/g"] = total
        return total, StepOut({"g_state": g_state, "extra": {**state.extra, "pl_mean": pl_mean}}, metrics)

    def _path_length(self, g_params, state, keys, labels) -> tuple[Array, Array, Array]:
        local = keys.shape[0]
        if local % self.pl_batch_shrink:
            raise ValueError(f"path-length regularisation takes every {self.pl_batch_shrink}-th example of "
                             f"the per-device batch {local}: use a per-device batch divisible by "
                             f"{self.pl_batch_shrink} (or set reg.pl_batch_shrink=1)")
        keys = keys[::self.pl_batch_shrink]  # the same global examples on any device count
        labels = None if labels is None else labels[::self.pl_batch_shrink]
        keys = rng_lib.substream(keys, _PL_LATENTS)  # fresh z, mixing and noise (ADA's Greg phase)
        ws, _ = self.mixed_ws(g_params, state.g_state, keys, labels)
        noise = rng_lib.substream(keys, _NOISE)
        synthesis = lambda w: self._synthesis(g_params, state.g_state, w, noise)
        lengths = path_lengths(synthesis, ws, rng_lib.substream(keys, _PL_NOISE))
        return path_length_penalty(lengths, state.extra["pl_mean"], self.pl_decay, self._global_mean)

    def generate(self, g_params, g_state, z, labels=None):
        """Images in [-1, 1] from z with truncation ``self.truncation`` (and ``truncation_cutoff``);
        noise keyed by z itself (or ``noise_mode``)."""
        ws = self.generator.apply(merge(g_params, g_state), z, labels, self.truncation, self.truncation_cutoff,
                                  method=StyleGAN2Generator.mapping_ws)
        keys = noise_keys_from_latents(z) if self.noise_mode == "random" else None
        img = self.generator.apply(merge(g_params, g_state), ws, keys, self.noise_mode,
                                   method=StyleGAN2Generator.synthesis)
        return jnp.clip(img, -1.0, 1.0)

    def generate_mixed(self, g_params, g_state, z_coarse: Array, z_fine: Array, cutoff: int,
                       labels: Array | None = None, psi: float | None = None) -> Array:
        """Style mixing: layers below ``cutoff`` take w(z_coarse), the others w(z_fine).

        Args:
          z_coarse, z_fine: latents (B, latent_dim).
          cutoff: first w index taken from ``z_fine`` (0 to num_ws; small: only fine details kept).
          labels: labels of a conditional game.
          psi: truncation (default: the game's).

        Returns:
          Images (B, H, W, C) in [-1, 1].
        """
        psi = self.truncation if psi is None else psi
        n = self.generator.num_ws
        wa = self._mapping(g_params, g_state, z_coarse, labels, psi)
        wb = self._mapping(g_params, g_state, z_fine, labels, psi)
        ws = jnp.where((jnp.arange(n) < cutoff)[None, :, None], wa[:, None], wb[:, None])
        return jnp.clip(self._synthesis(g_params, g_state, ws, noise_keys_from_latents(z_coarse)), -1.0, 1.0)


# ---------------------------------------------------------------------------------------- from a config

def stylegan2_config_fields() -> dict:
    """The config sections a StyleGAN2 experiment adds to :func:`jaxgan.experiment.base_config`."""
    return dict(
        model={"latent_dim": 512, "w_dim": 512, "mapping_layers": 8, "channel_base": 16384, "channel_max": 512,
               "mbstd_group": 4, "conditional": False, "conv_clamp": 0.0, "d_architecture": "resnet",
               "mapping_lr_mul": 0.01, "d_mapping_layers": 8, "w_avg_beta": 0.995, "const_noise": False,
               "upsample": "auto", "fir": "auto"},
        loss="non_saturating",
        penalty={"r1_gamma": 10.0, "every": 16},
        reg={"pl_weight": 2.0, "pl_every": 4, "pl_decay": 0.01, "pl_batch_shrink": 2, "style_mixing": 0.9},
        augment={"policy": ""},
        optim={"g_lr": 0.0025, "d_lr": 0.0025, "b1": 0.0, "b2": 0.99, "schedule": "constant"},
        train={"ema_half_life_kimg": 10.0, "ema_rampup": 0.05},
        sample={"truncation": 1.0, "truncation_cutoff": 0, "noise_mode": "random"},
        # an NVIDIA StyleGAN2-ADA pickle to start from (G, G_ema, D, W average; fresh optimisers):
        # jaxgan.interop.stylegan2_import, read when the run has no checkpoint yet
        init_from="",
    )


def stylegan2_optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for G and D with StyleGAN2's lazy-regularisation correction of lr and betas (app. B).

    As ADA, G's correction follows its regularisation interval even with path length off (ADA's
    CIFAR-10 config runs G at lr 0.0025 * 4/5 = 0.002, beta2 0.99^(4/5) = 0.99199).
    """
    o, reg = config.optim, config.reg
    g_lr, g_b1, g_b2 = o.g_lr, o.b1, o.b2
    if reg.pl_every > 1:
        g_lr, g_b1, g_b2 = penalties_lib.lazy_adam_hyperparams(g_lr, g_b1, g_b2, reg.pl_every)
    d_lr, d_b1, d_b2 = o.d_lr, o.b1, o.b2
    if config.penalty.r1_gamma > 0 and config.penalty.every > 1:
        d_lr, d_b1, d_b2 = penalties_lib.lazy_adam_hyperparams(d_lr, d_b1, d_b2, config.penalty.every)
    if o.get("schedule", "constant") != "constant":
        raise ValueError(f"StyleGAN2 experiments use a constant learning rate (as the paper); got "
                         f"optim.schedule={o.schedule!r}: set optim.schedule=constant")
    return optax.adam(g_lr, b1=g_b1, b2=g_b2, eps=1e-8), optax.adam(d_lr, b1=d_b1, b2=d_b2, eps=1e-8)


def stylegan2(config, info) -> tuple:
    """(game, g_tx, d_tx) for a StyleGAN2 experiment (``build`` of ``experiments/stylegan2_*.py``)."""
    from jaxgan.precision import compute_dtype

    if info.kind != "image" or len(info.shape) != 3 or info.shape[0] != info.shape[1]:
        raise ValueError(f"StyleGAN2 needs square images (H, W, C); data source {info.name!r} gives "
                         f"{info.kind} of shape {info.shape}: set data.resolution to a power of two")
    m, reg = config.model, config.reg
    sample = config.get("sample", {})
    if sample.get("noise_mode", "random") not in ("random", "const", "none"):
        raise ValueError(f"sample.noise_mode must be random, const or none; got {sample.get('noise_mode')!r}")
    if sample.get("noise_mode") == "const" and not m.get("const_noise"):
        raise ValueError("sample.noise_mode=const needs fixed noise maps (model.const_noise, set by "
                         "`jaxgan import-stylegan2`): use sample.noise_mode=random or none")
    num_classes = None
    if m.get("conditional"):
        if info.num_classes is None:
            raise ValueError(f"model.conditional is set but data source {info.name!r} has no labels")
        num_classes = info.num_classes
    g, d = stylegan2_pair(info.shape[0], info.shape[2], w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                          channel_base=m.channel_base, channel_max=m.channel_max, mbstd_group=m.mbstd_group,
                          num_classes=num_classes, clamp=m.get("conv_clamp") or None,
                          dtype=compute_dtype(config.compute_dtype),
                          d_architecture=m.get("d_architecture", "resnet"),
                          mapping_lr_mul=m.get("mapping_lr_mul", 0.01), d_mapping_layers=m.get("d_mapping_layers", 8),
                          const_noise=bool(m.get("const_noise", False)),
                          upsample=m.get("upsample") or "auto", fir=m.get("fir") or "auto")
    if config.loss != "non_saturating":
        raise ValueError(f"StyleGAN2 uses the non-saturating loss; got loss={config.loss!r}")
    game = StyleGAN2(g, d, latent_dim=m.latent_dim, num_classes=num_classes,
                     r1_gamma=config.penalty.r1_gamma, r1_every=config.penalty.every,
                     pl_weight=reg.pl_weight, pl_every=reg.pl_every, pl_decay=reg.pl_decay,
                     pl_batch_shrink=reg.pl_batch_shrink, style_mixing=reg.style_mixing,
                     augment=augment_lib.parse_policy(config.augment.policy),
                     truncation=float(sample.get("truncation", 1.0)),
                     truncation_cutoff=int(sample.get("truncation_cutoff", 0)) or None,
                     noise_mode=sample.get("noise_mode", "random"), w_avg_beta=float(m.get("w_avg_beta", 0.995)))
    return (game, *stylegan2_optimizers(config))
