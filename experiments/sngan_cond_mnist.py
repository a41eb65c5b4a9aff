"""Class-conditional SNGAN on MNIST at 32x32: conditional BatchNorm in G, projection D (Miyato & Koyama 2018).

Command:  jaxgan train sngan_cond_mnist --workdir runs/sngan_cond_mnist
Machine:  CPU (2 cores) for the default length; a GPU for longer runs.
Time:     about the time of sngan_mnist (the class embeddings add little).
Expected: a 10x10 sample grid whose column c shows the digit c once training has gone far enough
          (not measured at this length on CPU: see docs/results.md for what was run).

Everything is sngan_mnist (hinge loss, n_critic 5, Adam(2e-4, 0, 0.9), evaluation at 28x28) with
``model.conditional = True``.
"""

from jaxgan.config import load_experiment
from jaxgan.experiment import sngan

_BASE = load_experiment("sngan_mnist")  # by name, so the copy kept in a workdir loads too


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.model.conditional = True
    if not smoke:
        config.num_grid_samples = 100  # a 10x10 grid: column c is class c
    return config


build = sngan
