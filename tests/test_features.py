from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soundlib import features as F
from soundlib.errors import ConfigError, FeatureError
from soundlib.merge import MergeSpec

from .conftest import SR, tone, write_wav


@pytest.fixture(scope="module")
def chirp():
    t = np.arange(4 * SR) / SR
    return (0.5 * np.sin(2 * np.pi * (300 + 400 * t) * t)).astype(np.float32)


def test_six_seed_variants_registered():
    assert set(F.VARIANTS) >= {"mel", "mel_gray", "linear", "waveform", "merged", "stacked"}
    assert len({s.key() for s in F.VARIANTS.values()}) == len(F.VARIANTS)


@pytest.mark.parametrize("name", list(F.VARIANTS))
def test_render_shapes(chirp, name):
    img = F.render(chirp, name)
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank picture


def test_mel_matches_librosa(chirp):
    import librosa

    spec = F.VARIANTS["mel"]
    plane = F.spectrogram_plane(chirp, spec=spec)
    m = librosa.feature.melspectrogram(y=chirp, sr=SR, n_fft=2048, hop_length=512, n_mels=128, pad_mode="constant")
    ref = np.clip(1 + librosa.power_to_db(m, ref=np.max, top_db=80) / 80, 0, 1)
    assert plane.shape == ref.shape
    assert np.abs(plane - ref).max() < 1e-4


def test_low_frequencies_at_the_bottom():
    low = F.render(tone(200, seconds=4, noise=0), F.VARIANTS["mel_gray"])
    high = F.render(tone(6000, seconds=4, noise=0), F.VARIANTS["mel_gray"])
    row_low = np.argmax(low[..., 0].mean(axis=1))
    row_high = np.argmax(high[..., 0].mean(axis=1))
    assert row_low > 150 and row_high < row_low


def test_gray_is_gray_and_linear_is_not_log(chirp):
    g = F.render(chirp, "mel_gray")
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    noisy = chirp + 0.01 * np.random.default_rng(0).standard_normal(chirp.size).astype(np.float32)
    lin = F.spectrogram_plane(noisy, spec=F.VARIANTS["linear"])
    db = F.spectrogram_plane(noisy, spec=F.VARIANTS["mel"])
    assert np.median(lin) < 0.01 < np.median(db)  # amplitude: most bins near 0; dB lifts them
    assert lin.shape[0] == 1025  # linear frequency bins


def test_waveform_plane_follows_amplitude():
    y = np.concatenate([np.zeros(1000), np.sin(np.linspace(0, 200, 1000))]).astype(np.float32)
    m = F.waveform_plane(y, height=50, width=10)
    assert m[:, :5].sum(axis=0).max() <= 2  # silence: a thin line
    assert m[:, 5:].sum(axis=0).min() >= 45  # full-scale sine: whole height


def test_merged_channels_follow_spec(chirp):
    spec = F.VARIANTS["merged"]
    img = F.render(chirp, spec)
    assert np.all(img[..., 1] == 255)  # background (green) constant
    swapped = spec.replace(merge=MergeSpec(order=("background", "spectrogram", "waveform")))
    img2 = F.render(chirp, swapped)
    assert np.all(img2[..., 0] == 255) and np.array_equal(img2[..., 1], img[..., 0])
    jit = spec.replace(merge=MergeSpec(jitter=0.5, seed=3, strengths=(0.5, 0.5, 0.5)))
    a, b = F.render(chirp, jit), F.render(chirp * 0.9, jit)
    assert np.array_equal(a, F.render(chirp, jit))  # same clip, same picture
    assert a[..., 1].mean() != b[..., 1].mean()  # another clip, other strengths


def test_stacked_is_spectrogram_over_waveform(chirp):
    img = F.render(chirp, "stacked")
    top = F.render_spectrogram(chirp, spec=F.VARIANTS["stacked"], height=112)
    assert np.array_equal(img[:112], top)
    assert np.array_equal(img[112:], F.render_waveform(chirp, spec=F.VARIANTS["stacked"], height=112))


def test_spec_validation_and_from_dict():
    with pytest.raises(FeatureError, match="kind must be one of"):
        F.FeatureSpec(kind="sonogram")
    with pytest.raises(FeatureError, match="fmax"):
        F.FeatureSpec(fmax=20000, sr=22050)
    with pytest.raises(FeatureError, match="unknown colormap"):
        F.render(tone(), F.FeatureSpec(colormap="nope"))
    spec = F.FeatureSpec.from_dict({"name": "m", "n_mels": 64, "merge": {"jitter": 0.2}}, base=F.VARIANTS["merged"])
    assert spec.n_mels == 64 and spec.merge.jitter == 0.2 and spec.kind == "merged"
    with pytest.raises(ConfigError, match="unknown key.*'n_mel'"):
        F.FeatureSpec.from_dict({"n_mel": 64})
    with pytest.raises(ConfigError, match="unknown merge key.*'strength'"):
        F.FeatureSpec.from_dict({"merge": {"strength": [1, 1, 1]}})
    assert F.FeatureSpec.from_dict(F.VARIANTS["stacked"].to_dict()) == F.VARIANTS["stacked"]
    assert F.VARIANTS["mel"].key() == F.VARIANTS["mel"].replace(name="other").key()
    assert F.VARIANTS["mel"].key() != F.VARIANTS["mel"].replace(hop_length=256).key()
    with pytest.raises(FeatureError, match="unknown feature variant 'spectro'"):
        F.get_variant("spectro")


def test_params_variants_yaml_matches_registry():
    import yaml

    path = Path(__file__).parents[1] / "params" / "variants.yaml"
    doc = yaml.safe_load(path.read_text())
    assert tuple(doc["variants"]) == F.BUILTIN_VARIANTS
    for name, d in doc["variants"].items():
        assert F.FeatureSpec.from_dict({"name": name, **d}) == F.VARIANTS[name], name


def test_featurize_in_memory_and_files(tmp_path):
    paths = [write_wav(tmp_path / "in" / f"{i}.wav", tone(300 + 200 * i)) for i in range(3)]
    rep = F.featurize(paths, "mel", progress=False)
    assert rep.ok and len(rep.pictures) == 3
    assert np.array_equal(rep.pictures[paths[1]], F.featurize_clip(paths[1], "mel"))
    out = tmp_path / "out"
    rep = F.featurize(paths, "mel", out_dir=out, progress=False)
    assert sorted(p.name for p in rep.written) == ["0.png", "1.png", "2.png"]
    assert np.array_equal(F.read_picture(out / "1.png"), rep and F.featurize_clip(paths[1], "mel"))
    assert json.loads((out / "feature_spec.json").read_text())["key"] == F.VARIANTS["mel"].key()
    again = F.featurize(paths, "mel", out_dir=out, progress=False)
    assert len(again.skipped) == 3 and not again.written
    with pytest.raises(FeatureError, match="another feature spec"):
        F.featurize(paths, "mel_gray", out_dir=out, progress=False)


def test_featurize_keeps_going_past_bad_files(tmp_path):
    good = [write_wav(tmp_path / "in" / f"g{i}.wav", tone(400 + i * 100)) for i in range(2)]
    bad = tmp_path / "in" / "broken.wav"
    bad.write_text("not audio")
    silent = write_wav(tmp_path / "in" / "silent.wav", np.zeros(SR, np.float32))
    missing = tmp_path / "in" / "missing.wav"
    rep = F.featurize([good[0], bad, silent, missing, good[1]], "waveform", out_dir=tmp_path / "o",
                      jobs=2, progress=False)
    assert sorted(p.name for p in rep.written) == ["g0.png", "g1.png"]
    msgs = dict((p.name, m) for p, m in rep.failures)
    assert set(msgs) == {"broken.wav", "silent.wav", "missing.wav"}
    assert "not a readable audio file" in msgs["broken.wav"] and "silent" in msgs["silent.wav"]
    assert not list((tmp_path / "o").glob("**/*.tmp")) and not (tmp_path / "o" / "broken.png").exists()


def test_write_png_is_atomic(tmp_path, monkeypatch):
    from PIL import Image

    def boom(self, fp, *a, **k):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        F.write_png(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_read_picture_errors(tmp_path):
    (tmp_path / "a.png").write_text("nope")
    with pytest.raises(FeatureError, match=r"a\.png: not a readable picture"):
        F.read_picture(tmp_path / "a.png")
    with pytest.raises(FeatureError, match="not found"):
        F.read_picture(tmp_path / "b.png")


def test_gallery_writes_seed_names(tmp_path):
    clip = write_wav(tmp_path / "c.wav", tone(seconds=2))
    written = F.write_gallery(clip, tmp_path / "g")
    assert sorted(p.name for p in written) == sorted(F.GALLERY_FILES)
    for p in written:
        assert F.read_picture(p).shape == (224, 224, 3)
