"""Multi-label (issue 23 item 5, desk review F8): manifests with 'a;b' labels, one-vs-rest sigmoid heads,
mAP / micro and macro F1 / per-class AP, mixtures of clips, and multi-label models in predict and events."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.errors import ConfigError, DatasetError
from soundlib.methods.base import Features, FoldSplit, aggregate, average_precision, labels_of

from ..conftest import write_csv, write_wav


def test_a_manifest_label_a_semicolon_b_makes_a_multi_label_clip(tmp_path):
    for name in ("x.wav", "y.wav", "z.wav"):
        write_wav(tmp_path / name, np.sin(np.arange(2205) * 0.1).astype(np.float32) * 0.3)
    m = write_csv(tmp_path / "m.csv", ["path", "label", "fold"],
                  [["x.wav", "siren;dog_bark", 1], ["y.wav", "dog_bark", 1], ["z.wav", " car_horn ", 2]])
    ds = load_dataset(m)
    assert ds.classes == ("car_horn", "dog_bark", "siren") and ds.multilabel
    x, y, z = ds.clips
    assert (x.label, x.labels, x.all_labels, x.class_id) == ("siren", ("siren", "dog_bark"), ("siren", "dog_bark"), 2)
    assert (y.labels, y.all_labels) == ((), ("dog_bark",))  # single-label clips keep 'label' only
    assert ds.counts() == {"car_horn": 1, "dog_bark": 2, "siren": 1}
    assert labels_of(ds).tolist() == [[0, 1, 1], [0, 1, 0], [1, 0, 0]]
    single = write_csv(tmp_path / "s.csv", ["path", "label"], [["y.wav", "dog_bark"], ["z.wav", "car_horn"]])
    assert not load_dataset(single).multilabel and labels_of(load_dataset(single)).tolist() == [1, 0]
    for bad, msg in (("siren;;dog_bark", "has an empty class name between ';'"), ("siren;siren", "names a class twice")):
        write_csv(tmp_path / "bad.csv", ["path", "label"], [["x.wav", bad]])
        with pytest.raises(DatasetError, match=f"bad.csv, line 2: label '{bad}' {msg}"):
            load_dataset(tmp_path / "bad.csv")


def test_average_precision_and_multilabel_metrics_match_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score

    from soundlib.evaluation.metrics import compute_multilabel_metrics

    rng = np.random.default_rng(0)
    Y = (rng.random((60, 4)) < 0.3).astype(float)
    Y[0, 3], Y[:, 2] = 1, 0  # class 2 never present: not part of the means
    P = np.round(np.clip(Y * 0.4 + rng.random((60, 4)) * 0.7, 0, 1), 1)  # rounded: many ties
    for k in (0, 1, 3):
        assert average_precision(Y[:, k], P[:, k]) == pytest.approx(average_precision_score(Y[:, k], P[:, k]))
    assert np.isnan(average_precision(Y[:, 2], P[:, 2]))
    s = compute_multilabel_metrics(Y, P, ["a", "b", "c", "d"])
    assert s["map"] == pytest.approx(np.mean([average_precision_score(Y[:, k], P[:, k]) for k in (0, 1, 3)]))
    assert s["micro_f1"] == pytest.approx(f1_score(Y, P >= 0.5, average="micro"))
    assert s["macro_f1"] == pytest.approx(np.mean(f1_score(Y, P >= 0.5, average=None)[[0, 1, 3]]))
    assert s["per_class"]["c"]["ap"] is None and s["per_class"]["a"]["support"] == int(Y[:, 0].sum())


def test_the_logistic_head_trains_one_vs_rest_sigmoids_on_multi_hot_labels():
    from soundlib.methods.heads import fit_logistic_head

    rng = np.random.default_rng(1)
    n, dims = 300, 8
    Y = (rng.random((n, 3)) < 0.4).astype(np.float32)
    x = (Y @ rng.normal(0, 3, (3, dims)) + rng.normal(0, 1, (n, dims))).astype(np.float32)
    idx = rng.permutation(n)
    split = FoldSplit(train=idx[:240], fit=idx[:180], val=idx[180:240], test=idx[240:])
    fit = fit_logistic_head(Features(x, np.arange(n), n), split, Y, n_classes=3, Cs=(0.01, 0.1, 1.0))
    head = fit.model
    assert head.multilabel and fit.choice["multilabel"] and set(fit.choice["val_map_by_C"]) == {"0.01", "0.1", "1"}
    p = head.predict_proba(x[split.test])
    assert p.shape == (60, 3) and not np.allclose(p.sum(axis=1), 1.0, atol=0.05)  # independent outputs
    assert np.mean((p >= 0.5) == (Y[split.test] > 0)) > 0.9
    assert fit.val_accuracy > 0.9  # the validation mAP
    assert head.temperature != 1.0 and "temperature" in fit.choice
    # windows of one clip: the max over windows is kept as it is (not renormalised to sum to 1)
    assert aggregate(np.array([[0.9, 0.8, 0.1], [0.2, 0.9, 0.0]], np.float32), np.array([0, 0]), np.array([0]),
                     how="max").tolist() == [[pytest.approx(0.9), pytest.approx(0.9), pytest.approx(0.1)]]


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory, synth_corpus):
    from soundlib.audio.synth.mix import mix_pairs

    return mix_pairs(load_dataset(synth_corpus), tmp_path_factory.mktemp("mix") / "mixtures", pairs_per_fold=3)


def test_mixtures_of_clips_make_a_multi_label_dataset(mixtures, synth_corpus):
    ds = load_dataset(mixtures)
    rows = list(csv.DictReader(open(mixtures)))
    mixed = [c for c in ds.clips if len(c.labels) == 2]
    assert ds.multilabel and len(mixed) == 2 * 3 * 4  # 3 pairs per fold, 4 folds, at 0 and 6 dB
    assert {r["snr_db"] for r in rows} == {"0", "6", ""}
    assert len(ds.clips) - len(mixed) == len(load_dataset(synth_corpus).clips)  # the single clips too
    for r in rows[:4]:
        if r["source_b"]:  # sources of one mixture come from its fold: the folds stay leakage-free
            a, b = (load_dataset(synth_corpus).clips[[str(c.path) for c in load_dataset(synth_corpus).clips].index(s)]
                    for s in (r["source_a"], r["source_b"]))
            assert a.fold == b.fold == int(r["fold"]) and a.label != b.label and r["label"] == f"{a.label};{b.label}"


def test_evaluate_reports_map_micro_and_macro_f1_and_refuses_single_label_methods(mixtures, cache, tmp_path):
    from soundlib.evaluation.evaluate import EvalConfig, evaluate, format_summary

    ds = load_dataset(mixtures)
    res = evaluate(ds, EvalConfig(method="mfcc", folds=(1, 2)), out_dir=tmp_path / "run", progress=False)
    assert res["multilabel"] and 0 < res["map"] <= 1 and set(res["per_fold"][0]) >= {"map", "micro_f1", "macro_f1"}
    assert res["per_class"]["siren"]["ap"] is not None
    assert "(multi-label): mAP" in format_summary(res)
    rows = list(csv.DictReader(open(tmp_path / "run" / "predictions.csv")))
    assert any(";" in r["true"] for r in rows)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["map"] == pytest.approx(res["map"])
    with pytest.raises(ConfigError, match="is multi-label .* method 'scratch' learns one class per clip"):
        evaluate(ds, EvalConfig(method="scratch", folds=(1,)), progress=False)


def test_a_multi_label_model_exports_predicts_and_makes_overlapping_events(mixtures, cache, tmp_path):
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.events import EventRules, event_segments
    from soundlib.models.label import predict, window_probabilities
    from soundlib.models.load import load_model
    from soundlib.models.train import train_fold

    ds = load_dataset(mixtures)
    metrics = train_fold(ds, test_fold=1, out_dir=tmp_path / "run", progress=False,
                         config=EvalConfig(method={"name": "m", "method": "frozen", "backbone": "mfcc"}))
    assert metrics.map is not None and metrics.micro_f1 is not None
    model_dir = tmp_path / "run" / "model"
    assert json.loads((model_dir / "soundlib_model.json").read_text())["multilabel"] is True
    with np.load(model_dir / "head.npz") as z:
        assert bool(z["multilabel"])
    model = load_model(model_dir)
    mix = next(c for c in ds.clips if len(c.labels) == 2 and c.fold == 1)
    rows, failures = predict(model, [mix.path], top_k=len(model.labels))
    assert not failures and sum(r["probability"] for r in rows) != pytest.approx(1.0, abs=1e-3)
    win, starts, length = window_probabilities(model, mix.path)
    ends = np.minimum(starts + model.window_seconds, length)
    k = [model.labels.index(x) for x in mix.labels]
    cut = float(min(win[:, k].max(axis=0))) - 1e-6  # both classes of the mixture reach it somewhere
    segs = event_segments(win, starts, ends, model.labels,
                          rules=EventRules(thresholds=tuple((x, cut) for x in mix.labels), classes=mix.labels))
    assert {s.label for s in segs} == set(mix.labels)  # two classes active at once


def test_synth_mix_writes_a_multi_label_manifest(tmp_path, capsys):
    from soundlib.cli import main

    assert main(["synth", str(tmp_path / "c"), "--clips-per-class", "8", "--duration", "0.5", "--mix", "--quiet"]) == 0
    assert "multi-label mixtures" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "c" / "mixtures" / "manifest.csv")
    assert ds.multilabel and len(ds.classes) == 10
