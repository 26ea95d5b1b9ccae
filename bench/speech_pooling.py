"""How the ``speech`` embedder pools its network windows into one row: chosen by inner cross-validation.

For each outer (test) fold of a dataset with predefined folds, every pooling of the 96-d network-window
embeddings (mean, max, [mean, max], [mean, max, std]) and every C of a standardized logistic head is scored
by leave-one-fold-out over the *training* folds only; the best is refitted on them and scored once on the
test fold. Prints the choice per outer fold and the nested accuracy, and writes them as JSON.
A pooling that depends on the clip's length (the windows concatenated in order) is left out a priori: the
embedder takes windows of any length.

    PYTHONPATH=. .venv/bin/python bench/speech_pooling.py ../shared/data/spoken_words \\
        --out bench/results/spoken_words/speech_pooling_inner_cv.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

POOLINGS = {
    "mean": lambda e: e.mean(0),
    "max": lambda e: e.max(0),
    "meanmax": lambda e: np.concatenate([e.mean(0), e.max(0)]),
    "meanmaxstd": lambda e: np.concatenate([e.mean(0), e.max(0), e.std(0)]),
}
CS = (0.01, 0.1, 1.0)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from soundlib.audio.loaders import load_dataset
    from soundlib.embedders import WindowSpec, resolve_embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds of one audio window (the variant's)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    ds = load_dataset(args.dataset)
    emb = resolve_embedder("speech")
    model = emb.load().model  # type: ignore[attr-defined]
    w = WindowSpec("speech", 16000, args.duration, args.duration / 2, pad="none")
    per_clip = []
    for clip in ds.clips:  # every network window of every audio window of the clip
        e, _ = model.network_windows(np.concatenate(list(emb.inputs(clip.path, w))))
        per_clip.append(e)
    y = np.array([c.label for c in ds.clips])
    folds = np.array([c.fold for c in ds.clips])
    X = {p: np.stack([f(e) for e in per_clip]) for p, f in POOLINGS.items()}

    def accuracy(p: str, C: float, train: np.ndarray, test: np.ndarray) -> float:
        head = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X[p][train], y[train])
        return float((head.predict(X[p][test]) == y[test]).mean())

    report: dict = {"dataset": str(args.dataset), "identity": emb.identity, "poolings": list(POOLINGS),
                    "Cs": list(CS), "outer": []}
    for k in sorted(set(folds.tolist())):
        inner_folds = [j for j in sorted(set(folds.tolist())) if j != k]
        inner = {(p, C): float(np.mean([accuracy(p, C, (folds != k) & (folds != j), folds == j) for j in inner_folds]))
                 for p in POOLINGS for C in CS}
        best = max(inner, key=lambda key: inner[key])
        test = accuracy(best[0], best[1], folds != k, folds == k)
        best_per_pooling = {p: max(v for (q, _), v in inner.items() if q == p) for p in POOLINGS}
        report["outer"].append({"test_fold": k, "choice": {"pooling": best[0], "C": best[1]},
                                "inner_accuracy_by_pooling": {p: round(v, 4) for p, v in best_per_pooling.items()},
                                "test_accuracy": test})
        print(f"fold {k}: inner CV picks {best[0]} (C={best[1]}); inner by pooling "
              + ", ".join(f"{p} {v:.3f}" for p, v in best_per_pooling.items()) + f"; test {test:.3f}", flush=True)
    accs = [o["test_accuracy"] for o in report["outer"]]
    report["nested_accuracy_mean"], report["nested_accuracy_std"] = float(np.mean(accs)), float(np.std(accs))
    print(f"nested accuracy {np.mean(accs):.3f} ± {np.std(accs):.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
