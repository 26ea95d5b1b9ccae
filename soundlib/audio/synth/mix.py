"""Multi-label mixtures of real or synthetic clips: pairs of clips of two classes overlaid at known
signal-to-noise ratios, with both labels, in a manifest (``label`` ``a;b``) that
:func:`soundlib.audio.loaders.load_dataset` reads as a multi-label dataset.

Pairs are drawn inside a fold (two clips of different classes and recordings, each clip in one pair
at most), so a mixture's sources never cross folds and the dataset's folds stay leakage-free. The
second clip is scaled so that the first is ``snr_db`` louder (RMS); the mixture is as long as the
longer clip and is scaled down only if it would clip. Deterministic for a seed.

>>> from soundlib.audio.loaders import load_dataset                      # doctest: +SKIP
>>> manifest = mix_pairs(load_dataset("data/synth"), "data/synth/mixtures")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from soundlib.audio.datasets import Clip, Dataset
from soundlib.errors import ConfigError, DatasetError

__all__ = ["MIX_COLUMNS", "mix_pairs"]

#: Columns of the manifest :func:`mix_pairs` writes.
MIX_COLUMNS = ["path", "label", "fold", "group", "snr_db", "source_a", "source_b"]


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def mix_pairs(dataset: Dataset, out_dir: str | os.PathLike, *, snrs: Sequence[float] = (0.0, 6.0),
              pairs_per_fold: int | None = None, include_single: bool = True, sr: int = 22050,
              seed: int = 0) -> Path:
    """Write mixtures of pairs of ``dataset``'s clips and a multi-label manifest listing them.

    Parameters
    ----------
    dataset : Dataset
        Single-label clips with folds (UrbanSound8K, the synthetic corpus, a manifest with ``fold``).
    out_dir : path
        Receives ``audio/*.wav`` (16-bit, ``sr`` Hz) and ``manifest.csv`` (:data:`MIX_COLUMNS`).
    snrs : sequence of float
        Every pair is mixed once at each of these levels (dB of the first clip over the second).
    pairs_per_fold : int, optional
        At most this many pairs per fold (default: as many as the fold's clips allow).
    include_single : bool
        Also list the source clips themselves (single-label rows, paths relative to the manifest).
    sr : int
        Sample rate of the mixtures.

    Returns
    -------
    Path
        The manifest.
    """
    import soundfile as sf

    from soundlib.atomic import atomic_path, ensure_dir, write_csv_atomic
    from soundlib.audio.clips import read_segment

    if not dataset.has_folds:
        raise DatasetError(f"dataset {dataset.name!r}: mixtures are drawn inside folds; it has none")
    if not snrs or any(not np.isfinite(s) for s in snrs):
        raise ConfigError(f"snrs must be finite numbers of dB, got {list(snrs)}")
    if dataset.multilabel:
        raise DatasetError(f"dataset {dataset.name!r} is already multi-label; mix single-label clips")
    out = Path(out_dir)
    audio = ensure_dir(out / "audio")
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    n = 0
    for fold in dataset.folds:
        clips = [c for c in dataset.clips if c.fold == fold]
        order = [clips[i] for i in rng.permutation(len(clips))]
        used: set[int] = set()
        pairs: list[tuple[Clip, Clip]] = []
        for i, a in enumerate(order):
            if i in used or (pairs_per_fold is not None and len(pairs) >= pairs_per_fold):
                continue
            j = next((j for j in range(i + 1, len(order)) if j not in used and order[j].label != a.label
                      and order[j].group != a.group), None)
            if j is None:
                continue
            used |= {i, j}
            pairs.append((a, order[j]))
        for a, b in pairs:
            ya, yb = read_segment(a.path, sr=sr), read_segment(b.path, sr=sr)
            length = max(len(ya), len(yb))
            ya, yb = np.pad(ya, (0, length - len(ya))), np.pad(yb, (0, length - len(yb)))
            for snr in snrs:
                gain = _rms(ya) / max(_rms(yb), 1e-9) / 10 ** (float(snr) / 20)
                y = ya + gain * yb
                y = y / max(1.0, float(np.max(np.abs(y))) / 0.9)
                n += 1
                name = f"mix{n:05d}_{_label_part(a.label)}+{_label_part(b.label)}_{float(snr):g}dB.wav"
                with atomic_path(audio / name) as tmp:
                    sf.write(str(tmp), np.round(np.clip(y, -1, 1) * 32767).astype(np.int16), sr, format="WAV",
                             subtype="PCM_16")
                rows.append({"path": f"audio/{name}", "label": f"{a.label};{b.label}", "fold": fold,
                             "group": f"{a.group}+{b.group}", "snr_db": f"{float(snr):g}",
                             "source_a": str(a.path), "source_b": str(b.path)})
        if include_single:
            rows += [{"path": os.path.relpath(c.path, out), "label": c.label, "fold": fold, "group": c.group,
                      "snr_db": "", "source_a": str(c.path), "source_b": ""} for c in clips]
    if not n:
        raise DatasetError(f"dataset {dataset.name!r}: no two clips of different classes and recordings share a "
                           "fold, so no mixture can be made")
    return write_csv_atomic(out / "manifest.csv", rows, fieldnames=MIX_COLUMNS)


def _label_part(label: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "-", label)[:40]
