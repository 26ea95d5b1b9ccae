"""Measurements behind docs/scaling.md: what one-file-per-entry caches, the hash index and in-memory heads
cost per entry, measured here on a small scale and extrapolated there.

  files      ``--entries`` cache entries written through soundlib's own ``EmbeddingCache.put`` (atomic: temp
             file, chmod, rename) in its layout (``<ab>/<sha256>.npy``), mn04's 896 float32 each; then
             stat every one (what ``has_all`` does before a fill), walk the folder (``ls -R``), read them all
             back (what a run does before training its head), and what they take on disk
  columnar   the same vectors as ``--shard-rows``-row ``.npy`` shards (a stand-in for Zarr/Parquet chunks,
             neither installed here): write, read all back, read one row through a memory map
  index      soundlib's audio-hash index (``soundlib.audio.hashes``) over the same files: hashed and recorded
             (cold), then looked up (warm), its size on disk
  memory     N x D float32 held at once (the head's input): measured for the entries read back
  headers    the header of ``--audio`` files read once each (a fill's plan counts every clip's windows so)
  head       the logistic head soundlib fits (StandardScaler + LogisticRegression, lbfgs) against
             SGDClassifier.partial_fit over chunks (out of core), on ``--head-rows`` synthetic rows of 896

    python bench/scaling.py [--entries 100000] [--out bench/results/scaling.txt]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 896  # mn04's embedding (384 + 512)


def _shared() -> Path:
    here = Path(__file__).resolve().parents[2] / "shared"
    return here if here.is_dir() else Path("/work/shared")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn, *args, **kwargs):
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--head-rows", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go (default: $TMPDIR)")
    parser.add_argument("--audio", type=Path, default=_shared() / "data" / "urbansound8k_subset" / "audio",
                        help="real audio files whose headers are read (skipped when missing)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soundlib-bench-scaling-", dir=args.dir))
    os.environ["SOUNDLIB_CACHE_DIR"] = str(work / "soundlib-cache")  # the hash index goes there

    from soundlib.embedding.cache import EmbeddingCache
    from soundlib.embedders.base import WindowSpec

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    n = args.entries
    say(f"bench/scaling.py: {n} entries of {DIM} float32 in {work} ({os.cpu_count()} CPU cores)")
    say(f"machine before: {uptime()}")
    rng = np.random.default_rng(0)
    names = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    cache = EmbeddingCache(work / "embeddings")
    folder = cache.folder(WindowSpec("mn04", 32000, 4.0), "bench:mn04")
    vec = rng.standard_normal(DIM).astype(np.float32)

    def write_all():
        for h in names:
            cache.put(folder, h, vec)

    _, wall, cpu = timed(write_all)
    say("")
    say("one file per entry (soundlib's cache today)")
    say(f"  write {n} entries: {wall:.1f} s wall, {cpu:.1f} s CPU = {cpu / n * 1e6:.0f} us CPU per entry")
    paths = [cache.path(folder, h) for h in names]
    _, wall, cpu = timed(lambda: sum(p.is_file() for p in paths))
    say(f"  stat every entry (has_all): {wall:.2f} s wall = {wall / n * 1e6:.1f} us per entry")
    os.system("sync")
    _, wall, cpu = timed(lambda: sum(len(f) for _, _, f in os.walk(folder)))
    say(f"  walk the folder (list every name): {wall:.2f} s wall = {wall / n * 1e6:.1f} us per entry")
    payload = DIM * 4
    st = [os.stat(p) for p in paths[:1000]]
    size, blocks = st[0].st_size, sum(s.st_blocks for s in st) * 512 / len(st)
    say(f"  on disk: {size} bytes per file ({payload} of data), {blocks:.0f} bytes allocated per file; "
        f"one inode each")
    r0 = rss_mib()
    loaded, wall, cpu = timed(lambda: [np.load(p, allow_pickle=False) for p in paths])
    say(f"  read every entry back (np.load): {wall:.1f} s wall, {cpu:.1f} s CPU = {cpu / n * 1e6:.0f} us CPU per entry")
    x, wall2, _ = timed(np.stack, loaded)
    r1 = rss_mib()
    del loaded
    r2 = rss_mib()
    say("")
    say("memory of the head's input")
    say(f"  {n} x {DIM} float32 = {x.nbytes / 2**20:.0f} MiB; RSS grew {r1 - r0:.0f} MiB while the entries and "
        f"their stack were held, {r2 - r0:.0f} MiB with the stack alone")

    say("")
    say(f"columnar shards ({args.shard_rows} rows per .npy; Zarr/Parquet chunks would be alike)")
    cols = work / "columnar"
    cols.mkdir()

    def write_shards():
        for i, start in enumerate(range(0, n, args.shard_rows)):
            np.save(cols / f"part-{i:05d}.npy", x[start:start + args.shard_rows])

    _, wall, cpu = timed(write_shards)
    files = sorted(cols.glob("*.npy"))
    say(f"  write: {wall:.2f} s wall, {cpu:.2f} s CPU ({len(files)} files) = {cpu / n * 1e6:.1f} us CPU per row")
    os.system("sync")
    back, wall, cpu = timed(lambda: np.concatenate([np.load(f) for f in files]))
    assert back.shape == x.shape
    say(f"  read all: {wall:.2f} s wall, {cpu:.2f} s CPU = {cpu / n * 1e6:.2f} us CPU per row")
    mm = np.load(files[-1], mmap_mode="r")
    _, wall, _ = timed(lambda: np.array(mm[123]))
    say(f"  one row through a memory map: {wall * 1e6:.0f} us")
    del back

    say("")
    say("the audio-hash index (soundlib.audio.hashes) over the entry files")
    from soundlib.audio import hashes

    _, wall, cpu = timed(hashes.file_hashes, paths)
    say(f"  cold (SHA-256 of each file, recorded): {wall:.1f} s wall, {cpu:.1f} s CPU = "
        f"{cpu / n * 1e6:.0f} us CPU per file of {size} bytes")
    hashes._memo.clear()  # a new process: only the index on disk
    _, wall, cpu = timed(hashes.file_hashes, paths)
    say(f"  warm (stat + index lookup): {wall:.1f} s wall, {cpu:.1f} s CPU = {cpu / n * 1e6:.0f} us CPU per file")
    index = hashes.index_path()
    say(f"  index size: {index.stat().st_size / 2**20:.1f} MiB = {index.stat().st_size / n:.0f} bytes per file")
    data = np.random.default_rng(1).bytes(64 << 20)
    _, wall, cpu = timed(lambda: hashlib.sha256(data).hexdigest())
    say(f"  SHA-256 throughput: {64 / cpu:.0f} MiB per CPU-second")

    data_dir = args.audio
    if data_dir is not None and data_dir.is_dir():
        from soundlib.audio.clips import audio_info

        files = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in (".ogg", ".wav", ".flac"))[:500]
        _, wall, cpu = timed(lambda: [audio_info(p) for p in files])
        mean = sum(p.stat().st_size for p in files) / max(1, len(files))
        say("")
        say(f"audio headers (what a fill's plan reads per clip to count its windows), {len(files)} files of "
            f"{data_dir.parent.name} ({mean / 1024:.0f} KiB on average)")
        say(f"  first read in a process: {wall / len(files) * 1e3:.2f} ms wall, {cpu / len(files) * 1e3:.2f} ms CPU "
            "per file")

    say("")
    say(f"the head on {args.head_rows} x {DIM} (10 classes, synthetic)")
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.preprocessing import StandardScaler

    m = args.head_rows
    centers = rng.standard_normal((10, DIM)).astype(np.float32)
    y = rng.integers(0, 10, m)
    xs = (centers[y] + 12 * rng.standard_normal((m, DIM))).astype(np.float32)
    r0 = rss_mib()

    def fit_lbfgs():
        scaler = StandardScaler().fit(xs)
        return LogisticRegression(max_iter=300, tol=1e-4).fit(scaler.transform(xs), y), scaler

    (clf, scaler), wall, cpu = timed(fit_lbfgs)
    r1 = rss_mib()
    acc = (clf.predict(scaler.transform(xs)) == y).mean()
    say(f"  StandardScaler + LogisticRegression (lbfgs, all rows in memory): {cpu:.1f} s CPU, "
        f"training accuracy {acc:.3f}, RSS +{max(0.0, r1 - r0):.0f} MiB for {xs.nbytes / 2**20:.0f} MiB of rows")
    chunk = 2000

    def fit_sgd():
        scaler = StandardScaler()
        for s in range(0, m, chunk):
            scaler.partial_fit(xs[s:s + chunk])
        sgd = SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0)
        for _ in range(3):
            for s in range(0, m, chunk):
                sgd.partial_fit(scaler.transform(xs[s:s + chunk]), y[s:s + chunk], classes=np.arange(10))
        return sgd, scaler

    (sgd, scaler), wall, cpu = timed(fit_sgd)
    acc = (sgd.predict(scaler.transform(xs)) == y).mean()
    say(f"  SGDClassifier.partial_fit, {chunk}-row chunks, 3 epochs (one chunk in memory): {cpu:.1f} s CPU, "
        f"training accuracy {acc:.3f}")
    say("")
    say(f"machine after: {uptime()}")
    shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
