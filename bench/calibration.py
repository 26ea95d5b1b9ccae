"""Calibration: the logistic head's probabilities before and after calibration, on real clips, in one run.

Runs leave-one-fold-out :func:`soundlib.evaluation.evaluate.evaluate` twice over the UrbanSound8K subset
(the development set, folds 1, 2, 3, 10) with the same method and the same cached embeddings:

  before  ``calibrate: false``: soundlib 0.2's head (ties in validation accuracy go to the smallest C,
          no temperature);
  after   the default: ties go to the better validation log-loss, and one temperature fitted on the
          validation recordings of each fold divides the head's logits.

From each run's ``predictions.csv`` it computes, over all clips pooled: accuracy, the expected
calibration error of the top-1 probability (15 equal-width bins, as ``results.json``), the negative
log-likelihood and the Brier score; and the mean over folds of each fold's ECE. The folds' chosen C
and temperature come from ``results.json``.

    SOUNDLIB_CACHE_DIR=/tmp/soundlib-bench-cache SOUNDLIB_MN04_CHECKPOINT=.../mn04_as_mAP_432.pt \\
        python bench/calibration.py [--dataset ../shared/data/urbansound8k_subset/manifest.csv] \\
        [--method mn04] [--out /tmp/calibration] [--text bench/results/calibration.txt]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "data" / "urbansound8k_subset" / "manifest.csv"


def scores(run: Path) -> dict:
    """Pooled accuracy, ECE, NLL, Brier and the mean per-fold ECE, from ``run/predictions.csv``."""
    import pandas as pd

    from soundlib.evaluation.metrics import expected_calibration_error

    frame = pd.read_csv(run / "predictions.csv")
    cols = [c for c in frame.columns if c.startswith("p_")]
    classes = [c[2:] for c in cols]
    p = frame[cols].to_numpy(np.float64)
    y = np.array([classes.index(t) for t in frame["true"]])
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    onehot = np.eye(len(classes))[y]
    folds = sorted(frame["fold"].unique())
    per_fold = [expected_calibration_error(conf[frame["fold"] == f], correct[frame["fold"] == f]) for f in folds]
    res = json.loads((run / "results.json").read_text())
    return {"clips": len(y), "accuracy": float(correct.mean()), "macro_f1": res["macro_f1"],
            "ece": expected_calibration_error(conf, correct), "ece_fold_mean": float(np.mean(per_fold)),
            "ece_by_fold": {int(f): round(e, 4) for f, e in zip(folds, per_fold)},
            "nll": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)))),
            "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
            "mean_confidence": float(conf.mean()),
            "choices": {int(r["fold"]): {k: r["choice"].get(k) for k in ("C", "temperature")} for r in res["per_fold"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--method", default="mn04")
    parser.add_argument("--out", type=Path, default=Path("/tmp/calibration"))
    parser.add_argument("--text", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)

    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig, evaluate

    dataset = load_dataset(args.dataset)
    rows = {}
    for name, calibrate in (("before", False), ("after", True)):
        t0 = time.perf_counter()
        config = EvalConfig(method={"name": args.method, "method": args.method, "calibrate": calibrate})
        evaluate(dataset, config, out_dir=args.out / name, overwrite=True, progress=False)
        rows[name] = {**scores(args.out / name), "seconds": round(time.perf_counter() - t0, 1)}
    lines = [f"calibration of {args.method} on {args.dataset} ({rows['after']['clips']} clips, leave-one-fold-out "
             f"over folds {', '.join(map(str, rows['after']['ece_by_fold']))}); one run, same cached embeddings",
             "ECE: 15 equal-width bins of the top-1 probability; pooled = all test clips together (predictions.csv)",
             "",
             f"{'':8} {'accuracy':>8} {'macro-F1':>8} {'ECE pooled':>10} {'ECE fold mean':>13} {'NLL':>7} "
             f"{'Brier':>7} {'mean conf':>9}"]
    for name, r in rows.items():
        lines.append(f"{name:8} {r['accuracy']:8.4f} {r['macro_f1']:8.4f} {r['ece']:10.4f} {r['ece_fold_mean']:13.4f} "
                     f"{r['nll']:7.4f} {r['brier']:7.4f} {r['mean_confidence']:9.4f}")
    lines.append("")
    for name, r in rows.items():
        lines.append(f"{name}: ECE by fold {r['ece_by_fold']}; chosen {r['choices']}; {r['seconds']} s")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.text:
        args.text.parent.mkdir(parents=True, exist_ok=True)
        args.text.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
