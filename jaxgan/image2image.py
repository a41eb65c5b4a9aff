"""``jaxgan translate`` and ``jaxgan upscale``: a trained image-to-image run applied to your images.

    jaxgan translate WORKDIR --input DIR|FILE.npy --direction a2b|b2a --out FILE.npy|DIR
    jaxgan upscale WORKDIR --input DIR|FILE.npy --out FILE.npy|DIR

Inputs: a ``.npy`` of images (N, H, W[, C]), uint8 in [0, 255] or float in [-1, 1] (jaxgan's range),
or a folder of image files (png, jpg, ...; read in sorted order, converted to the run's channels).
Outputs: a ``.npy`` (float32 in [-1, 1], NHWC) or a folder of PNGs named after the inputs
(``00000.png``... for an array input). The CycleGAN run's images must have the training size; the
SRGAN run takes low-resolution images of any size (the generator is convolutional).
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np


def register(subparsers) -> None:
    """Adds the ``translate`` and ``upscale`` sub-commands."""
    t = subparsers.add_parser("translate", help="translate images with a CycleGAN run (A->B or B->A)")
    t.add_argument("workdir")
    t.add_argument("--input", required=True, help="a .npy of images or a folder of image files")
    t.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    t.add_argument("--out", required=True, help="output .npy or folder (PNGs)")
    t.set_defaults(handler=cmd_translate)
    u = subparsers.add_parser("upscale", help="upscale low-resolution images with an SRGAN/SRResNet run")
    u.add_argument("workdir")
    u.add_argument("--input", required=True, help="a .npy of images or a folder of image files")
    u.add_argument("--out", required=True, help="output .npy or folder (PNGs)")
    u.set_defaults(handler=cmd_upscale)


def read_images(path: str | pathlib.Path, channels: int) -> tuple[np.ndarray, list[str]]:
    """Images from a .npy or a folder as float32 NHWC in [-1, 1] with ``channels``, and their names."""
    path = pathlib.Path(path)
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"{path}: expected images (N, H, W) or (N, H, W, C) with C = 1 or 3, got {x.shape}")
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 127.5 - 1.0
        else:
            x = x.astype(np.float32)
            if x.min() < -1.01 or x.max() > 1.01:
                raise ValueError(f"{path}: float images must be in [-1, 1] (jaxgan's range), found "
                                 f"[{x.min():.3g}, {x.max():.3g}]; save uint8 [0, 255] images instead")
        if x.shape[-1] != channels:
            x = x.mean(-1, keepdims=True) if channels == 1 else np.repeat(x, 3, axis=-1)
        return x, [f"{i:05d}" for i in range(len(x))]
    if path.is_dir():
        from PIL import Image

        from jaxgan.data.folder import IMAGE_EXTENSIONS

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
        arrays = [np.asarray(Image.open(f).convert("L" if channels == 1 else "RGB"), np.float32) for f in files]
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"the images in {path} have different sizes ({sorted({a.shape for a in arrays})}): "
                             "resize them to one size first")
        x = np.stack(arrays) / 127.5 - 1.0
        return (x[..., None] if x.ndim == 3 else x).astype(np.float32), [f.stem for f in files]
    raise FileNotFoundError(f"--input {path}: give a .npy file or a folder of images")


def write_images(out: str | pathlib.Path, x: np.ndarray, names: list[str]) -> None:
    """Writes float images in [-1, 1] to a .npy (as is) or to a folder of PNGs (uint8)."""
    from jaxgan.samples import save_png, to_uint8

    out = pathlib.Path(out)
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, np.asarray(x, np.float32))
        return
    if out.suffix:
        raise ValueError(f"--out {out}: use a .npy file name or a folder (no suffix)")
    out.mkdir(parents=True, exist_ok=True)
    for image, name in zip(to_uint8(x), names):
        save_png(out / f"{name}.png", image)


def _load(workdir: str, family: str):
    from jaxgan.cli import _load_run

    run, state = _load_run(pathlib.Path(workdir))
    ok = hasattr(run.game, "translate") if family == "translate" else hasattr(run.game, "pixel_loss")
    if not ok:
        kind = "a CycleGAN" if family == "translate" else "an SRGAN/SRResNet"
        raise ValueError(f"{workdir} holds a {type(run.game).__name__} run: `jaxgan {family}` needs {kind} run")
    return run, state


def cmd_translate(args: argparse.Namespace) -> int:
    from jaxgan.games.cyclegan import translate_images

    run, state = _load(args.workdir, "translate")
    x, names = read_images(args.input, run.source.info.shape[-1])
    if x.shape[1:] != run.source.info.shape:
        raise ValueError(f"{args.input}: images are {x.shape[1:]}, the run was trained on {run.source.info.shape}: "
                         "resize them first")
    y = translate_images(run, state, x, args.direction)
    write_images(args.out, y, names)
    print(f"translated {len(y)} images ({args.direction}) to {args.out}")
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from jaxgan.games.srgan import super_resolve

    run, state = _load(args.workdir, "upscale")
    x, names = read_images(args.input, run.source.info.shape[-1])
    y = super_resolve(run, state, x)
    write_images(args.out, y, names)
    print(f"upscaled {len(y)} images {x.shape[1]}x{x.shape[2]} -> {y.shape[1]}x{y.shape[2]} to {args.out}")
    return 0
