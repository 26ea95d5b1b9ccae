"""Scores and the files that hold them: ``metrics.json`` (one run), ``results.json``
(one evaluation) and ``predictions.csv`` (per clip).

:class:`RunMetrics` is the typed form of a run's ``metrics.json``; it is the
only code that writes or reads that file (:meth:`RunMetrics.write`,
:meth:`RunMetrics.read`). A run's ``metrics.json`` is written last of its
outputs, atomically, so its presence marks a complete run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "METRICS_FILE",
    "RESULTS_FILE",
    "PREDICTIONS_FILE",
    "compute_metrics",
    "RunMetrics",
    "prediction_rows",
    "write_predictions",
    "write_results_json",
]

METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTION_COLUMNS = ["path", "fold", "group", "true", "predicted", "probability", "correct"]


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : sequence of int, length n
        Class ids (indices into ``classes``).
    classes : sequence of str

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``per_class`` (name -> precision, recall, f1,
        support), ``confusion_matrix`` (rows: true class, columns: predicted) and ``n``; the
        scores of scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)``, in numpy
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
    return {
        "accuracy": float(tp.sum() / len(yt)) if len(yt) else 0.0,
        "macro_f1": float(f.mean()) if k else 0.0,
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "n": int(len(yt)),
    }


@dataclasses.dataclass(frozen=True)
class RunMetrics:
    """One run's scores on its test fold: the content of ``metrics.json``.

    Attributes
    ----------
    variant : str
        Feature variant name (the run's folder name in a sweep).
    test_fold : int
    accuracy, macro_f1 : float
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
        The :class:`~soundlib.train.TrainConfig` used, as a mapping.
    seconds : float
        Wall time of the run.
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

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return dataclasses.asdict(self)

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Write ``run_dir/metrics.json`` atomically."""
        from .atomic import write_json_atomic

        return write_json_atomic(Path(run_dir) / METRICS_FILE, self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunMetrics":
        """Build from a parsed ``metrics.json``; raises ``ValueError``/``TypeError``/``KeyError`` if invalid."""
        known = {f.name for f in dataclasses.fields(cls)}
        m = cls(**{k: v for k, v in d.items() if k in known})
        acc, f1 = float(m.accuracy), float(m.macro_f1)
        if not (0.0 <= acc <= 1.0 and 0.0 <= f1 <= 1.0):
            raise ValueError(f"accuracy {acc} / macro_f1 {f1} outside [0, 1]")
        return dataclasses.replace(m, accuracy=acc, macro_f1=f1, test_fold=int(m.test_fold), n=int(m.n))

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


def prediction_rows(clips: Sequence[Any], proba: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``predictions.csv``: one per clip, its true and top predicted class.

    Parameters
    ----------
    clips : sequence of Clip, length n
    proba : np.ndarray, shape (n, n_classes)
        Class probabilities.
    """
    rows = []
    for c, pr in zip(clips, proba):
        k = int(np.argmax(pr))
        rows.append({"path": str(c.path), "fold": c.fold, "group": c.group, "true": c.label,
                     "predicted": classes[k], "probability": float(pr[k]), "correct": c.label == classes[k]})
    return rows


def write_predictions(out_dir: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write ``out_dir/predictions.csv`` atomically."""
    from .atomic import write_csv_atomic

    return write_csv_atomic(Path(out_dir) / PREDICTIONS_FILE, rows, fieldnames=PREDICTION_COLUMNS)


def write_results_json(out_dir: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write an evaluation's ``out_dir/results.json`` atomically."""
    from .atomic import write_json_atomic

    return write_json_atomic(Path(out_dir) / RESULTS_FILE, dict(results))
