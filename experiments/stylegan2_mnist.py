"""StyleGAN2 (Karras et al. 2020) on real MNIST digits resized to 32x32, grey, offline on a CPU.

Command:  jaxgan train stylegan2_mnist --workdir runs/stylegan2_mnist
Machine:  CPU (2 cores) for the default length; on a GPU raise train.total_kimg and the widths.
Time:     7,000 steps (224 kimg): 14.7 minutes wall on the quiet 2-core CPU, start-up, compilation
          (10 s from the persistent cache; 22 s cold), sample grids and the final evaluation
          included (8.2 steps/s), measured once.
Expected: every run first collapses (one shape in every cell: samples/diversity 0.3 at step 1,000
          and 0.06 at 1,250 here; NVIDIA's own code does the same at these settings), then leaves
          it between steps 1,500 and 2,500. At 7,000 steps (2 cores, this seed): samples/diversity 0.92, classifier
          FID 10k 177.3, precision/recall 0.44/0.03, classifier score 6.62 (samples resized to 28
          and scored with the digit classifier of dcgan_mnist); the grid draws varied digits (0, 1,
          3, 4, 8, 9 readable; about half the cells, the rest malformed strokes). On one quiet core in
          22 minutes (7,663 steps): classifier FID 132.8, Inception FID 53.9 / KID 0.028 at 500
          samples; ADA's small-data recipe (--set reg.pl_weight=0 --set reg.style_mixing=0 --set
          penalty.r1_gamma=0.01 --set model.mbstd_group=32) reaches 70.0 in the same time; DCGAN
          105.1 (Inception 39.9 / 0.013). See docs/results.md. These figures predate the changes
          that made the networks NVIDIA's (up-sampling padding, demodulation epsilon, path-length
          gradient and fresh latents); the run was not repeated since (the shared CPU was too loaded).

A very small StyleGAN2, sized so a 2-core CPU trains it for a while in minutes: z and w 64-d, 2
mapping layers (ADA's CIFAR-10 choice), feature maps min(256 / res, 16) (16 at 4x4 to 16x16, 8 at
32x32; 32 maps everywhere take 3.7x the FLOPs per step), batch 32, the paper's regularisers (lazy R1 every
16 with gamma 0.05, style mixing 0.9, path length weight 2 every 4) and Adam(0.0025, 0, 0.99) with the
lazy correction, EMA half-life 2.5 kimg with ramp-up 0.05. Samples come from the EMA generator with
truncation psi = sample.truncation (1.0: none). On a GPU or a TPU widen it: --set
model.channel_base=8192 --set model.channel_max=256 (on a TPU its 8-16 channels fill 1/16 to 1/8
of each 128-lane tile: 0.9 FLOP/byte by XLA's count for v5e:2x2, 75 when widened; BENCHMARKS.md).

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split), bilinearly resized from 28 to 32 (data.resolution=32).
"""
from jaxgan.experiment import base_config, mnist_data
from jaxgan.games.stylegan2 import stylegan2, stylegan2_config_fields


def get_config(smoke: bool = False):
    config = base_config(**stylegan2_config_fields())
    config.update(data=mnist_data(resolution=32),
                  compute_dtype="auto", log_every_steps=50, sample_every_steps=250,
                  checkpoint_every_steps=250, num_grid_samples=64)
    config.model.update(latent_dim=64, w_dim=64, mapping_layers=2, channel_base=256, channel_max=16,
                        mbstd_group=4)
    config.penalty.update(r1_gamma=0.05, every=16)
    config.train.update(batch_size=32, total_kimg=224, ema_half_life_kimg=2.5, ema_rampup=0.05)
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
