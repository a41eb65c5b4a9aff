"""StyleGAN2 on any folder of images (sub-folders are classes: --set model.conditional=true uses them).

Command:  jaxgan train stylegan2_folder --workdir runs/my_images --set data.path=/path/to/images \
            --set data.resolution=128   [--set augment.policy=flip,translation,cutout for a few thousand images]
Machine:  one GPU or a TPU slice; not a CPU job. Offline smoke test: --smoke (generated images).
Time:     not measured here (no accelerator run in the session that wrote it).
Expected: not measured; see stylegan2_ffhq64, whose settings this inherits (resolution 64 by default).
"""
from jaxgan.config import load_experiment

_BASE = load_experiment("stylegan2_ffhq64")  # by name, so the copy kept in a workdir loads too
build = _BASE.build


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    config.data.update(path="images")
    return config
