"""StyleGAN2 on a folder of faces at 64x64 (e.g. FFHQ thumbnails), for a GPU or TPU.

Command:  jaxgan train stylegan2_ffhq64 --workdir runs/stylegan2_ffhq64 --set data.path=/data/ffhq/thumbnails128x128
          jaxgan sample runs/stylegan2_ffhq64 --n 64 --out faces.png --set sample.truncation=0.7
Machine:  one GPU or a TPU slice (about 24M + 24M parameters at these widths); not a CPU job.
          Offline smoke test: --smoke with data.path a folder of any images. The tests train its
          folder variant (stylegan2_folder) from an NVIDIA pickle on generated images
          (tests/test_stylegan2_import.py); its smoke sizes are stylegan2_mnist's, whose smoke run
          tests/test_stylegan2.py trains.
Time:     not measured here (no face folder and no accelerator run in the session that wrote it).
Expected: not measured. StyleGAN2-ADA's 'auto' config at this resolution reaches recognisable faces
          within a few thousand kimg.

Settings of StyleGAN2-ADA's 'auto' config at 64x64 on one GPU: batch 32, feature maps
min(16384 / res, 512), 2 mapping layers, minibatch-stddev group 4, R1 gamma 0.0002 res^2 / batch =
0.0256 every 16, path length weight 2 every 4, style mixing 0.9, EMA half-life 10 kimg, Adam(0.0025,
0, 0.99). Images are centre-cropped and resized to 64x64 RGB.
"""
import os

from jaxgan.experiment import base_config
from jaxgan.games.stylegan2 import stylegan2, stylegan2_config_fields

DATA_DIR = os.environ.get("JAXGAN_FFHQ_DATA", "data/ffhq/thumbnails128x128")


def get_config(smoke: bool = False):
    config = base_config(**stylegan2_config_fields())
    config.update(data={"name": "folder", "path": DATA_DIR, "resolution": 64, "channels": 3, "crop": "center"},
                  log_every_steps=200, sample_every_steps=2000, checkpoint_every_steps=2000, num_grid_samples=64)
    config.model.update(latent_dim=512, w_dim=512, mapping_layers=2, channel_base=16384, channel_max=512,
                        mbstd_group=4)
    config.penalty.update(r1_gamma=0.0256, every=16)
    config.train.update(batch_size=32, total_kimg=10000.0, ema_half_life_kimg=10.0, ema_rampup=0.05)
    config.eval.update(num_samples=10000, every_kimg=1000.0)
    if smoke:
        config.data.update(resolution=16)
        config.model.update(latent_dim=16, w_dim=16, channel_base=128, channel_max=8, mbstd_group=2)
        config.train.update(batch_size=8, total_kimg=0.032, ema_half_life_kimg=0.01)  # 4 steps
        config.penalty.update(every=2)
        config.reg.update(pl_every=2)
        config.update(log_every_steps=1, sample_every_steps=4, checkpoint_every_steps=4, num_grid_samples=16)
        config.eval.update(num_samples=16, every_kimg=0.0)
    return config


build = stylegan2
