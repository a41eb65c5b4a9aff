"""MLP GAN on the 5x5 grid of 25 Gaussians (std 0.05, VEEGAN / PacGAN).

Command:  jaxgan train grid25 --workdir runs/grid25
Machine:  CPU (2 cores is enough); any accelerator.
Time:     about 1 minute on a 2-core CPU (4,000 steps of 256 points, 1,024 kimg).
Expected: eval.json reports modes10k/covered 8 of 8 and modes10k/high_quality_fraction about 0.8
          (samples within 3 std of a mode); at least 7 of 8 and 0.7 are what the tests require.

The recipe against mode collapse on this toy: a small R1 penalty (Mescheder et al. 2018), Adam with
beta1 = 0.5, a cosine learning-rate decay, and sampling from the generator's EMA.
"""
from jaxgan.experiment import base_config, mlp_gan


def get_config(smoke: bool = False):
    config = base_config(
        data={"name": "grid25"},
        model={"latent_dim": 16, "hidden": 128, "depth": 3},
        loss="non_saturating",
        penalty={"r1_gamma": 0.05},
        optim={"g_lr": 2e-3, "d_lr": 2e-3, "b1": 0.5, "b2": 0.99, "schedule": "cosine"},
        train={"batch_size": 256, "total_kimg": 1024.0, "ema_half_life_kimg": 5.0},
        log_every_steps=200, sample_every_steps=1000, checkpoint_every_steps=1000,
        num_grid_samples=1000,
        compute_dtype="float32",  # tiny MLPs: bfloat16 buys nothing and costs precision
    )
    if smoke:
        config.model.update(hidden=16, depth=2)
        config.train.update(batch_size=64, total_kimg=0.64)  # 10 steps
        config.update(log_every_steps=2, sample_every_steps=5, checkpoint_every_steps=5,
                      num_grid_samples=200)
        config.eval.num_samples = 1000
    return config


build = mlp_gan
