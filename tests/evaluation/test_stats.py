"""Significance tests: Holm's correction, the corrected resampled t-test, the recording bootstrap, McNemar."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from soundlib.evaluation.stats import bootstrap_difference, corrected_resampled_t, holm, mcnemar


def test_holm_step_down():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> made non-decreasing: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.02])
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.02])  # NaN not counted in m
    assert holm([]).shape == (0,)


def test_corrected_resampled_t():
    a, b = [0.90, 0.90, 0.90, 0.90], [0.89, 0.85, 0.88, 0.86]
    d = np.subtract(a, b)
    t, p = corrected_resampled_t(a, b, 1 / 3)
    assert t == pytest.approx(d.mean() / np.sqrt((1 / 4 + 1 / 3) * d.var(ddof=1)))
    assert p == pytest.approx(2 * stats.t.sf(t, 3))
    plain = stats.ttest_rel(a, b)
    assert corrected_resampled_t(a, b, 0.0) == pytest.approx((plain.statistic, plain.pvalue))  # no correction
    assert p > plain.pvalue and plain.pvalue < 0.05 < p
    assert np.isnan(corrected_resampled_t([0.5], [0.4], 0.1)[1])  # one fold
    assert np.isnan(corrected_resampled_t([0.5, 0.6], [0.4, 0.5], 0.1)[1])  # constant difference: undefined


def test_bootstrap_resamples_recordings():
    rng = np.random.default_rng(1)
    n_rec, per = 30, 5
    x = np.ones(n_rec * per, bool)
    y = np.repeat(rng.random(n_rec) < 0.7, per)  # a recording's slices are right or wrong together
    groups = np.repeat([f"r{i}" for i in range(n_rec)], per)
    observed = y.mean() - x.mean()
    by_clip = bootstrap_difference(x, y, seed=0)
    by_recording = bootstrap_difference(x, y, groups, seed=0)
    assert by_recording == bootstrap_difference(x, y, groups, seed=0)  # seeded
    for low, high in (by_clip, by_recording):
        assert low < observed < high <= 0
    # slices of one recording are not independent evidence: the honest interval is about sqrt(5) times wider
    assert (by_recording[1] - by_recording[0]) > 1.8 * (by_clip[1] - by_clip[0])
    assert np.isnan(bootstrap_difference([], [])[0])


def test_mcnemar_counts_and_exact_p():
    x = [True] * 10 + [False] * 2
    y = [True] * 4 + [False] * 6 + [True] * 2
    assert mcnemar(x, y) == (6, 2, pytest.approx(stats.binomtest(2, 8, 0.5).pvalue))
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)
