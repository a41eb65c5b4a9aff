"""StyleGAN2 on CIFAR-10 (32x32 RGB) with StyleGAN2-ADA's CIFAR-10 settings (for a GPU or TPU).

Command:  pip install 'jaxgan[tfds]' && jaxgan train stylegan2_cifar10 --workdir runs/stylegan2_cifar10 \
            --set data.download=true   [--set model.conditional=true] [--set augment.policy=flip,translation,cutout]
Machine:  one GPU or a TPU slice; not a CPU job. Offline smoke test: --smoke (MNIST digits as 16x16
          RGB from ../shared/data/mnist, tiny networks, 4 steps).
Time:     not measured here (no accelerator run in the session that wrote it). ADA's CIFAR-10 length
          is 100,000 kimg at batch 64; set train.total_kimg to what the budget allows.
Expected: not reproduced here. StyleGAN2-ADA (Karras et al. 2020, table 2) reports FID about 11 for
          StyleGAN2 on CIFAR-10 without augmentation (unconditional) and 2.9 with ADA, conditional;
          compute FID with --set eval.inception_weights=... (tools/convert_fid_inception.py).

Settings from ADA's ``cifar`` config: batch 64, Adam(0.0025, 0, 0.99), R1 gamma 0.01 every 16,
2 mapping layers, feature maps min(32768 / res, 512) (512 everywhere at 32x32), minibatch-stddev
group 32, EMA half-life 500 kimg with ramp-up 0.05, no path-length regularisation and no style
mixing (both off in ADA's CIFAR config), and ADA's 'orig' (non-residual) discriminator. As in ADA,
G's Adam still takes the lazy-regularisation correction of its interval 4 (lr 0.002, beta2 0.99199).
"""
from jaxgan.experiment import base_config, mnist_data
from jaxgan.games.stylegan2 import stylegan2, stylegan2_config_fields


def get_config(smoke: bool = False):
    config = base_config(**stylegan2_config_fields())
    config.update(data={"name": "tfds", "dataset": "cifar10", "split": "train"},
                  log_every_steps=500, sample_every_steps=5000, checkpoint_every_steps=5000, num_grid_samples=64)
    config.model.update(latent_dim=512, w_dim=512, mapping_layers=2, channel_base=32768, channel_max=512,
                        mbstd_group=32, d_architecture="orig")
    config.penalty.update(r1_gamma=0.01, every=16)
    config.reg.update(pl_weight=0.0, style_mixing=0.0)
    config.train.update(batch_size=64, total_kimg=100000.0, ema_half_life_kimg=500.0, ema_rampup=0.05)
    config.eval.update(num_samples=10000, every_kimg=2000.0)
    if smoke:  # offline: real MNIST digits as 16x16 RGB stand in for CIFAR-10
        config.data = type(config.data)(mnist_data(resolution=16, channels=3))
        config.model.update(latent_dim=16, w_dim=16, channel_base=128, channel_max=8, mbstd_group=4)
        config.augment.update(policy="flip,translation,cutout")
        config.train.update(batch_size=8, total_kimg=0.032, ema_half_life_kimg=0.01)  # 4 steps
        config.penalty.update(every=2)
        config.update(log_every_steps=1, sample_every_steps=4, checkpoint_every_steps=4, num_grid_samples=16)
        config.eval.update(num_samples=64, every_kimg=0.0)
    return config


build = stylegan2
