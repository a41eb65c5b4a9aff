"""SRGAN on a folder of a user's photos (4x; 64x64 crops of the images by default).

Command:  jaxgan train srgan_folder --workdir runs/srgan_photos --set data.path=/path/to/photos
          (SRResNet: add --set model.adv_weight=0; larger images: --set data.resolution=128)
          jaxgan upscale runs/srgan_photos --input small_photos/ --out large_photos/
Machine:  a GPU (the paper's full size: --set model.features=64 model.n_blocks=16 ...); the default
          is sized for a first try on a CPU.
Time:     not measured (no photo folder ships with jaxgan); the smoke variant runs in tests.
Expected: eval.json's psnr{n}/sr and ssim{n}/sr above the bicubic baseline's psnr{n}/bicubic and
          ssim{n}/bicubic (on the first eval.num_samples images of the folder's stream).

Data: ``data.path`` is a folder of .png/.jpg images (sub-folders are read as classes, which SRGAN
ignores); they are resized to ``data.resolution`` and centre-cropped, then downsampled by
``data.sr_factor`` (bicubic, antialiased) for the inputs.
"""
from jaxgan.config import load_experiment

# by name (jaxgan\'s experiments/), so the copy kept in a workdir loads too
_BASE = load_experiment("srgan_mnist")
validate, build = _BASE.validate, _BASE.build


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.data = {"name": "folder", "path": "photos", "resolution": 64, "channels": 3, "crop": "center",
                   "sr_factor": 4}
    config.model.update(features=64, n_blocks=8, ndf=32, d_stages=4)
    config.train.update(batch_size=16, total_kimg=200.0)
    config.eval = {**config.eval, "num_samples": 200, "data": {}}
    if smoke:
        config.data.update(resolution=32)
        config.model.update(features=8, n_blocks=1, ndf=8, d_stages=2)
        config.train.update(batch_size=4, total_kimg=0.012)  # 3 steps
        config.eval.update(num_samples=8)
    return config
