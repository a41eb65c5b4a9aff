"""A super-resolution figure: low-resolution input, bicubic, each run's output, and the original.

    python tools/sr_figure.py OUT.png WORKDIR [WORKDIR ...] [--n 10]

Rows, top to bottom: the run's held-out low-resolution inputs (``eval.data``, nearest-neighbour
enlarged), bicubic upsampling, the generator of each WORKDIR in the order given (its latest
checkpoint, built from the workdir's recorded experiment file), and the high-resolution originals.
Used for docs/results.md (``runs/srgan_mnist`` then ``runs/srresnet_mnist``).
"""
import argparse
import pathlib

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--n", type=int, default=10, help="images per row")
    parser.add_argument("--scale", type=int, default=2, help="nearest-neighbour enlargement of the figure")
    args = parser.parse_args()

    from PIL import Image

    from jaxgan.cli import _load_run
    from jaxgan.data import make_source
    from jaxgan.data.pairs import resize_bicubic
    from jaxgan.games.srgan import super_resolve
    from jaxgan.samples import image_grid

    rows, hr = [], None
    for workdir in args.workdirs:
        run, state = _load_run(pathlib.Path(workdir))
        spec = run.config.eval.get("data")
        source = make_source(spec, seed=run.config.seed) if spec else run.source
        batch = source.get_batch(0, args.n)
        if hr is None:
            hr, lr = batch["x"], batch["lr"]
            r = hr.shape[1] // lr.shape[1]
            rows += [lr.repeat(r, axis=1).repeat(r, axis=2), np.clip(resize_bicubic(lr, *hr.shape[1:3]), -1, 1)]
        elif not np.array_equal(batch["x"], hr):
            raise SystemExit(f"{workdir} evaluates on other images than {args.workdirs[0]}: compare runs of one data set")
        rows.append(super_resolve(run, state, lr))
    rows.append(hr)
    grid = image_grid(np.concatenate([np.asarray(x, np.float32) for x in rows]), nrow=args.n, padding=2,
                      pad_value=128)
    grid = grid.repeat(args.scale, axis=0).repeat(args.scale, axis=1)
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(args.out)
    print(f"wrote {args.out}: rows = input, bicubic, {', '.join(args.workdirs)}, original")


if __name__ == "__main__":
    main()
