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

from jaxgan.data.images import uint8_to_unit


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


def read_images(path: str | pathlib.Path, channels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Images from a .npy or a folder as float32 NHWC in [-1, 1], and their names.

    ``channels``: 1 or 3 to convert to (None: the file's own; a folder's images are grey if all of
    them are, else RGB). Raises UserError (naming ``--input``) for a missing or unreadable file, an
    empty array or folder, a wrong shape or dtype, float values outside [-1, 1], and NaN or infinite
    values.
    """
    from jaxgan.errors import UserError

    path = pathlib.Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise UserError(f"--input {path}: no such file; give a .npy of images or a folder of image files")
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UserError(f"--input {path}: not a .npy array file ({e})") from None
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise UserError(f"--input {path}: expected images (N, H, W) or (N, H, W, C) with C = 1 or 3, "
                            f"got shape {x.shape}")
        if x.size == 0:
            raise UserError(f"--input {path} holds no images (shape {x.shape}): give at least one")
        if x.dtype == np.uint8:
            x = uint8_to_unit(x)
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
            if not np.isfinite(x).all():
                bad = int(np.count_nonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
                raise UserError(f"--input {path}: {bad} of {len(x)} images hold NaN or infinite values: "
                                "give finite images (uint8 [0, 255] or float in [-1, 1])")
            if x.min() < -1.01 or x.max() > 1.01:
                raise UserError(f"--input {path}: float images must be in [-1, 1] (jaxgan's range), found "
                                f"[{x.min():.3g}, {x.max():.3g}]; save uint8 [0, 255] images instead")
        else:
            raise UserError(f"--input {path} holds {x.dtype} values: give uint8 [0, 255] or float [-1, 1] images")
        return to_channels(x, channels), [f"{i:05d}" for i in range(len(x))]
    if path.is_dir():
        from PIL import Image

        from jaxgan.data.folder import IMAGE_EXTENSIONS

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise UserError(f"--input {path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
        images = []
        for f in files:
            try:
                with Image.open(f) as image:
                    image.load()
                    images.append(image)
            except (OSError, ValueError) as e:
                raise UserError(f"--input {path}: cannot read {f.name} as an image ({e})") from None
        grey = channels == 1 or (channels is None and all(im.mode in ("L", "1") for im in images))
        arrays = [np.asarray(im.convert("L" if grey else "RGB"), np.uint8) for im in images]
        if len({a.shape for a in arrays}) > 1:
            raise UserError(f"--input {path}: the images have different sizes ({sorted({a.shape for a in arrays})}): "
                            "resize them to one size first")
        x = uint8_to_unit(np.stack(arrays))
        return (x[..., None] if x.ndim == 3 else x), [f.stem for f in files]
    raise UserError(f"--input {path}: give a .npy file or a folder of images")


def to_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """NHWC images with ``channels`` (1: luma of RGB, PIL's "L" weights; 3: grey repeated; None: as they are)."""
    if channels is None or x.shape[-1] == channels:
        return x
    if channels == 1:
        return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return np.repeat(x, 3, axis=-1)


def check_out(out: str | pathlib.Path) -> None:
    """Fails before any work when ``--out`` is neither a .npy file name nor a folder (no suffix)."""
    from jaxgan.errors import UserError

    out = pathlib.Path(out)
    if out.suffix not in ("", ".npy") or (out.suffix == ".npy" and out.is_dir()):
        raise UserError(f"--out {out}: use a .npy file name or a folder (no suffix)")
    if out.suffix == "" and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the PNGs, or a .npy file name")


def write_images(out: str | pathlib.Path, x: np.ndarray, names: list[str]) -> None:
    """Writes float images in [-1, 1] to a .npy (as is) or to a folder of PNGs (uint8)."""
    from jaxgan.samples import save_png, to_uint8

    out = pathlib.Path(out)
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, np.asarray(x, np.float32))
        return
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    for image, name in zip(to_uint8(x), names):
        save_png(out / f"{name}.png", image)


def _load(args: argparse.Namespace, family: str):
    """The run and its latest state (its notes and errors labelled ``jaxgan <family>:``)."""
    from jaxgan.cli import _load_run
    from jaxgan.errors import UserError

    run, state = _load_run(pathlib.Path(args.workdir), command=family)
    ok = hasattr(run.game, "translate") if family == "translate" else hasattr(run.game, "pixel_loss")
    if not ok:
        kind = "a CycleGAN" if family == "translate" else "an SRGAN/SRResNet"
        raise UserError(f"{args.workdir} holds a {type(run.game).__name__} run: `jaxgan {family}` needs {kind} run")
    return run, state


def cmd_translate(args: argparse.Namespace) -> int:
    from jaxgan.errors import UserError
    from jaxgan.games.cyclegan import translate_images

    check_out(args.out)
    x, names = read_images(args.input)  # a bad --out or --input fails before the run is built
    run, state = _load(args, "translate")
    x = to_channels(x, run.source.info.shape[-1])
    if x.shape[1:] != run.source.info.shape:
        raise UserError(f"--input {args.input}: images are {x.shape[1:]}, the run was trained on "
                        f"{run.source.info.shape}: resize them first")
    y = translate_images(run, state, x, args.direction)
    write_images(args.out, y, names)
    print(f"translated {len(y)} images ({args.direction}) to {args.out}")
    return 0


def cmd_upscale(args: argparse.Namespace) -> int:
    from jaxgan.games.srgan import super_resolve

    check_out(args.out)
    x, names = read_images(args.input)  # a bad --out or --input fails before the run is built
    run, state = _load(args, "upscale")
    x = to_channels(x, run.source.info.shape[-1])
    y = super_resolve(run, state, x)
    write_images(args.out, y, names)
    print(f"upscaled {len(y)} images {x.shape[1]}x{x.shape[2]} -> {y.shape[1]}x{y.shape[2]} to {args.out}")
    return 0
