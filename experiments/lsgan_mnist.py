"""LSGAN (Mao et al. 2017) on real MNIST digits, 28x28x1, with the DCGAN networks.

Command:  jaxgan train lsgan_mnist --workdir runs/lsgan_mnist
Machine:  CPU (2 cores) for the default length; a GPU for longer runs (--set train.total_kimg=...).
Time:     1,200 steps: 8.1 minutes wall (compile and evaluation included) on a shared 2-core CPU.
Expected: (measured once, step 1,200) classifier_fid10k 293.0, classifier_score10k 5.04,
          classifier_pr10k_k3 0.40/0.26: digit-like strokes, a minority clearly readable (see
          docs/images/lsgan_mnist_step1200.png); longer runs needed for clean digits.

The least-squares loss with the paper's 0-1-1 coding (D's targets: 1 for real, 0 for fake; G's
target 1 for fake), Adam(2e-4, beta1 0.5) as in the paper. Everything else is dcgan_mnist.

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""

from jaxgan.config import load_experiment
from jaxgan.experiment import dcgan

_BASE = load_experiment("dcgan_mnist")  # by name, so the copy kept in a workdir loads too


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.loss = "least_squares"
    if not smoke:
        config.train.total_kimg = 76.8  # 1,200 steps of 64
        config.update(sample_every_steps=300, checkpoint_every_steps=300)
    return config


build = dcgan
