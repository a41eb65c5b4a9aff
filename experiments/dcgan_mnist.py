"""DCGAN (Radford et al. 2015) on real MNIST digits, 28x28x1.

Command:  jaxgan train dcgan_mnist --workdir runs/dcgan_mnist
Machine:  CPU (2 cores) for the default length; a GPU for longer runs (--set train.total_kimg=...).
Time:     3,000 steps: 28.5 minutes on a shared, heavily loaded 2-core CPU with the earlier transposed
          convolution form (see docs/results.md); with the sub-pixel form one quiet core of the same
          machine ran 8,590 steps in 22 minutes (about 6.6 steps/s).
Expected: recognisable digits in samples/ from about step 2,000; eval.json (measured once, step
          3,000): classifier_fid10k 148.5, classifier_score10k 6.71, classifier_pr10k_k3 0.34/0.69.

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""
from jaxgan.experiment import base_config, dcgan, mnist_data


def get_config(smoke: bool = False):
    config = base_config(
        data=mnist_data(),
        model={"latent_dim": 100, "ngf": 32, "ndf": 32, "conditional": False, "upsample": "auto"},
        loss="non_saturating",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.5, "b2": 0.999},
        train={"batch_size": 64, "total_kimg": 192.0, "ema_half_life_kimg": 0.0},  # 3,000 steps
        log_every_steps=100, sample_every_steps=500, checkpoint_every_steps=500,
        num_grid_samples=64,
        eval={"num_samples": 10000},
    )
    if smoke:
        config.model.update(latent_dim=16, ngf=8, ndf=8)
        config.train.update(batch_size=16, total_kimg=0.08)  # 5 steps
        config.update(log_every_steps=1, sample_every_steps=5, checkpoint_every_steps=5,
                      num_grid_samples=16)
        config.eval.update(num_samples=256, classifier_steps=20)
    return config


build = dcgan
