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
import os
import pickle
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

_STORAGE_DTYPES = {
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

    def __init__(self, fh, source: Path) -> None:
        super().__init__(fh)
        self._source = source
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
            root = self.storages[key] = _StorageRef(key, storage_type.dtype, numel)
        elif root.dtype != storage_type.dtype or root.numel != numel:
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types")
        if view_metadata is None:
            return root
        view_key, offset, view_size = view_metadata
        if offset < 0 or view_size < 0 or offset + view_size > numel:
            raise pickle.UnpicklingError(f"storage view {view_key} lies outside its storage")
        return _StorageRef(key, root.dtype, view_size, offset)


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (legacy or zip format) into numpy arrays, without torch.

    Only the globals a plain state dict needs are resolved
    (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the
    ``torch.*Storage`` classes); anything else is refused, so a crafted file
    cannot run code.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint written by ``torch.save``, in the legacy (pre-zip) or the
        zip format.

    Returns
    -------
    dict of str to numpy.ndarray
        Tensor name to a contiguous array, in checkpoint order.

    Raises
    ------
    BackboneError
        If the file is missing, truncated, corrupt, in another format, or
        references a global outside the allow-list.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackboneError(f"cannot read PyTorch checkpoint {path}: {exc}") from exc
    if data.startswith(_ZIP_MAGIC):
        obj, arrays = _read_zip(path, data)
        return _state_dict(path, obj, arrays)
    fh = io.BytesIO(data)
    try:
        magic = _RestrictedUnpickler(fh, path).load()
        if magic != _LEGACY_MAGIC:
            raise BackboneError(f"{path} is not a PyTorch checkpoint (bad magic number)")
        protocol = _RestrictedUnpickler(fh, path).load()
        if protocol != _LEGACY_PROTOCOL:
            raise BackboneError(f"{path}: unsupported PyTorch checkpoint protocol {protocol!r}")
        sys_info = _RestrictedUnpickler(fh, path).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise BackboneError(f"{path}: only little-endian checkpoints are supported")
        unpickler = _RestrictedUnpickler(fh, path)
        obj = unpickler.load()
        keys = _RestrictedUnpickler(fh, path).load()
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
    except BackboneError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error, MemoryError, RecursionError) as exc:
        raise BackboneError(f"cannot read PyTorch checkpoint {path} (corrupt or truncated): {exc}") from exc
    return _state_dict(path, obj, arrays)


def _read_zip(path: Path, data: bytes) -> tuple[Any, dict[str, np.ndarray]]:
    """The unpickled object and its storages (key -> flat array) of a zip-format checkpoint."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise BackboneError(f"{path} is a zip file but not a PyTorch checkpoint (no <archive>/data.pkl)")
            root = pickles[0][: -len("data.pkl")]
            byteorder = root + "byteorder"
            if byteorder in names and archive.read(byteorder).strip() != b"little":
                raise BackboneError(f"{path}: only little-endian checkpoints are supported")
            unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path)
            obj = unpickler.load()
            arrays: dict[str, np.ndarray] = {}
            for key, ref in unpickler.storages.items():
                member = f"{root}data/{key}"
                if member not in names:
                    raise BackboneError(f"{path} is truncated: storage {key} ({member}) is missing")
                nbytes = ref.numel * ref.dtype.itemsize
                if archive.getinfo(member).file_size != nbytes:
                    raise BackboneError(f"{path} is corrupt: storage {key} holds "
                                        f"{archive.getinfo(member).file_size} bytes, expected {nbytes}")
                arrays[key] = np.frombuffer(archive.read(member), dtype=ref.dtype)
    except BackboneError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error, MemoryError, RecursionError, OSError) as exc:
        raise BackboneError(f"cannot read PyTorch checkpoint {path} (corrupt or truncated): {exc}") from exc
    return obj, arrays


def _state_dict(path: Path, obj: Any, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of an unpickled state dict, materialised from their storages."""
    if not isinstance(obj, dict):
        raise BackboneError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    out: dict[str, np.ndarray] = {}
    for name, tensor in obj.items():
        if not isinstance(name, str) or not isinstance(tensor, _LazyTensor):
            raise BackboneError(f"{path}: entry {name!r} is not a tensor")
        out[name] = _materialise(tensor, arrays[tensor.storage.key], path, name)
    return out


def _materialise(t: _LazyTensor, storage: np.ndarray, path: Path, name: str) -> np.ndarray:
    start = t.storage.offset + t.storage_offset
    count = int(np.prod(t.size, dtype=np.int64))
    if count == 0:
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
