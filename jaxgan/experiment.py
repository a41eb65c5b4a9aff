"""The pieces most experiment files share: default fields, and a standard GAN from a config.

Durations are counted in images (kimg = thousands of real images shown to the discriminator, as in
StyleGAN2-ADA); :func:`images_per_step` and :func:`total_steps` are the one place that converts.
"""
from __future__ import annotations

import math
import os
import pathlib

import optax

from jaxgan import game as game_lib, losses, penalties
from jaxgan.config import Config


def base_config(**fields) -> Config:
    """The fields every experiment has, updated with ``fields`` (nested dicts merge one level)."""
    config = Config(
        seed=0,
        compute_dtype="auto",  # 'auto': bfloat16 on GPU/TPU, float32 on CPU
        data={},
        model={"latent_dim": 64},
        loss="non_saturating",
        penalty={"r1_gamma": 0.0, "r2_gamma": 0.0, "gp_weight": 0.0, "every": 1},
        # schedule: 'constant' or 'cosine' (decays to final_lr_fraction * lr over the whole run)
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.5, "b2": 0.999, "schedule": "constant",
               "final_lr_fraction": 0.05},
        # share_generator_pass: one G forward pass serves the D and the G update (n_critic 1 only;
        # see jaxgan.step.TrainStep), saving a G forward per step.
        train={"batch_size": 64, "n_critic": 1, "total_kimg": 100.0, "ema_half_life_kimg": 0.0,
               "ema_rampup": 0.0, "share_generator_pass": False},
        log_every_steps=100,
        sample_every_steps=1000,
        checkpoint_every_steps=1000,
        keep_checkpoints=3,
        num_grid_samples=64,
        # threads building batches ahead of the step (0: one per core for data decoded per batch, an
        # image folder or TFDS; else 1). Changes timing only: the stream is the same for any value.
        input_workers=0,
        # worker processes decoding an image folder's batches (0: in the threads above; part of
        # decoding holds Python's GIL, so on many cores processes decode more). Timing only, as above.
        input_processes=0,
        # train steps whose batches cross to the devices in one transfer (0: several where batches are
        # small, up to 4 MiB a transfer, else one; see jaxgan.pipeline.steps_per_transfer). Timing only.
        input_steps_per_transfer=0,
        # every_kimg: evaluate during training (0: only at the end); best_metric: keep the checkpoint
        # with the best value of this eval metric in <workdir>/best (e.g. 'modes10k/covered').
        # inception_weights: a .npz from tools/convert_fid_inception.py turns on fid/kid/pr/dc;
        # classifier_steps: training steps of the digit classifier (MNIST-family runs); at_end: false
        # skips the evaluation when the run completes (a run evaluated elsewhere, with jaxgan eval).
        eval={"num_samples": 10000, "every_kimg": 0.0, "best_metric": "", "best_mode": "max",
              "inception_weights": "", "classifier_steps": 1500, "at_end": True},
    )
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = Config(value) if isinstance(value, dict) else value
    return config


def mnist_dir() -> str:
    """Where the MNIST experiments read the gzipped IDX files: ``$JAXGAN_MNIST_DIR``, else
    ``../shared/data/mnist`` beside the checkout that holds this package (the same folder whether the
    experiment is loaded from experiments/ or from a workdir's copy)."""
    return os.environ.get("JAXGAN_MNIST_DIR") or str(pathlib.Path(__file__).resolve().parents[2] / "shared"
                                                      / "data" / "mnist")


def mnist_data(**fields) -> dict:
    """The ``data`` field of an MNIST experiment: the 10,000-image test split in :func:`mnist_dir`
    (what ../shared/data holds), updated with ``fields`` (e.g. ``resolution=32``)."""
    return {"name": "mnist_idx", "dir": mnist_dir(), "split": "test", **fields}


def images_per_step(config: Config) -> int:
    """Real images one train step shows the discriminator: batch size x critic updates."""
    return config.train.batch_size * config.train.n_critic


def total_steps(config: Config) -> int:
    """Steps needed to show ``train.total_kimg`` thousand images (rounded up)."""
    return kimg_to_steps(config, config.train.total_kimg)


def kimg_to_steps(config: Config, kimg: float) -> int:
    """Steps that show ``kimg`` thousand images (rounded up, at least 1); 0 kimg -> 0 steps."""
    if kimg <= 0:
        return 0
    return max(1, math.ceil(kimg * 1000 / images_per_step(config)))


def build_penalties(config: Config) -> tuple[penalties.Penalty, ...]:
    p, every = config.penalty, config.penalty.every
    terms = []
    if p.r1_gamma:
        terms.append(penalties.r1_penalty(p.r1_gamma, every))
    if p.r2_gamma:
        terms.append(penalties.r2_penalty(p.r2_gamma, every))
    if p.gp_weight:
        terms.append(penalties.wgan_gp_penalty(p.gp_weight, every))
    return tuple(terms)


def build_loss(config: Config) -> losses.Loss:
    if config.loss not in losses.BY_NAME:
        raise ValueError(f"unknown loss {config.loss!r}: use one of {', '.join(sorted(losses.BY_NAME))}, "
                         "or build a jaxgan.losses.Loss in the experiment's build()")
    return losses.BY_NAME[config.loss]()


def build_optimizers(config: Config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for G and D (two learning rates); D's corrected for lazy penalties (StyleGAN2)."""
    o = config.optim
    d_lr, d_b1, d_b2 = o.d_lr, o.b1, o.b2
    if build_penalties(config) and config.penalty.every > 1:
        d_lr, d_b1, d_b2 = penalties.lazy_adam_hyperparams(d_lr, d_b1, d_b2, config.penalty.every)
    g_tx = optax.adam(_schedule(config, o.g_lr), b1=o.b1, b2=o.b2)
    d_tx = optax.adam(_schedule(config, d_lr, per_step=config.train.n_critic), b1=d_b1, b2=d_b2)
    return g_tx, d_tx


def _schedule(config: Config, lr: float, per_step: int = 1):
    """A learning rate or schedule over the run's optimiser updates (``per_step`` per train step)."""
    kind = config.optim.schedule
    if kind == "constant":
        return lr
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, total_steps(config) * per_step, config.optim.final_lr_fraction)
    raise ValueError(f"unknown optim.schedule {kind!r}: use 'constant' or 'cosine'")


def standard_gan(config: Config, generator, discriminator, num_classes: int | None = None):
    """(game, g_tx, d_tx) for the usual one-G one-D game described by ``config``."""
    game = game_lib.GAN(generator, discriminator, latent_dim=config.model.latent_dim,
                        loss=build_loss(config), penalties=build_penalties(config),
                        num_classes=num_classes)
    return (game, *build_optimizers(config))


def mlp_gan(config: Config, info) -> tuple:
    """An MLP generator and discriminator for flat or 2-D data (the vanilla GAN), from ``config.model``."""
    from jaxgan.nets import MLPDiscriminator, MLPGenerator
    from jaxgan.precision import compute_dtype

    m, dtype = config.model, compute_dtype(config.compute_dtype)
    num_classes = _conditional_classes(config, info)
    g = MLPGenerator(out_shape=info.shape, hidden=m.hidden, depth=m.depth, dtype=dtype,
                     num_classes=num_classes)
    d = MLPDiscriminator(hidden=m.hidden, depth=m.depth, dtype=dtype, num_classes=num_classes)
    return standard_gan(config, g, d, num_classes=num_classes)


def _conditional_classes(config: Config, info) -> int | None:
    """The number of classes when ``model.conditional`` is set (the data must have labels), else None."""
    if not config.model.get("conditional"):
        return None
    if info.num_classes is None:
        raise ValueError(f"model.conditional is set but data source {info.name!r} has no labels")
    return info.num_classes


def dcgan(config: Config, info) -> tuple:
    """A DCGAN pair (conditional when the data has labels and ``config.model.conditional``)."""
    from jaxgan.nets import DCGANDiscriminator, DCGANGenerator
    from jaxgan.precision import compute_dtype

    m, dtype = config.model, compute_dtype(config.compute_dtype)
    num_classes = _conditional_classes(config, info)
    if info.kind != "image" or len(info.shape) != 3:
        raise ValueError(f"DCGAN needs image data (H, W, C); data source {info.name!r} gives {info.kind} "
                         f"of shape {info.shape}: use an MLP GAN (jaxgan.experiment.mlp_gan) for it")
    height, width, channels = info.shape
    if height != width:
        raise ValueError(f"DCGAN needs square images, the data is {height}x{width}: set data.resolution")
    g = DCGANGenerator(height, channels, ngf=m.ngf, num_classes=num_classes, dtype=dtype,
                       upsample=m.get("upsample", "auto"))
    d = DCGANDiscriminator(height, ndf=m.ndf, num_classes=num_classes, dtype=dtype)
    return standard_gan(config, g, d, num_classes=num_classes)


def sngan(config: Config, info) -> tuple:
    """The SNGAN ResNet pair (Miyato et al. 2018): spectrally normalised D, BatchNorm G.

    Sized by ``config.model.g_width`` and ``d_width`` (256 and 128 in the paper's CIFAR-10 networks);
    conditional (conditional BatchNorm in G, projection D: Miyato & Koyama 2018) when the data has
    labels and ``config.model.conditional`` is set. The data must be square images with a
    power-of-two side >= 8 (``data.resolution``).
    """
    from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator
    from jaxgan.precision import compute_dtype

    m, dtype = config.model, compute_dtype(config.compute_dtype)
    num_classes = _conditional_classes(config, info)
    if info.kind != "image" or len(info.shape) != 3 or info.shape[0] != info.shape[1]:
        raise ValueError(f"the SNGAN ResNet needs square image data (H, H, C); data source {info.name!r} "
                         f"gives {info.kind} of shape {info.shape}: set data.resolution (e.g. 32)")
    resolution, _, channels = info.shape
    g = ResNetGenerator(resolution, channels, width=m.g_width, num_classes=num_classes, dtype=dtype)
    d = ResNetDiscriminator(width=m.d_width, num_classes=num_classes, dtype=dtype)
    return standard_gan(config, g, d, num_classes=num_classes)
