"""Events as an analyst expects (issue 23 item 3, desk review F9): per-class thresholds, a class list,
minimum duration, gap merging, tighter boundaries, an absolute Raven Begin Path and the model's band,
Audacity labels and event audio cut out."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from soundlib.errors import ConfigError
from soundlib.models.events import (
    EventRules,
    Segment,
    audacity_labels,
    event_segments,
    extract_names,
    frequency_band,
    parse_threshold_options,
    raven_table,
    read_thresholds,
)

LABELS = ["siren", "dog_bark", "music"]


def _timeline(rows, *, window=2.0, hop=1.0):
    proba = np.asarray(rows, dtype=float)
    starts = np.arange(len(proba)) * hop
    return proba, starts, starts + window


def test_per_class_thresholds_and_the_class_list():
    proba, s, e = _timeline([[0.6, 0.35, 0.05], [0.55, 0.4, 0.05], [0.1, 0.2, 0.7]])
    assert [x.label for x in event_segments(proba, s, e, LABELS)] == ["siren", "music"]
    rules = EventRules(threshold=0.5, thresholds=(("dog_bark", 0.3),))
    assert [(x.label, x.start, x.end) for x in event_segments(proba, s, e, LABELS, rules=rules)] == [
        ("dog_bark", 0.0, 3.0), ("siren", 0.0, 3.0), ("music", 2.0, 4.0)]
    kept = EventRules(thresholds=(("dog_bark", 0.3),), classes=("dog_bark", "music"))
    assert {x.label for x in event_segments(proba, s, e, LABELS, rules=kept)} == {"dog_bark", "music"}
    with pytest.raises(ConfigError, match=r"'dog-bark' \(did you mean 'dog_bark'\?\) are not classes of this model"):
        event_segments(proba, s, e, LABELS, rules=EventRules(classes=("dog-bark",)))
    with pytest.raises(ConfigError, match="threshold of class 'siren' must be a probability in"):
        EventRules(thresholds=(("siren", 1.5),))


def test_merge_gap_and_min_duration():
    # siren in windows 0, 1 and 4 (a 1-s gap between 3.0 and 4.0), a one-window music blip at 7
    rows = [[0.9, 0, 0.1], [0.9, 0, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.9, 0, 0.1], [0.1, 0, 0.1],
            [0.1, 0, 0.1], [0.1, 0, 0.9]]
    proba, s, e = _timeline(rows)
    plain = event_segments(proba, s, e, LABELS)
    assert [(x.label, x.start, x.end) for x in plain] == [("siren", 0.0, 3.0), ("music", 2.0, 5.0),
                                                          ("siren", 4.0, 6.0), ("music", 7.0, 9.0)]
    merged = event_segments(proba, s, e, LABELS, rules=EventRules(merge_gap=1.0))
    assert [(x.label, x.start, x.end, x.confidence) for x in merged] == [
        ("siren", 0.0, 6.0, 0.9), ("music", 2.0, 5.0, 0.8), ("music", 7.0, 9.0, 0.9)]
    merged = event_segments(proba, s, e, LABELS, rules=EventRules(merge_gap=1.0, min_duration=2.5))
    assert [(x.label, x.start, x.end) for x in merged] == [("siren", 0.0, 6.0), ("music", 2.0, 5.0)]
    with pytest.raises(ConfigError, match="min-duration must be a number of seconds >= 0"):
        EventRules(min_duration=-1)


def test_center_boundaries_do_not_stretch_an_event_by_the_window():
    # 4-s windows every 2 s; a sound heard in windows 2-4 (6-10 s) only: windows 1..3 above the threshold
    proba = np.array([[0.1, 0, 0.9]] * 6, float)
    proba[1:4] = [0.9, 0.05, 0.05]
    s = np.arange(6) * 2.0
    windows = event_segments(proba, s, s + 4, LABELS, rules=EventRules(classes=("siren",)))
    centers = event_segments(proba, s, s + 4, LABELS, rules=EventRules(classes=("siren",), boundaries="centers"))
    assert [(x.start, x.end) for x in windows] == [(2.0, 10.0)]
    assert [(x.start, x.end) for x in centers] == [(3.0, 9.0)]  # each window owns the 2 s around its centre
    edge = event_segments(proba[::-1], s, s + 4, LABELS, rules=EventRules(classes=("music",), boundaries="centers"))
    assert edge[0].start == 0.0 and edge[-1].end == 14.0  # the first and last windows reach the recording's ends


def test_threshold_files_and_options(tmp_path):
    (tmp_path / "t.csv").write_text("class,threshold\nsiren,0.3\ndog_bark, 0.7\n")
    (tmp_path / "bare.csv").write_text("siren,0.25\n")
    (tmp_path / "t.yaml").write_text("siren: 0.3\nmusic: 0.9\n")
    assert read_thresholds(tmp_path / "t.csv") == {"siren": 0.3, "dog_bark": 0.7}
    assert read_thresholds(tmp_path / "bare.csv") == {"siren": 0.25}
    assert read_thresholds(tmp_path / "t.yaml") == {"siren": 0.3, "music": 0.9}
    (tmp_path / "bad.csv").write_text("class,threshold\nsiren,0.3\ndog_bark,high\n")
    with pytest.raises(ConfigError, match=r"bad.csv: line 3: the threshold must be a probability in \(0, 1\]"):
        read_thresholds(tmp_path / "bad.csv")
    (tmp_path / "three.csv").write_text("siren,0.3,x\n")
    with pytest.raises(ConfigError, match="line 1: expected two columns"):
        read_thresholds(tmp_path / "three.csv")
    (tmp_path / "list.yaml").write_text("- 0.3\n")
    with pytest.raises(ConfigError, match="expected a mapping of class names to thresholds"):
        read_thresholds(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        read_thresholds(tmp_path / "missing.csv")
    assert parse_threshold_options(["0.4", "siren=0.2", "dog_bark=0.9"]) == (0.4, {"siren": 0.2, "dog_bark": 0.9})
    assert parse_threshold_options([]) == (None, {})
    with pytest.raises(ConfigError, match="--threshold 'siren=2': the threshold must be"):
        parse_threshold_options(["siren=2"])


def test_raven_begin_path_is_absolute_and_the_band_is_the_models(tmp_path, monkeypatch):
    from soundlib.embedders import WindowSpec
    from soundlib.pictures.variants import get_variant

    monkeypatch.chdir(tmp_path)
    text = raven_table([{"input": "rec/a.wav", "start": 1.0, "end": 2.0, "label": "siren", "confidence": 0.9}],
                       low_freq=0.0, high_freq=16000.0)
    row = text.splitlines()[1].split("\t")
    assert row[10] == str(tmp_path / "rec" / "a.wav") and row[5:7] == ["0.0", "16000.0"]
    mel = get_variant("mel")
    assert frequency_band(mel, WindowSpec("mn04", 32000, 4.0)) == (0.0, 16000.0)  # mn04 hears 32-kHz audio
    assert frequency_band(mel) == (float(mel.fmin), float(mel.fmax or mel.sr / 2))  # a picture model: its pictures


def test_audacity_labels_and_extract_names():
    events = [{"input": "/x/long take.wav", "start": 1.5, "end": 3.25, "label": "dog bark", "confidence": 0.8},
              {"input": "/x/b.ogg", "start": 0.0, "end": 1.0, "label": "siren", "confidence": 0.6}]
    assert audacity_labels(events) == "1.500000\t3.250000\tdog bark\n0.000000\t1.000000\tsiren\n"
    assert extract_names(events) == ["0001_long-take_dog-bark_1.50s.wav", "0002_b_siren_0.00s.wav"]


@pytest.fixture(scope="module")
def waveform_model(tmp_path_factory, synth_corpus, cache):
    """A model on the mfcc embedder (a waveform model, exported as head.npz) and a long recording of
    synthetic clips: siren, dog_bark and jackhammer, 3 s each."""
    import soundfile as sf

    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold

    out = tmp_path_factory.mktemp("events_model")
    ds = load_dataset(synth_corpus)
    train_fold(ds, test_fold=1, out_dir=out / "run", progress=False,
               config=EvalConfig(method={"name": "m", "method": "frozen", "backbone": "mfcc"}))
    parts = []
    for label in ("siren", "dog_bark", "jackhammer"):
        y, sr = sf.read(str(next(c.path for c in ds.clips if c.label == label and c.fold == 1)), dtype="float32")
        parts.append(np.tile(y, 3))
    long = out / "audio" / "street.wav"
    long.parent.mkdir()
    sf.write(str(long), np.concatenate(parts), sr)
    return out / "run" / "model", long


def _rules_events(model_dir, long, rules, hop=None):
    from soundlib.models.label import window_probabilities
    from soundlib.models.load import load_model

    model = load_model(model_dir)
    win, starts, length = window_probabilities(model, long, hop=hop)
    return event_segments(win, starts, np.minimum(starts + model.window_seconds, length), model.labels, rules=rules)


def test_predict_event_options_end_to_end(waveform_model, tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from soundlib.cli import main
    from soundlib.models.load import load_model

    model_dir, long = waveform_model
    model = load_model(model_dir)
    (tmp_path / "th.csv").write_text("class,threshold\nsiren,0.2\n")
    rules = EventRules(threshold=0.4, thresholds=(("siren", 0.2), ("dog_bark", 0.3)),
                       classes=("siren", "dog_bark", "jackhammer"), merge_gap=0.5, min_duration=0.5)
    want = _rules_events(model_dir, long, rules, hop=0.25)
    assert want, "the synthetic recording makes events"
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(long, tmp_path)
    args = ["predict", str(model_dir), rel, "--hop", "0.25", "--events", "ev.csv", "--raven", "r.txt",
            "--audacity", "a.txt", "--extract", "cuts", "--threshold", "0.4", "--thresholds", "th.csv",
            "--threshold", "dog_bark=0.3", "--classes", "siren,dog_bark", "--classes", "jackhammer",
            "--merge-gap", "0.5", "--min-duration", "0.5"]
    assert main(args) == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "ev.csv")))
    assert [(float(r["start"]), float(r["end"]), r["label"]) for r in rows] == [
        (s.to_dict()["start"], s.to_dict()["end"], s.label) for s in want]
    raven = [line.split("\t") for line in (tmp_path / "r.txt").read_text().splitlines()[1:]]
    assert {r[10] for r in raven} == {str(long)}  # absolute, although the input was given relative
    assert {(r[5], r[6]) for r in raven} == {("0.0", f"{model.window.sr / 2:.1f}")}
    labels = [line.split("\t") for line in (tmp_path / "a.txt").read_text().splitlines()]
    assert [(float(a), float(b), c) for a, b, c in labels] == [(s.to_dict()["start"], s.to_dict()["end"], s.label)
                                                               for s in want]
    cuts = sorted((tmp_path / "cuts").iterdir())
    assert [c.name for c in cuts] == extract_names([{"input": rel, **s.to_dict()} for s in want])
    info = sf.info(str(cuts[0]))
    assert info.samplerate == sf.info(str(long)).samplerate
    assert info.duration == pytest.approx(want[0].end - want[0].start, abs=2e-3)
    # a rerun with other events replaces the old cuts instead of mixing them
    assert main(["predict", str(model_dir), rel, "--extract", "cuts", "--threshold", "air_conditioner=1.0",
                 "--classes", "air_conditioner"]) == 0
    assert not list((tmp_path / "cuts").iterdir())


def test_predict_event_options_refuse_bad_input_before_work(waveform_model, tmp_path, capsys):
    from soundlib.cli import main

    model_dir, long = waveform_model
    base = ["predict", str(model_dir), str(long), "--events", str(tmp_path / "e.csv")]
    assert main(base + ["--classes", "dog-bark"]) == 2
    assert "'dog-bark' (did you mean 'dog_bark'?) are not classes of this model" in capsys.readouterr().err
    assert main(base + ["--threshold", "siren=0"]) == 2
    assert "--threshold 'siren=0': the threshold must be a probability in (0, 1]" in capsys.readouterr().err
    assert main(base + ["--threshold", "0"]) == 2
    assert "threshold must be a probability in (0, 1]" in capsys.readouterr().err
    (tmp_path / "cuts").mkdir()
    (tmp_path / "cuts" / "mine.flac").write_text("x")
    assert main(base + ["--extract", str(tmp_path / "cuts")]) == 2
    assert "--extract" in (err := capsys.readouterr().err) and "holds files soundlib did not write" in err
    assert (tmp_path / "cuts" / "mine.flac").read_text() == "x" and not (tmp_path / "e.csv").exists()
    (tmp_path / "notes.txt").write_text("mine")
    assert main(base + ["--audacity", str(tmp_path / "notes.txt")]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert main(base + ["--extract", str(model_dir)]) == 2
    assert "lies inside the model folder" in capsys.readouterr().err


def test_audacity_writes_one_label_file_per_recording(waveform_model, tmp_path):
    import shutil

    from soundlib.cli import main

    model_dir, long = waveform_model
    other = tmp_path / "in" / "other.wav"
    other.parent.mkdir()
    shutil.copy(long, other)
    assert main(["predict", str(model_dir), str(long), str(other), "--audacity", str(tmp_path / "labels"),
                 "--threshold", "0.3", "--quiet"]) == 0
    files = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert files == ["other.txt", "street.txt"]
    assert (tmp_path / "labels" / "other.txt").read_text() == (tmp_path / "labels" / "street.txt").read_text() != ""
    assert json.loads(json.dumps(files))  # plain names, no paths
    assert Segment(0, 1, "x", 0.5).to_dict()["label"] == "x"
