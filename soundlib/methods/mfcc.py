"""``mfcc``: the classic control. MFCC statistics per window, standardized, logistic regression.

``features: basic`` is the textbook baseline: 40 MFCCs and their deltas,
mean and standard deviation over time (160 numbers per window). ``features:
rich`` adds second deltas, more statistics (min, max, median, skew, kurtosis)
and spectral descriptors (contrast, centroid, bandwidth, roll-off, flatness,
zero-crossing rate, RMS, chroma) and log-mel band means and deviations.
The windows are the variant's (``duration``, ``window_hop``), without padding:
a short clip's statistics are over its own audio.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data import Dataset
from ..errors import ConfigError, DatasetError
from .base import Context, Features
from .heads import DEFAULT_CS, HeadMethod

__all__ = ["MfccOptions", "MfccMethod", "mfcc_statistics"]

FEATURE_SETS = ("basic", "rich")


@dataclasses.dataclass(frozen=True)
class MfccOptions:
    """Options of ``mfcc``.

    Attributes
    ----------
    n_mfcc : int
        Cepstral coefficients.
    features : {"basic", "rich"}
    Cs : tuple of float
        The inverse regularization strengths tried on validation.
    """

    n_mfcc: int = 40
    features: str = "basic"
    Cs: tuple[float, ...] = DEFAULT_CS

    def __post_init__(self) -> None:
        if self.features not in FEATURE_SETS:
            raise ConfigError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        if not 1 <= self.n_mfcc <= 128:
            raise ConfigError(f"n_mfcc must be in [1, 128], got {self.n_mfcc}")


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
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=128)
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
            lm = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64))
            out = np.concatenate([stats(mf), stats(d1), stats(d2), stats(extra), lm.mean(1), lm.std(1)])
    return np.nan_to_num(out.astype(np.float32))


def _window_statistics(options: MfccOptions):
    """``inputs(path, spec)`` for :func:`~soundlib.embed.embed_clips`: the statistics of every window."""

    def inputs(path, spec) -> np.ndarray:
        from ..audio import read_segment, window_starts

        y = read_segment(path, sr=spec.sr, allow_silent=False)
        n = spec.n_samples
        starts = window_starts(len(y), n, max(1, int(round(spec.hop_seconds * spec.sr))))
        return np.stack([mfcc_statistics(y[s:s + n], sr=spec.sr, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                         n_mfcc=options.n_mfcc, features=options.features) for s in starts])

    return inputs


@dataclasses.dataclass(frozen=True)
class _Identity:
    """The "embedder" of MFCC statistics: they are the embedding (so they share the embedding cache)."""

    identity: str

    def load(self) -> "_Identity":
        return self

    def __call__(self, batch: np.ndarray, *, batch_size: int = 0) -> np.ndarray:
        return np.asarray(batch, dtype=np.float32)


class MfccMethod(HeadMethod):
    """See the module docstring."""

    kind = "mfcc"

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        import time

        from ..embed import EmbedConfig, embed_clips

        t0 = time.perf_counter()
        o = self.options
        res = embed_clips(dataset.clips, ctx.spec, _Identity(f"mfcc:{o.features}:{o.n_mfcc}:1"),
                          config=ctx.embed or EmbedConfig(progress=ctx.progress), inputs=_window_statistics(o))
        if res.failures:
            raise DatasetError(f"{len(res.failures)} clip(s) could not be read:\n  "
                               + "\n  ".join(m for _, m in res.failures[:10]))
        return Features(res.embeddings, res.row_clip, len(dataset.clips),
                        info={"features": o.features, "n_mfcc": o.n_mfcc, "windows": len(res.row_clip),
                              "cache_hits": res.hits, "seconds": round(time.perf_counter() - t0, 2)})
