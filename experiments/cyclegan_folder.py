"""CycleGAN on two folders of images in the horse2zebra layout (root/trainA, root/trainB).

Command:  jaxgan train cyclegan_folder --workdir runs/horse2zebra \
              --set data.path=datasets/horse2zebra/trainA --set data_b.path=datasets/horse2zebra/trainB
          jaxgan translate runs/horse2zebra --input datasets/horse2zebra/testA --direction a2b --out zebras/
Machine:  a GPU (the paper: 256x256, ngf 64, 9 blocks, batch 1, 200 epochs); the default here is
          128x128, ngf 64, 6 blocks (the paper's 128 px setting), batch 4, 200 kimg.
Time:     not measured (no photo data set ships with jaxgan); the smoke variant runs in the tests.
Expected: eval.json reports cycle{n}/a_l1 and cycle{n}/b_l1 (cycle-reconstruction error); translations
          are written to samples/ as input rows above output rows.

Data: any jaxgan image source works for either domain (``data`` is A, ``data_b`` is B); here two
image folders, resized to ``resolution`` (shorter side) and centre-cropped, read independently.
"""
from jaxgan.config import load_experiment

# by name (jaxgan\'s experiments/), so the copy kept in a workdir loads too
_BASE = load_experiment("cyclegan_mnist")
CUSTOM_FIELDS, validate, build = _BASE.CUSTOM_FIELDS, _BASE.validate, _BASE.build


def get_config(smoke: bool = False):
    config = _BASE.get_config(smoke)
    image = {"name": "folder", "resolution": 128, "channels": 3, "crop": "center"}
    config.data = {**image, "path": "datasets/horse2zebra/trainA"}
    config.data_b = {**image, "path": "datasets/horse2zebra/trainB"}
    config.model.update(ngf=64, n_blocks=6, ndf=64, d_layers=3)
    config.train.update(batch_size=4, total_kimg=200.0)
    config.eval = {**config.eval, "num_samples": 100, "b_view": "none"}
    config.update(sample_every_steps=1000, checkpoint_every_steps=1000, num_grid_samples=16)
    if smoke:
        config.data.update(resolution=32)
        config.data_b.update(resolution=32)
        config.model.update(ngf=8, n_blocks=1, ndf=8, d_layers=2)
        config.train.update(batch_size=2, total_kimg=0.006)  # 3 steps
        config.update(sample_every_steps=3, checkpoint_every_steps=3, num_grid_samples=4)
        config.eval.update(num_samples=4)
    return config
