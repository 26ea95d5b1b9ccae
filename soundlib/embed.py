"""Batch embedding of clips: featurize, run the backbone, through the embedding cache.

:func:`embed_clips` renders pictures in a thread pool running ahead of the
backbone, embeds them in fixed-size batches, and reads and writes
:class:`~soundlib.cache.EmbeddingCache` entries. The backbone is loaded (with
TensorFlow) only when some clip misses the cache. The cache is shared by
folds, runs, notebooks and sweeps: a 10-fold evaluation computes each clip's
embedding once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .backbones import Backbone, BackboneInfo
from .errors import SoundlibError
from .variants import FeatureSpec

__all__ = ["EmbedConfig", "EmbedResult", "embed_clips"]


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """Options of the embedding stage.

    Attributes
    ----------
    batch_size : int
        Pictures per backbone call.
    cache_dir : path or None
        Embedding cache root (default: ``<soundlib cache>/embeddings``).
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


@dataclasses.dataclass
class EmbedResult:
    """Embeddings of the clips that worked and the failures.

    Attributes
    ----------
    embeddings : np.ndarray, shape (n_ok, dim), float32
        One row per clip that worked, in the order of ``paths``.
    paths : list of Path
        The clips that worked.
    failures : list of (Path, str)
        The clips that failed and why.
    hits, computed : int
        Embeddings read from the cache and computed now.
    """

    embeddings: np.ndarray
    paths: list[Path]
    failures: list[tuple[Path, str]]
    hits: int = 0
    computed: int = 0


def embed_clips(
    clips: Iterable[Any],
    spec: FeatureSpec,
    backbone: "BackboneInfo | Backbone",
    *,
    config: EmbedConfig = EmbedConfig(),
) -> EmbedResult:
    """Embed audio clips: featurize with ``spec``, embed with ``backbone``, through the cache.

    Parameters
    ----------
    clips : iterable of Clip or paths (a Dataset works)
    spec : FeatureSpec
    backbone : BackboneInfo or Backbone
        A resolved backbone (:func:`~soundlib.backbones.resolve_backbone`), loaded
        only if some clip misses the cache, or an already loaded one.
    config : EmbedConfig

    Returns
    -------
    EmbedResult
        Bad audio files do not stop the run: they are returned in ``failures``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from .backbones import open_backbone
    from .cache import EmbeddingCache, audio_hash
    from .featurize import featurize_clip

    info = backbone if isinstance(backbone, BackboneInfo) else backbone.info
    loaded = None if isinstance(backbone, BackboneInfo) else backbone  # a Backbone, or a litert.LiteBackbone
    paths = [Path(getattr(c, "path", c)) for c in clips]
    cache = EmbeddingCache(config.cache_dir) if config.use_cache else None
    folder = cache.folder(spec, info.identity) if cache else None
    if cache:
        cache.write_manifest(folder, spec, info.identity)

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
    if todo and loaded is None:
        loaded = open_backbone(info)

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
                feats = loaded(np.stack([b[2] for b in batch]), batch_size=config.batch_size)
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
    dim = loaded.output_dim if loaded is not None else 0
    emb = np.stack([vectors[i] for i in order]).astype(np.float32) if order else np.zeros((0, dim), np.float32)
    return EmbedResult(
        embeddings=emb,
        paths=[paths[i] for i in order],
        failures=[(paths[i], failures[i]) for i in sorted(failures)],
        hits=hits,
        computed=len(paths) - hits - len(failures),
    )
