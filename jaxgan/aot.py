"""``jaxgan compile``: an experiment's train step compiled for a Cloud TPU slice, on any host, no TPU needed.

    jaxgan compile EXPERIMENT --topology v5e:2x4 [--set KEY=VALUE ...] [--smoke] [--batch N]
                   [--no-generate] [--json FILE] [--hlo DIR] [--phases] [--bytes N]
    jaxgan train EXPERIMENT --dry-run --topology v5e:2x4      (the same report)

libtpu (``pip install 'jaxgan[tpu]'``) holds XLA's TPU compiler, and it compiles for a named slice
without the chips: ``jax.experimental.topologies.get_topology_desc`` describes the slice's devices
(several hosts for a multi-host slice such as ``v5e:4x4``), the run is built for them with jaxgan's
own builder (``jaxgan.run.build``: the step compiled is the step trained, with every platform choice
made for TPU, see :func:`jaxgan.precision.resolve_config`), and ``jit(...).lower(...).compile()``
returns the XLA:TPU executable that would run. maxtext (``train_compile.py``) and axlearn
(``run_aot_compilation.py``) check pod-slice jobs the same way before paying for them.

The report, per chip (every chip runs the same SPMD program):

* HBM: arguments, outputs (less those aliased to donated arguments), temporaries and code, against
  the chip's HBM (:data:`CHIPS`), and whether it fits;
* FLOPs: XLA's count of the optimised program beside the analytic model (``jaxgan.flops``, DCGAN and
  MLP families), and bytes accessed; their ratio (FLOP/byte) against the chip's ridge point
  (peak FLOP/s / HBM bandwidth): below it the step is memory-bound by the compiler's own count;
* a roofline *bound* on the step time, ``max(FLOPs / peak, bytes / bandwidth)`` (Williams, Waterman
  & Patterson, "Roofline", 2009), with the images/s and MFU it implies: a bound from the compiler's
  count and the datasheet, never a measurement (XLA's own ``optimal_seconds`` is not used: for these
  programs the TPU cost model returns negative values). It leaves out the collectives' time on the
  inter-chip links and any stall: the step takes longer;
* HBM traffic, our reading of the optimised HLO: XLA's bytes accessed counts every fusion's operands
  and results wherever they are, and XLA's memory-space assignment keeps many of them in the chip's
  on-chip vector memory (``S(1)`` in their layouts). The accesses of arrays in HBM alone
  (:func:`bytes_by_op`), their FLOP/byte against the ridge, and the roofline bound with them as the
  memory term: the lower bound, as far as this reading of the placement is right (the bound above,
  with every access counted as HBM's, overstates the memory term);
* the collectives in the optimised HLO, each with its bytes;
* the compile time (lowering + compilation, on this host);
* with ``--phases``, where the game has lazy terms (StyleGAN2's R1 and path length, which XLA counts
  as if they ran on every step), each phase compiled alone and the average step;
* with ``--bytes N``, the N groups of instructions that move the most bytes (:func:`bytes_by_op`).

The generator forward that ``jaxgan sample``/``eval`` run (``Run.generate_fn``, a chunk of 1,000
latents, rounded up to a multiple of the chips and split over them) is compiled and reported too,
unless ``--no-generate``.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import pathlib
import re
import sys
import time

from jaxgan import provenance
from jaxgan.errors import UserError
from jaxgan.flops import xla_cost

GiB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU chip's datasheet figures.

    Attributes:
      name: the generation as topology names spell it (``'v5e'`` in ``'v5e:2x2'``).
      device_kind: what libtpu calls its devices (``jax.Device.device_kind``).
      peak_flops: dense bfloat16 peak, FLOP/s per chip.
      hbm_bytes: HBM capacity per chip.
      hbm_bytes_per_s: HBM bandwidth per chip.
      megacore: the chip's two TensorCores act as one device (v4, v5p), as JAX runs them by default;
        libtpu's topology description then needs ``chip_config_name='megacore'`` (else it lists one
        device per core).
    """

    name: str
    device_kind: str
    peak_flops: float
    hbm_bytes: int
    hbm_bytes_per_s: float
    megacore: bool = False

    @property
    def ridge(self) -> float:
        """FLOP per byte at which the chip turns from memory-bound to compute-bound."""
        return self.peak_flops / self.hbm_bytes_per_s


# Per chip, from Google Cloud's system-architecture pages (cloud.google.com/tpu/docs/v4, /v5e, /v5p,
# /v6e, read 2026-12): v4 275 TFLOP/s bf16, 32 GiB HBM2 at 1,200 GB/s; v5e 197 TFLOP/s, 16 GB HBM2
# at 819 GB/s; v5p 459 TFLOP/s, 95 GB HBM2e at 2,765 GB/s; v6e (Trillium) 918 TFLOP/s, 32 GB HBM at
# 1,640 GB/s. Capacities are taken as GiB; the runtime keeps a little of it, so a program that fits
# only just needs a margin.
CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", "TPU v4", 275e12, 32 * GiB, 1200e9, megacore=True),
    "v5e": Chip("v5e", "TPU v5 lite", 197e12, 16 * GiB, 819e9),
    "v5p": Chip("v5p", "TPU v5", 459e12, 95 * GiB, 2765e9, megacore=True),
    "v6e": Chip("v6e", "TPU v6 lite", 918e12, 32 * GiB, 1640e9),
}
EXAMPLE_TOPOLOGIES = ("v5e:2x2", "v5e:2x4", "v5e:4x4", "v4:2x2x1", "v5p:2x2x1", "v6e:2x2")
GENERATE_CHUNK = 1000  # latents per call of Run.generate_fn in jaxgan.run.generate (sample, eval)

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
                "collective-broadcast", "ragged-all-to-all")
_COLLECTIVE_RE = re.compile(r"^\s*(?:ROOT\s+)?%?(\S+) = (.+?) (" + "|".join(_COLLECTIVES) + r")(-start)?\(")
_ARRAY_RE = re.compile(r"\b(pred|[suf]\d+|bf16|f8e\w+|c64|c128)\[([\d,]*)\]")
_ITEM_BITS = {"pred": 8, "bf16": 16, "c64": 64, "c128": 128}


class TopologyError(UserError, ValueError):
    """A topology jaxgan cannot compile for (libtpu absent, an unknown or malformed name)."""


# -- the slice ------------------------------------------------------------------------------------
def libtpu_installed() -> bool:
    """Whether libtpu (XLA's TPU compiler and runtime) can be imported."""
    return importlib.util.find_spec("libtpu") is not None


def libtpu_version() -> str | None:
    """The installed libtpu's version, or None where it is absent."""
    for dist in ("libtpu", "libtpu-nightly"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def chip_for(topology: str) -> Chip:
    """The :class:`Chip` of a topology name such as ``'v5e:2x4'``; a clear error for another name."""
    generation, sep, shape = topology.partition(":")
    if not sep or not re.fullmatch(r"\d+(x\d+){1,2}", shape):
        raise TopologyError(f"--topology {topology!r}: expected GENERATION:SHAPE, e.g. "
                            f"{', '.join(EXAMPLE_TOPOLOGIES)}")
    if generation not in CHIPS:
        raise TopologyError(f"--topology {topology!r}: unknown TPU generation {generation!r}; jaxgan knows "
                            f"{', '.join(CHIPS)} (e.g. {', '.join(EXAMPLE_TOPOLOGIES)})")
    return CHIPS[generation]


def topology_devices(topology: str) -> tuple[list, Chip]:
    """(the slice's devices, its chip) for a topology name, described by libtpu without the chips.

    The devices span every host of a multi-host slice (``d.process_index``); they can be compiled
    for, not run on. Refuses with one line where libtpu is absent or the shape is not a slice.
    """
    chip = chip_for(topology)
    if not libtpu_installed():
        raise TopologyError("compiling for a TPU needs libtpu (XLA's TPU compiler, about 210 MB; no TPU "
                            "is needed): pip install 'jaxgan[tpu]' (or pip install 'jax[tpu]')")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")  # no GCE metadata server to ask off a TPU VM
    # libtpu lets one process at a time load it (/tmp/libtpu_lockfile), to guard the chips; compiling
    # uses none, so two compilations (pytest -n 2, or beside a TPU job on a TPU VM) may run at once
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        kwargs = {"chip_config_name": "megacore"} if chip.megacore else {}
        desc = topologies.get_topology_desc(platform="tpu", topology_name=topology, **kwargs)
    except Exception as e:  # JaxRuntimeError: INVALID_ARGUMENT ... from libtpu
        reason = str(e).split("\n")[0].removeprefix("INVALID_ARGUMENT: ")
        raise TopologyError(f"--topology {topology!r} is not a {chip.name} slice libtpu knows ({reason}); "
                            f"e.g. {', '.join(t for t in EXAMPLE_TOPOLOGIES if t.startswith(chip.name))}") from None
    devices = list(desc.devices)
    return devices, chip


# -- the report -----------------------------------------------------------------------------------
def array_bytes(hlo_type: str) -> int:
    """Bytes of every array in an HLO type string (``bf16[8,128]{1,0}``, or a tuple of them)."""
    return sum(padded_bytes(dtype, dims) for dtype, dims in _ARRAY_RE.findall(hlo_type))


def _tuple_elements(hlo_type: str) -> list[str]:
    """The top-level elements of an HLO tuple type (the type itself when it is not a tuple)."""
    t = hlo_type.strip()
    if not t.startswith("("):
        return [t]
    parts, depth, start = [], 0, 1
    for i, ch in enumerate(t):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 1:
            parts.append(t[start:i].strip())
            start = i + 1
    parts.append(t[start:-1].strip())
    return parts


def collectives(hlo_text: str) -> list[dict]:
    """The collective operations of an HLO module's text, in program order.

    Returns:
      ``[{'op', 'name', 'bytes', 'arrays'}]``: ``op`` without the async ``-start`` suffix; ``bytes``
      the result's (for an async start that is not an all-reduce, the second element of its
      ``(operands, results, ...)`` tuple); ``arrays`` how many arrays it moves (XLA combines many
      gradients into one all-reduce). An op inside a loop body is listed once.
    """
    out = []
    for line in hlo_text.splitlines():
        m = _COLLECTIVE_RE.match(line)
        if not m:
            continue
        name, hlo_type, op, start = m.groups()
        if start and op != "all-reduce":
            elements = _tuple_elements(hlo_type)
            hlo_type = elements[1] if len(elements) > 1 else elements[0]
        out.append({"op": op, "name": name, "bytes": array_bytes(hlo_type),
                    "arrays": len(_ARRAY_RE.findall(hlo_type))})
    return out


def batch_arrays(hlo_text: str, leading: int, dtype: str = "f32", exclude: frozenset = frozenset()) -> list[dict]:
    """Arrays of ``dtype`` with a leading dimension of ``leading`` (the per-chip batch: activations)
    that the optimised program writes to memory: results of the entry computation's instructions
    (values inside a fusion never leave the chip's vector memory, and are not listed). ``exclude``:
    shapes (``'f32[4,4,64,128]'``) that are not activations (the parameters' and optimiser state's);
    an activation that happens to have a parameter's shape (an MLP's ``[batch, hidden]`` beside a
    ``[hidden, hidden]`` weight, batch = hidden) is not listed either.

    Returns:
      ``[{'name', 'shape', 'bytes', 'space', 'op_name'}]``, ``space`` the memory space it is written
      to (:func:`memory_space`: 0 HBM, 1 the chip's vector memory), ``op_name`` the jax operation it
      came from.
    """
    entry = re.search(r"(?ms)^ENTRY .*?^}", hlo_text)
    pattern = re.compile(rf"\b({dtype}\[{leading},[\d,]+\])(\{{[^}}]*\}})?")
    out = []
    for line in (entry.group(0) if entry else "").splitlines():
        m = re.match(r"^\s*(?:ROOT\s+)?%?(\S+) = (.+?) ([a-z][\w\-]*)\(", line)
        if not m or m.group(3) in _NOT_WRITTEN:
            continue
        for shape, layout in pattern.findall(m.group(2)):
            if shape in exclude:
                continue
            op_name = re.search(r'op_name="([^"]+)"', line)
            out.append({"name": m.group(1), "shape": shape, "bytes": array_bytes(shape),
                        "space": memory_space(layout), "op_name": op_name.group(1) if op_name else None})
    return out


_NOT_WRITTEN = ("parameter", "get-tuple-element", "tuple", "bitcast", "constant")

# -- where the bytes go (our reading of the optimised HLO; XLA does not itemise its count) ----------
_LAYOUT_ARRAY_RE = re.compile(r"\b(pred|[suf]\d+|bf16|f8e\w+|c64|c128)\[([\d,]*)\](\{[^}]*\})?")
_INSTRUCTION_RE = re.compile(r"^\s*(?:ROOT\s+)?%?(\S+) = (.+?) ([a-z][\w\-]*)\((.*)$")
_NO_TRAFFIC = _NOT_WRITTEN + ("after-all", "partition-id", "replica-id", "opt-barrier", "conditional", "while",
                              "call")
_SLICES = ("slice", "slice-start", "dynamic-slice")


def _bits(dtype: str) -> int:
    return _ITEM_BITS.get(dtype) or (8 if dtype.startswith("f8") else int(re.sub(r"\D", "", dtype) or 8))


def padded_bytes(dtype: str, dims: str, layout: str | None = None) -> int:
    """Bytes of one HLO array in its tiled layout: the two most minor dimensions (by the layout's
    minor-to-major order) rounded up to the tile, ``T(8,128)``: ``bf16[64,32,32,64]{3,0,2,1:T(8,128)}``
    holds 64 channels on 128 lanes, twice its data."""
    bits = _bits(dtype)
    shape = [int(d) for d in dims.split(",") if d]
    m = re.match(r"\{([\d,]*)(?::(.*))?\}", layout or "")
    order = [int(i) for i in m.group(1).split(",") if i] if m else []
    physical = [shape[i] for i in order] if sorted(order) == list(range(len(shape))) else shape[::-1]
    tile = re.search(r"T\(([\d,]+)\)", (m.group(2) or "") if m else "")
    if tile and physical:
        for i, t in enumerate(int(x) for x in reversed(tile.group(1).split(","))):
            if i < len(physical):
                physical[i] = -(-physical[i] // t) * t
    return math.prod(physical) * bits // 8


def logical_bytes(dtype: str, dims: str) -> int:
    """Bytes of one HLO array's elements, without its layout's tile padding."""
    bits = _bits(dtype)
    return math.prod(int(d) for d in dims.split(",") if d) * bits // 8


def memory_space(layout: str | None) -> int:
    """The memory space of an HLO array's layout (``{3,2,1,0:T(8,128)S(1)}`` -> 1; none given -> 0).

    On TPU, XLA's memory-space assignment marks the arrays it places in the chip's on-chip vector
    memory (VMEM) ``S(1)``; unmarked arrays are in HBM. The other spaces seen in TPU programs hold
    scalars and the synchronisation flags of asynchronous copies (``S(2)``, ``S(6)``: bytes, not
    traffic)."""
    m = re.search(r"S\((\d+)\)", layout or "")
    return int(m.group(1)) if m else 0


HBM, ON_CHIP = 0, 1  # memory spaces of TPU programs (:func:`memory_space`)
PADDING_ADVICE_SHARE = 0.25  # tile padding above this share of the traffic: the report says how to cut it


def _traffic(hlo_text: str):
    """Each instruction outside fusions that moves memory, as ``(op, jax_op, [(bytes, space, logical,
    array), ...])``: the operands it reads and the results it writes, each in its tiled layout
    (:func:`padded_bytes`) and memory space (:func:`memory_space`), with its bytes without the tiles'
    padding (:func:`logical_bytes`) and its type (``'bf16[8,32,32,8]'``). See :func:`bytes_by_op`."""
    computations, name = {}, None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if head and not line.startswith(" "):
            name = head.group(1)
            computations[name] = []
        elif line.startswith("}"):
            name = None
        elif name:
            computations[name].append(line)
    inner = set(re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", hlo_text))
    types = {}
    for lines in computations.values():
        for line in lines:
            m = _INSTRUCTION_RE.match(line)
            if m:
                types[m.group(1)] = m.group(2)

    def accesses(hlo_type: str) -> list[tuple[int, int, int, str]]:
        return [(padded_bytes(*a), memory_space(a[2]), logical_bytes(a[0], a[1]), f"{a[0]}[{a[1]}]")
                for a in _LAYOUT_ARRAY_RE.findall(hlo_type)]

    for cname, lines in computations.items():
        if cname in inner:
            continue
        for line in lines:
            m = _INSTRUCTION_RE.match(line)
            if not m or m.group(3) in _NO_TRAFFIC or m.group(3).endswith("-done"):
                continue
            _, out_type, op, rest = m.groups()
            operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
            read = [a for o in operands for a in accesses(types.get(o, ""))]
            if op in _SLICES:  # the part read (the result's size) from the operand's space, then written
                out = accesses(out_type)
                part = out[-2] if op == "slice-start" and len(out) >= 2 else (out[0] if out else (0, HBM, 0, ""))
                moved = [(part[0], read[0][1] if read else HBM, *part[2:]), part]
            elif op == "copy-start":  # (destination, source, flag): the source read, the destination written
                moved = read + accesses(_tuple_elements(out_type)[0])
            else:
                moved = accesses(out_type) + read
            op_name = re.search(r'op_name="([^"]+)"', line)
            if op_name:
                what = "/".join(op_name.group(1).split("/")[-3:])
            else:  # XLA's own (prefetches into on-chip memory, ...): by the array they move
                target = re.search(r'custom_call_target="([^"]+)"', line)
                first = _LAYOUT_ARRAY_RE.search(out_type if op not in _SLICES else types.get(
                    (re.findall(r"%([\w.\-]+)", rest) or [""])[0], ""))
                what = " ".join(x for x in ((target.group(1) if target else ""),
                                            f"{first.group(1)}[{first.group(2)}]" if first else "") if x)
            yield op, what, moved


def bytes_by_op(hlo_text: str, top: int = 15) -> dict:
    """Where an optimised program's memory traffic goes, by our reading of its HLO text.

    Each instruction outside fusions (the entry computation and the bodies of conditionals and
    loops, a loop body once) counts the operands it reads and the results it writes, in their tiled
    layouts (:func:`padded_bytes`); a slice counts its result twice (read and written), not its
    operand, and an asynchronous copy its source and destination. Grouped by HLO op and the jax
    operation it came from (the last three parts of its ``op_name``: the network or pass, the layer,
    the operation). XLA's ``bytes accessed`` is not itemised: ``total`` is this reading's sum, to be
    compared with it, not taken for it (a conditional's branches are counted as XLA counts them,
    every one).

    Each access is also placed by the memory space of its array (:func:`memory_space`): ``hbm``
    sums those in HBM, ``on_chip`` those XLA placed in the chip's vector memory. XLA's count, and
    ``total``, hold both; the roofline's memory term is HBM's.

    ``padding`` is the part of ``total`` that is the tiles' padding, not elements: an array whose
    minor dimension (the channels, in a convolution's NHWC) is narrower than the tile's 128 lanes
    moves whole tiles (8 channels: 16x their bytes). ``padded_arrays`` names the three array types
    with the most padding moved, most first (``[{'array', 'padding', 'fill'}]``, ``fill`` the elements'
    share of the bytes moved).

    Returns:
      ``{'total', 'hbm', 'on_chip', 'padding', 'padded_arrays', 'groups': [{'op', 'jax_op', 'bytes',
      'hbm', 'padding', 'count'}]}``, the ``top`` largest groups (``jax_op`` of an instruction XLA
      made, such as a prefetch into on-chip memory: the array it moves, e.g. ``'f32[3,3,512,512]'``).
    """
    groups: dict[tuple, list] = {}
    arrays: dict[str, list] = {}
    total = hbm = on_chip = padding = 0
    for op, what, moved in _traffic(hlo_text):
        n = sum(m[0] for m in moved)
        n_hbm = sum(m[0] for m in moved if m[1] == HBM)
        n_pad = sum(m[0] - m[2] for m in moved)
        g = groups.setdefault((op, what), [0, 0, 0, 0])
        g[0] += n
        g[1] += n_hbm
        g[2] += 1
        g[3] += n_pad
        total += n
        hbm += n_hbm
        padding += n_pad
        on_chip += sum(m[0] for m in moved if m[1] == ON_CHIP)
        for b, _, logical, array in moved:
            a = arrays.setdefault(array, [0, 0])
            a[0] += b
            a[1] += b - logical
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    padded = sorted(((k, v) for k, v in arrays.items() if v[1] > 0), key=lambda kv: -kv[1][1])[:3]
    return {"total": total, "hbm": hbm, "on_chip": on_chip, "padding": padding,
            "padded_arrays": [{"array": k, "padding": p, "fill": (b - p) / b} for k, (b, p) in padded],
            "groups": [{"op": op, "jax_op": jax_op, "bytes": b, "hbm": h, "padding": pad, "count": c}
                       for (op, jax_op), (b, h, c, pad) in ranked]}


def program_report(compiled, chip: Chip, *, compile_s: float, model_flops: float | None,
                   images: int | None, per_chip_batch: int | None = None,
                   state_shapes: frozenset = frozenset(), bytes_top: int = 0) -> dict:
    """The per-chip figures of one compiled SPMD program (see the module docstring).

    Args:
      compiled: a compiled jax program for the slice (``jit(f).lower(...).compile()``).
      chip: the slice's chip.
      compile_s: seconds spent lowering and compiling it.
      model_flops: the analytic FLOPs of one call per chip, or None where there is no model.
      images: images one call processes over the whole slice (for the implied images/s), or None.
      per_chip_batch: examples per chip, to find the float32 activations it writes (and where).
      state_shapes: the f32 shapes of the state's leaves (parameters are not activations).
      bytes_top: add ``bytes_by_op``, the largest groups of :func:`bytes_by_op` (from the same
        reading of the HLO that gives the HBM traffic).
    """
    mem = compiled.memory_analysis()
    memory = {k: int(getattr(mem, f"{k}_size_in_bytes", 0) or 0)
              for k in ("argument", "output", "alias", "temp", "generated_code")}
    memory["total"] = (memory["argument"] + memory["output"] - memory["alias"] + memory["temp"]
                       + memory["generated_code"])
    memory["hbm"] = chip.hbm_bytes
    memory["fits"] = memory["total"] <= chip.hbm_bytes
    cost = xla_cost(compiled)
    flops = float(cost.get("flops", 0.0))
    accessed = float(cost.get("bytes accessed", 0.0))
    intensity = flops / accessed if accessed else None
    compute_s, memory_s = flops / chip.peak_flops, accessed / chip.hbm_bytes_per_s
    bound_s = max(compute_s, memory_s)
    text = compiled.as_text()
    traffic = bytes_by_op(text, bytes_top)
    hbm_s = traffic["hbm"] / chip.hbm_bytes_per_s
    ops = collectives(text)
    f32 = batch_arrays(text, per_chip_batch, exclude=state_shapes) if per_chip_batch else []
    report = {
        "compile_s": compile_s,
        "memory": memory,
        "flops": {"xla": flops, "model": model_flops,
                  "xla_over_model": (flops / model_flops) if model_flops else None},
        "bytes_accessed": accessed,
        "flop_per_byte": intensity,
        "ridge_flop_per_byte": chip.ridge,
        "bound": {
            "what": "roofline lower bound on the time per call from XLA's counts and the datasheet; "
                    "not a measurement",
            "seconds": bound_s, "compute_s": compute_s, "memory_s": memory_s,
            "limited_by": "compute" if compute_s >= memory_s else "memory",
            "images_per_s": (images / bound_s) if (images and bound_s) else None,
            "mfu": ((model_flops or flops) / bound_s / chip.peak_flops) if bound_s else None,
        },
        "hbm_traffic": {
            "what": "our reading of the optimised HLO (jaxgan.aot.bytes_by_op): the accesses of arrays XLA "
                    "placed in HBM; XLA's bytes accessed counts those in on-chip memory too",
            "hbm": traffic["hbm"], "on_chip": traffic["on_chip"], "total": traffic["total"],
            "padding": traffic["padding"], "padded_arrays": traffic["padded_arrays"],
            "flop_per_byte": flops / traffic["hbm"] if traffic["hbm"] else None,
            "bound_s": max(compute_s, hbm_s), "memory_s": hbm_s,
            "limited_by": "compute" if compute_s >= hbm_s else "memory",
        },
        "collectives": ops,
        "float32_activations": {"count": len(f32), "bytes": sum(a["bytes"] for a in f32), "arrays": f32,
                                "hbm_count": sum(a["space"] == HBM for a in f32),
                                "hbm_bytes": sum(a["bytes"] for a in f32 if a["space"] == HBM)},
    }
    if bytes_top:
        report["bytes_by_op"] = traffic
    return report


def compile_for_topology(config, module, topology: str, *, generate: bool = True, hlo_dir=None,
                         phases: bool = False, bytes_top: int = 0) -> dict:
    """Builds ``config``'s run for the TPU slice ``topology`` and compiles its train step (and the
    generator forward of sample/eval) there; returns the report (see the module docstring).

    ``phases``: where the game has lazy terms (``jaxgan.game.every``: StyleGAN2's R1 every 16 steps
    and path length every 4), XLA's count of the step is that of a step running every one of them
    (it counts each ``lax.cond`` branch as taken). With ``phases`` the step is also compiled once per
    distinct phase of their period, with only the terms that phase runs (``jaxgan.game.phase_step``),
    and the report adds each phase and the average step over the period (``train_step['phases']``,
    ``train_step['average']``): one more compile per phase.

    ``bytes_top``: add each program's ``bytes_by_op`` (:func:`bytes_by_op`, its largest groups).

    Raises:
      TopologyError (a UserError): libtpu absent, an unknown topology.
      ValueError: a global batch that does not divide over the slice's chips (``jaxgan.sharding``).
    """
    import jax
    import jax.numpy as jnp

    from jaxgan import flops as flops_lib, game as game_lib, precision, run as run_lib, sharding

    devices, chip = topology_devices(topology)
    run = run_lib.build(config, module, devices, source=_source(config))
    mesh = run.mesh
    resolved = precision.resolve_config(config, run.platform)  # what the experiment's build saw
    example = run_lib.example_batch(run)
    abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(mesh))
                      for k, v in example.items()}
    state = run.step.abstract_state(jax.tree.map(lambda x: x[0], example))
    n = len(devices)
    t0 = time.perf_counter()
    with game_lib.recording_intervals() as intervals:
        compiled = run.step.lower(state, abstract_batch).compile()
    step_s = time.perf_counter() - t0
    analytic = flops_lib.step_flops_for_config(config, run.source.info.shape)
    shapes = frozenset(f"f32[{','.join(map(str, x.shape))}]" for x in jax.tree.leaves(state))
    report_kw = dict(model_flops=analytic and flops_lib.per_device(analytic, n), images=run.images_per_step,
                     per_chip_batch=int(config.train.batch_size) // n, state_shapes=shapes)
    programs = {"train_step": program_report(compiled, chip, compile_s=step_s, bytes_top=bytes_top, **report_kw)}
    programs["train_step"]["lazy_intervals"] = sorted(intervals)
    if phases and intervals:
        programs["train_step"].update(_phase_reports(run, state, abstract_batch, intervals, chip, report_kw))
    compiled_programs = {"train_step": compiled}
    if generate:
        params, model_state = run_lib.sampling_variables(state)
        z, labels = _abstract_generate_inputs(run, mesh)
        t0 = time.perf_counter()
        gen = run.generate_fn.lower(params, model_state, z, labels).compile()
        programs["generate"] = program_report(  # z split over the chips along the batch
            gen, chip, compile_s=time.perf_counter() - t0, model_flops=None, images=z.shape[0],
            per_chip_batch=z.shape[0] // n, state_shapes=shapes, bytes_top=bytes_top)
        compiled_programs["generate"] = gen
    if hlo_dir:
        pathlib.Path(hlo_dir).mkdir(parents=True, exist_ok=True)
        for name, program in compiled_programs.items():
            (pathlib.Path(hlo_dir) / f"{name}.hlo.txt").write_text(program.as_text())
    return {
        "experiment": pathlib.Path(config.get("experiment") or "experiment").stem,
        "topology": topology, "chip": dataclasses.asdict(chip),
        "chips": n, "hosts": len({d.process_index for d in devices}),
        "batch": int(config.train.batch_size), "per_chip_batch": int(config.train.batch_size) // n,
        "n_critic": int(config.train.n_critic),
        "compute_dtype": jnp.dtype(precision.compute_dtype(resolved.get("compute_dtype"), run.platform)).name,
        "upsample": (resolved.get("model") or {}).get("upsample"),
        **({"fir": resolved["model"]["fir"]} if "fir" in (resolved.get("model") or {}) else {}),
        "versions": {"jax": jax.__version__, "libtpu": libtpu_version(), "python": sys.version.split()[0]},
        "source": provenance.source(),
        "programs": programs,
    }


def _phase_reports(run, state, abstract_batch, intervals, chip: Chip, report_kw: dict) -> dict:
    """The train step compiled once per phase of its lazy terms, and the average step over their
    period: FLOPs and bytes weighted by each phase's share of the steps, the bound the average of the
    phases' bounds (each phase is its own roofline)."""
    from jaxgan import game as game_lib

    out = []
    max_traces, run.step.max_traces = run.step.max_traces, None  # each phase is a deliberate new trace
    try:
        compiled_phases = []
        for step, weight in game_lib.lazy_phases(intervals):
            t0 = time.perf_counter()
            with game_lib.phase_step(step):  # fresh: jax's cached trace is the step with the conds
                compiled = run.step.lower(state, abstract_batch, fresh=True).compile()
            compiled_phases.append((step, weight, compiled, time.perf_counter() - t0))
    finally:
        run.step.max_traces = max_traces
    for step, weight, compiled, seconds in compiled_phases:
        p = program_report(compiled, chip, compile_s=seconds, **report_kw)
        runs = [k for k in sorted(intervals) if step % k == 0]
        out.append({"step": step, "weight": weight, "runs_every": runs, "flops": p["flops"]["xla"],
                    "bytes_accessed": p["bytes_accessed"], "flop_per_byte": p["flop_per_byte"],
                    "bound_s": p["bound"]["seconds"], "hbm": p["memory"]["total"], "compile_s": p["compile_s"],
                    "hbm_traffic": p["hbm_traffic"]["hbm"], "hbm_bound_s": p["hbm_traffic"]["bound_s"]})
    flops = sum(p["weight"] * p["flops"] for p in out)
    accessed = sum(p["weight"] * p["bytes_accessed"] for p in out)
    bound_s = sum(p["weight"] * p["bound_s"] for p in out)
    hbm_traffic = sum(p["weight"] * p["hbm_traffic"] for p in out)
    images = report_kw.get("images")
    average = {"flops": flops, "bytes_accessed": accessed, "flop_per_byte": flops / accessed if accessed else None,
               "ridge_flop_per_byte": chip.ridge, "bound_s": bound_s,
               "images_per_s": images / bound_s if images and bound_s else None,
               "mfu": flops / bound_s / chip.peak_flops if bound_s else None,
               "limited_by": "compute" if flops / chip.peak_flops >= accessed / chip.hbm_bytes_per_s else "memory",
               "hbm_traffic": hbm_traffic, "flop_per_hbm_byte": flops / hbm_traffic if hbm_traffic else None,
               "hbm_bound_s": sum(p["weight"] * p["hbm_bound_s"] for p in out)}
    return {"phases": out, "average": average}


def _source(config):
    """The config's data source; where its files are absent here, a synthetic one of the configured
    shape (compiling needs shapes, not the data)."""
    from jaxgan.data.factory import make_run_source

    try:
        return make_run_source(config)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"jaxgan compile: the data source cannot be built here ({e}); compiling for the shapes its "
              "spec declares", file=sys.stderr)
        return make_run_source(config, stand_in=True)  # a clear error where the spec declares none


def _abstract_generate_inputs(run, mesh):
    """(z, labels) as sample/eval pass them to ``Run.generate_fn`` (``jaxgan.run.generate``): a
    chunk of ``GENERATE_CHUNK`` latents rounded up to a multiple of the chips, split over them."""
    import jax
    import numpy as np

    from jaxgan import run as run_lib, sharding

    rep = sharding.batch_sharding(mesh, critic_axis=False)
    chunk = run_lib.generate_chunk(mesh, GENERATE_CHUNK)
    if hasattr(run.game, "sample_inputs"):  # image-to-image games: inputs drawn from the data
        x, _ = run.game.sample_inputs(run.source, 1, 0)
        z = jax.ShapeDtypeStruct((chunk, *np.shape(x)[1:]), np.asarray(x).dtype, sharding=rep)
    else:
        z = jax.ShapeDtypeStruct((chunk, run.game.latent_dim), np.float32, sharding=rep)
    labels = None
    if getattr(run.game, "num_classes", None) is not None:
        labels = jax.ShapeDtypeStruct((chunk,), np.int32, sharding=rep)
    return z, labels


# -- the text -------------------------------------------------------------------------------------
def _gb(x) -> str:
    """Bytes in the largest decimal unit that keeps a digit before the point (1.2 GB, 340 kB)."""
    if x is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.0f} B"


def _ratio(x) -> str:
    """FLOP/byte: whole numbers from 10 up, two digits below (tiny programs read 0.11, not 0)."""
    return f"{x or 0:.0f}" if (x or 0) >= 10 else f"{x or 0:.2g}"


def format_report(report: dict) -> str:
    """The report as text: one block per program."""
    chip = report["chip"]
    lines = [
        f"{report['experiment']} on {report['topology']} ({report['chips']} x {chip['device_kind']}, "
        f"{report['hosts']} host{'s' if report['hosts'] > 1 else ''}): global batch {report['batch']} "
        f"({report['per_chip_batch']} a chip) x n_critic {report['n_critic']}, compute {report['compute_dtype']}"
        + (f", upsample {report['upsample']}" if report.get("upsample") else "")
        + (f", FIR {report['fir']}" if report.get("fir") else ""),
        f"jax {report['versions']['jax']}, libtpu {report['versions']['libtpu']}; datasheet: "
        f"{chip['peak_flops'] / 1e12:g} TFLOP/s bf16, {chip['hbm_bytes'] / GiB:g} GiB HBM at "
        f"{chip['hbm_bytes_per_s'] / 1e9:g} GB/s (ridge {chip['peak_flops'] / chip['hbm_bytes_per_s']:.0f} FLOP/byte)",
    ]
    for name, p in report["programs"].items():
        m, f, b = p["memory"], p["flops"], p["bound"]
        ratio = (f" = {f['xla_over_model']:.3f} x the analytic model's {f['model'] / 1e9:.4g}"
                 if f["xla_over_model"] else " (no analytic model for this program)")
        ops = p["collectives"]
        by_op: dict[str, list] = {}
        for c in ops:
            by_op.setdefault(c["op"], []).append(c["bytes"])
        coll = "; ".join(f"{op} x{len(v)}: {', '.join(_gb(x) for x in v)}" for op, v in by_op.items()) or "none"
        lines += [
            f"[{name}] per chip, compiled in {p['compile_s']:.1f} s",
            f"  HBM      {_gb(m['total'])} of {m['hbm'] / GiB:g} GiB: {'fits' if m['fits'] else 'DOES NOT FIT'} "
            f"(arguments {_gb(m['argument'])}, outputs {_gb(m['output'])} of which {_gb(m['alias'])} aliased, "
            f"temporaries {_gb(m['temp'])}, code {_gb(m['generated_code'])})",
            f"  FLOPs    XLA {f['xla'] / 1e9:.4g} GFLOP{ratio}",
            f"  bytes    {_gb(p['bytes_accessed'])} accessed: {_ratio(p['flop_per_byte'])} FLOP/byte vs ridge "
            f"{p['ridge_flop_per_byte']:.0f} ({b['limited_by']}-bound by XLA's count)",
            f"  bound    step >= {b['seconds'] * 1e3:.3f} ms (compute {b['compute_s'] * 1e3:.3f}, memory "
            f"{b['memory_s'] * 1e3:.3f}): at most {b['images_per_s'] or 0:,.0f} images/s, MFU <= "
            f"{100 * (b['mfu'] or 0):.0f}% (a bound from the compiler's count, not a measurement)",
            *_hbm_lines(p),
            f"  collectives  {coll}",
            _f32_line(p["float32_activations"]),
        ]
        lines += _lazy_lines(p)
        if "bytes_by_op" in p:
            by = p["bytes_by_op"]
            lines.append(f"  bytes by op (our reading of the HLO: operands and results in their tiled layouts; "
                         f"{_gb(by['total'])} in all, {_gb(by['hbm'])} of it HBM's; XLA {_gb(p['bytes_accessed'])}):")
            lines += [f"    {_gb(g['bytes']):>9} (HBM {_gb(g.get('hbm')):>9}, tile padding "
                      f"{_gb(g.get('padding')):>9})  {g['op']:<13} {g['jax_op'] or '-'} (x{g['count']})"
                      for g in by["groups"]]
    return "\n".join(lines)


def _f32_cell(a: dict | None) -> str:
    if a is None:
        return "-"
    return f"{a['count']} ({a['hbm_count']} HBM)" if a["count"] and "hbm_count" in a else str(a["count"])


def _f32_line(a: dict) -> str:
    line = f"  float32 activations written: {a['count']}" + (f" ({_gb(a['bytes'])})" if a["count"] else "")
    if a["count"] and "hbm_count" in a:
        line += (f", {a['hbm_count']} of them to HBM" + (f" ({_gb(a['hbm_bytes'])})" if a["hbm_count"] else "")
                 + ", the rest to on-chip memory")
    return line


def _hbm_lines(p: dict) -> list[str]:
    h = p.get("hbm_traffic")
    if not h:
        return []
    return [f"  on HBM   {_gb(h['hbm'])} of the {_gb(h['total'])} our reading of the HLO finds are HBM's (the "
            f"rest, {_gb(h['on_chip'])}, in on-chip memory by XLA's assignment): {_ratio(h['flop_per_byte'])} "
            f"FLOP/HBM byte ({h['limited_by']}-bound on HBM), step >= {h['bound_s'] * 1e3:.3f} ms on HBM "
            f"(memory {h['memory_s'] * 1e3:.3f}; a bound, not a measurement)"] + _padding_lines(h)


def _padding_lines(h: dict) -> list[str]:
    """How much of the traffic is tile padding, and in which arrays (with advice where it is much)."""
    if not h.get("total") or "padding" not in h:
        return []
    share = h["padding"] / h["total"]
    worst = ", ".join(f"{a['array']} ({100 * a['fill']:.0f}% filled)" for a in h.get("padded_arrays", []))
    line = (f"  tiles    {_gb(h['padding'])} of those {_gb(h['total'])} ({100 * share:.0f}%) is the padding of "
            f"the chip's tiles, not data" + (f"; most in {worst}" if worst else ""))
    if share < PADDING_ADVICE_SHARE:
        return [line]
    return [line, "           arrays narrower than the tiles' 128 lanes (the channels, minor in NHWC) move "
                  "whole tiles: widen the network's channels to multiples of 128 where it can "
                  "(BENCHMARKS.md, stylegan2_mnist)"]


def _lazy_lines(p: dict) -> list[str]:
    intervals = p.get("lazy_intervals")
    if not intervals:
        return []
    every = ", ".join(map(str, intervals))
    if "phases" not in p:
        return [f"  lazy     terms every {every} steps: the figures above count them as run on every step "
                "(XLA counts each lax.cond branch as taken); --phases compiles each phase and the average step"]
    lines = [f"  lazy     terms every {every} steps, each phase compiled alone:"]
    for ph in p["phases"]:
        what = "+".join(f"every {k}" for k in ph["runs_every"]) or "no lazy term"
        lines.append(f"    step {ph['step']:<3} ({100 * ph['weight']:.3g}% of steps; {what}): "
                     f"{ph['flops'] / 1e9:.4g} GFLOP, {_gb(ph['bytes_accessed'])}, "
                     f"{_ratio(ph['flop_per_byte'])} FLOP/byte, bound {ph['bound_s'] * 1e3:.3f} ms"
                     + (f"; on HBM {_gb(ph['hbm_traffic'])}, {_ratio(ph['flops'] / ph['hbm_traffic'])} FLOP/HBM "
                        f"byte, bound {ph['hbm_bound_s'] * 1e3:.3f} ms" if ph.get("hbm_traffic") else "")
                     + f"; holds {_gb(ph['hbm'])} of HBM")
    a = p["average"]
    lines.append(f"    average step: {a['flops'] / 1e9:.4g} GFLOP, {_gb(a['bytes_accessed'])}: "
                 f"{_ratio(a['flop_per_byte'])} FLOP/byte vs ridge {a['ridge_flop_per_byte']:.0f} "
                 f"({a['limited_by']}-bound by XLA's count); bound {a['bound_s'] * 1e3:.3f} ms: at most "
                 f"{a['images_per_s'] or 0:,.0f} images/s, MFU <= {100 * (a['mfu'] or 0):.0f}% (a bound, not a measurement)")
    if a.get("hbm_traffic"):
        lines.append(f"    average step on HBM (our reading): {_gb(a['hbm_traffic'])}, "
                     f"{_ratio(a['flop_per_hbm_byte'])} FLOP/HBM byte, bound {a['hbm_bound_s'] * 1e3:.3f} ms")
    return lines


def markdown_table(reports: list[dict]) -> str:
    """One Markdown row per report and program: the table BENCHMARKS.md keeps (from ``--json`` lines)."""
    head = ("experiment", "topology", "batch (per chip)", "program", "HBM / chip", "fits", "XLA GFLOP / chip",
            "XLA / model", "FLOP/byte (ridge)", "FLOP/HBM byte", "bound ms", "bound img/s", "MFU bound", "collectives",
            "f32 act.", "compile s")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        for name, p in r["programs"].items():
            m, f, b = p["memory"], p["flops"], p["bound"]
            by_op: dict[str, list] = {}
            for c in p["collectives"]:
                by_op.setdefault(c["op"], []).append(c["bytes"])
            coll = ", ".join(f"{len(v)} {op} ({_gb(sum(v))})" for op, v in by_op.items()) or "none"
            rows.append("| " + " | ".join((
                r["experiment"], r["topology"], f"{r['batch']} ({r['per_chip_batch']})", name, _gb(m["total"]),
                "yes" if m["fits"] else "**no**", f"{f['xla'] / 1e9:.4g}",
                f"{f['xla_over_model']:.3f}" if f["xla_over_model"] else "-",
                f"{p['flop_per_byte'] or 0:.0f} ({p['ridge_flop_per_byte']:.0f})",
                f"{p['hbm_traffic']['flop_per_byte'] or 0:.0f}" if p.get("hbm_traffic") else "-",
                f"{b['seconds'] * 1e3:.3g}",
                f"{b['images_per_s'] or 0:,.0f}", f"{100 * (b['mfu'] or 0):.0f}%", coll,
                _f32_cell(p.get("float32_activations")),
                f"{p['compile_s']:.0f}")) + " |")
    return "\n".join(rows)


def provenance_line(reports: list[dict]) -> str:
    """What the records of a table were compiled with: jax/libtpu versions, jaxgan commits, times."""
    versions = sorted({f"jax {r['versions']['jax']}, libtpu {r['versions']['libtpu']}"
                       for r in reports if r.get("versions")})
    commits: dict[str, int] = {}
    times = []
    for r in reports:
        src = r.get("source") or {}
        key = provenance.describe(src) or "no commit recorded"
        commits[key] = commits.get(key, 0) + 1
        times += [src["utc"]] if src.get("utc") else []
    when = f"; compiled {min(times)} to {max(times)}" if times else ""
    return (f"{len(reports)} records: {'; '.join(versions or ['versions not recorded'])}; jaxgan "
            + ", ".join(f"{c} ({n})" for c, n in commits.items()) + when + ".")


# -- the command ----------------------------------------------------------------------------------
def register(subparsers) -> None:
    c = subparsers.add_parser("compile", help="compile an experiment's train step for a Cloud TPU slice "
                              "without a TPU, and report memory, FLOPs, a roofline bound and collectives per chip")
    c.add_argument("experiment", nargs="?", default="dcgan_mnist",
                   help="a name in experiments/ or a path to an experiment file (default dcgan_mnist)")
    add_topology_arguments(c)
    c.add_argument("--table", metavar="FILE.jsonl",
                   help="print the reports saved in FILE by --json as a Markdown table, compiling nothing")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    c.add_argument("--smoke", action="store_true", help="the experiment's tiny variant")
    c.add_argument("--batch", type=int, help="global batch size (default: the config's)")
    c.set_defaults(handler=main)


def add_topology_arguments(parser, required: bool = False) -> None:
    """``--topology`` and the report's options (shared by ``jaxgan compile`` and ``train --dry-run``)."""
    parser.add_argument("--topology", required=required, metavar="GEN:SHAPE",
                        help=f"a Cloud TPU slice: {', '.join(CHIPS)} with its shape, e.g. "
                             f"{', '.join(EXAMPLE_TOPOLOGIES)} (multi-host slices included)")
    parser.add_argument("--no-generate", action="store_true",
                        help="compile the train step only, not the generator forward of sample/eval")
    parser.add_argument("--json", metavar="FILE", help="append the report to FILE as one JSON line")
    parser.add_argument("--hlo", metavar="DIR", help="write the optimised HLO of each program to DIR")
    parser.add_argument("--bytes", type=int, default=0, metavar="N",
                        help="list the N groups of instructions that move the most bytes, read from the optimised HLO")
    parser.add_argument("--phases", action="store_true",
                        help="where the step has lazy terms (StyleGAN2's R1 and path length), also compile "
                             "each phase of their period and report the average step (one compile a phase)")


def prepare_host() -> None:
    """Compiling for a topology needs no local accelerator: use the CPU backend here (a TPU VM's
    chips stay free), unless the process chose its platforms already."""
    import jax

    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    if os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms:
        return
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():  # too late to choose: the process keeps its backends
            return
    except (ImportError, AttributeError):
        return
    jax.config.update("jax_platforms", "cpu")


def report_for_args(config, module, args) -> int:
    """Compiles ``config`` for ``args.topology``, prints the report, appends it to ``--json`` (the
    options ``jaxgan train --dry-run --topology`` lacks take their defaults)."""
    chip_for(args.topology)  # a bad name fails before anything is built
    prepare_host()
    report = compile_for_topology(config, module, args.topology,
                                  generate=not getattr(args, "no_generate", False),
                                  hlo_dir=getattr(args, "hlo", None), phases=getattr(args, "phases", False),
                                  bytes_top=getattr(args, "bytes", 0) or 0)
    print(format_report(report))
    if getattr(args, "json", None):
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a") as f:
            f.write(json.dumps(report) + "\n")
    return 0


def main(args) -> int:
    from jaxgan import config as config_lib

    if args.table:
        try:
            lines = pathlib.Path(args.table).read_text().splitlines()
            reports = [json.loads(line) for line in lines if line.strip()]
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"--table {args.table}: cannot read it as jaxgan compile --json records ({e})") from None
        try:
            print(markdown_table(reports))
            print("\n" + provenance_line(reports))
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f"--table {args.table}: a line is not a jaxgan compile --json record ({e!r} "
                            "missing or of the wrong kind)") from None
        return 0
    if not args.topology:
        raise UserError("--topology is required (e.g. v5e:2x4), unless --table prints saved reports")

    sets = list(args.set) + ([f"train.batch_size={args.batch}"] if args.batch else [])
    config, module = config_lib.resolve(args.experiment, sets, smoke=args.smoke)
    return report_for_args(config, module, args)
