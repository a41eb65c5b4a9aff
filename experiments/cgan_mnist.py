"""Class-conditional DCGAN on MNIST: label embedding in G, projection discriminator (Miyato & Koyama 2018).

Command:  jaxgan train cgan_mnist --workdir runs/cgan_mnist
Machine:  CPU (2 cores) for the default length; a GPU for longer runs (--set train.total_kimg=...).
Time:     3,000 steps: 23.9 minutes on a shared 2-core CPU (see docs/results.md).
Expected: a 10x10 sample grid whose column c shows the digit c (clear from step 1,500); eval.json
          (measured once, step 3,000): classifier_fid10k 60.2, classifier_score10k 9.49.

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""

from jaxgan.config import load_experiment
from jaxgan.experiment import dcgan

_BASE = load_experiment("dcgan_mnist")  # by name, so the copy kept in a workdir loads too


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.model.conditional = True
    if not smoke:
        config.num_grid_samples = 100  # a 10x10 grid: column c is class c
    return config


build = dcgan
