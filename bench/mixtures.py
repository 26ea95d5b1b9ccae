"""Multi-label on real mixtures: pairs of real UrbanSound8K clips overlaid at known SNRs, mAP of a method.

Builds, with :func:`soundlib.audio.synth.mix.mix_pairs`, a multi-label manifest from the development
subset (folds 1, 2, 3, 10): inside each fold, up to ``--pairs`` pairs of clips of two different classes
(and recordings), each pair mixed at 0 dB and at 6 dB (the first clip louder), labelled with both
classes (``a;b``), beside every single clip with its one label. Then runs leave-one-fold-out
:func:`soundlib.evaluation.evaluate.evaluate` with ``--method`` (mn04 by default: one-vs-rest sigmoid
logistic heads, calibrated) and reports mAP (mean over classes of the average precision), micro and
macro F1 at 0.5, pooled and by fold, and the mAP of the single clips, the 6-dB and the 0-dB mixtures
(from ``predictions.csv``).

    SOUNDLIB_CACHE_DIR=/tmp/soundlib-bench-cache SOUNDLIB_MN04_CHECKPOINT=.../mn04_as_mAP_432.pt \\
        python bench/mixtures.py [--dataset ../shared/data/urbansound8k_subset/manifest.csv] [--pairs 200] \\
        [--out /tmp/mixtures] [--text bench/results/mixtures.txt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "data" / "urbansound8k_subset" / "manifest.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--method", default="mn04")
    parser.add_argument("--pairs", type=int, default=200, help="pairs per fold (each mixed at 0 and 6 dB)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/mixtures"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", type=Path, default=None)
    args = parser.parse_args(argv)

    import pandas as pd

    from soundlib.audio.loaders import load_dataset
    from soundlib.audio.synth.mix import mix_pairs
    from soundlib.evaluation.evaluate import EvalConfig, evaluate
    from soundlib.evaluation.metrics import compute_multilabel_metrics

    t0 = time.perf_counter()
    manifest = args.out / "data" / "manifest.csv"
    if not manifest.is_file():
        mix_pairs(load_dataset(args.dataset), args.out / "data", snrs=(0.0, 6.0), pairs_per_fold=args.pairs,
                  sr=32000, seed=args.seed)
    dataset = load_dataset(manifest)
    built = time.perf_counter() - t0
    res = evaluate(dataset, EvalConfig(method=args.method), out_dir=args.out / "run", overwrite=True, progress=False)
    frame = pd.read_csv(args.out / "run" / "predictions.csv")
    classes = res["dataset"]["classes"]
    P = frame[[f"p_{c}" for c in classes]].to_numpy()
    Y = np.array([[c in str(t).split(";") for c in classes] for t in frame["true"]], float)
    snr = pd.read_csv(manifest).set_index("path")["snr_db"]
    rel = [str(Path(p).relative_to(manifest.parent)) if str(p).startswith(str(manifest.parent)) else None
           for p in frame["path"]]
    kind = np.array(["single" if Y[i].sum() == 1 else f"{snr.get(r):g} dB" for i, r in enumerate(rel)])
    lines = [f"multi-label: {args.method} on {len(dataset)} clips of {args.dataset} (leave-one-fold-out over folds "
             f"{', '.join(str(f['fold']) for f in res['per_fold'])}): {int((kind != 'single').sum())} mixtures of two "
             f"real clips of different classes from one fold ({args.pairs} pairs per fold at most, each at 0 and 6 dB) "
             f"and {int((kind == 'single').sum())} single clips; one-vs-rest sigmoid heads, calibrated",
             f"mixtures built in {built:.0f} s; evaluation {res['seconds']['total']:.0f} s", "",
             f"pooled: mAP {res['map']:.3f}, micro-F1 {res['micro_f1']:.3f}, macro-F1 {res['macro_f1']:.3f} (threshold "
             f"{res['threshold']:g}); mAP by fold {res['map_mean']:.3f} ± {res['map_std']:.3f}: "
             + ", ".join(f"fold {f['fold']} {f['map']:.3f}" for f in res["per_fold"]), ""]
    lines.append(f"{'subset':10} {'clips':>5} {'mAP':>6} {'micro-F1':>8} {'macro-F1':>8} {'both labels found':>17}")
    for name in ("single", "6 dB", "0 dB"):
        m = kind == name
        s = compute_multilabel_metrics(Y[m], P[m], classes)
        both = float(np.mean([(P[i][Y[i] > 0] >= 0.5).all() for i in np.flatnonzero(m)]))
        lines.append(f"{name:10} {int(m.sum()):5d} {s['map']:6.3f} {s['micro_f1']:8.3f} {s['macro_f1']:8.3f} {both:17.3f}")
    lines += ["", f"{'class':18} {'AP':>6} {'F1':>6} {'support':>7}"]
    for c, v in res["per_class"].items():
        lines.append(f"{c:18} {v['ap']:6.3f} {v['f1']:6.3f} {v['support']:7d}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.text:
        args.text.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
