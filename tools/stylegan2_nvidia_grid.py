"""An imported NVIDIA network's sample grid beside NVIDIA's generate.py output (docs/images).

Imports tests/fixtures/stylegan2_nvidia_res32.pkl (NVIDIA's code wrote it; random tiny network)
with ``jaxgan import-stylegan2`` into a temporary workdir, draws its G_ema at the seeds and psi of
tests/fixtures/stylegan2_nvidia_generate.npz (generate.py's PNGs for the same pickle: z from
``np.random.RandomState(seed).randn``, const noise), and writes both as 4x4 grids (each pixel
magnified 4x) plus the largest pixel difference. No torch needed.

Usage:
  python tools/stylegan2_nvidia_grid.py --out docs/images/stylegan2_nvidia_import
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="prefix: writes PREFIX_jaxgan.png and PREFIX_nvidia.png")
    p.add_argument("--zoom", type=int, default=4)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from PIL import Image

    from jaxgan import cli, run as run_lib, samples

    fixtures = ROOT / "tests" / "fixtures"
    ref = np.load(fixtures / "stylegan2_nvidia_generate.npz")
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "images"
        folder.mkdir()
        for i in range(4):  # the data folder a workdir needs (unused for sampling)
            Image.fromarray(np.full((32, 32, 3), 64 * i, np.uint8)).save(folder / f"{i}.png")
        workdir = pathlib.Path(tmp) / "imported"
        cli.main(["import-stylegan2", str(fixtures / "stylegan2_nvidia_res32.pkl"), "--workdir", str(workdir),
                  "--data", str(folder), "--set", "train.batch_size=4"])
        run, state = cli._load_run(workdir, [f"sample.truncation={float(ref['psi'])}"])
        z = np.concatenate([np.random.RandomState(int(s)).randn(1, run.game.latent_dim) for s in ref["seeds"]])
        x = run_lib.generate(run, state, z.astype(np.float32))
    ours = np.clip(x * 127.5 + 128, 0, 255).astype(np.uint8)  # generate.py's conversion
    diff = np.abs(ours.astype(int) - ref["images"].astype(int))
    zoom = lambda a: np.repeat(np.repeat(a, args.zoom, axis=1), args.zoom, axis=2)
    for name, images in (("jaxgan", ours), ("nvidia", ref["images"])):
        path = samples.save_png(f"{args.out}_{name}.png", samples.image_grid(zoom(images), nrow=4))
        print(f"wrote {path}")
    print(f"seeds {list(map(int, ref['seeds']))}, psi {float(ref['psi']):.2f}: largest pixel difference "
          f"{diff.max()} (of 255), pixels equal {np.mean(diff == 0):.4%}")


if __name__ == "__main__":
    main()
