"""Scores and their files: compute_metrics, RunMetrics (metrics.json)."""

from __future__ import annotations

import json

import pytest

from soundlib.evaluation.metrics import RunMetrics, compute_metrics


def test_compute_metrics():
    m = compute_metrics([0, 0, 1, 2], [0, 1, 1, 2], ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["a"]["recall"] == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_compute_metrics_agrees_with_scikit_learn(seed):
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    k = 6  # some classes never occur or are never predicted: the zero-division cases
    yt, yp = rng.integers(0, k - 1, 40), rng.integers(1, k, 40)
    m = compute_metrics(yt.tolist(), yp.tolist(), [f"c{i}" for i in range(k)])
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(yt, yp))
    present = sorted(set(yt.tolist()))  # macro-F1 over the classes the test fold holds; the 0.1 mean over all
    assert m["macro_f1"] == pytest.approx(f1_score(yt, yp, labels=present, average="macro", zero_division=0))
    assert m["macro_f1_all_classes"] == pytest.approx(f1_score(yt, yp, labels=labels, average="macro", zero_division=0))
    assert m["confusion_matrix"] == confusion_matrix(yt, yp, labels=labels).tolist()
    for i in labels:
        got = m["per_class"][f"c{i}"]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))


def test_run_metrics_round_trip_and_torn_files(tmp_path):
    m = RunMetrics(variant="mel", test_fold=3, accuracy=0.5, macro_f1=0.25, n=4, confusion_matrix=[[1, 1], [1, 1]],
                   per_class={"a": {"f1": 0.5}}, train_config={"epochs": 2}, seconds=1.5)
    path = m.write(tmp_path / "run")
    assert path == tmp_path / "run" / "metrics.json"
    assert RunMetrics.read(tmp_path / "run") == m == RunMetrics.read(path)
    assert RunMetrics.read(path, variant="mel", fold=3) == m
    assert RunMetrics.read(path, variant="wave") is None and RunMetrics.read(path, fold=1) is None
    assert json.loads(path.read_text())["accuracy"] == 0.5
    for bad in ('{"accuracy": ', '{"variant": "mel", "test_fold": 1, "accuracy": "x", "macro_f1": 0}',
                '{"variant": "mel", "test_fold": 1, "accuracy": 1.5, "macro_f1": 0}', "[1, 2]",
                '{"variant": "mel", "accuracy": 0.5, "macro_f1": 0.5}'):
        path.write_text(bad)
        assert RunMetrics.read(path) is None, bad
    assert RunMetrics.read(tmp_path / "nowhere") is None
    # unknown keys (written by a newer soundlib) are ignored, older files without optional keys load
    path.write_text(json.dumps({"variant": "mel", "test_fold": 1, "accuracy": 0.5, "macro_f1": 0.5, "future": 1}))
    # (a file without macro_f1_all_classes is soundlib 0.1's: its macro_f1 was the all-classes mean)
    assert RunMetrics.read(path) == RunMetrics("mel", 1, 0.5, 0.5, macro_f1_all_classes=0.5)
    with pytest.raises(TypeError):
        RunMetrics.from_dict({"variant": "mel"})

