"""Sharded cache fills on a Dask cluster: one fill (every clip of a dataset, one embedder, one window) cut
into shards of clips, one Dask task each.

A *fill* embeds every clip of a dataset with one embedder on one windowing and writes the entries into
the embedding cache (:mod:`soundlib.embedding.cache`). :func:`fill_sharded` cuts it into :class:`Shard` s of
consecutive clips, a few hundred each (:func:`shard_size`: sized by the embedder's cost per window, and
small enough that every worker gets several), and sends each to the cluster as one task
(:func:`run_shard`). On the worker a shard is :func:`soundlib.embedding.embed.embed_clips` over its clips: windows
streamed as they are locally (memory bounded by chunks and by the shard, never by the dataset), entries
written into the shared cache. Entries are written atomically under content keys (the audio's SHA-256,
the window, the embedder's identity), so concurrent writers never corrupt each other: at worst two
write the same bytes. The embedder is loaded once per worker thread and reused by its next shards.

* **Progress.** The client's progress bar counts clips as shards finish (``as_completed``).
* **A worker that dies.** Dask runs its shard again on another worker (up to
  ``distributed.scheduler.allowed-failures`` times); a shard that raises is retried alone
  (``retries=``). A rerun recomputes only what the lost run had not written.
* **Resume.** Shards whose clips are all cached are not submitted.
* **Errors.** A bad audio file is a failure of its clip, not of its shard (as locally); a shard that
  fails for good is reported with its error, the other shards finish.

:func:`connect` checks a ``--scheduler`` address before anything else and connects with a deadline: a bad
address or an unreachable scheduler is one :class:`~soundlib.errors.ConfigError` line, and nothing is
left running. The sweep's fills on a cluster are sharded the same way (:func:`sweep_shard_tasks`).

``$SOUNDLIB_SHARD_JOURNAL`` (a file path) makes every shard execution append a JSON line when it starts
and ends (its index, process, counts): ``bench/scale.py`` counts executions with it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from soundlib.errors import SoundlibError

__all__ = ["Shard", "FillReport", "WINDOW_CPU_SECONDS", "SHARD_CPU_SECONDS", "shard_size", "plan_shards", "run_shard",
           "fill_sharded", "fill_units", "sweep_shard_tasks"]

#: CPU seconds one window of a 4-s clip costs through the whole pipeline (decode, resample, windows,
#: front end, network, cache write), per embedder, as ``bench/embedders.py`` measured them on a shared
#: 2-core x86 machine (``bench/results/embedders.txt``); an embedder not listed counts as
#: :data:`_DEFAULT_WINDOW_COST`.
WINDOW_CPU_SECONDS = {"mfcc": 0.008, "mn04": 0.009, "yamnet": 0.020, "birdnet": 0.05, "picture": 0.018}
_DEFAULT_WINDOW_COST = 0.05
#: CPU seconds a shard should take: long enough that its start (scheduling, the first load of the
#: embedder on a worker, about a second) is noise, short enough that a lost worker costs little and the
#: bar moves.
SHARD_CPU_SECONDS = 10.0
#: Clips in a shard: at least (unless the fill is smaller) and at most.
MIN_SHARD, MAX_SHARD = 16, 1000
#: Shards per worker at least, when the fill is large enough (so that the work balances).
_SHARDS_PER_WORKER = 4
#: Times a shard that raised is run again.
RETRIES = 2


# ---------------------------------------------------------------------------
# The scheduler

def n_workers(client: Any) -> int:
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # pragma: no cover - a scheduler that does not answer: assume one
        return 1


# ---------------------------------------------------------------------------
# Shards

@dataclasses.dataclass(frozen=True)
class Shard:
    """One Dask task of a fill: some clips, embedded by one embedder on one windowing into one cache.

    Attributes
    ----------
    index : int
        Its place in the fill (clips ``index * size`` onwards).
    paths : tuple of str
        Its clips' audio files (absolute paths, the same on every worker).
    embedder : Embedder
        Resolved (not loaded): a frozen dataclass, sent by pickling.
    window : WindowSpec or FeatureSpec
        The embedder's windowing, resolved (a number of seconds).
    cache_root : str or None
        The embedding cache root (absolute; ``None``: the worker's default, ``<soundlib cache>/embeddings``).
    batch_size : int
    label : str
        The fill's name (``fill-mn04``...), for logs and keys.
    soundlib_cache : str or None
        The client's ``$SOUNDLIB_CACHE_DIR`` (a sweep's): a worker without one of its own takes it, so that
        the hash index and exported backbones go to the shared cache too.
    """

    index: int
    paths: tuple[str, ...]
    embedder: Any
    window: Any
    cache_root: str | None
    batch_size: int = 32
    label: str = "fill"
    soundlib_cache: str | None = None


@dataclasses.dataclass
class FillReport:
    """What :func:`fill_sharded` did.

    Attributes
    ----------
    clips : int
        Clips in the fill.
    shards : int
        Shards it was cut into.
    skipped : int
        Shards not submitted: every window of their clips was cached already.
    hits, computed : int
        Windows read from the cache and computed, over the shards submitted.
    failures : list of (path, message)
        Clips that could not be embedded (bad audio files).
    errors : list of str
        Shards that failed for good (``"shard N: error"``); their clips are not in the cache.
    seconds : float
        Wall time of the fill, here.
    cpu_seconds : float
        CPU time the shards took on the workers (their processes' time while they ran; exact with
        single-threaded workers).
    clips_per_shard : int
    """

    clips: int
    shards: int
    skipped: int = 0
    hits: int = 0
    computed: int = 0
    failures: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    clips_per_shard: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.errors

    def summary(self) -> str:
        return (f"{self.shards} shard(s) of up to {self.clips_per_shard} clips, {self.skipped} already cached; "
                f"{self.hits} window(s) from cache, {self.computed} computed, {len(self.failures)} clip(s) failed, "
                f"{len(self.errors)} shard(s) failed, {self.seconds:.1f} s")


def _cost_name(embedder: Any) -> str:
    return "picture" if getattr(embedder, "modality", "") == "picture" else str(getattr(embedder, "name", ""))


def shard_size(embedder: Any, n_clips: int, n_workers: int = 1, *, window_seconds: float = 4.0) -> int:
    """Clips per shard: about :data:`SHARD_CPU_SECONDS` of the embedder's work (its cost per window,
    :data:`WINDOW_CPU_SECONDS`, scaled by the window's length for a waveform network), within
    [:data:`MIN_SHARD`, :data:`MAX_SHARD`], and small enough that each of ``n_workers`` gets several."""
    per_window = WINDOW_CPU_SECONDS.get(_cost_name(embedder), _DEFAULT_WINDOW_COST)
    if getattr(embedder, "modality", "") != "picture":
        per_window *= max(0.25, float(window_seconds) / 4.0)
    by_cost = int(min(MAX_SHARD, max(MIN_SHARD, round(SHARD_CPU_SECONDS / per_window))))
    balanced = math.ceil(max(1, n_clips) / (_SHARDS_PER_WORKER * max(1, n_workers)))
    return max(1, min(by_cost, max(MIN_SHARD, balanced)))


def _root(cache_dir: "str | os.PathLike | None") -> Path:
    from soundlib.embedding.cache import default_cache_root

    return Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_root().resolve()


def plan_shards(paths: Sequence["str | os.PathLike"], window: Any, embedder: Any, *, cache_dir=None,
                batch_size: int = 32, clips_per_shard: int | None = None, n_workers: int = 1,
                label: str | None = None, worker_default: bool = False,
                soundlib_cache: str | None = None) -> tuple[list[Shard], int, int]:
    """``(shards to run, shards already cached, clips per shard)``: ``paths`` cut into consecutive shards;
    a shard every window of whose clips is in the cache is left out (checked by file existence, through
    the persistent hash index, without loading the embedder). ``worker_default``: the shards write into
    each worker's default cache root (``cache_dir`` is then only where this process checks)."""
    from soundlib.embedding.cache import EmbeddingCache

    root = _root(cache_dir)
    files = [str(Path(p).expanduser().resolve()) for p in paths]
    size = clips_per_shard or shard_size(embedder, len(files), n_workers,
                                         window_seconds=getattr(window, "n_samples", 0) / max(1, window.sr) or 4.0)
    cache = EmbeddingCache(root)
    todo, done = [], 0
    for index, start in enumerate(range(0, len(files), size)):
        chunk = tuple(files[start:start + size])
        if cache.has_all(chunk, window, embedder.identity):
            done += 1
            continue
        todo.append(Shard(index, chunk, embedder, window, None if worker_default else str(root), batch_size,
                          label or f"fill-{str(embedder.name).rstrip('/').rsplit('/', 1)[-1]}", soundlib_cache))
    return todo, done, size


# ---------------------------------------------------------------------------
# The worker side

_LOADED: dict[tuple[str, int], Any] = {}
_LOAD_LOCK = threading.Lock()


def _loaded(embedder: Any) -> Any:
    """The embedder loaded once per (identity, worker thread): a LiteRT interpreter must not be called from
    two threads at once, and a worker runs its threads' shards one after another."""
    key = (f"{embedder.identity}|{getattr(embedder, 'threads', '')}", threading.get_ident())
    with _LOAD_LOCK:
        have = _LOADED.get(key)
    if have is None:
        have = embedder.load()
        with _LOAD_LOCK:
            _LOADED[key] = have
    return have


#: glibc's mmap threshold in a worker process (see :func:`_tune_malloc`).
_MMAP_THRESHOLD = 16 << 20
_TUNED: list[bool] = []


def _tune_malloc() -> None:
    """Serve a shard's arrays from the heap again in a Dask worker process (once per process).

    A Dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set (so that freed memory goes back
    to the system), and setting it turns off glibc's adaptive mmap threshold: every array over 128 KiB (a
    window of audio, a batch of pictures) is then mapped and unmapped, page by page, and a fill took 1.75x
    the CPU time (measured: 3.3 s instead of 1.9 s for 150 mn04 clips, most of it page faults). A 16-MiB
    threshold gives back what ``bench/scale.py`` lost; the trim threshold still returns freed memory.
    """
    if _TUNED or not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    _TUNED.append(True)
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, _MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (glibc)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _journal(event: str, shard: Shard, **fields: Any) -> None:
    path = os.environ.get("SOUNDLIB_SHARD_JOURNAL")
    if not path:
        return
    line = json.dumps({"event": event, "label": shard.label, "shard": shard.index, "pid": os.getpid(),
                       "time": time.time(), **fields}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one write on O_APPEND: lines of concurrent writers do not interleave
    finally:
        os.close(fd)


def run_shard(shard: Shard) -> dict[str, Any]:
    """Embed one shard's clips into the cache (the Dask task; also callable as is).

    Returns plain counts (``index``, ``clips``, ``hits``, ``computed``, ``failures``, ``seconds``,
    ``cpu_seconds``), never the embeddings. A :class:`~soundlib.errors.SoundlibError` (a configuration that
    cannot work, retrying would not help) is returned as ``error``; anything else raises, and Dask retries
    the shard.
    """
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.audio.hashes import flush

    _tune_malloc()
    t0, c0 = time.perf_counter(), time.process_time()
    _journal("start", shard, clips=len(shard.paths))
    result: dict[str, Any] = {"index": shard.index, "clips": len(shard.paths), "hits": 0, "computed": 0,
                              "failures": []}
    if shard.soundlib_cache and not os.environ.get("SOUNDLIB_CACHE_DIR"):
        os.environ["SOUNDLIB_CACHE_DIR"] = shard.soundlib_cache
    if shard.paths:
        try:
            root = Path(shard.cache_root) if shard.cache_root else None
            res = embed_clips(list(shard.paths), shard.window, _loaded(shard.embedder),
                              config=EmbedConfig(batch_size=shard.batch_size, cache_dir=root,
                                                 progress=False),
                              inputs=shard.embedder.inputs)
        except SoundlibError as exc:
            result["error"] = str(exc)
        else:
            result.update(hits=res.hits, computed=res.computed,
                          failures=[(str(p), msg) for p, msg in res.failures])
        finally:
            flush()  # the hashes this worker computed, for the next process that reads the index
    result.update(seconds=round(time.perf_counter() - t0, 3), cpu_seconds=round(time.process_time() - c0, 3))
    _journal("end", shard, **{k: result[k] for k in ("hits", "computed", "seconds")})
    return result


# ---------------------------------------------------------------------------
# The client side

def fill_sharded(clips: Iterable[Any], window: Any, embedder: Any, *, client: Any, cache_dir=None,
                 batch_size: int = 32, clips_per_shard: int | None = None, retries: int = RETRIES,
                 progress: bool = True, desc: str | None = None) -> FillReport:
    """Fill the embedding cache with every clip's windows on a Dask cluster, one task per shard.

    Parameters
    ----------
    clips : iterable of Clip or paths
    window : WindowSpec or FeatureSpec
        The embedder's windowing (``embedder.window(spec)``); a duration rule (``fit``) is chosen from the
        clips first, as :func:`~soundlib.embedding.embed.embed_clips` does.
    embedder : Embedder
        Resolved, not loaded (each worker loads it once).
    client : distributed.Client
        See :func:`connect`.
    cache_dir : path, optional
        The embedding cache root (default ``<soundlib cache>/embeddings``), on a path every worker sees.
    clips_per_shard : int, optional
        Default :func:`shard_size`.
    retries : int
        Times a shard that raised is run again (a dead worker's shard is rescheduled by Dask anyway).

    Returns
    -------
    FillReport
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    from soundlib.embedding.cache import EmbeddingCache

    t0 = time.perf_counter()
    paths = [Path(getattr(c, "path", c)) for c in clips]
    if paths and not getattr(window, "resolved", True):
        from soundlib.pictures.variants import resolve_for_clips

        window = resolve_for_clips(window, paths)[0]
    shards, skipped, size = plan_shards(paths, window, embedder, cache_dir=cache_dir, batch_size=batch_size,
                                        clips_per_shard=clips_per_shard, n_workers=n_workers(client))
    report = FillReport(clips=len(paths), shards=len(shards) + skipped, skipped=skipped, clips_per_shard=size)
    cache = EmbeddingCache(_root(cache_dir))
    if shards:  # key.json first: the workers then only add the embedding size to it
        cache.write_manifest(cache.folder(window, embedder.identity), window, embedder.identity)
    bar = tqdm(total=len(paths), initial=len(paths) - sum(len(s.paths) for s in shards),
               desc=desc or f"embed {window.name} ({report.shards} shards)", unit="clip", disable=not progress)
    token = f"{os.getpid()}-{time.time_ns()}"
    futures: dict[Any, Shard] = {}

    def submit(shard: Shard):
        fut = client.submit(run_shard, shard, key=f"soundlib-{shard.label}-{shard.index}-{token}", pure=False,
                            retries=retries)
        futures[fut] = shard
        return fut

    try:
        rest = list(shards)
        if rest and not getattr(embedder, "is_ready", lambda: True)():
            # the first shard prepares the embedder alone (download, export, conversion), the others then load it
            first = submit(rest.pop(0))
            _collect(first, futures.pop(first), report, bar)
            first.release()
        done = as_completed([submit(s) for s in rest], loop=client.loop)  # (the client need not be the default)
        for fut in done:
            # collected, then let go: a result held on a worker that dies later would be computed again
            _collect(fut, futures.pop(fut), report, bar)
            fut.release()
    finally:
        bar.close()
        pending = [f for f in futures if not f.done()]
        if pending:  # interrupted: nothing of this fill keeps running on the cluster
            client.cancel(pending)
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


def _collect(fut: Any, shard: Shard, report: FillReport, bar: Any) -> None:
    try:
        result = fut.result()
    except Exception as exc:  # failed after its retries, or its workers kept dying (KilledWorker)
        report.errors.append(f"shard {shard.index} ({len(shard.paths)} clips from {shard.paths[0]}): "
                             f"{type(exc).__name__}: {exc}")
    else:
        if result.get("error"):
            report.errors.append(f"shard {shard.index}: {result['error']}")
        report.hits += int(result.get("hits", 0))
        report.computed += int(result.get("computed", 0))
        report.cpu_seconds += float(result.get("cpu_seconds", 0.0))
        report.failures.extend(tuple(f) for f in result.get("failures", ()))
    bar.update(len(shard.paths))


def fill_units(ds: Any, units: Iterable[Any], *, client: Any, cache_dir=None, batch_size: int = 32,
               progress: bool = True) -> list[tuple[Any, FillReport]]:
    """Fill the cache units a method reads (:func:`soundlib.methods.cache_units`) on the cluster, each sharded
    (``soundlib evaluate`` and ``train --scheduler``); the run itself then reads the cache."""
    from soundlib.methods.base import clip_durations

    units = list(units)
    seconds = clip_durations(ds) if any(not u.variant.resolved for u in units) else None
    out = []
    for unit in units:
        if seconds is not None:
            unit = unit.with_durations(seconds)
        window = unit.embedder.window(unit.variant)
        out.append((unit, fill_sharded(ds.clips, window, unit.embedder, client=client, cache_dir=cache_dir,
                                       batch_size=batch_size, progress=progress,
                                       desc=f"{unit.label} on the cluster")))
    return out


def sweep_shard_tasks(tasks: Sequence[Any], units: dict, paths: Sequence[Any], *, n_workers: int = 1,
                      ) -> tuple[list[Any], dict[str, int]]:
    """A sweep's tasks with each fill (:class:`~soundlib.sweep.tasks.FillTask`) replaced by its shards
    (:class:`~soundlib.sweep.tasks.ShardTask`), and the number of shards of each unit. A fill whose shards
    are all cached gets one empty shard, so that the runs waiting for it start as they would after a fill."""
    from soundlib.sweep.tasks import FillTask, ShardTask

    out: list[Any] = []
    counts: dict[str, int] = {}
    for task in tasks:
        if not isinstance(task, FillTask):
            out.append(task)
            continue
        unit = units[task.unit]
        window = unit.embedder.window(unit.variant)
        # the runs read the cache of $SOUNDLIB_CACHE_DIR (passed to every task), or else each worker's default
        shared = task.env.get("SOUNDLIB_CACHE_DIR")
        cache_dir = Path(shared) / "embeddings" if shared else None
        shards, _, _ = plan_shards(paths, window, unit.embedder, cache_dir=cache_dir, batch_size=task.batch_size,
                                   n_workers=n_workers, label=task.label, worker_default=not shared,
                                   soundlib_cache=shared)
        if not shards:
            shards = [Shard(0, (), unit.embedder, window, None, task.batch_size, task.label, shared)]
        counts[task.unit] = counts.get(task.unit, 0) + len(shards)
        out += [ShardTask(label=f"{task.label}-shard{s.index}", unit=task.unit, shard=s, log=task.log)
                for s in shards]
    return out, counts
