"""Converts pytorch-fid's FID InceptionV3 weights (.pth) to the .npz that jaxgan's FID reads.

Run once (torch is needed here only; the CPU build is enough)::

    wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth fid_inception_v3.npz

The .pth is read with ``torch.load(weights_only=True)`` (tensors only, no code runs) and written
as a plain .npz (no pickle); ``jaxgan.eval.inception.load_fid_inception`` checks every name and
shape when it loads it. The weights are TensorFlow's inception-2015-12-05 graph, the one FID
(Heusel et al., 2017) is defined with, as ported by pytorch-fid (github.com/mseitzer/pytorch-fid).
"""
import argparse
import hashlib
import pathlib
import sys

import numpy as np

from jaxgan.eval import inception

# torch.hub names a file by the first hex digits of its SHA-256.
EXPECTED_SHA256_PREFIX = "6726825d"


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The .pth state dict as float32 numpy arrays (tensors only: weights_only=True)."""
    try:
        import torch
    except ImportError:
        sys.exit("the converter needs torch to read the .pth: pip install torch (CPU build is enough)")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in state_dict.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pth", type=pathlib.Path, help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("npz", type=pathlib.Path, help="output, e.g. fid_inception_v3.npz")
    args = parser.parse_args(argv)
    if not args.pth.is_file():
        sys.exit(f"no file at {args.pth}: download pytorch-fid's weights with\n"
                 f"  wget {inception.FID_WEIGHTS_URL}")
    digest = sha256(args.pth)
    if not digest.startswith(EXPECTED_SHA256_PREFIX):
        print(f"warning: sha256 {digest} does not start with {EXPECTED_SHA256_PREFIX}: this is not "
              "the published pt_inception-2015-12-05 file, and FIDs from it will not compare with "
              "published ones", file=sys.stderr)
    try:
        variables = inception.torch_state_dict_to_flax(read_state_dict(args.pth))
    except ValueError as err:
        sys.exit(f"{args.pth}: {err}")
    inception.save_npz(args.npz, variables)
    print(f"wrote {args.npz} from {args.pth} (sha256 {digest})")


if __name__ == "__main__":
    main()
