"""A deterministic synthetic sound corpus in the UrbanSound8K layout.

Ten procedural sound models, one per UrbanSound8K class, render *recordings*;
each recording draws its own parameters (pitch, rate, timbre, loudness) and its
own background (coloured noise at a drawn signal-to-noise ratio) and is cut into
slices, the way UrbanSound8K cuts Freesound recordings. Recordings, never
slices, are assigned to folds, so cross-validation sees no leakage.

>>> from soundlib.audio.synth import SynthConfig, generate_corpus      # doctest: +SKIP
>>> root = generate_corpus("data/synth", SynthConfig(seed=1))     # doctest: +SKIP
>>> from soundlib.audio.loaders import load_dataset                         # doctest: +SKIP
>>> len(load_dataset(root))                                       # doctest: +SKIP
400

The same configuration always gives byte-identical files: every random draw
comes from a generator derived from ``(seed, class, recording)`` with
:class:`numpy.random.SeedSequence`, WAV files are 16-bit PCM without any
timestamp, and the metadata CSV is sorted.
"""


from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from soundlib.atomic import atomic_path, ensure_dir, write_json_atomic, write_text_atomic
from soundlib.audio.datasets import US8K_CLASSES, US8K_HEADER
from soundlib.audio.synth.sounds import render_scene
from soundlib.errors import ConfigError, DatasetError

__all__ = ["SynthConfig", "generate_corpus", "ensure_corpus"]

_MIN_SLICE_S = 0.5          # shortest slice written (when ``duration`` allows it)
_MAX_RECORDINGS = 100_000   # per class; keeps fsIDs unique
_MARKER = "synth_config.json"
_CSV_NAME = "UrbanSound8K.csv"


# ---------------------------------------------------------------------------
# Configuration

@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Size and shape of a synthetic corpus.

    Parameters
    ----------
    clips_per_class : int
        Slices (clips) written per class; the corpus has ``10 * clips_per_class``.
    seed : int
        Non-negative seed; the same seed gives byte-identical files.
    duration : float
        Length of a full slice in seconds, in ``(0, 10]`` (UrbanSound8K uses 4).
        Some slices are shorter, never below 0.5 s (or ``duration`` if smaller).
    sr : int
        Sample rate in Hz, 8000 to 96000.
    slices_per_recording : int
        Slices cut from one recording; slices of a recording share its fold.
    n_folds : int
        Number of folds (2 or more); recordings are spread round-robin over them.

    Raises
    ------
    ConfigError
        When a value is out of range or of the wrong type.
    """

    clips_per_class: int = 40
    seed: int = 0
    duration: float = 4.0
    sr: int = 22050
    slices_per_recording: int = 4
    n_folds: int = 10

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a clear message if a value is invalid."""
        for name in ("clips_per_class", "seed", "sr", "slices_per_recording", "n_folds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"SynthConfig.{name} must be an integer, got {value!r}")
        if isinstance(self.duration, bool) or not isinstance(self.duration, (int, float, np.integer, np.floating)):
            raise ConfigError(f"SynthConfig.duration must be a number of seconds, got {self.duration!r}")
        if self.clips_per_class < 1:
            raise ConfigError(f"SynthConfig.clips_per_class must be at least 1, got {self.clips_per_class}")
        if self.seed < 0:
            raise ConfigError(f"SynthConfig.seed must be a non-negative integer, got {self.seed}")
        if not math.isfinite(self.duration) or not 0 < self.duration <= 10:
            raise ConfigError(
                f"SynthConfig.duration must be in (0, 10] seconds (UrbanSound8K slices are at most 4 s), "
                f"got {self.duration}"
            )
        if not 8000 <= self.sr <= 96000:
            raise ConfigError(f"SynthConfig.sr must be between 8000 and 96000 Hz, got {self.sr}")
        if self.duration * self.sr < 256:
            raise ConfigError(
                f"SynthConfig.duration={self.duration} s at sr={self.sr} Hz gives fewer than 256 samples per slice"
            )
        if self.slices_per_recording < 1:
            raise ConfigError(
                f"SynthConfig.slices_per_recording must be at least 1, got {self.slices_per_recording}"
            )
        if self.n_folds < 2:
            raise ConfigError(f"SynthConfig.n_folds must be at least 2, got {self.n_folds}")
        if self.n_recordings > _MAX_RECORDINGS:
            raise ConfigError(
                f"SynthConfig asks for {self.n_recordings} recordings per class; at most {_MAX_RECORDINGS} "
                "are supported (lower clips_per_class or raise slices_per_recording)"
            )

    @property
    def n_recordings(self) -> int:
        """Recordings per class: ``ceil(clips_per_class / slices_per_recording)``."""
        return -(-int(self.clips_per_class) // int(self.slices_per_recording))


# ---------------------------------------------------------------------------
# Corpus

@dataclasses.dataclass(frozen=True)
class _Recording:
    class_id: int
    index: int          # recording index within its class
    fsid: int
    fold: int
    n_slices: int


def _plan(config: SynthConfig) -> list[_Recording]:
    """Recordings of every class, with fsID and fold (round-robin over a seeded shuffle)."""
    n_rec = config.n_recordings
    base, extra = divmod(config.clips_per_class, n_rec)
    plan = []
    for class_id in range(len(US8K_CLASSES)):
        order = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1, class_id))).permutation(n_rec)
        fold_of = np.empty(n_rec, dtype=np.int64)
        fold_of[order] = (np.arange(n_rec) + class_id) % config.n_folds + 1
        for r in range(n_rec):
            plan.append(_Recording(class_id, r, 100_000 * (class_id + 1) + r, int(fold_of[r]),
                                   base + (1 if r < extra else 0)))
    return plan


def _layout(rng: np.random.Generator, n_slices: int, config: SynthConfig) -> list[tuple[int, int]]:
    """``(start, length)`` in samples of each slice: overlapping or consecutive; the last may be shorter."""
    full = int(round(config.duration * config.sr))
    hop = int(round(full * rng.uniform(0.5, 1.0)))
    lengths = [full] * n_slices
    if config.duration > _MIN_SLICE_S and rng.random() < 0.3:
        shortest = max(_MIN_SLICE_S, 0.4 * config.duration)
        lengths[-1] = min(full, int(round(rng.uniform(shortest, config.duration) * config.sr)))
    return [(k * hop, lengths[k]) for k in range(n_slices)]


def _fmt(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    pcm = np.round(np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, sr, format="WAV", subtype="PCM_16")


def _previous_files(out_dir: Path) -> list[Path]:
    """Audio files listed by a previous synthetic corpus in ``out_dir`` (never a foreign dataset)."""
    csv_path = out_dir / "metadata" / _CSV_NAME
    if not csv_path.exists():
        return []
    if not (out_dir / "metadata" / _MARKER).is_file():
        raise DatasetError(
            f"{csv_path} exists and was not written by soundlib.audio.synth; refusing to overwrite a real dataset. "
            "Choose an empty or new out_dir."
        )
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            return [out_dir / "audio" / f"fold{int(r['fold'])}" / Path(r["slice_file_name"]).name
                    for r in csv.DictReader(fh)]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError):
        return []


def _render_planned(rec: _Recording, *,
                    config: SynthConfig) -> tuple[_Recording, list[tuple[int, int]], np.ndarray, int]:
    """Slice layout, audio and salience of one planned recording (its RNGs depend only on seed, class, index)."""
    layout_ss, audio_ss = np.random.SeedSequence(config.seed, spawn_key=(0, rec.class_id, rec.index)).spawn(2)
    slices = _layout(np.random.default_rng(layout_ss), rec.n_slices, config)
    n_total = max(s + m for s, m in slices)
    # every slice must hold the class's sound: no pause between events longer than 80 % of the shortest slice
    max_gap = 0.8 * min(m for _, m in slices) / config.sr
    audio, snr_db = render_scene(US8K_CLASSES[rec.class_id], np.random.default_rng(audio_ss), n_total, config.sr,
                            max_gap=max_gap)
    return rec, slices, audio, (1 if snr_db >= 12.0 else 2)


def _bounded_map(pool: ThreadPoolExecutor, fn: Callable, items: list, *, window: int) -> Iterator:
    """Like ``pool.map`` (results in order) but with at most ``window`` tasks in flight."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def generate_corpus(out_dir: str | os.PathLike, config: SynthConfig = SynthConfig(), *,
                    progress: bool = True) -> Path:
    """Write a synthetic corpus in the UrbanSound8K layout.

    Files written: ``out_dir/audio/fold{k}/{fsID}-{classID}-0-{sliceID}.wav``
    (16-bit PCM), ``out_dir/metadata/UrbanSound8K.csv`` with the official
    header, and ``out_dir/metadata/synth_config.json`` (the configuration).
    Every file is written atomically and the CSV last, so an interrupted run
    leaves no half-written file and no CSV listing missing audio. Re-running on
    a previous synthetic corpus replaces it (its stale audio files are removed);
    a folder holding another dataset's metadata is refused.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Destination folder (created if missing).
    config : SynthConfig
        Corpus size, seed, slice length, sample rate, slicing and folds.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pathlib.Path
        ``out_dir``, ready for :func:`soundlib.audio.loaders.load_dataset`.

    Raises
    ------
    ConfigError
        If ``config`` is not a valid :class:`SynthConfig`.
    DatasetError
        If ``out_dir`` already holds a dataset not written by this module.
    """
    from tqdm.auto import tqdm

    if not isinstance(config, SynthConfig):
        raise ConfigError(f"config must be a SynthConfig, got {type(config).__name__}")
    config.validate()
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"{out_dir}: exists and is not a folder")
    stale = _previous_files(out_dir)
    meta_dir = out_dir / "metadata"
    ensure_dir(meta_dir)
    (meta_dir / _CSV_NAME).unlink(missing_ok=True)
    write_json_atomic(meta_dir / _MARKER, dataclasses.asdict(config))

    plan = _plan(config)
    rows: list[tuple[str, int, str, str, int, int, int, str]] = []
    written: set[Path] = set()
    workers = max(1, min(4, os.cpu_count() or 1))
    with tqdm(total=sum(r.n_slices for r in plan), desc="synth corpus", unit="clip", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soundlib-synth") as pool:
        # numpy and scipy.fft release the GIL: rendering runs in threads, files are written here
        for rec, slices, audio, salience in _bounded_map(pool, partial(_render_planned, config=config), plan,
                                                         window=2 * workers):
            label = US8K_CLASSES[rec.class_id]
            for slice_id, (start, length) in enumerate(slices):
                name = f"{rec.fsid}-{rec.class_id}-0-{slice_id}.wav"
                path = out_dir / "audio" / f"fold{rec.fold}" / name
                _write_wav(path, audio[start:start + length], config.sr)
                written.add(path)
                rows.append((name, rec.fsid, _fmt(start / config.sr), _fmt((start + length) / config.sr),
                             salience, rec.fold, rec.class_id, label))
                bar.update(1)

    rows.sort(key=lambda r: r[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(US8K_HEADER)
    writer.writerows(rows)
    write_text_atomic(meta_dir / _CSV_NAME, buf.getvalue())
    for old in stale:
        if old not in written:
            old.unlink(missing_ok=True)
    return out_dir


def ensure_corpus(out_dir: str | os.PathLike, config: SynthConfig, *, progress: bool = True) -> Path:
    """Generate the corpus ``config`` into ``out_dir`` unless that exact corpus is already there.

    A corpus made with another configuration is replaced.
    """
    out_dir = Path(out_dir)
    want = json.loads(json.dumps(dataclasses.asdict(config)))
    try:
        have = json.loads((out_dir / "metadata" / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        have = None
    if (out_dir / "metadata" / _CSV_NAME).is_file() and have == want:
        return out_dir
    return generate_corpus(out_dir, config, progress=progress)
