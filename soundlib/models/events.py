"""Event segments of a long recording: where each class is heard, from the window-by-window timeline.

The clip-level label of a long recording with several events (a siren, then a
dog barking over street music) says little. :func:`event_segments` turns the
timeline :func:`soundlib.models.label.window_probabilities` computes into segments:
for each class, the windows whose probability reaches a threshold, with
consecutive (overlapping or touching) windows merged into one segment that
runs from the first window's start to the last one's end. Its confidence is the
highest window probability inside it. It is a pure function over arrays.
:class:`EventRules` adds what an analyst tunes: per-class thresholds (:func:`read_thresholds`,
:func:`parse_threshold_options`), the classes kept, a minimum duration, the gap merged, and boundaries
from the windows' centres rather than their whole spans.

:func:`raven_table` writes segments as a Raven selection table, the convention
of BirdNET-Analyzer (tab-separated; one selection per segment, with the file it
belongs to), which Raven Pro and Sonic Visualiser open over the recording; :func:`audacity_labels` an
Audacity label track; :func:`extract_events` cuts each event's audio into its own file.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from soundlib.errors import ConfigError

__all__ = ["Segment", "EventRules", "BOUNDARIES", "event_segments", "check_threshold", "parse_threshold_options",
           "read_thresholds", "EVENT_COLUMNS", "RAVEN_COLUMNS", "raven_table", "audacity_labels", "frequency_band",
           "EXTRACT_PATTERN", "extract_names", "extract_events", "DEFAULT_THRESHOLD"]

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


#: How a window's decision maps to time: its whole span, or the hop-wide span around its centre.
BOUNDARIES = ("windows", "centers")


@dataclasses.dataclass(frozen=True)
class EventRules:
    """How window probabilities become events (``soundlib predict --threshold/--thresholds/--classes/...``).

    Attributes
    ----------
    threshold : float
        The probability a window needs to join a class's event (every class without its own).
    thresholds : tuple of (str, float)
        Per-class thresholds, ``(label, value)`` pairs (read by :func:`read_thresholds` or
        :func:`parse_threshold_options`); they replace ``threshold`` for those classes.
    classes : tuple of str or None
        Only these classes make events (``None``: every class).
    min_duration : float
        Seconds: shorter events (after merging) are dropped.
    merge_gap : float
        Seconds: two events of one class separated by at most this are merged into one.
    boundaries : {"windows", "centers"}
        ``windows``: an event runs from its first window's start to its last window's end (soundlib 0.2);
        ``centers``: each window stands for the hop-wide span around its centre (the first from the
        recording's start, the last to its end), so an event is not stretched by the window's length.
    """

    threshold: float = DEFAULT_THRESHOLD
    thresholds: tuple[tuple[str, float], ...] = ()
    classes: tuple[str, ...] | None = None
    min_duration: float = 0.0
    merge_gap: float = 0.0
    boundaries: str = "windows"

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        object.__setattr__(self, "thresholds", tuple((str(k), check_threshold(v, what=f"threshold of class {k!r}"))
                                                     for k, v in dict(self.thresholds).items()))
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        for name in ("min_duration", "merge_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name.replace('_', '-')} must be a number of seconds >= 0, got {value!r}")
        if self.boundaries not in BOUNDARIES:
            raise ConfigError(f"boundaries must be one of {', '.join(BOUNDARIES)}, got {self.boundaries!r}")

    def check_labels(self, labels: Sequence[str]) -> None:
        """Refuse class names (in ``thresholds`` or ``classes``) the model does not have, naming them."""
        import difflib

        known = [str(x) for x in labels]
        named = [k for k, _ in self.thresholds] + list(self.classes or ())
        unknown = [n for n in dict.fromkeys(named) if n not in known]
        if unknown:
            hints = [f"{n!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(n, known, 1)) else repr(n)
                     for n in unknown]
            raise ConfigError(f"class(es) {', '.join(hints)} are not classes of this model; its classes: "
                              f"{', '.join(known)}")

    def threshold_of(self, label: str) -> float:
        return dict(self.thresholds).get(str(label), self.threshold)


def check_threshold(threshold: float | str, *, what: str = "threshold") -> float:
    """``threshold`` as a float in (0, 1]; a :class:`ConfigError` otherwise."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(threshold, bool) or not 0.0 < value <= 1.0:
        raise ConfigError(f"{what} must be a probability in (0, 1] (a window belongs to a class's event when "
                          f"the class's probability reaches it), got {threshold!r}")
    return value


def parse_threshold_options(values: Sequence[str]) -> tuple[float | None, dict[str, float]]:
    """``--threshold`` values: ``VALUE`` (every class; the last one given counts) or ``CLASS=VALUE``.

    Returns ``(global threshold or None, {class: threshold})``.
    """
    default: float | None = None
    per_class: dict[str, float] = {}
    for raw in values:
        text = str(raw)
        if "=" in text:
            name, _, value = text.rpartition("=")
            if not name.strip():
                raise ConfigError(f"--threshold {text!r}: expected VALUE or CLASS=VALUE")
            per_class[name.strip()] = check_threshold(_number(value), what=f"--threshold {text!r}: the threshold")
        else:
            default = check_threshold(_number(text), what="--threshold")
    return default, per_class


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_thresholds(path: str | os.PathLike) -> dict[str, float]:
    """Per-class thresholds from a file: CSV rows ``class,threshold`` (a header line is allowed) or YAML
    (a mapping ``class: threshold``). Refuses, naming the file and the line, anything else."""
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--thresholds {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--thresholds {path}: cannot read it ({exc})") from None
    out: dict[str, float] = {}
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--thresholds {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"--thresholds {path}: expected a mapping of class names to thresholds, "
                              f"e.g. 'siren: 0.3', got {type(data).__name__}")
        for name, value in data.items():
            out[str(name)] = check_threshold(value, what=f"--thresholds {path}: class {name!r}: the threshold")
        return out
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if len(cells) != 2:
            raise ConfigError(f"--thresholds {path}: line {lineno}: expected two columns, class and threshold, "
                              f"got {len(cells)}: {','.join(cells)!r}")
        if lineno == 1 and isinstance(_number(cells[1]), str):
            continue  # a header
        if cells[0] in out:
            raise ConfigError(f"--thresholds {path}: line {lineno}: class {cells[0]!r} listed twice")
        out[cells[0]] = check_threshold(_number(cells[1]), what=f"--thresholds {path}: line {lineno}: the threshold")
    if not out:
        raise ConfigError(f"--thresholds {path}: no class,threshold rows")
    return out


def event_segments(proba: np.ndarray, starts: Sequence[float] | np.ndarray, ends: Sequence[float] | np.ndarray,
                   labels: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD,
                   rules: EventRules | None = None) -> list[Segment]:
    """Consecutive windows above the threshold merged by class into segments.

    Parameters
    ----------
    proba : np.ndarray, shape (n_windows, n_classes)
        Every window's class probabilities, windows in time order.
    starts, ends : sequence of float, length n_windows
        Each window's span in seconds (``ends``: clipped to the recording's length).
    labels : sequence of str, length n_classes
    threshold : float
        A window belongs to class k's event when ``proba[:, k] >= threshold`` (when no ``rules``).
    rules : EventRules, optional
        Per-class thresholds, the classes kept, the minimum duration, the gap merged and the boundaries
        (``threshold`` is then ignored).

    Returns
    -------
    list of Segment
        Sorted by start, then label. Two windows of a class above the threshold are
        merged when they are adjacent in time order and the second starts no later than
        the first ends (windows overlap by default); a window below the threshold, or a gap
        between windows, ends a segment. Then events of a class at most ``merge_gap`` apart
        are merged, and events shorter than ``min_duration`` dropped.

    Raises
    ------
    ConfigError
        A threshold outside (0, 1], a class the labels do not have, or arrays of mismatching shapes.
    """
    rules = rules if rules is not None else EventRules(threshold=check_threshold(threshold))
    p = np.asarray(proba, dtype=np.float64)
    s = np.asarray(starts, dtype=np.float64).reshape(-1)
    e = np.asarray(ends, dtype=np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[1] != len(labels) or len(s) != len(p) or len(e) != len(p):
        raise ConfigError(f"event_segments needs proba (n_windows, {len(labels)}) and n_windows starts and ends; "
                          f"got proba {p.shape}, {len(s)} starts, {len(e)} ends")
    rules.check_labels(labels)
    if rules.boundaries == "centers" and len(s):
        s, e = _center_spans(s, e)
    keep = set(rules.classes) if rules.classes is not None else None
    out: list[Segment] = []
    for k, label in enumerate(labels):
        if keep is not None and str(label) not in keep:
            continue
        cut = rules.threshold_of(str(label))
        segs: list[list[float]] = []  # [start, end, confidence]
        current: list[float] | None = None
        for i in range(len(p)):
            above = p[i, k] >= cut
            if above and current is not None and s[i] <= current[1] + 1e-9:
                current[1] = max(current[1], e[i])
                current[2] = max(current[2], p[i, k])
                continue
            if current is not None:
                segs.append(current)
                current = None
            if above:
                current = [s[i], e[i], p[i, k]]
        if current is not None:
            segs.append(current)
        merged: list[list[float]] = []
        for seg in segs:
            if merged and seg[0] - merged[-1][1] <= rules.merge_gap + 1e-9:
                merged[-1][1] = max(merged[-1][1], seg[1])
                merged[-1][2] = max(merged[-1][2], seg[2])
            else:
                merged.append(list(seg))
        out += [Segment(a, b, str(label), c) for a, b, c in merged if b - a >= rules.min_duration - 1e-9]
    return sorted(out, key=lambda seg: (seg.start, seg.end, seg.label))


def _center_spans(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each window's share of time: from the midpoint between its centre and the previous window's to the
    midpoint with the next one's (the first from its start, the last to its end)."""
    centers = (s + e) / 2
    mids = (centers[1:] + centers[:-1]) / 2
    lo = np.concatenate([[s[0]], np.maximum(mids, s[1:])])
    hi = np.concatenate([np.minimum(mids, e[:-1]), [e[-1]]])
    return lo, np.maximum(hi, lo)


def raven_table(events: Iterable[Mapping], *, low_freq: float, high_freq: float) -> str:
    """A Raven selection table (BirdNET-Analyzer's convention) of event rows.

    Parameters
    ----------
    events : iterable of mapping
        Rows with ``input, start, end, label, confidence`` (as ``soundlib predict --events`` writes).
    low_freq, high_freq : float
        The band the selections span in Hz (:func:`frequency_band`: the model's band).

    Returns
    -------
    str
        Tab-separated, one header line (:data:`RAVEN_COLUMNS`) and one line per event (names written by
        :func:`soundlib.text.csv_cell`: tabs and line breaks escaped, never a formula): selections numbered
        from 1, view ``Spectrogram 1``, channel 1, the class name as both common name and species code, the
        file's absolute path in ``Begin Path`` (Raven finds it from any folder) and the begin time as its offset.
    """
    from soundlib.text import csv_cell

    lines = ["\t".join(RAVEN_COLUMNS)]
    for n, ev in enumerate(events, start=1):
        begin, end = float(ev["start"]), float(ev["end"])
        label = csv_cell(str(ev["label"]))  # one cell: tabs and line breaks escaped, no spreadsheet formula
        lines.append("\t".join([str(n), "Spectrogram 1", "1", f"{begin:.3f}", f"{end:.3f}", f"{low_freq:.1f}",
                                f"{high_freq:.1f}", label, label, f"{float(ev['confidence']):.4f}",
                                csv_cell(os.path.abspath(str(ev["input"]))), f"{begin:.3f}"]))
    return "\n".join(lines) + "\n"


def audacity_labels(events: Iterable[Mapping]) -> str:
    """An Audacity label track of event rows: one ``start<TAB>end<TAB>label`` line per event (seconds,
    6 decimals), in the rows' order; Audacity imports it with File > Import > Labels."""
    lines = []
    for ev in events:
        label = str(ev["label"]).replace("\t", " ").replace("\n", " ")
        lines.append(f"{float(ev['start']):.6f}\t{float(ev['end']):.6f}\t{label}")
    return "".join(line + "\n" for line in lines)


def frequency_band(spec, window=None) -> tuple[float, float]:
    """The band in Hz a model hears: for a model on an audio embedder (``window``, its
    :class:`~soundlib.embedders.WindowSpec`), everything up to the Nyquist frequency of the audio it
    takes, ``(0, window.sr / 2)``; for a picture model, the band its feature spec's pictures show:
    ``(fmin, fmax or sr / 2)`` for spectrograms, ``(0, sr / 2)`` for a waveform plot."""
    if window is not None:
        return 0.0, float(window.sr) / 2
    if spec.kind == "waveform":
        return 0.0, spec.sr / 2
    return float(spec.fmin), float(spec.fmax if spec.fmax is not None else spec.sr / 2)


#: How ``--extract`` names each event's audio: its index (from 1, over all inputs), the recording,
#: the label and the start in seconds.
EXTRACT_PATTERN = "{index:04d}_{stem}_{label}_{start:.2f}s.wav"


def _safe_name(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def extract_names(events: Sequence[Mapping]) -> list[str]:
    """The file name :func:`extract_events` gives each event (:data:`EXTRACT_PATTERN`, names made safe)."""
    return [EXTRACT_PATTERN.format(index=i, stem=_safe_name(Path(str(ev["input"])).stem),
                                   label=_safe_name(str(ev["label"])), start=float(ev["start"]))
            for i, ev in enumerate(events, start=1)]


def extract_events(events: Sequence[Mapping], out_dir: str | os.PathLike) -> list[Path]:
    """Cut each event out of its recording into its own WAV file in ``out_dir`` (at the recording's own
    sample rate, mono, 16-bit; named by :func:`extract_names`), each written atomically.

    Returns the files written, in the events' order.
    """
    import io

    import soundfile as sf

    from soundlib.atomic import ensure_dir, write_bytes_atomic
    from soundlib.audio.clips import audio_info, read_segment

    out = ensure_dir(out_dir)
    written = []
    for ev, name in zip(events, extract_names(events)):
        path = Path(str(ev["input"]))
        sr = int(audio_info(path).sr)
        start, end = float(ev["start"]), float(ev["end"])
        y = read_segment(path, sr=sr, start=start, duration=max(0.0, end - start))
        buf = io.BytesIO()
        sf.write(buf, np.clip(y, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
        written.append(write_bytes_atomic(out / name, buf.getvalue()))
    return written
