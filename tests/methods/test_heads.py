"""The logistic head: C chosen on validation, numpy prediction, export as one dense layer."""

from __future__ import annotations

import numpy as np

from soundlib.methods.base import Features, FoldSplit
from soundlib.methods.heads import fit_logistic_head


def blobs(n_per=40, n_classes=3, dim=6, seed=0, spread=2.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (n_classes, dim))
    x = np.concatenate([centers[k] + rng.normal(0, 1.0, (n_per, dim)) for k in range(n_classes)])
    return (x * 10 + 5).astype(np.float32), np.repeat(np.arange(n_classes), n_per)  # unstandardized on purpose


def split_of(n, seed=0):
    idx = np.random.default_rng(seed).permutation(n)
    return FoldSplit(train=idx[: int(0.8 * n)], fit=idx[: int(0.6 * n)], val=idx[int(0.6 * n): int(0.8 * n)],
                     test=idx[int(0.8 * n):])


def test_chosen_on_validation_and_refitted():
    x, y = blobs()
    feats = Features(x, np.arange(len(x)), len(x))
    split = split_of(len(x))
    fit = fit_logistic_head(feats, split, y, n_classes=4, Cs=(1e-4, 1e-2, 1.0))  # class 3 never seen
    assert set(fit.choice["val_accuracy_by_C"]) == {"0.0001", "0.01", "1"}
    assert fit.choice["C"] in (1e-4, 1e-2, 1.0)
    assert round(fit.val_accuracy, 4) == max(fit.choice["val_accuracy_by_C"].values())
    head = fit.model
    p = head.predict_proba(x[split.test])
    assert p.shape == (len(split.test), 4) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert np.all(p[:, 3] < 1e-6)  # a class absent from training is never predicted
    assert np.mean(p.argmax(1) == y[split.test]) > 0.85
    kernel, bias = head.dense()  # standardization folded into one layer
    logits = x[split.test] @ kernel + bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(e / e.sum(axis=1, keepdims=True), p, atol=1e-5)


def test_windows_train_on_rows_and_score_clips():
    x, y = blobs(n_per=20)
    rows = np.repeat(x, 3, axis=0) + np.random.default_rng(1).normal(0, 0.1, (len(x) * 3, x.shape[1]))
    feats = Features(rows.astype(np.float32), np.repeat(np.arange(len(x)), 3), len(x))
    fit = fit_logistic_head(feats, split_of(len(x)), y, n_classes=3)
    assert fit.val_proba.shape == (len(split_of(len(x)).val), 3)  # one row per validation clip
