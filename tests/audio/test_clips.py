from __future__ import annotations

import numpy as np
import pytest

from soundlib.audio.clips import fix_duration, load_audio
from soundlib.errors import AudioError

from ..conftest import SR, tone, write_wav


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


def test_pad_policies():
    from soundlib.audio.clips import pad_to

    y = np.array([1, 2, 3], np.float32)
    assert pad_to(y, 7, policy="end").tolist() == [1, 2, 3, 0, 0, 0, 0]
    assert pad_to(y, 7, policy="center").tolist() == [0, 0, 1, 2, 3, 0, 0]
    assert pad_to(y, 7, policy="repeat").tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert pad_to(y, 2, policy="repeat").tolist() == [1, 2]
    with pytest.raises(AudioError, match="padding policy"):
        pad_to(y, 7, policy="mirror")


def test_window_starts_cover_the_clip():
    from soundlib.audio.clips import window_starts

    assert window_starts(50, 100, 50) == [0]  # fits: one window
    assert window_starts(100, 100, 50) == [0]
    assert window_starts(250, 100, 50) == [0, 50, 100, 150]  # the last ends at the clip's end
    assert window_starts(260, 100, 50) == [0, 50, 100, 150, 160]  # the last is aligned to the end
    for n in (101, 333, 1000):
        s = window_starts(n, 100, 30)
        assert s[0] == 0 and s[-1] + 100 == n and all(b - a <= 30 for a, b in zip(s, s[1:]))


@pytest.mark.parametrize("file_sr", [8000, 16000, 44100, 48000, 96000])
def test_segments_match_the_whole_file_resampled(tmp_path, file_sr):
    """Reading a segment (with its resampling margin) gives the samples of the whole file resampled."""
    import soxr

    from soundlib.audio.clips import read_segment

    y = np.random.default_rng(file_sr).standard_normal(file_sr * 6).astype(np.float32) * 0.1
    p = write_wav(tmp_path / "x.wav", y, sr=file_sr, subtype="FLOAT")
    full = soxr.resample(y, file_sr, SR, quality="HQ")
    for start in (0.0, 1.0, 2.3337):
        seg = read_segment(p, sr=SR, start=start, duration=1.5)
        t0 = int(round(start * SR))
        assert seg.shape == (int(1.5 * SR),)
        assert np.abs(seg - full[t0:t0 + len(seg)]).max() < 1e-5, start


def test_windows_of_a_long_clip(tmp_path):
    from soundlib.audio.clips import iter_windows, load_windows

    y = np.concatenate([tone(300, seconds=2.0), tone(2000, seconds=3.0)])
    p = write_wav(tmp_path / "long.wav", y)
    windows, starts = load_windows(p, sr=SR, duration=2.0, hop=1.0)
    assert windows.shape == (4, 2 * SR) and starts.tolist() == [0.0, 1.0, 2.0, 3.0]
    streamed = list(iter_windows(p, sr=SR, duration=2.0, hop=1.0))
    assert [s for s, _ in streamed] == starts.tolist()
    assert all(np.allclose(w, s[1], atol=1e-6) for w, s in zip(windows, streamed))
    short = write_wav(tmp_path / "short.wav", tone(seconds=0.5))
    w, s = load_windows(short, sr=SR, duration=2.0, hop=1.0, pad="repeat")
    assert w.shape == (1, 2 * SR) and np.allclose(w[0, :SR // 2], w[0, SR // 2:SR], atol=1e-6)


@pytest.mark.slow
def test_memory_is_bounded_by_the_window_not_the_file(tmp_path):
    """A 10-minute 96 kHz stereo recording: rendering its first 4 s, and streaming all its windows,
    needs the memory of a window, not of the file (the issue measured 935 MB before)."""
    import subprocess
    import sys

    import soundfile as sf

    path = tmp_path / "long.flac"
    sr, seconds = 96000, 600
    t = np.arange(sr * 10) / sr
    block = (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)).astype(np.float32)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype="PCM_16", format="FLAC") as f:
        for _ in range(seconds // 10):
            f.write(block)
    code = (  # the peak of this process (VmHWM): a child's ru_maxrss starts at its parent's size at fork
        "import resource, sys\n"
        "import numpy as np\n"
        "from soundlib.audio.clips import iter_windows, load_audio\n"
        "def peak():\n"
        "    try:\n"
        "        return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "    except OSError:\n"
        "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "base = peak()\n"
        "y = load_audio(sys.argv[1], sr=22050, duration=4.0)\n"
        "n = sum(1 for _ in iter_windows(sys.argv[1], sr=22050, duration=4.0, hop=60.0))\n"
        "print(n, y.shape[0], (peak() - base) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    n, length, peak_mb = out.stdout.split()
    assert int(n) == 11 and int(length) == 4 * 22050
    assert float(peak_mb) < 100, f"reading windows of a 10-min 96 kHz file grew memory by {peak_mb} MB"


@pytest.mark.parametrize("file_sr,channels,seconds", [(22050, 1, 9.37), (44100, 2, 7.3), (16000, 3, 0.7),
                                                     (48000, 1, 3.0)])
def test_streamed_windows_are_the_whole_read_windows_bit_for_bit(tmp_path, monkeypatch, file_sr, channels, seconds):
    """stream_windows (read once, a block at a time, resampled as a stream) gives load_windows' windows
    exactly, for every padding, at the file's rate and resampled; starts="audio" gives the MFCC windows."""
    import itertools

    import soundlib.audio.clips as A
    from soundlib.audio.clips import load_windows, read_segment, stream_windows, window_starts

    monkeypatch.setattr(A, "_STREAM_BLOCK", 1000)  # many blocks, windows straddle them
    y = np.stack([tone(300 + 200 * c, sr=file_sr, seconds=seconds, seed=c) for c in range(channels)], axis=1)
    p = write_wav(tmp_path / "c.wav", y.squeeze(), sr=file_sr)
    for sr, dur, hop, pad in itertools.product([file_sr, 22050, 32000], [1.0, 3.0], [0.5, 1.7],
                                               ["end", "center", "repeat"]):
        windows, starts = load_windows(p, sr=sr, duration=dur, hop=hop, pad=pad)
        got = list(stream_windows(p, sr=sr, duration=dur, hop=hop, pad=pad))
        assert np.array_equal(np.stack([w for _, w in got]), windows), (sr, dur, hop, pad)
        assert [s for s, _ in got] == list(starts)
        whole, n = read_segment(p, sr=sr), int(round(sr * dur))
        ref = [whole[s:s + n] for s in window_starts(len(whole), n, int(round(sr * hop)))]
        got = [w for _, w in stream_windows(p, sr=sr, duration=dur, hop=hop, pad="none", starts="audio")]
        assert len(got) == len(ref) and all(np.array_equal(a, b) for a, b in zip(got, ref)), (sr, dur, hop)


def test_streamed_windows_check_the_whole_file(tmp_path):
    """What read_segment refuses, stream_windows refuses too; a silent clip once all its windows were read."""
    from soundlib.audio.clips import stream_windows

    silent = write_wav(tmp_path / "silent.wav", np.zeros(3 * SR, np.float32))
    stream = stream_windows(silent, sr=SR, duration=1.0, hop=1.0)
    assert len([next(stream) for _ in range(3)]) == 3
    with pytest.raises(AudioError, match="silent audio"):
        next(stream)
    assert len(list(stream_windows(silent, sr=SR, duration=1.0, hop=1.0, allow_silent=True))) == 3
    # sound only between windows (hop > duration) still counts: the whole file is read
    y = np.zeros(3 * SR, np.float32)
    y[int(1.0 * SR)] = 0.5  # between the windows at 0 and 1.2 s
    gaps = write_wav(tmp_path / "gaps.wav", y)
    windows = list(stream_windows(gaps, sr=SR, duration=0.5, hop=1.2))
    assert [s for s, _ in windows] == [0.0, 1.2, 2.4, 2.5] and not any(w.any() for _, w in windows)
    nan = tone(seconds=2.0)
    nan[SR + 5] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(stream_windows(write_wav(tmp_path / "nan.wav", nan, subtype="FLOAT"), sr=SR, duration=0.5, hop=0.5))
    with pytest.raises(AudioError, match="zero-length"):
        list(stream_windows(write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32)), sr=SR, duration=1, hop=1))
    with pytest.raises(AudioError, match="file not found"):
        list(stream_windows(tmp_path / "missing.wav", sr=SR, duration=1.0, hop=1.0))
