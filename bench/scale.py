"""Sharded cache fills: one process against a Dask LocalCluster, and a worker killed mid-fill.

On the UrbanSound8K subset (``../shared/data/urbansound8k_subset``, 2,985 clips of 4 s; ``--limit N``: the
first N), the mn04 cache is filled, in one run, each time into a fresh embedding cache:

  local        ``embed_clips`` in this process, as ``soundlib embed`` does it (LiteRT on its default threads)
  local-1t     the same with LiteRT on one thread (``--method-option threads=1``)
  local-1core  local-1t in a process pinned to one core (``sched_setaffinity``): what one worker's core does
               alone (the local fill overlaps decoding with the network, so unpinned it already uses ~1.5 cores)
  cluster-cold ``fill_sharded`` on a fresh LocalCluster of ``--workers`` single-threaded workers (LiteRT on one
               thread): each worker's first shard pays its imports and the model's load
  cluster      the same cluster again (warm workers), into another fresh cache
  kill         the cluster fill again, one worker killed (SIGKILL) while it runs a shard: the fill completes,
               and the shard executions are counted from ``$SOUNDLIB_SHARD_JOURNAL``

For each: wall seconds, CPU seconds (this process, or the sum over the shards on the workers), clips per
wall second, and whether the cache holds the same bytes as the local fill. The speed-up is local wall time
over cluster wall time. The cluster's start is timed apart. The hash index is warmed first (it is shared
by every run), and the mn04 LiteRT model converted, before anything is timed.

    python bench/scale.py [--limit 300] [--workers 2] [--out bench/results/scale.txt]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if not SHARED.is_dir():  # a worktree beside the main checkout
    SHARED = Path("/work/shared")


def digests(root: Path) -> dict[str, str]:
    """The cache's entries and key.json files -> SHA-256 of their bytes (a writer killed mid-write leaves its
    temporary file, ``.<entry>.*.tmp``, which no reader opens: counted apart, by :func:`leftovers`)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def leftovers(root: Path) -> int:
    return sum(1 for p in root.rglob(".*.tmp") if p.is_file())


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def journal_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "urbansound8k_subset" / "manifest.csv")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clips-per-shard", type=int, default=None, help="default: soundlib.sweep.shards.shard_size")
    parser.add_argument("--no-kill", action="store_true", help="skip the killed-worker run")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    parser.add_argument("--pinned-fill", type=Path, default=None, help=argparse.SUPPRESS)  # (local-1core's process)
    args = parser.parse_args(argv)

    os.environ.setdefault("SOUNDLIB_MN04_CHECKPOINT", str(SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"))
    work = Path(tempfile.mkdtemp(prefix="soundlib-bench-scale-"))
    journal = work / "shards.jsonl"
    os.environ["SOUNDLIB_SHARD_JOURNAL"] = str(journal)  # before the workers start: they inherit it

    from distributed import Client, LocalCluster

    from soundlib.sweep import shards
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.audio.hashes import file_hashes
    from soundlib.pictures.variants import get_variant, resolve_for_clips

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    ds = load_dataset(args.data)
    clips = list(ds.clips[: args.limit] if args.limit else ds.clips)
    spec = resolve_for_clips(get_variant("mel"), clips)[0]
    default, single = resolve_embedder("mn04"), resolve_embedder("mn04", EmbedderOptions(threads=1))
    window = default.window(spec)
    assert single.window(spec) == window and single.identity == default.identity
    file_hashes([c.path for c in clips])  # the persistent hash index, warm for every run
    default.load()  # converts the LiteRT model once, before anything is timed
    if args.pinned_fill is not None:  # the local-1core process: one fill, its times on stdout
        t, c = time.perf_counter(), time.process_time()
        res = embed_clips(clips, window, single, config=EmbedConfig(cache_dir=args.pinned_fill, progress=False),
                          inputs=single.inputs)
        print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c,
                          "computed": res.computed, "failures": len(res.failures)}))
        return 0
    size = args.clips_per_shard or shards.shard_size(single, len(clips), args.workers,
                                                     window_seconds=window.n_samples / window.sr)
    say(f"bench/scale.py: {len(clips)} clips of {args.data.parent.name} ({window.duration:g}-s windows at "
        f"{window.sr} Hz), mn04, shards of {size} clips, {args.workers} workers x 1 thread; "
        f"{os.cpu_count()} CPU cores")
    say(f"machine before: {uptime()}")
    say("")
    say(f"{'run':<12} {'wall s':>8} {'CPU s':>8} {'clips/s':>8} {'windows':>8} {'same bytes':>10}  note")
    rows: dict[str, dict] = {}

    def row(name: str, wall: float, cpu: float, computed: int, same: bool | None, note: str = "") -> None:
        rows[name] = {"wall": wall, "cpu": cpu}
        same_text = "-" if same is None else ("yes" if same else "NO")
        say(f"{name:<12} {wall:>8.1f} {cpu:>8.1f} {len(clips) / wall:>8.2f} {computed:>8} {same_text:>10}  {note}")

    def local(name: str, embedder) -> Path:
        root = work / name
        t, c = time.perf_counter(), time.process_time()
        res = embed_clips(clips, window, embedder, config=EmbedConfig(cache_dir=root, progress=False),
                          inputs=embedder.inputs)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        assert not res.failures, res.failures[:3]
        row(name, wall, cpu, res.computed, None if name == "local" else digests(root) == reference(),
            f"LiteRT threads: {embedder.threads or 'default'}")
        return root

    ref: dict[str, dict] = {}

    def reference() -> dict:
        if "d" not in ref:
            ref["d"] = digests(work / "local")
        return ref["d"]

    local("local", default)
    local("local-1t", single)
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        command = [sys.executable, __file__, "--data", str(args.data), "--pinned-fill", str(work / "local-1core")]
        done = subprocess.run(command + (["--limit", str(args.limit)] if args.limit else []), capture_output=True,
                              text=True, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        if done.returncode != 0:
            raise SystemExit(f"the pinned fill failed:\n{done.stderr[-2000:]}")
        pinned = json.loads(done.stdout.strip().splitlines()[-1])
        assert not pinned["failures"], pinned
        row("local-1core", pinned["wall"], pinned["cpu"], pinned["computed"],
            digests(work / "local-1core") == reference(), f"LiteRT threads: 1; pinned to core {core}")

    t = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.wait_for_workers(args.workers, timeout=120)
        started = time.perf_counter() - t

        def fill(name: str):
            root = work / name
            journal.write_text("")
            report = shards.fill_sharded(clips, window, single, client=client, cache_dir=root,
                                         clips_per_shard=size, progress=False)
            return root, report

        for name in ("cluster-cold", "cluster"):  # fresh workers (imports, model loads), then warm ones
            t = time.perf_counter()
            root, report = fill(name)
            wall = time.perf_counter() - t
            assert report.ok, report
            row(name, wall, report.cpu_seconds, report.computed, digests(root) == reference(),
                f"{report.shards} shards" + (f"; cluster start {started:.1f} s apart" if name != "cluster" else
                                              "; the same workers again, warm"))

        if not args.no_kill:
            killed: dict = {}

            from soundlib.embedding.cache import EmbeddingCache

            hashes = file_hashes([c.path for c in clips])
            kill_root = work / "kill"
            folder = EmbeddingCache(kill_root).folder(window, single.identity)

            def written(shard: int) -> int:
                return sum(EmbeddingCache(kill_root).path(folder, h).is_file()
                           for h in hashes[shard * size:(shard + 1) * size])

            def killer() -> None:
                """Kill the worker running a shard (SIGKILL) once two shards are done and a third of that shard's
                entries are written (or, failing that, once it ran 1.5 times as long as the others took)."""
                import statistics

                while not killed and not stop.is_set():
                    events = journal_events(journal)
                    ends = {e["shard"]: e for e in events if e["event"] == "end"}
                    running = [e for e in events if e["event"] == "start" and e["shard"] not in ends]
                    if len(ends) >= 2 and running:
                        victim = min(running, key=lambda e: e["time"])
                        half = 0.5 * statistics.median(e["seconds"] for e in ends.values())
                        if written(victim["shard"]) * 3 >= size or time.time() - victim["time"] >= 3 * half:
                            os.kill(victim["pid"], signal.SIGKILL)
                            killed.update(victim)
                            return
                    time.sleep(0.005)

            stop = threading.Event()
            watcher = threading.Thread(target=killer, daemon=True)
            watcher.start()
            t = time.perf_counter()
            root, report = fill("kill")
            wall = time.perf_counter() - t
            stop.set()
            events = journal_events(journal)
            starts = [e["shard"] for e in events if e["event"] == "start"]
            twice = sorted({s for s in starts if starts.count(s) > 1})
            what = (f"killed worker pid {killed['pid']} in shard {killed['shard']}" if killed else
                    "no worker killed (the fill ended first)")
            row("kill", wall, report.cpu_seconds, report.computed, digests(root) == reference(),
                f"{len(starts)} shard executions for {report.shards} shards; {what}; run again: {twice}; "
                f"{report.hits} windows it had written were reused; temporary files it left: {leftovers(root)}; "
                f"fill ok: {report.ok}")
    say("")
    say("speed-up of the cluster over one process (local wall / cluster wall, same run): "
        f"{rows['local']['wall'] / rows['cluster']['wall']:.2f} with warm workers, "
        f"{rows['local']['wall'] / rows['cluster-cold']['wall']:.2f} with fresh ones; against LiteRT on one thread "
        f"(local-1t): {rows['local-1t']['wall'] / rows['cluster']['wall']:.2f}"
        + (f"; against one process on one core (local-1core): "
           f"{rows['local-1core']['wall'] / rows['cluster']['wall']:.2f}" if "local-1core" in rows else ""))
    say(f"machine after: {uptime()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
