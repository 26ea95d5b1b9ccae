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
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from .backbones import Backbone, BackboneInfo
from .errors import SoundlibError
from .variants import FeatureSpec

if TYPE_CHECKING:
    from .embedders.base import Embedder, Windowing

__all__ = ["EmbedConfig", "EmbedResult", "embed_clips", "picture_windows"]


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
    """Embeddings of the windows of the clips that worked, and the failures.

    A clip that fits in one window gives one row; a longer clip gives one row
    per window (see :mod:`soundlib.audio`).

    Attributes
    ----------
    embeddings : np.ndarray, shape (n_rows, dim), float32
        One row per window, clips in the order of ``paths``, windows in time order.
    paths : list of Path
        The clips that worked.
    row_clip : np.ndarray, shape (n_rows,), int
        Index into ``paths`` of each row's clip.
    row_start : np.ndarray, shape (n_rows,), float
        Start of each row's window within its clip, in seconds.
    failures : list of (Path, str)
        The clips that failed and why.
    hits, computed : int
        Windows read from the cache and computed now.
    """

    embeddings: np.ndarray
    paths: list[Path]
    row_clip: np.ndarray
    row_start: np.ndarray
    failures: list[tuple[Path, str]]
    hits: int = 0
    computed: int = 0


def picture_windows(path: Path, spec: FeatureSpec) -> np.ndarray:
    """The inputs of an image backbone: every window rendered as a picture, (n_windows, H, W, 3) uint8."""
    from .featurize import featurize_windows

    return featurize_windows(path, spec)[0]


def embed_clips(
    clips: Iterable[Any],
    spec: "FeatureSpec | Windowing",
    backbone: "BackboneInfo | Backbone | Embedder",
    *,
    config: EmbedConfig = EmbedConfig(),
    inputs: Callable[[Path, FeatureSpec], np.ndarray] = picture_windows,
) -> EmbedResult:
    """Embed audio clips window by window: featurize with ``spec``, embed with ``backbone``, through the cache.

    Parameters
    ----------
    clips : iterable of Clip or paths (a Dataset works)
    spec : FeatureSpec
        Its windowing (duration, window_hop, pad) decides the windows, and its key is part of the
        cache key. A rule's duration (``fit``, ``auto``) is chosen from the clips' lengths first
        (:func:`soundlib.variants.resolve_for_clips`, as :func:`soundlib.evaluate.evaluate` does).
    backbone : BackboneInfo or Backbone (or any embedder with ``identity`` and ``load()``)
        A resolved backbone (:func:`~soundlib.backbones.resolve_backbone`), loaded
        (``load()``) only if some window misses the cache, or an already loaded one.
        A loaded embedder maps a batch of inputs to (n, dim) float32 (``embedder(batch, batch_size=...)``).
    config : EmbedConfig
    inputs : callable
        ``inputs(path, spec)`` -> one input per window, stacked (default: the pictures of
        :func:`~soundlib.featurize.featurize_windows`; an audio embedder passes audio windows).

    Returns
    -------
    EmbedResult
        Bad audio files do not stop the run: they are returned in ``failures``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from .cache import EmbeddingCache, audio_hash
    from .featurize import window_starts_of

    identity = backbone.identity
    loaded = backbone if callable(backbone) else None
    paths = [Path(getattr(c, "path", c)) for c in clips]
    if paths and not getattr(spec, "resolved", True):
        from .variants import resolve_for_clips

        spec = resolve_for_clips(spec, paths)[0]
    cache = EmbeddingCache(config.cache_dir) if config.use_cache else None
    folder = cache.folder(spec, identity) if cache else None
    if cache:
        cache.write_manifest(folder, spec, identity)
    dim = cache.expected_dim(folder) if cache else None

    vectors: dict[int, list[np.ndarray | None]] = {}
    starts: dict[int, list[float]] = {}
    failures: dict[int, str] = {}
    hashes: dict[int, str] = {}
    for i, p in enumerate(paths):
        try:
            h = audio_hash(p) if cache else None
            starts[i] = window_starts_of(p, spec)
        except OSError as exc:
            failures[i] = f"{p}: cannot read file ({exc.strerror or exc})"
            continue
        except SoundlibError as exc:
            failures[i] = str(exc)
            continue
        hashes[i] = h
        vectors[i] = ([cache.get(folder, h, k, dim=dim) for k in range(len(starts[i]))] if cache
                      else [None] * len(starts[i]))
    cached = [(i, k, v) for i, vs in vectors.items() for k, v in enumerate(vs) if v is not None]
    if cache and dim is None and len({v.shape[0] for _, _, v in cached}) > 1:
        # entries of several sizes and none recorded (a cache of an older soundlib): the embedder decides
        loaded = loaded or backbone.load()
        for i, k, v in cached:
            if v.shape[0] != loaded.output_dim:
                cache.reject(folder, hashes[i], f"has {v.shape[0]} values, expected {loaded.output_dim} "
                                                "(the embedder's size)", k)
                vectors[i][k] = None
    hit = {i: sum(v is not None for v in vs) for i, vs in vectors.items()}
    todo = [(i, hashes[i]) for i in sorted(vectors) if any(v is None for v in vectors[i])]
    if todo and loaded is None:
        loaded = backbone.load()
    if cache and todo and getattr(loaded, "output_dim", None):
        cache.write_manifest(folder, spec, identity, dim=loaded.output_dim)

    def render(item: tuple[int, str | None]):
        i, h = item
        try:
            return i, h, inputs(paths[i], spec), None
        except SoundlibError as exc:
            return i, h, None, str(exc)
        except Exception as exc:
            return i, h, None, f"{paths[i]}: {type(exc).__name__}: {exc}"

    bar = tqdm(total=len(paths), initial=len(paths) - len(todo) - len(failures), desc=f"embed {spec.name}",
               unit="clip", disable=not config.progress)
    try:
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            batch: list[tuple[int, str | None, int, np.ndarray]] = []

            def flush():
                if not batch:
                    return
                # inputs of one shape per call (a waveform embedder that does not pad takes short clips as
                # they are, so their lengths differ)
                shapes: dict[tuple[int, ...], list[int]] = {}
                for n, b in enumerate(batch):
                    shapes.setdefault(b[3].shape, []).append(n)
                feats: list = [None] * len(batch)
                for members in shapes.values():
                    out = loaded(np.stack([batch[n][3] for n in members]), batch_size=config.batch_size)
                    for n, v in zip(members, out):
                        feats[n] = v
                for (i, h, k, _), v in zip(batch, feats):
                    if i in failures:
                        continue
                    if not np.isfinite(v).all():
                        failures[i] = f"{paths[i]}: the embedding of this clip holds NaN or infinite values"
                        continue
                    vectors[i][k] = v
                    if cache:
                        cache.put(folder, h, v, k)
                batch.clear()

            for i, h, pics, err in pool.map(render, todo):
                if err is not None or len(pics) != len(vectors[i]):
                    failures[i] = err or f"{paths[i]}: {len(pics)} windows rendered, {len(vectors[i])} expected"
                    del vectors[i]
                else:
                    batch.extend((i, h, k, pic) for k, pic in enumerate(pics) if vectors[i][k] is None)
                    if len(batch) >= config.batch_size:
                        flush()
                bar.update(1)
            flush()
    finally:
        bar.close()

    order = [i for i in range(len(paths)) if i in vectors and i not in failures]
    rows = [v for i in order for v in vectors[i]]
    hits = sum(hit[i] for i in order)
    dim = getattr(loaded, "output_dim", 0)
    emb = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return EmbedResult(
        embeddings=emb,
        paths=[paths[i] for i in order],
        row_clip=np.asarray([j for j, i in enumerate(order) for _ in vectors[i]], dtype=np.int64),
        row_start=np.asarray([t for i in order for t in starts[i]], dtype=np.float64),
        failures=[(paths[i], failures[i]) for i in sorted(failures)],
        hits=hits,
        computed=len(rows) - hits,
    )
