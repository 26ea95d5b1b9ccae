"""Batch embedding of feature pictures with a content-addressed on-disk cache.

A cached embedding is keyed by

* the audio file's content hash (SHA-256 of its bytes),
* the full feature spec (:meth:`FeatureSpec.key`, merge parameters included),
* the backbone identity (exact weights),

so changing any of them misses and nothing stale is ever returned. Entries are
single ``.npy`` files written atomically (temp file + rename): two processes
filling the cache at once at worst compute an entry twice and write identical
bytes. The cache is shared by folds, runs, notebooks and sweeps: a 10-fold
evaluation computes each clip's embedding once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import SoundlibError

__all__ = ["EmbedConfig", "EmbeddingCache", "EmbedResult", "audio_hash", "embed_clips"]


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """Options of the embedding stage.

    Attributes
    ----------
    batch_size : int
        Pictures per backbone call.
    cache_dir : path or None
        Embedding cache root (default: ``<soundlib cache>/embeddings``); ``None``-valued
        ``use_cache=False`` disables the cache.
    use_cache : bool
        Read and write the cache.
    jobs : int
        Featurizing worker threads running ahead of the backbone.
    progress : bool
        Show a progress bar.
    """

    batch_size: int = 32
    cache_dir: Path | None = None
    use_cache: bool = True
    jobs: int = 2
    progress: bool = True


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


class EmbeddingCache:
    """``root/<backbone>/<spec>/<ab>/<audio-hash>.npy``, each written atomically."""

    def __init__(self, root: str | os.PathLike | None = None):
        from .backbones import cache_dir

        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def folder(self, spec_key: str, backbone_identity: str) -> Path:
        bb = hashlib.sha256(backbone_identity.encode()).hexdigest()[:16]
        return self.root / bb / spec_key

    def path(self, folder: Path, content_hash: str) -> Path:
        return folder / content_hash[:2] / f"{content_hash}.npy"

    def get(self, folder: Path, content_hash: str) -> np.ndarray | None:
        p = self.path(folder, content_hash)
        try:
            return np.load(p, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            return None  # unreadable entry: recompute and overwrite

    def put(self, folder: Path, content_hash: str, vector: np.ndarray) -> None:
        from ._io import atomic_path

        with atomic_path(self.path(folder, content_hash)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(vector, dtype=np.float32), allow_pickle=False)

    def write_manifest(self, folder: Path, spec: Any, backbone_identity: str) -> None:
        from ._io import write_json_atomic

        marker = folder / "key.json"
        if not marker.is_file():
            write_json_atomic(marker, {"spec": spec.to_dict(), "spec_key": spec.key(), "backbone": backbone_identity})


@dataclasses.dataclass
class EmbedResult:
    """Embeddings of the clips that worked (rows follow ``paths``) and the failures."""

    embeddings: np.ndarray
    paths: list[Path]
    failures: list[tuple[Path, str]]
    hits: int = 0
    computed: int = 0


def embed_clips(
    clips: Iterable[Any],
    spec: Any,
    backbone: Any,
    *,
    config: EmbedConfig = EmbedConfig(),
) -> EmbedResult:
    """Embed audio clips: featurize with ``spec``, embed with ``backbone``, through the cache.

    Parameters
    ----------
    clips : iterable of Clip or paths (a Dataset works)
    spec : FeatureSpec or variant name
    backbone : a loaded :class:`~soundlib.backbones.Backbone` or a handle to load
    config : EmbedConfig

    Bad audio files do not stop the run: they are returned in ``failures``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from .backbones import load_backbone, resolve_backbone
    from .features import featurize_clip, get_variant

    spec = get_variant(spec)
    handle = backbone
    if isinstance(backbone, (str, os.PathLike)):
        identity = resolve_backbone(backbone).identity
        backbone = None  # loaded (TensorFlow and all) only if some clip misses the cache
    else:
        identity = backbone.identity
    paths = [Path(getattr(c, "path", c)) for c in clips]
    cache = EmbeddingCache(config.cache_dir) if config.use_cache else None
    folder = cache.folder(spec.key(), identity) if cache else None
    if cache:
        cache.write_manifest(folder, spec, identity)

    vectors: dict[int, np.ndarray] = {}
    failures: dict[int, str] = {}
    todo: list[tuple[int, str | None]] = []
    for i, p in enumerate(paths):
        try:
            h = audio_hash(p) if cache else None
        except OSError as exc:
            failures[i] = f"{p}: cannot read file ({exc.strerror or exc})"
            continue
        hit = cache.get(folder, h) if cache else None
        if hit is not None:
            vectors[i] = hit
        else:
            todo.append((i, h))
    hits = len(vectors)
    if todo and backbone is None:
        backbone = load_backbone(handle)

    def render(item: tuple[int, str | None]):
        i, h = item
        try:
            return i, h, featurize_clip(paths[i], spec), None
        except SoundlibError as exc:
            return i, h, None, str(exc)
        except Exception as exc:
            return i, h, None, f"{paths[i]}: {type(exc).__name__}: {exc}"

    bar = tqdm(total=len(paths), initial=hits, desc=f"embed {spec.name}", unit="clip", disable=not config.progress)
    try:
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            batch: list[tuple[int, str | None, np.ndarray]] = []

            def flush():
                if not batch:
                    return
                feats = backbone(np.stack([b[2] for b in batch]), batch_size=config.batch_size)
                for (i, h, _), v in zip(batch, feats):
                    vectors[i] = v
                    if cache:
                        cache.put(folder, h, v)
                bar.update(len(batch))
                batch.clear()

            for i, h, pic, err in pool.map(render, todo):
                if err is not None:
                    failures[i] = err
                    bar.update(1)
                    continue
                batch.append((i, h, pic))
                if len(batch) >= config.batch_size:
                    flush()
            flush()
    finally:
        bar.close()

    order = [i for i in range(len(paths)) if i in vectors]
    dim = backbone.output_dim if backbone is not None else 0
    emb = np.stack([vectors[i] for i in order]).astype(np.float32) if order else np.zeros((0, dim), np.float32)
    return EmbedResult(
        embeddings=emb,
        paths=[paths[i] for i in order],
        failures=[(paths[i], failures[i]) for i in sorted(failures)],
        hits=hits,
        computed=len(paths) - hits - len(failures),
    )
