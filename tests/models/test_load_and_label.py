from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.errors import ModelError
from soundlib.evaluation.evaluate import EvalConfig
from soundlib.models.train import train_fold
from soundlib.pictures.featurize import featurize_clip, write_png
from soundlib.models.label import predict
from soundlib.models.load import load_model
from soundlib.methods.train import TrainConfig
from soundlib.pictures.variants import register_variant

from ..conftest import small_spec


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synth_corpus, tiny_backbone):
    spec = register_variant(small_spec().replace(name="mel32"), overwrite=True)
    out = tmp_path_factory.mktemp("model")
    train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
               config=EvalConfig(method="frozen", spec=spec, backbone=str(tiny_backbone), train=TrainConfig(epochs=3)))
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
    from soundlib.models.export import export_keras_model
    from soundlib.pictures.variants import resolve_for_clips

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
    del info["sizes"], info["manifest_sha256"]  # (as a 0.2 manifest: else the edit is caught before the spec is read)
    (edited / "soundlib_model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="feature_spec.json: duration 'fit' is not a number"):
        load_model(edited)


def test_missing_or_corrupt_model(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("SOUNDLIB_MODEL_RUNTIME", "tf")  # the SavedModel itself (a LiteRT copy would serve instead)
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
    del info["sizes"], info["manifest_sha256"]  # (as a 0.2 manifest: else the edit is caught here already)
    (wrong / "soundlib_model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="labels.txt lists 2 labels"):
        load_model(wrong)


# ---------------------------------------------------------------------------
# The LiteRT copy: labelling without TensorFlow

def test_export_carries_a_checked_litert_copy(model_dir):
    info = json.loads((model_dir / "soundlib_model.json").read_text())
    lite = info["litert"]
    assert lite["file"] == "model.tflite" and lite["max_abs_difference"] <= 1e-4
    assert hashlib.sha256((model_dir / "model.tflite").read_bytes()).hexdigest() == lite["sha256"]
    assert info["soundlib_version"] and info["test_fold"] == 1 and info["test_accuracy"]["n"] > 0


def test_predict_imports_no_tensorflow_and_matches_the_savedmodel(tmp_path, model_dir, synth_corpus, monkeypatch):
    import csv
    import subprocess
    import sys

    wavs = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[:3]
    script = ("import json, sys\nfrom soundlib.cli import main\n"
              "rc = main(['predict', sys.argv[1], *sys.argv[3:], '--top-k', '10', '--csv', sys.argv[2]])\n"
              "print(json.dumps({'rc': rc, 'tf': sorted(m for m in sys.modules if m.split('.')[0] in "
              "('tensorflow', 'tf_keras', 'keras', 'tensorflow_hub'))}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(model_dir), str(tmp_path / "p.csv"), *map(str, wavs)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"rc": 0, "tf": []}, report
    lite_rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    monkeypatch.setenv("SOUNDLIB_MODEL_RUNTIME", "tf")
    saved = load_model(model_dir)
    assert saved.runtime == "tensorflow"
    rows, failures = predict(saved, wavs, top_k=10)
    assert not failures and len(rows) == len(lite_rows) == 30
    got = {(r["input"], r["label"]): float(r["probability"]) for r in lite_rows}
    want = {(r["input"], r["label"]): r["probability"] for r in rows}
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)
    monkeypatch.setenv("SOUNDLIB_MODEL_RUNTIME", "auto")
    lite = load_model(model_dir)
    assert lite.runtime == "litert"
    pics = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(lite.predict_pictures(pics), saved.predict_pictures(pics), atol=1e-5)
    np.testing.assert_allclose(lite.predict_pictures(pics[:2]), saved.predict_pictures(pics[:2]), atol=1e-5)


def test_a_changed_litert_copy_falls_back_to_the_savedmodel(tmp_path, model_dir, monkeypatch):
    from soundlib.errors import SoundlibWarning

    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    with open(changed / "model.tflite", "ab") as fh:
        fh.write(b"\0")
    with pytest.warns(SoundlibWarning, match=r"model.tflite does not match the checksum .* using its SavedModel"):
        model = load_model(changed)
    assert model.runtime == "tensorflow"
    pics = np.zeros((1, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(model.predict_pictures(pics), load_model(model_dir).predict_pictures(pics), atol=1e-5)
    monkeypatch.setenv("SOUNDLIB_MODEL_RUNTIME", "litert")
    with pytest.raises(ModelError, match="SOUNDLIB_MODEL_RUNTIME=litert, but .*does not match the checksum"):
        load_model(changed)


def test_a_model_of_the_previous_version_without_litert_copy_loads_quietly(tmp_path, model_dir, recwarn):
    """What soundlib wrote before the LiteRT copy: no model.tflite, no card, no 'litert' in the manifest."""
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    (old / "model.tflite").unlink()
    (old / "MODEL_CARD.md").unlink()
    info = json.loads((old / "soundlib_model.json").read_text())
    for key in ("litert", "soundlib_version", "dataset", "training", "cross_validation", "test_accuracy", "sizes",
                "manifest_sha256"):
        del info[key]
    (old / "soundlib_model.json").write_text(json.dumps(info))
    model = load_model(old)
    assert model.runtime == "tensorflow" and not recwarn.list
    pics = np.zeros((1, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(model.predict_pictures(pics), load_model(model_dir).predict_pictures(pics), atol=1e-5)


def test_predict_writes_event_segments_and_a_raven_table(tmp_path, model_dir, synth_corpus, capsys):
    import csv

    import soundfile as sf

    from soundlib.cli import main
    from soundlib.models.events import event_segments
    from soundlib.models.label import window_probabilities

    ds = load_dataset(synth_corpus)
    parts = [sf.read(str(next(c.path for c in ds.clips if c.label == label)), dtype="float32")[0]
             for label in ("siren", "dog_bark", "jackhammer")]
    long = tmp_path / "long" / "street.wav"
    long.parent.mkdir()
    sf.write(str(long), np.concatenate([np.tile(y, 4) for y in parts]), 22050)  # 12 s: three 4-s events
    model = load_model(model_dir)
    win, starts, length = window_probabilities(model, long)
    assert len(win) > 3 and length == pytest.approx(12.0)
    threshold = float(np.sort(win.max(axis=0))[-2]) - 1e-6  # at least two classes reach it somewhere
    want = event_segments(win, starts, np.minimum(starts + model.spec.duration, length), model.labels,
                          threshold=threshold)
    assert len(want) >= 2
    events, raven = tmp_path / "events.csv", tmp_path / "street.selections.txt"
    assert main(["predict", str(model_dir), str(long.parent), "--events", str(events), "--raven", str(raven),
                 "--threshold", repr(threshold), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("predict: 1 file(s) labelled, 0 failed, ") and out[-1].endswith("s (litert)")
    rows = list(csv.DictReader(open(events)))
    assert [(float(r["start"]), float(r["end"]), r["label"], float(r["confidence"])) for r in rows] == [
        (s.to_dict()["start"], s.to_dict()["end"], s.label, s.to_dict()["confidence"]) for s in want]
    assert {r["input"] for r in rows} == {str(long)}
    lines = raven.read_text().splitlines()
    assert lines[0].startswith("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)")
    assert len(lines) == 1 + len(want)
    first = lines[1].split("\t")
    assert first[:4] == ["1", "Spectrogram 1", "1", f"{want[0].start:.3f}"] and first[7] == want[0].label
    assert main(["predict", str(model_dir), str(long), "--events", str(events), "--threshold", "0"]) == 2
    assert "threshold must be a probability in (0, 1]" in capsys.readouterr().err
