"""SNGAN (Miyato et al. 2018) on real MNIST digits resized to 32x32x1: ResNet G, spectrally normalised ResNet D.

Command:  jaxgan train sngan_mnist --workdir runs/sngan_mnist
Machine:  CPU (2 cores) for the default length (narrow networks); a GPU for the paper's widths
          (--set model.g_width=256 --set model.d_width=128 --set train.total_kimg=...).
Time:     200 steps (1,000 critic updates): 20 minutes wall on a heavily shared 2-core CPU, of which
          about 10 minutes compiling the step (the ResNet compiles slowly on CPU) and about 9 training.
Expected: (measured once, step 200) classifier_fid10k 297.7, classifier_score10k 5.34,
          classifier_pr10k_k3 0.32/0.35: white digit-like strokes, few readable
          (docs/images/sngan_mnist_step200.png); run longer (a GPU) for digits.

The paper's ResNet recipe (sngan_cifar10) on offline data: hinge loss, 5 critic updates per
generator update, Adam(lr 2e-4, beta1 0, beta2 0.9); the networks are much narrower
here (G width 32, D width 16, against 256 and 128) and the batch is 32, so that a run fits on a
CPU. The digits are resized 28 -> 32 (PIL bilinear) because the ResNet works on powers of two.

Evaluation: jaxgan's digit classifier works on 28x28 digits; jaxgan.evaluate resizes the 32x32
digits, real and generated alike, to 28x28 (antialiased linear) before the classifier metrics
(classifier_fid10k etc.), so the reference is the real digits after the same 28 -> 32 -> 28 trip.

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""
from jaxgan.experiment import base_config, mnist_data, sngan


def get_config(smoke: bool = False):
    config = base_config(
        data=mnist_data(resolution=32),
        model={"latent_dim": 128, "g_width": 32, "d_width": 16, "conditional": False},
        loss="hinge",
        optim={"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.0, "b2": 0.9},
        train={"batch_size": 32, "n_critic": 5, "total_kimg": 32.0},  # 200 generator steps
        log_every_steps=10, sample_every_steps=25, checkpoint_every_steps=25,
        num_grid_samples=64,
        eval={"num_samples": 10000},
    )
    if smoke:
        config.model.update(latent_dim=16, g_width=8, d_width=8)
        config.train.update(batch_size=16, total_kimg=0.24)  # 3 steps of 5 critic updates
        config.update(log_every_steps=1, sample_every_steps=3, checkpoint_every_steps=3,
                      num_grid_samples=16)
        config.eval.update(num_samples=256, classifier_steps=20)
    return config


build = sngan
