from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from soundlib.data import load_dataset
from soundlib.errors import ModelError
from soundlib.evaluate import EvalConfig, train_fold
from soundlib.featurize import featurize_clip, write_png
from soundlib.infer import load_model, predict
from soundlib.train import TrainConfig
from soundlib.variants import register_variant

from .conftest import small_spec


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synth_corpus, tiny_backbone):
    spec = register_variant(small_spec().replace(name="mel32"), overwrite=True)
    out = tmp_path_factory.mktemp("model")
    train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
               config=EvalConfig(spec=spec, backbone=str(tiny_backbone), train=TrainConfig(epochs=3)))
    return out / "model"


def test_predict_wav_picture_and_folder(tmp_path, model_dir, synth_corpus):
    ds = load_dataset(synth_corpus)
    wav = ds.clips[0].path
    model = load_model(model_dir)
    assert model.labels == list(ds.classes)
    pic = write_png(tmp_path / "pic.png", featurize_clip(wav, model.spec))
    rows, failures = predict(model, [wav, pic], top_k=3)
    assert not failures and len(rows) == 6
    by_input = {}
    for r in rows:
        by_input.setdefault(r["input"], []).append(r)
    wav_rows, pic_rows = by_input[str(wav)], by_input[str(pic)]
    assert [r["rank"] for r in wav_rows] == [1, 2, 3]
    assert wav_rows[0]["probability"] >= wav_rows[1]["probability"] >= wav_rows[2]["probability"]
    assert [r["label"] for r in wav_rows] == [r["label"] for r in pic_rows]
    assert np.allclose([r["probability"] for r in wav_rows], [r["probability"] for r in pic_rows], atol=1e-5)
    rows, _ = predict(model, [wav.parent], top_k=1)
    assert len(rows) == len(list(wav.parent.glob("*.wav")))


def test_wrong_picture_and_bad_audio_are_reported(tmp_path, model_dir):
    write_png(tmp_path / "big.png", np.zeros((64, 48, 3), np.uint8))
    (tmp_path / "bad.wav").write_text("no")
    rows, failures = predict(load_model(model_dir), [tmp_path / "big.png", tmp_path / "bad.wav"])
    assert not rows
    msgs = [m for _, m in failures]
    assert "big.png: picture is 48x64 pixels" in msgs[0] and "makes 32x32" in msgs[0]
    assert "bad.wav: not a readable audio file" in msgs[1]


def test_model_stores_the_window_it_was_trained_on(tmp_path, model_dir, synth_corpus):
    """The variant's duration "fit" is chosen from the training data; the model keeps the number."""
    from soundlib.infer import export_keras_model
    from soundlib.variants import resolve_for_clips

    chosen = resolve_for_clips(small_spec(), load_dataset(synth_corpus).clips)[0].duration
    assert small_spec().duration == "fit" and isinstance(chosen, float)
    assert load_model(model_dir).spec.duration == chosen
    assert json.loads((model_dir / "feature_spec.json").read_text())["duration"] == chosen
    with pytest.raises(ModelError, match="duration 'fit'"):
        export_keras_model(tmp_path / "m", None, spec=small_spec(), labels=["a", "b"])
    assert not (tmp_path / "m").exists()
    edited = tmp_path / "edited"  # a hand-edited spec with a rule, checksum rewritten to match: refused
    shutil.copytree(model_dir, edited)
    text = json.dumps({**json.loads((model_dir / "feature_spec.json").read_text()), "duration": "fit"})
    (edited / "feature_spec.json").write_text(text)
    info = json.loads((edited / "soundlib_model.json").read_text())
    info["checksums"]["feature_spec.json"] = hashlib.sha256(text.encode()).hexdigest()
    (edited / "soundlib_model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="feature_spec.json: duration 'fit' is not a number"):
        load_model(edited)


def test_missing_or_corrupt_model(tmp_path, model_dir):
    with pytest.raises(ModelError, match="model directory not found"):
        load_model(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "labels.txt").unlink()
    with pytest.raises(ModelError, match=r"missing labels.txt"):
        load_model(broken)
    shutil.copy(model_dir / "labels.txt", broken / "labels.txt")
    (broken / "saved_model" / "saved_model.pb").write_bytes(b"junk")
    with pytest.raises(ModelError, match="could not load the SavedModel"):
        load_model(broken)
    wrong = tmp_path / "wrong"
    shutil.copytree(model_dir, wrong)
    (wrong / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ModelError, match="labels.txt: does not match the checksum"):
        load_model(wrong)
    info = json.loads((wrong / "soundlib_model.json").read_text())  # a manifest rewritten to match: still caught
    info["checksums"]["labels.txt"] = hashlib.sha256(b"a\nb\n").hexdigest()
    (wrong / "soundlib_model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="labels.txt lists 2 labels"):
        load_model(wrong)
