"""Significance tests for comparing methods evaluated on the same folds and clips.

* :func:`corrected_resampled_t`: Nadeau and Bengio's corrected resampled t-test
  over per-fold scores. The folds' training sets overlap, so their scores are
  correlated and the plain paired t-test's variance is too small (it declares
  differences that are not there); the correction inflates it by
  ``1/k + n_test/n_train``.
* :func:`bootstrap_difference`: a percentile bootstrap interval of the accuracy
  difference over clips, resampling whole recordings (clips of one recording move
  together, as they are not independent).
* :func:`mcnemar`: McNemar's exact test over the clips two models labelled.
* :func:`holm`: Holm's step-down correction of p-values for comparing several
  rows with the best.

References: C. Nadeau and Y. Bengio, "Inference for the generalization error",
Machine Learning 52 (2003); R. Bouckaert and E. Frank, "Evaluating the
replicability of significance tests for comparing learning algorithms", PAKDD 2004;
S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J.
Statist. 6 (1979).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["corrected_resampled_t", "bootstrap_difference", "mcnemar", "holm", "BOOTSTRAP_RESAMPLES"]

#: Resamples of :func:`bootstrap_difference`.
BOOTSTRAP_RESAMPLES = 2000


def corrected_resampled_t(a: Sequence[float], b: Sequence[float], test_train_ratio: float) -> tuple[float, float]:
    """Nadeau and Bengio's corrected resampled t-test of paired per-fold scores.

    ``t = mean(d) / sqrt((1/k + n_test/n_train) * var(d))`` with ``d = a - b`` over
    the ``k`` folds (``var`` with ddof=1) and ``k - 1`` degrees of freedom; the
    plain paired t-test is the same without the ``n_test/n_train`` term.

    Parameters
    ----------
    a, b : sequence of float, length k
        Scores of two models on the same folds.
    test_train_ratio : float
        Test clips over training clips of a fold (about ``1/(k-1)`` for leave-one-fold-out).

    Returns
    -------
    t, p : float
        The statistic and its two-sided p-value; NaN with fewer than 2 folds or when the
        differences do not vary (the test is undefined).
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    k = len(d)
    if k < 2:
        return float("nan"), float("nan")
    var = float(d.var(ddof=1))
    if not var > 0:
        return float("nan"), float("nan")
    t = float(d.mean() / np.sqrt((1.0 / k + float(test_train_ratio)) * var))
    return t, float(2 * stats.t.sf(abs(t), k - 1))


def bootstrap_difference(x: Sequence[bool] | np.ndarray, y: Sequence[bool] | np.ndarray,
                         groups: Sequence[str] | None = None, *,
                         level: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``accuracy(y) - accuracy(x)`` over the same clips.

    Whole recordings are resampled with replacement (``groups``: each clip's
    recording; ``None``: each clip alone), so the interval is not made narrow by
    slices of one recording that are right or wrong together.

    Parameters
    ----------
    x, y : sequence of bool, length n
        Whether each of two models got each clip right.
    groups : sequence of str, length n, optional
    level : float
        Coverage of the interval.

    Returns
    -------
    low, high : float
        NaN when there are no clips.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    _, g = np.unique(np.asarray(groups if groups is not None else np.arange(len(x))).astype(str), return_inverse=True)
    n_groups = int(g.max()) + 1
    size = np.bincount(g, minlength=n_groups).astype(np.float64)
    diff = np.bincount(g, weights=y - x, minlength=n_groups)
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, n_resamples, 250):  # bounded memory: (250, n_groups) counts at a time
        m = min(250, n_resamples - start)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=m).astype(np.float64)
        deltas.append(counts @ diff / np.maximum(counts @ size, 1.0))
    d = np.concatenate(deltas)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(d, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar(x: Sequence[bool] | np.ndarray, y: Sequence[bool] | np.ndarray) -> tuple[int, int, float]:
    """McNemar's exact test: of the clips exactly one of two models got right, are the two counts
    compatible with chance?

    Returns
    -------
    x_only, y_only : int
        Clips only ``x`` / only ``y`` got right.
    p : float
        Two-sided exact binomial p-value (1 when they never disagree).
    """
    from scipy import stats

    x = np.asarray(x, dtype=bool)
    y = np.asarray(y, dtype=bool)
    n01, n10 = int(np.sum(x & ~y)), int(np.sum(~x & y))
    p = float(stats.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue) if n01 + n10 else 1.0
    return n01, n10, p


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over the tests given).

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i`` (i from 0),
    made non-decreasing in that order and capped at 1. NaN values stay NaN and do
    not count in ``m``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if not len(ok):
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out
