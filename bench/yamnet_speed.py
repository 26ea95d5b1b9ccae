"""YAMNet embedding throughput: LiteRT + XNNPACK vs TensorFlow, measured in one run.

Frames of 0.975 s at 16 kHz -> 1024-d embeddings (soundlib.embedders.nets.yamnet_weights.YamnetModel), both
runtimes on the same frames (real clips of the UrbanSound8K subset when it is there, else
seeded noise) and on the same number of threads (LiteRT ``num_threads``, TensorFlow's
intra- and inter-op pools). The machine may be shared and noisy, so the runtimes are
interleaved: each round runs both once, in shuffled order, and the numbers are medians over
rounds (the ratio is the median of the per-round ratios). The load average is printed beside
them, and the CPU time per frame, which other processes disturb less: LiteRT on one thread
gives the frames one free core computes per second.
The first run converts YAMNet to LiteRT once (into the soundlib cache).

Target: LiteRT >= 300 frames/s on 2 cores.

    python bench/yamnet_speed.py [--threads 2] [--frames 64] [--rounds 7] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
US8K = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or ROOT.parent / "shared") / "data" / "urbansound8k_subset"


def _frames(n: int) -> tuple[np.ndarray, str]:
    """``n`` YAMNet frames of real clips (the subset's first clips, in manifest order), else seeded noise."""
    from soundlib.embedders.nets.yamnet import FRAME_SAMPLES, SR, frames_of

    manifest = US8K / "manifest.csv"
    if manifest.is_file():
        import csv

        from soundlib.audio.clips import load_audio

        out: list[np.ndarray] = []
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                out += list(frames_of(load_audio(US8K / row["path"], sr=SR, duration=None, allow_silent=True)))
                if len(out) >= n:
                    return np.stack(out[:n]), f"real clips ({US8K})"
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, FRAME_SAMPLES))).astype(np.float32), "seeded noise"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from soundlib.embedders.nets.yamnet_weights import YamnetModel, litert_model_path

    t = time.perf_counter()
    litert_model_path()
    convert_s = time.perf_counter() - t
    models = {"litert": YamnetModel(threads=args.threads, runtime="litert"), "tf": YamnetModel(runtime="tf"),
              "litert_1": YamnetModel(threads=1, runtime="litert")}  # one core's worth, without thread handoffs
    if models["litert"].runtime != "litert":
        raise SystemExit("ai-edge-litert is not installed: pip install 'soundlib[yamnet]'")
    frames, source = _frames(args.frames)
    for model in models.values():  # warm-up: traces, XNNPACK plans
        model(frames[:8])
    rate: dict[str, list[float]] = {k: [] for k in models}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(models)
        rng.shuffle(order)
        for k in order:
            c, t = time.process_time(), time.perf_counter()
            models[k](frames)
            rate[k].append(len(frames) / (time.perf_counter() - t))
            cpu[k].append(1e3 * (time.process_time() - c) / len(frames))
    error = float(np.abs(models["litert"](frames) - models["tf"](frames)).max())
    result = {
        "threads": args.threads, "frames": len(frames), "rounds": args.rounds, "source": source,
        "cpus": os.cpu_count(), "load_average": os.getloadavg(), "litert_convert_or_check_s": round(convert_s, 2),
        "frames_per_s": {k: statistics.median(v) for k, v in rate.items()},
        "range": {k: (min(v), max(v)) for k, v in rate.items()},
        "cpu_ms_per_frame": {k: statistics.median(v) for k, v in cpu.items()},
        "ratio_litert_to_tf": statistics.median(a / b for a, b in zip(rate["litert"], rate["tf"])),
        "max_abs_embedding_difference": error,
    }
    print(f"YAMNet embeddings, {len(frames)} frames of {source}, {args.threads} threads, "
          f"{args.rounds} interleaved rounds (load average {result['load_average'][0]:.1f} on {os.cpu_count()} CPUs)")
    for k in models:
        lo, hi = result["range"][k]
        name = {"litert": f"LiteRT, {args.threads} threads", "tf": f"TF, {args.threads} threads",
                "litert_1": "LiteRT, 1 thread"}[k]
        print(f"  {name:18s} {result['frames_per_s'][k]:7.1f} frames/s (median; {lo:.0f}-{hi:.0f}), "
              f"{result['cpu_ms_per_frame'][k]:.2f} CPU ms/frame = {1e3 / result['cpu_ms_per_frame'][k]:.0f} frames "
              "per CPU-second")
    print(f"  LiteRT / TF ({args.threads} threads each): {result['ratio_litert_to_tf']:.2f}x; "
          f"max |LiteRT - TF| = {error:.2e}")
    if args.json:
        from soundlib.atomic import write_json_atomic

        write_json_atomic(args.json, result)
    return result


if __name__ == "__main__":
    main()
