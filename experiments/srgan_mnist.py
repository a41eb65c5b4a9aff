"""SRGAN (Ledig et al. 2017) on MNIST: 7x7 -> 28x28 (4x), and SRResNet from the same file.

Command:  jaxgan train srgan_mnist --workdir runs/srgan_mnist
          jaxgan train srgan_mnist --workdir runs/srresnet_mnist --set model.adv_weight=0   (SRResNet)
          jaxgan upscale runs/srgan_mnist --input small.npy --out large.npy
Machine:  CPU (2 cores) for the default length; any accelerator.
Time:     600 steps of 32 on the 2-core CPU with the test suite running beside it: SRGAN 5.7 minutes,
          SRResNet 1.8 minutes (its discriminator is skipped), compilation and evaluation included.
Expected: eval.json on 1,000 held-out digits (measured once, step 600): SRGAN psnr1k/sr 18.02 dB,
          ssim1k/sr 0.661; SRResNet 18.25 dB, 0.685; bicubic upsampling 14.45 dB, 0.380.
          tools/sr_figure.py draws inputs, bicubic and both runs' outputs (docs/results.md).

Data: the even-indexed half of MNIST's 10,000 test digits trains (``data.part = [0, 2]``); the
odd-indexed half, never seen in training, is evaluated (``eval.data``). Low-resolution inputs are the
digits downsampled 4x with an antialiased bicubic filter (``data.sr_factor``). Networks: SRResNet
with 32 filters and 6 residual blocks, two pixel-shuffle 2x stages; a VGG-style discriminator (ndf
32, 3 stride-2 stages); MSE pixel loss + 1e-3 x the non-saturating adversarial loss (the paper's
weight), Adam(beta1 0.9) at 3e-4 for G and 1e-4 for D (the paper: 1e-4; a short CPU run needs
the larger step), 600 steps of 32. ``model.feature_weight > 0`` adds a feature loss on jaxgan's
digit classifier's 128 features (the paper uses VGG19's).

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository.
"""
from jaxgan.experiment import base_config, build_optimizers, mnist_data


def get_config(smoke: bool = False):
    mnist = mnist_data(sr_factor=4)
    config = base_config(
        data={**mnist, "part": [0, 2]},
        model={"features": 32, "n_blocks": 6, "ndf": 32, "d_stages": 3, "pixel_loss": "mse",
               "adv_weight": 1e-3, "feature_weight": 0.0},
        loss="non_saturating",
        optim={"g_lr": 3e-4, "d_lr": 1e-4, "b1": 0.9, "b2": 0.999},
        train={"batch_size": 32, "total_kimg": 19.2, "ema_half_life_kimg": 0.0},  # 600 steps
        log_every_steps=50, sample_every_steps=200, checkpoint_every_steps=200,
        num_grid_samples=32, compute_dtype="float32",
        eval={"num_samples": 1000, "data": {**mnist, "part": [1, 2]}},
    )
    if smoke:
        config.model.update(features=8, n_blocks=2, ndf=8, d_stages=2)
        config.train.update(batch_size=8, total_kimg=0.048)  # 6 steps
        config.update(log_every_steps=1, sample_every_steps=3, checkpoint_every_steps=3, num_grid_samples=8)
        config.eval.update(num_samples=64)
    return config


def validate(config):
    from jaxgan.errors import ConfigError

    m = config.model
    if m.pixel_loss not in ("mse", "l1"):
        raise ConfigError("model.pixel_loss", m.pixel_loss, "must be 'mse' or 'l1'")
    for name in ("adv_weight", "feature_weight"):
        if m[name] < 0:
            raise ConfigError(f"model.{name}", m[name], "must be >= 0 (0 turns the term off)")
    if not config.data.get("sr_factor"):
        raise ConfigError("data.sr_factor", config.data.get("sr_factor"), "must be set (2 or 4)")


def build(config, info):
    """(SRGAN game, g_tx, d_tx) from ``config.model`` (``adv_weight = 0``: SRResNet)."""
    from jaxgan.games.srgan import SRGAN, digit_features
    from jaxgan.losses import BY_NAME
    from jaxgan.nets.srgan import SRResNet, VGGDiscriminator

    if info.kind != "image":
        raise ValueError(f"SRGAN upscales images; data source {info.name!r} gives {info.kind}")
    m = config.model
    g = SRResNet(info.shape[-1], factor=int(config.data.sr_factor), features=m.features, n_blocks=m.n_blocks)
    d = VGGDiscriminator(ndf=m.ndf, n_stages=m.d_stages)
    features = None
    if m.feature_weight:
        features = digit_features(_classifier(config))
    game = SRGAN(g, d, pixel_loss=m.pixel_loss, adv_weight=m.adv_weight, feature_weight=m.feature_weight,
                 features=features, loss=BY_NAME[config.loss]())
    return (game, *build_optimizers(config))


def _classifier(config):
    """jaxgan's digit classifier trained on the run's high-resolution digits (cached)."""
    from jaxgan.data import make_run_source
    from jaxgan.eval import classifier
    from jaxgan.evaluate import cache_dir

    source = make_run_source(config)
    if source.info.shape != (28, 28, 1) or not source.info.has_labels:
        raise ValueError("model.feature_weight uses the digit classifier: it needs labelled 28x28 grey digits")
    data = source.get_batch(0, source.info.num_examples)
    steps = int(config.eval.get("classifier_steps", 1500))
    digest = classifier.data_sha256(data["x"], data["label"])[:16]
    return classifier.get_or_train(cache_dir() / f"digit_classifier_{digest}_{steps}.npz", data["x"],
                                   data["label"], steps=steps)
