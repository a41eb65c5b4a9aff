"""DCGAN on Stacked MNIST: three MNIST digits as the channels of one image, 1,000 modes.

Command:  jaxgan train dcgan_stacked_mnist --workdir runs/dcgan_stacked_mnist
Machine:  a GPU advised (3-channel images and a 26,000-sample evaluation; not timed on a CPU).
Time:     not measured yet; a GPU is advised (3-channel images, 26,000-sample evaluation).
Expected: stacked_mnist26k/modes (of 1,000) and /kl_to_uniform in eval.json, counted with the digit
          classifier per channel (not yet measured here: no long run was made).

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""
import os
import pathlib

from jaxgan.experiment import base_config, dcgan

MNIST_DIR = os.environ.get("JAXGAN_MNIST_DIR",
                           str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


def get_config(smoke: bool = False):
    config = base_config(
        data={"name": "stacked_mnist", "dir": MNIST_DIR, "split": "test"},
        model={"latent_dim": 100, "ngf": 32, "ndf": 32, "conditional": False},
        loss="non_saturating",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.5, "b2": 0.999},
        train={"batch_size": 64, "total_kimg": 192.0, "ema_half_life_kimg": 0.0},  # 3,000 steps
        log_every_steps=100, sample_every_steps=500, checkpoint_every_steps=500,
        num_grid_samples=64,
        eval={"num_samples": 26000},  # the VEEGAN / PacGAN protocol
    )
    if smoke:
        config.model.update(latent_dim=16, ngf=8, ndf=8)
        config.train.update(batch_size=16, total_kimg=0.08)  # 5 steps
        config.update(log_every_steps=1, sample_every_steps=5, checkpoint_every_steps=5,
                      num_grid_samples=16)
        config.eval.update(num_samples=256, classifier_steps=20)
    return config


build = dcgan
