"""DCGAN-64: the PyTorch examples' DCGAN (nz 100, ngf = ndf = 64, 3 channels, 64x64, batch 64).

Command:  jaxgan train dcgan64 --set data.path=/data/celeba/img_align_celeba --workdir runs/dcgan64
          jaxgan bench dcgan64 --data synthetic      (no data needed: random batches of its shape)
Machine:  a GPU or TPU for training (3.58M + 2.77M parameters, 2.2 GFLOP per image per train step);
          on a 2-core CPU only the benchmark is practical (see BENCHMARKS.md).
Time:     not measured here (no accelerator in the session that wrote it); 25 epochs of CelebA
          (about 5,000 kimg) is the PyTorch example's length.
Expected: not measured; the PyTorch example shows recognisable faces after a few epochs of CelebA.

Data: a folder of images (``data.path``, or $JAXGAN_DCGAN64_DATA), centre-cropped and resized to
64x64 RGB, e.g. CelebA's img_align_celeba; for a TFDS data set set ``data.name=tfds`` with its options
instead (see jaxgan/data/factory.py). The layout is Radford, Metz & Chintala (2015) as the PyTorch
examples write it: Adam(2e-4, beta1 0.5), non-saturating loss, BatchNorm, no EMA.
"""
import os

from jaxgan.experiment import base_config, dcgan

DATA_DIR = os.environ.get("JAXGAN_DCGAN64_DATA", "data/celeba/img_align_celeba")


def get_config(smoke: bool = False):
    config = base_config(
        data={"name": "folder", "path": DATA_DIR, "resolution": 64, "channels": 3, "crop": "center"},
        model={"latent_dim": 100, "ngf": 64, "ndf": 64, "conditional": False, "upsample": "auto"},
        loss="non_saturating",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.5, "b2": 0.999},
        train={"batch_size": 64, "total_kimg": 5000.0, "ema_half_life_kimg": 0.0},
        log_every_steps=100, sample_every_steps=1000, checkpoint_every_steps=2000,
        num_grid_samples=64,
        eval={"num_samples": 10000},
    )
    if smoke:
        config.model.update(latent_dim=16, ngf=8, ndf=8)
        config.train.update(batch_size=8, total_kimg=0.016)  # 2 steps
        config.update(log_every_steps=1, sample_every_steps=2, checkpoint_every_steps=2,
                      num_grid_samples=16)
        config.eval.update(num_samples=64)
    return config


build = dcgan
