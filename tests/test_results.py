"""Per-clip probabilities, top-k accuracy and calibration in the files; soundlib.results.load reads them back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from soundlib import results
from soundlib.audio.loaders import load_dataset
from soundlib.errors import ConfigError
from soundlib.evaluation.evaluate import EvalConfig, evaluate
from soundlib.models.train import train_fold
from soundlib.evaluation.metrics import (RunMetrics, compute_metrics, expected_calibration_error, read_predictions,
                              read_probabilities, reliability_bins, top_k_accuracy)
from soundlib.methods.train import TrainConfig

from .conftest import small_spec

LEGACY = Path(__file__).parent / "data" / "legacy_0_1"


def test_top_k_accuracy_bounded_by_classes_and_ece():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 2])
    assert top_k_accuracy(y, proba) == {"1": 0.5, "3": 1.0}  # no top-5 of 3 classes
    assert top_k_accuracy(y, proba, ks=(1, 2)) == {"1": 0.5, "2": 1.0}
    conf, ok = proba.max(axis=1), proba.argmax(axis=1) == y
    # bins of 1/15: 0.7 (right) and 0.6, 0.6 (one right, one wrong) and 0.5 (wrong)
    expected = (1 * abs(1 - 0.7) + 2 * abs(0.5 - 0.6) + 1 * abs(0 - 0.5)) / 4
    assert expected_calibration_error(conf, ok) == pytest.approx(expected)
    bins = reliability_bins(conf, ok)
    assert sum(bins["count"]) == 4 and len(bins["edges"]) == 16
    scores = compute_metrics(y, proba.argmax(axis=1), ["a", "b", "c"], proba=proba)
    assert scores["top_k_accuracy"]["1"] == scores["accuracy"] and scores["ece"] == pytest.approx(expected)
    assert "ece" not in compute_metrics(y, proba.argmax(axis=1), ["a", "b", "c"])  # no probabilities, no ECE


def test_old_files_still_read():
    m = RunMetrics.read(LEGACY / "sweep" / "tmel" / "fold1")
    assert m.top_k_accuracy == {} and m.ece is None and m.grouping == {}
    frame = read_predictions(LEGACY / "sweep" / "tmel" / "fold1")
    assert frame is not None and read_probabilities(frame) is None  # 0.1 kept the top-1 probability only
    old = results.load(LEGACY / "sweep")
    assert old.kind == "sweep" and list(old.summary.index) == [("tmel", "frozen")]
    assert np.isnan(old.summary.loc[("tmel", "frozen"), "ece"]) and old.probabilities() is None
    assert len(old.predictions) == old.summary.loc[("tmel", "frozen"), "clips"]
    assert set(old.calibration()) == {"tmel/frozen"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, synth_corpus, tiny_backbone):
    out = tmp_path_factory.mktemp("outs")
    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(method="frozen", spec=small_spec().replace(name="mel32"), backbone=str(tiny_backbone),
                     train=TrainConfig(epochs=2))
    evaluate(ds, cfg, out_dir=out / "ev", progress=False)
    train_fold(ds, test_fold=2, config=cfg, out_dir=out / "run", progress=False, export=False)
    return out, ds


def test_predictions_hold_every_class_probability(outputs):
    out, ds = outputs
    res = json.loads((out / "ev" / "results.json").read_text())
    frame = read_predictions(out / "ev")
    proba, classes = read_probabilities(frame)
    assert classes == list(ds.classes) and proba.shape == (len(ds), len(ds.classes))
    assert proba.sum(axis=1) == pytest.approx(1.0, abs=1e-4)
    assert (np.asarray(classes)[proba.argmax(axis=1)] == frame["predicted"]).all()
    y = np.array([classes.index(t) for t in frame["true"]])
    assert res["top_k_accuracy"] == pytest.approx(top_k_accuracy(y, proba), abs=1e-4)
    assert set(res["top_k_accuracy"]) == {"1", "3", "5"} and res["top_k_accuracy"]["1"] <= res["top_k_accuracy"]["5"]
    assert res["ece"] == pytest.approx(expected_calibration_error(proba.max(axis=1), y == proba.argmax(axis=1)),
                                       abs=1e-4)
    assert all({"top_k_accuracy", "ece"} <= set(f) for f in res["per_fold"])


def test_load_evaluate_and_train_folders(outputs):
    out, ds = outputs
    res = json.loads((out / "ev" / "results.json").read_text())
    ev = results.load(out / "ev")
    assert ev.kind == "evaluate" and ev.classes == list(ds.classes)
    row = ev.summary.loc[("mel32", "frozen")]
    assert row["accuracy_mean"] == pytest.approx(res["accuracy_mean"]) and row["folds"] == 4
    assert row["accuracy_std"] == pytest.approx(res["accuracy_std"]) and row["clips"] == len(ds)
    assert row["ece"] == pytest.approx(np.mean([f["ece"] for f in res["per_fold"]]))
    assert list(ev.folds["fold"]) == [1, 2, 3, 4] and len(ev.predictions) == len(ds)
    assert [c for c in ev.predictions.columns if c.startswith("p_")] == [f"p_{c}" for c in ds.classes]
    assert ev.probabilities().shape == (len(ds), len(ds.classes))
    assert list(ev.per_class.columns) == ["precision", "recall", "f1", "support"]
    assert ev.per_class["support"].sum() == len(ds) and ev.per_class.index.name == "class"
    assert ev.grouping["known"] is True and ev.grouping["source"] == "metadata"
    assert list(ev.calibration()) == ["mel32/frozen"]
    wrong = ev.misclassified()
    assert (wrong["true"] != wrong["predicted"]).all() and wrong["probability"].is_monotonic_decreasing

    run = results.load(out / "run")
    m = RunMetrics.read(out / "run")
    assert run.kind == "train" and len(run.folds) == 1 and run.folds.loc[0, "fold"] == 2
    assert run.summary.loc[("mel32", "frozen"), "accuracy_mean"] == pytest.approx(m.accuracy)
    assert run.per_class.loc[ds.classes[0], "support"] == m.per_class[ds.classes[0]]["support"]
    assert len(run.predictions) == m.n


def test_load_sweep_folder(outputs, tmp_path):
    out, ds = outputs
    for method in ("frozen", "other"):
        shutil.copytree(out / "run", tmp_path / "mel32" / method / "fold2")
    sweep = results.load(tmp_path)
    assert sweep.kind == "sweep" and list(sweep.summary.index) == [("mel32", "frozen"), ("mel32", "other")]
    assert list(sweep.per_class.index.names) == ["variant", "method", "class"]
    assert sweep.per_class.loc[("mel32", "other", ds.classes[0]), "support"] > 0
    assert set(sweep.predictions["method"]) == {"frozen", "other"}
    assert len(sweep.predictions) == 2 * RunMetrics.read(out / "run").n
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no results.json"):
        results.load(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not a folder"):
        results.load(tmp_path / "nowhere")


def test_reliability_diagram_and_normalised_confusion():
    from soundlib.evaluation.plots import plot_confusion, plot_reliability

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 200)
    fig = plot_reliability({"over-confident": (conf, rng.random(200) < conf - 0.2),
                            "calibrated": (conf, rng.random(200) < conf)})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "calibrated" and legend[1].startswith("over-confident (pooled ECE 0.") and len(legend) == 3
    assert fig._repr_png_()[:4] == b"\x89PNG"
    cm = plot_confusion([[1, 3], [0, 2]], ["a", "b"], normalize=True)
    assert sorted(t.get_text() for t in cm.axes[0].texts) == [".25", ".75", "1.00"]
    assert sorted(t.get_text() for t in plot_confusion([[1, 3], [0, 2]], ["a", "b"]).axes[0].texts) == ["1", "2", "3"]
