"""CycleGAN (Zhu et al. 2017) between MNIST digits and thick, colour-inverted MNIST digits, unpaired.

Command:  jaxgan train cyclegan_mnist --workdir runs/cyclegan_mnist
          jaxgan translate runs/cyclegan_mnist --input digits.npy --direction a2b --out thick.npy
Machine:  CPU (2 cores) for the default length; any accelerator.
Time:     1,500 steps of 8: 15.6 minutes wall on the 2-core CPU while the test suite ran beside
          it (1.9-2.6 steps/s), evaluation (training the digit classifier) included.
Expected: eval.json (measured once, step 1,500): translation1k/a2b_accuracy 0.964 and b2a_accuracy
          0.975 (how often jaxgan's digit classifier, reading the translation in domain A's look,
          finds the source digit's class; 0.994 on real A digits, 0.954 on real B digits inverted back,
          0.183 on B digits left untranslated), cycle1k/a_l1 0.042 and b_l1 0.040 (mean absolute
          cycle-reconstruction error, pixels in [-1, 1]; 0.28 in the batch at step 50).

Domains: A is the even-indexed half of MNIST's 10,000 test digits, B the odd-indexed half, thickened
(3x3 cross dilation) and colour-inverted (black digits on white). The halves are disjoint, so no A
image has a counterpart in B: the pairing must be learnt from the two distributions. Networks: the
ResNet generator (reflection padding, instance norm; ngf 16, 4 residual blocks at 7x7) and a
two-layer PatchGAN (34x34 receptive field covers the whole 28x28 digit), least squares, cycle
lambda 10, identity 0.5 lambda, a pool of 50 past fakes, Adam(2e-4, 0.5) held for half the run then
decayed linearly to 0. ``eval.b_view = 'invert'`` tells the evaluation how to show a B image to the
digit classifier (trained on domain A's digits).

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository.
"""
from jaxgan.experiment import base_config, mnist_data


CUSTOM_FIELDS = {"optim.schedule"}  # 'linear_decay' (CycleGAN's) is checked by validate() below


def get_config(smoke: bool = False):
    mnist = mnist_data()
    config = base_config(
        data={**mnist, "part": [0, 2]},
        data_b={**mnist, "part": [1, 2], "transform": ["thicken", "invert"]},
        model={"ngf": 16, "n_blocks": 4, "ndf": 32, "d_layers": 2,
               "lambda_cycle": 10.0, "lambda_identity": 0.5, "pool_size": 50},
        loss="least_squares",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.5, "b2": 0.999, "schedule": "linear_decay",
               "decay_start": 0.5},
        train={"batch_size": 8, "total_kimg": 12.0, "ema_half_life_kimg": 0.0},  # 1,500 steps
        log_every_steps=50, sample_every_steps=250, checkpoint_every_steps=250,
        num_grid_samples=32, compute_dtype="float32",
        eval={"num_samples": 1000, "b_view": "invert"},
    )
    if smoke:
        config.model.update(ngf=8, n_blocks=1, ndf=8, pool_size=4)
        config.train.update(batch_size=4, total_kimg=0.024)  # 6 steps
        config.update(log_every_steps=1, sample_every_steps=3, checkpoint_every_steps=3, num_grid_samples=8)
        config.eval.update(num_samples=64, classifier_steps=20)
    return config


def validate(config):
    from jaxgan.errors import ConfigError

    if config.optim.schedule not in ("linear_decay", "constant"):
        raise ConfigError("optim.schedule", config.optim.schedule, "must be 'linear_decay' or 'constant'")
    if not 0.0 <= config.optim.decay_start <= 1.0:
        raise ConfigError("optim.decay_start", config.optim.decay_start, "must be a fraction in [0, 1]")


def build(config, info):
    """(CycleGAN game, g_tx, d_tx) from ``config.model`` / ``config.optim``."""
    import optax

    from jaxgan.experiment import total_steps
    from jaxgan.games.cyclegan import CycleGAN, cyclegan_least_squares, linear_decay
    from jaxgan.losses import BY_NAME
    from jaxgan.nets.cyclegan import PatchDiscriminator, ResnetGenerator
    from jaxgan.precision import compute_dtype

    if info.kind != "image":
        raise ValueError(f"CycleGAN translates images; data source {info.name!r} gives {info.kind}")
    m, o, dtype = config.model, config.optim, compute_dtype(config.compute_dtype)
    channels = info.shape[-1]
    gen = lambda: ResnetGenerator(channels, ngf=m.ngf, n_blocks=m.n_blocks, dtype=dtype)
    disc = lambda: PatchDiscriminator(ndf=m.ndf, n_layers=m.d_layers, dtype=dtype)
    loss = cyclegan_least_squares() if config.loss == "least_squares" else BY_NAME[config.loss]()
    game = CycleGAN(gen(), gen(), disc(), disc(), lambda_cycle=m.lambda_cycle,
                    lambda_identity=m.lambda_identity, pool_size=m.pool_size, loss=loss)
    steps = total_steps(config)
    lr = lambda base: linear_decay(base, steps, o.decay_start) if o.schedule == "linear_decay" else base
    g_tx = optax.adam(lr(o.g_lr), b1=o.b1, b2=o.b2)
    d_tx = optax.adam(lr(o.d_lr), b1=o.b1, b2=o.b2)
    return game, g_tx, d_tx
