"""Reads NVIDIA's StyleGAN2-ADA network pickles without running code from them (and without torch).

An ADA snapshot (``network-snapshot-*.pkl``, and the published ``ffhq.pkl``, ``cifar10.pkl`` ...)
is ``pickle.dump(dict(training_set_kwargs, G, D, G_ema, augment_pipe))`` where every network is a
"persistent" object: ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with the Python
source of its module inside ``meta``, which an ordinary ``pickle.load`` *executes*. A pickle can
name any importable callable, so loading an untrusted one normally runs whatever it wants.

:func:`load` uses a restricted unpickler instead. It resolves only these globals, each to a
function of this module that builds plain data:

* ``torch_utils.persistence._reconstruct_persistent_obj`` -> a :class:`Record` (class name, init
  args and kwargs, and the flattened parameters and buffers); the embedded source is never run;
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` / ``_rebuild_parameter_with_state``
  -> numpy arrays; ``torch.storage._load_from_bytes`` -> the storage, parsed from torch's legacy
  serialisation format by the same restricted reader (``torch.FloatStorage`` etc. name dtypes);
* ``collections.OrderedDict``, ``dnnlib.util.EasyDict`` -> dicts; ``numpy.dtype`` and numpy's
  ``scalar`` -> numpy scalars.

Anything else is refused with one line (:class:`NotANetworkPickle`) before it is called.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import Any

import numpy as np

from jaxgan.errors import UserError


class NotANetworkPickle(UserError, ValueError):
    """The file is not an NVIDIA StyleGAN2-ADA pickle this reader accepts (nothing of it was run)."""


class Record:
    """An inert stand-in for one of NVIDIA's persistent modules: what it was built with and holds."""

    def __init__(self, class_name: str, init_args: tuple, init_kwargs: dict, state: dict):
        self.class_name = class_name
        self.init_args = tuple(init_args)
        self.init_kwargs = dict(init_kwargs)
        self.state_dict = state

    def __repr__(self) -> str:
        return f"Record({self.class_name}, {len(self.state_dict)} tensors)"


class _EasyDict(dict):
    """dnnlib.util.EasyDict as a plain dict (its pickled attributes land in the dict)."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _Dtype:
    """numpy.dtype(...) as pickled: args, then a BUILD with the byte order."""

    def __init__(self, name, *_):
        self.dtype = np.dtype(str(name))

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in "<>|=":
            self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


def _scalar(dtype, data=None):
    dt = dtype.dtype if isinstance(dtype, _Dtype) else np.dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise NotANetworkPickle("a numpy scalar in the pickle has malformed data")
    return np.frombuffer(data, dt)[0]


def _rebuild_tensor(storage, offset, size, stride, *_):
    if not isinstance(storage, np.ndarray):
        raise NotANetworkPickle("a tensor in the pickle does not refer to a storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return storage[int(offset)].copy()
    end = int(offset) + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if int(offset) < 0 or min(stride, default=0) < 0 or (min(size) > 0 and end > storage.size):
        raise NotANetworkPickle("a tensor in the pickle reaches outside its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[int(offset):], size, tuple(s * item for s in stride),
                                           writeable=False)
    return np.array(view)


def _rebuild_parameter(data, *_):
    return data


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise NotANetworkPickle("a persistent object in the pickle is not a class instance record")
    state = meta["state"]
    tensors: dict[str, np.ndarray] = {}
    _flatten(state, "", tensors)
    return Record(str(meta.get("class_name")), state.get("_init_args", ()), state.get("_init_kwargs", {}), tensors)


def _flatten(state: dict, prefix: str, out: dict) -> None:
    """A torch module's pickled ``__dict__`` -> ``{dotted name: array}`` of parameters and buffers."""
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = np.asarray(value)
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Record):
            out.update({f"{prefix}{name}.{k}": v for k, v in child.state_dict.items()})
        elif child is not None:
            raise NotANetworkPickle(f"sub-module {prefix}{name} of the pickle is not one of NVIDIA's persistent "
                                    "classes")


def _load_from_bytes(data):
    """A storage pickled by torch: ``torch.save``'s legacy format, read into a flat numpy array."""
    if not isinstance(data, (bytes, bytearray)):
        raise NotANetworkPickle("a storage in the pickle has no bytes")
    f = io.BytesIO(data)
    records: dict[str, tuple] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise NotANetworkPickle("a storage in the pickle has an unknown layout")
        key = str(pid[2])
        records[key] = (pid[1].dtype, int(pid[4]))
        return ("storage-ref", key)

    for _ in range(3):  # magic number, protocol version, system info
        _Restricted(f, storage=True).load()
    ref = _Restricted(f, storage=True, on_persistent_id=persistent_load).load()
    keys = _Restricted(f, storage=True).load()
    arrays = {}
    for key in keys:
        dtype, numel = records[str(key)]
        (n,) = struct.unpack("<q", f.read(8))
        if n != numel:
            raise NotANetworkPickle("a storage in the pickle has an inconsistent size")
        raw = f.read(n * dtype.itemsize)
        if len(raw) != n * dtype.itemsize:
            raise NotANetworkPickle("a storage in the pickle is truncated")
        arrays[str(key)] = np.frombuffer(raw, dtype).copy()
    if not (isinstance(ref, tuple) and ref[0] == "storage-ref" and ref[1] in arrays):
        raise NotANetworkPickle("a storage in the pickle does not hold its data")
    return arrays[ref[1]]


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
}


class _Restricted(pickle.Unpickler):
    def __init__(self, f, storage: bool = False, on_persistent_id=None):
        super().__init__(f)
        self._storage = storage
        self._on_persistent_id = on_persistent_id

    def find_class(self, module, name):
        if self._storage and module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])  # torch.FloatStorage etc.: named, never called
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise NotANetworkPickle(f"the pickle asks for {module}.{name}, which an NVIDIA StyleGAN2-ADA network "
                                    "pickle does not need: refused (nothing of the file was run)")
        return fn

    def persistent_load(self, pid):
        if self._on_persistent_id is not None:
            return self._on_persistent_id(pid)
        raise NotANetworkPickle("the pickle uses persistent ids outside a torch storage: refused")


def load(path) -> dict[str, Any]:
    """The contents of an ADA network pickle as plain data: ``{'G': Record, 'D': Record, 'G_ema':
    Record, 'augment_pipe': Record, 'training_set_kwargs': dict}`` (what the file holds).

    Raises:
      NotANetworkPickle: the file asks for anything beyond what such a pickle needs, or is malformed.
    """
    try:
        with open(path, "rb") as f:
            data = _Restricted(f).load()
    except NotANetworkPickle:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, KeyError, AttributeError, IndexError,
            struct.error) as e:
        raise NotANetworkPickle(f"{path} is not a readable NVIDIA StyleGAN2-ADA pickle ({type(e).__name__}: {e})")
    if not isinstance(data, dict) or not isinstance(data.get("G_ema", data.get("G")), Record):
        raise NotANetworkPickle(f"{path} holds no StyleGAN2-ADA generator (expected a dict with 'G_ema' or 'G'): "
                                "give a network-snapshot-*.pkl written by NVIDIA's training_loop.py")
    return data


__all__ = ("load", "Record", "NotANetworkPickle")
