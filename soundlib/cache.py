"""The embedding cache: one ``.npy`` file per (audio content, feature spec, backbone).

Layout: ``<root>/<backbone-hash>/<spec-key>/<ab>/<audio-sha256>.npy`` plus a
``key.json`` per (backbone, spec) folder recording what made the entries. A
cached embedding is keyed by

* the audio file's content hash (SHA-256 of its bytes, :func:`audio_hash`, kept in the
  persistent index of :mod:`soundlib.hashes`),
* the full feature spec (:meth:`FeatureSpec.key`, merge parameters included),
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


def audio_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered across processes (:func:`soundlib.hashes.file_hash`)."""
    from .hashes import file_hash

    return file_hash(path)


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

    def path(self, folder: Path, content_hash: str) -> Path:
        """The entry file of one audio content hash in ``folder``."""
        return folder / content_hash[:2] / f"{content_hash}.npy"

    def get(self, folder: Path, content_hash: str) -> np.ndarray | None:
        """The cached vector, or ``None`` when missing or unreadable (it is then recomputed)."""
        p = self.path(folder, content_hash)
        try:
            return np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            return None  # unreadable entry: recompute and overwrite

    def put(self, folder: Path, content_hash: str, vector: np.ndarray) -> None:
        """Store one vector atomically."""
        from .atomic import atomic_path

        with atomic_path(self.path(folder, content_hash)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(vector, dtype=np.float32), allow_pickle=False)

    def write_manifest(self, folder: Path, spec: FeatureSpec, backbone_identity: str) -> None:
        """Record what made the entries of ``folder`` (``key.json``), once."""
        from .atomic import write_json_atomic

        marker = folder / "key.json"
        if not marker.is_file():
            write_json_atomic(marker, {"spec": spec.to_dict(), "spec_key": spec.key(), "backbone": backbone_identity})

    def has_all(self, paths: Iterable[str | os.PathLike], spec: FeatureSpec, backbone_identity: str) -> bool:
        """True when every file's embedding is cached (checked by file existence, without TensorFlow)."""
        folder = self.folder(spec, backbone_identity)
        try:
            return all(self.path(folder, audio_hash(p)).is_file() for p in paths)
        except OSError:
            return False
