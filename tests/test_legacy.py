"""Files written by soundlib 0.1.0 (tests/data/legacy_0_1, see its README) still load the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from soundlib import sweep
from soundlib.evaluation.metrics import RunMetrics
from soundlib.sweep.driver import run_parameters
from soundlib.sweep.tasks import fingerprint, read_run_record, run_complete

LEGACY = Path(__file__).parent / "data" / "legacy_0_1"


@pytest.fixture
def old_sweep(tmp_path) -> Path:
    return Path(shutil.copytree(LEGACY / "sweep", tmp_path / "sweep"))


def test_old_sweep_folder_reads_into_the_same_table(old_sweep):
    import pandas as pd

    table = sweep.collect_results(old_sweep)
    old = pd.read_csv(LEGACY / "sweep" / "results.csv", index_col="variant")
    assert list(table.index) == [("tmel", "frozen")]  # 0.1's runs were the frozen method
    for column in old.columns:
        assert table.loc[("tmel", "frozen"), column] == pytest.approx(old.loc["tmel", column]), column
    runs = sweep.collect_runs(old_sweep)
    assert list(runs["fold"]) == [1, 2] and list(runs["variant"]) == ["tmel", "tmel"]
    assert list(runs["method"]) == ["frozen", "frozen"]
    classes, summed = sweep.summed_confusion(old_sweep)["tmel/frozen"]
    assert classes[0] == "air_conditioner" and len(classes) == 10 and summed.sum() == runs["n"].sum()
    m = RunMetrics.read(old_sweep / "tmel" / "fold1")
    assert m is not None and m.variant == "tmel" and m.train_config["epochs"] == 5


def test_old_run_records_read_and_a_new_sweep_reruns_them(old_sweep):
    """0.1's run records still parse and verify; the same sweep file now means different runs (a method,
    the aggregation, and a frozen head chosen on validation), so a new sweep executes them again
    instead of mistaking 0.1's results for its own."""
    doc = yaml.safe_load((old_sweep / "sweep.yaml").read_text())
    record = read_run_record(old_sweep / "tmel" / "fold1")
    recorded = record["parameters"]
    assert fingerprint(recorded, record["synth"]) == record["fingerprint"]
    assert run_complete(old_sweep / "tmel" / "fold1", record["fingerprint"], "tmel", 1)
    doc["dataset"] = str(old_sweep)  # exists here; the recorded path is used below
    doc["backbone"] = recorded["backbone"]
    config = sweep.SweepConfig.from_dict(doc, where="legacy sweep.yaml")
    for fold in (1, 2):
        run_dir = Path(recorded["output_dir"]).parent / f"fold{fold}"
        params = run_parameters(config, config.variants[0], fold, Path(recorded["dataset"]), run_dir)
        old = read_run_record(old_sweep / "tmel" / f"fold{fold}")["parameters"]
        # new since 0.1: method, aggregate, progress and embedding_map (presentation switches, not in the fingerprint)
        assert {k: v for k, v in params.items() if k not in ("method", "aggregate", "progress", "embedding_map")} == old
        assert params["embedding_map"] == (fold == 1)
        assert fingerprint({**params, "embedding_map": not params["embedding_map"]}, None) == fingerprint(params, None)
        assert params["method"] == "frozen" and params["aggregate"] == "mean" and params["progress"] is False
        assert fingerprint(params, None) != read_run_record(old_sweep / "tmel" / f"fold{fold}")["fingerprint"]


def test_old_exported_model_predicts_the_same(tmp_path):
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    model = load_model(LEGACY / "sweep" / "tmel" / "fold1" / "model")
    assert model.info["format"] == "soundlib-model/1" and model.spec.height == 32
    assert model.runtime == "tensorflow"  # no LiteRT copy: its SavedModel, as before
    rows, failures = predict(model, [LEGACY / "clip.wav"], top_k=10)
    assert not failures
    expected = json.loads((LEGACY / "expected_prediction.json").read_text())
    assert [r["label"] for r in rows] == [e["label"] for e in expected][:10]
    np.testing.assert_allclose([r["probability"] for r in rows], [e["probability"] for e in expected][:10],
                               atol=1e-5)


def test_info_sums_up_an_old_model(capsys):
    """`soundlib info` reads a 0.1 model (no card, no checksums, no version, no data recorded)."""
    from soundlib.cli import main

    assert main(["info", str(LEGACY / "sweep" / "tmel" / "fold1")]) == 0
    out = capsys.readouterr().out
    assert "soundlib-model/1, created by soundlib (version not recorded)" in out
    assert "classes (10): air_conditioner," in out and "accuracy: not recorded" in out
    assert "labels.txt           present (no checksum)" in out and "model.tflite" not in out


# --- soundlib 0.2.0 (tests/data/legacy_0_2, made by tools/make_legacy_0_2_fixture.py) ------------------------

LEGACY_0_2 = Path(__file__).parent / "data" / "legacy_0_2"


@pytest.fixture
def legacy_0_2(tmp_path, monkeypatch) -> Path:
    """A copy of the 0.2 artefacts, with its embedding cache as this process's cache."""
    root = Path(shutil.copytree(LEGACY_0_2, tmp_path / "legacy_0_2"))
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(root / "cache"))
    return root


@pytest.mark.parametrize("name", ["train_mfcc", "train_picture"])
def test_0_2_exported_models_predict_the_same(legacy_0_2, name):
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    model = load_model(legacy_0_2 / name / "model")
    clips = [legacy_0_2 / "data" / "audio" / "low_0.wav", legacy_0_2 / "data" / "audio" / "noise_1.wav"]
    rows, failures = predict(model, clips, top_k=3)
    assert not failures
    expected = json.loads((legacy_0_2 / "expected.json").read_text())[name]
    assert [(Path(r["input"]).name, r["label"]) for r in rows] == [(e["input"], e["label"]) for e in expected]
    np.testing.assert_allclose([r["probability"] for r in rows], [e["probability"] for e in expected], atol=1e-5)


def test_0_2_model_info_and_evaluation_results_read(legacy_0_2, capsys):
    from soundlib import results
    from soundlib.cli import main

    assert main(["info", str(legacy_0_2 / "train_mfcc")]) == 0
    assert "mfcc" in capsys.readouterr().out
    r = results.load(legacy_0_2 / "evaluate_mfcc")
    recorded = json.loads((legacy_0_2 / "evaluate_mfcc" / "results.json").read_text())
    assert r.summary["accuracy_mean"].iloc[0] == pytest.approx(recorded["accuracy_mean"])
    assert len(r.predictions) == 12


def test_0_2_sweep_folder_reads_into_the_same_table(legacy_0_2):
    import pandas as pd

    table = sweep.collect_results(legacy_0_2 / "sweep")
    old = pd.read_csv(legacy_0_2 / "sweep" / "results.csv", index_col=["variant", "method"])
    for column in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "clips"):
        assert table.loc[("mel", "mfcc"), column] == pytest.approx(old.loc[("mel", "mfcc"), column]), column
    record = read_run_record(legacy_0_2 / "sweep" / "mel" / "mfcc" / "fold1")
    assert run_complete(legacy_0_2 / "sweep" / "mel" / "mfcc" / "fold1", record["fingerprint"], "mel", 1)


def test_0_2_embedding_cache_is_read_not_recomputed(legacy_0_2, tmp_path):
    """Evaluating the same data again with 0.2's cache writes no new embedding: every entry is a hit."""
    from soundlib.cli import main

    entries = sorted(p.relative_to(legacy_0_2) for p in (legacy_0_2 / "cache" / "embeddings").rglob("*.npy"))
    assert entries
    assert main(["evaluate", str(legacy_0_2 / "data" / "manifest.csv"), "--method", "mfcc",
                 "--out", str(tmp_path / "again")]) == 0
    after = sorted(p.relative_to(legacy_0_2) for p in (legacy_0_2 / "cache" / "embeddings").rglob("*.npy"))
    assert after == entries
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["accuracy_mean"] == json.loads((legacy_0_2 / "evaluate_mfcc" / "results.json").read_text())["accuracy_mean"]
