"""``auto``, the default method: candidates compared by grouped k-fold on the training folds only, the pick
and its reason recorded and printed, the pick (or its best exportable candidate) exported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.evaluation.evaluate import EvalConfig, evaluate, format_summary
from soundlib.methods import DEFAULT_METHOD, resolve_method
from soundlib.methods.auto import DEFAULT_CANDIDATES, inner_splits
from soundlib.methods.base import FoldSplit

from ..conftest import small_spec

CANDIDATES = {"name": "auto", "method": "auto", "candidates": ["frozen", "mfcc"]}


def test_auto_is_the_default_and_its_candidates_are_free_embedders():
    assert DEFAULT_METHOD == "auto" and EvalConfig().method.kind == "auto"
    assert "birdnet" not in DEFAULT_CANDIDATES and "scratch" not in DEFAULT_CANDIDATES
    assert {"mn04", "yamnet", "frozen", "mfcc"} <= set(DEFAULT_CANDIDATES)


def test_inner_splits_are_grouped_cover_the_training_clips_once_and_never_the_test_fold():
    rng = np.random.default_rng(0)
    n = 120
    groups = tuple(f"r{i // 3}" for i in range(n))  # 40 recordings of 3 clips
    y = np.array([(i // 3) % 4 for i in range(n)])
    test = np.arange(0, 30)
    train = np.arange(30, n)
    val = rng.choice(train, 10, replace=False)
    split = FoldSplit(train=train, fit=np.setdiff1d(train, val), val=val, test=test)
    inner = inner_splits(split, y, groups, k=3, seed=0)
    assert len(inner) == 3
    held = np.concatenate([s.test for s in inner])
    assert sorted(held.tolist()) == train.tolist()  # every training clip scored once
    for s in inner:
        assert not set(s.train) & set(test.tolist()) and not set(s.test) & set(test.tolist())
        assert not {groups[i] for i in s.train} & {groups[i] for i in s.test}  # no recording on both sides
        assert set(s.fit) | set(s.val) == set(s.train) and not set(s.val) & set(s.test)
    assert inner_splits(split, y, groups, k=1, seed=0) == []
    few = FoldSplit(train=train[:3], fit=train[:3], val=train[:0], test=test)  # one recording: no inner folds
    assert inner_splits(few, y, groups, k=3, seed=0) == []


def test_auto_picks_on_inner_folds_and_says_what_and_why(synth_corpus, tiny_backbone):
    ds = load_dataset(synth_corpus)
    spec = small_spec().replace(name="tmel", duration=1.0)
    res = evaluate(ds, EvalConfig(spec=spec, method=resolve_method(CANDIDATES), backbone=str(tiny_backbone),
                                  folds=(1, 2)), progress=False)
    assert [p["fold"] for p in res["picked"]] == [1, 2]
    for f, p in zip(res["per_fold"], res["picked"]):
        choice = f["choice"]
        assert p["picked"] == choice["picked"] and "grouped 3-fold cross-validation" in choice["protocol"]
        scores = choice["val_accuracy"]
        assert set(scores) == {"frozen", "mfcc", "late_fusion", "early_fusion"}
        if choice["picked"] != "late_fusion":
            assert scores[choice["picked"]] == max(scores.values()) and "best accuracy" in choice["rule"]
    last = format_summary(res).splitlines()[-1]
    assert last.startswith("picked per fold") and res["picked"][0]["picked"] in last


def test_auto_on_one_split_when_asked(synth_corpus, tiny_backbone):
    ds = load_dataset(synth_corpus)
    one = resolve_method({**CANDIDATES, "inner_folds": 1, "fusions": False})
    res = evaluate(ds, EvalConfig(spec=small_spec().replace(name="tmel", duration=1.0), method=one,
                                  backbone=str(tiny_backbone), folds=(1,)), progress=False)
    assert "one grouped validation split" in res["per_fold"][0]["choice"]["protocol"]


def test_train_with_auto_exports_the_pick_and_the_card_says_so(synth_corpus, tiny_backbone, tmp_path, capsys):
    from soundlib.models import load_model, train_fold
    from soundlib.models.train import format_run

    ds = load_dataset(synth_corpus)
    config = EvalConfig(spec=small_spec().replace(name="tmel", duration=1.0), method=resolve_method(CANDIDATES),
                        backbone=str(tiny_backbone))
    metrics = train_fold(ds, test_fold=1, config=config, out_dir=tmp_path / "run", progress=False)
    choice = metrics.choice
    assert choice["exported"] in ("frozen", "mfcc") or choice["exported"] is None
    line = format_run(metrics).splitlines()[-1]
    assert line.startswith(f"picked {choice['picked']}")
    if choice["exported"] == "frozen":  # mfcc is a statistic, not an exportable embedder model
        model = load_model(tmp_path / "run" / "model")
        info = json.loads((tmp_path / "run" / "model" / "soundlib_model.json").read_text())
        assert info["method"]["name"] == "auto: frozen" and model is not None
        card = (tmp_path / "run" / "model" / "MODEL_CARD.md").read_text()
        assert "- method: auto: frozen" in card


def test_the_command_line_default_is_auto_and_a_backbone_alone_means_frozen():
    from soundlib.cli import build_parser, eval_config_from_args

    parser = build_parser()
    bare = parser.parse_args(["evaluate", "d", "--out", "o"])
    assert eval_config_from_args(bare).method.kind == "auto"
    picture = parser.parse_args(["evaluate", "d", "--out", "o", "--backbone", "efficientnet_lite0"])
    assert eval_config_from_args(picture).method.kind == "frozen"
    named = parser.parse_args(["evaluate", "d", "--out", "o", "--backbone", "x", "--method", "mfcc"])
    assert eval_config_from_args(named).method.kind == "mfcc"


@pytest.mark.parametrize("doc,expected", [("variants: [mel]\n", "auto"), ("variants: [mel]\nbackbone: x\n", "frozen")])
def test_a_sweep_without_methods_runs_the_default_or_frozen_on_its_backbone(tmp_path, synth_corpus, doc, expected):
    from soundlib.sweep import load_sweep_config

    f = tmp_path / "s.yaml"
    f.write_text(f"dataset: {synth_corpus}\n{doc}")
    assert [m.kind for m in load_sweep_config(f).methods] == [expected]
