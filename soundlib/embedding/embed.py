"""Batch embedding of clips: featurize, run the backbone, through the embedding cache.

:func:`embed_clips` streams each clip's pictures (or audio windows) in chunks
from a thread pool running a few chunks ahead of the backbone (memory is
bounded by chunks, not by the clips' length), embeds them in fixed-size
batches, and reads and writes
:class:`~soundlib.embedding.cache.EmbeddingCache` entries. The backbone is loaded (with
TensorFlow) only when some clip misses the cache. The cache is shared by
folds, runs, notebooks and sweeps: a 10-fold evaluation computes each clip's
embedding once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Union, cast

import numpy as np

from soundlib.embedders.backbones import Backbone, BackboneInfo
from soundlib.embedders.picture import picture_windows
from soundlib.errors import SoundlibError
from soundlib.pictures.variants import FeatureSpec

if TYPE_CHECKING:
    from soundlib.embedders.base import Embedder, LoadedEmbedder, Windowing

__all__ = ["EmbedConfig", "EmbedResult", "embed_clips", "one_blas_thread", "picture_windows"]

#: Chunks of one clip's inputs rendered ahead of the backbone, per rendering thread.
_AHEAD = 2
#: Inputs held before they are embedded (bytes): a clip's windows are embedded together (in batches with
#: the clips before it) up to this much; past it, a long clip is embedded as it streams, in whole batches.
_BATCH_BYTES = 32 << 20


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
    per window (see :mod:`soundlib.audio.clips`).

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




_BLAS_LOCK = threading.Lock()
_BLAS: dict[str, Any] = {"users": 0, "limit": None}


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS (OpenBLAS, MKL) on one thread while embedding, restored after (by the last of concurrent users).

    The features' numbers then do not depend on how many BLAS threads a process has: a multi-threaded
    matrix product may round differently in the last bit (MFCC statistics did), and a Dask worker runs
    BLAS on one thread (``OMP_NUM_THREADS=1``), so a fill on a cluster writes the bytes a local fill
    writes. The windows are rendered in ``EmbedConfig.jobs`` threads already.
    """
    with _BLAS_LOCK:
        if _BLAS["users"] == 0:
            try:
                from threadpoolctl import threadpool_limits

                _release_openblas()  # threadpoolctl lets only one thread set OpenBLAS's limits: the first that did
                _BLAS["limit"] = threadpool_limits(limits=1, user_api="blas")
            except Exception:  # pragma: no cover - threadpoolctl is a dependency; without it, BLAS as it is
                _BLAS["limit"] = None
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0 and _BLAS["limit"] is not None:
                _release_openblas()  # (the last user may be another thread than the first)
                _BLAS["limit"].restore_original_limits()
                _release_openblas()
                _BLAS["limit"] = None


def _release_openblas() -> None:
    """Let any thread set OpenBLAS's thread count again (threadpoolctl >= 3.6 keeps it to one thread)."""
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def _set_on_exit(event: threading.Event):
    try:
        yield
    finally:
        event.set()


class _Feed:
    """One clip's input chunks on their way from its rendering thread to the embedding loop: a queue of
    at most :data:`_AHEAD` chunks (the thread waits while it is full)."""

    def __init__(self, stop: threading.Event):
        self._queue: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self._stop = stop
        self._closed = threading.Event()

    def closed(self) -> bool:
        return self._closed.is_set() or self._stop.is_set()

    def put(self, item: tuple[str, Any]) -> bool:
        """Hand over ``item`` (waiting for room); ``False`` when the loop no longer reads this clip."""
        while not self.closed():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, future) -> tuple[str, Any]:
        """The next item: ``("chunk", array)``, ``("end", None)`` or ``("error", message)``."""
        while True:
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                if future.done() and self._queue.empty():
                    future.result()  # a rendering thread that died of something else than an Exception
                    return "error", "its rendering stopped without a result"

    def close(self) -> None:
        """Stop reading: the rendering thread stops at its next chunk, and what it queued is let go."""
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


def embed_clips(
    clips: Iterable[Any],
    spec: "FeatureSpec | Windowing",
    backbone: "BackboneInfo | Backbone | Embedder",
    *,
    config: EmbedConfig = EmbedConfig(),
    inputs: Callable[[Path, Any], Union[np.ndarray, Iterable[np.ndarray]]] = picture_windows,
) -> EmbedResult:
    """Embed audio clips window by window: featurize with ``spec``, embed with ``backbone``, through the cache.

    Parameters
    ----------
    clips : iterable of Clip or paths (a Dataset works)
    spec : FeatureSpec
        Its windowing (duration, window_hop, pad) decides the windows, and its key is part of the
        cache key. A rule's duration (``fit``, ``auto``) is chosen from the clips' lengths first
        (:func:`soundlib.pictures.variants.resolve_for_clips`, as :func:`soundlib.evaluation.evaluate.evaluate` does).
    backbone : BackboneInfo or Backbone (or any embedder with ``identity`` and ``load()``)
        A resolved backbone (:func:`~soundlib.embedders.backbones.resolve_backbone`), loaded
        (``load()``) only if some window misses the cache, or an already loaded one.
        A loaded embedder maps a batch of inputs to (n, dim) float32 (``embedder(batch, batch_size=...)``).
    config : EmbedConfig
    inputs : callable
        ``inputs(path, spec)`` -> one input per window, stacked (n_windows, ...), or an iterator of such
        stacks (chunks) in window order (default: the pictures of :func:`picture_windows`, streamed; an audio
        embedder passes its audio windows). Chunks are rendered in ``config.jobs`` threads, a few ahead of
        the backbone, so memory is bounded by chunks, not by the length of the clips. A clip's entries are
        written to the cache once all its windows are rendered and embedded.

    Returns
    -------
    EmbedResult
        Bad audio files do not stop the run: they are returned in ``failures``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from soundlib.embedding.cache import EmbeddingCache, audio_hash
    from soundlib.pictures.featurize import window_starts_of

    identity = backbone.identity
    loaded: LoadedEmbedder | None = backbone if callable(backbone) else None
    paths = [Path(getattr(c, "path", c)) for c in clips]
    if paths and not getattr(spec, "resolved", True):
        from soundlib.pictures.variants import resolve_for_clips

        spec = resolve_for_clips(cast(FeatureSpec, spec), paths)[0]  # (only a picture variant's duration is a rule)
    cache = EmbeddingCache(config.cache_dir) if config.use_cache else None
    folder = cache.folder(spec, identity) if cache else Path()  # (folder and h are read only with a cache)
    if cache:
        cache.write_manifest(folder, spec, identity)
    dim = cache.expected_dim(folder) if cache else None

    vectors: dict[int, list[np.ndarray | None]] = {}
    starts: dict[int, list[float]] = {}
    failures: dict[int, str] = {}
    hashes: dict[int, str] = {}
    for i, p in enumerate(paths):
        try:
            h = audio_hash(p) if cache else ""
            starts[i] = window_starts_of(p, cast(FeatureSpec, spec))  # (it reads what a Windowing has)
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
        loaded = loaded or _load(backbone)
        for i, k, v in cached:
            if v.shape[0] != loaded.output_dim:
                cache.reject(folder, hashes[i], f"has {v.shape[0]} values, expected {loaded.output_dim} "
                                                "(the embedder's size)", k)
                vectors[i][k] = None
    hit = {i: sum(v is not None for v in vs) for i, vs in vectors.items()}
    todo = [(i, hashes[i]) for i in sorted(vectors) if any(v is None for v in vectors[i])]
    if todo and loaded is None:
        loaded = _load(backbone)
    if cache and todo and loaded is not None and getattr(loaded, "output_dim", None):
        cache.write_manifest(folder, spec, identity, dim=loaded.output_dim)

    # Each clip's inputs stream, chunk by chunk, from a rendering thread through a small queue of its own;
    # the clips are embedded in order, so at most ``jobs`` clips, each a few chunks ahead, are in memory.
    stop = threading.Event()
    feeds = {i: _Feed(stop) for i, _ in todo}

    def render(i: int) -> None:
        feed, chunks = feeds[i], None
        try:
            if feed.closed():
                return
            out = inputs(paths[i], spec)
            chunks = (out,) if isinstance(out, np.ndarray) else out
            for chunk in chunks:
                if not feed.put(("chunk", np.asarray(chunk))):
                    return
            feed.put(("end", None))
        except SoundlibError as exc:
            feed.put(("error", str(exc)))
        except Exception as exc:
            feed.put(("error", f"{paths[i]}: {type(exc).__name__}: {exc}"))
        finally:
            getattr(chunks, "close", lambda: None)()  # a generator stopped early lets go of its file

    missing = {i: sum(v is None for v in vectors[i]) for i, _ in todo}  # windows of each clip still to embed
    computed: dict[int, list[int]] = {i: [] for i, _ in todo}
    rendered: set[int] = set()

    def store(i: int) -> None:
        """Write a clip's new entries once all its windows are rendered and embedded (none of a clip that fails)."""
        if cache and i in rendered and missing.get(i) == 0 and i in vectors and i not in failures:
            for k in computed.pop(i, []):
                vector = vectors[i][k]
                assert vector is not None  # (computed lists the windows flush has filled in)
                cache.put(folder, hashes[i], vector, k)

    bar = tqdm(total=len(paths), initial=len(paths) - len(todo) - len(failures), desc=f"embed {spec.name}",
               unit="clip", disable=not config.progress)
    try:
        # (the rendering threads still running, after an error here, stop at their next chunk)
        with one_blas_thread(), ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool, _set_on_exit(stop):
            futures = {i: pool.submit(render, i) for i, _ in todo}
            batch: list[tuple[int, str | None, int, np.ndarray]] = []

            def flush(whole_batches: bool = False):
                """Embed the batch (``whole_batches``: its first rows that fill whole backbone batches; the
                backbone then sees the batches it would have seen had they come in one call)."""
                cut = len(batch) - len(batch) % config.batch_size if whole_batches else len(batch)
                if not cut:
                    return
                assert loaded is not None  # (loaded before any clip's inputs were batched: todo is not empty)
                # inputs of one shape per call (a waveform embedder that does not pad takes short clips as
                # they are, so their lengths differ)
                shapes: dict[tuple[int, ...], list[int]] = {}
                for n, b in enumerate(batch[:cut]):
                    shapes.setdefault(b[3].shape, []).append(n)
                stacks = [(members, np.stack([batch[n][3] for n in members])) for members in shapes.values()]
                rows = [b[:3] for b in batch[:cut]]
                del batch[:cut]  # the chunks are let go: only the stacked copies stay while the embedder runs
                feats: list = [None] * len(rows)
                while stacks:
                    members, stacked = stacks.pop(0)
                    out = loaded(stacked, batch_size=config.batch_size)
                    del stacked
                    for n, v in zip(members, out):
                        feats[n] = v
                touched = set()
                for (i, _h, k), v in zip(rows, feats):
                    if i in failures:
                        continue
                    if not np.isfinite(v).all():
                        failures[i] = f"{paths[i]}: the embedding of this clip holds NaN or infinite values"
                        continue
                    vectors[i][k] = v
                    missing[i] -= 1
                    computed[i].append(k)
                    touched.add(i)
                for i in touched:
                    store(i)

            for i, h in todo:
                expected, got, err, held = len(vectors[i]), 0, None, sum(b[3].nbytes for b in batch)
                while True:
                    kind, payload = feeds[i].get(futures[i])
                    if kind == "end":
                        break
                    if kind == "error":
                        err = payload
                        break
                    if got + len(payload) <= expected:
                        new = [(i, h, got + j, w) for j, w in enumerate(payload) if vectors[i][got + j] is None]
                        batch.extend(new)
                        held += sum(b[3].nbytes for b in new)
                    got += len(payload)  # past the expected count: counted (for the message), not embedded
                    if held >= _BATCH_BYTES:  # a long clip: embed what it has given so far
                        flush(whole_batches=True)
                        held = sum(b[3].nbytes for b in batch)
                feeds[i].close()
                if err is None and got != expected:
                    err = f"{paths[i]}: {got} windows rendered, {expected} expected"
                if err is not None:
                    failures.setdefault(i, err)
                    vectors.pop(i, None)
                    batch[:] = [b for b in batch if b[0] != i]
                else:
                    rendered.add(i)
                    store(i)
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
    # (every window of a clip that worked is filled in: from the cache, or embedded)
    emb = np.stack(cast("list[np.ndarray]", rows)).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return EmbedResult(
        embeddings=emb,
        paths=[paths[i] for i in order],
        row_clip=np.asarray([j for j, i in enumerate(order) for _ in vectors[i]], dtype=np.int64),
        row_start=np.asarray([t for i in order for t in starts[i]], dtype=np.float64),
        failures=[(paths[i], failures[i]) for i in sorted(failures)],
        hits=hits,
        computed=len(rows) - hits,
    )


def _load(backbone: Any) -> Any:
    """The loaded network of an embedder, a resolved picture backbone (:class:`BackboneInfo`) or a backbone."""
    if isinstance(backbone, BackboneInfo):
        from soundlib.embedders.backbones import open_backbone

        return open_backbone(backbone)
    return backbone.load()
