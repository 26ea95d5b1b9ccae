"""The synthetic UrbanSound8K-style corpus: layout, determinism, validation, and acoustics.

The acoustic checks average over every clip of a class in a small corpus, so
they are robust to one odd recording, yet each would fail if its sound model
produced the wrong kind of sound.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundlib.audio import datasets as D
from soundlib.audio import loaders as L
from soundlib.errors import ConfigError, DatasetError
from soundlib.audio.folds import check_leakage
from soundlib.audio.synth import SOUND_MODELS, SynthConfig, generate_corpus, render_recording

# the session fixture ``synth_corpus`` (tests/conftest.py) is made with this configuration
FIXTURE_CONFIG = SynthConfig(clips_per_class=8, duration=1.0, slices_per_recording=2, n_folds=4)
SMALL = SynthConfig(clips_per_class=4, duration=1.0, slices_per_recording=2, n_folds=2)


def _wavs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "audio").rglob("*.wav"))}


def _by_class(root: Path) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for clip in L.load_dataset(root):
        y, _ = sf.read(clip.path, dtype="float64")
        out[clip.label].append(y)
    return out


@pytest.fixture(scope="module")
def clips(synth_corpus) -> dict[str, list[np.ndarray]]:
    return _by_class(synth_corpus)


# ---------------------------------------------------------------------------
# Layout

def test_layout_loads_as_urbansound8k_named_synthetic(synth_corpus):
    cfg = FIXTURE_CONFIG
    ds = L.load_dataset(synth_corpus)
    check_leakage(ds)
    assert ds.name == "synthetic"  # the UrbanSound8K layout, but named for what it is (desk review F11)
    assert ds.classes == D.US8K_CLASSES and len(ds.classes) == 10
    assert len(ds) == 10 * cfg.clips_per_class
    assert ds.counts() == {c: cfg.clips_per_class for c in D.US8K_CLASSES}
    assert set(ds.folds) <= set(range(1, cfg.n_folds + 1))
    with open(synth_corpus / "metadata" / "UrbanSound8K.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == D.US8K_HEADER
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])

    folds_of = defaultdict(set)
    recordings = defaultdict(set)
    classes_in_fold = defaultdict(set)
    for clip in ds:
        name = D.parse_us8k_filename(clip.path.name)
        assert clip.path.parent.name == f"fold{clip.fold}"
        assert name.label == clip.label and f"fs{name.fsid}" == clip.group
        folds_of[clip.group].add(clip.fold)
        recordings[clip.label].add(clip.group)
        classes_in_fold[clip.fold].add(clip.label)
        assert clip.meta["salience"] in (1, 2)
        assert 0 <= clip.meta["start"] < clip.meta["end"]
    # slices of one recording share a fold; recordings per class = ceil(clips / slices)
    assert all(len(f) == 1 for f in folds_of.values())
    assert all(len(r) == cfg.n_recordings == 4 for r in recordings.values())
    # enough recordings: every fold holds every class (round-robin)
    assert sorted(classes_in_fold) == list(range(1, cfg.n_folds + 1))
    assert all(v == set(D.US8K_CLASSES) for v in classes_in_fold.values())
    assert not list(synth_corpus.rglob("*.tmp")) and not list(synth_corpus.rglob(".*"))


def test_clips_are_pcm16_mono_bounded_and_not_silent(synth_corpus):
    cfg = FIXTURE_CONFIG
    for clip in L.load_dataset(synth_corpus):
        info = sf.info(str(clip.path))
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 1, cfg.sr)
        y, _ = sf.read(clip.path, dtype="float64")
        seconds = y.size / cfg.sr
        assert 0.5 - 1e-9 <= seconds <= cfg.duration + 1e-9, clip.path.name
        assert math.isclose(clip.meta["end"] - clip.meta["start"], seconds, abs_tol=1e-5)
        assert np.max(np.abs(y)) < 0.95                        # peak-normalised, no clipping
        assert np.max(np.abs(y)) > 0.02 and np.sqrt(np.mean(y ** 2)) > 1e-3, f"{clip.path.name} is silent"


def test_uneven_slices_and_single_slice_recordings(tmp_path):
    cfg = SynthConfig(clips_per_class=5, duration=1.5, slices_per_recording=2, n_folds=3, seed=3)
    ds = L.load_dataset(generate_corpus(tmp_path / "c", cfg, progress=False))
    check_leakage(ds)
    assert ds.counts() == {c: 5 for c in D.US8K_CLASSES}
    per_rec = defaultdict(int)
    for clip in ds:
        per_rec[clip.group] += 1
        y, sr = sf.read(clip.path)
        assert 0.5 <= y.size / sr <= 1.5
    assert len(per_rec) == 10 * 3 and max(per_rec.values()) <= 2

    one = L.load_dataset(generate_corpus(tmp_path / "one", SynthConfig(clips_per_class=1, duration=0.5,
                                                                      n_folds=2), progress=False))
    assert len(one) == 10 and len({c.group for c in one}) == 10


# ---------------------------------------------------------------------------
# Determinism, atomic writes, re-runs

def test_same_seed_is_byte_identical_other_seed_differs(tmp_path):
    a = generate_corpus(tmp_path / "a", SMALL, progress=False)
    b = generate_corpus(tmp_path / "b", SMALL, progress=True)
    wa, wb = _wavs(a), _wavs(b)
    assert len(wa) == 40 and wa == wb
    for name in ("UrbanSound8K.csv", "synth_config.json"):
        assert (a / "metadata" / name).read_bytes() == (b / "metadata" / name).read_bytes()

    c = generate_corpus(tmp_path / "c", dataclasses.replace(SMALL, seed=1), progress=False)
    wc = {Path(k).name: v for k, v in _wavs(c).items()}
    same_name = [(v, wc[Path(k).name]) for k, v in wa.items() if Path(k).name in wc]
    assert same_name and all(x != y for x, y in same_name)


def test_render_recording_is_deterministic_and_bounded():
    for label in SOUND_MODELS:
        y1 = render_recording(label, np.random.default_rng(7), seconds=0.75, sr=16000)
        y2 = render_recording(label, np.random.default_rng(7), seconds=0.75, sr=16000)
        y3 = render_recording(label, np.random.default_rng(8), seconds=0.75, sr=16000)
        assert y1.dtype == np.float32 and y1.shape == (12000,)
        assert np.array_equal(y1, y2) and not np.array_equal(y1, y3)
        assert np.all(np.isfinite(y1)) and 0.3 - 1e-6 <= np.max(np.abs(y1)) <= 0.9 + 1e-6


@pytest.mark.parametrize("sr", [8000, 44100])
def test_sound_models_at_other_sample_rates(sr):
    assert tuple(SOUND_MODELS) == D.US8K_CLASSES
    for label in SOUND_MODELS:
        y = render_recording(label, np.random.default_rng(0), seconds=0.6, sr=sr)
        assert y.shape == (round(0.6 * sr),) and np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.25


class _Crash(BaseException):
    """Stands for an interruption (Ctrl-C, killed worker) in the middle of a write."""


def test_interrupted_run_leaves_no_partial_file(tmp_path, monkeypatch):
    real_write = sf.write
    calls = {"n": 0}

    def flaky_write(file, data, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            real_write(file, data[: len(data) // 2], *args, **kwargs)   # half a file, then "crash"
            raise _Crash
        return real_write(file, data, *args, **kwargs)

    monkeypatch.setattr(sf, "write", flaky_write)
    out = tmp_path / "c"
    with pytest.raises(_Crash):
        generate_corpus(out, SMALL, progress=False)
    wavs = sorted((out / "audio").rglob("*.wav"))
    assert len(wavs) == 6
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".tmp"]
    assert not (out / "metadata" / "UrbanSound8K.csv").exists()     # no CSV listing missing audio
    monkeypatch.setattr(sf, "write", real_write)
    expected = _wavs(generate_corpus(tmp_path / "ref", SMALL, progress=False))
    assert all(p.read_bytes() == expected[p.relative_to(out).as_posix()] for p in wavs)
    generate_corpus(out, SMALL, progress=False)                       # a re-run completes the corpus
    assert _wavs(out) == expected


def test_rerun_replaces_previous_corpus_and_refuses_foreign_dataset(tmp_path):
    out = generate_corpus(tmp_path / "c", SynthConfig(clips_per_class=4, duration=0.5, n_folds=3), progress=False)
    generate_corpus(out, SynthConfig(clips_per_class=2, duration=0.5, n_folds=2), progress=False)
    ds = L.load_dataset(out)
    assert len(ds) == 20 and set(ds.folds) <= {1, 2}
    assert sorted(p.name for p in (out / "audio").rglob("*.wav")) == sorted(c.path.name for c in ds)

    foreign = tmp_path / "real"
    (foreign / "metadata").mkdir(parents=True)
    csv_text = ",".join(D.US8K_HEADER) + "\n100032-3-0-0.wav,100032,0,0.3,1,5,3,dog_bark\n"
    (foreign / "metadata" / "UrbanSound8K.csv").write_text(csv_text)
    with pytest.raises(DatasetError, match="not written by soundlib.audio.synth"):
        generate_corpus(foreign, SMALL, progress=False)
    assert (foreign / "metadata" / "UrbanSound8K.csv").read_text() == csv_text
    assert not (foreign / "audio").exists()


# ---------------------------------------------------------------------------
# Validation

@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"clips_per_class": 0}, "clips_per_class"),
        ({"clips_per_class": 2.5}, "clips_per_class"),
        ({"duration": 0}, "duration"),
        ({"duration": -1.0}, "duration"),
        ({"duration": 10.5}, "duration"),
        ({"duration": float("nan")}, "duration"),
        ({"duration": "4"}, "duration"),
        ({"n_folds": 1}, "n_folds"),
        ({"n_folds": True}, "n_folds"),
        ({"slices_per_recording": 0}, "slices_per_recording"),
        ({"seed": -1}, "seed"),
        ({"sr": 100}, "sr"),
        ({"clips_per_class": 10**9, "slices_per_recording": 1}, "recordings"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SynthConfig(**kwargs)


def test_bad_arguments_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="SynthConfig"):
        generate_corpus(tmp_path, {"clips_per_class": 4}, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown sound class"):
        render_recording("lawn_mower", np.random.default_rng(0), seconds=1.0, sr=22050)
    with pytest.raises(ConfigError, match="seconds"):
        render_recording("siren", np.random.default_rng(0), seconds=0.0, sr=22050)
    with pytest.raises(ConfigError, match="rng"):
        render_recording("siren", 0, seconds=1.0, sr=22050)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------
# Acoustics: each sound model sounds like its class

SR = FIXTURE_CONFIG.sr


def _frame_rms(y: np.ndarray, frame_s: float) -> np.ndarray:
    n = max(1, int(frame_s * SR))
    m = y.size // n
    return np.sqrt(np.mean(y[: m * n].reshape(m, n) ** 2, axis=1))


def _stft(y: np.ndarray, n_fft: int = 2048, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)), librosa.fft_frequencies(sr=SR, n_fft=n_fft)


def dominant_frequency_spread(y: np.ndarray) -> float:
    """Median absolute deviation (Hz) of the strongest 250-4000 Hz component over the louder frames."""
    S, f = _stft(y)
    band = (f > 250) & (f < 4000)
    S, f = S[band], f[band]
    energy = S.sum(axis=0)
    dom = f[S.argmax(axis=0)][energy >= np.median(energy)]
    return float(np.median(np.abs(dom - np.median(dom))))


def crest_factor(y: np.ndarray) -> float:
    return float(np.max(np.abs(y)) / np.sqrt(np.mean(y ** 2)))


def decay_ratio(y: np.ndarray) -> float:
    """Envelope in the 50 ms after the loudest 10 ms frame over the envelope 90-140 ms after it."""
    env = _frame_rms(y, 0.01)
    i = int(env.argmax())
    if i + 14 > env.size:
        return float("nan")
    return float(env[i:i + 5].mean() / env[i + 9:i + 14].mean())


def energy_concentration(y: np.ndarray) -> float:
    """Share of the energy held by the loudest 10 % of 10 ms frames (0.1 for a steady sound)."""
    e = np.sort(_frame_rms(y, 0.01) ** 2)[::-1]
    return float(e[: max(1, e.size // 10)].sum() / e.sum())


def envelope_periodicity(y: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    """Peak normalised autocorrelation of the 2 ms envelope at lags of lo_hz..hi_hz repetitions per second."""
    env = _frame_rms(y, 0.002)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[env.size - 1:]
    ac = ac / ac[0]
    return float(ac[int(500 / hi_hz): int(500 / lo_hz) + 1].max())


def spectral_centroid(y: np.ndarray) -> float:
    S, f = _stft(y)
    p = S ** 2
    return float(np.sum(f[:, None] * p) / np.sum(p))


def spectral_flatness(y: np.ndarray) -> float:
    import librosa

    return float(np.mean(librosa.feature.spectral_flatness(y=y)))


def _mean(clips: dict[str, list[np.ndarray]], label: str, fn, stat=np.nanmean) -> float:
    """``stat`` (mean by default, median where one odd clip may dominate) of ``fn`` over a class's clips."""
    values = [fn(y) for y in clips[label]]
    assert len(values) == FIXTURE_CONFIG.clips_per_class
    return float(stat(values))


def test_siren_sweeps_while_car_horn_holds_its_pitch(clips):
    # medians: a two-tone horn may flip between two equally strong partials in an odd clip
    siren = _mean(clips, "siren", dominant_frequency_spread, np.nanmedian)
    horn = _mean(clips, "car_horn", dominant_frequency_spread, np.nanmedian)
    assert siren > 40.0, siren
    assert horn < 15.0, horn
    assert siren > 4 * max(horn, 5.0)


def test_gun_shot_is_an_impulse_with_a_decaying_tail(clips):
    gun_crest = _mean(clips, "gun_shot", crest_factor)
    assert gun_crest > 8.0 and gun_crest > 2.5 * _mean(clips, "car_horn", crest_factor)
    assert gun_crest > 2.5 * _mean(clips, "air_conditioner", crest_factor)
    gun_decay = _mean(clips, "gun_shot", decay_ratio, np.nanmedian)
    assert gun_decay > 2.0 and gun_decay > 1.6 * _mean(clips, "car_horn", decay_ratio, np.nanmedian)
    assert gun_decay > 1.6 * _mean(clips, "air_conditioner", decay_ratio, np.nanmedian)
    assert _mean(clips, "gun_shot", energy_concentration) > 0.5
    assert _mean(clips, "air_conditioner", energy_concentration) < 0.2


def test_jackhammer_has_a_fast_periodic_envelope(clips):
    jack = _mean(clips, "jackhammer", lambda y: envelope_periodicity(y, 8, 25))
    assert jack > 0.5, jack
    assert jack > 2.5 * _mean(clips, "air_conditioner", lambda y: envelope_periodicity(y, 8, 25))
    # impacts, not a smooth pulsation: the envelope at 2 ms resolution is spiky
    assert _mean(clips, "jackhammer", crest_factor) > 1.5 * _mean(clips, "air_conditioner", crest_factor)


def test_engine_idling_is_low_and_drilling_is_high(clips):
    engine = _mean(clips, "engine_idling", spectral_centroid)
    drilling = _mean(clips, "drilling", spectral_centroid)
    assert engine < 2000 and drilling > 3000 and drilling > 3 * engine, (engine, drilling)
    assert engine < 0.6 * _mean(clips, "air_conditioner", spectral_centroid)


def test_air_conditioner_is_broadband_and_car_horn_is_tonal(clips):
    ac = _mean(clips, "air_conditioner", spectral_flatness)
    horn = _mean(clips, "car_horn", spectral_flatness)
    assert ac > 0.2 and horn < 0.1 and ac > 5 * horn, (ac, horn)


def waveform_periodicity(y: np.ndarray) -> float:
    """Mean peak autocorrelation at pitch lags (250-1400 Hz) of the loudest 20 % of 23 ms frames."""
    import librosa

    frames = librosa.util.frame(y, frame_length=512, hop_length=256)
    rms = np.sqrt(np.mean(frames ** 2, axis=0))
    peaks = []
    for x in frames[:, rms >= np.quantile(rms, 0.8)].T:
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[x.size - 1:]
        peaks.append(ac[SR // 1400: SR // 250 + 1].max() / (ac[0] + 1e-12))
    return float(np.mean(peaks))


def test_dog_bark_is_short_harmonic_bursts(clips):
    dog = _mean(clips, "dog_bark", energy_concentration)
    assert dog > 0.4 and dog > 3 * _mean(clips, "car_horn", energy_concentration)
    dog = _mean(clips, "dog_bark", waveform_periodicity)
    assert dog > 0.35 and dog > 2.5 * _mean(clips, "air_conditioner", waveform_periodicity)


def test_every_slice_holds_its_recordings_sound(synth_corpus):
    """Event-like classes (barks, shots, honks) leave no slice with background only."""
    peaks = defaultdict(list)
    for clip in L.load_dataset(synth_corpus):
        y, _ = sf.read(clip.path, dtype="float64")
        peaks[clip.label, clip.group].append(np.max(np.abs(y)))
    worst = min(min(p) / max(p) for p in peaks.values())
    assert worst > 0.25, worst
