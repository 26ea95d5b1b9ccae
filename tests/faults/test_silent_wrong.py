"""Fault injection, part 2: results that were silently wrong now fail clearly or carry a warning.

Each test reproduces one case of issue 9 ("Silently wrong results") and fails on soundlib before the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.errors import ConfigError, DatasetError, ModelError, SoundlibWarning

from ..conftest import write_csv
from .conftest import FAST, tone_manifest

# ---------------------------------------------------------------------------
# Embedding cache


@pytest.fixture
def poisoned_cache(tmp_path, synth_corpus, tiny_backbone, mel32):
    """A filled embedding cache for the test corpus and a function that overwrites one clip's entry."""
    from soundlib.embedders.backbones import resolve_backbone
    from soundlib.embedding.cache import EmbeddingCache, audio_hash
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.pictures.variants import resolve_for_clips

    ds = load_dataset(synth_corpus)
    cfg = EmbedConfig(cache_dir=tmp_path / "cache", progress=False)
    backbone = resolve_backbone(str(tiny_backbone))
    clean = embed_clips(ds.clips, mel32, backbone, config=cfg).embeddings
    cache = EmbeddingCache(tmp_path / "cache")
    folder = cache.folder(resolve_for_clips(mel32, ds.clips)[0], backbone.identity)  # duration "fit": chosen

    def poison(i: int, vector: np.ndarray):
        path = cache.path(folder, audio_hash(ds.clips[i].path))
        np.save(path, vector, allow_pickle=False)
        return path

    return ds, cfg, backbone, clean, poison


@pytest.mark.parametrize("bad, why", [
    (lambda v: np.where(np.arange(v.size) == 3, np.nan, v).astype(np.float32), "NaN or infinite"),
    (lambda v: np.full_like(v, np.inf), "NaN or infinite"),
    (lambda v: v[:7].copy(), "has 7 values, expected 16"),
    (lambda v: v.astype(np.float64), "float64 values, expected float32"),
    (lambda v: v.reshape(4, 4).copy(), "expected one vector"),
])
def test_bad_cache_entries_are_recomputed_with_a_warning(poisoned_cache, mel32, bad, why):
    """A NaN entry was used as is (accuracy 0.76 -> 0.25, exit 0); a wrong-shaped one crashed every run."""
    from soundlib.embedding.embed import embed_clips

    ds, cfg, backbone, clean, poison = poisoned_cache
    path = poison(5, bad(clean[5]))
    with pytest.warns(SoundlibWarning, match=why) as record:
        res = embed_clips(ds.clips, mel32, backbone, config=cfg)
    assert str(path) in str(record[0].message)
    assert res.computed == 1 and res.hits == len(ds) - 1
    np.testing.assert_allclose(res.embeddings, clean, atol=1e-5)
    assert np.load(path).dtype == np.float32 and np.isfinite(np.load(path)).all()  # overwritten


def test_evaluate_with_a_nan_entry_scores_as_clean_and_records_the_warning(tmp_path, poisoned_cache,
                                                                            tiny_backbone, mel32):
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig, evaluate
    from soundlib.methods.train import TrainConfig

    ds, cfg, backbone, clean, poison = poisoned_cache
    config = EvalConfig(method="frozen", spec=mel32, backbone=str(tiny_backbone), train=TrainConfig(epochs=3))
    embed = EmbedConfig(cache_dir=cfg.cache_dir, progress=False)
    reference = evaluate(ds, config, embed_config=embed, progress=False)
    path = poison(0, np.full(16, np.nan, np.float32))
    with pytest.warns(SoundlibWarning):
        poisoned = evaluate(ds, config, embed_config=embed, progress=False, out_dir=tmp_path / "ev")
    assert poisoned["accuracy_mean"] == reference["accuracy_mean"]
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert any(str(path) in w and "NaN" in w for w in saved["warnings"])
    assert not reference["warnings"]


# ---------------------------------------------------------------------------
# Non-finite values in training


@pytest.mark.parametrize("build", [
    lambda: __import__("soundlib.methods.train", fromlist=["x"]).TrainConfig(learning_rate=float("nan")),
    lambda: __import__("soundlib.methods.train", fromlist=["x"]).TrainConfig(learning_rate=float("inf")),
    lambda: __import__("soundlib.methods.train", fromlist=["x"]).TrainConfig(l2=float("nan")),
    lambda: __import__("soundlib.methods.train", fromlist=["x"]).TrainConfig(fine_tune_learning_rate=float("nan")),
    lambda: __import__("soundlib.pictures.variants", fromlist=["x"]).FeatureSpec(top_db=float("nan")),
    lambda: __import__("soundlib.pictures.variants", fromlist=["x"]).FeatureSpec(top_db=float("inf")),
])
def test_config_dataclasses_reject_non_finite_values(build):
    """`TrainConfig(learning_rate=nan)`, `FeatureSpec(top_db=nan)` were accepted."""
    with pytest.raises(ConfigError, match="must be a finite number"):
        build()


def test_yaml_nan_is_rejected_at_the_edge(tmp_path):
    from soundlib.sweep import load_sweep_config

    (tmp_path / "s.yaml").write_text("synth: {clips_per_class: 2}\ntrain: {learning_rate: .nan}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml.*learning_rate"):
        load_sweep_config(tmp_path / "s.yaml")


def test_diverging_head_fails_the_run_and_writes_no_metrics(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """A head whose loss went NaN wrote garbage metrics.json with exit 0 (the softmax head: the logistic
    head's solver has no learning rate to blow up)."""
    out = tmp_path / "run"
    code = main(["train", str(synth_corpus), "--test-fold", "1", "--out", str(out), "--backbone",
                 str(tiny_backbone), *FAST, "--learning-rate", "1e38", "--method-option", "head=softmax"])
    err = capsys.readouterr().err
    assert code == 2 and "soundlib train: error: training diverged: loss is" in err and "Traceback" not in err
    assert not (out / "metrics.json").exists() and not (out / "model").exists()


# ---------------------------------------------------------------------------
# Degenerate protocols


def _evaluate(capsys, manifest, tiny_backbone, *extra) -> tuple[int, str, str]:
    out = manifest.parent / "ev"
    code = main(["evaluate", str(manifest), "--out", str(out), "--backbone", str(tiny_backbone), *FAST, *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_degenerate_folds_are_warned_and_recorded(tmp_path, capsys, tiny_backbone, mel32):
    """A test fold whose class never occurs in training, a class with fewer clips than folds and duplicate
    rows went by without a word."""
    rows = [(f"a{i}.wav", "a", 1 + i % 3) for i in range(6)] + [(f"b{i}.wav", "b", 1 + i % 3) for i in range(6)]
    rows += [("c0.wav", "c", 2), ("a0.wav", "a", 1)]  # c only in fold 2; a0 listed twice
    manifest = tone_manifest(tmp_path, rows)
    code, out, err = _evaluate(capsys, manifest, tiny_backbone)
    assert code == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    warnings = results["warnings"]
    assert any("fold 2" in w and "class(es) c occur in the test fold" in w for w in warnings), warnings
    assert any("fewer clips than the 3 folds" in w and "c (1 clip)" in w for w in warnings), warnings
    assert any("1 duplicate row(s) dropped" in w and "a0.wav" in w for w in warnings), warnings
    assert results["dataset"]["clips"] == 13
    assert all(f"soundlib evaluate: warning: {w}" in err for w in warnings)
    # the manifest names no recordings: the dataset's own folds are used, but leakage is not checked
    assert any("recordings unknown" in w and "validation split" in w for w in warnings), warnings
    assert "4 warning(s) in results.json" in out and "[recordings unknown: leakage across" in out
    assert results["grouping"]["known"] is False and "cannot check" in results["note"]


@pytest.mark.parametrize("rows, words", [
    ([(f"a{i}.wav", "a", 1 + i % 2) for i in range(4)], "all 4 clip(s) have the class a"),
    ([(f"a{i}.wav", "a", 1 + i % 2) for i in range(4)] + [(f"b{i}.wav", "b", 1 + i % 2) for i in range(4)]
     + [("a1.wav", "b", 2)], "listed under more than one label"),
    ([(f"a{i}.wav", "a", 1 + i % 2) for i in range(4)] + [(f"b{i}.wav", "b", 1 + i % 2) for i in range(4)]
     + [("a1.wav", "a", 1)], "listed in more than one fold"),
])
def test_degenerate_datasets_are_refused(tmp_path, capsys, tiny_backbone, mel32, rows, words):
    """One class, one file under two labels, one file in two folds: trained and scored as if fine."""
    code, _, err = _evaluate(capsys, tone_manifest(tmp_path, rows), tiny_backbone)
    assert code == 2 and words in err and "manifest" in err


def test_repeated_test_folds_are_refused(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """`--folds 1 1 2` ran fold 1 twice and counted it twice in the mean."""
    code = main(["evaluate", str(synth_corpus), "--out", str(tmp_path / "o"), "--backbone", str(tiny_backbone),
                 *FAST, "--folds", "1", "1", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "fold(s) 1 listed more than once" in err


# ---------------------------------------------------------------------------
# Macro-F1


def test_macro_f1_counts_only_the_classes_in_the_test_fold(tmp_path):
    """7 of 8 correct in a fold holding 2 of 10 classes gave macro-F1 0.186."""
    from soundlib import sweep
    from soundlib.evaluation.metrics import RunMetrics, compute_metrics

    classes = [f"c{i}" for i in range(10)]
    y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 0, 1, 1, 1, 0]
    m = compute_metrics(y_true, y_pred, classes)
    assert m["accuracy"] == 0.875
    assert m["macro_f1"] == pytest.approx((8 / 9 + 6 / 7) / 2)  # the two classes present
    assert m["macro_f1_all_classes"] == pytest.approx((8 / 9 + 6 / 7) / 10)  # the old definition, named
    for fold in (1, 2):
        RunMetrics(variant="v", test_fold=fold, n=8, **{k: m[k] for k in (
            "accuracy", "macro_f1", "macro_f1_all_classes", "per_class", "confusion_matrix")}).write(
            tmp_path / "v" / f"fold{fold}")
    table = sweep.collect_results(tmp_path)
    assert table.loc[("v", "frozen"), "macro_f1_mean"] == pytest.approx(m["macro_f1"])


def test_old_metrics_files_get_the_new_macro_f1(tmp_path):
    """A 0.1 metrics.json (macro_f1 over all classes) reads with macro_f1 over the classes present."""
    from soundlib.evaluation.metrics import RunMetrics

    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[1, 1], cm[1, 0] = 4, 3, 1
    (tmp_path / "metrics.json").write_text(json.dumps({
        "variant": "v", "test_fold": 1, "accuracy": 0.875, "macro_f1": 0.1746, "confusion_matrix": cm.tolist()}))
    m = RunMetrics.read(tmp_path)
    assert m.macro_f1_all_classes == 0.1746 and m.macro_f1 == pytest.approx((8 / 9 + 6 / 7) / 2)


# ---------------------------------------------------------------------------
# Manifests


def test_repeated_manifest_column_is_refused(tmp_path, capsys):
    """`path,label,label` silently used the last label column."""
    from soundlib.audio.loaders import load_dataset

    manifest = write_csv(tmp_path / "m.csv", ["path", "label", "label"], [["x.wav", "dog", "cat"]])
    with pytest.raises(DatasetError, match=r"m\.csv: column\(s\) 'label' appear more than once"):
        load_dataset(manifest, check_files=False)
    assert main(["featurize", str(manifest), "--out", str(tmp_path / "o")]) == 2
    assert "appear more than once" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Exported models


def _tampered(tmp_path, model_dir, name: str, edit) -> object:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    path = copy / name
    path.write_text(edit(path.read_text()))
    return copy


def _spec_edit(**changes):
    def edit(text):
        d = json.loads(text)
        d.update(changes)
        return json.dumps(d)
    return edit


@pytest.mark.parametrize("name, edit, words", [
    ("labels.txt", lambda t: "\n".join(reversed(t.splitlines())) + "\n", "labels.txt: does not match the checksum"),
    ("feature_spec.json", _spec_edit(hop_length=10**9), "feature_spec.json: does not match the checksum"),
    ("feature_spec.json", _spec_edit(kind="waveform"), "feature_spec.json: does not match the checksum"),
    ("feature_spec.json", lambda t: t.replace('"top_db": 80.0', '"top_db": NaN'), "does not match the checksum"),
    ("soundlib_model.json", _spec_edit(checksums={"labels.txt": "0" * 64}), "'checksums' must give the SHA-256"),
    ("soundlib_model.json", _spec_edit(input={"height": "abc"}), "'input' must map height"),
    ("soundlib_model.json", lambda t: "[1, 2]", "expected a JSON object"),
    ("soundlib_model.json", _spec_edit(format="other/9"), "format 'other/9' is not one"),
])
def test_edited_models_are_refused(tmp_path, exported_model, name, edit, words):
    """A reordered labels.txt or an edited feature_spec.json predicted silently wrong."""
    from soundlib.models.load import load_model

    with pytest.raises(ModelError, match=re.escape(words)):
        load_model(_tampered(tmp_path, exported_model, name, edit))


def test_model_spec_fields_are_type_checked_with_the_file_named(tmp_path, exported_model):
    """`"sr": "abc"` in feature_spec.json: a ModelError naming the file and the field, not a traceback
    (this already held before the fix; kept so it stays so)."""
    from soundlib.models.load import load_model

    copy = _tampered(tmp_path, exported_model, "feature_spec.json", _spec_edit(sr="abc"))
    info = json.loads((copy / "soundlib_model.json").read_text())
    if "checksums" in info:  # a consistent manifest, so the field check itself is what is tested
        from soundlib.models.format import manifest_digest

        info["checksums"]["feature_spec.json"] = hashlib.sha256((copy / "feature_spec.json").read_bytes()).hexdigest()
        info["sizes"]["feature_spec.json"] = (copy / "feature_spec.json").stat().st_size
        info["manifest_sha256"] = manifest_digest(info)
        (copy / "soundlib_model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=r"feature_spec\.json.*sr: expected an integer, got 'abc'"):
        load_model(copy)


def test_unchanged_model_loads_and_legacy_model_warns(exported_model):
    from soundlib.models.load import load_model

    assert math.isfinite(load_model(exported_model).spec.top_db)
    legacy = Path(__file__).parents[1] / "data" / "legacy_0_1" / "sweep" / "tmel" / "fold1" / "model"
    with pytest.warns(SoundlibWarning, match="exported without checksums"):
        load_model(legacy)
