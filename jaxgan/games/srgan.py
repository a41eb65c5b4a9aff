"""SRGAN (Ledig et al. 2017): super-resolution as a game; SRResNet is the same game without D.

The batch carries the high-resolution target ``x`` and its downsampled input ``lr``
(:class:`jaxgan.data.pairs.SuperResolutionSource`). With ``G(lr) = sr``::

    L_D = -E log D(x) - E log(1 - D(sr))                              (non-saturating, as the paper)
    L_G = pixel(sr, x) + adv_weight * (-E log D(sr)) + feature_weight * |phi(sr) - phi(x)|^2

``pixel`` is the MSE or the L1 distance, ``adv_weight`` 1e-3 as in the paper, and ``phi`` an
optional feature map (the paper's VGG19 features; here a network jaxgan already has, e.g. the
digit classifier's 128 features, :func:`digit_features`). ``adv_weight = 0`` is SRResNet, the
pixel-loss-only generator: the discriminator is then not evaluated at all (its loss is a constant
0, so Adam leaves it where it is). ``generate`` takes the low-resolution image where a GAN takes z.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import losses as losses_lib
from jaxgan.game import StepOut, gather, global_mean
from jaxgan.net import Net, as_net, merge, split
from jaxgan.sharding import DATA_AXIS

Array = jax.Array
PIXEL_LOSSES = ("mse", "l1")


@dataclasses.dataclass(frozen=True)
class SRGAN:
    """The SRGAN game (see the module docstring).

    Attributes:
      generator: low-res image -> high-res image (e.g. :class:`jaxgan.nets.srgan.SRResNet`).
      discriminator: high-res image -> logits (B,) (e.g. :class:`jaxgan.nets.srgan.VGGDiscriminator`).
      pixel_loss: ``'mse'`` or ``'l1'``.
      adv_weight: weight of the adversarial term (1e-3 in the paper; 0 trains SRResNet).
      feature_weight: weight of the feature (perceptual) term; needs ``features``.
      features: a pure function images -> features (constants closed over), or None.
      loss: the adversarial loss (non-saturating, as the paper).
      axis_name: the data axis of the step.
    """

    generator: Net | nn.Module
    discriminator: Net | nn.Module
    pixel_loss: str = "mse"
    adv_weight: float = 1e-3
    feature_weight: float = 0.0
    features: Callable[[Array], Array] | None = None
    loss: losses_lib.Loss = dataclasses.field(default_factory=losses_lib.non_saturating)
    axis_name: str | None = DATA_AXIS
    latent_dim: int = 0
    num_classes: int | None = None

    def __post_init__(self):
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss {self.pixel_loss!r}: use one of {PIXEL_LOSSES}")
        if self.feature_weight and self.features is None:
            raise ValueError("feature_weight > 0 needs a features function (e.g. jaxgan.games.srgan."
                             "digit_features(classifier)); or set feature_weight to 0")

    @property
    def g(self) -> Net:
        return as_net(self.generator)

    @property
    def d(self) -> Net:
        return as_net(self.discriminator)

    def init(self, rng, example_batch):
        lr, hr = _pair(example_batch)
        g_rng, d_rng = jax.random.split(rng)
        g_params, g_state = split(self.g.init(g_rng, lr, None))
        d_params, d_state = split(self.d.init(d_rng, hr, None))
        return dict(g_params=g_params, g_state=g_state, d_params=d_params, d_state=d_state, extra=None)

    def d_loss(self, d_params, state, batch, keys):
        del keys
        if not self.adv_weight:  # SRResNet: nothing to learn for D, and nothing computed
            return jnp.zeros((), jnp.float32), StepOut({}, {"loss/d": jnp.zeros((), jnp.float32)})
        lr, hr = _pair(batch)
        sr, _ = self.g.apply(merge(state.g_params, state.g_state), lr, None, train=True)
        sr = jax.lax.stop_gradient(sr)
        real, d_state = self.d.apply(merge(d_params, state.d_state), hr, None, train=True)
        fake, d_state = self.d.apply(merge(d_params, d_state), sr, None, train=True)
        real_all, fake_all = gather(real, self.axis_name), gather(fake, self.axis_name)
        loss = self.loss.d(real_all, fake_all)
        return loss, StepOut({"d_state": d_state}, {"loss/d": loss, "logits/real": jnp.mean(real_all),
                                                    "logits/fake": jnp.mean(fake_all)})

    def g_loss(self, g_params, state, batch, keys):
        del keys
        lr, hr = _pair(batch)
        sr, g_state = self.g.apply(merge(g_params, state.g_state), lr, None, train=True)
        diff = sr.astype(jnp.float32) - hr.astype(jnp.float32)
        pixel = global_mean(diff ** 2 if self.pixel_loss == "mse" else jnp.abs(diff), self.axis_name)
        total, metrics = pixel, {f"loss/pixel_{self.pixel_loss}": pixel}
        if self.adv_weight:
            fake, _ = self.d.apply(merge(state.d_params, state.d_state), sr, None, train=True)
            adv = self.loss.g(None, gather(fake, self.axis_name))
            total = total + self.adv_weight * adv
            metrics["loss/g_adv"] = adv
        if self.feature_weight:
            feat = global_mean((self.features(sr) - jax.lax.stop_gradient(self.features(hr))) ** 2, self.axis_name)
            total = total + self.feature_weight * feat
            metrics["loss/feature"] = feat
        metrics["loss/g"] = total
        return total, StepOut({"g_state": g_state}, metrics)

    def generate(self, g_params, g_state, z, labels=None):
        """``z`` are low-resolution images: their upscaled versions (inference mode, not clipped)."""
        del labels
        return self.g.apply(merge(g_params, g_state), z, None, train=False)[0]

    def sample_inputs(self, source, n: int, seed: int):
        """Fixed low-resolution inputs for sample grids."""
        return jnp.asarray(source.get_batch(seed % 997 * n, n)["lr"]), None

    def sample_image(self, inputs, outputs) -> np.ndarray:
        """Rows of low-resolution inputs (nearest-neighbour enlarged) above the generator's outputs."""
        from jaxgan.games.cyclegan import pair_grid

        inputs, outputs = np.asarray(inputs), np.clip(np.asarray(outputs), -1, 1)
        r = outputs.shape[1] // inputs.shape[1]
        return pair_grid([inputs.repeat(r, axis=1).repeat(r, axis=2), outputs])

    def evaluate(self, run, state) -> dict[str, Any]:
        return evaluate_super_resolution(run, state)


def _pair(batch: dict) -> tuple[Array, Array]:
    if "lr" not in batch:
        raise ValueError(f"SRGAN needs batches with 'x' (high-res) and 'lr' (low-res), got {sorted(batch)}: "
                         "set data.sr_factor (e.g. --set data.sr_factor=4)")
    return batch["lr"], batch["x"]


def digit_features(classifier) -> Callable[[Array], Array]:
    """The digit classifier's 128 ReLU features as a pure function of 28x28x1 images in [-1, 1].

    Args:
      classifier: a :class:`jaxgan.eval.classifier.DigitClassifier` (its parameters become constants).
    """
    module, params = classifier.module, jax.tree.map(jnp.asarray, classifier.params)
    return lambda x: module.apply({"params": params}, x.astype(jnp.float32))[1]


def super_resolve(run, state, lr: np.ndarray, chunk: int = 500) -> np.ndarray:
    """The run's generator (its EMA where there is one) on low-resolution images, clipped to [-1, 1]."""
    from jaxgan.run import generate

    return np.clip(generate(run, state, jnp.asarray(lr), None, chunk=chunk), -1.0, 1.0)


def evaluate_super_resolution(run, state) -> dict[str, Any]:
    """PSNR (dB) and SSIM of the generator and of bicubic upsampling against the high-res images.

    Images: the first ``eval.num_samples`` of ``eval.data`` (a data spec with ``sr_factor``, e.g. a
    held-out part of the data) or else of the run's own source stream, in [-1, 1] (data range 2),
    outputs clipped to [-1, 1], whole images (no border crop). Names: ``psnr{n}/sr``,
    ``psnr{n}/bicubic``, ``ssim{n}/sr``, ``ssim{n}/bicubic``.
    """
    from jaxgan.data.pairs import resize_bicubic
    from jaxgan.eval.ssim import psnr, ssim
    from jaxgan.evaluate import protocol_prefix

    from jaxgan.data import make_source

    source = run.source
    if run.config.eval.get("data"):
        source = make_source(run.config.eval.data, seed=run.config.seed)
        if not hasattr(source, "lr_shape"):
            raise ValueError("eval.data must give low/high-resolution pairs: add 'sr_factor' to it")
    n = int(run.config.eval.num_samples)
    total = source.info.num_examples
    n = min(n, total) if total else n
    batch = source.get_batch(0, n)
    hr, lr = batch["x"], batch["lr"]
    sr = super_resolve(run, state, lr)
    bicubic = np.clip(resize_bicubic(lr, *hr.shape[1:3]), -1.0, 1.0)
    window = min(11, (min(hr.shape[1:3]) - 1) // 2 * 2 + 1)
    p, s = protocol_prefix("psnr", n), protocol_prefix("ssim", n)
    return {f"{p}/sr": float(np.mean(psnr(sr, hr))), f"{p}/bicubic": float(np.mean(psnr(bicubic, hr))),
            f"{s}/sr": float(np.mean(ssim(sr, hr, window=window))),
            f"{s}/bicubic": float(np.mean(ssim(bicubic, hr, window=window)))}
