"""Audio loading: any format soundfile reads, to mono at a target rate and fixed length."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import AudioError

__all__ = ["load_audio", "fix_duration", "SILENCE_PEAK"]

#: Peak amplitude below which a clip counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5


def fix_duration(y: np.ndarray, *, sr: int, duration: float | None) -> np.ndarray:
    """Zero-pad at the end or trim ``y`` to exactly ``duration`` seconds (``None``: unchanged)."""
    if duration is None:
        return y
    n = int(round(sr * duration))
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = np.zeros(y.shape[:-1] + (n - y.shape[-1],), dtype=y.dtype)
    return np.concatenate([y, pad], axis=-1)


def _check_file(path: Path) -> None:
    """Raise :class:`AudioError` with the plain reason when ``path`` is not a readable, non-empty file
    (libsndfile reports an unreadable file as "System error.")."""
    if not path.exists():
        raise AudioError(f"{path}: a link that loops or leads nowhere" if path.is_symlink()
                         else f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, expected an audio file")
    try:
        with open(path, "rb") as fh:
            empty = not fh.read(1)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file: {(exc.strerror or str(exc)).lower()}") from None
    if empty:
        raise AudioError(f"{path}: empty file (0 bytes)")


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data.T, int(sr)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_exc:
        # Formats libsndfile lacks (some mp3/m4a) go through librosa/audioread.
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, sr = librosa.load(str(path), sr=None, mono=False)
            return np.atleast_2d(y).astype(np.float32), int(sr)
        except Exception:
            raise AudioError(f"{path}: not a readable audio file ({sf_exc})") from None


def load_audio(
    path: str | os.PathLike,
    *,
    sr: int = 22050,
    duration: float | None = 4.0,
    allow_silent: bool = False,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz, padded or trimmed to ``duration`` s.

    Parameters
    ----------
    path : path-like
        Any file soundfile (libsndfile) reads: WAV/FLAC/OGG/AIFF at any rate and
        bit depth; other formats fall back to librosa/audioread.
    sr : int
        Target sample rate; resampled with soxr (high quality) when it differs.
    duration : float or None
        Output length in seconds; shorter clips are zero-padded at the end.
    allow_silent : bool
        Accept all-silent clips instead of raising.

    Raises
    ------
    AudioError
        The file is missing, unreadable, not audio, empty, non-finite, or silent.
    """
    path = Path(path)
    _check_file(path)
    data, file_sr = _read(path)
    if data.shape[-1] == 0:
        raise AudioError(f"{path}: zero-length audio (0 samples)")
    y = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK and not allow_silent:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")
    if file_sr != sr:
        import soxr

        y = soxr.resample(y, file_sr, sr, quality="HQ")
    return np.ascontiguousarray(fix_duration(y.astype(np.float32, copy=False), sr=sr, duration=duration))
