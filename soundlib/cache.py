"""The embedding cache: one ``.npy`` file per (audio content, feature spec, backbone).

Layout: ``<root>/<backbone-hash>/<spec-key>/<ab>/<audio-sha256>.npy`` (the
first window of a clip; window ``k > 0`` of a long clip is ``<audio-sha256>.w<k>.npy``)
plus a ``key.json`` per (backbone, spec) folder recording what made the entries.
A cached embedding is keyed by

* the audio file's content hash (SHA-256 of its bytes, :func:`audio_hash`),
* the full feature spec (:meth:`FeatureSpec.key`: merge parameters, window
  length, hop and padding included),
* the window's index within the clip,
* the backbone identity (exact weights),

so changing any of them misses and nothing stale is ever returned. Entries are
written atomically (temp file + rename): two processes filling the cache at
once at worst compute an entry twice and write identical bytes. This module
is the only one that reads or writes the cache's files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .variants import FeatureSpec

__all__ = ["EmbeddingCache", "audio_hash", "default_cache_root"]

_HASHES: dict[tuple[str, int, int], str] = {}


def audio_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (memoised per path, size and mtime within a process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def default_cache_root() -> Path:
    """``<soundlib cache>/embeddings`` (``$SOUNDLIB_CACHE_DIR`` or ``~/.cache/soundlib``)."""
    from .backbones import cache_dir

    return cache_dir() / "embeddings"


class EmbeddingCache:
    """Cached embeddings under ``root`` (default :func:`default_cache_root`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def folder(self, spec: FeatureSpec, backbone_identity: str) -> Path:
        """The folder of one (feature spec, backbone) pair."""
        bb = hashlib.sha256(backbone_identity.encode()).hexdigest()[:16]
        return self.root / bb / spec.key()

    def path(self, folder: Path, content_hash: str, window: int = 0) -> Path:
        """The entry file of one audio content hash (and window of it) in ``folder``."""
        suffix = f".w{window}" if window else ""
        return folder / content_hash[:2] / f"{content_hash}{suffix}.npy"

    def get(self, folder: Path, content_hash: str, window: int = 0) -> np.ndarray | None:
        """The cached vector, or ``None`` when missing or unreadable (it is then recomputed)."""
        p = self.path(folder, content_hash, window)
        try:
            return np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            return None  # unreadable entry: recompute and overwrite

    def put(self, folder: Path, content_hash: str, vector: np.ndarray, window: int = 0) -> None:
        """Store one vector atomically."""
        from .atomic import atomic_path

        with atomic_path(self.path(folder, content_hash, window)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(vector, dtype=np.float32), allow_pickle=False)

    def write_manifest(self, folder: Path, spec: FeatureSpec, backbone_identity: str) -> None:
        """Record what made the entries of ``folder`` (``key.json``), once."""
        from .atomic import write_json_atomic

        marker = folder / "key.json"
        if not marker.is_file():
            write_json_atomic(marker, {"spec": spec.to_dict(), "spec_key": spec.key(), "backbone": backbone_identity})

    def has_all(self, paths: Iterable[str | os.PathLike], spec: FeatureSpec, backbone_identity: str) -> bool:
        """True when every window of every file is cached (checked by file existence, without TensorFlow)."""
        from .errors import SoundlibError
        from .featurize import window_starts_of

        folder = self.folder(spec, backbone_identity)
        try:
            for p in paths:
                h = audio_hash(p)
                if not all(self.path(folder, h, k).is_file() for k in range(len(window_starts_of(p, spec)))):
                    return False
            return True
        except (OSError, SoundlibError):
            return False
