"""A sweep folder's metrics -> tables, summed confusions, figures (hand-written metrics files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundlib import plots, sweep


def fake_metrics(run_dir: Path, variant: str, fold: int, acc: float, f1: float, cm) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    classes = ["a", "b"]
    (run_dir / "metrics.json").write_text(json.dumps({
        "variant": variant, "test_fold": fold, "accuracy": acc, "macro_f1": f1, "macro_f1_all_classes": f1,
        "n": int(np.sum(cm)),
        "confusion_matrix": cm, "per_class": {c: {"f1": 0.0} for c in classes}, "seconds": 1.0}))


def test_collect_results_mean_std_and_files(tmp_path):
    fake_metrics(tmp_path / "mel" / "fold1", "mel", 1, 1.0, 1.0, [[2, 0], [0, 2]])
    fake_metrics(tmp_path / "mel" / "fold2", "mel", 2, 0.5, 0.4, [[1, 1], [1, 1]])
    fake_metrics(tmp_path / "wave" / "fold1", "wave", 1, 0.25, 0.2, [[1, 1], [2, 0]])
    (tmp_path / "wave" / "fold2").mkdir()
    (tmp_path / "wave" / "fold2" / "metrics.json").write_text('{"accuracy": ')  # torn file: ignored
    (tmp_path / "notes" / "x").mkdir(parents=True)

    runs = sweep.collect_runs(tmp_path)
    assert list(zip(runs["variant"], runs["fold"])) == [("mel", 1), ("mel", 2), ("wave", 1)]
    table = sweep.collect_results(tmp_path)
    assert list(table.index) == ["mel", "wave"]
    assert table.loc["mel", "folds"] == 2 and table.loc["mel", "clips"] == 8
    assert table.loc["mel", "accuracy_mean"] == pytest.approx(0.75)
    assert table.loc["mel", "accuracy_std"] == pytest.approx(0.25)  # population std
    assert table.loc["mel", "macro_f1_mean"] == pytest.approx(0.7)
    md = sweep.results_table_markdown(table)
    assert "| mel | 2 | 0.750 ± 0.250 | 0.700 ± 0.300 |" in md

    csv_path, md_path = sweep.write_results(tmp_path)
    import pandas as pd

    back = pd.read_csv(csv_path, index_col="variant")
    assert back.loc["wave", "accuracy_mean"] == pytest.approx(0.25)
    assert "0.750 ± 0.250" in md_path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))

    classes, summed = sweep.summed_confusion(tmp_path)["mel"]
    assert classes == ["a", "b"] and summed.tolist() == [[3, 1], [1, 3]]
    f1 = sweep.per_class_f1(tmp_path)
    assert f1.loc["mel", "a"] == pytest.approx(0.75) and f1.loc["wave", "a"] == pytest.approx(0.4)
    pngs = sweep.write_summed_confusions(tmp_path)
    assert pngs["mel"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.plot_results(table)._repr_png_()[:4] == b"\x89PNG"
    assert plots.plot_per_class_f1(f1)._repr_png_()[:4] == b"\x89PNG"


def test_collect_results_empty(tmp_path):
    table = sweep.collect_results(tmp_path)
    assert len(table) == 0 and "no complete runs" in sweep.results_table_markdown(table)


# ---------------------------------------------------------------------------
# End to end with the stand-in backbone
