"""Classifier heads on fixed features: standardized logistic regression with its
regularization chosen on the grouped validation split, and its probabilities calibrated there.

The head is plain numpy at prediction time (:class:`LogisticHead`) and folds its
standardization (and its temperature) into one dense layer for export (:meth:`LogisticHead.dense`).

Calibration (on by default; ``calibrate: false`` in a method's options switches it off): a tie in
validation accuracy between two values of C goes to the better validation log-loss (not to the
stronger regularization, whose probabilities are the least confident), and one temperature ``T``
(:func:`fit_temperature`: the scalar that minimises the validation clips' negative log-likelihood,
bounded to :data:`TEMPERATURE_BOUNDS`) divides the head's logits. ``T`` is part of the fitted head,
so it reaches every probability the head gives: evaluation, ``predict``, events and exported models.

Multi-label data (labels given as a multi-hot matrix, :func:`soundlib.methods.base.labels_of`) trains
one-vs-rest: one binary logistic regression per class on the shared standardization, sigmoid outputs
that need not sum to 1; C is chosen by validation mAP (ties: the better binary cross-entropy) and the
temperature minimises the validation binary cross-entropy.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import numpy as np

from soundlib.errors import DatasetError
from soundlib.methods.base import Context, Features, FoldFit, FoldSplit, Method, aggregate, score_of, timed

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

__all__ = ["DEFAULT_CS", "TEMPERATURE_BOUNDS", "LogisticHead", "fit_logistic_head", "fit_temperature",
           "log_loss", "HeadMethod"]

#: Inverse regularization strengths tried, weakest regularization last.
DEFAULT_CS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)

#: The range a fitted temperature is kept in (a tiny validation split cannot send it to 0 or infinity).
TEMPERATURE_BOUNDS = (0.05, 20.0)

#: The logit of a class absent from training (stays negligible at any temperature in the bounds).
ABSENT_LOGIT = -1000.0


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
    temperature : float
        The logits are divided by it (1: uncalibrated; fitted on validation by :func:`fit_temperature`).
    multilabel : bool
        One-vs-rest: each class's probability is the sigmoid of its logit (several classes may be
        present); otherwise the softmax over classes.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float = 1.0
    multilabel: bool = False

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class scores, shape (n, n_classes), of features ``x`` (n, dim), divided by the temperature."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return (z @ self.coef.T + self.intercept) / float(self.temperature)

    def with_temperature(self, temperature: float) -> "LogisticHead":
        """The same head with another temperature."""
        return dataclasses.replace(self, temperature=float(temperature))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), of features ``x`` (n, dim)."""
        return _link(self.logits(x), self.multilabel).astype(np.float32)

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``(kernel (dim, n_classes), bias (n_classes,))`` of one dense layer computing :meth:`logits`
        (standardization and temperature folded in)."""
        t = float(self.temperature)
        w = self.coef / self.scale / t
        bias = (self.intercept - (self.mean / self.scale) @ self.coef.T) / t
        return w.T.astype(np.float32), bias.astype(np.float32)


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
    intercept = np.full(n_classes, ABSENT_LOGIT)
    if len(clf.classes_) == 2 and clf.coef_.shape[0] == 1:  # binary: sklearn keeps one row
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return LogisticHead(scaler.mean_.astype(np.float64), scale.astype(np.float64), coef, intercept), clf


def _fit_ovr(x: np.ndarray, Y: np.ndarray, C: float, *, seed: int,
             warm: "list | None" = None) -> "tuple[LogisticHead, list]":
    """One-vs-rest: a binary logistic regression per class of the multi-hot ``Y`` (n, n_classes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    n_classes = Y.shape[1]
    coef, intercept = np.zeros((n_classes, x.shape[1])), np.full(n_classes, ABSENT_LOGIT)
    models = list(warm) if warm is not None else [None] * n_classes
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for k in range(n_classes):
            yk = (Y[:, k] > 0.5).astype(np.int64)
            if yk.min() == yk.max():  # never (or always) present in training: a constant output
                intercept[k] = ABSENT_LOGIT if yk.max() == 0 else -ABSENT_LOGIT
                continue
            clf = models[k] or LogisticRegression(C=C, max_iter=3000, tol=1e-4, warm_start=True, random_state=seed)
            clf.C = C
            clf.fit(z, yk)
            coef[k], intercept[k], models[k] = clf.coef_[0], clf.intercept_[0], clf
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return LogisticHead(scaler.mean_.astype(np.float64), scale.astype(np.float64), coef, intercept,
                        multilabel=True), models


def _softmax(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def _link(s: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits to probabilities: sigmoid per class (multi-label) or softmax over classes."""
    if multilabel:
        return 1.0 / (1.0 + np.exp(-np.clip(s, -500, 500)))
    return _softmax(s)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes ``y`` (n,) under ``proba`` (n, n_classes); for
    multi-hot ``y`` (n, n_classes), the mean binary cross-entropy over clips and classes."""
    if not len(y):
        return float("nan")
    y = np.asarray(y)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1 - 1e-12)
    if y.ndim == 2:
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def fit_temperature(logits: np.ndarray, row_clip: np.ndarray, clips: np.ndarray, y: np.ndarray, *,
                    how: str = "mean") -> float:
    """The temperature ``T`` that minimises the clips' negative log-likelihood.

    Parameters
    ----------
    logits : np.ndarray, shape (n_rows, n_classes)
        Window logits (at temperature 1) of the validation clips.
    row_clip : np.ndarray, shape (n_rows,)
        The clip of each row.
    clips : np.ndarray, shape (n,)
        The validation clips; ``y`` their classes.
    how : {"mean", "max"}
        How windows become a clip decision (as the method aggregates them).

    Returns
    -------
    float
        In :data:`TEMPERATURE_BOUNDS`; 1.0 when there is nothing to fit on.
    """
    from scipy.optimize import minimize_scalar

    if not len(clips) or not len(logits):
        return 1.0
    logits = np.asarray(logits, dtype=np.float64)
    yc = np.asarray(y)
    multilabel = yc.ndim == 2

    def nll(log_t: float) -> float:
        p = aggregate(_link(logits / np.exp(log_t), multilabel), row_clip, clips, how=how)
        return log_loss(p, yc)

    lo, hi = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    best = float(res.x) if nll(float(res.x)) <= nll(0.0) else 0.0  # never worse than no scaling
    return float(np.clip(np.exp(best), *TEMPERATURE_BOUNDS))


def fit_logistic_head(feats: Features, split: FoldSplit, y: np.ndarray, *, n_classes: int,
                      Cs: tuple[float, ...] = DEFAULT_CS, how: str = "mean", seed: int = 0,
                      calibrate: bool = True) -> FoldFit:
    """Fit a :class:`LogisticHead` on the training clips' windows, C chosen on validation.

    Each C is fitted on ``split.fit`` and scored on ``split.val`` (clip-level
    accuracy after aggregating windows); the best C is refitted on all of ``split.train``.
    Ties in accuracy go to the better validation log-loss when ``calibrate`` (then the head's
    temperature is fitted on the validation clips, :func:`fit_temperature`), to the stronger
    regularization otherwise (soundlib 0.2, no temperature).

    Parameters
    ----------
    feats : Features
        Rows of shape (dim,) per window.
    split : FoldSplit
    y : np.ndarray, shape (n_clips,) or (n_clips, n_classes)
        Class id of every clip, or (multi-label) every clip's multi-hot classes: one-vs-rest heads,
        scored by mean average precision.
    calibrate : bool
        Break ties by log-loss and fit a temperature (the default), or neither.
    """
    x = feats.x.reshape(len(feats.x), -1)
    multilabel = np.asarray(y).ndim == 2

    def fit_lr(rows, C, warm=None):
        target = y[feats.row_clip[rows]]
        if multilabel:
            return _fit_ovr(x[rows], target, C, seed=seed, warm=warm)
        return _fit_lr(x[rows], target, n_classes, C, seed=seed, warm=warm)

    rows_fit, rows_val = feats.rows_of(split.fit), feats.rows_of(split.val)
    scores: dict[float, float] = {}
    losses: dict[float, float] = {}
    val_logits: dict[float, np.ndarray] = {}
    if len(split.val):
        warm = None
        yv = y[split.val]
        for C in sorted(Cs):
            head, warm = fit_lr(rows_fit, C, warm)
            val_logits[C] = head.logits(x[rows_val])
            p = aggregate(_link(val_logits[C], multilabel), feats.row_clip[rows_val], split.val, how=how)
            scores[C], losses[C] = score_of(p, yv), log_loss(p, yv)
        if calibrate:  # the best accuracy; among ties, the best log-loss (then the smaller C)
            best = min(sorted(Cs), key=lambda C: (-scores[C], losses[C]))
        else:
            best = max(sorted(Cs), key=lambda C: scores[C])  # first maximum: the smallest C
    else:
        best = 1.0
    temperature = 1.0
    if calibrate and best in val_logits:
        temperature = fit_temperature(val_logits[best], feats.row_clip[rows_val], split.val, y[split.val], how=how)
    val_proba = (aggregate(_link(val_logits[best] / temperature, multilabel), feats.row_clip[rows_val], split.val,
                           how=how) if best in val_logits else np.zeros((0, n_classes), np.float32))
    head, _ = fit_lr(feats.rows_of(split.train), best)
    head = head.with_temperature(temperature)
    by_c = {f"{c:g}": round(s, 4) for c, s in scores.items()}
    choice = {"C": best, **({"val_map_by_C": by_c, "multilabel": True} if multilabel else {"val_accuracy_by_C": by_c})}
    if calibrate:
        choice.update(temperature=round(temperature, 4),
                      val_log_loss_by_C={f"{c:g}": round(v, 4) for c, v in losses.items()},
                      val_log_loss=round(log_loss(val_proba, y[split.val]), 4) if len(split.val) else None)
    return FoldFit(model=head, val_proba=val_proba.astype(np.float32), val_accuracy=scores.get(best, float("nan")),
                   choice=choice)


class HeadMethod(Method):
    """A method whose features are embeddings (one row per window) and whose head is the logistic head:
    subclasses only :meth:`prepare` the embeddings (their options carry ``Cs`` and ``calibrate``)."""

    @property
    def multilabel(self) -> bool:
        return True

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        return fit_logistic_head(feats, split, y, n_classes=ctx.n_classes, Cs=self.options.Cs, how=ctx.aggregate,
                                 seed=ctx.train.seed, calibrate=getattr(self.options, "calibrate", True))

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        rows = feats.rows_of(clips)
        return aggregate(fit.model.predict_proba(feats.x[rows]), feats.row_clip[rows], clips, how=ctx.aggregate)

