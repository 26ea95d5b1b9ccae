"""What bench/embedders.py found the pipeline paying twice, now paid once, with the same numbers:
a file's header read once per version of the file, the MFCC mel filterbank made once."""

from __future__ import annotations

import os

import numpy as np

from ..conftest import tone, write_wav


def test_header_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    import soundfile as sf

    from soundlib.audio import clips as audio

    path = write_wav(tmp_path / "a.wav", tone(seconds=1.0))
    calls = []
    real = sf.info
    monkeypatch.setattr(sf, "info", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = audio.audio_info(path)
    assert audio.audio_info(path) == first and audio.clip_samples(path, 16000) == 16000
    audio.read_segment(path, sr=16000)
    assert len(calls) == 1
    write_wav(path, tone(seconds=2.0))  # replaced: another size, times and maybe inode
    os.utime(path, ns=(1, 1))
    assert audio.audio_info(path).frames == 2 * first.frames
    assert len(calls) == 2


def test_header_memory_is_bounded(tmp_path, monkeypatch):
    from soundlib.audio import clips as audio

    monkeypatch.setattr(audio, "_HEADERS_MAX", 3)
    monkeypatch.setattr(audio, "_HEADERS", {})
    for i in range(5):
        audio.audio_info(write_wav(tmp_path / f"{i}.wav", tone(seconds=0.1)))
    assert len(audio._HEADERS) == 3


def test_mfcc_mel_filterbank_made_once_gives_librosas_numbers():
    import librosa

    from soundlib.embedders import mfcc

    y = tone(seconds=1.0, seed=3)
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    for n_mels in (128, 64):
        ours = mfcc._melspectrogram(power, sr=22050, n_mels=n_mels)
        theirs = librosa.feature.melspectrogram(S=power, sr=22050, n_mels=n_mels)
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
    mfcc._mel_basis.cache_clear()
    mfcc.mfcc_statistics(y, sr=22050)
    mfcc.mfcc_statistics(y, sr=22050)
    assert mfcc._mel_basis.cache_info().misses == 1
