from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.errors import DatasetError
from soundlib.evaluation.evaluate import EvalConfig, evaluate, format_summary
from soundlib.models.train import format_run, train_fold
from soundlib.evaluation.metrics import RunMetrics
from soundlib.methods.train import TrainConfig
from soundlib.pictures.variants import register_variant

from ..conftest import small_spec


@pytest.fixture(scope="module")
def tiny_variant():
    return register_variant(small_spec().replace(name="mel32"), overwrite=True)


def test_evaluate_writes_results(tmp_path, synth_corpus, tiny_backbone, tiny_variant):
    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(method="frozen", spec=tiny_variant, backbone=str(tiny_backbone), train=TrainConfig(epochs=3))
    res = evaluate(ds, cfg, out_dir=tmp_path / "ev", progress=False)
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved["accuracy_mean"] == pytest.approx(res["accuracy_mean"])
    assert [f["fold"] for f in saved["per_fold"]] == list(ds.folds)
    assert sum(f["n"] for f in saved["per_fold"]) == len(ds) == np.sum(saved["confusion_matrix"])
    assert saved["accuracy_std"] == pytest.approx(np.std([f["accuracy"] for f in saved["per_fold"]]))
    assert set(saved["per_class"]) == set(ds.classes) and 0 <= saved["macro_f1"] <= 1
    assert saved["protocol"] == "predefined-folds" and not saved["leaky"]
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 1000
    assert len((tmp_path / "ev" / "predictions.csv").read_text().splitlines()) == len(ds) + 1
    assert "over 4 folds" in format_summary(res)
    leaky = evaluate(ds, dataclasses.replace(cfg, leaky_split=True), progress=False)
    assert leaky["leaky"] and "LEAKY" in format_summary(leaky) and leaky["protocol"] == "leaky-random-slices"


def test_dataset_without_folds_gets_grouped_folds(tmp_path, synth_corpus, tiny_backbone, tiny_variant):
    ds = load_dataset(synth_corpus)
    nofolds = ds.with_clips(dataclasses.replace(c, fold=None) for c in ds.clips)
    res = evaluate(nofolds, EvalConfig(method="frozen", spec=tiny_variant, backbone=str(tiny_backbone), k_folds=3,
                                       train=TrainConfig(epochs=2)), progress=False)
    assert res["protocol"] == "grouped-3-folds" and len(res["per_fold"]) == 3 and not res["cross_fold_groups"]


def test_empty_dataset_and_missing_fold(tmp_path, synth_corpus, tiny_backbone, tiny_variant):
    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(method="frozen", spec=tiny_variant, backbone=str(tiny_backbone), train=TrainConfig(epochs=2))
    with pytest.raises(DatasetError, match="has no clips"):
        evaluate(ds.with_clips([]), cfg, progress=False)
    with pytest.raises(DatasetError, match="fold 9 has no clips"):
        evaluate(ds, dataclasses.replace(cfg, folds=(9,)), progress=False)
    with pytest.raises(DatasetError, match="fold 7 has no clips"):
        train_fold(ds, test_fold=7, config=cfg, out_dir=tmp_path / "x", progress=False)


def test_train_fold_outputs(tmp_path, synth_corpus, tiny_backbone, tiny_variant):
    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(method="frozen", spec=tiny_variant, backbone=str(tiny_backbone), train=TrainConfig(epochs=2))
    m = train_fold(ds, test_fold=2, config=cfg, out_dir=tmp_path / "run", progress=False)
    for name in ("metrics.json", "predictions.csv", "confusion_matrix.png", "history.json", "model/labels.txt"):
        assert (tmp_path / "run" / name).exists(), name
    assert m.n == sum(c.fold == 2 for c in ds.clips) and m.train_clips == len(ds) - m.n
    assert RunMetrics.read(tmp_path / "run") == m and "test fold 2" in format_run(m)


@pytest.mark.slow
def test_synthetic_corpus_mel_efficientnet_reaches_the_bar(tmp_path):
    """The issue's bar: synthetic corpus, mel, embedded EfficientNet-Lite0, frozen: LOFO accuracy >= 0.90."""
    from soundlib.audio.synth import SynthConfig, generate_corpus

    ds = load_dataset(generate_corpus(tmp_path / "synth", SynthConfig(), progress=False))
    res = evaluate(ds, EvalConfig(method="frozen"), out_dir=tmp_path / "ev", progress=False)
    assert len(res["per_fold"]) == 10
    assert res["accuracy_mean"] >= 0.90, format_summary(res)
    leaky = evaluate(ds, EvalConfig(method="frozen", leaky_split=True), progress=False)
    assert leaky["accuracy_mean"] >= res["accuracy_mean"] - 0.05


def test_eval_config_resolves_names_when_made():
    """A variant or method given by name (or mapping) is resolved at construction, or refused there."""
    from soundlib.errors import ConfigError
    from soundlib.methods import resolve_method
    from soundlib.pictures.variants import VARIANTS

    config = EvalConfig(spec="mel_gray", method="mfcc")
    assert config.spec == VARIANTS["mel_gray"] and config.method == resolve_method("mfcc")
    assert EvalConfig(spec={"name": "m64", "base": "mel", "n_mels": 64}).spec.n_mels == 64
    assert EvalConfig(method={"name": "soft", "method": "frozen", "head": "softmax"}).method.options.head == "softmax"
    for kwargs, words in (({"spec": "mle"}, "EvalConfig.spec: unknown feature variant 'mle'"),
                          ({"spec": 3}, "EvalConfig.spec: a variant is a registered name or a mapping"),
                          ({"method": "frozn"}, "EvalConfig.method: unknown method 'frozn'")):
        with pytest.raises(ConfigError, match=words):
            EvalConfig(**kwargs)
