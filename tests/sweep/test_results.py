"""A sweep folder's metrics -> tables, summed confusions, figures (hand-written metrics files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundlib import sweep
from soundlib.evaluation import plots


def fake_metrics(run_dir: Path, variant: str, fold: int, acc: float, f1: float, cm, *, method: str | None = None,
                 paths=None, correct=None, grouping=None, groups=None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    classes = ["a", "b"]
    d = {"variant": variant, "test_fold": fold, "accuracy": acc, "macro_f1": f1, "macro_f1_all_classes": f1,
         "n": int(np.sum(cm)),
         "confusion_matrix": cm, "per_class": {c: {"f1": 0.0} for c in classes}, "seconds": 1.0}
    if method is not None:
        d["method"] = method
    if grouping is not None:
        d["grouping"] = grouping
    (run_dir / "metrics.json").write_text(json.dumps(d))
    if paths is not None:
        rows = ["path,fold,group,true,predicted,probability,correct"]
        groups = groups or ["g"] * len(paths)
        rows += [f"{p},{fold},{g},a,{'a' if ok else 'b'},0.9,{ok}" for p, ok, g in zip(paths, correct, groups)]
        (run_dir / "predictions.csv").write_text("\n".join(rows) + "\n")


def test_collect_results_mean_std_and_files(tmp_path):
    # soundlib 0.1's layout <variant>/fold<k> (method frozen) beside <variant>/<method>/fold<k>
    fake_metrics(tmp_path / "mel" / "fold1", "mel", 1, 1.0, 1.0, [[2, 0], [0, 2]])
    fake_metrics(tmp_path / "mel" / "fold2", "mel", 2, 0.5, 0.4, [[1, 1], [1, 1]])
    fake_metrics(tmp_path / "wave" / "mfcc" / "fold1", "wave", 1, 0.25, 0.2, [[1, 1], [2, 0]], method="mfcc")
    (tmp_path / "wave" / "mfcc" / "fold2").mkdir(parents=True)
    (tmp_path / "wave" / "mfcc" / "fold2" / "metrics.json").write_text('{"accuracy": ')  # torn file: not a result
    (tmp_path / "notes" / "x").mkdir(parents=True)

    runs = sweep.collect_runs(tmp_path)
    assert list(zip(runs["variant"], runs["method"], runs["fold"])) == [("mel", "frozen", 1), ("mel", "frozen", 2),
                                                                      ("wave", "mfcc", 1)]
    table = sweep.collect_results(tmp_path)
    assert list(table.index) == [("mel", "frozen"), ("wave", "mfcc")]
    mel = table.loc[("mel", "frozen")]
    assert mel["folds"] == 2 and mel["clips"] == 8
    assert mel["accuracy_mean"] == pytest.approx(0.75)
    assert mel["accuracy_std"] == pytest.approx(0.25)  # population std
    assert mel["macro_f1_mean"] == pytest.approx(0.7)
    md = sweep.results_table_markdown(table)
    assert "| mel | frozen | 2 | 0.750 ± 0.250 | 0.700 ± 0.300 | 1 |" in md

    csv_path, md_path = sweep.write_results(tmp_path)
    import pandas as pd

    back = pd.read_csv(csv_path, index_col=["variant", "method"])
    # wave/mfcc's fold 2 did not complete: the row is incomplete, not the mean of fold 1 alone
    assert not back.loc[("wave", "mfcc"), "complete"] and float(back.loc[("wave", "mfcc"), "missing_folds"]) == 2
    assert np.isnan(back.loc[("wave", "mfcc"), "accuracy_mean"]) and bool(back.loc[("mel", "frozen"), "complete"])
    assert "0.750 ± 0.250" in md_path.read_text() and "Differences to the best row" in md_path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))

    classes, summed = sweep.summed_confusion(tmp_path)["mel/frozen"]
    assert classes == ["a", "b"] and summed.tolist() == [[3, 1], [1, 3]]
    f1 = sweep.per_class_f1(tmp_path)
    assert f1.loc["mel/frozen", "a"] == pytest.approx(0.75) and f1.loc["wave/mfcc", "a"] == pytest.approx(0.4)
    pngs = sweep.write_summed_confusions(tmp_path)
    assert pngs["mel/frozen"] == tmp_path / "mel" / "frozen" / "confusion_matrix.png"
    assert pngs["mel/frozen"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.plot_results(table)._repr_png_()[:4] == b"\x89PNG"
    assert plots.plot_per_class_f1(f1)._repr_png_()[:4] == b"\x89PNG"


def test_significance_paired_over_folds_and_clips(tmp_path):
    """McNemar counts the clips only one of two rows got right; the paired t-test compares fold accuracies."""
    from soundlib.sweep.results import significance, significance_markdown

    clips = [f"c{i}.wav" for i in range(60)]
    # best: 55/60 right; close: differs on 5 clips; poor: 27/60 right, all of them right for best too
    best = [i >= 5 for i in range(60)]
    close = [i >= 5 or i < 2 for i in range(60)]
    close[10] = close[11] = close[12] = False
    poor = [i % 2 == 0 and i >= 5 for i in range(60)]
    for name, correct in (("best", best), ("close", close), ("poor", poor)):
        for fold, part in ((1, slice(0, 30)), (2, slice(30, 60))):
            acc = float(np.mean(correct[part]))
            fake_metrics(tmp_path / "mel" / name / f"fold{fold}", "mel", fold, acc, acc, [[1, 0], [0, 1]],
                         method=name, paths=clips[part], correct=correct[part])
    frame = significance(tmp_path)
    assert list(frame.index) == [("mel", "close"), ("mel", "poor")]
    c, p = frame.loc[("mel", "close")], frame.loc[("mel", "poor")]
    assert (c["best_only"], c["other_only"], c["clips"]) == (3, 2, 60)  # clips 10-12 vs 0-1
    assert c["mcnemar_p"] == pytest.approx(1.0) and "not significantly" in c["verdict"]
    assert p["best_only"] == 28 and p["other_only"] == 0 and p["mcnemar_p"] < 1e-6 and "McNemar" in p["verdict"]
    assert p["verdict"].startswith("significantly different")
    assert p["folds"] == 2 and p["delta"] < -0.4
    assert "| mel | poor |" in significance_markdown(frame, ("mel", "best"))


def test_significance_corrects_for_overlapping_folds_and_many_rows(tmp_path):
    """The plain paired t-test over folds and the uncorrected McNemar p would call `close` significantly worse;
    the corrected resampled t-test and Holm's correction across the three rows compared do not."""
    from scipy import stats

    from soundlib.sweep.results import significance, significance_markdown

    clips = [f"c{i}.wav" for i in range(40)]
    rows = {"best": ([0.9, 0.9, 0.9, 0.9], [True] * 40),
            "close": ([0.89, 0.85, 0.88, 0.86], [i >= 6 for i in range(40)]),  # wrong on 6 clips best gets right
            "same1": ([0.89, 0.9, 0.9, 0.9], [True] * 40),
            "same2": ([0.9, 0.89, 0.9, 0.9], [True] * 40)}
    for name, (accs, correct) in rows.items():
        for fold, acc in zip(range(1, 5), accs):
            part = slice(10 * (fold - 1), 10 * fold)
            fake_metrics(tmp_path / "mel" / name / f"fold{fold}", "mel", fold, acc, acc, [[5, 0], [0, 5]], method=name,
                         paths=clips[part], correct=correct[part], groups=clips[part])
    frame = significance(tmp_path)
    c = frame.loc[("mel", "close")]
    assert stats.ttest_rel(rows["best"][0], rows["close"][0]).pvalue < 0.05  # what the plain test said
    assert c["test_train_ratio"] == pytest.approx(1 / 3)  # leave-one-fold-out of 4 equal folds
    assert 0.05 < c["corrected_t_p"] == pytest.approx(0.12, abs=0.01)
    assert c["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6)  # 6 vs 0 clips: 0.031
    assert c["mcnemar_p_holm"] == pytest.approx(3 * c["mcnemar_p"])  # the smallest of 3 p-values, times 3
    assert c["corrected_t_p_holm"] >= c["corrected_t_p"]
    assert c["verdict"] == "not significantly different from the best"
    assert c["delta_low"] < -6 / 40 + 0.03 and c["delta_high"] <= 0 and c["delta_low"] <= -0.15 <= c["delta_high"]
    md = significance_markdown(frame, ("mel", "best"))
    assert "Holm-corrected across the 3 row(s)" in md and "corrected resampled t-test" in md
    assert "| mel | close | 0.870 | -0.030 [" in md


def test_unknown_recordings_are_recorded_in_the_sweep_results(tmp_path):
    unknown = {"source": "none", "detail": "unknown", "known": False, "recordings": 8, "clips": 8}
    known = {"source": "regex", "detail": "regex", "known": True, "recordings": 2, "clips": 8}
    fake_metrics(tmp_path / "mel" / "frozen" / "fold1", "mel", 1, 0.9, 0.9, [[2, 0], [0, 2]], grouping=unknown)
    fake_metrics(tmp_path / "mel" / "mfcc" / "fold1", "mel", 1, 0.5, 0.5, [[1, 1], [1, 1]], method="mfcc",
                 grouping=known)
    fake_metrics(tmp_path / "old" / "fold1", "old", 1, 0.5, 0.5, [[1, 1], [1, 1]])  # soundlib 0.1: not recorded
    table = sweep.collect_results(tmp_path)
    assert table["recordings_known"].to_dict() == {("mel", "frozen"): False, ("mel", "mfcc"): True,
                                                   ("old", "frozen"): None}
    _, md = sweep.write_results(tmp_path)
    assert "**Recordings unknown** (mel/frozen)" in md.read_text()
    import pandas as pd

    assert not pd.read_csv(tmp_path / "results.csv", index_col=[0, 1]).loc[("mel", "frozen"), "recordings_known"]


def test_collect_results_empty(tmp_path):
    table = sweep.collect_results(tmp_path)
    assert len(table) == 0 and "no complete runs" in sweep.results_table_markdown(table)
    from soundlib.sweep.results import significance

    assert len(significance(tmp_path)) == 0


# ---------------------------------------------------------------------------
# End to end with the stand-in backbone


def test_a_row_with_a_failed_fold_is_incomplete_not_averaged(tmp_path):
    """Desk review finding 9: a sweep whose fold-1 run failed reported the mean of the folds that survived."""
    import math
    import shutil

    from soundlib import results as R
    from soundlib.sweep.results import collect_results, results_table_markdown, significance

    legacy = Path(__file__).parents[1] / "data" / "legacy_0_2" / "sweep"
    sweep_dir = Path(shutil.copytree(legacy, tmp_path / "sweep"))
    whole = collect_results(sweep_dir)
    assert bool(whole.loc[("mel", "mfcc"), "complete"]) and whole.loc[("mel", "mfcc"), "missing_folds"] == ""
    (sweep_dir / "mel" / "mfcc" / "fold3").mkdir()  # a run that failed leaves its folder, without metrics.json
    table = collect_results(sweep_dir)
    row = table.loc[("mel", "mfcc")]
    assert not row["complete"] and row["missing_folds"] == "3" and row["folds"] == 2
    assert math.isnan(row["accuracy_mean"]) and math.isnan(row["macro_f1_std"])
    assert "incomplete: fold(s) 3 did not complete" in results_table_markdown(table)
    assert significance(sweep_dir).empty  # nothing complete to compare
    summary = R.load(sweep_dir).summary
    assert not summary.loc[("mel", "mfcc"), "complete"] and math.isnan(summary.loc[("mel", "mfcc"), "accuracy_mean"])
