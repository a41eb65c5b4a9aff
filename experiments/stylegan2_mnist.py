"""StyleGAN2 (Karras et al. 2020) on real MNIST digits resized to 32x32, grey, offline on a CPU.

Command:  jaxgan train stylegan2_mnist --workdir runs/stylegan2_mnist
Machine:  CPU (2 cores) for the default length; on a GPU raise train.total_kimg and the widths.
Time:     450 steps (14.4 kimg): 15 minutes wall on the shared 2-core CPU (load 9-14; about 2 min
          start-up and compile, then 0.55 steps/s), measured once. On one quiet core: about 1 step/s
          (1,133 steps in 22 minutes with start-up).
Expected: mode collapse at CPU lengths. The EMA generator draws one shape in every cell: at 450
          steps (loaded machine) classifier_fid10k 1078, precision 0.70, recall 0.00; at 1,133 steps
          (36 kimg, one quiet core, 22 minutes) 1072, precision 0.71, recall 0.00, classifier score
          1.45 (samples resized to 28 and scored with the digit classifier of dcgan_mnist), Inception
          FID 147.2 / KID 0.166 at 500 samples. DCGAN on one core in the same 22 minutes (8,590
          steps, 550 kimg) reaches 105 with recall 0.74 (Inception FID 39.9 / KID 0.013). ADA's
          small-data recipe (--set reg.pl_weight=0 --set reg.style_mixing=0 --set
          penalty.r1_gamma=0.01) collapses too (701). See docs/results.md. This CPU length is a
          demonstration that the family trains in the engine, not a result.

A very small StyleGAN2, sized so a 2-core CPU trains it for a while in minutes: z and w 64-d, 2
mapping layers (ADA's CIFAR-10 choice), feature maps min(256 / res, 16) (16 at 4x4 to 16x16, 8 at
32x32; 32 maps everywhere costs 3.7 s per step here), batch 32, the paper's regularisers (lazy R1 every
16 with gamma 0.05, style mixing 0.9, path length weight 2 every 4) and Adam(0.0025, 0, 0.99) with the
lazy correction, EMA half-life 2.5 kimg with ramp-up 0.05. Samples come from the EMA generator with
truncation psi = sample.truncation (1.0: none). On a GPU widen it: --set model.channel_base=8192
--set model.channel_max=256.

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split), bilinearly resized from 28 to 32 (data.resolution=32).
"""
import os
import pathlib

from jaxgan.experiment import base_config
from jaxgan.games.stylegan2 import stylegan2, stylegan2_config_fields

MNIST_DIR = os.environ.get("JAXGAN_MNIST_DIR",
                           str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))


def get_config(smoke: bool = False):
    config = base_config(**stylegan2_config_fields())
    config.update(data={"name": "mnist_idx", "dir": MNIST_DIR, "split": "test", "resolution": 32},
                  compute_dtype="auto", log_every_steps=50, sample_every_steps=250,
                  checkpoint_every_steps=250, num_grid_samples=64)
    config.model.update(latent_dim=64, w_dim=64, mapping_layers=2, channel_base=256, channel_max=16,
                        mbstd_group=4)
    config.penalty.update(r1_gamma=0.05, every=16)
    config.train.update(batch_size=32, total_kimg=14.4, ema_half_life_kimg=2.5, ema_rampup=0.05)
    config.eval.update(num_samples=10000)
    if smoke:
        config.data.update(resolution=16)
        config.model.update(latent_dim=16, w_dim=16, channel_base=128, channel_max=8, mbstd_group=2)
        config.train.update(batch_size=8, total_kimg=0.032)  # 4 steps: R1 and path length both run
        config.reg.update(pl_every=2)
        config.penalty.update(every=2)
        config.update(log_every_steps=1, sample_every_steps=4, checkpoint_every_steps=2, num_grid_samples=16)
        config.eval.update(num_samples=64, classifier_steps=20)
    return config


build = stylegan2
