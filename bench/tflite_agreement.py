"""Agreement of MediaPipe's AudioClassifier on soundlib's waveform LiteRT model with `soundlib predict`.

An mn04 model (frozen mn04 embedding + logistic head) is trained on folds 2, 3 and 10 of the real
UrbanSound8K subset (test fold 1; `soundlib train MANIFEST --test-fold 1 --method mn04`), exported as
one waveform model (`soundlib export MODEL --tflite OUT.tflite`: 4-s windows at 32 kHz, mn04's log-mel
inside), and run by MediaPipe's `AudioClassifier` (`mediapipe.tasks.python.audio`, as a user would) on
dev clips of fold 1: five per class evenly spaced (50), then all 873. Each clip is read as `soundlib
predict` reads it (decoded and resampled to 32 kHz by soundlib) and handed to MediaPipe at 32 kHz;
MediaPipe cuts it into 4-s buffers (no overlap, the last filled with silence) whose probabilities are
averaged into one label, as `soundlib predict` averages its windows (UrbanSound8K clips are at most
4 s: one window each).

Reported: top-class agreement (target >= 99 %), the largest |probability difference| between
MediaPipe's and soundlib's (clips of one window), and the times.

    python bench/tflite_agreement.py [--model DIR] [--per-class 5] [--out bench/results/tflite_agreement.txt]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
US8K = ROOT.parent / "shared" / "data" / "urbansound8k_subset"
CHECKPOINT = ROOT.parent / "shared" / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def _clips(manifest: Path, per_class: int) -> list[tuple[Path, str]]:
    """``per_class`` clips of each class in fold 1, evenly spaced in manifest order (all of them: 0)."""
    by_class: dict[str, list[Path]] = defaultdict(list)
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["fold"] == "1":
                by_class[row["label"]].append(manifest.parent / row["path"])
    out = []
    for label, paths in sorted(by_class.items()):
        picks = range(len(paths)) if not per_class else sorted({int(i) for i in np.linspace(0, len(paths) - 1,
                                                                                              per_class)})
        out += [(paths[i], label) for i in picks]
    return out


def _compare(classifier, model, entry: dict, clips: list, title: str, say, lines: list, audio_data) -> None:
    """MediaPipe's and soundlib predict's top class for each clip; the summary lines, then one line per clip."""
    from soundlib.audio.clips import read_segment
    from soundlib.models.label import predict

    sr = entry["sample_rate"]
    agree, diffs, rows, t_mp, t_sl, short = 0, [], [], 0.0, 0.0, 0
    for path, label in clips:
        t = time.perf_counter()
        out, failures = predict(model, [path], top_k=len(model.labels))
        t_sl += time.perf_counter() - t
        if failures:
            say(f"{path.name}: soundlib failed: {failures[0][1]}")
            continue
        ours = np.zeros(len(model.labels))
        for r in out:
            ours[model.labels.index(r["label"])] = r["probability"]
        y = read_segment(path, sr=sr, allow_silent=True)
        short += len(y) < entry["samples"]
        t = time.perf_counter()
        results = classifier.classify(audio_data.AudioData.create_from_array(y.astype(np.float64), sr))
        t_mp += time.perf_counter() - t
        theirs = np.zeros((len(results), len(model.labels)))
        for i, res in enumerate(results):
            for c in res.classifications[0].categories:
                theirs[i, model.labels.index(c.category_name)] = c.score
        mean = theirs.mean(axis=0)
        same = int(np.argmax(mean)) == int(np.argmax(ours))
        agree += same
        if len(results) == 1:
            diffs.append(float(np.max(np.abs(mean - ours))))
        rows.append(f"  {path.name:28s} {label:17s} {len(y) / sr:5.2f} s  soundlib "
                    f"{model.labels[int(np.argmax(ours))]:17s} mediapipe {model.labels[int(np.argmax(mean))]:17s}"
                    f"{'' if same else ' DISAGREE'}".rstrip())
    n = len(rows)
    say(f"\n{title}: {n} clips of fold 1, read at {sr} Hz by soundlib; {short} shorter than the window "
        "(MediaPipe pads them with silence, which the model trims: soundlib embeds them unpadded)")
    say(f"  top-class agreement MediaPipe vs soundlib predict: {agree}/{n} = {100 * agree / max(n, 1):.1f} % "
        "(target >= 99 %)")
    if diffs:
        say(f"  max |probability difference| (clips of one buffer, {len(diffs)}): {max(diffs):.2g}; median "
            f"{float(np.median(diffs)):.2g}")
    say(f"  time: soundlib predict {1000 * t_sl / max(n, 1):.0f} ms/clip, MediaPipe {1000 * t_mp / max(n, 1):.0f} "
        "ms/clip (2 shared CPU cores)")
    if n <= 100:
        lines.append("  per clip:")
        lines.extend(rows)
    else:
        lines.extend(r for r in rows if r.endswith("DISAGREE"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="an mn04 model trained on folds 2, 3, 10 (default: train one)")
    ap.add_argument("--us8k", type=Path, default=US8K)
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tflite_agreement.txt")
    args = ap.parse_args()
    os.environ.setdefault("SOUNDLIB_MN04_CHECKPOINT", str(CHECKPOINT))
    from soundlib.models.load import load_model
    from soundlib.models.tflite_export import export_tflite

    lines = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    work = Path(tempfile.mkdtemp(prefix="tflite-agreement-"))
    manifest = args.us8k / "manifest.csv"
    if args.model is None:
        import subprocess

        t = time.perf_counter()
        cmd = [sys.executable, "-m", "soundlib.cli", "train", str(manifest), "--test-fold", "1", "--method", "mn04",
               "--out", str(work / "run"), "--quiet"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            print(run.stderr, file=sys.stderr)
            return 2
        say(f"trained: soundlib train MANIFEST --test-fold 1 --method mn04 (folds 2, 3, 10) in "
            f"{time.perf_counter() - t:.0f} s: {run.stdout.strip().splitlines()[-1]}")
        args.model = work / "run"
    model = load_model(args.model)
    t = time.perf_counter()
    entry = export_tflite(args.model, work / "model.tflite")
    say(f"exported {entry['samples']} samples at {entry['sample_rate']} Hz -> {entry['labels']} probabilities in "
        f"{time.perf_counter() - t:.0f} s; probe difference {entry['max_abs_difference']:.2g}; "
        f"{Path(entry['file']).stat().st_size / 1e6:.1f} MB")

    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    options = audio.AudioClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=entry["file"]),
                                           max_results=-1)
    with audio.AudioClassifier.create_from_options(options) as classifier:
        for title, per_class in ((f"{args.per_class} per class, evenly spaced", args.per_class),
                                 ("all of fold 1", 0)):
            _compare(classifier, model, entry, _clips(manifest, per_class), title, say, lines, audio_data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
