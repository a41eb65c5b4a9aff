"""WGAN-GP (Gulrajani et al. 2017) on real MNIST digits, 28x28x1: DCGAN generator, critic without BatchNorm.

Command:  jaxgan train wgan_gp_mnist --workdir runs/wgan_gp_mnist
Machine:  CPU (2 cores) for the default length; a GPU for the paper's length (--set train.total_kimg=...).
Time:     400 steps (2,000 critic updates): 22 minutes wall on a heavily shared 2-core CPU (stopped
          by SIGTERM at step 197 and resumed; compile and evaluation included).
Expected: (measured once, step 400) classifier_fid10k 1005, classifier_score10k 2.50: grey stroke-like
          blobs, no readable digits yet (docs/images/wgan_gp_mnist_step400.png). WGAN-GP needs far
          more generator steps (the paper trains 200,000); run it longer on a GPU.

The paper's recipe: Wasserstein loss, gradient penalty lambda = 10 on random interpolates, 5 critic
updates per generator update, Adam(lr 1e-4, beta1 0, beta2 0.9). The critic is the DCGAN-28
discriminator with ``norm=None`` (biases instead of BatchNorm: the penalty is per example, and
BatchNorm would couple the examples of a batch); ``--set model.d_norm=layer`` gives the layer-norm
critic the paper suggests as a drop-in. Durations count the real images the critic sees
(batch x n_critic per step).

Data: the MNIST IDX files in $JAXGAN_MNIST_DIR, or ../shared/data/mnist beside the repository (the
10,000-image test split there; point data.dir at a folder with train-images-idx3-ubyte.gz and set
data.split=train for the full 60,000).
"""
from jaxgan.experiment import base_config, mnist_data, standard_gan


def get_config(smoke: bool = False):
    config = base_config(
        data=mnist_data(),
        model={"latent_dim": 100, "ngf": 32, "ndf": 32, "d_norm": None, "upsample": "auto"},
        loss="wasserstein",
        penalty={"gp_weight": 10.0},
        optim={"g_lr": 1e-4, "d_lr": 1e-4, "b1": 0.0, "b2": 0.9},
        train={"batch_size": 64, "n_critic": 5, "total_kimg": 128.0},  # 400 generator steps
        log_every_steps=50, sample_every_steps=100, checkpoint_every_steps=100,
        num_grid_samples=64,
        eval={"num_samples": 10000},
    )
    if smoke:
        config.model.update(latent_dim=16, ngf=8, ndf=8)
        config.train.update(batch_size=16, total_kimg=0.24)  # 3 steps of 5 critic updates
        config.update(log_every_steps=1, sample_every_steps=3, checkpoint_every_steps=3,
                      num_grid_samples=16)
        config.eval.update(num_samples=256, classifier_steps=20)
    return config


def build(config, info):
    """DCGAN generator against the DCGAN-28 critic with ``model.d_norm`` ('layer' or None)."""
    from jaxgan.nets import DCGANDiscriminator, DCGANGenerator
    from jaxgan.precision import compute_dtype

    m, dtype = config.model, compute_dtype(config.compute_dtype)
    if m.d_norm == "batch":
        raise ValueError("model.d_norm='batch' is wrong for WGAN-GP (the gradient penalty is per example): "
                         "use 'layer' or None")
    height, _, channels = info.shape
    g = DCGANGenerator(height, channels, ngf=m.ngf, dtype=dtype, upsample=m.get("upsample", "auto"))
    d = DCGANDiscriminator(height, ndf=m.ndf, dtype=dtype, norm=m.d_norm)
    return standard_gan(config, g, d)
