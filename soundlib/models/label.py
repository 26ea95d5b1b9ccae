"""Labelling sounds with a loaded model: files of any length, pictures or folders in, per-window and
per-file probabilities out (:func:`predict`, :func:`window_probabilities`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from soundlib.errors import ConfigError, FeatureError, SoundlibError
from soundlib.models.events import DEFAULT_THRESHOLD
from soundlib.models.format import PICTURE_EXTENSIONS
from soundlib.models.load import LoadedModel

if TYPE_CHECKING:
    from soundlib.models.events import EventRules

__all__ = ["expand_inputs", "window_probabilities", "predict"]


def _audio_windows(model: LoadedModel, path: str | os.PathLike, hop: float | None):
    """``(start, window)`` of the audio a model labels: the variant's windows (rendered later) or an audio
    embedder's (a clip shorter than an unpadded window comes as it is)."""
    from soundlib.audio.clips import audio_info, iter_windows, read_segment

    if model.modality != "waveform":
        spec = model.spec
        yield from iter_windows(path, sr=spec.sr, duration=spec.seconds, hop=hop or spec.hop_seconds, pad=spec.pad)
        return
    w = model.window
    if w.pad == "none" and audio_info(path).duration <= w.duration:
        yield 0.0, read_segment(path, sr=w.sr, allow_silent=True)
        return
    yield from iter_windows(path, sr=w.sr, duration=w.duration, hop=hop or w.hop_seconds,
                            pad="end" if w.pad == "none" else w.pad)


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders expanded (recursively) to the audio and picture files in them."""
    from soundlib.audio.datasets import AUDIO_EXTENSIONS

    out: list[Path] = []
    wanted = AUDIO_EXTENSIONS | PICTURE_EXTENSIONS
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():  # rglob does not follow links to folders, so a link loop cannot recurse
            for q in sorted(p.rglob("*")):
                if q.suffix.lower() in wanted and (q.is_file() or q.is_symlink()):
                    out.append(q)  # a broken or looping link is reported as a failure by the caller
        else:
            out.append(p)
    return out


def window_probabilities(model: LoadedModel, path: str | os.PathLike, *, batch_size: int = 32,
                         hop: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Class probabilities of every window of an audio file, streamed (memory bounded by a batch of windows).

    Parameters
    ----------
    hop : float, optional
        Seconds between window starts (default: the model's feature spec's), at least
        :data:`soundlib.audio.clips.MIN_HOP`; a file of more than :data:`~soundlib.audio.clips.MAX_WINDOWS`
        windows is refused before any is labelled.

    Returns
    -------
    proba : np.ndarray, shape (n_windows, n_classes)
    starts : np.ndarray, shape (n_windows,)
        Window starts in seconds.
    length : float
        The recording's length in seconds.
    """
    from soundlib.audio.clips import SILENCE_PEAK, audio_info
    from soundlib.errors import AudioError
    from soundlib.pictures.features import render

    spec = model.spec
    length = audio_info(path).duration
    starts, probas, batch, peak = [], [], [], 0.0
    label = model.predict_windows if model.modality == "waveform" else model.predict_pictures
    for start, window in _audio_windows(model, path, hop):
        starts.append(start)
        peak = max(peak, float(np.max(np.abs(window))) if window.size else 0.0)
        batch.append(window if model.modality == "waveform" else render(window, spec))
        if len(batch) == batch_size:
            probas.append(label(np.stack(batch)))
            batch.clear()
    if batch:
        probas.append(label(np.stack(batch)))
    if not probas:
        raise AudioError(f"{path}: no audio windows to label")
    bad = [i for i, p in enumerate(np.concatenate(probas)) if not np.isfinite(p).all()]
    if bad:
        raise AudioError(f"{path}: the model gave NaN or infinite probabilities for {len(bad)} window(s), the first "
                         f"at {starts[bad[0]]:.3f} s; the audio is not usable")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")
    return np.concatenate(probas), np.asarray(starts), length


def predict(model: LoadedModel, inputs: Sequence[str | os.PathLike], *, top_k: int = 5, aggregate: str = "mean",
            timeline: list | None = None, events: list | None = None, threshold: float = DEFAULT_THRESHOLD,
            rules: "EventRules | None" = None, hop: float | None = None,
            progress: bool = False) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Top-k labels for audio files, pictures or folders of them.

    An audio file is cut into the model's windows (a recording of minutes is
    streamed window by window) and the windows' probabilities are aggregated
    into one decision per file (``aggregate``: ``"mean"`` or ``"max"``).

    Parameters
    ----------
    timeline : list, optional
        When given, one row per window of each audio file is appended to it:
        ``input, start, end`` (seconds) and ``rank, label, probability`` for the top-k.
    events : list, optional
        When given, the event segments of each audio file are appended to it:
        ``input, start, end, label, confidence`` (see :func:`soundlib.models.events.event_segments`).
    threshold : float
        A window belongs to a class's event when its probability is at least this (without ``rules``).
    rules : EventRules, optional
        How windows become events: per-class thresholds, classes kept, minimum duration, gaps merged,
        boundaries (:class:`soundlib.models.events.EventRules`; replaces ``threshold``).
    hop : float, optional
        Seconds between window starts in an audio file (default: the model's).
    progress : bool
        Show a progress bar over the files.

    Returns
    -------
    rows : list of dict
        ``input, rank, label, probability`` (and ``windows``) per file.
    failures : list of (Path, str)
        A file that fails is reported here and the others go on.

    Raises
    ------
    ConfigError
        ``top_k`` is not a positive integer.
    """
    from soundlib.methods.base import aggregate as aggregate_windows
    from soundlib.pictures.featurize import read_picture

    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer (how many labels to list per input), got {top_k!r}")
    if events is not None:
        from soundlib.models.events import EventRules

        rules = rules if rules is not None else EventRules(threshold=threshold)
        rules.check_labels(model.labels)
    if hop is not None and (isinstance(hop, bool) or not isinstance(hop, (int, float)) or not 0 < hop < np.inf):
        raise ConfigError(f"hop must be a positive number of seconds between windows, got {hop!r}")
    rows, failures = [], []
    from tqdm.auto import tqdm

    for path in tqdm(expand_inputs(inputs), desc="predict", unit="file", disable=not progress):
        try:
            if path.suffix.lower() in PICTURE_EXTENSIONS:
                if model.modality != "picture":
                    raise FeatureError(f"{path}: this model labels audio (it is built on an audio embedder), "
                                       "not pictures")
                pic = read_picture(path)
                want = (model.spec.height, model.spec.width)
                if pic.shape[:2] != want:
                    raise FeatureError(f"{path}: picture is {pic.shape[1]}x{pic.shape[0]} pixels; the model's "
                                       f"feature spec {model.spec.name!r} makes {want[1]}x{want[0]}")
                proba, n_windows = model.predict_pictures(pic[None])[0], 1
            else:
                win, starts, length = window_probabilities(model, path, hop=hop)
                proba = aggregate_windows(win, np.zeros(len(win), np.int64), np.array([0]), how=aggregate)[0]
                n_windows = len(win)
                if timeline is not None:
                    for start, p in zip(starts, win):
                        for rank, k in enumerate(np.argsort(-p)[:top_k], start=1):
                            timeline.append({"input": str(path), "start": round(float(start), 3),
                                             "end": round(float(min(length, start + model.window_seconds)), 3),
                                             "rank": rank, "label": model.labels[k], "probability": float(p[k])})
                if events is not None:
                    from soundlib.models.events import event_segments

                    ends = np.minimum(length, starts + model.window_seconds)
                    events += [{"input": str(path), **seg.to_dict()} for seg in
                               event_segments(win, starts, ends, model.labels, rules=rules)]
        except SoundlibError as exc:  # named: an embedder's own message ("log_mel needs ...") may not say which file
            message = str(exc)
            failures.append((path, message if str(path) in message else f"{path}: {message}"))
            continue
        except Exception as exc:  # keep going: one bad input must not abort the batch
            failures.append((path, f"{path}: {type(exc).__name__}: {exc}"))
            continue
        for rank, k in enumerate(np.argsort(-proba)[:top_k], start=1):
            rows.append({"input": str(path), "rank": rank, "label": model.labels[k], "probability": float(proba[k]),
                         "windows": n_windows})
    return rows, failures
