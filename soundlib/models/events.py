"""Event segments of a long recording: where each class is heard, from the window-by-window timeline.

The clip-level label of a long recording with several events (a siren, then a
dog barking over street music) says little. :func:`event_segments` turns the
timeline :func:`soundlib.models.label.window_probabilities` computes into segments:
for each class, the windows whose probability reaches a threshold, with
consecutive (overlapping or touching) windows merged into one segment that
runs from the first window's start to the last one's end. Its confidence is the
highest window probability inside it. It is a pure function over arrays.

:func:`raven_table` writes segments as a Raven selection table, the convention
of BirdNET-Analyzer (tab-separated; one selection per segment, with the file it
belongs to), which Raven Pro and Sonic Visualiser open over the recording.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from soundlib.errors import ConfigError

__all__ = ["Segment", "event_segments", "check_threshold", "EVENT_COLUMNS", "RAVEN_COLUMNS", "raven_table",
           "frequency_band", "DEFAULT_THRESHOLD"]

#: The probability a window needs to join a class's event (``soundlib predict --threshold``).
DEFAULT_THRESHOLD = 0.5

#: Columns of ``soundlib predict --events FILE.csv``.
EVENT_COLUMNS = ["input", "start", "end", "label", "confidence"]
#: Columns of ``soundlib predict --raven FILE.txt`` (BirdNET-Analyzer's combined Raven selection table).
RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Common Name", "Species Code", "Confidence", "Begin Path", "File Offset (s)"]


@dataclasses.dataclass(frozen=True)
class Segment:
    """One event: ``label`` heard from ``start`` to ``end`` (seconds), at most with ``confidence``."""

    start: float
    end: float
    label: str
    confidence: float

    def to_dict(self) -> dict:
        """``start, end`` rounded to the millisecond, ``label``, ``confidence`` rounded to 4 digits."""
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "confidence": round(self.confidence, 4)}


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in (0, 1]; a :class:`ConfigError` otherwise."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(threshold, bool) or not 0.0 < value <= 1.0:
        raise ConfigError(f"threshold must be a probability in (0, 1] (a window belongs to a class's event when "
                          f"the class's probability reaches it), got {threshold!r}")
    return value


def event_segments(proba: np.ndarray, starts: Sequence[float], ends: Sequence[float], labels: Sequence[str], *,
                   threshold: float = DEFAULT_THRESHOLD) -> list[Segment]:
    """Consecutive windows above ``threshold`` merged by class into segments.

    Parameters
    ----------
    proba : np.ndarray, shape (n_windows, n_classes)
        Every window's class probabilities, windows in time order.
    starts, ends : sequence of float, length n_windows
        Each window's span in seconds (``ends``: clipped to the recording's length).
    labels : sequence of str, length n_classes
    threshold : float
        A window belongs to class k's event when ``proba[:, k] >= threshold``.

    Returns
    -------
    list of Segment
        Sorted by start, then label. Two windows of a class above the threshold are
        merged when they are adjacent in time order and the second starts no later than
        the first ends (windows overlap by default); a window below the threshold, or a gap
        between windows, ends a segment.

    Raises
    ------
    ConfigError
        A threshold outside (0, 1], or arrays of mismatching shapes.
    """
    threshold = check_threshold(threshold)
    p = np.asarray(proba, dtype=np.float64)
    s = np.asarray(starts, dtype=np.float64).reshape(-1)
    e = np.asarray(ends, dtype=np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[1] != len(labels) or len(s) != len(p) or len(e) != len(p):
        raise ConfigError(f"event_segments needs proba (n_windows, {len(labels)}) and n_windows starts and ends; "
                          f"got proba {p.shape}, {len(s)} starts, {len(e)} ends")
    out: list[Segment] = []
    for k, label in enumerate(labels):
        current: list[float] | None = None  # [start, end, confidence]
        for i in range(len(p)):
            above = p[i, k] >= threshold
            if above and current is not None and s[i] <= current[1] + 1e-9:
                current[1] = max(current[1], e[i])
                current[2] = max(current[2], p[i, k])
                continue
            if current is not None:
                out.append(Segment(current[0], current[1], str(label), current[2]))
                current = None
            if above:
                current = [s[i], e[i], p[i, k]]
        if current is not None:
            out.append(Segment(current[0], current[1], str(label), current[2]))
    return sorted(out, key=lambda seg: (seg.start, seg.end, seg.label))


def raven_table(events: Iterable[Mapping], *, low_freq: float, high_freq: float) -> str:
    """A Raven selection table (BirdNET-Analyzer's convention) of event rows.

    Parameters
    ----------
    events : iterable of mapping
        Rows with ``input, start, end, label, confidence`` (as ``soundlib predict --events`` writes).
    low_freq, high_freq : float
        The band the selections span in Hz (the model's spectrogram band).

    Returns
    -------
    str
        Tab-separated, one header line (:data:`RAVEN_COLUMNS`) and one line per event (names written by
        :func:`soundlib.text.csv_cell`: tabs and line breaks escaped, never a formula): selections numbered
        from 1, view ``Spectrogram 1``, channel 1, the class name as both
        common name and species code, the file in ``Begin Path`` and the begin time as its offset.
    """
    from soundlib.text import csv_cell

    lines = ["\t".join(RAVEN_COLUMNS)]
    for n, ev in enumerate(events, start=1):
        begin, end = float(ev["start"]), float(ev["end"])
        label = csv_cell(str(ev["label"]))  # one cell: tabs and line breaks escaped, no spreadsheet formula
        lines.append("\t".join([str(n), "Spectrogram 1", "1", f"{begin:.3f}", f"{end:.3f}", f"{low_freq:.1f}",
                                f"{high_freq:.1f}", label, label, f"{float(ev['confidence']):.4f}",
                                csv_cell(str(ev["input"])), f"{begin:.3f}"]))
    return "\n".join(lines) + "\n"


def frequency_band(spec) -> tuple[float, float]:
    """The band in Hz a feature spec's pictures show: ``(fmin, fmax or sr / 2)`` for spectrograms, the whole
    band ``(0, sr / 2)`` for a waveform plot."""
    if spec.kind == "waveform":
        return 0.0, spec.sr / 2
    return float(spec.fmin), float(spec.fmax if spec.fmax is not None else spec.sr / 2)
