from __future__ import annotations


import numpy as np
import pytest

from soundlib.pictures import features as F
from soundlib.pictures import variants as V
from soundlib.pictures.merge import MergeSpec

from ..conftest import SR, tone


@pytest.fixture(scope="module")
def chirp():
    t = np.arange(4 * SR) / SR
    return (0.5 * np.sin(2 * np.pi * (300 + 400 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("name", V.BUILTIN_VARIANTS)
def test_render_shapes(chirp, name):
    img = F.render(chirp, V.VARIANTS[name])
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank picture


def test_mel_matches_librosa(chirp):
    import librosa

    spec = V.VARIANTS["mel"]
    plane = F.spectrogram_plane(chirp, spec=spec)
    m = librosa.feature.melspectrogram(y=chirp, sr=SR, n_fft=2048, hop_length=512, n_mels=128, pad_mode="constant")
    ref = np.clip(1 + librosa.power_to_db(m, ref=np.max, top_db=80) / 80, 0, 1)
    assert plane.shape == ref.shape
    assert np.abs(plane - ref).max() < 1e-4


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(22050, 2048, 128, 0.0, None), (16000, 511, 40, 50.0, 7000.0),
                                                           (48000, 1024, 64, 300.0, 15000.0)])
def test_numpy_mel_filters_are_librosas(sr, n_fft, n_mels, fmin, fmax):
    """The filterbank is computed without librosa (whose import took seconds of a cold predict), the same."""
    import librosa

    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64)
    np.testing.assert_allclose(F.slaney_mel_filters(sr, n_fft, n_mels, fmin, fmax), ref, rtol=1e-12, atol=1e-15)


def test_low_frequencies_at_the_bottom():
    low = F.render(tone(200, seconds=4, noise=0), V.VARIANTS["mel_gray"])
    high = F.render(tone(6000, seconds=4, noise=0), V.VARIANTS["mel_gray"])
    row_low = np.argmax(low[..., 0].mean(axis=1))
    row_high = np.argmax(high[..., 0].mean(axis=1))
    assert row_low > 150 and row_high < row_low


def test_gray_is_gray_and_linear_is_not_log(chirp):
    g = F.render(chirp, V.VARIANTS["mel_gray"])
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    noisy = chirp + 0.01 * np.random.default_rng(0).standard_normal(chirp.size).astype(np.float32)
    lin = F.spectrogram_plane(noisy, spec=V.VARIANTS["linear"])
    db = F.spectrogram_plane(noisy, spec=V.VARIANTS["mel"])
    assert np.median(lin) < 0.01 < np.median(db)  # amplitude: most bins near 0; dB lifts them
    assert lin.shape[0] == 1025  # linear frequency bins


def test_waveform_plane_follows_amplitude():
    y = np.concatenate([np.zeros(1000), np.sin(np.linspace(0, 200, 1000))]).astype(np.float32)
    m = F.waveform_plane(y, height=50, width=10)
    assert m[:, :5].sum(axis=0).max() <= 2  # silence: a thin line
    assert m[:, 5:].sum(axis=0).min() >= 45  # full-scale sine: whole height


def test_merged_channels_follow_spec(chirp):
    spec = V.VARIANTS["merged"]
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
    img = F.render(chirp, V.VARIANTS["stacked"])
    top = F.render_spectrogram(chirp, spec=V.VARIANTS["stacked"], height=112)
    assert np.array_equal(img[:112], top)
    assert np.array_equal(img[112:], F.render_waveform(chirp, spec=V.VARIANTS["stacked"], height=112))
