"""Event segments over a timeline (a pure function, tested on arrays), the Raven table, the timeline plot."""

from __future__ import annotations

import numpy as np
import pytest

from soundlib.errors import ConfigError
from soundlib.models.events import RAVEN_COLUMNS, Segment, event_segments, frequency_band, raven_table

LABELS = ["siren", "dog_bark", "music"]


def _timeline(rows, *, window=2.0, hop=1.0, length=None):
    proba = np.asarray(rows, dtype=float)
    starts = np.arange(len(proba)) * hop
    ends = starts + window
    if length is not None:
        ends = np.minimum(ends, length)
    return proba, starts, ends


def test_consecutive_windows_merge_by_class():
    # 6 windows of 2 s every 1 s: siren in windows 0-2, dog in 2-3, music nowhere; window 5 siren again
    proba, starts, ends = _timeline([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.55, 0.6, 0.0], [0.1, 0.7, 0.2],
                                     [0.2, 0.3, 0.45], [0.7, 0.2, 0.1]], length=6.5)
    segs = event_segments(proba, starts, ends, LABELS, threshold=0.5)
    assert segs == [Segment(0.0, 4.0, "siren", 0.9), Segment(2.0, 5.0, "dog_bark", 0.7),
                    Segment(5.0, 6.5, "siren", 0.7)]
    assert segs[0].to_dict() == {"start": 0.0, "end": 4.0, "label": "siren", "confidence": 0.9}


def test_threshold_decides_membership_and_classes_may_overlap():
    proba, starts, ends = _timeline([[0.4, 0.4, 0.2], [0.45, 0.35, 0.2]])
    assert event_segments(proba, starts, ends, LABELS, threshold=0.5) == []
    low = event_segments(proba, starts, ends, LABELS, threshold=0.3)
    assert [(s.label, s.start, s.end) for s in low] == [("dog_bark", 0.0, 3.0), ("siren", 0.0, 3.0)]
    assert event_segments(proba, starts, ends, LABELS, threshold=0.45)[0].confidence == pytest.approx(0.45)


def test_a_gap_between_windows_splits_a_segment():
    proba = np.array([[0.9, 0.1, 0.0]] * 3)
    starts, ends = np.array([0.0, 1.0, 10.0]), np.array([2.0, 3.0, 12.0])  # the third window starts after a gap
    assert [(s.start, s.end) for s in event_segments(proba, starts, ends, LABELS)] == [(0.0, 3.0), (10.0, 12.0)]
    touching = event_segments(proba, [0.0, 2.0, 4.0], [2.0, 4.0, 6.0], LABELS)  # hop == window: one event
    assert [(s.start, s.end) for s in touching] == [(0.0, 6.0)]


def test_bad_inputs_are_config_errors():
    proba, starts, ends = _timeline([[0.9, 0.1, 0.0]])
    for bad in (0, 1.5, float("nan"), "high", True):
        with pytest.raises(ConfigError, match="threshold must be a probability"):
            event_segments(proba, starts, ends, LABELS, threshold=bad)
    with pytest.raises(ConfigError, match="proba"):
        event_segments(proba, starts, ends, LABELS[:2])
    assert event_segments(np.zeros((0, 3)), [], [], LABELS) == []


def test_raven_table_follows_birdnet_analyzer():
    events = [{"input": "/data/a.wav", "start": 0.0, "end": 4.0, "label": "siren", "confidence": 0.9},
              {"input": "/data/b.wav", "start": 12.5, "end": 14.0, "label": "dog bark", "confidence": 0.61234}]
    lines = raven_table(events, low_freq=0.0, high_freq=11025.0).splitlines()
    assert lines[0].split("\t") == RAVEN_COLUMNS
    assert RAVEN_COLUMNS[:7] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                                 "High Freq (Hz)"]
    assert lines[2].split("\t") == ["2", "Spectrogram 1", "1", "12.500", "14.000", "0.0", "11025.0", "dog bark",
                                    "dog bark", "0.6123", "/data/b.wav", "12.500"]
    assert len(lines) == 3


def test_frequency_band_of_a_spec():
    from soundlib.pictures.variants import get_variant

    assert frequency_band(get_variant("mel")) == (0.0, 11025.0)
    assert frequency_band(get_variant("mel").replace(fmin=50.0, fmax=8000.0)) == (50.0, 8000.0)
    assert frequency_band(get_variant("waveform").replace(fmin=50.0)) == (0.0, 11025.0)


def test_timeline_plot_shows_every_window_winner_and_the_segments():
    from matplotlib.patches import Rectangle

    from soundlib.evaluation.plots import plot_timeline

    labels = [f"c{k}" for k in range(8)]
    proba = np.full((6, 8), 0.02)
    proba[:, 0] = 0.6  # c0: most probable on average, wins windows 0-4
    proba[5] = 0.02
    proba[5, 7] = 0.86  # c7 wins the last window only: low on average
    proba[:, 1:4] += np.array([0.3, 0.25, 0.2])  # c1..c3 beat c7 on average (0.32, 0.27, 0.22 > 0.16)
    segs = event_segments(proba, np.arange(6.0), np.arange(6.0) + 2, labels, threshold=0.5)
    fig = plot_timeline(np.arange(6.0), proba, labels, window=2.0, top=2, segments=segs)
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert "c7" in shown and "c0" in shown and len(shown) == 2  # both winners, though c7's mean is low
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == len(segs) == 2
    assert sorted((b.get_x(), b.get_width()) for b in boxes) == [(0.0, 6.0), (5.0, 2.0)]
    wide = plot_timeline(np.arange(6.0), proba, labels, window=2.0, top=5)  # top-up to 5 by mean probability
    assert [t.get_text() for t in wide.axes[0].get_yticklabels()] == ["c0", "c1", "c2", "c3", "c7"]
