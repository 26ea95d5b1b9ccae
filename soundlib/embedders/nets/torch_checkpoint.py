"""Read a ``torch.save`` state dict without torch: the legacy (pre-zip) format and the zip format.

The EfficientNet-Lite0 weights ship as a legacy checkpoint, EfficientAT's mn04 as a
zip one (``torch.save`` since PyTorch 1.6: ``<archive>/data.pkl`` plus one raw
little-endian file per storage, ``<archive>/data/<key>``). :func:`read_torch_checkpoint`
parses either with a restricted unpickler that resolves only the handful
of globals a plain state dict needs (tensor rebuilding, ordered dicts, storage
types) and refuses everything else, so a malicious file cannot run code.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

from soundlib.errors import BackboneError

__all__ = ["read_torch_checkpoint"]

# Legacy torch.save format: pickle(magic) pickle(protocol) pickle(sys_info)
# pickle(obj) pickle(storage keys), then per storage: int64 numel + raw bytes.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"

#: Without ``max_bytes``: a checkpoint may hold this many times its file's size (at least ``_MIN_CAP`` bytes).
_SIZE_FACTOR = 4
_MIN_CAP = 1 << 20
#: No dimension or stride of a tensor goes beyond this (numpy's shapes and strides are int64).
_MAX_DIM = 1 << 48

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stand-in for ``torch.<X>Storage`` classes: just a dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self.name = name
        self.dtype = dtype


class _StorageRef:
    """A storage named by a persistent id; its bytes follow the pickles."""

    __slots__ = ("key", "dtype", "numel", "offset")

    def __init__(self, key: str, dtype: np.dtype, numel: int, offset: int = 0) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.offset = offset


class _LazyTensor:
    """What ``_rebuild_tensor_v2`` returns until the storages have been read."""

    __slots__ = ("storage", "storage_offset", "size", "stride")

    def __init__(self, storage: _StorageRef, storage_offset: int, size: tuple, stride: tuple) -> None:
        self.storage = storage
        self.storage_offset = storage_offset
        self.size = size
        self.stride = stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 called without a storage")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride)
            and all(isinstance(v, int) and v >= 0 for v in size + stride)):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 called with a malformed size or stride")
    return _LazyTensor(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a plain PyTorch state dict needs."""

    def __init__(self, fh, source: Path, max_bytes: int) -> None:
        super().__init__(fh)
        self._source = source
        self._max_bytes = max_bytes
        self.declared = 0  # bytes of every storage named so far
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        import collections

        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise BackboneError(
            f"refusing to load {self._source}: it references the global {module}.{name}, "
            "which is not allowed in a weights-only checkpoint"
        )

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage":
            pid = (*pid, None)  # zip format: (tag, storage type, key, location, numel), no views
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("persistent id without a storage class")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError("malformed storage persistent id")
        root = self.storages.get(key)
        if root is None:
            self.declared += numel * storage_type.dtype.itemsize
            if self.declared > self._max_bytes:
                raise BackboneError(f"{self._source}: its storages declare more than {self._max_bytes:,} bytes, "
                                    "the most this checkpoint may hold; it is not the expected weights file")
            root = self.storages[key] = _StorageRef(key, storage_type.dtype, numel)
        elif root.dtype != storage_type.dtype or root.numel != numel:
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types")
        if view_metadata is None:
            return root
        view_key, offset, view_size = view_metadata
        if (not (isinstance(offset, int) and isinstance(view_size, int))
                or offset < 0 or view_size < 0 or offset + view_size > numel):
            raise pickle.UnpicklingError(f"storage view {view_key} lies outside its storage")
        return _StorageRef(key, root.dtype, view_size, offset)


def read_torch_checkpoint(path: str | os.PathLike, *, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (legacy or zip format) into numpy arrays, without torch.

    Only the globals a plain state dict needs are resolved
    (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the
    ``torch.*Storage`` classes); anything else is refused, so a crafted file
    cannot run code. Sizes are bounded before anything is allocated: the file,
    the storages it declares (a zip member is never decompressed past them)
    and the tensors made from them each stay within ``max_bytes``.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint written by ``torch.save``, in the legacy (pre-zip) or the
        zip format.
    max_bytes : int, optional
        The most bytes the file, its storages and its tensors may each take
        (default: four times the file's size, at least 1 MiB). A state dict's
        tensors take about the file's size.

    Returns
    -------
    dict of str to numpy.ndarray
        Tensor name to a contiguous array, in checkpoint order.

    Raises
    ------
    BackboneError
        Naming the file: it is missing, not a regular file, truncated, corrupt, in another
        format, larger than ``max_bytes`` once read, or references a global outside the
        allow-list.
    """
    path = Path(path)
    try:  # O_NONBLOCK: a named pipe is refused below instead of waiting for a writer
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BackboneError(f"cannot read PyTorch checkpoint {path}: it is not a regular file")
            cap = int(max_bytes) if max_bytes is not None else max(_MIN_CAP, _SIZE_FACTOR * st.st_size)
            if st.st_size > cap:
                raise BackboneError(f"{path} has {st.st_size:,} bytes, more than the {cap:,} this checkpoint may "
                                    "hold; it is not the expected weights file")
            data = fh.read(st.st_size + 1)
    except OSError as exc:
        raise BackboneError(f"cannot read PyTorch checkpoint {path}: {exc.strerror or exc}") from None
    if len(data) != st.st_size:
        raise BackboneError(f"cannot read PyTorch checkpoint {path}: it changed while being read")
    import zipfile
    import zlib

    try:
        if data.startswith(_ZIP_MAGIC):
            obj, arrays = _read_zip(path, data, cap)
        else:
            obj, arrays = _read_legacy(path, data, cap)
        return _state_dict(path, obj, arrays, cap)
    except BackboneError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, zlib.error, EOFError, ValueError, TypeError,
            AttributeError, LookupError, OverflowError, NotImplementedError, struct.error, MemoryError,
            RecursionError, OSError) as exc:
        raise BackboneError(f"cannot read PyTorch checkpoint {path} (corrupt or truncated): "
                            f"{type(exc).__name__}: {exc}") from None


def _read_legacy(path: Path, data: bytes, cap: int) -> tuple[Any, dict[str, np.ndarray]]:
    """The unpickled object and its storages (key -> flat array) of a legacy (pre-zip) checkpoint."""
    fh = io.BytesIO(data)
    magic = _RestrictedUnpickler(fh, path, cap).load()
    if magic != _LEGACY_MAGIC:
        raise BackboneError(f"{path} is not a PyTorch checkpoint (bad magic number)")
    protocol = _RestrictedUnpickler(fh, path, cap).load()
    if protocol != _LEGACY_PROTOCOL:
        raise BackboneError(f"{path}: unsupported PyTorch checkpoint protocol {protocol!r}")
    sys_info = _RestrictedUnpickler(fh, path, cap).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise BackboneError(f"{path}: only little-endian checkpoints are supported")
    unpickler = _RestrictedUnpickler(fh, path, cap)
    obj = unpickler.load()
    keys = _RestrictedUnpickler(fh, path, cap).load()
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages) or len(set(keys)) != len(keys):
        raise BackboneError(f"{path}: storage key list does not match the pickled tensors")
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        ref = unpickler.storages[key]
        head = fh.read(8)
        if len(head) != 8:
            raise BackboneError(f"{path} is truncated: storage {key} is missing")
        (numel,) = struct.unpack("<q", head)
        if numel != ref.numel:
            raise BackboneError(
                f"{path} is corrupt: storage {key} holds {numel} elements, expected {ref.numel}"
            )
        nbytes = numel * ref.dtype.itemsize
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise BackboneError(f"{path} is truncated inside storage {key}")
        arrays[key] = np.frombuffer(raw, dtype=ref.dtype)
    return obj, arrays


def _read_zip(path: Path, data: bytes, cap: int) -> tuple[Any, dict[str, np.ndarray]]:
    """The unpickled object and its storages (key -> flat array) of a zip-format checkpoint."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise BackboneError(f"{path} is a zip file but not a PyTorch checkpoint (no <archive>/data.pkl)")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and _member(archive, byteorder, 64, path).strip() != b"little":
            raise BackboneError(f"{path}: only little-endian checkpoints are supported")
        unpickler = _RestrictedUnpickler(io.BytesIO(_member(archive, pickles[0], cap, path)), path, cap)
        obj = unpickler.load()
        arrays: dict[str, np.ndarray] = {}
        for key, ref in unpickler.storages.items():  # their sizes together are within cap (the unpickler)
            member = f"{root}data/{key}"
            if member not in names:
                raise BackboneError(f"{path} is truncated: storage {key} ({member}) is missing")
            nbytes = ref.numel * ref.dtype.itemsize
            if archive.getinfo(member).file_size != nbytes:
                raise BackboneError(f"{path} is corrupt: storage {key} holds "
                                    f"{archive.getinfo(member).file_size} bytes, expected {nbytes}")
            arrays[key] = np.frombuffer(_member(archive, member, nbytes, path), dtype=ref.dtype)
    return obj, arrays


def _member(archive, name: str, limit: int, path: Path) -> bytes:
    """The bytes of zip member ``name``, refused when it declares or decompresses to more than ``limit``."""
    if archive.getinfo(name).file_size > limit:
        raise BackboneError(f"{path}: {name} unpacks to {archive.getinfo(name).file_size:,} bytes, more than "
                            f"the {limit:,} expected")
    with archive.open(name) as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise BackboneError(f"{path}: {name} unpacks to more than the {limit:,} bytes expected")
    return raw


def _state_dict(path: Path, obj: Any, arrays: dict[str, np.ndarray], cap: int) -> dict[str, np.ndarray]:
    """The tensors of an unpickled state dict, materialised from their storages (``cap`` bytes in all at most)."""
    if not isinstance(obj, dict):
        raise BackboneError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    out: dict[str, np.ndarray] = {}
    left = cap
    for name, tensor in obj.items():
        if not isinstance(name, str) or not isinstance(tensor, _LazyTensor):
            raise BackboneError(f"{path}: entry {name!r} is not a tensor")
        storage = arrays[tensor.storage.key]
        nbytes = math.prod(tensor.size) * storage.itemsize  # Python ints: no wrap-around
        if nbytes > left:
            raise BackboneError(f"{path}: tensor {name} of shape {tensor.size} would take {nbytes:,} bytes, more "
                                f"than the {cap:,} this checkpoint may hold in all")
        left -= nbytes
        out[name] = _materialise(tensor, storage, path, name)
    return out


def _materialise(t: _LazyTensor, storage: np.ndarray, path: Path, name: str) -> np.ndarray:
    if any(n > _MAX_DIM for n in t.size) or any(s > _MAX_DIM for s in t.stride):
        raise BackboneError(f"{path} is corrupt: tensor {name} has a size or stride beyond {_MAX_DIM:,}")
    start = t.storage.offset + t.storage_offset
    if math.prod(t.size) == 0:
        return np.zeros(t.size, dtype=storage.dtype)
    last = start + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if start < 0 or last >= storage.size:
        raise BackboneError(f"{path} is corrupt: tensor {name} lies outside its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[start:],
        shape=t.size,
        strides=tuple(s * storage.itemsize for s in t.stride),
        writeable=False,
    )
    return np.array(view, order="C", copy=True)  # ascontiguousarray would make 0-d arrays 1-d
