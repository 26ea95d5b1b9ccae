"""Results as pandas DataFrames: :func:`load` reads what ``evaluate``, ``train`` or ``sweep`` wrote.

>>> r = load("runs/mel")     # doctest: +SKIP
>>> r.summary                # one row per (variant, method): mean ± std over folds, top-k, ECE
>>> r.folds                  # one row per (variant, method, test fold)
>>> r.predictions            # one row per test clip, every class's probability in p_<class> columns
>>> r.per_class              # precision, recall, F1 and support per class

``load`` tells the folders apart by what they hold: ``results.json`` (``soundlib
evaluate --out``), ``metrics.json`` (``soundlib train --out``, or one run of a
sweep), or runs in ``<variant>/<method>/fold<k>/`` (``soundlib sweep --out``).
Files of older soundlib versions read too: their missing scores (top-k, ECE, the
probability columns) are NaN or absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from soundlib.errors import ConfigError
from soundlib.evaluation.metrics import (METRICS_FILE, RESULTS_FILE, RunMetrics, read_predictions, read_probabilities,
                                         results_problems)

__all__ = ["Results", "load", "SUMMARY_COLUMNS", "FOLD_COLUMNS"]

#: Columns of :attr:`Results.summary` (indexed by variant and method).
SUMMARY_COLUMNS = ["folds", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "top_3_accuracy",
                   "top_5_accuracy", "ece", "clips", "recordings_known"]
#: Columns of :attr:`Results.folds`.
FOLD_COLUMNS = ["variant", "method", "fold", "accuracy", "macro_f1", "top_3_accuracy", "top_5_accuracy", "ece", "n",
                "val_accuracy", "seconds"]
_PER_CLASS_COLUMNS = ["precision", "recall", "f1", "support"]


@dataclasses.dataclass
class Results:
    """What one output folder holds, as DataFrames.

    Attributes
    ----------
    kind : {"evaluate", "train", "sweep"}
    path : Path
    summary : pandas.DataFrame
        Indexed by ``(variant, method)``; columns :data:`SUMMARY_COLUMNS`: test folds, mean and
        std (ddof=0) of accuracy and macro-F1 over them, mean top-3/top-5 accuracy and ECE over
        them (NaN where not recorded), test clips, whether the recordings were known.
    folds : pandas.DataFrame
        One row per (variant, method, test fold); columns :data:`FOLD_COLUMNS`.
    predictions : pandas.DataFrame
        One row per test clip (per run in a sweep): ``variant, method, fold, path, group, true,
        predicted, probability, correct`` and ``p_<class>`` for every class (absent in files of
        soundlib 0.1).
    per_class : pandas.DataFrame
        ``precision, recall, f1, support`` per class, indexed by class; a sweep's by
        ``(variant, method, class)``, from the confusion matrices summed over folds.
    classes : list of str
        In the dataset's class order.
    grouping : dict or None
        How the recordings were known (``results.json``/``metrics.json``'s ``grouping``; a sweep's
        first run's), ``None`` when not recorded.
    warnings : list of str
        What the run(s) warned about.
    """

    kind: str
    path: Path
    summary: Any
    folds: Any
    predictions: Any
    per_class: Any
    classes: list[str]
    grouping: dict | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def probabilities(self) -> np.ndarray | None:
        """Every prediction's class probabilities, shape (len(predictions), len(classes)), in
        :attr:`classes` order; ``None`` when the files hold no probability columns."""
        got = read_probabilities(self.predictions, self.classes)
        return None if got is None else got[0]

    def calibration(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per ``variant/method``: the top-1 probability of each test clip and whether it was right
        (the input of :func:`soundlib.evaluation.plots.plot_reliability`)."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        frame = self.predictions
        if frame.empty or "probability" not in frame:
            return out
        for (variant, method), part in frame.groupby(["variant", "method"], sort=False):
            out[f"{variant}/{method}"] = (part["probability"].to_numpy(dtype=float),
                                          (part["true"] == part["predicted"]).to_numpy())
        return out

    def misclassified(self):
        """The predictions whose top class is wrong, most confident first."""
        frame = self.predictions
        wrong = frame[frame["true"] != frame["predicted"]]
        return wrong.sort_values("probability", ascending=False, kind="stable")


def load(path: str | os.PathLike) -> Results:
    """Read an ``evaluate``, ``train`` or ``sweep`` output folder into DataFrames.

    Parameters
    ----------
    path : path-like
        ``soundlib evaluate --out`` (``results.json``), ``soundlib train --out`` or a sweep run's
        folder (``metrics.json``), or ``soundlib sweep --out`` (runs in ``<variant>/<method>/fold<k>``).

    Returns
    -------
    Results

    Raises
    ------
    ConfigError
        The folder holds none of them, or its file is torn or not soundlib's.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder; expected the --out folder of soundlib evaluate, train or sweep")
    if (path / RESULTS_FILE).is_file():
        return _load_evaluate(path)
    if (path / METRICS_FILE).is_file():
        return _load_train(path)
    from soundlib.sweep.results import collect_runs

    runs = collect_runs(path)
    if (path / "sweep.yaml").is_file() or len(runs):
        return _load_sweep(path, runs)
    raise ConfigError(f"{path}: holds no {RESULTS_FILE} (soundlib evaluate --out), {METRICS_FILE} (soundlib train "
                      "--out) or complete sweep runs (<variant>/<method>/fold<k>/metrics.json); is the run finished?")


# ---------------------------------------------------------------------------
# The three kinds of folder

def _load_evaluate(path: Path) -> Results:
    import pandas as pd

    try:
        res = json.loads((path / RESULTS_FILE).read_text(encoding="utf-8"))
        classes = list(res["dataset"]["classes"])
        per_fold = list(res["per_fold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path / RESULTS_FILE}: not a soundlib results.json ({type(exc).__name__}: {exc})") from None
    problems = results_problems(res)
    if problems:
        raise ConfigError(f"{path / RESULTS_FILE}: not a valid soundlib results.json: {'; '.join(problems[:5])}"
                          + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    variant, method = res.get("variant", ""), (res.get("method") or {}).get("name", "frozen")
    folds = pd.DataFrame([{
        "variant": variant, "method": method, "fold": int(f["fold"]), "accuracy": f.get("accuracy"),
        "macro_f1": f.get("macro_f1"), "top_3_accuracy": _k(f.get("top_k_accuracy"), 3),
        "top_5_accuracy": _k(f.get("top_k_accuracy"), 5), "ece": _nan(f.get("ece")), "n": f.get("n"),
        "val_accuracy": _nan(f.get("val_accuracy")), "seconds": _nan(f.get("seconds"))} for f in per_fold],
        columns=FOLD_COLUMNS)
    grouping = res.get("grouping") or None
    return Results("evaluate", path, _summary(folds, grouping), folds, _predictions(path, variant, method),
                   _per_class_frame(res.get("per_class") or {}, classes), classes, grouping,
                   list(res.get("warnings") or []))


def _load_train(path: Path) -> Results:
    import pandas as pd

    m = RunMetrics.read(path)
    if m is None:
        raise ConfigError(f"{path / METRICS_FILE}: torn or not a soundlib metrics.json")
    classes = list(m.per_class) or sorted(set(_predictions(path, m.variant, m.method)["true"]))
    folds = pd.DataFrame([_fold_row(m)], columns=FOLD_COLUMNS)
    grouping = m.grouping or None
    return Results("train", path, _summary(folds, grouping), folds, _predictions(path, m.variant, m.method),
                   _per_class_frame(m.per_class, classes), classes, grouping, list(m.warnings))


def _load_sweep(path: Path, runs) -> Results:
    import pandas as pd

    from soundlib.evaluation.metrics import per_class_from_confusion
    from soundlib.sweep.results import all_known, complete_runs, planned_runs, summed_confusion

    rows, preds, warnings, grouping = [], [], [], None
    for run_dir, m in complete_runs(path):
        rows.append(_fold_row(m))
        preds.append(_predictions(run_dir, m.variant, m.method))
        warnings += [w for w in m.warnings if w not in warnings]
        grouping = grouping or (m.grouping or None)
    folds = pd.DataFrame(rows, columns=FOLD_COLUMNS)
    summary = _summary(folds, None)
    if len(summary):
        summary["recordings_known"] = [all_known(runs[(runs["variant"] == v) & (runs["method"] == mt)]
                                                  ["recordings_known"]) for v, mt in summary.index]
    # a row with a planned fold that did not complete is incomplete: not averaged (see collect_results)
    planned = planned_runs(path)
    missing = {}
    for key, want in planned.items():
        done = folds[(folds["variant"] == key[0]) & (folds["method"] == key[1])]["fold"].tolist()
        missing[key] = sorted(want - set(done))
    summary["complete"] = [not missing.get(key) for key in summary.index]
    summary["missing_folds"] = [" ".join(map(str, missing.get(key, []))) for key in summary.index]
    averaged = ["accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "top_3_accuracy", "top_5_accuracy",
                "ece"]
    summary.loc[~summary["complete"].astype(bool), averaged] = float("nan")
    per_class = []
    classes: list[str] = []
    for label, (names, matrix) in summed_confusion(path).items():
        variant, _, method = label.partition("/")
        classes = classes or list(names)
        frame = _per_class_frame(per_class_from_confusion(matrix, names), names)
        frame.index = pd.MultiIndex.from_tuples([(variant, method, c) for c in frame.index],
                                                names=["variant", "method", "class"])
        per_class.append(frame)
    per_class_frame = (pd.concat(per_class) if per_class else pd.DataFrame(
        columns=_PER_CLASS_COLUMNS, index=pd.MultiIndex.from_tuples([], names=["variant", "method", "class"])))
    predictions = pd.concat(preds, ignore_index=True) if preds else _predictions(path, "", "")
    return Results("sweep", path, summary, folds, predictions, per_class_frame, classes, grouping, warnings)


# ---------------------------------------------------------------------------
# Helpers

def _nan(x: Any) -> float:
    return float(x) if x is not None else float("nan")


def _k(top_k: Any, k: int) -> float:
    return _nan((top_k or {}).get(str(k)))


def _fold_row(m: RunMetrics) -> dict[str, Any]:
    return {"variant": m.variant, "method": m.method, "fold": int(m.test_fold), "accuracy": m.accuracy,
            "macro_f1": m.macro_f1, "top_3_accuracy": _k(m.top_k_accuracy, 3),
            "top_5_accuracy": _k(m.top_k_accuracy, 5), "ece": _nan(m.ece), "n": int(m.n),
            "val_accuracy": _nan(m.val_accuracy), "seconds": _nan(m.seconds)}


def _summary(folds, grouping: dict | None):
    """Mean ± std (ddof=0) over the folds of each (variant, method)."""
    import pandas as pd

    rows = []
    for (variant, method), r in folds.groupby(["variant", "method"], sort=False):
        rows.append({"variant": variant, "method": method, "folds": len(r),
                     "accuracy_mean": r["accuracy"].mean(), "accuracy_std": r["accuracy"].std(ddof=0),
                     "macro_f1_mean": r["macro_f1"].mean(), "macro_f1_std": r["macro_f1"].std(ddof=0),
                     "top_3_accuracy": r["top_3_accuracy"].mean(), "top_5_accuracy": r["top_5_accuracy"].mean(),
                     "ece": r["ece"].mean(), "clips": int(r["n"].sum()),
                     "recordings_known": None if grouping is None else grouping.get("known")})
    return pd.DataFrame(rows, columns=["variant", "method"] + SUMMARY_COLUMNS).set_index(["variant", "method"])


def _predictions(run_dir: Path, variant: str, method: str):
    """A run's ``predictions.csv`` with ``variant`` and ``method`` columns first (empty when missing)."""
    import pandas as pd

    frame = read_predictions(run_dir)
    if frame is None:
        frame = pd.DataFrame(columns=["path", "fold", "group", "true", "predicted", "probability", "correct"])
    frame.insert(0, "method", method)
    frame.insert(0, "variant", variant)
    return frame


def _per_class_frame(per_class: dict, classes: list[str]):
    import pandas as pd

    frame = pd.DataFrame.from_dict({c: per_class.get(c, {}) for c in classes}, orient="index",
                                   columns=_PER_CLASS_COLUMNS)
    frame.index.name = "class"
    if len(frame):
        frame["support"] = frame["support"].fillna(0).astype(int)
    return frame
