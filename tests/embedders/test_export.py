"""Models on audio embedders go everywhere a model goes: exported, described, loaded, predicting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundlib.errors import FeatureError, ModelError

REAL = Path(__file__).resolve().parents[1] / "data" / "us8k_real"
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soundlib.cli", *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def mfcc_model(synth_corpus, tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("train") / "run"
    r = _cli("train", str(synth_corpus), "--method", "frozen", "--backbone", "mfcc", "--test-fold", "1",
             "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def test_a_model_on_an_audio_embedder_records_it_and_its_windows(mfcc_model):
    model = mfcc_model / "model"
    info = json.loads((model / "soundlib_model.json").read_text())
    assert info["kind"] == "embedder" and info["embedder"]["name"] == "mfcc"
    assert info["embedder"]["modality"] == "waveform" and info["embedder"]["identity"].startswith("mfcc:")
    assert set(info["checksums"]) == {"labels.txt", "feature_spec.json", "embedder.json", "head.npz"}
    assert not (model / "saved_model").exists() and (model / "MODEL_CARD.md").is_file()
    r = _cli("info", str(mfcc_model))
    assert r.returncode == 0 and "mfcc" in r.stdout, r.stdout + r.stderr


def test_predict_labels_audio_with_it_and_imports_no_tensorflow(mfcc_model, synth_corpus):
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    model = load_model(mfcc_model)
    assert model.modality == "waveform" and model.window.sr == 22050
    rows, failures = predict(model, [wav], top_k=2)
    assert not failures and len(rows) == 2 and rows[0]["probability"] >= rows[1]["probability"]
    code = ("import sys, soundlib.models.load as L, soundlib.models.label as I; m = L.load_model(sys.argv[1]); "
            "r, f = I.predict(m, [sys.argv[2]]);"
            "assert not f, f; assert 'tensorflow' not in sys.modules, 'TensorFlow imported'; print(r[0]['label'])")
    r = subprocess.run([sys.executable, "-c", code, str(mfcc_model), str(wav)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == rows[0]["label"]


def test_pictures_are_refused_and_edits_are_detected(mfcc_model, tmp_path):
    import shutil

    from soundlib.models.load import load_model

    model = load_model(mfcc_model)
    with pytest.raises(FeatureError, match="labels audio"):
        model.predict_pictures(np.zeros((1, 8, 8, 3), np.uint8))
    copy = tmp_path / "copy"
    shutil.copytree(mfcc_model / "model", copy)
    record = json.loads((copy / "embedder.json").read_text())
    record["window"]["duration"] = 1.0
    (copy / "embedder.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="embedder.json"):
        load_model(copy)
    shutil.copytree(mfcc_model / "model", tmp_path / "copy2")
    (tmp_path / "copy2" / "head.npz").unlink()
    with pytest.raises(ModelError, match="head.npz"):
        load_model(tmp_path / "copy2")


def test_a_model_whose_embedder_weights_changed_is_refused(mfcc_model, tmp_path, monkeypatch):
    import shutil

    from soundlib.embedders import mfcc as M
    from soundlib.models.load import load_model

    shutil.copytree(mfcc_model / "model", tmp_path / "m")
    monkeypatch.setattr(M.MfccEmbedder, "identity", property(lambda self: "mfcc:other:1"))
    with pytest.raises(ModelError, match="other weights or another version"):
        load_model(tmp_path / "m")


@pytest.mark.slow
def test_mn04_model_trains_exports_and_predicts_a_long_file(tmp_path, cache):
    if not MN04.is_file():
        pytest.skip(f"no mn04 weights at {MN04}")
    import soundfile as sf

    env = {"SOUNDLIB_MN04_CHECKPOINT": str(MN04)}
    out = tmp_path / "run"
    r = _cli("train", str(REAL / "manifest.csv"), "--method", "mn04", "--test-fold", "1", "--out", str(out),
             "--quiet", env=env)
    assert r.returncode == 0, r.stderr
    clips = sorted((REAL / "audio").rglob("*.*"))[:3]
    long = tmp_path / "long.wav"
    y = np.concatenate([sf.read(str(c), dtype="float32", always_2d=True)[0].mean(axis=1) for c in clips])
    sf.write(str(long), y, sf.info(str(clips[0])).samplerate)
    timeline = tmp_path / "t.csv"
    r = _cli("predict", str(out), str(long), "--timeline", str(timeline), env=env)
    assert r.returncode == 0, r.stderr
    rows = timeline.read_text().splitlines()
    assert len(rows) > 4 and rows[0].startswith("input,start,end")
