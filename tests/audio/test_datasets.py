from __future__ import annotations

import csv
from pathlib import Path

import pytest

from soundlib.audio import datasets as D
from soundlib.audio import loaders as L
from soundlib.errors import DatasetError

from ..conftest import tone, write_csv, write_wav

# fsIDs whose slices the official UrbanSound8K split places in two folds (one fold per class label):
OFFICIAL_CROSS_FOLD = {"fs106905": (1, 8), "fs132016": (1, 4), "fs176638": (1, 4), "fs180937": (1, 9), "fs77751": (2, 7)}


def test_us8k_real_metadata(us8k_csv):
    ds = L.load_dataset(us8k_csv, check_files=False)
    assert ds.name == "urbansound8k"
    assert len(ds) == 8732
    assert ds.classes == D.US8K_CLASSES and len(ds.classes) == 10
    assert ds.folds == tuple(range(1, 11))
    # fold sizes as in the file
    with open(us8k_csv) as fh:
        rows = list(csv.DictReader(fh))
    expected = {k: sum(1 for r in rows if int(r["fold"]) == k) for k in range(1, 11)}
    assert {k: sum(1 for c in ds if c.fold == k) for k in range(1, 11)} == expected
    assert expected[1] == 873 and expected[10] == 837
    assert ds.counts()["car_horn"] == 429 and ds.counts()["gun_shot"] == 374
    clip = ds.clips[0]
    assert clip.path == Path("tests/data/audio/fold5/100032-3-0-0.wav") or clip.path.name == "100032-3-0-0.wav"
    assert clip.group == "fs100032" and clip.label == "dog_bark" and clip.meta["salience"] == 1


def test_parse_us8k_filename():
    n = D.parse_us8k_filename("100263-2-0-117.wav")
    assert (n.fsid, n.class_id, n.occurrence_id, n.slice_id, n.label) == (100263, 2, 0, 117, "children_playing")
    with pytest.raises(DatasetError, match="convention"):
        D.parse_us8k_filename("dog.wav")
    with pytest.raises(DatasetError, match="classID 12"):
        D.parse_us8k_filename("1-12-0-0.wav")


def test_us8k_layout_with_audio(tmp_path):
    rows = []
    for i, (fs, cid, fold) in enumerate([(1, 3, 1), (1, 3, 1), (2, 8, 2)]):
        name = f"{fs}-{cid}-0-{i}.wav"
        write_wav(tmp_path / "audio" / f"fold{fold}" / name, tone(300 + 100 * i))
        rows.append([name, fs, 0, 1, 1, fold, cid, D.US8K_CLASSES[cid]])
    write_csv(tmp_path / "metadata" / "UrbanSound8K.csv", D.US8K_HEADER, rows)
    ds = L.load_dataset(tmp_path)
    assert [c.path.exists() for c in ds] == [True] * 3
    train, test = ds.split(2)
    assert len(train) == 2 and len(test) == 1 and test.clips[0].label == "siren"
    with pytest.raises(DatasetError, match="fold 7 has no clips"):
        ds.split(7)
    # a missing audio file is named
    (tmp_path / "audio" / "fold2" / "2-8-0-2.wav").unlink()
    with pytest.raises(DatasetError, match=r"1 of 3 listed audio file\(s\) do not exist:\n.*2-8-0-2\.wav"):
        L.load_dataset(tmp_path)


def test_us8k_bad_metadata(tmp_path):
    p = write_csv(tmp_path / "a" / "metadata" / "UrbanSound8K.csv",
                   [h for h in D.US8K_HEADER if h != "fold"], [["1-3-0-0.wav", 1, 0, 1, 1, 3, "dog_bark"]])
    with pytest.raises(DatasetError, match=r"UrbanSound8K.csv: missing column\(s\) fold"):
        L.load_urbansound8k(p, check_files=False)
    p = write_csv(tmp_path / "b.csv", D.US8K_HEADER, [["1-3-0-0.wav", 1, 0, 1, 1, 1, 3, "cat_meow"]])
    with pytest.raises(DatasetError, match=r"b.csv, line 2: unknown class 'cat_meow'"):
        L.load_dataset(p, check_files=False)
    p = write_csv(tmp_path / "c.csv", D.US8K_HEADER, [["1-3-0-0.wav", 1, 0, 1, 1, 1, 4, "dog_bark"]])
    with pytest.raises(DatasetError, match="classID 4 does not match class 'dog_bark'"):
        L.load_dataset(p, check_files=False)
    p = write_csv(tmp_path / "d.csv", D.US8K_HEADER, [["1-3-0-0.wav", 1, 0, 1, 1, "one", 3, "dog_bark"]])
    with pytest.raises(DatasetError, match="column 'fold' should be an integer, got 'one'"):
        L.load_dataset(p, check_files=False)
    p = write_csv(tmp_path / "e.csv", D.US8K_HEADER, [])
    with pytest.raises(DatasetError, match="header but no rows"):
        L.load_dataset(p, check_files=False)


def test_esc50_layout(tmp_path):
    rows = []
    for fold in range(1, 6):
        for target, cat in enumerate(["dog", "rain"]):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            write_wav(tmp_path / "audio" / name, tone(200 + 50 * fold + 300 * target, seconds=0.5))
            rows.append([name, fold, target, cat, "True", 100 + target + 10 * fold, "A"])
    write_csv(tmp_path / "meta" / "esc50.csv", D.ESC50_HEADER, rows)
    ds = L.load_dataset(tmp_path)
    assert ds.name == "esc50" and ds.classes == ("dog", "rain") and ds.folds == (1, 2, 3, 4, 5)
    assert len(ds) == 10 and ds.clips[0].group.startswith("src")


def test_manifest(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav", tone(300))
    write_wav(tmp_path / "clips" / "b.wav", tone(600))
    write_wav(tmp_path / "clips" / "c.wav", tone(900))
    absolute = tmp_path / "clips" / "c.wav"
    p = write_csv(tmp_path / "manifest.csv", ["path", "label", "group"],
                   [["clips/a.wav", "low", "r1"], ["clips/b.wav", "high", "r1"], [str(absolute), "high", ""]])
    ds = L.load_dataset(p)
    assert ds.classes == ("high", "low")
    assert [c.class_id for c in ds] == [1, 0, 0]
    assert ds.clips[0].path == tmp_path / "clips" / "a.wav"
    assert ds.clips[2].group == str(absolute)  # no group given: the file is its own group
    assert not ds.has_folds
    bad = write_csv(tmp_path / "bad.csv", ["path", "label"], [["clips/a.wav", "x"], ["clips/missing.wav", "y"]])
    with pytest.raises(DatasetError, match=r"bad.csv: 1 of 2 listed audio file\(s\) do not exist:\n.*missing.wav"):
        L.load_dataset(bad)
    nolabel = write_csv(tmp_path / "nolabel.csv", ["path", "fold"], [["clips/a.wav", 1]])
    with pytest.raises(DatasetError, match=r"missing column\(s\) label"):
        L.load_dataset(nolabel)


def test_folder_per_class(tmp_path):
    for label in ("cat", "dog"):
        for i in range(3):
            write_wav(tmp_path / "root" / label / f"{i}.wav", tone(100 * (i + 2)))
    (tmp_path / "root" / "dog" / "notes.txt").write_text("not audio")
    ds = L.load_dataset(tmp_path / "root")
    assert ds.classes == ("cat", "dog") and len(ds) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files found"):
        L.load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        L.load_dataset(tmp_path / "nowhere")
