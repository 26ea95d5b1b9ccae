"""Zero-shot tagging: YAMNet's own AudioSet classes per window, for a first look at unlabelled audio.

:func:`tag_file` streams a recording (any length) through YAMNet's frames (0.975 s every ``hop``
seconds, at 16 kHz) and keeps each frame's ``top_k`` AudioSet classes (521, with the names the model
carries). No training: the labels are the model's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.errors import AudioError, ConfigError

__all__ = ["Tag", "tag_file", "check_hop", "FRAME_SECONDS", "MIN_HOP", "MAX_HOP"]

#: One YAMNet frame, in seconds (15600 samples at 16 kHz).
FRAME_SECONDS = 0.975
#: The hops ``tag`` takes, in seconds: at least 1 ms (16 samples at 16 kHz), at most 10 s.
MIN_HOP, MAX_HOP = 0.001, 10.0


def check_hop(hop) -> float:
    """``hop`` as a float when it lies in [:data:`MIN_HOP`, :data:`MAX_HOP`] seconds, else a :class:`ConfigError`."""
    try:
        value = float(hop)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(hop, bool) or not MIN_HOP <= value <= MAX_HOP:
        raise ConfigError(f"hop must be in [{MIN_HOP:g}, {MAX_HOP:g}] seconds (at least 1 ms, 16 samples at 16 kHz), "
                          f"got {hop!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Tag:
    """One frame's classes: ``start``/``end`` in seconds, ``labels`` and ``scores`` best first."""

    start: float
    end: float
    labels: tuple[str, ...]
    scores: tuple[float, ...]


def tag_file(path: str | os.PathLike, *, top_k: int = 3, hop: float = 0.48, model=None,
             batch_frames: int = 64) -> Iterator[Tag]:
    """YAMNet's top classes for every frame of an audio file (streamed: memory bounded by a batch).

    Parameters
    ----------
    path : path-like
        Any audio file soundlib reads.
    top_k : int
        Classes kept per frame.
    hop : float
        Seconds between frame starts (YAMNet's own: 0.48), in [:data:`MIN_HOP`, :data:`MAX_HOP`]; a file
        of more than :data:`soundlib.audio.clips.MAX_WINDOWS` frames is refused before any is scored.
    model : YamnetModel, optional
        A loaded model (default: loaded here, LiteRT when installed).

    Yields
    ------
    Tag
    """
    from soundlib.audio.clips import SILENCE_PEAK, audio_info, iter_windows
    from soundlib.embedders.nets import yamnet as _yamnet
    from soundlib.embedders.nets import yamnet_weights as _yamnetW

    check_hop(hop)
    model = model or _yamnetW.YamnetModel()
    names = _yamnetW.class_names()
    length = audio_info(path).duration
    starts: list[float] = []
    frames: list[np.ndarray] = []
    peak = 0.0

    def flush() -> Iterator[Tag]:
        scores = np.asarray(model.scores(np.stack(frames)), np.float32)
        if not np.isfinite(scores).all():
            raise AudioError(f"{path}: YAMNet gave NaN or infinite scores for the frames from {starts[0]:.3f} s; "
                             "the audio is not usable")
        for start, s in zip(starts, scores):
            best = np.argsort(-s)[:top_k]
            yield Tag(round(start, 3), round(min(length, start + FRAME_SECONDS), 3),
                      tuple(names[k] for k in best), tuple(float(s[k]) for k in best))
        starts.clear()
        frames.clear()

    n_frames = 0
    for start, frame in iter_windows(path, sr=_yamnet.SR, duration=FRAME_SECONDS, hop=hop, pad="end"):
        peak = max(peak, float(np.max(np.abs(frame))) if frame.size else 0.0)
        starts.append(start)
        frames.append(np.asarray(frame, np.float32))
        n_frames += 1
        if len(frames) == batch_frames:
            yield from flush()
    if frames:
        yield from flush()
    if not n_frames:
        raise AudioError(f"{path}: no audio to tag")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")


def format_tags(path: Path, tags: list[Tag]) -> str:
    """A readable table: one line per frame, ``start-end  label (score), ...``."""
    lines = [f"{path}:"]
    for t in tags:
        best = ", ".join(f"{label} ({score:.2f})" for label, score in zip(t.labels, t.scores))
        lines.append(f"  {t.start:7.2f}-{t.end:7.2f} s  {best}")
    return "\n".join(lines)
