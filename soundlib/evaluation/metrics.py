"""Scores and the files that hold them: ``metrics.json`` (one run), ``results.json``
(one evaluation) and ``predictions.csv`` (per clip, with every class's probability
in a ``p_<class>`` column).

Besides accuracy and F1, the scores include top-k accuracy (:func:`top_k_accuracy`)
and the expected calibration error (:func:`expected_calibration_error`, 15 bins of
top-1 confidence), computed from the probabilities.

:class:`RunMetrics` is the typed form of a run's ``metrics.json``; it is the
only code that writes or reads that file (:meth:`RunMetrics.write`,
:meth:`RunMetrics.read`). A run's ``metrics.json`` is written last of its
outputs, atomically, so its presence marks a complete run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "METRICS_FILE",
    "RESULTS_FILE",
    "PREDICTIONS_FILE",
    "compute_metrics",
    "compute_multilabel_metrics",
    "MULTILABEL_THRESHOLD",
    "RunMetrics",
    "prediction_rows",
    "write_predictions",
    "read_predictions",
    "write_results_json",
    "PROBABILITY_PREFIX",
    "TOP_K",
    "ECE_BINS",
    "probability_columns",
    "read_probabilities",
    "top_k_accuracy",
    "reliability_bins",
    "expected_calibration_error",
    "per_class_from_confusion",
    "score_problem",
    "results_problems",
    "MEAN_TOLERANCE",
]

METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTION_COLUMNS = ["path", "fold", "group", "true", "predicted", "probability", "correct"]
#: ``predictions.csv`` holds class ``c``'s probability in column ``p_<c>``, after :data:`PREDICTION_COLUMNS`.
PROBABILITY_PREFIX = "p_"
#: The ks of top-k accuracy (those up to the number of classes).
TOP_K = (1, 3, 5)
#: Equal-width bins of top-1 confidence in the expected calibration error.
ECE_BINS = 15


def probability_columns(classes: Sequence[str]) -> list[str]:
    """The ``predictions.csv`` columns of the classes' probabilities: ``p_<class>``, in class order."""
    return [f"{PROBABILITY_PREFIX}{c}" for c in classes]


def top_k_accuracy(y_true: Sequence[int] | np.ndarray, proba: np.ndarray, ks: Sequence[int] = TOP_K) -> dict[str, float]:
    """Share of clips whose true class is among the ``k`` most probable, for each ``k`` up to the number of classes.

    Parameters
    ----------
    y_true : sequence of int, length n
    proba : np.ndarray, shape (n, n_classes)
    ks : sequence of int
        Those above ``n_classes`` are left out (top-k would be 1 by definition).

    Returns
    -------
    dict
        ``{"1": ..., "3": ..., "5": ...}`` (string keys, as in JSON). Ties count in the class order
        (a stable sort of the probabilities).
    """
    proba = np.asarray(proba, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.int64)
    n_classes = proba.shape[1] if proba.ndim == 2 else 0
    if len(yt) == 0:
        return {str(k): 0.0 for k in ks if k <= n_classes}
    order = np.argsort(-proba, axis=1, kind="stable")
    rank = np.argmax(order == yt[:, None], axis=1)  # 0 for the top class
    return {str(k): float(np.mean(rank < k)) for k in sorted(set(ks)) if 1 <= k <= n_classes}


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS) -> dict[str, list]:
    """Top-1 confidence in ``n_bins`` equal-width bins, the reliability diagram's data.

    Bin ``i`` holds confidences in ``(i / n_bins, (i + 1) / n_bins]`` (the first also holds 0).

    Returns
    -------
    dict
        ``edges`` (n_bins + 1), and per bin ``count``, ``confidence`` (mean) and ``accuracy``
        (share correct); an empty bin has count 0 and NaN means.
    """
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=ok, minlength=n_bins) / count
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": mean_conf.tolist(),
            "accuracy": acc.tolist()}


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS) -> float:
    """ECE: the mean over clips of ``|accuracy - confidence|`` of their top-1 confidence bin.

    ``sum_b (n_b / n) * |acc_b - conf_b|`` over ``n_bins`` equal-width bins of
    the top-1 probability (Guo et al. 2017); 0 is perfectly calibrated.
    """
    bins = reliability_bins(confidence, correct, n_bins)
    count = np.asarray(bins["count"], dtype=np.float64)
    if count.sum() == 0:
        return 0.0
    gap = np.abs(np.nan_to_num(np.asarray(bins["accuracy"]) - np.asarray(bins["confidence"])))
    return float(np.sum(count / count.sum() * gap))


def per_class_from_confusion(matrix: Any, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-class precision, recall, F1 and support of a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(matrix, dtype=np.int64)
    yt = np.repeat(np.arange(len(classes)), cm.sum(axis=1)) if cm.size else np.zeros(0, np.int64)
    yp = np.concatenate([np.repeat(np.arange(len(classes)), row) for row in cm]) if cm.size else yt
    return compute_metrics(yt, yp, classes)["per_class"]


def compute_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, classes: Sequence[str], *,
                    proba: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (and, given the probabilities, top-k accuracy and the calibration error).

    Parameters
    ----------
    y_true, y_pred : sequence of int, length n
        Class ids (indices into ``classes``).
    classes : sequence of str
    proba : np.ndarray, shape (n, n_classes), optional
        Class probabilities (``y_pred`` is their argmax); adds ``top_k_accuracy``
        (:func:`top_k_accuracy`) and ``ece`` (:func:`expected_calibration_error` of the
        top-1 probability, :data:`ECE_BINS` bins).

    Returns
    -------
    dict
        ``accuracy``; ``macro_f1``, the mean F1 over the classes *present* in
        ``y_true`` (support > 0: a class absent from a test fold is not scored
        as 0); ``macro_f1_all_classes``, the mean over every class of
        ``classes`` (absent ones count 0, soundlib 0.1's ``macro_f1``);
        ``per_class`` (name -> precision, recall, f1, support),
        ``confusion_matrix`` (rows: true class, columns: predicted) and ``n``.
        The scores are scikit-learn's (``zero_division=0``), computed in numpy
        (importing scikit-learn would cost a sweep run more than training its head).
    """
    k = len(classes)
    yt, yp = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = np.bincount(yt * k + yp, minlength=k * k).reshape(k, k) if len(yt) else np.zeros((k, k), np.int64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 scores count as 0 (sklearn's zero_division=0)
        p = np.nan_to_num(tp / predicted)
        r = np.nan_to_num(tp / support)
        f = np.nan_to_num(2 * tp / (support + predicted))
    present = support > 0
    extra = {}
    if proba is not None:
        pr = np.asarray(proba, dtype=np.float64).reshape(len(yt), k)
        extra = {"top_k_accuracy": top_k_accuracy(yt, pr),
                 "ece": expected_calibration_error(pr.max(axis=1) if len(yt) else [], yp == yt)}
    return {
        **extra,
        "accuracy": float(tp.sum() / len(yt)) if len(yt) else 0.0,
        "macro_f1": float(f[present].mean()) if present.any() else 0.0,
        "macro_f1_all_classes": float(f.mean()) if k else 0.0,
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "n": int(len(yt)),
    }


#: A class counts as predicted for a clip of a multi-label dataset when its probability reaches this.
MULTILABEL_THRESHOLD = 0.5


def compute_multilabel_metrics(Y: np.ndarray, proba: np.ndarray, classes: Sequence[str], *,
                               threshold: float = MULTILABEL_THRESHOLD) -> dict[str, Any]:
    """Scores of a multi-label classifier: mean average precision, micro and macro F1, per-class AP.

    Parameters
    ----------
    Y : np.ndarray, shape (n, n_classes)
        Multi-hot true classes.
    proba : np.ndarray, shape (n, n_classes)
        Independent class probabilities (sigmoid outputs).
    threshold : float
        A class is predicted when its probability reaches it (for F1, precision, recall).

    Returns
    -------
    dict
        ``map`` (mean over the classes with positives of their average precision), ``micro_f1``,
        ``macro_f1`` (over the classes with positives), ``subset_accuracy`` (every class right),
        ``per_class`` (name -> ap, precision, recall, f1, support) and ``n``.
    """
    from soundlib.methods.base import average_precision

    Y = np.asarray(Y, dtype=np.float64) > 0.5
    P = np.asarray(proba, dtype=np.float64).reshape(Y.shape)
    pred = P >= threshold
    tp, fp, fn = (Y & pred).sum(axis=0), (~Y & pred).sum(axis=0), (Y & ~pred).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec, rec = np.nan_to_num(tp / (tp + fp)), np.nan_to_num(tp / (tp + fn))
        f1 = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
    present = Y.sum(axis=0) > 0
    aps = [average_precision(Y[:, k], P[:, k]) for k in range(len(classes))]
    micro = 2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())
    return {
        "map": float(np.mean([a for a, ok in zip(aps, present) if ok])) if present.any() else 0.0,
        "micro_f1": float(micro),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "subset_accuracy": float(np.mean(np.all(Y == pred, axis=1))) if len(Y) else 0.0,
        "per_class": {c: {"ap": None if not present[i] else round(aps[i], 6), "precision": float(prec[i]),
                          "recall": float(rec[i]), "f1": float(f1[i]), "support": int(Y[:, i].sum())}
                      for i, c in enumerate(classes)},
        "threshold": threshold,
        "n": int(len(Y)),
    }


@dataclasses.dataclass(frozen=True)
class RunMetrics:
    """One run's scores on its test fold: the content of ``metrics.json``.

    Attributes
    ----------
    variant : str
        Feature variant name (the run's folder name in a sweep).
    test_fold : int
    accuracy : float
    macro_f1 : float
        Mean F1 over the classes present in the test fold (see :func:`compute_metrics`).
    macro_f1_all_classes : float or None
        Mean F1 over every class, absent ones counting 0 (``None`` when unknown).
    n : int
        Test clips.
    per_class : dict
        Class name -> precision, recall, f1, support.
    confusion_matrix : list of list of int
        Rows: true class, columns: predicted, in the dataset's class order.
    protocol, backbone : str
        Fold protocol name and backbone identity.
    train_clips : int
    train_config : dict
        The :class:`~soundlib.methods.train.TrainConfig` used, as a mapping.
    seconds : float
        Wall time of the run.
    method : str
        The learning method's name (``"frozen"`` for runs made by soundlib 0.1).
    method_config : dict
        The method's full configuration.
    val_accuracy : float or None
        Accuracy on the grouped validation split inside the training folds.
    choice : dict
        What the method chose on validation (C, epochs, fusion weights, the method ``auto`` picked...).
    fit_seconds, prepare_seconds : float
        Wall time of fitting on this fold, and of preparing the features (shared by a sweep's folds).
    exported : bool
        Whether the run exported a labelling model.
    duration : dict
        The window length used, and whether ``duration: auto`` chose it.
    warnings : list of str
        What the run warned about (degenerate folds, recomputed cache entries...).
    top_k_accuracy : dict
        ``{"1": ..., "3": ..., "5": ...}`` (k up to the number of classes; see :func:`top_k_accuracy`);
        empty in files of older soundlib versions.
    ece : float or None
        Expected calibration error of the top-1 probability (:data:`ECE_BINS` bins); ``None`` when unknown.
    map, micro_f1 : float or None
        A multi-label run's mean average precision and micro-F1 (:func:`compute_multilabel_metrics`).
    grouping : dict
        How the dataset's recordings were known (:func:`soundlib.audio.folds.grouping_record`: ``source``,
        ``detail``, ``known``, ``recordings``, ``clips``); empty in files of older soundlib versions.

    Files written by soundlib 0.1 lack ``macro_f1_all_classes`` and ``warnings``;
    their ``macro_f1`` was the all-classes mean, so :meth:`from_dict` moves it to
    ``macro_f1_all_classes`` and recomputes ``macro_f1`` from the confusion matrix.
    """

    variant: str
    test_fold: int
    accuracy: float
    macro_f1: float
    n: int = 0
    per_class: dict = dataclasses.field(default_factory=dict)
    confusion_matrix: list = dataclasses.field(default_factory=list)
    protocol: str = ""
    backbone: str = ""
    train_clips: int = 0
    train_config: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    method: str = "frozen"
    method_config: dict = dataclasses.field(default_factory=dict)
    val_accuracy: float | None = None
    choice: dict = dataclasses.field(default_factory=dict)
    fit_seconds: float = 0.0
    prepare_seconds: float = 0.0
    exported: bool = False
    duration: dict = dataclasses.field(default_factory=dict)
    macro_f1_all_classes: float | None = None
    warnings: list = dataclasses.field(default_factory=list)
    grouping: dict = dataclasses.field(default_factory=dict)
    top_k_accuracy: dict = dataclasses.field(default_factory=dict)
    ece: float | None = None
    #: Multi-label runs: mean average precision and micro-F1 (``accuracy`` is then the subset accuracy).
    map: float | None = None
    micro_f1: float | None = None
    #: The embedder in words (:func:`soundlib.evaluation.evaluate.embedder_text`: ``"embedder mn04"``; for
    #: ``auto``, the pick's); empty in files of older soundlib versions.
    embedder: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return dataclasses.asdict(self)

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Write ``run_dir/metrics.json`` atomically."""
        from soundlib.atomic import write_json_atomic

        return write_json_atomic(Path(run_dir) / METRICS_FILE, self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunMetrics":
        """Build from a parsed ``metrics.json``; raises ``ValueError``/``TypeError``/``KeyError`` if invalid."""
        known = {f.name for f in dataclasses.fields(cls)}
        m = cls(**{k: v for k, v in d.items() if k in known})
        acc, f1 = float(m.accuracy), float(m.macro_f1)
        f1_all = float(m.macro_f1_all_classes) if m.macro_f1_all_classes is not None else None
        if "macro_f1_all_classes" not in d:  # written by soundlib 0.1: its macro_f1 averaged every class
            f1_all, f1 = f1, _present_macro_f1(m.confusion_matrix, default=f1)
        if not all(0.0 <= v <= 1.0 for v in (acc, f1, f1_all if f1_all is not None else 0.0)):  # NaN fails too
            raise ValueError(f"accuracy {acc} / macro_f1 {f1} / macro_f1_all_classes {f1_all} outside [0, 1]")
        if not isinstance(m.warnings, list) or not all(isinstance(w, str) for w in m.warnings):
            raise ValueError(f"warnings must be a list of strings, got {m.warnings!r}")
        return dataclasses.replace(m, accuracy=acc, macro_f1=f1, macro_f1_all_classes=f1_all,
                                   test_fold=int(m.test_fold), n=int(m.n))

    @classmethod
    def read(cls, path: str | os.PathLike, *, variant: str | None = None,
             fold: int | None = None) -> "RunMetrics | None":
        """Read a ``metrics.json`` (a file or its run folder); ``None`` when it is missing, torn or invalid,
        or belongs to another variant or fold than asked."""
        path = Path(path)
        if path.is_dir():
            path = path / METRICS_FILE
        try:
            m = cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        if variant is not None and m.variant != variant:
            return None
        if fold is not None and m.test_fold != fold:
            return None
        return m


def _present_macro_f1(confusion: Any, *, default: float) -> float:
    """Mean F1 over the classes with support (row sum > 0) of a confusion matrix; ``default`` if it is unusable."""
    try:
        mat = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):
        return default
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.size == 0 or not np.isfinite(mat).all():
        return default
    tp = np.diag(mat)
    support = mat.sum(axis=1)
    denom = support + mat.sum(axis=0)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return float(f1[present].mean()) if present.any() else default


def prediction_rows(clips: Sequence[Any], proba: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``predictions.csv``: one per clip, its true and top predicted class, and every class's
    probability (``p_<class>``, see :func:`probability_columns`).

    Parameters
    ----------
    clips : sequence of Clip, length n
    proba : np.ndarray, shape (n, n_classes)
        Class probabilities.
    """
    rows = []
    columns = probability_columns(classes)
    if any(len(getattr(c, "labels", ())) > 1 for c in clips) or (
            len(proba) and not np.allclose(np.asarray(proba).sum(axis=1), 1.0, atol=1e-3)):
        for c, pr in zip(clips, proba):  # multi-label: every class at or above the threshold is predicted
            active = [classes[int(k)] for k in np.flatnonzero(pr >= MULTILABEL_THRESHOLD)]
            rows.append({"path": str(c.path), "fold": c.fold, "group": c.group, "true": ";".join(c.all_labels),
                         "predicted": ";".join(active), "probability": float(np.max(pr)),
                         "correct": sorted(active) == sorted(c.all_labels),
                         **{col: round(float(v), 6) for col, v in zip(columns, pr)}})
        return rows
    for c, pr in zip(clips, proba):
        k = int(np.argmax(pr))
        rows.append({"path": str(c.path), "fold": c.fold, "group": c.group, "true": c.label,
                     "predicted": classes[k], "probability": float(pr[k]), "correct": c.label == classes[k],
                     **{col: round(float(v), 6) for col, v in zip(columns, pr)}})
    return rows


def write_predictions(out_dir: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write ``out_dir/predictions.csv`` atomically: :data:`PREDICTION_COLUMNS`, then the rows'
    ``p_<class>`` columns (names that a spreadsheet would run as formulas get a leading ``'``, which
    :func:`read_predictions` removes: :func:`soundlib.text.csv_cell`)."""
    from soundlib.atomic import write_csv_atomic

    extra = [k for k in (rows[0] if rows else {}) if k not in PREDICTION_COLUMNS]
    return write_csv_atomic(Path(out_dir) / PREDICTIONS_FILE, rows, fieldnames=PREDICTION_COLUMNS + extra)


def read_predictions(run_dir: str | os.PathLike):
    """A run's ``predictions.csv`` as a pandas DataFrame (columns as written by :func:`write_predictions`);
    ``None`` when it is missing, or (with a :class:`~soundlib.errors.SoundlibWarning` naming the file)
    when it is there but is not a predictions table: unreadable, not CSV, without the ``path``, ``true``
    and ``predicted`` columns, or with rows that lack a path or a probability. Files of older soundlib versions have no
    ``p_<class>`` columns."""
    import pandas as pd

    from soundlib.text import csv_uncell
    from soundlib.errors import warn

    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        warn(f"{path}: not a readable predictions table ({type(exc).__name__}: {str(exc)[:160]}); its "
             "predictions are left out")
        return None
    missing = [c for c in ("path", "true", "predicted") if c not in frame.columns]
    if missing:
        warn(f"{path}: not a soundlib predictions table (no column(s) {', '.join(missing)}); its predictions are "
             "left out")
        return None
    needed = [c for c in ("path", "probability") if c in frame.columns]  # (a class may be named "NA")
    torn = int(frame[needed].isna().any(axis=1).sum())
    if torn:
        warn(f"{path}: {torn} row(s) lack a path or a probability (a torn or edited file); its predictions are "
             "left out")
        return None
    # the names as they were before writing (a cell a spreadsheet would take for a formula got a leading ')
    frame = frame.rename(columns=csv_uncell)
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].map(csv_uncell)
    return frame


def read_probabilities(frame: Any, classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]] | None:
    """The class probabilities of a ``predictions.csv`` frame, shape (n, n_classes), and their classes.

    ``classes`` gives the order (default: the order of the ``p_<class>`` columns). ``None`` when
    the frame has no probability columns (a file of an older soundlib) or lacks one of ``classes``.
    """
    found = [c[len(PROBABILITY_PREFIX):] for c in frame.columns if str(c).startswith(PROBABILITY_PREFIX)]
    if not found:
        return None
    classes = list(classes) if classes is not None else found
    if any(c not in found for c in classes):
        return None
    return frame[probability_columns(classes)].to_numpy(dtype=np.float64), classes


#: How far a recorded mean (or std) may be from the one recomputed from its per-fold scores.
MEAN_TOLERANCE = 1e-6


def score_problem(value: Any, what: str, *, optional: bool = False) -> str | None:
    """Why ``value`` is not a score (a finite number in [0, 1], not a bool), in one phrase; ``None`` when it is
    (or, with ``optional``, when it is ``None``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{what} should be a number in [0, 1], got {str(value)[:40]!r}"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return f"{what} should be a finite number in [0, 1], got {value!r}"
    return None


def results_problems(res: Any) -> list[str]:
    """What is wrong with the scores of an evaluation's ``results.json`` (or of a model's ``cross_validation``,
    which has the same keys), one phrase per problem (empty: none).

    ``per_fold`` must be a non-empty list of ``{"fold": int, "accuracy": score}`` with distinct folds;
    ``accuracy_mean`` and ``accuracy_std`` scores equal (within :data:`MEAN_TOLERANCE`) to the mean and
    standard deviation (ddof=0) of the per-fold accuracies; ``macro_f1`` a score (or absent); ``folds``,
    when given, the per-fold list's folds.
    """
    if not isinstance(res, Mapping):
        return [f"expected a JSON object, got {type(res).__name__}"]
    problems: list[str] = []
    per_fold = res.get("per_fold")
    accs: list[float] = []
    folds: list[int] = []
    if not isinstance(per_fold, list) or not per_fold:
        problems.append(f"per_fold should be a non-empty list of folds' scores, got {str(per_fold)[:40]!r}")
    else:
        for i, r in enumerate(per_fold):
            if not isinstance(r, Mapping):
                problems.append(f"per_fold[{i}] should be an object, got {str(r)[:40]!r}")
                continue
            fold = r.get("fold")
            if isinstance(fold, bool) or not isinstance(fold, int):
                problems.append(f"per_fold[{i}].fold should be an integer, got {str(fold)[:40]!r}")
            else:
                folds.append(fold)
            why = score_problem(r.get("accuracy"), f"per_fold[{i}].accuracy")
            if why:
                problems.append(why)
            else:
                accs.append(float(r["accuracy"]))
        twice = sorted({f for f in folds if folds.count(f) > 1})
        if twice:
            problems.append(f"per_fold lists fold(s) {', '.join(map(str, twice))} more than once")
    for key in ("accuracy_mean", "accuracy_std"):
        why = score_problem(res.get(key), key)
        if why:
            problems.append(why)
    why = score_problem(res.get("macro_f1"), "macro_f1", optional=True)
    if why:
        problems.append(why)
    if not problems and accs:
        for key, want in (("accuracy_mean", float(np.mean(accs))), ("accuracy_std", float(np.std(accs)))):
            if abs(float(res[key]) - want) > MEAN_TOLERANCE:
                problems.append(f"{key} {res[key]!r} is not the {key.split('_')[1]} of the per-fold accuracies "
                                f"({want:.6g})")
    if "folds" in res and not problems and res["folds"] != folds:
        problems.append(f"folds {str(res['folds'])[:60]} are not the per-fold list's ({folds})")
    return problems


def write_results_json(out_dir: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write an evaluation's ``out_dir/results.json`` atomically."""
    from soundlib.atomic import write_json_atomic

    return write_json_atomic(Path(out_dir) / RESULTS_FILE, dict(results))
