"""Signal primitives of the synthetic sound models: shaped and band-limited noise, wavetable oscillators,
gates, onsets and placement of kernels (pure numpy, seeded by the caller's generator).
"""

from __future__ import annotations

import math
from typing import Callable, overload

import numpy as np

__all__ = []


_TABLE_SIZE = 4096


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _fft_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return next_fast_len(max(int(n), 2), real=True)


def _shape_noise(rng: np.random.Generator, n: int, sr: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(freqs)``, unit RMS.

    The spectrum of white Gaussian noise is drawn directly (independent complex
    Gaussian bins), which saves the forward FFT.
    """
    from scipy.fft import irfft

    m = _fft_len(n)
    spec = rng.standard_normal(2 * (m // 2 + 1), dtype=np.float32).view(np.complex64)
    freqs = np.arange(spec.size, dtype=np.float32) * np.float32(sr / m)
    spec *= gain(freqs).astype(np.float32)
    spec[0] = 0.0
    y = irfft(spec, m)[:n].astype(np.float64)
    return y / (_rms(y) + 1e-12)


def _colored_noise(rng: np.random.Generator, n: int, sr: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    return _shape_noise(rng, n, sr, lambda f: np.maximum(f, 20.0) ** (-exponent / 2))


def _band(f: np.ndarray, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    """Butterworth-like magnitude response of a band-pass (``None`` leaves that side open)."""
    g = np.ones_like(f)
    if lo is not None:
        g = g / np.sqrt(1.0 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    if hi is not None:
        g = g / np.sqrt(1.0 + (f / hi) ** (2 * order))
    return g


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float | None, hi: float | None,
                order: int = 2) -> np.ndarray:
    hi = None if hi is None else min(hi, 0.45 * sr)
    return _shape_noise(rng, n, sr, lambda f: _band(f, lo, hi, order))


def _smooth(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """A smooth random curve (about N(0, 1)) with about ``rate`` new values per second."""
    step = 64
    grid = np.arange(0, n + step, step)
    pos = grid * (rate / sr)
    knots = rng.standard_normal(int(pos[-1]) + 2)
    i = pos.astype(np.int64)
    w = 0.5 - 0.5 * np.cos(np.pi * (pos - i))
    return np.interp(np.arange(n), grid, knots[i] * (1.0 - w) + knots[i + 1] * w)


def _harmonic_table(amps: np.ndarray, phases: np.ndarray | None = None) -> np.ndarray:
    """One period of ``sum_k amps[k-1] sin(2 pi k t + phases[k-1])``, with a wrap sample."""
    t = np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
    k = np.arange(1, len(amps) + 1)[:, None]
    ph = np.zeros(len(amps)) if phases is None else np.asarray(phases)
    return (np.asarray(amps)[:, None] * np.sin(2 * np.pi * k * t + ph[:, None])).sum(axis=0)


def _osc(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Wavetable oscillator: ``cycles`` is the running phase in periods."""
    pos = (cycles - np.floor(cycles)) * _TABLE_SIZE
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] + frac * (table[i + 1] - table[i])


def _cycles(freq: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Running phase (in periods) of a possibly time-varying frequency."""
    if np.ndim(freq) == 0:
        return phase0 + float(freq) * np.arange(n) / sr
    return phase0 + np.cumsum(freq) / sr


def _n_harmonics(f_max: float, sr: int, wanted: int | np.integer) -> int:
    """How many harmonics of ``f_max`` stay below 0.45 * sr (at least 1)."""
    return max(1, min(int(wanted), int(0.45 * sr / max(f_max, 1.0))))


def _power_amps(rng: np.random.Generator, k: int, lo: float, hi: float) -> np.ndarray:
    return np.arange(1, k + 1) ** -rng.uniform(lo, hi)


def _alternate(rng: np.random.Generator, total: float, on: tuple[float, float], off: tuple[float, float],
               first: tuple[float, float] = (0.0, 0.1), max_off: float = math.inf) -> list[tuple[float, float]]:
    """On-intervals (seconds) of an on/off pattern covering ``[0, total]``; pauses last at most ``max_off``."""
    out = []
    t = min(rng.uniform(*first), max_off)
    while t < total:
        d = rng.uniform(*on)
        out.append((t, min(t + d, total)))
        t += d + min(rng.uniform(*off), max_off)
    return out


def _gate(n: int, sr: int, intervals: list[tuple[float, float]], ramp: float) -> np.ndarray:
    """0/1 envelope with raised-cosine ramps of ``ramp`` seconds at every edge."""
    env = np.zeros(n)
    r = max(1, int(ramp * sr))
    for a, b in intervals:
        i, j = int(a * sr), min(n, int(b * sr))
        if j - i < 2:
            continue
        k = min(r, (j - i) // 2)
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        env[i:j] = 1.0
        env[i:i + k] = edge
        env[j - k:j] = edge[::-1]
    return env


def _place(n: int, kernel: np.ndarray, onsets: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Sum of ``gains[i] * kernel`` started at sample ``onsets[i]`` (via FFT convolution)."""
    from scipy.fft import irfft, rfft

    train = np.zeros(n)
    ok = (onsets >= 0) & (onsets < n)
    np.add.at(train, onsets[ok], gains[ok])
    m = _fft_len(n + kernel.size)
    return irfft(rfft(train, m) * rfft(kernel, m), m)[:n]


def _onsets(total: float, gap: Callable[[], float], first: float) -> np.ndarray:
    t, out = first, []
    while t < total:
        out.append(t)
        t += gap()
    return np.asarray(out)


@overload
def _midi_hz(m: float) -> float: ...
@overload
def _midi_hz(m: np.ndarray) -> np.ndarray: ...
def _midi_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(m) - 69.0) / 12.0)
