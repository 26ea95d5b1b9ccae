from __future__ import annotations

import numpy as np
import pytest

from soundlib.audio import fix_duration, load_audio
from soundlib.errors import AudioError

from .conftest import SR, tone, write_wav


def test_resample_mono_and_fixed_length(tmp_path):
    stereo = np.stack([tone(440, sr=44100, seconds=1.5), tone(440, sr=44100, seconds=1.5, seed=1)], axis=1)
    p = write_wav(tmp_path / "st.wav", stereo, sr=44100, subtype="PCM_24")
    y = load_audio(p, sr=SR, duration=4.0)
    assert y.dtype == np.float32 and y.shape == (4 * SR,)
    assert np.abs(y[: int(1.4 * SR)]).max() > 0.3  # the tone survives resampling
    assert np.all(y[int(1.51 * SR):] == 0)  # padded with silence at the end
    # the dominant frequency is still 440 Hz after resampling
    spec = np.abs(np.fft.rfft(y[:SR]))
    assert abs(np.argmax(spec) * SR / SR - 440) <= 2


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_32", "FLOAT", "DOUBLE"])
def test_bit_depths(tmp_path, subtype):
    p = write_wav(tmp_path / f"{subtype}.wav", tone(seconds=0.5), subtype=subtype)
    y = load_audio(p, sr=SR, duration=None)
    assert y.shape == (SR // 2,)
    assert np.allclose(y, tone(seconds=0.5), atol=0.02)


def test_flac_and_trim(tmp_path):
    import soundfile as sf

    p = tmp_path / "long.flac"
    sf.write(str(p), tone(seconds=6.0), SR)
    assert load_audio(p, sr=SR, duration=4.0).shape == (4 * SR,)


def test_fix_duration():
    assert fix_duration(np.ones(5, np.float32), sr=1, duration=3).tolist() == [1, 1, 1]
    assert fix_duration(np.ones(2, np.float32), sr=1, duration=3).tolist() == [1, 1, 0]
    assert fix_duration(np.ones(2, np.float32), sr=1, duration=None).shape == (2,)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all " * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        load_audio(text)
    zero = write_wav(tmp_path / "zero.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioError, match=r"zero\.wav: zero-length audio"):
        load_audio(zero)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    with pytest.raises(AudioError, match=r"silent\.wav: silent audio"):
        load_audio(silent)
    assert load_audio(silent, allow_silent=True, duration=None).shape == (SR,)
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(write_wav(tmp_path / "ok.wav", tone()).read_bytes()[:30])
    with pytest.raises(AudioError, match=r"truncated\.wav"):
        load_audio(truncated)
