"""SNGAN (Miyato et al. 2018) on CIFAR-10 with the paper's ResNet networks, hinge loss (for a GPU).

Command:  pip install 'jaxgan[tfds]' && jaxgan train sngan_cifar10 --workdir runs/sngan_cifar10 \
            --set data.download=true
Machine:  one GPU (or a TPU slice); not a CPU job. Offline smoke test: --smoke (MNIST digits as
          32x32 RGB from ../shared/data/mnist, tiny networks, 3 steps).
Time:     not measured here (no GPU in the session that wrote it). The paper's length is 50,000
          generator steps of batch 64 with 5 critic updates each (16,000 kimg).
Expected: the paper reports Inception score 8.22 and FID 21.7 for this unconditional ResNet
          (Miyato et al. 2018, table 2); compute FID with --set eval.inception_weights=... (a file from
          tools/convert_fid_inception.py). Not reproduced here.

Networks: generator width 256 (4,276,739 parameters), discriminator width 128 (1,053,825), every D
weight spectrally normalised (power-iteration vectors in the 'spectral' state collection). Adam(lr
2e-4, beta1 0, beta2 0.9) for both as in the paper; the authors' code also decays the learning
rate linearly to 0, for which --set optim.schedule=cosine is the nearest option here.
``--set model.conditional=true`` gives the projection-discriminator cGAN (Miyato & Koyama 2018).
"""
from jaxgan.experiment import base_config, mnist_data, sngan


def get_config(smoke: bool = False):
    config = base_config(
        data={"name": "tfds", "dataset": "cifar10", "split": "train"},
        model={"latent_dim": 128, "g_width": 256, "d_width": 128, "conditional": False},
        loss="hinge",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.0, "b2": 0.9},
        train={"batch_size": 64, "n_critic": 5, "total_kimg": 16000.0},  # 50,000 generator steps
        log_every_steps=500, sample_every_steps=5000, checkpoint_every_steps=5000,
        num_grid_samples=64,
        eval={"num_samples": 10000, "every_kimg": 1600.0},
    )
    if smoke:  # offline: real MNIST digits as 32x32 RGB stand in for CIFAR-10
        config.data = type(config.data)(mnist_data(resolution=32, channels=3))
        config.model.update(latent_dim=16, g_width=8, d_width=8)
        config.train.update(batch_size=16, total_kimg=0.24)  # 3 steps of 5 critic updates
        config.update(log_every_steps=1, sample_every_steps=3, checkpoint_every_steps=3,
                      num_grid_samples=16)
        config.eval.update(num_samples=256, every_kimg=0.0)
    return config


build = sngan
