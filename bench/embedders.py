"""Audio seconds embedded per CPU-second: soundlib's pipeline against the bare network, per embedder.

For each embedder available offline (efficientnet_lite0 on the mel pictures, mn04, yamnet, birdnet when
installed, mfcc), on the same clips of the UrbanSound8K subset (4-s real recordings, Ogg at 22,050 Hz):

  pipeline   ``embed_clips`` into a fresh embedding cache: decode, resample, windows, the front end (pictures,
             MFCC statistics), the network, the cache writes (the audio-hash index warm, the model loaded)
  bare       the network alone on inputs made beforehand: the pictures for a picture backbone, the
             resampled audio windows for an audio network (its log-mel is part of it), the decoded windows
             for MFCC (the statistics are its "network")
  ratio      pipeline rate / bare rate (1.0: the pipeline costs nothing beyond the network)

CPU time is ``time.process_time`` of this process (every thread), with LiteRT on one thread so that
no idle thread pool is counted. Each side runs ``--rounds`` times, interleaved; the best round counts
(the machine may be shared). Below ``--target`` (0.8), the pipeline is run once more, sequentially under
cProfile, and its CPU time split into decode/resample/windows, front end, network and cache writes.

    python bench/embedders.py [--clips 32] [--rounds 2] [--out bench/results/embedders.txt]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if not SHARED.is_dir():  # a worktree beside the main checkout
    SHARED = Path("/work/shared")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def candidates() -> list[tuple[str, dict]]:
    """(embedder name, options) of every registered embedder that runs here without a download (the audio
    networks on one LiteRT thread, as on a cluster's single-threaded workers)."""
    from soundlib.embedders import EmbedderOptions, embedder_entry, embedder_names, resolve_embedder

    out = []
    for name in embedder_names():
        entry = embedder_entry(name)
        threaded = entry is not None and "threads" in entry.accepts
        opts = {"threads": 1} if threaded else {}

        e = resolve_embedder(name, EmbedderOptions(**opts))
        if getattr(e, "unavailable", lambda: None)() or not getattr(e, "is_ready", lambda: True)():
            print(f"{name}: not available here, skipped", flush=True)
            continue
        out.append((name, opts))
    return out


def bare_inputs(embedder, window, paths):
    """What the network takes, made beforehand: pictures, or audio windows (MFCC: its decoded windows)."""
    from soundlib.embedders.base import audio_windows

    if embedder.name == "mfcc":
        return [w for p in paths for chunk in audio_windows(p, window) for w in chunk]
    return [w for p in paths for chunk in embedder.inputs(p, window) for w in np.asarray(chunk)]


def run_bare(embedder, loaded, window, inputs, batch_size: int) -> float:
    from soundlib.embedding.embed import one_blas_thread

    c = time.process_time()
    with one_blas_thread():
        if embedder.name == "mfcc":
            for w in inputs:
                embedder.prepare_window(w, window)
        else:
            for i in range(0, len(inputs), batch_size):
                loaded(np.stack(inputs[i:i + batch_size]), batch_size=batch_size)
    return time.process_time() - c


def run_pipeline(embedder, loaded, window, paths, root: Path, batch_size: int) -> float:
    from soundlib.embedding.embed import EmbedConfig, embed_clips

    c = time.process_time()
    res = embed_clips(paths, window, loaded, config=EmbedConfig(cache_dir=root, batch_size=batch_size,
                                                                progress=False), inputs=embedder.inputs)
    cpu = time.process_time() - c
    assert not res.failures and res.computed == len(res.row_clip), res.failures[:2]
    return cpu


def breakdown(embedder, loaded, window, paths, root: Path, batch_size: int) -> tuple[dict, str]:
    """The pipeline's steps one after the other in this thread (CPU seconds each) and cProfile's top lines.
    The front end (pictures, MFCC statistics) is its inputs' time less the decoding measured just before."""
    from soundlib.embedding.cache import EmbeddingCache, audio_hash
    from soundlib.embedding.embed import one_blas_thread
    from soundlib.embedders.base import WindowSpec, audio_windows

    cache = EmbeddingCache(root)
    folder = cache.folder(window, embedder.identity)
    audio_window = window if isinstance(window, WindowSpec) else WindowSpec(
        "pictures", window.sr, window.n_samples / window.sr, window.hop_seconds, pad=window.pad)
    steps = {"hash": 0.0, "decode+resample+windows": 0.0, "front end": 0.0, "network": 0.0, "cache write": 0.0}
    prof = cProfile.Profile()
    made: list[tuple[str, np.ndarray]] = []
    with one_blas_thread():
        prof.enable()
        for p in paths:
            c = time.process_time()
            h = audio_hash(p)
            steps["hash"] += time.process_time() - c
            c = time.process_time()
            audio = np.concatenate(list(audio_windows(p, audio_window)))
            decode = time.process_time() - c
            steps["decode+resample+windows"] += decode
            if embedder.modality == "picture" or embedder.name == "mfcc":
                c = time.process_time()
                made.append((h, np.concatenate([np.asarray(chunk) for chunk in embedder.inputs(p, window)])))
                steps["front end"] += max(0.0, time.process_time() - c - decode)
            else:
                made.append((h, audio))
        rows = [(h, k, x) for h, xs in made for k, x in enumerate(xs)]
        c = time.process_time()  # the network on whole batches, as the pipeline calls it
        out = [v for i in range(0, len(rows), batch_size)
               for v in loaded(np.stack([x for _, _, x in rows[i:i + batch_size]]), batch_size=batch_size)]
        steps["network"] += time.process_time() - c
        c = time.process_time()
        for (h, k, _), v in zip(rows, out):
            cache.put(folder, h, v, k)
        steps["cache write"] += time.process_time() - c
        prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
    lines = text.getvalue().splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), len(lines))
    top = [line.strip() for line in lines[first:first + 9] if line.strip()]
    return steps, "\n".join("      " + line[:160] for line in top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "urbansound8k_subset" / "manifest.csv")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--only", nargs="*", help="only these embedders")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("SOUNDLIB_MN04_CHECKPOINT", str(SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"))

    from soundlib.audio.clips import audio_info
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.audio.hashes import file_hashes
    from soundlib.pictures.variants import get_variant, resolve_for_clips

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    ds = load_dataset(args.data)
    step = max(1, len(ds.clips) // args.clips)
    paths = [c.path for c in ds.clips[::step][: args.clips]]  # spread over the folds and classes
    seconds = sum(audio_info(p).duration for p in paths)
    spec = resolve_for_clips(get_variant("mel"), paths)[0]
    file_hashes(paths)
    work = Path(tempfile.mkdtemp(prefix="soundlib-bench-embedders-"))
    say(f"bench/embedders.py: {len(paths)} clips, {seconds:.0f} s of audio ({args.data.parent.name}), batch "
        f"{args.batch_size}, best of {args.rounds} rounds; {os.cpu_count()} CPU cores")
    say(f"machine before: {uptime()}")
    say("")
    say(f"{'embedder':<20} {'pipeline':>10} {'bare':>10} {'ratio':>6}   (audio seconds per CPU-second)")
    results = {}
    for name, opts in candidates():
        if args.only and name not in args.only:
            continue
        embedder = resolve_embedder(name, EmbedderOptions(**opts))
        window = embedder.window(spec)
        loaded = embedder.load()
        inputs = bare_inputs(embedder, window, paths)
        run_pipeline(embedder, loaded, window, paths[:2], work / f"{name}-warm", args.batch_size)  # warm up
        run_bare(embedder, loaded, window, inputs[:2], args.batch_size)
        pipe, bare = [], []
        for r in range(args.rounds):
            order = ("pipe", "bare") if r % 2 == 0 else ("bare", "pipe")
            for side in order:
                if side == "pipe":
                    pipe.append(run_pipeline(embedder, loaded, window, paths, work / f"{name}-{r}", args.batch_size))
                else:
                    bare.append(run_bare(embedder, loaded, window, inputs, args.batch_size))
        p_rate, b_rate = seconds / min(pipe), seconds / min(bare)
        results[name] = (p_rate, b_rate)
        say(f"{name:<20} {p_rate:>10.1f} {b_rate:>10.1f} {p_rate / b_rate:>6.2f}   "
            f"(CPU s per clip: pipeline {min(pipe) / len(paths):.3f}, bare {min(bare) / len(paths):.3f})")
        if p_rate / b_rate < args.target:
            steps, top = breakdown(embedder, loaded, window, paths, work / f"{name}-profile", args.batch_size)
            total = sum(steps.values()) or 1.0
            say("    where the pipeline's CPU time goes (its steps one after the other, in one thread): "
                + ", ".join(f"{k} {v / total:.0%}" for k, v in steps.items()))
            say("    cProfile, top functions by own time:")
            say(top)
    say("")
    say(f"machine after: {uptime()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
