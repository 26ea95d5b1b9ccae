"""Procedural sound models: one per UrbanSound8K class, and recordings made of them.

Each model draws its own parameters (pitch, rate, timbre) from the generator it
is given; :func:`render_recording` adds a coloured background at a drawn SNR.
Everything is vectorised numpy (no per-sample Python loops). This module is
long because it holds ten distinct sound models, each a few dozen lines of
signal design; they belong together as the catalogue of
:data:`SOUND_MODELS` and share the helpers at the top.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from soundlib.audio.synth.dsp import (
    _alternate,
    _band,
    _band_noise,
    _colored_noise,
    _cycles,
    _fft_len,
    _gate,
    _harmonic_table,
    _midi_hz,
    _n_harmonics,
    _onsets,
    _osc,
    _place,
    _power_amps,
    _rms,
    _shape_noise,
    _smooth,
)
from soundlib.errors import ConfigError

__all__ = ["SoundModel", "SOUND_MODELS", "render_scene", "render_recording"]


#: A sound model: ``model(rng, n, sr, *, max_gap=math.inf)`` returns ``n`` float64
#: samples of the foreground sound (any scale, no background) at sample rate ``sr``;
#: sounds made of events (barks, shots, honks...) leave no pause longer than
#: ``max_gap`` seconds between them, continuous sounds ignore it.
SoundModel = Callable[..., np.ndarray]


def _air_conditioner(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Steady broadband noise (white to light pink) plus mains hum and a faint fan tone."""
    exponent = rng.uniform(0.0, 0.6)
    lo, hi = rng.uniform(60, 180), rng.uniform(3500, 9000)
    hi = min(hi, 0.45 * sr)
    noise = _shape_noise(rng, n, sr, lambda f: np.maximum(f, 20.0) ** (-exponent / 2) * _band(f, lo, hi, 1))
    mains = 50.0 if rng.random() < 0.5 else 60.0
    # hum: mostly twice the mains frequency (transformer/compressor), some mains and higher partials
    amps = np.zeros(6)
    amps[[1, 3, 5, 0]] = 1.0, rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3), rng.uniform(0.0, 0.4)
    hum = _osc(_harmonic_table(amps, rng.uniform(0, 2 * np.pi, 6)), _cycles(mains, n, sr))
    sine = _harmonic_table(np.ones(1))
    fan = _osc(sine, _cycles(rng.uniform(150, 450), n, sr))
    fan *= 1.0 + 0.3 * _osc(sine, _cycles(rng.uniform(0.5, 3), n, sr))
    hum = hum / _rms(hum) * rng.uniform(0.12, 0.35) + fan * rng.uniform(0.0, 0.08)
    slow = 1.0 + rng.uniform(0.0, 0.05) * np.clip(_smooth(rng, n, sr, 0.3), -2, 2)
    return (noise + hum) * slow


def _car_horn(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """A steady stack of harmonics (one or two tones), honked on and off, mostly on."""
    f0 = rng.uniform(300, 520)
    ratio = rng.uniform(1.19, 1.27) if rng.random() < 0.6 else None
    k = _n_harmonics(f0 * (ratio or 1.0), sr, rng.integers(10, 17))
    formant = rng.uniform(1500, 3200)
    freqs = f0 * np.arange(1, k + 1)
    amps = _power_amps(rng, k, 0.5, 1.0) * (1.0 + rng.uniform(1, 3) * np.exp(-((freqs - formant) / 600.0) ** 2))
    table = _harmonic_table(amps, rng.uniform(0, 2 * np.pi, k))
    drift = 1.0 + 0.002 * _smooth(rng, n, sr, 1.0)
    y = _osc(table, _cycles(f0 * drift, n, sr))
    if ratio:
        y += rng.uniform(0.5, 1.0) * _osc(table, _cycles(f0 * ratio * drift, n, sr, rng.random()))
    total = n / sr
    honks = _alternate(rng, total, (0.8, 3.0), (0.06, 0.35), (0.0, 0.08), 0.5 * max_gap)
    return y * _gate(n, sr, honks, rng.uniform(0.01, 0.03))


def _children_playing(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Babble of several high-pitched voices: syllables with glides and vowel formants, some shouts."""
    total = n / sr
    out = np.zeros(n)
    k_max = 10
    for _ in range(int(rng.integers(3, 7))):
        base = rng.uniform(230, 420)
        loud = rng.uniform(0.3, 1.0)
        starts, lens, f_start, glide, gains = [], [], [], [], []
        t = rng.uniform(0.0, 0.4)
        while t < total:
            shout = rng.random() < 0.12
            d = rng.uniform(0.35, 0.8) if shout else rng.uniform(0.08, 0.35)
            starts.append(int(t * sr))
            lens.append(max(16, int(d * sr)))
            f_start.append(base * 2.0 ** (rng.normal(0, 0.2) + (0.7 if shout else 0.0)))
            glide.append(2.0 ** rng.normal(0, 0.3))
            gains.append(rng.uniform(0.5, 1.0) * (1.8 if shout else 1.0))
            t += d + min(rng.uniform(0.02, 0.2) if rng.random() < 0.7 else rng.uniform(0.3, 0.9), max_gap)
        starts_a = np.asarray(starts)
        lens_a = np.minimum(np.asarray(lens), n - starts_a)
        keep = lens_a > 8
        starts_a, lens_a = starts_a[keep], lens_a[keep]
        f_start_a, glide_a, gains_a = (np.asarray(v)[keep] for v in (f_start, glide, gains))
        if not starts_a.size:
            continue
        ids = np.repeat(np.arange(starts_a.size), lens_a)
        local = np.arange(ids.size) - np.repeat(np.cumsum(lens_a) - lens_a, lens_a)
        frac = local / lens_a[ids]
        f0 = f_start_a[ids] * glide_a[ids] ** frac
        f0 *= 1.0 + 0.02 * np.sin(2 * np.pi * 6.0 * local / sr)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        # per-syllable vowel: harmonic amplitudes from two formants
        f1 = rng.uniform(450, 1000, starts_a.size)
        f2 = rng.uniform(1300, 3000, starts_a.size)
        mean_f0 = f_start_a * np.sqrt(glide_a)
        hk = (np.arange(1, k_max + 1)[None, :] * mean_f0[:, None])
        amps = (np.exp(-((hk - f1[:, None]) / 250.0) ** 2) + 0.6 * np.exp(-((hk - f2[:, None]) / 400.0) ** 2)
                + 0.15 / np.arange(1, k_max + 1)[None, :])
        amps[hk > 0.45 * sr] = 0.0
        amps = np.ascontiguousarray(amps.T, dtype=np.float32)
        s1 = np.sin(phase).astype(np.float32)
        c2 = (2.0 * np.cos(phase)).astype(np.float32)
        prev, cur = np.zeros_like(s1), s1
        y = amps[0][ids] * cur
        for k in range(1, k_max):
            prev, cur = cur, c2 * cur - prev          # sin((k+1) phase) by Chebyshev recurrence
            y += amps[k][ids] * cur
        edge = np.minimum(1.0, np.minimum(local, lens_a[ids] - local) / (0.02 * sr))
        y *= (0.5 - 0.5 * np.cos(np.pi * edge)) * gains_a[ids] * loud
        out[starts_a[ids] + local] += y
    out += 0.05 * _rms(out) * _band_noise(rng, n, sr, 300, 4000)
    return out


def _dog_bark(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Short, loud harmonic bursts with a rising-then-falling pitch and a rough noisy edge, in bouts."""
    total = n / sr
    f0 = rng.uniform(320, 800)
    k = _n_harmonics(1.5 * f0, sr, 14)
    formant = rng.uniform(900, 2200)
    hf = f0 * np.arange(1, k + 1)
    amps = _power_amps(rng, k, 0.4, 0.9) * (0.3 + np.exp(-((hf - formant) / 700.0) ** 2))
    table = _harmonic_table(amps, rng.uniform(0, 2 * np.pi, k))
    length = rng.uniform(0.1, 0.25)
    noisiness = rng.uniform(0.08, 0.3)
    growl = rng.uniform(0.1, 0.4)
    onsets = []
    t = min(rng.uniform(0.0, 0.15), max_gap)
    longest = max(max_gap, 1.2 * length)      # onset to onset
    while t < total:
        bout = int(rng.integers(1, 5))
        for j in range(bout):
            onsets.append(t)
            step = length + rng.uniform(0.12, 0.4) + (rng.uniform(0.3, 1.0) if j == bout - 1 else 0.0)
            t += min(step, longest)
    out = np.zeros(n)
    noise = _band_noise(rng, n, sr, 700, 5000)
    for on in onsets:
        i = int(on * sr)
        d = length * rng.uniform(0.8, 1.2)
        m = min(int(d * sr), n - i)
        if m < 16:
            continue
        x = np.arange(m) / m
        fb = f0 * rng.uniform(0.9, 1.1)
        peak = rng.uniform(0.2, 0.4)
        contour = np.interp(x, [0.0, peak, 1.0], [fb * rng.uniform(0.85, 1.0), fb * rng.uniform(1.1, 1.35),
                                                  fb * rng.uniform(0.6, 0.85)])
        cyc = np.cumsum(contour) / sr
        env = np.minimum(1.0, x / 0.06) * np.exp(-x * rng.uniform(2.0, 4.0))
        rough = 1.0 + growl * np.sin(2 * np.pi * rng.uniform(30, 70) * np.arange(m) / sr)
        out[i:i + m] += rng.uniform(0.6, 1.0) * env * rough * (_osc(table, cyc) + noisiness * 2.0 * noise[i:i + m])
    return out


def _drilling(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """A high, nearly steady motor whine with fast rotation ripple over high-band grinding noise."""
    total = n / sr
    f_w = rng.uniform(1500, 3000)
    speed = 1.0 + 0.03 * np.clip(_smooth(rng, n, sr, 2.0), -2, 2)
    runs = _alternate(rng, total, (1.2, 4.0), (0.05, 0.3), (0.0, 0.05), 0.5 * max_gap)
    # spin-up after each (re)start: pitch climbs from ~60 % over ~0.15 s
    t = np.arange(n) / sr
    since = np.full(n, 10.0)
    for a, _ in runs:
        i = int(a * sr)
        since[i:] = t[i:] - a
    speed = speed * (1.0 - 0.4 * np.exp(-since / rng.uniform(0.05, 0.15)))
    k = _n_harmonics(1.1 * f_w, sr, 3)
    amps = np.array([1.0, rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3)])[:k]
    whine = _osc(_harmonic_table(amps), _cycles(f_w * speed, n, sr))
    ripple = 1.0 + rng.uniform(0.3, 0.8) * np.sin(2 * np.pi * np.cumsum(rng.uniform(25, 70) * speed) / sr)
    grind = _band_noise(rng, n, sr, rng.uniform(1800, 3000), rng.uniform(7000, 10000))
    y = (rng.uniform(0.5, 1.0) * whine / _rms(whine) + rng.uniform(0.4, 1.0) * grind) * ripple
    return y * _gate(n, sr, runs, 0.02)


def _engine_idling(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """A low pulsed hum: cylinder firings exciting low resonances, with rumble, all below ~1 kHz."""
    from scipy.fft import irfft, rfft

    total = n / sr
    f_fire = rng.uniform(22, 55)
    n_cyl = int(rng.choice([3, 4, 6, 8]))
    imbalance = 1.0 + rng.uniform(-0.3, 0.3, n_cyl)
    period = 1.0 / f_fire
    count = int(total / period) + 2
    times = np.cumsum(period * (1.0 + 0.02 * rng.standard_normal(count))) - period * rng.random()
    times = times[(times >= 0) & (times < total)]
    onsets = (times * sr).astype(np.int64)
    gains = imbalance[np.arange(onsets.size) % n_cyl]
    train = np.zeros(n)
    np.add.at(train, onsets, gains)
    m = _fft_len(n + sr // 4)                       # room for the resonances to ring out
    spec = rfft(train, m)
    freqs = np.arange(spec.size) * (sr / m)
    z1 = np.exp(-2j * np.pi * np.arange(spec.size) / m)
    spec *= _band(freqs, 20.0, rng.uniform(600, 1100), 2)       # nothing above ~1 kHz
    y = np.zeros(n)
    for f_c, bw, g in ((rng.uniform(60, 160), rng.uniform(20, 50), 1.0),
                       (rng.uniform(200, 450), rng.uniform(40, 100), rng.uniform(0.3, 0.7))):
        # two-pole resonator (1 - r) / (1 - 2 r cos(w0) z^-1 + r^2 z^-2), applied in the frequency domain
        r = np.exp(-np.pi * bw / sr)
        h = (1.0 - r) / (1.0 - 2.0 * r * np.cos(2 * np.pi * f_c / sr) * z1 + r * r * z1 * z1)
        part = irfft(spec * h, m)[:n]
        y += g * part / (_rms(part) + 1e-12)
    rumble = _band_noise(rng, n, sr, 25, rng.uniform(150, 350))
    y += rng.uniform(0.2, 0.5) * rumble
    return y * (1.0 + rng.uniform(0.05, 0.2) * np.clip(_smooth(rng, n, sr, 1.5), -2, 2))


def _gun_shot(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Shots: a sharp broadband crack, a low boom and a decaying noisy tail with an echo."""
    total = n / sr
    m = int(rng.uniform(0.5, 1.0) * sr)
    tt = np.arange(m) / sr
    tau = rng.uniform(0.02, 0.08)
    body = _band_noise(rng, m, sr, 80, rng.uniform(1500, 5000)) * np.exp(-tt / tau)
    crack = _band_noise(rng, m, sr, 500, None) * np.exp(-tt / rng.uniform(0.002, 0.006))
    boom = np.sin(2 * np.pi * rng.uniform(50, 120) * tt) * np.exp(-tt / rng.uniform(0.04, 0.12))
    tail = _band_noise(rng, m, sr, 100, 3000) * np.exp(-tt / rng.uniform(0.15, 0.35)) * rng.uniform(0.02, 0.06)
    kernel = 1.2 * crack + body + rng.uniform(0.3, 0.8) * boom + tail
    kernel *= np.minimum(1.0, tt / 0.0005)
    delay = int(rng.uniform(0.06, 0.25) * sr)
    kernel[delay:] += rng.uniform(0.15, 0.35) * kernel[: m - delay]
    volley = rng.random() < 0.3

    def gap() -> float:
        if volley and rng.random() < 0.6:
            return min(rng.uniform(0.15, 0.3), max_gap)
        return min(rng.uniform(0.5, 1.4), max_gap)

    onsets = _onsets(total, gap, min(rng.uniform(0.01, 0.15), max_gap))
    return _place(n, kernel, (onsets * sr).astype(np.int64), rng.uniform(0.6, 1.0, onsets.size))


def _jackhammer(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Fast periodic impacts (10-22 per second) with a metallic ring, in long runs with short pauses."""
    total = n / sr
    rate = rng.uniform(10, 22)
    m = int(sr / rate)
    tt = np.arange(m) / sr
    hit = _band_noise(rng, m, sr, 300, None) * np.exp(-tt / rng.uniform(0.004, 0.012))
    ring = sum(np.sin(2 * np.pi * min(rng.uniform(900, 4000), 0.4 * sr) * tt) * np.exp(-tt / rng.uniform(0.006, 0.02))
               for _ in range(int(rng.integers(2, 5))))
    thud = np.sin(2 * np.pi * rng.uniform(60, 150) * tt) * np.exp(-tt / 0.015)
    kernel = hit + rng.uniform(0.2, 0.6) * ring + rng.uniform(0.2, 0.6) * thud
    runs = _alternate(rng, total, (1.5, 5.0), (0.1, 0.35), (0.0, 0.05), 0.5 * max_gap)
    times = np.arange(0.0, total, 1.0 / rate)
    times = times + rng.normal(0, 0.03 / rate, times.size)
    inside = np.zeros(times.size, dtype=bool)
    for a, b in runs:
        inside |= (times >= a) & (times < b)
    times = times[inside]
    y = _place(n, kernel, (times * sr).astype(np.int64), rng.uniform(0.7, 1.0, times.size))
    hiss = _band_noise(rng, n, sr, 2000, 8000) * rng.uniform(0.02, 0.08) * _rms(y)
    return y + hiss


def _siren(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """A slow frequency sweep (wail, 2-5.5 s per cycle) or a fast one (yelp, 0.15-0.35 s)."""
    t = np.arange(n) / sr
    yelp = rng.random() < 0.35
    f_lo = rng.uniform(450, 800)
    f_hi = f_lo * rng.uniform(1.7, 2.4)
    period = rng.uniform(0.15, 0.35) if yelp else rng.uniform(2.0, 5.5)
    rise = rng.uniform(0.45, 0.8)
    pos = (t / period + rng.random()) % 1.0
    lin = np.where(pos < rise, pos / rise, (1.0 - pos) / (1.0 - rise))
    curve = 0.5 * lin + 0.5 * (0.5 - 0.5 * np.cos(np.pi * lin))
    doppler = 1.0 + 0.02 * np.clip(_smooth(rng, n, sr, 0.2), -2, 2)
    freq = (f_lo + (f_hi - f_lo) * curve) * doppler
    k = _n_harmonics(f_hi * 1.05, sr, int(rng.integers(3, 7)))
    amps = _power_amps(rng, k, 0.7, 1.8)
    if rng.random() < 0.5:
        amps[1::2] *= rng.uniform(0.1, 0.5)         # square-ish electronic siren
    return _osc(_harmonic_table(amps), _cycles(freq, n, sr))


def _street_music(rng: np.random.Generator, n: int, sr: int, *, max_gap: float = math.inf) -> np.ndarray:
    """Notes and chords: a strummed or held chord progression, a bass line, a melody, maybe drums."""
    total = n / sr
    beat = 60.0 / rng.uniform(80, 150)
    root = int(rng.integers(48, 60))
    scale = np.array([0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10])
    progressions = ([0, 4, 5, 3], [0, 3, 4, 0], [5, 3, 0, 4], [0, 5, 3, 4], [0, 3, 0, 4])
    prog = progressions[int(rng.integers(len(progressions)))]
    bar = 4 * beat

    def degree(d: int) -> int:
        return root + 12 * (d // 7) + int(scale[d % 7])

    def tone(amps: np.ndarray) -> np.ndarray:
        return _harmonic_table(amps / np.abs(amps).sum(), rng.uniform(0, 2 * np.pi, amps.size))

    out = np.zeros(n)

    def add(table: np.ndarray, midi: float, start: float, dur: float, gain: float, decay: float | None,
            vibrato: float = 0.0) -> None:
        i = int(start * sr)
        m = min(int(dur * sr), n - i)
        if m < 16 or i < 0:
            return
        f = float(_midi_hz(midi))
        if f > 0.45 * sr:
            return
        tt = np.arange(m) / sr
        cyc = f * tt if not vibrato else np.cumsum(f * (1.0 + vibrato * np.sin(2 * np.pi * 5.5 * tt))) / sr
        env = np.minimum(1.0, tt / 0.008) * np.minimum(1.0, (m - np.arange(m)) / (0.03 * sr))
        if decay:
            env *= np.exp(-tt / decay)
        out[i:i + m] += gain * env * _osc(table, cyc + rng.random())

    def harmonics(f_top: float, k: int, lo: float, hi: float) -> np.ndarray:
        return _power_amps(rng, _n_harmonics(f_top, sr, k), lo, hi)

    chord_table = tone(harmonics(_midi_hz(root + 24), 8, 0.8, 1.6))
    plucked = rng.random() < 0.6
    strum = beat if rng.random() < 0.5 else 2 * beat
    lead_table = tone(harmonics(_midi_hz(root + 42), 8, 0.6, 2.2))
    bass_table = tone(harmonics(_midi_hz(root), 6, 1.0, 2.0))
    t0 = -rng.uniform(0, bar)
    b = 0
    while t0 + b * bar < total:
        start = t0 + b * bar
        d = prog[b % len(prog)]
        notes = [degree(d), degree(d + 2), degree(d + 4)]
        if plucked:
            s = 0.0
            while s < bar - 1e-9:
                for j, note in enumerate(notes):
                    add(chord_table, note, start + s + 0.012 * j, strum + 0.4, 0.5, rng.uniform(0.3, 0.8))
                s += strum
        else:
            for note in notes:
                add(chord_table, note, start, bar, 0.35, None, vibrato=0.003)
        n_bass = 4 if rng.random() < 0.5 else 2
        for q in range(n_bass):
            step = bar / n_bass
            add(bass_table, degree(d) - 12, start + q * step, step * 0.9, 0.6, 0.5)
        b += 1
    # melody: a random walk on the scale, eighths and quarters, some rests
    d_mel = int(rng.integers(7, 12))
    t = rng.uniform(0, beat)
    while t < total:
        dur = beat * (0.5 if rng.random() < 0.6 else 1.0)
        if rng.random() > 0.15:
            d_mel = int(np.clip(d_mel + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 5, 16))
            add(lead_table, degree(d_mel) + 12, t, dur * 0.95, 0.5, None, vibrato=0.006)
        t += dur
    if rng.random() < 0.4:
        kick_m = int(0.2 * sr)
        kt = np.arange(kick_m) / sr
        kick = np.sin(2 * np.pi * np.cumsum(50 + 70 * np.exp(-kt / 0.03)) / sr) * np.exp(-kt / 0.08)
        beats = np.arange(rng.uniform(0, beat), total, beat)
        out += 0.4 * _place(n, kick, (beats * sr).astype(np.int64), np.ones(beats.size))
    return out

SOUND_MODELS: Mapping[str, SoundModel] = {
    "air_conditioner": _air_conditioner,
    "car_horn": _car_horn,
    "children_playing": _children_playing,
    "dog_bark": _dog_bark,
    "drilling": _drilling,
    "engine_idling": _engine_idling,
    "gun_shot": _gun_shot,
    "jackhammer": _jackhammer,
    "siren": _siren,
    "street_music": _street_music,
}

"""Class name -> sound model ``model(rng, n, sr, *, max_gap=math.inf) -> ndarray`` (foreground only, any scale)."""


def render_scene(label: str, rng: np.random.Generator, n: int, sr: int, *,
            max_gap: float = math.inf) -> tuple[np.ndarray, float]:
    """Foreground of class ``label`` + coloured background, peak-normalised.

    Returns
    -------
    audio : np.ndarray, shape (n,), float32
    snr_db : float
        The drawn signal-to-noise ratio of foreground to background, in dB.
    """
    try:
        model = SOUND_MODELS[label]
    except KeyError:
        raise ConfigError(f"unknown sound class {label!r}; expected one of {', '.join(SOUND_MODELS)}") from None
    fg = np.asarray(model(rng, n, sr, max_gap=max(float(max_gap), 0.1)), dtype=np.float64)
    fg = fg / (_rms(fg) + 1e-12)
    # the source moves: slow loudness drift of up to +-6 dB
    fg *= 10.0 ** (rng.uniform(0.0, 6.0) * np.clip(_smooth(rng, n, sr, rng.uniform(0.1, 0.4)), -1.5, 1.5) / 30.0)
    snr_db = float(rng.uniform(6.0, 24.0))
    bg = _colored_noise(rng, n, sr, rng.uniform(0.3, 1.8)) * (_rms(fg) * 10.0 ** (-snr_db / 20.0))
    y = fg + bg
    y *= rng.uniform(0.3, 0.9) / (np.max(np.abs(y)) + 1e-12)
    return y.astype(np.float32), snr_db


def render_recording(label: str, rng: np.random.Generator, *, seconds: float, sr: int,
                     max_gap: float | None = None) -> np.ndarray:
    """Render one recording of class ``label``.

    The sound model ``SOUND_MODELS[label]`` draws its own parameters from ``rng``;
    a coloured background noise (spectral slope and SNR drawn from ``rng``) is
    added and the result is peak-normalised to a drawn level in ``[0.3, 0.9]``.

    Parameters
    ----------
    label : str
        An UrbanSound8K class name (a key of :data:`SOUND_MODELS`).
    rng : numpy.random.Generator
        Source of every random draw; the same generator state gives the same audio.
    seconds : float
        Length in seconds (positive).
    sr : int
        Sample rate in Hz.
    max_gap : float, optional
        Longest pause in seconds between the events of event-like sounds (barks,
        shots, honks, drill runs); ``None`` keeps each model's natural pauses.
        :func:`generate_corpus` sets it below the shortest slice so that every
        slice holds its class's sound.

    Returns
    -------
    numpy.ndarray
        Mono float32 samples in ``[-1, 1]``, ``round(seconds * sr)`` of them.

    Raises
    ------
    ConfigError
        For an unknown label, a non-positive length or ``max_gap``, or a sample
        rate outside 8000-96000 Hz.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not 8000 <= sr <= 96000:
        raise ConfigError(f"sr must be an integer sample rate between 8000 and 96000 Hz, got {sr!r}")
    try:
        n = int(round(float(seconds) * sr))
    except (TypeError, ValueError, OverflowError):
        n = 0
    if n < 16:
        raise ConfigError(f"seconds must give at least 16 samples at sr={sr}, got {seconds!r}")
    if max_gap is None:
        max_gap = math.inf
    elif isinstance(max_gap, bool) or not isinstance(max_gap, (int, float, np.integer, np.floating)) \
            or not max_gap > 0:
        raise ConfigError(f"max_gap must be a positive number of seconds or None, got {max_gap!r}")
    return render_scene(label, rng, n, int(sr), max_gap=float(max_gap))[0]
