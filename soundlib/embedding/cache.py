"""The embedding cache: one ``.npy`` file per (audio content, feature spec, backbone).

Layout: ``<root>/<backbone-hash>/<spec-key>/<ab>/<audio-sha256>.npy`` (the
first window of a clip; window ``k > 0`` of a long clip is ``<audio-sha256>.w<k>.npy``)
plus a ``key.json`` per (backbone, spec) folder recording what made the entries.
A cached embedding is keyed by

* the audio file's content hash (SHA-256 of its bytes, :func:`audio_hash`, kept in the
  persistent index of :mod:`soundlib.audio.hashes`),
* the full feature spec (:meth:`FeatureSpec.key`: merge parameters, window
  length, hop and padding included),
* the window's index within the clip,
* the backbone identity (exact weights),

so changing any of them misses and nothing stale is ever returned. Entries are
written atomically (temp file + rename): two processes filling the cache at
once at worst compute an entry twice and write identical bytes. This module
is the only one that reads or writes the cache's files.

Every entry is checked when read (:func:`entry_problem`: a 1-D float32 vector
of the folder's dimension, all finite); a bad one is reported with a
:class:`~soundlib.errors.SoundlibWarning` and treated as missing, so it is
recomputed and overwritten. A cache that cannot be written (read-only,
permission denied, full) is used for reading only, with one warning.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from soundlib.errors import warn
from soundlib.pictures.variants import FeatureSpec

if TYPE_CHECKING:
    from soundlib.embedders.base import Windowing

__all__ = ["EmbeddingCache", "audio_hash", "default_cache_root", "entry_problem"]


def audio_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered across processes (:func:`soundlib.audio.hashes.file_hash`)."""
    from soundlib.audio.hashes import file_hash

    return file_hash(path)


def default_cache_root() -> Path:
    """``<soundlib cache>/embeddings`` (``$SOUNDLIB_CACHE_DIR`` or ``~/.cache/soundlib``)."""
    from soundlib.config import cache_dir

    return cache_dir() / "embeddings"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def entry_problem(vector: np.ndarray, dim: int | None = None) -> str | None:
    """What is wrong with a cached vector (``None`` when it is fine).

    Parameters
    ----------
    vector : np.ndarray
        As read from an entry file.
    dim : int, optional
        The embedding dimension expected (the folder's), when known.
    """
    if vector.dtype != np.float32:
        return f"holds {vector.dtype} values, expected float32"
    if vector.ndim != 1 or vector.size == 0:
        return f"has shape {vector.shape}, expected one vector"
    if dim is not None and vector.shape[0] != dim:
        return f"has {vector.shape[0]} values, expected {dim} (the backbone's embedding size)"
    if not np.isfinite(vector).all():
        return f"holds {int((~np.isfinite(vector)).sum())} NaN or infinite value(s)"
    return None


#: Numbers the temporary files of this process's cache writes (with its pid: no two writers share a name).
_TMP_COUNTER = itertools.count()
#: ``numpy.save``'s header of a float32 array, by shape.
_NPY_HEADERS: dict[tuple[int, ...], bytes] = {}


def _npy_bytes(vector: np.ndarray) -> bytes:
    """The bytes ``numpy.save`` writes for ``vector`` as float32 (its header made once per shape)."""
    v = np.ascontiguousarray(vector, dtype=np.float32)
    header = _NPY_HEADERS.get(v.shape)
    if header is None:
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        header = _NPY_HEADERS.setdefault(v.shape, buf.getvalue()[: -v.nbytes or None])
    return header + v.tobytes()


class EmbeddingCache:
    """Cached embeddings under ``root`` (default :func:`default_cache_root`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self.writable = True
        self._read_denied = False
        self._made: set[Path] = set()  # entry folders known to exist

    def _write_failed(self, exc: OSError) -> None:
        """Go on without writing to the cache (warned once)."""
        if self.writable:
            self.writable = False
            warn(f"cannot write to the embedding cache at {self.root} ({_reason(exc)}); going on without storing "
                 "embeddings in it (entries already there are still read)")

    def reject(self, folder: Path, content_hash: str, problem: str, window: int = 0) -> None:
        """Report a bad entry; it is then recomputed and, when the cache is writable, overwritten."""
        warn(f"embedding cache entry {self.path(folder, content_hash, window)} {problem}; recomputing it")

    def folder(self, spec: FeatureSpec | Windowing, backbone_identity: str) -> Path:
        """The folder of one (feature spec, backbone) pair."""
        bb = hashlib.sha256(backbone_identity.encode()).hexdigest()[:16]
        return self.root / bb / spec.key()

    def path(self, folder: Path, content_hash: str, window: int = 0) -> Path:
        """The entry file of one audio content hash (and window of it) in ``folder``."""
        suffix = f".w{window}" if window else ""
        return folder / content_hash[:2] / f"{content_hash}{suffix}.npy"

    def get(self, folder: Path, content_hash: str, window: int = 0, *, dim: int | None = None) -> np.ndarray | None:
        """The cached vector of one window, or ``None`` when missing, unreadable or bad (it is then recomputed).

        A bad entry (see :func:`entry_problem`; ``dim``: the size expected) is reported with a warning.
        """
        p = self.path(folder, content_hash, window)
        try:
            vector = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            if not self._read_denied:
                self._read_denied = True
                warn(f"cannot read the embedding cache at {self.root} ({_reason(exc)}); recomputing the "
                     "embeddings it holds")
            return None
        except (ValueError, OSError, EOFError) as exc:
            self.reject(folder, content_hash, f"is unreadable ({type(exc).__name__})", window)
            return None
        problem = entry_problem(vector, dim)
        if problem is not None:
            self.reject(folder, content_hash, problem, window)
            return None
        return vector

    def put(self, folder: Path, content_hash: str, vector: np.ndarray, window: int = 0) -> None:
        """Store one window's vector atomically (nothing, once the cache turned out not to be writable).

        The bytes are ``numpy.save``'s, written with one system call into a temporary file beside the entry
        (created with the permissions the umask allows) and renamed into place: about a tenth of the time
        a general atomic write took (0.65 ms per entry, a quarter of mn04's pipeline, measured by
        ``bench/embedders.py``).
        """
        from soundlib.atomic import output_error, special_kind

        if not self.writable:
            return
        path = self.path(folder, content_hash, window)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{next(_TMP_COUNTER)}.tmp")
        try:
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            if special_kind(path):  # a pipe or a device in an entry's place is never replaced
                raise output_error(path)
            data = _npy_bytes(vector)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileNotFoundError:  # its folder was removed meanwhile (a cache cleared by hand)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            self._write_failed(exc)

    def _manifest(self, folder: Path) -> dict:
        import json

        try:
            data = json.loads((folder / "key.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def expected_dim(self, folder: Path) -> int | None:
        """The embedding size recorded in ``folder``'s ``key.json`` (``None`` before the first entry)."""
        dim = self._manifest(folder).get("dim")
        return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None

    def write_manifest(self, folder: Path, spec: FeatureSpec | Windowing, backbone_identity: str,
                       *, dim: int | None = None) -> None:
        """Record what made the entries of ``folder`` (``key.json``): once, and again to add ``dim``."""
        from soundlib.atomic import write_json_atomic

        old = self._manifest(folder)
        if not self.writable or (old and (dim is None or old.get("dim") == dim)):
            return
        try:
            write_json_atomic(folder / "key.json", {"spec": spec.to_dict(), "spec_key": spec.key(),
                                                    "backbone": backbone_identity, "dim": dim or old.get("dim")})
        except OSError as exc:
            self._write_failed(exc)

    def has_all(self, paths: Iterable[str | os.PathLike], spec: FeatureSpec, backbone_identity: str) -> bool:
        """True when every window of every file is cached (checked by file existence, without TensorFlow)."""
        from soundlib.errors import SoundlibError
        from soundlib.pictures.featurize import window_starts_of

        folder = self.folder(spec, backbone_identity)
        try:
            for p in paths:
                h = audio_hash(p)
                if not all(self.path(folder, h, k).is_file() for k in range(len(window_starts_of(p, spec)))):
                    return False
            return True
        except (OSError, SoundlibError):
            return False
