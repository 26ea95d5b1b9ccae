"""MFCC statistics as an embedder: the classic control's features behind the same seam.

Per window of the variant (``duration``, ``window_hop``; no padding: a short clip's statistics are
over its own audio): ``basic`` = 40 MFCCs and their deltas, mean and standard deviation over time
(160 numbers); ``rich`` adds second deltas, more statistics and spectral descriptors. The statistics
*are* the embedding, so they share the embedding cache (identity ``mfcc:<features>:<n_mfcc>:1``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.errors import ConfigError
from soundlib.embedders.base import Windowing, chunked, register_embedder

__all__ = ["FEATURE_SETS", "MfccEmbedder", "mfcc_statistics"]

FEATURE_SETS = ("basic", "rich")


@functools.lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    basis.setflags(write=False)
    return basis


def _melspectrogram(power: np.ndarray, *, sr: int, n_mels: int) -> np.ndarray:
    """``librosa.feature.melspectrogram(S=power, sr=sr, n_mels=n_mels)``, the same numbers, with the mel
    filterbank made once per (sr, n_fft, n_mels) instead of once per window (it cost as much as the rest)."""
    basis = _mel_basis(int(sr), 2 * (power.shape[-2] - 1), int(n_mels))
    return np.einsum("...ft,mf->...mt", power, basis, optimize=True)


def mfcc_statistics(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mfcc: int = 40,
                    features: str = "basic") -> np.ndarray:
    """Summary statistics of MFCCs (and more, for ``"rich"``) over one window.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio at ``sr`` Hz.

    Returns
    -------
    np.ndarray, shape (4 * n_mfcc,) for "basic", float32
    """
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about n_fft on very short windows
        y = np.asarray(y, dtype=np.float32)
        if y.size < n_fft:
            y = np.pad(y, (0, n_fft - y.size))
        power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2
        mel = _melspectrogram(power, sr=sr, n_mels=128)
        mf = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n_mfcc)
        width = min(9, mf.shape[1] if mf.shape[1] % 2 else mf.shape[1] - 1)
        d1 = librosa.feature.delta(mf, width=max(3, width)) if mf.shape[1] >= 3 else np.zeros_like(mf)
        if features == "basic":
            out = np.concatenate([mf.mean(1), mf.std(1), d1.mean(1), d1.std(1)])
        else:
            import scipy.stats

            d2 = (librosa.feature.delta(mf, order=2, width=max(3, width)) if mf.shape[1] >= 3
                  else np.zeros_like(mf))
            mag = np.sqrt(power)

            def stats(f):
                return np.concatenate([f.mean(1), f.std(1), f.min(1), f.max(1), np.median(f, 1),
                                       scipy.stats.skew(f, 1), scipy.stats.kurtosis(f, 1)])

            extra = np.vstack([librosa.feature.spectral_contrast(S=mag, sr=sr),
                               librosa.feature.spectral_centroid(S=mag, sr=sr) / 1000,
                               librosa.feature.spectral_bandwidth(S=mag, sr=sr) / 1000,
                               librosa.feature.spectral_rolloff(S=mag, sr=sr) / 1000,
                               librosa.feature.spectral_flatness(S=mag),
                               librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length),
                               librosa.feature.rms(S=mag),
                               librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)])
            lm = librosa.power_to_db(_melspectrogram(power, sr=sr, n_mels=64))
            out = np.concatenate([stats(mf), stats(d1), stats(d2), stats(extra), lm.mean(1), lm.std(1)])
    return np.nan_to_num(out.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class MfccEmbedder:
    """MFCC statistics of every window of the variant (see the module docstring)."""

    n_mfcc: int = 40
    features: str = "basic"
    name: str = "mfcc"
    modality: str = "waveform"
    license: str = "none (hand-made features, no learned weights)"
    #: Its windows are the variant's, but a short clip's statistics are over its own audio (no padding).
    pads_short_clips = False

    def __post_init__(self) -> None:
        if self.features not in FEATURE_SETS:
            raise ConfigError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        if not 1 <= self.n_mfcc <= 128:
            raise ConfigError(f"n_mfcc must be in [1, 128], got {self.n_mfcc}")

    @property
    def identity(self) -> str:
        return f"mfcc:{self.features}:{self.n_mfcc}:1"

    @property
    def output_dim(self) -> int:
        return 4 * self.n_mfcc if self.features == "basic" else len(self(np.zeros((1, 22050), np.float32))[0])

    def is_ready(self) -> bool:
        return True

    def window(self, spec: Windowing) -> Windowing:
        """The variant (its key is the cache key of soundlib 0.2's ``mfcc`` method: entries stay valid)."""
        return spec

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """The statistics of every window, in chunks of (k, dim) float32 (computed here: loading is free),
        streamed from the file (a window's audio at a time)."""
        from soundlib.audio.clips import stream_windows

        n = window.n_samples
        windows = stream_windows(path, sr=window.sr, duration=n / window.sr, hop=window.hop_seconds, pad="none",
                                 starts="audio")
        return chunked(self.prepare_window(y, window) for _, y in windows)

    def prepare_window(self, audio: np.ndarray, window: Windowing) -> np.ndarray:
        """The statistics of one window of audio at ``window.sr`` (what a model on MFCC labels)."""
        n_fft, hop_length = getattr(window, "n_fft", 2048), getattr(window, "hop_length", 512)
        return mfcc_statistics(audio, sr=window.sr, n_fft=n_fft, hop_length=hop_length, n_mfcc=self.n_mfcc,
                               features=self.features)

    def load(self) -> "MfccEmbedder":
        return self

    def __call__(self, batch: np.ndarray, *, batch_size: int = 0) -> np.ndarray:
        """The statistics are the embedding."""
        return np.asarray(batch, dtype=np.float32)


register_embedder("mfcc", lambda name, options: MfccEmbedder(), modality="waveform",
                  license="none (hand-made features, no learned weights)",
                  summary="MFCC(40) + deltas, mean and std per window of the variant (the classic control)")
