"""Audio -> pictures: spectrograms, waveform plots, merged and stacked pictures.

Renderers are pure numpy functions of a mono signal and a :class:`~soundlib.pictures.variants.FeatureSpec`;
they return ``uint8`` arrays of shape ``(H, W, 3)``. Colour maps are 256-entry
lookup tables (matplotlib is imported once to build a table, never to draw a
figure). Files are written elsewhere (:mod:`soundlib.pictures.featurize`).
"""

from __future__ import annotations

import functools
import zlib
from typing import Callable

import numpy as np

from soundlib.errors import FeatureError
from soundlib.pictures.merge import merge_channels, stack_panels
from soundlib.pictures.variants import FeatureSpec

__all__ = [
    "empty_mel_bands",
    "empty_mel_warning",
    "spectrogram_plane",
    "spectrogram_frequencies",
    "waveform_plane",
    "render_spectrogram",
    "render_waveform",
    "render_merged",
    "render_stacked",
    "render",
    "colormap_lut",
    "rendering_fields",
]


# ---------------------------------------------------------------------------
# Planes: float arrays in [0, 1]

@functools.lru_cache(maxsize=32)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    """librosa's (Slaney) mel filterbank as a sparse CSR matrix.

    About 2 000 of its 131 000 entries are non-zero: the sparse product is ~10x
    faster than a dense BLAS call and needs no BLAS threads (which thrash when
    several featurizing workers share the cores). Computed in numpy
    (:func:`slaney_mel_filters`): importing librosa for it took seconds of a cold
    ``soundlib predict``.
    """
    import scipy.sparse

    return scipy.sparse.csr_matrix(slaney_mel_filters(sr, n_fft, n_mels, fmin, fmax).astype(np.float32))


def _hz_to_slaney_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    step, log_step, min_log_hz = 200.0 / 3, np.log(6.4) / 27.0, 1000.0
    return np.where(hz >= min_log_hz, min_log_hz / step + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / log_step,
                    hz / step)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    step, log_step, min_log_hz = 200.0 / 3, np.log(6.4) / 27.0, 1000.0
    min_log_mel = min_log_hz / step
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(log_step * (mel - min_log_mel)), step * mel)


def slaney_mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """The mel filterbank ``librosa.filters.mel`` makes by default (Slaney scale and area normalisation).

    Returns
    -------
    np.ndarray, shape (n_mels, 1 + n_fft // 2), float64
        Triangular filters over the STFT bins; row k peaks at the k-th of ``n_mels + 2`` frequencies
        equally spaced in mel between ``fmin`` and ``fmax`` (default ``sr / 2``), scaled to unit area.
    """
    fmax = sr / 2 if fmax is None else float(fmax)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(fmin), _hz_to_slaney_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def empty_mel_bands(spec: FeatureSpec) -> list[int]:
    """The mel bands of ``spec`` that no STFT bin falls in (all-zero filters, drawn as black stripes): too many
    ``n_mels`` for the frequency resolution ``sr / n_fft`` (librosa warns "Empty filters detected"). Empty for a
    linear spectrogram or a waveform plot."""
    if spec.kind == "waveform" or spec.frequency != "mel":
        return []
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    weights = slaney_mel_filters(spec.sr, spec.n_fft, spec.n_mels, float(spec.fmin), float(fmax))
    return [int(k) for k in np.flatnonzero(weights.max(axis=1) <= 0)]


def empty_mel_warning(spec: FeatureSpec) -> str | None:
    """One line naming the empty mel bands of ``spec`` and what to change, or ``None`` when there are none."""
    empty = empty_mel_bands(spec)
    if not empty:
        return None
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(np.asarray(spec.fmin, np.float64)),
                                          _hz_to_slaney_mel(np.asarray(fmax, np.float64)), spec.n_mels + 2))
    shown = ", ".join(map(str, empty[:8])) + (f" ... ({len(empty)} in all)" if len(empty) > 8 else "")
    return (f"variant {spec.name!r}: {len(empty)} of its {spec.n_mels} mel bands are empty (band {shown}; centres "
            f"{edges[empty[0] + 1]:.0f}-{edges[empty[-1] + 1]:.0f} Hz) and draw as black stripes: n_fft "
            f"{spec.n_fft} at {spec.sr} Hz gives one frequency bin every {spec.sr / spec.n_fft:.0f} Hz, too coarse "
            "for those narrow bands; lower n_mels or raise n_fft")


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann


def _power_stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2, centred frames with zero padding (librosa's defaults), shape (1 + n_fft//2, frames)."""
    pad = n_fft // 2
    yp = np.pad(np.asarray(y, dtype=np.float32), pad, mode="constant")
    if yp.shape[0] < n_fft:
        yp = np.pad(yp, (0, n_fft - yp.shape[0]))
    import scipy.fft

    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop_length]
    spec = scipy.fft.rfft(frames * _window(n_fft), axis=-1)  # float32 in, complex64 out
    return np.ascontiguousarray((spec.real**2 + spec.imag**2).T, dtype=np.float32)


#: Peak sample magnitude above which :func:`spectrogram_plane` divides the signal by its peak first (the plane
#: is relative to its own maximum, so only float32 overflow changes: the power of samples about 1e15 is inf).
_RESCALE_ABOVE = 1e4


def spectrogram_plane(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """The spectrogram as a float32 (freq, frames) array in [0, 1], low frequencies first."""
    y = np.asarray(y, dtype=np.float32)
    loudest = float(np.max(np.abs(y))) if y.size else 0.0
    if not np.isfinite(loudest):
        raise FeatureError("spectrogram: the signal holds NaN or infinite samples")
    if loudest > _RESCALE_ABOVE:
        y = y / np.float32(loudest)
    power = _power_stft(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    if spec.frequency == "mel":
        S = np.asarray(_mel_basis(spec.sr, spec.n_fft, spec.n_mels, float(spec.fmin), float(fmax)) @ power)
    else:
        freqs = np.linspace(0, spec.sr / 2, power.shape[0])
        S = power[(freqs >= spec.fmin) & (freqs <= fmax)]
    peak = float(S.max()) if S.size else 0.0
    if peak <= 0:
        return np.zeros(S.shape, dtype=np.float32)
    if spec.scale == "db":
        db = 10.0 * np.log10(np.maximum(S, peak * 1e-10) / peak)  # 0 dB at the clip's maximum
        return np.clip(1.0 + db / spec.top_db, 0.0, 1.0).astype(np.float32)
    return (np.sqrt(S) / np.sqrt(peak)).astype(np.float32)  # non-log amplitude


def spectrogram_frequencies(spec: FeatureSpec) -> np.ndarray:
    """The frequency in Hz of each row of :func:`spectrogram_plane` (mel band centres, or STFT bins).

    Returns
    -------
    np.ndarray, shape (n_rows,), float64, increasing
    """
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    if spec.frequency == "mel":
        import librosa

        return librosa.mel_frequencies(spec.n_mels + 2, fmin=spec.fmin, fmax=fmax)[1:-1]
    freqs = np.linspace(0, spec.sr / 2, 1 + spec.n_fft // 2)
    return freqs[(freqs >= spec.fmin) & (freqs <= fmax)]


def _resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D float plane, turned so that row 0 is the top (high frequency)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(plane[::-1], dtype=np.float32), mode="F")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def waveform_plane(y: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """A min/max waveform plot as a (height, width) mask in {0, 1}, scaled to the clip's peak."""
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    y = y / peak if peak > 0 else y
    edges = np.linspace(0, y.shape[0], width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, y.shape[0])
    yp = np.append(y, 0.0)
    lo = np.minimum.reduceat(yp, edges[:-1])
    hi = np.maximum.reduceat(yp, edges[:-1])
    top = np.floor((1.0 - hi) * 0.5 * (height - 1)).astype(int)
    bottom = np.ceil((1.0 - lo) * 0.5 * (height - 1)).astype(int)
    rows = np.arange(height)[:, None]
    return ((rows >= top[None, :]) & (rows <= bottom[None, :])).astype(np.float32)


# ---------------------------------------------------------------------------
# Pictures: uint8 (H, W, 3)

@functools.lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a matplotlib colormap name."""
    if name in ("gray", "grey", "Greys_r"):
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    try:
        from matplotlib import colormaps
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise FeatureError(f"colormap {name!r} needs matplotlib") from None
    try:
        cmap = colormaps[name]
    except KeyError:
        raise FeatureError(f"unknown colormap {name!r}; use a matplotlib colormap name such as magma, viridis, gray") from None
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    return np.ascontiguousarray((rgba[:, :3] * 255.0 + 0.5).astype(np.uint8))


def _apply_lut(plane: np.ndarray, name: str) -> np.ndarray:
    idx = (np.clip(plane, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return colormap_lut(name)[idx]


def render_spectrogram(y: np.ndarray, *, spec: FeatureSpec, height: int | None = None) -> np.ndarray:
    """A coloured spectrogram picture (``spec.colormap``), low frequencies at the bottom."""
    plane = _resize(spectrogram_plane(y, spec=spec), height or spec.height, spec.width)
    return _apply_lut(plane, spec.colormap)


def render_waveform(y: np.ndarray, *, spec: FeatureSpec, height: int | None = None) -> np.ndarray:
    """A waveform plot: ``waveform_color`` on ``background_color``."""
    mask = waveform_plane(y, height=height or spec.height, width=spec.width)[..., None]
    fg = np.asarray(spec.waveform_color, dtype=np.float32)
    bg = np.asarray(spec.background_color, dtype=np.float32)
    return (bg + mask * (fg - bg) + 0.5).astype(np.uint8)


def _clip_seed(y: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(y, dtype=np.float32).tobytes())


def render_merged(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Spectrogram and waveform as channels of one picture (:func:`~soundlib.pictures.merge.merge_channels`).

    The jitter of the strengths is seeded by ``spec.merge.seed`` and the clip's
    samples, so one clip always gives the same picture.
    """
    planes = {
        "spectrogram": _resize(spectrogram_plane(y, spec=spec), spec.height, spec.width),
        "waveform": waveform_plane(y, height=spec.height, width=spec.width),
    }
    return merge_channels(planes, spec=spec.merge, clip_seed=_clip_seed(y) if spec.merge.jitter else 0)


def render_stacked(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Spectrogram panel on top of a waveform panel, ``merge.stack_ratio`` of the height on top."""
    top_h = max(1, min(spec.height - 1, int(round(spec.height * spec.merge.stack_ratio))))
    return stack_panels(
        render_spectrogram(y, spec=spec, height=top_h),
        render_waveform(y, spec=spec, height=spec.height - top_h),
    )


_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "spectrogram": render_spectrogram,
    "waveform": render_waveform,
    "merged": render_merged,
    "stacked": render_stacked,
}


def rendering_fields(spec: FeatureSpec) -> frozenset[str]:
    """The rendering parameters a picture of ``spec`` depends on (``merge.*`` for the MergeSpec's fields).

    Besides ``sr``, ``duration``, ``height`` and ``width``, which every picture uses: a waveform plot
    has no spectrogram parameters, a merged picture puts the spectrogram's values in a channel (no
    colormap), a linear-frequency spectrogram has no mel bands, an amplitude one no ``top_db``. The
    explorer (:class:`soundlib.lab.trials.TrialsUI`) disables the controls of the others.
    """
    spectrogram = {"n_fft", "hop_length", "frequency", "fmin", "fmax", "scale"}
    if spec.frequency == "mel":
        spectrogram.add("n_mels")
    if spec.scale == "db":
        spectrogram.add("top_db")
    waveform = {"waveform_color", "background_color"}
    fields = {
        "spectrogram": spectrogram | {"colormap"},
        "waveform": waveform,
        "merged": spectrogram | {"merge.order", "merge.strengths", "merge.jitter", "merge.seed"},
        "stacked": spectrogram | {"colormap"} | waveform | {"merge.stack_ratio"},
    }[spec.kind]
    return frozenset(fields)


def render(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Render mono audio as the picture ``spec`` describes.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono samples at ``spec.sr`` Hz (any length; the picture spans all of them).
    spec : FeatureSpec

    Returns
    -------
    np.ndarray, shape (spec.height, spec.width, 3), dtype uint8
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise FeatureError(f"render needs a non-empty 1-D signal, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise FeatureError("render needs finite samples; the signal holds NaN or infinite values")
    return _RENDERERS[spec.kind](y, spec=spec)
