"""Classifier heads on fixed features: standardized logistic regression with its
regularization chosen on the grouped validation split.

The head is plain numpy at prediction time (:class:`LogisticHead`) and folds its
standardization into one dense layer for export (:meth:`LogisticHead.dense`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import numpy as np

from soundlib.errors import DatasetError
from soundlib.methods.base import Context, Features, FoldFit, FoldSplit, Method, accuracy, aggregate, timed

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

__all__ = ["DEFAULT_CS", "LogisticHead", "fit_logistic_head", "HeadMethod"]

#: Inverse regularization strengths tried, weakest regularization last.
DEFAULT_CS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


@dataclasses.dataclass(frozen=True)
class LogisticHead:
    """Multinomial logistic regression on standardized features.

    Attributes
    ----------
    mean, scale : np.ndarray, shape (dim,)
        Standardization fitted on the training rows.
    coef : np.ndarray, shape (n_classes, dim)
    intercept : np.ndarray, shape (n_classes,)
        Classes absent from training get zero weights and a very low intercept.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class scores, shape (n, n_classes), of features ``x`` (n, dim)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), of features ``x`` (n, dim)."""
        s = self.logits(x)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel (dim, n_classes), bias (n_classes,))`` of one dense layer computing :meth:`logits`."""
        w = self.coef / self.scale
        return w.T.astype(np.float32), (self.intercept - (self.mean / self.scale) @ self.coef.T).astype(np.float32)


def _fit_lr(x: np.ndarray, y: np.ndarray, n_classes: int, C: float, *, seed: int,
            warm: "LogisticRegression | None" = None) -> "tuple[LogisticHead, LogisticRegression]":
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    present = np.unique(y)
    if len(present) < 2:
        raise DatasetError(f"cannot train a classifier on one class (class id {int(present[0])}): "
                           "the training folds need at least two classes")
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    clf = warm if warm is not None else LogisticRegression(C=C, max_iter=3000, tol=1e-4, warm_start=True,
                                                           random_state=seed)
    clf.C = C
    from threadpoolctl import threadpool_limits

    # one BLAS thread: on a few cores shared with rendering and TensorFlow, threaded BLAS on these
    # small matrices is 10-40x slower than one thread (measured: 0.3 s vs 8-14 s per fit)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny or separable data
        clf.fit(z, y)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, -30.0)
    if len(clf.classes_) == 2 and clf.coef_.shape[0] == 1:  # binary: sklearn keeps one row
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return LogisticHead(scaler.mean_.astype(np.float64), scale.astype(np.float64), coef, intercept), clf


def fit_logistic_head(feats: Features, split: FoldSplit, y: np.ndarray, *, n_classes: int,
                      Cs: tuple[float, ...] = DEFAULT_CS, how: str = "mean", seed: int = 0) -> FoldFit:
    """Fit a :class:`LogisticHead` on the training clips' windows, C chosen on validation.

    Each C is fitted on ``split.fit`` and scored on ``split.val`` (clip-level
    accuracy after aggregating windows); the best C (ties: the stronger
    regularization) is refitted on all of ``split.train``.

    Parameters
    ----------
    feats : Features
        Rows of shape (dim,) per window.
    split : FoldSplit
    y : np.ndarray, shape (n_clips,)
        Class id of every clip.
    """
    x = feats.x.reshape(len(feats.x), -1)
    rows_fit, rows_val = feats.rows_of(split.fit), feats.rows_of(split.val)
    scores: dict[float, float] = {}
    val_probas: dict[float, np.ndarray] = {}
    if len(split.val):
        warm = None
        for C in sorted(Cs):
            head, warm = _fit_lr(x[rows_fit], y[feats.row_clip[rows_fit]], n_classes, C, seed=seed, warm=warm)
            p = aggregate(head.predict_proba(x[rows_val]), feats.row_clip[rows_val], split.val, how=how)
            val_probas[C], scores[C] = p, accuracy(p, y[split.val])
        best = max(sorted(Cs), key=lambda C: scores[C])  # first maximum: the smallest C
    else:
        best = 1.0
    rows_train = feats.rows_of(split.train)
    head, _ = _fit_lr(x[rows_train], y[feats.row_clip[rows_train]], n_classes, best, seed=seed)
    return FoldFit(model=head, val_proba=val_probas.get(best, np.zeros((0, n_classes), np.float32)),
                   val_accuracy=scores.get(best, float("nan")),
                   choice={"C": best, "val_accuracy_by_C": {f"{c:g}": round(s, 4) for c, s in scores.items()}})


class HeadMethod(Method):
    """A method whose features are embeddings (one row per window) and whose head is the logistic head:
    subclasses only :meth:`prepare` the embeddings (their options carry ``Cs``)."""

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        return fit_logistic_head(feats, split, y, n_classes=ctx.n_classes, Cs=self.options.Cs, how=ctx.aggregate,
                                 seed=ctx.train.seed)

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        rows = feats.rows_of(clips)
        return aggregate(fit.model.predict_proba(feats.x[rows]), feats.row_clip[rows], clips, how=ctx.aggregate)

