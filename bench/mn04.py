"""mn04 benchmark: EfficientAT mn04_as embeddings of 4-s clips on TensorFlow and on LiteRT, measured in one run.

The machine may be shared and noisy, so the runtimes are interleaved: each round runs
both, in shuffled order, on the same clips; the numbers are medians over rounds.

  batch    embeddings/s, waveforms -> embeddings (log-mel included), 32 clips, batch 16
  single   embeddings/s, one clip per call
  logmel   ms per clip spent in the numpy log-mel (both runtimes share it)
  error    max |LiteRT - TF| over the embeddings

The clips are the four real UrbanSound8K clips of tests/data/mn04_parity.npz, repeated.

    python bench/mn04.py [--rounds 5] [--checkpoint PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; a weights file that cannot be read (any soundlib error) is one line on stderr, exit 2."""
    from soundlib.errors import SoundlibError

    try:
        return _run(argv)
    except SoundlibError as exc:
        print(f"bench/mn04.py: {exc}", file=sys.stderr)
        return 2


def _run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="the weights (default: $SOUNDLIB_MN04_CHECKPOINT, ../shared, or the soundlib cache)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from soundlib.embedders.nets import efficientat_mn as M
    from soundlib.embedders.nets import efficientat_weights as MW

    shared = REPO.parent / "shared" / "models" / "efficientat" / MW.CHECKPOINT_NAME
    checkpoint = args.checkpoint or (shared if shared.is_file() and not os.environ.get(MW.CHECKPOINT_ENV)
                                     else MW.checkpoint_path())
    M.read_torch_checkpoint(checkpoint, max_bytes=M.MAX_CHECKPOINT_BYTES)  # a bad file: one line, before TF loads
    with np.load(REPO / "tests" / "data" / "mn04_parity.npz") as data:
        clips = data["waveforms_int16"].astype(np.float32) / np.float32(32768.0)
    clips = np.resize(clips, (args.clips, clips.shape[1]))

    models = {"tf": MW.Mn04Model(checkpoint, runtime="tf"), "litert": MW.Mn04Model(checkpoint, runtime="litert")}
    if models["litert"].runtime != "litert":
        raise SystemExit("ai-edge-litert is not installed: pip install 'soundlib[litert]'")
    outputs = {name: model(clips[:16]) for name, model in models.items()}  # warm up (trace, allocate)
    for model in models.values():
        model(clips[:1])

    batch = {name: [] for name in models}
    single = {name: [] for name in models}
    logmel = []
    for _ in range(args.rounds):
        order = list(models)
        random.shuffle(order)
        for name in order:
            t = time.perf_counter()
            outputs[name] = models[name](clips, batch_size=16)
            batch[name].append(len(clips) / (time.perf_counter() - t))
            t = time.perf_counter()
            for clip in clips[:8]:
                models[name](clip[None])
            single[name].append(8 / (time.perf_counter() - t))
        t = time.perf_counter()
        M.log_mel(clips)
        logmel.append((time.perf_counter() - t) / len(clips) * 1000)

    result = {
        "clip_seconds": clips.shape[1] / M.SR,
        "litert_threads": models["litert"].threads,
        "batch_embeddings_per_s": {k: statistics.median(v) for k, v in batch.items()},
        "single_embeddings_per_s": {k: statistics.median(v) for k, v in single.items()},
        "logmel_ms_per_clip": statistics.median(logmel),
        "max_abs_litert_vs_tf": float(np.abs(outputs["litert"] - outputs["tf"]).max()),
        "cpu_count": os.cpu_count(),
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
