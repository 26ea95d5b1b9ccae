"""Short clips: the built-in window (``duration: fit``) against the old fixed 4-s window, on real audio.

Builds a dataset of short real clips from the UrbanSound8K subset (the development set): the loudest
second of each clip (the 1-s span with the largest RMS, found with a sliding window every 10 ms),
written as 16-bit WAV at the clip's own rate, with the same label, fold and group (the Freesound
recording) in a manifest CSV. Then runs leave-one-fold-out :func:`soundlib.evaluation.evaluate.evaluate` over its
folds (1, 2, 3, 10), with the embedded backbone (EfficientNet-Lite0, offline):

  a  frozen (the default method), mel with the old fixed ``duration: 4.0``: each 1-s clip is a
     quarter of a picture, three quarters silence;
  b  frozen, mel as built in (``duration: fit``): the window chosen from the clips' lengths (1 s here);
  c  mfcc (the classic control), mel as built in: MFCC statistics do not pad, so its window only
     decides how a long clip is cut.

It prints one row per configuration: the window, mean ± std accuracy over the folds, pooled macro-F1,
the embeddings computed and read from the cache, and the wall time of the evaluation (seconds; the
first run of a configuration fills the embedding cache, later runs read it). The embedding cache is
``$SOUNDLIB_CACHE_DIR`` (give this benchmark its own, e.g. ``/tmp/soundlib-bench-cache``); the
embedded backbone is exported there before anything is timed.

    SOUNDLIB_CACHE_DIR=/tmp/soundlib-bench-cache python bench/short_clips.py \\
        [--us8k ../shared/data/urbansound8k_subset] [--out /tmp/short_clips] [--seconds 1.0] \\
        [--markdown bench/results/short_clips.md] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
US8K = ROOT.parent / "shared" / "data" / "urbansound8k_subset"


def loudest(y: np.ndarray, n: int, step: int) -> int:
    """Start of the ``n``-sample span of ``y`` with the largest RMS (spans starting every ``step`` samples)."""
    if len(y) <= n:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    starts = np.arange(0, len(y) - n + 1, step)
    return int(starts[np.argmax(energy[starts + n] - energy[starts])])


def build_short_clips(source: Path, out: Path, *, seconds: float = 1.0) -> Path:
    """Cut the loudest ``seconds`` of every clip of ``source/manifest.csv`` into ``out``; returns its manifest.

    A clip no longer than ``seconds`` is kept whole. Written once: an existing manifest is reused.
    """
    import soundfile as sf

    from soundlib.atomic import write_csv_atomic

    manifest = out / "manifest.csv"
    if manifest.is_file():
        return manifest
    with open(source / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    written = []
    for row in rows:
        rel = Path(row["path"]).with_suffix(".wav")
        if rel.is_absolute() or ".." in rel.parts:  # the cut must land inside `out`, never beside its source
            raise SystemExit(f"{source / 'manifest.csv'}: path {row['path']!r} is not relative to the manifest")
        y, sr = sf.read(str(source / row["path"]), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        n = int(round(seconds * sr))
        start = loudest(y, n, max(1, sr // 100))
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dest), y[start:start + n], sr, subtype="PCM_16")
        written.append({"path": rel.as_posix(), "label": row["label"], "fold": row["fold"], "group": row["group"]})
    write_csv_atomic(manifest, written, fieldnames=["path", "label", "fold", "group"])
    return manifest


def run(manifest: Path, *, folds: tuple[int, ...] | None = None) -> list[dict]:
    """The three evaluations, in order a, b, c; one dict per row of the table."""
    from soundlib.embedders.backbones import load_backbone
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig, evaluate
    from soundlib.methods import resolve_method
    from soundlib.pictures.variants import get_variant

    ds = load_dataset(manifest)
    mel = get_variant("mel")
    load_backbone("efficientnet_lite0")  # export (and convert) the backbone before anything is timed
    configs = [
        ("a", "frozen, mel, duration 4.0 (old fixed window)", mel.replace(duration=4.0), "frozen"),
        ("b", f"frozen, mel, duration {mel.duration} (built-in default)", mel, "frozen"),
        ("c", f"mfcc control, mel, duration {mel.duration}", mel, "mfcc"),
    ]
    rows = []
    for tag, what, spec, method in configs:
        config = EvalConfig(spec=spec, method=resolve_method(method), backbone="efficientnet_lite0", folds=folds)
        t0 = time.perf_counter()
        res = evaluate(ds, config, embed_config=EmbedConfig(progress=False), progress=False)
        seconds = time.perf_counter() - t0
        feats = res["features"]
        rows.append({"row": tag, "configuration": what, "window_s": res["duration"]["seconds"],
                     "duration": res["duration"], "accuracy_mean": res["accuracy_mean"],
                     "accuracy_std": res["accuracy_std"], "macro_f1": res["macro_f1"],
                     "per_fold": {r["fold"]: round(r["accuracy"], 4) for r in res["per_fold"]},
                     "embed_computed": feats.get("embed_computed"), "embed_hits": feats.get("embed_hits"),
                     "seconds": round(seconds, 1)})
        print(f"[{tag}] {what}: accuracy {res['accuracy_mean']:.3f} ± {res['accuracy_std']:.3f} "
              f"({seconds:.0f} s)", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], *, clips: int, seconds: float) -> str:
    """The markdown table of ``rows``."""
    folds = list(rows[0]["per_fold"]) if rows else []
    lines = [f"Short clips: the loudest {seconds:g} s of each of the {clips} UrbanSound8K-subset clips, "
             f"leave-one-fold-out over folds {', '.join(map(str, folds))} (embedded EfficientNet-Lite0; "
             "accuracy mean ± std over the folds; seconds: the whole evaluation, embeddings included)", "",
             "| row | configuration | window (s) | accuracy | per fold | macro-F1 | embeddings computed / cached "
             "| seconds |",
             "|---|---|---:|---|---|---:|---|---:|"]
    for r in rows:
        cached = ("-" if r["embed_computed"] is None else f"{r['embed_computed']} / {r['embed_hits']}")
        per_fold = " ".join(f"{v:.3f}" for v in r["per_fold"].values())
        lines.append(f"| {r['row']} | {r['configuration']} | {r['window_s']:g} | {r['accuracy_mean']:.3f} ± "
                     f"{r['accuracy_std']:.3f} | {per_fold} | {r['macro_f1']:.3f} | {cached} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--us8k", type=Path, default=US8K, help="the UrbanSound8K subset (its manifest.csv)")
    p.add_argument("--out", type=Path, default=Path("/tmp/soundlib-short-clips"), help="where the short clips go")
    p.add_argument("--seconds", type=float, default=1.0, help="length of the cut (the loudest span)")
    p.add_argument("--folds", type=int, nargs="*", default=None, help="test folds (default: all)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    if not (args.us8k / "manifest.csv").is_file():
        raise SystemExit(f"{args.us8k}: no manifest.csv (pass --us8k DIR of the UrbanSound8K subset)")
    print(f"cache: {os.environ.get('SOUNDLIB_CACHE_DIR') or '~/.cache/soundlib'}", file=sys.stderr)
    t0 = time.perf_counter()
    manifest = build_short_clips(args.us8k, args.out, seconds=args.seconds)
    with open(manifest, newline="", encoding="utf-8") as fh:
        clips = sum(1 for _ in csv.DictReader(fh))
    print(f"{clips} short clips in {manifest} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows = run(manifest, folds=tuple(args.folds) if args.folds else None)
    text = table(rows, clips=clips, seconds=args.seconds)
    print(text)
    if args.markdown:
        from soundlib.atomic import write_text_atomic

        write_text_atomic(args.markdown, text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
