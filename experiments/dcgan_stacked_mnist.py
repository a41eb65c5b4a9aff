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

from jaxgan.config import load_experiment
from jaxgan.experiment import dcgan

_BASE = load_experiment("dcgan_mnist")  # by name, so the copy kept in a workdir loads too


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.data.name = "stacked_mnist"
    if not smoke:
        config.eval.num_samples = 26000  # the VEEGAN / PacGAN protocol
    return config


build = dcgan
