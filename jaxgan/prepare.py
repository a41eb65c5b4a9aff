"""``jaxgan prepare``: decode a data set once into a uint8 store that training reads by index.

    jaxgan prepare EXPERIMENT OUT [--set KEY=VALUE ...]      (the experiment's data and image options)
    jaxgan prepare FOLDER|FILE.npz|FILE.npy|FILE.idx|tfds:NAME OUT [--resolution R] [--channels C]
                   [--crop center] [--split S] [--label-key K]
    options: [--workers N] [--chunk ROWS] [--no-progress]

Every example of the source (in index order) is decoded, cropped, resized and channel-converted
once, with the experiment's options, into ``OUT`` (see :mod:`jaxgan.data.store`). Train from it
with ``--set data.name=store data.path=OUT`` (experiments whose data has a ``path``) or a data spec
``{'name': 'store', 'path': OUT}``; the run reads the same examples in the same order as from the
source, with no decoding. The store is written next to OUT and renamed into place when complete.
"""
from __future__ import annotations

import os
import pathlib


def register(subparsers) -> None:
    """Adds the ``prepare`` sub-command."""
    p = subparsers.add_parser("prepare", help="decode a data set once into a uint8 store read by index "
                              "(no decoding while training)")
    p.add_argument("source", help="an experiment (name or .py: its data and image options), an image folder, "
                   "an .npz/.npy/.idx file or tfds:NAME")
    p.add_argument("out", help="the store directory to create")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an experiment's config field (e.g. data.path=...)")
    p.add_argument("--resolution", type=int, help="resize to RxR (default: the experiment's, else keep)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="1 (grey) or 3 (RGB)")
    p.add_argument("--crop", choices=("center",), help="centre square crop before resizing")
    p.add_argument("--split", help="split of a tfds: source (default train)")
    p.add_argument("--label-key", help="label array of an .npz, or label feature of a tfds: source")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: the CPU count)")
    p.add_argument("--chunk", type=int, default=256, help="images per unit of work (default 256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=main)


def source_spec(source: str, overrides=(), *, resolution=None, channels=None, crop=None, split=None,
                label_key=None) -> dict:
    """The data spec ``jaxgan prepare SOURCE`` reads: an experiment's ``data`` or one built from a path.

    Views (``part``, ``transform``, ``sr_factor``) are dropped: a store holds the underlying images,
    and a run applies its views to the store as to the source.
    """
    from jaxgan import config as config_lib
    from jaxgan.data.factory import VIEW_OPTIONS

    path = pathlib.Path(source).expanduser()
    experiment = False
    if source.startswith("tfds:"):
        spec = {"name": "tfds", "dataset": source[len("tfds:"):], "split": split or "train"}
        if label_key:
            spec["label_key"] = label_key
    elif path.is_dir():
        spec = {"name": "folder", "path": str(path.resolve())}
    elif path.is_file() and path.suffix.lower() in (".npz", ".npy"):
        spec = {"name": "npz", "path": str(path.resolve())}
        if label_key:
            spec["label_key"] = label_key
    elif path.is_file() and ("idx" in path.name or "ubyte" in path.name):
        spec = {"name": "idx", "images": str(path.resolve())}
    else:
        try:
            config, _ = config_lib.resolve(source, list(overrides))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{source!r} is neither an experiment nor an image folder, .npz/.npy/.idx "
                                    f"file or tfds:NAME ({e})") from e
        if config.get("data_b"):
            print(f"jaxgan prepare: {source} has a second domain (data_b); preparing data only: prepare data_b "
                  "with its own source argument")
        spec, experiment = dict(config.data), True
    if overrides and not experiment:
        raise ValueError("--set applies to an experiment's config; for a folder or file use --resolution, "
                         "--channels, --crop")
    for key, value in (("resolution", resolution), ("channels", channels), ("crop", crop)):
        if value is not None:
            spec[key] = value
    return {k: v for k, v in spec.items() if k not in VIEW_OPTIONS}


def main(args) -> int:
    from jaxgan.data.factory import make_source
    from jaxgan.data.store import write_store

    spec = source_spec(args.source, args.set, resolution=args.resolution, channels=args.channels,
                       crop=args.crop, split=args.split, label_key=args.label_key)
    if spec.get("name") == "store":
        raise ValueError(f"{args.source}'s data is already a prepared store ({spec.get('path')})")
    if args.workers is not None and args.workers < 1 or args.chunk < 1:
        raise ValueError("--workers and --chunk must be at least 1")
    source = make_source(spec, seed=0)
    workers = args.workers or os.cpu_count() or 1
    meta = write_store(source, args.out, spec=spec, chunk=args.chunk, workers=workers,
                       progress=not args.no_progress)
    out = pathlib.Path(args.out)
    size = (out / "images.npy").stat().st_size
    how = (f"--set data.name=store --set data.path={out}" if "path" in spec else
           f"the data spec {{'name': 'store', 'path': '{out}'}} in an experiment file (this data has no 'path' "
           "field for --set)")
    print(f"jaxgan prepare: wrote {meta['count']:,} images {tuple(meta['shape'])} uint8 ({size / 2**20:,.1f} MiB) "
          f"to {out}; train from it with {how}")
    return 0
