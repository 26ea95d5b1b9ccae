"""Zero-shot tagging: an AudioSet network's own classes per window and per clip, for a first look at
unlabelled audio.

Two taggers (:data:`TAGGERS`): ``mn04`` (EfficientAT, MIT, 527 classes, mAP 0.432 on AudioSet; the
default) and ``yamnet`` (Google, Apache-2.0, 521 classes, mAP 0.306). :func:`tag_file` streams a
recording (any length) through the tagger's frames (``FRAME_SECONDS`` every ``hop`` seconds) and keeps
each frame's ``top_k`` classes; :func:`clip_summary` averages the frames' scores into the clip's top
classes. No training: the labels are the model's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from numpy.typing import ArrayLike

from soundlib.errors import AudioError, ConfigError

__all__ = ["Tag", "Tagger", "TAGGERS", "DEFAULT_TAGGER", "open_tagger", "tag_file", "clip_summary", "check_hop",
           "FRAME_SECONDS", "MIN_HOP", "MAX_HOP"]

#: One YAMNet frame, in seconds (15600 samples at 16 kHz).
FRAME_SECONDS = 0.975
#: The hops ``tag`` takes, in seconds: at least 1 ms (16 samples at 16 kHz), at most 10 s.
MIN_HOP, MAX_HOP = 0.001, 10.0
#: The taggers ``soundlib tag --model`` offers: AudioSet networks with their own class names.
TAGGERS = ("mn04", "yamnet")
DEFAULT_TAGGER = "mn04"
_TITLES = {"yamnet": "YAMNet", "mn04": "mn04"}


@dataclasses.dataclass
class Tagger:
    """An AudioSet network as a tagger: frames of ``frame_seconds`` at ``sr`` -> (n, classes) scores in [0, 1]."""

    name: str
    sr: int
    frame_seconds: float
    names: list[str]
    scores: Callable[[np.ndarray], np.ndarray]


def open_tagger(name: str = DEFAULT_TAGGER) -> Tagger:
    """Load a tagger by name (:data:`TAGGERS`); its weights as the embedder of that name finds them."""

    if name == "yamnet":
        from soundlib.embedders.nets import yamnet as _yamnet
        from soundlib.embedders.nets import yamnet_weights as _yamnetW

        model = _yamnetW.YamnetModel()
        return Tagger("yamnet", _yamnet.SR, FRAME_SECONDS, _yamnetW.class_names(),
                      lambda frames: np.asarray(model.scores(frames), np.float32))
    if name == "mn04":
        from soundlib.embedders.nets import efficientat_mn as _mn
        from soundlib.embedders.nets import efficientat_weights as _mnW

        mn = _mnW.Mn04Model(_mnW.checkpoint_path())

        def scores(frames: np.ndarray) -> np.ndarray:
            return (1.0 / (1.0 + np.exp(-np.asarray(mn.logits(frames), np.float64)))).astype(np.float32)

        return Tagger("mn04", _mn.SR, 1.0, _mnW.audioset_labels(), scores)
    raise ConfigError(f"unknown tagger {name!r}: expected one of {', '.join(TAGGERS)}")


def clip_summary(tags: list[Tag], tagger: Tagger, all_scores: ArrayLike, *, top_k: int = 3) -> Tag:
    """The clip's top classes: the frames' scores averaged (``all_scores``: (frames, classes))."""
    mean = np.asarray(all_scores, np.float64).mean(axis=0)
    best = np.argsort(-mean)[:top_k]
    return Tag(0.0, tags[-1].end if tags else 0.0, tuple(tagger.names[k] for k in best),
               tuple(float(mean[k]) for k in best))


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
             batch_frames: int = 64, tagger: Tagger | None = None, scores_out: list | None = None) -> Iterator[Tag]:
    """A tagger's top classes for every frame of an audio file (streamed: memory bounded by a batch).

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
        A loaded YAMNet (soundlib 0.2's argument; ``tagger`` is the general one).
    tagger : Tagger, optional
        The tagger (default: YAMNet, loaded here, LiteRT when installed).
    scores_out : list, optional
        Receives every frame's full score vector (for :func:`clip_summary`).

    Yields
    ------
    Tag
    """
    from soundlib.audio.clips import SILENCE_PEAK, audio_info, iter_windows

    check_hop(hop)
    if tagger is None:
        if model is not None:
            from soundlib.embedders.nets import yamnet as _yamnet
            from soundlib.embedders.nets import yamnet_weights as _yamnetW

            tagger = Tagger("yamnet", _yamnet.SR, FRAME_SECONDS, _yamnetW.class_names(),
                            lambda frames: np.asarray(model.scores(frames), np.float32))
        else:
            tagger = open_tagger("yamnet")
    names = tagger.names
    length = audio_info(path).duration
    starts: list[float] = []
    frames: list[np.ndarray] = []
    peak = 0.0

    def flush() -> Iterator[Tag]:
        scores = np.asarray(tagger.scores(np.stack(frames)), np.float32)
        if not np.isfinite(scores).all():
            raise AudioError(f"{path}: {_TITLES.get(tagger.name, tagger.name)} gave NaN or infinite scores for the "
                             f"frames from {starts[0]:.3f} s; the audio is not usable")
        if scores_out is not None:
            scores_out.extend(scores)
        for start, s in zip(starts, scores):
            best = np.argsort(-s)[:top_k]
            yield Tag(round(start, 3), round(min(length, start + tagger.frame_seconds), 3),
                      tuple(names[k] for k in best), tuple(float(s[k]) for k in best))
        starts.clear()
        frames.clear()

    n_frames = 0
    for start, frame in iter_windows(path, sr=tagger.sr, duration=tagger.frame_seconds, hop=hop, pad="end"):
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


def format_tags(path: Path, tags: list[Tag], summary: Tag | None = None) -> str:
    """A readable table: the clip's summary (when given), then one line per frame, ``start-end  label (score), ...``
    (names as text: control and bidi characters shown as escapes, :func:`soundlib.text.visible`)."""
    from soundlib.text import visible

    lines = [f"{visible(path)}:"]
    if summary is not None:
        best = ", ".join(f"{visible(label)} ({score:.2f})" for label, score in zip(summary.labels, summary.scores))
        lines.append(f"  whole clip (mean of {len(tags)} frames)  {best}")
    for t in tags:
        best = ", ".join(f"{visible(label)} ({score:.2f})" for label, score in zip(t.labels, t.scores))
        lines.append(f"  {t.start:7.2f}-{t.end:7.2f} s  {best}")
    return "\n".join(lines)
