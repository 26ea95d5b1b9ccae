"""Sharded cache fills on Dask (soundlib.sweep.shards): the same bytes as a local fill, resume, a dead worker,
concurrent writers, and --scheduler on the command line.

One LocalCluster of two single-threaded worker processes serves the module (its workers run BLAS on one
thread, as Dask's workers do); the corpus is 30 one-second synthetic clips and the embedder MFCC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from soundlib.sweep import shards
from soundlib.sweep.executors import connect_scheduler, parse_scheduler
from soundlib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or ROOT / ".." / "shared")
MN04_WEIGHTS = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def digests(root: Path) -> dict[str, str]:
    """Every file of a cache folder (entries and key.json) -> SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    """``$SOUNDLIB_SHARD_JOURNAL`` of the cluster's workers (set before they start)."""
    path = tmp_path_factory.mktemp("journal") / "shards.jsonl"
    old = os.environ.get("SOUNDLIB_SHARD_JOURNAL")
    os.environ["SOUNDLIB_SHARD_JOURNAL"] = str(path)
    if MN04_WEIGHTS.is_file():  # the workers find the mn04 weights offline too
        os.environ.setdefault("SOUNDLIB_MN04_CHECKPOINT", str(MN04_WEIGHTS))
    yield path
    if old is None:
        os.environ.pop("SOUNDLIB_SHARD_JOURNAL", None)
    else:
        os.environ["SOUNDLIB_SHARD_JOURNAL"] = old


def read_journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def cluster(journal):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as c, Client(c, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)  # not the default client: soundlib must never rely on one
        yield client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from soundlib.audio.synth import SynthConfig, generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("shards") / "data",
                           SynthConfig(clips_per_class=3, duration=1.0, slices_per_recording=1, n_folds=3),
                           progress=False)


@pytest.fixture(scope="module")
def setup(corpus):
    """(dataset, window, embedder) of the MFCC fills."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedders import resolve_embedder
    from soundlib.pictures.variants import get_variant, resolve_for_clips

    ds = load_dataset(corpus)
    spec = resolve_for_clips(get_variant("mel"), ds.clips)[0]
    embedder = resolve_embedder("mfcc")
    return ds, embedder.window(spec), embedder


@pytest.fixture(scope="module")
def local_fill(setup, tmp_path_factory) -> Path:
    """The reference: the fill done here, in one process, as `soundlib embed` does it."""
    from soundlib.embedding.embed import EmbedConfig, embed_clips

    ds, window, embedder = setup
    root = tmp_path_factory.mktemp("local") / "embeddings"
    res = embed_clips(ds.clips, window, embedder, config=EmbedConfig(cache_dir=root, progress=False),
                      inputs=embedder.inputs)
    assert not res.failures and res.computed == len(ds.clips)
    return root


# ---------------------------------------------------------------------------
# Addresses and connecting (no cluster)

@pytest.mark.parametrize("bad", ["foo", "tcp://", "tcp://host", "http://host:8786", "tcp://h:0", "tcp://h:99999",
                                 "tcp://h:80/x", "tcp://a b:1"])
def test_malformed_scheduler_is_one_line(bad):
    with pytest.raises(ConfigError) as err:
        parse_scheduler(bad)
    assert "\n" not in str(err.value) and "--scheduler" in str(err.value)


@pytest.mark.parametrize("good", ["tcp://127.0.0.1:8786", "tcp://sched.example.org:8786", "tls://h:1",
                                  "tcp://[::1]:8786", "inproc://10.0.0.1/123/1"])
def test_well_formed_scheduler(good):
    assert parse_scheduler(good)[0] == good.split("://")[0]


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive()}


def test_refused_scheduler_fails_at_once_and_leaves_nothing_running():
    before = _threads()
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="connection refused"):
        connect_scheduler(f"tcp://127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 3
    assert _threads() <= before


def test_something_else_listening_is_one_line_and_leaves_nothing_running():
    """A server that is not a Dask scheduler (here: one that answers HTTP) is an error, not a hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        try:
            conn, _ = srv.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            time.sleep(0.5)
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    before = _threads()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as err:
            connect_scheduler(f"tcp://127.0.0.1:{srv.getsockname()[1]}", timeout=3)
    finally:
        srv.close()
    assert "\n" not in str(err.value)
    assert time.perf_counter() - t0 < 5
    time.sleep(0.6)
    assert {t for t in _threads() if "IO loop" in t or "Dask" in t} <= before


def test_silent_server_is_an_error_within_the_deadline():
    """A server that accepts and never answers (distributed.Client alone would wait for it forever)."""
    before = _threads()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="no Dask scheduler answered within 1 s"):
            connect_scheduler(f"tcp://127.0.0.1:{srv.getsockname()[1]}", timeout=1)
        assert time.perf_counter() - t0 < 3
    assert _threads() <= before


def test_cli_bad_scheduler_is_one_error_line(tmp_path, capsys):
    from soundlib.cli import main

    with pytest.raises(SystemExit) as stop:  # checked as the command line is read: argparse's one line, exit 2
        main(["embed", str(tmp_path), "--scheduler", "tcp://localhost:0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "argument --scheduler" in err[-1] and "port 0 is not in 1..65535" in err[-1]
    with pytest.raises(SystemExit) as stop:  # a usage error: argparse's one line, exit 2
        main(["sweep", str(tmp_path / "x.yaml"), "--out", str(tmp_path / "o"), "--scheduler", "nope"])
    assert stop.value.code == 2 and not (tmp_path / "o").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert "argument --scheduler" in err[-1] and "Traceback" not in "\n".join(err)  # usage, then one error line


def test_cli_unreachable_scheduler_exits_promptly(tmp_path):
    """The whole command, in its own process: one line, exit 2, nothing keeps it alive."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "soundlib.cli", "evaluate", str(tmp_path), "--out",
                           str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"soundlib evaluate: error: cannot reach the Dask scheduler tcp://127.0.0.1:{port}: connection refused "
        "(is it running?)"]
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Planning

def test_shard_size_follows_cost_and_workers():
    from soundlib.embedders import resolve_embedder

    birdnet, mn04 = resolve_embedder("birdnet"), resolve_embedder("mn04")
    # large fills: about SHARD_CPU_SECONDS of work per shard, cheaper embedders in bigger shards
    big = 10**6
    assert shards.MIN_SHARD <= shards.shard_size(birdnet, big, 100) < shards.shard_size(mn04, big, 100) \
        <= shards.MAX_SHARD
    assert 100 <= shards.shard_size(birdnet, big, 100) <= 500
    # small fills: several shards per worker
    assert shards.shard_size(mn04, 300, 2) == 38
    assert shards.shard_size(mn04, 10, 2) == shards.MIN_SHARD
    # longer windows cost more
    assert shards.shard_size(birdnet, big, 1, window_seconds=10) < shards.shard_size(birdnet, big, 1)


def test_plan_skips_cached_shards(setup, local_fill):
    ds, window, embedder = setup
    todo, done, size = shards.plan_shards([c.path for c in ds.clips], window, embedder, cache_dir=local_fill,
                                          clips_per_shard=7)
    assert (todo, done, size) == ([], 5, 7)
    todo, done, _ = shards.plan_shards([c.path for c in ds.clips], window, embedder,
                                       cache_dir=local_fill.parent / "empty", clips_per_shard=7)
    assert done == 0 and [len(s.paths) for s in todo] == [7, 7, 7, 7, 2]
    assert all(Path(p).is_absolute() for s in todo for p in s.paths)


# ---------------------------------------------------------------------------
# Fills on the cluster

def test_cluster_fill_writes_the_bytes_of_a_local_fill_and_resumes(cluster, setup, local_fill, tmp_path, journal):
    ds, window, embedder = setup
    root = tmp_path / "embeddings"
    journal.write_text("")
    report = shards.fill_sharded(ds.clips, window, embedder, client=cluster, cache_dir=root, clips_per_shard=7,
                                 progress=False)
    assert report.ok, report
    assert (report.shards, report.skipped, report.computed, report.hits) == (5, 0, len(ds.clips), 0)
    assert digests(root) == digests(local_fill)  # entries and key.json, byte for byte
    starts = [e for e in read_journal(journal) if e["event"] == "start"]
    assert sorted(e["shard"] for e in starts) == [0, 1, 2, 3, 4]
    assert len({e["pid"] for e in starts}) == 2  # both workers took shards

    # resume: finished shards are not submitted; a shard that lost an entry is run again, alone
    victim = next(p for p in root.rglob("*.npy"))
    victim.unlink()
    journal.write_text("")
    again = shards.fill_sharded(ds.clips, window, embedder, client=cluster, cache_dir=root, clips_per_shard=7,
                                progress=False)
    assert (again.skipped, again.computed) == (4, 1) and again.ok
    assert len([e for e in read_journal(journal) if e["event"] == "start"]) == 1
    assert digests(root) == digests(local_fill)
    journal.write_text("")
    third = shards.fill_sharded(ds.clips, window, embedder, client=cluster, cache_dir=root, clips_per_shard=7,
                                progress=False)
    assert (third.skipped, third.computed) == (5, 0) and read_journal(journal) == []


@dataclasses.dataclass(frozen=True)
class DiesOnce:
    """An embedder whose first use in a worker process kills that process (``marker`` records it)."""

    inner: object
    marker: str

    name = "mfcc"
    modality = "waveform"
    license = "none"

    @property
    def identity(self):
        return self.inner.identity

    def window(self, spec):
        return self.inner.window(spec)

    def load(self):
        return self.inner.load()

    def inputs(self, path, window):
        try:
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return self.inner.inputs(path, window)
        os.close(fd)
        os._exit(1)  # the worker dies mid-shard, as a killed or out-of-memory worker does


def test_a_dead_workers_shard_runs_again_alone(cluster, setup, local_fill, tmp_path, journal):
    ds, window, embedder = setup
    root = tmp_path / "embeddings"
    journal.write_text("")
    dies = DiesOnce(embedder, str(tmp_path / "died"))
    report = shards.fill_sharded(ds.clips, window, dies, client=cluster, cache_dir=root, clips_per_shard=7,
                                 progress=False)
    assert report.ok, report
    assert (tmp_path / "died").exists()
    assert digests(root) == digests(local_fill)
    events = read_journal(journal)
    starts = [e["shard"] for e in events if e["event"] == "start"]
    ends = [e["shard"] for e in events if e["event"] == "end"]
    assert sorted(ends) == [0, 1, 2, 3, 4]
    assert len(starts) == 6  # five shards, one of them twice: only the lost one ran again
    (lost,) = {s for s in starts if starts.count(s) == 2}
    assert report.computed == len(ds.clips)  # nothing the lost run had written was computed again
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted the dead worker
    assert lost in range(5)


def test_concurrent_fills_of_one_cache_are_safe(cluster, setup, local_fill, tmp_path):
    """Two clients' fills of the same cache at once (every shard written twice, concurrently): the entries
    are the local fill's bytes, and no temporary file is left."""
    from soundlib.embedding.embed import EmbedConfig, embed_clips

    ds, window, embedder = setup
    root = tmp_path / "embeddings"
    here = threading.Thread(target=embed_clips, args=(ds.clips, window, embedder),
                            kwargs={"config": EmbedConfig(cache_dir=root, progress=False), "inputs": embedder.inputs})
    here.start()
    report = shards.fill_sharded(ds.clips, window, embedder, client=cluster, cache_dir=root, clips_per_shard=3,
                                 progress=False)
    here.join()
    assert report.ok
    assert digests(root) == digests(local_fill)
    assert not [p for p in root.rglob("*") if p.is_file() and not (p.suffix == ".npy" or p.name == "key.json")]


@pytest.mark.slow
@pytest.mark.skipif(not MN04_WEIGHTS.is_file(), reason=f"the mn04 weights are not at {MN04_WEIGHTS}")
def test_mn04_cluster_fill_writes_the_bytes_of_a_local_fill(cluster, setup, tmp_path):
    """A network on LiteRT: batches cut elsewhere (shards of 4 clips) and one interpreter thread on the
    workers, the default threads here; the same bytes."""
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.pictures.variants import get_variant, resolve_for_clips

    ds, _, _ = setup
    clips = ds.clips[:10]
    mn04 = resolve_embedder("mn04")
    window = mn04.window(resolve_for_clips(get_variant("mel"), clips)[0])
    res = embed_clips(clips, window, mn04, config=EmbedConfig(cache_dir=tmp_path / "local", progress=False),
                      inputs=mn04.inputs)
    assert not res.failures
    report = shards.fill_sharded(clips, window, resolve_embedder("mn04", EmbedderOptions(threads=1)), client=cluster,
                                 cache_dir=tmp_path / "cluster", clips_per_shard=4, progress=False)
    assert report.ok and report.computed == 10
    assert digests(tmp_path / "cluster") == digests(tmp_path / "local")


def test_sweep_fills_become_shard_tasks(setup, tmp_path):
    from soundlib.methods import cache_units, resolve_method
    from soundlib.sweep.tasks import FillTask, NotebookTask, ShardTask

    ds, window, embedder = setup
    from soundlib.pictures.variants import get_variant

    units = {u.key: u.with_durations([1.0]) for u in cache_units(resolve_method("mfcc"), get_variant("mel"),
                                                                 "efficientnet_lite0").values()}
    (key,) = units
    fill = FillTask(label="fill-mfcc", unit=key, dataset=str(ds.root), method={}, variant={}, backbone="x",
                    batch_size=32, picture=False, env={"SOUNDLIB_CACHE_DIR": str(tmp_path)}, log="l")
    run = NotebookTask(label="r", notebook="", output="", parameters={}, kernel_name=None, cwd="", lock="",
                       log="", env={})
    paths = [c.path for c in ds.clips]
    tasks, counts = shards.sweep_shard_tasks([fill, run], units, paths, n_workers=1)
    assert counts == {key: 2} and tasks[-1] is run  # 30 clips: shards of MIN_SHARD (16)
    assert all(isinstance(t, ShardTask) and t.unit == key for t in tasks[:-1])
    assert {t.shard.cache_root for t in tasks[:-1]} == {str((tmp_path / "embeddings").resolve())}
    for t in tasks[:-1]:  # done here, as a worker would do it
        assert shards.run_shard(t.shard)["computed"] > 0
    tasks, counts = shards.sweep_shard_tasks([fill], units, paths)
    assert counts == {key: 1} and tasks[0].shard.paths == ()  # all cached: one empty shard releases the runs
    assert shards.run_shard(tasks[0].shard)["clips"] == 0


# ---------------------------------------------------------------------------
# The command line

def test_cli_embed_and_evaluate_on_a_cluster(cluster, corpus, local_fill, tmp_path, capsys):
    from soundlib.cli import main

    address = cluster.scheduler.address
    cache = tmp_path / "emb"
    assert main(["embed", str(corpus), "--backbone", "mfcc", "--cache-dir", str(cache), "--quiet",
                 "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert f"on {address}: " in out and "30 computed" in out
    assert digests(cache) == digests(local_fill)
    assert main(["embed", str(corpus), "--backbone", "mfcc", "--cache-dir", str(cache), "--quiet"]) == 0
    assert "30 from cache, 0 computed" in capsys.readouterr().out

    assert main(["embed", str(corpus), "--no-cache", "--scheduler", address]) == 2
    assert "--no-cache" in capsys.readouterr().err

    cache2 = tmp_path / "emb2"
    assert main(["evaluate", str(corpus), "--method", "mfcc", "--cache-dir", str(cache2), "--quiet",
                 "--out", str(tmp_path / "ev"), "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert "fill-mfcc" in out and f" on {address}: " in out and "30 computed" in out
    assert digests(cache2) == digests(local_fill)
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert len(results["per_fold"]) == 3


def test_one_blas_thread_from_any_thread_and_restored():
    """The limit holds whichever thread enters first or leaves last (threadpoolctl alone lets only the first
    thread that ever set OpenBLAS's limit set it again), and is restored after."""
    from threadpoolctl import threadpool_info

    from soundlib.embedding.embed import one_blas_thread

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    with one_blas_thread():
        with one_blas_thread():
            assert set(blas()) <= {1}
        assert set(blas()) <= {1}
    assert blas() == before
    seen = {}

    def other():
        with one_blas_thread():
            seen["in"] = blas()
        seen["after"] = blas()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert set(seen["in"]) <= {1} and seen["after"] == before
    assert np.dot(np.ones((2, 2)), np.ones((2, 2)))[0, 0] == 2


def test_worker_malloc_tuned_once_where_dask_set_the_trim_threshold(monkeypatch):
    monkeypatch.setattr(shards, "_TUNED", [])
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    shards._tune_malloc()
    assert shards._TUNED == []  # a process Dask did not start: left alone
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    shards._tune_malloc()
    shards._tune_malloc()
    assert shards._TUNED == [True]
