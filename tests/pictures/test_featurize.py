"""Pictures on disk: featurize to PNG or memory, reading pictures, the gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundlib.pictures import featurize as FZ
from soundlib.errors import FeatureError, SoundlibError
from soundlib.pictures.variants import VARIANTS

from ..conftest import SR, tone, write_wav


def test_featurize_in_memory_and_files(tmp_path):
    paths = [write_wav(tmp_path / "in" / f"{i}.wav", tone(300 + 200 * i)) for i in range(3)]
    rep = FZ.featurize(paths, VARIANTS["mel"], progress=False)
    assert rep.ok and len(rep.pictures) == 3
    assert np.array_equal(rep.pictures[paths[1]], FZ.featurize_clip(paths[1], VARIANTS["mel"]))
    out = tmp_path / "out"
    rep = FZ.featurize(paths, VARIANTS["mel"], out_dir=out, progress=False)
    assert sorted(p.name for p in rep.written) == ["0.wav.png", "1.wav.png", "2.wav.png"]
    assert np.array_equal(FZ.read_picture(out / "1.wav.png"), rep and FZ.featurize_clip(paths[1], VARIANTS["mel"]))
    # duration "fit": the 1-s clips get a 1-s window, recorded in the folder's spec
    assert rep.spec.duration == 1.0 and rep.spec == VARIANTS["mel"].replace(duration=1.0)
    assert json.loads((out / "feature_spec.json").read_text())["key"] == rep.spec.key()
    again = FZ.featurize(paths, VARIANTS["mel"], out_dir=out, progress=False)
    assert len(again.skipped) == 3 and not again.written
    with pytest.raises(FeatureError, match="another feature spec"):
        FZ.featurize(paths, VARIANTS["mel_gray"], out_dir=out, progress=False)


def test_duration_fit_for_many_clips_and_for_one(tmp_path):
    """featurize chooses one window for all its clips; one clip alone (featurize_clip, the gallery) gets its own."""
    short = [write_wav(tmp_path / f"s{i}.wav", tone(500 + 50 * i, seconds=0.5, seed=i)) for i in range(20)]
    long = write_wav(tmp_path / "long.wav", tone(700, seconds=2.0))
    rep = FZ.featurize(short + [long], VARIANTS["mel"], progress=False)
    assert rep.ok and rep.spec.duration == 0.5  # the 95th percentile of the lengths
    fixed = VARIANTS["mel"].replace(duration=0.5)
    assert np.array_equal(rep.pictures[long], FZ.featurize_clip(long, fixed))  # its first 0.5 s
    assert not np.array_equal(rep.pictures[long], FZ.featurize_clip(long, VARIANTS["mel"]))  # alone: all 2 s
    assert np.array_equal(FZ.featurize_clip(long, VARIANTS["mel"]),
                          FZ.featurize_clip(long, fixed.replace(duration=2.0)))
    assert FZ.window_starts_of(long, VARIANTS["mel"]) == [0.0] and len(FZ.window_starts_of(long, fixed)) > 5
    assert len(FZ.featurize_windows(long, VARIANTS["mel"])[0]) == 1
    with pytest.raises(SoundlibError, match="missing.wav"):  # a rule needs the length: the file is named
        FZ.featurize_clip(tmp_path / "missing.wav", VARIANTS["mel"])


def test_featurize_keeps_going_past_bad_files(tmp_path):
    good = [write_wav(tmp_path / "in" / f"g{i}.wav", tone(400 + i * 100)) for i in range(2)]
    bad = tmp_path / "in" / "broken.wav"
    bad.write_text("not audio")
    silent = write_wav(tmp_path / "in" / "silent.wav", np.zeros(SR, np.float32))
    missing = tmp_path / "in" / "missing.wav"
    rep = FZ.featurize([good[0], bad, silent, missing, good[1]], VARIANTS["waveform"], out_dir=tmp_path / "o",
                      jobs=2, progress=False)
    assert sorted(p.name for p in rep.written) == ["g0.wav.png", "g1.wav.png"]
    msgs = dict((p.name, m) for p, m in rep.failures)
    assert set(msgs) == {"broken.wav", "silent.wav", "missing.wav"}
    assert "not a readable audio file" in msgs["broken.wav"] and "silent" in msgs["silent.wav"]
    assert not list((tmp_path / "o").glob("**/*.tmp")) and not (tmp_path / "o" / "broken.wav.png").exists()


def test_write_png_is_atomic(tmp_path, monkeypatch):
    from PIL import Image

    def boom(self, fp, *a, **k):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        FZ.write_png(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_read_picture_errors(tmp_path):
    (tmp_path / "a.png").write_text("nope")
    with pytest.raises(FeatureError, match=r"a\.png: not a readable picture"):
        FZ.read_picture(tmp_path / "a.png")
    with pytest.raises(FeatureError, match="not found"):
        FZ.read_picture(tmp_path / "b.png")


def test_gallery_writes_seed_names(tmp_path):
    clip = write_wav(tmp_path / "c.wav", tone(seconds=2))
    written = FZ.write_gallery(clip, tmp_path / "g")
    assert sorted(p.name for p in written) == sorted(FZ.GALLERY_FILES)
    for p in written:
        assert FZ.read_picture(p).shape == (224, 224, 3)
    # duration "fit": the clip's own 2 s, not 2 s of sound in a half-empty 4-s picture
    two = VARIANTS["mel"].replace(duration=2.0)
    assert np.array_equal(FZ.read_picture(tmp_path / "g" / "spectrogram.png"), FZ.featurize_clip(clip, two))
