"""Every figure soundlib draws, in one idiom.

Each ``plot_*`` function returns a pyplot-free :class:`matplotlib.figure.Figure`
(no global state, safe in threads and worker processes) that displays as a PNG
in a notebook whatever the matplotlib backend; :func:`save_png` writes one
atomically. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["figure", "save_png", "png_bytes", "plot_confusion", "plot_history", "plot_results",
           "plot_per_class_f1", "plot_timeline", "plot_feature", "plot_prediction", "plot_reliability",
           "plot_embedding_map"]


def figure(figsize: tuple[float, float], *, dpi: int = 100):
    """A new pyplot-free Figure of ``figsize`` inches that displays as PNG in a notebook."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    fig._repr_png_ = lambda: png_bytes(fig)  # type: ignore[attr-defined]  # IPython's display() looks for it
    return fig


def png_bytes(fig) -> bytes:
    """The figure rendered as PNG bytes (every text as it is: a ``$`` in a class or file name is a dollar sign,
    never mathtext that could fail to parse)."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buf = io.BytesIO()
    # the saved image grows to hold every title, label and colour bar: none is ever cut at the edge
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write the figure as a PNG file, atomically; returns the path."""
    from soundlib.atomic import write_bytes_atomic

    return write_bytes_atomic(path, png_bytes(fig))


#: Classes up to which a confusion matrix's figure grows and names them (about 4,000 pixels a side at 60).
_CONFUSION_NAMED = 60


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str = "",
                   normalize: bool = False):
    """A confusion matrix: row-normalised colours, counts in the cells (``normalize``: each row's shares,
    i.e. the recall of its class on the diagonal).

    Parameters
    ----------
    matrix : array-like, shape (n_classes, n_classes)
        Counts; rows are true classes, columns predicted ones.
    classes : sequence of str, length n_classes
    normalize : bool
        Write the row-normalised shares (0-1) in the cells instead of the counts.
    """
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    shown = min(n, _CONFUSION_NAMED)  # beyond it the figure stops growing (and the class names are left out)
    fig = figure((1.0 + 0.6 * shown, 0.8 + 0.55 * shown), dpi=110)
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    unnamed = ""
    if n <= _CONFUSION_NAMED:
        ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
    else:
        unnamed = f" ({n} classes in the dataset's order; names left out)"
    ax.set_xlabel("predicted" + unnamed)
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0") if normalize else int(m[i, j]), ha="center",
                            va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or ("confusion matrix, normalised by true class" if normalize else "confusion matrix"),
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history: Mapping[str, Sequence[float]], *, title: str = ""):
    """Training curves: loss and accuracy per epoch, validation dashed when present."""
    fig = figure((8.0, 3.0))
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _label(index: Any) -> str:
    """A table row's name: ``variant/method`` for a (variant, method) index."""
    return "/".join(map(str, index)) if isinstance(index, tuple) else str(index)


def plot_results(table: Any, *, title: str = "accuracy and macro-F1 (mean ± std over folds)"):
    """Bar chart with error bars of a results table (``soundlib.sweep.results.collect_results``)."""
    fig = figure((max(4.0, 1.3 * len(table) + 2), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(table))
    w = 0.38
    ax.bar(x - w / 2, table["accuracy_mean"], w, yerr=table["accuracy_std"], capsize=4, label="accuracy")
    ax.bar(x + w / 2, table["macro_f1_mean"], w, yerr=table["macro_f1_std"], capsize=4, label="macro-F1")
    ax.set_xticks(x, [_label(i) for i in table.index], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_per_class_f1(frame: Any, *, title: str = "per-class F1 (all folds pooled)"):
    """Heatmap of a (rows × classes) DataFrame of F1 scores in [0, 1]."""
    fig = figure((max(5.0, 0.6 * frame.shape[1] + 2.5), max(2.0, 0.45 * frame.shape[0] + 1.6)))
    ax = fig.add_subplot()
    im = ax.imshow(frame.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), list(frame.columns), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(frame.shape[0]), [_label(i) for i in frame.index], fontsize=8)
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            v = float(frame.iat[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_timeline(starts: Sequence[float], proba: np.ndarray, labels: Sequence[str], *, window: float,
                  top: int = 5, title: str = "", segments: Sequence[Any] | None = None):
    """What a model hears along a recording: class probabilities per window, and the event segments.

    The rows are every class that wins a window (is its most probable class) or has a
    segment, then the classes most probable on average until there are ``top`` rows,
    ordered by mean probability.

    Parameters
    ----------
    starts : sequence of float, length n_windows
        Window starts in seconds.
    proba : np.ndarray, shape (n_windows, n_classes)
    labels : sequence of str, length n_classes
    window : float
        Window length in seconds (each window is drawn over its span, centred on its middle).
    segments : sequence of Segment or mapping, optional
        Event segments (``start, end, label, confidence``; see :func:`soundlib.models.events.event_segments`),
        outlined on their class's row.
    """
    from matplotlib.patches import Rectangle

    proba = np.asarray(proba, dtype=float)
    segs = [s if isinstance(s, Mapping) else s.to_dict() for s in (segments or [])]
    index = {str(lab): k for k, lab in enumerate(labels)}
    must = list(dict.fromkeys([int(k) for k in proba.argmax(axis=1)] +
                              [index[str(s["label"])] for s in segs if str(s["label"]) in index]))
    fill = [int(k) for k in np.argsort(-proba.mean(axis=0)) if int(k) not in must]
    order = sorted(must + fill[:max(0, top - len(must))], key=lambda k: -proba[:, k].mean())
    fig = figure((8.0, 1.2 + 0.35 * len(order)))
    ax = fig.add_subplot()
    centres = np.asarray(starts, dtype=float) + window / 2
    im = ax.imshow(proba[:, order].T, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest",
                   extent=(centres[0] - window / 2, centres[-1] + window / 2, len(order) - 0.5, -0.5))
    row = {k: i for i, k in enumerate(order)}
    for s in segs:
        i = row[index[str(s["label"])]] if str(s["label"]) in index else None
        if i is not None:
            ax.add_patch(Rectangle((float(s["start"]), i - 0.42), float(s["end"]) - float(s["start"]), 0.84,
                                   fill=False, edgecolor="crimson", linewidth=1.5))
    ax.set_yticks(range(len(order)), [labels[k] for k in order], fontsize=8)
    ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=ax, fraction=0.03, label="probability")
    ax.set_title(title or ("probability per window" + (", events outlined" if segs else "")), fontsize=9)
    fig.tight_layout()
    return fig


def _hz_ticks(freqs: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Row positions and labels of round frequencies for a spectrogram whose rows are at ``freqs`` Hz."""
    lo, hi = float(freqs[0]), float(freqs[-1])
    cands: list[float] = [0, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000]
    hz: list[float] = []
    rows: list[float] = []
    for f in [f for f in cands if lo <= f <= hi] or [lo, hi]:
        row = float(np.interp(f, freqs, np.arange(len(freqs)) + 0.5))
        if not rows or row - rows[-1] >= 0.08 * len(freqs):  # no labels on top of each other
            hz.append(f)
            rows.append(row)
    return np.asarray(rows), [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in hz]


def plot_feature(y: np.ndarray, spec: Any, *, title: str = ""):
    """The signal behind a picture, with the axes the picture itself does not have.

    The spectrogram of ``spec`` (the same values the picture is coloured from,
    before resizing) with time in seconds, frequency in Hz and a colour bar in dB
    relative to the clip's maximum (relative amplitude for ``scale="amplitude"``),
    like librosa's ``specshow``; for waveform, merged and stacked variants also
    (or only) the waveform in seconds and amplitude.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono samples at ``spec.sr`` Hz, as given to :func:`soundlib.pictures.features.render`.
    spec : soundlib.pictures.variants.FeatureSpec
    """
    from soundlib.pictures.features import spectrogram_frequencies, spectrogram_plane

    y = np.asarray(y, dtype=np.float32)
    seconds = len(y) / spec.sr
    panels = (["spectrogram"] if spec.kind != "waveform" else []) + (["waveform"] if spec.kind != "spectrogram" else [])
    ratios = [3.0 if p == "spectrogram" else 1.3 for p in panels]
    fig = figure((5.8, 0.8 + sum(ratios)))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios})[:, 0]
    for ax, panel in zip(axes, panels):
        if panel == "spectrogram":
            plane = spectrogram_plane(y, spec=spec)
            freqs = spectrogram_frequencies(spec)
            db = spec.scale == "db"
            values = (plane - 1.0) * spec.top_db if db else plane
            im = ax.imshow(values, origin="lower", aspect="auto", cmap=spec.colormap, interpolation="nearest",
                           extent=(0.0, seconds, 0.0, float(len(freqs))),
                           vmin=-spec.top_db if db else 0.0, vmax=0.0 if db else 1.0)
            rows, labels = _hz_ticks(freqs)
            ax.set_yticks(rows, labels)
            ax.set_ylabel(f"Hz ({spec.frequency})")
            fig.colorbar(im, ax=ax, format="%+.0f dB" if db else "%.1f", pad=0.02,
                         label="dB re clip maximum" if db else "amplitude re clip maximum")
        else:
            t = np.arange(len(y)) / spec.sr
            ax.plot(t, y, linewidth=0.5, color=np.asarray(spec.waveform_color) / 255.0)
            peak = float(np.max(np.abs(y))) if y.size else 1.0
            ax.set_ylim(-1.05 * (peak or 1.0), 1.05 * (peak or 1.0))
            ax.set_ylabel("amplitude")
    axes[-1].set_xlim(0.0, seconds)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title or f"{spec.name}: {spec.kind}, n_fft {spec.n_fft}, hop {spec.hop_length}", fontsize=9)
    return fig


def plot_prediction(picture: np.ndarray, top: Sequence[tuple[str, float]], *, true_label: str | None = None,
                    title: str = "", picture_title: str = "what the model sees"):
    """What the model sees beside the bar chart of its top-k classes (the true class in green, others grey;
    a wrong top class in red).

    Parameters
    ----------
    picture : np.ndarray, shape (H, W, 3) uint8, or (rows, frames)
        A picture, or a 2-D input of an audio network (a log-mel: bands or coefficients by frames, row 0
        the lowest), drawn with row 0 at the bottom and a colour bar.
    top : sequence of (label, probability)
        Highest probability first.
    true_label : str, optional
    picture_title : str
        What the picture is (wrapped to its panel's width).
    """
    import textwrap

    fig = figure((8.6, max(2.9, 0.9 + 0.35 * len(top))))
    fig.set_layout_engine("constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1.4]})
    picture = np.asarray(picture)
    if picture.ndim == 2:
        im = left.imshow(picture, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
        left.set_xlabel("frame")
        left.set_ylabel("band / coefficient")
        fig.colorbar(im, ax=left, fraction=0.05, pad=0.02)
    else:
        left.imshow(picture)
        left.set_axis_off()
    left.set_title(textwrap.fill(picture_title, 48), fontsize=8)
    labels = [lab for lab, _ in top]
    probs = [p for _, p in top]
    colors = ["tab:green" if lab == true_label else ("tab:red" if i == 0 and true_label is not None else "0.6")
              for i, lab in enumerate(labels)]
    y = np.arange(len(top))
    right.barh(y, probs, color=colors)
    right.set_yticks(y, labels, fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("probability")
    for yi, p in zip(y, probs):
        right.text(min(p + 0.02, 0.85), yi, f"{p:.1%}", va="center", fontsize=8)
    right.set_title(textwrap.fill(title or (f"top-{len(top)}; true class: {true_label}" if true_label
                                            else f"top-{len(top)}"), 60), fontsize=9)
    return fig


def plot_reliability(curves: Mapping[str, tuple[Sequence[float], Sequence[bool]]], *, n_bins: int | None = None,
                     title: str = "reliability diagram (top-1 confidence), all folds' test clips pooled"):
    """Reliability diagram: accuracy against top-1 confidence, one line per model, and how many clips
    fall in each confidence bin.

    A calibrated model's line follows the diagonal; below it, the model is over-confident. The ECE in
    the legend is of the clips as given (for a sweep, every fold's test clips pooled: "pooled ECE"), which
    differs from a mean of the folds' ECEs (the results tables' ``ece``).

    Parameters
    ----------
    curves : mapping of str to (confidence, correct)
        Per model: the top-1 probability of each clip, and whether its top class was right.
    n_bins : int, optional
        Equal-width bins (default :data:`soundlib.evaluation.metrics.ECE_BINS`, those of the ECE in the legend).
    """
    from soundlib.evaluation.metrics import ECE_BINS, expected_calibration_error, reliability_bins

    n_bins = n_bins or ECE_BINS
    fig = figure((5.2, 5.4))
    fig.set_layout_engine("constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.0, 1.1]})
    top.plot([0, 1], [0, 1], ":", color="0.5", label="calibrated")
    width = 1.0 / n_bins / max(1, len(curves))
    for i, (label, (conf, ok)) in enumerate(curves.items()):
        bins = reliability_bins(conf, ok, n_bins)
        count = np.asarray(bins["count"])
        keep = count > 0
        ece = expected_calibration_error(conf, ok, n_bins)
        top.plot(np.asarray(bins["confidence"])[keep], np.asarray(bins["accuracy"])[keep], "o-", markersize=4,
                 label=f"{label} (pooled ECE {ece:.3f})")
        bottom.bar(np.asarray(bins["edges"][:-1]) + (i + 0.5) * width, count, width=width)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.legend(fontsize=7, loc="best", framealpha=0.85)  # where it hides the fewest points
    top.set_title(title, fontsize=9)
    bottom.set_xlabel(f"top-1 confidence ({n_bins} bins)")
    bottom.set_ylabel("clips")
    return fig


def plot_embedding_map(xy: np.ndarray, labels: Sequence[str] | np.ndarray, *, classes: Sequence[str] | None = None,
                       highlight: np.ndarray | None = None, highlight_label: str = "test fold", title: str = ""):
    """A 2-D map of embeddings, one point per clip, coloured by class.

    Parameters
    ----------
    xy : np.ndarray, shape (n, 2)
        The projected points (see :func:`soundlib.lab.embedmap.project_2d`).
    labels : sequence of str, length n
        Each point's class.
    classes : sequence of str, optional
        Legend order (default: sorted labels).
    highlight : np.ndarray of bool, shape (n,), optional
        Points drawn with a black edge (e.g. the test fold's clips), named ``highlight_label``.
    """
    xy = np.asarray(xy, dtype=float)
    labels = np.asarray(labels)
    classes = list(classes) if classes is not None else sorted(set(labels.tolist()))
    fig = figure((6.8, 5.0))
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    cmap = _class_colours(len(classes))
    for k, c in enumerate(classes):
        m = labels == c
        if not m.any():
            continue
        ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap[k], label=c, alpha=0.8, linewidths=0)
    if highlight is not None and np.any(highlight):
        h = np.asarray(highlight, dtype=bool)
        ax.scatter(xy[h, 0], xy[h, 1], s=26, facecolors="none", edgecolors="black", linewidths=0.7,
                   label=highlight_label)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title or "embeddings in 2-D", fontsize=9)
    return fig


def _class_colours(n: int) -> list:
    """``n`` distinct colours (tab10, tab20, then a sampled hsv ring)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


def _names_as_text(plot):
    """``plot`` drawing every text as it is (matplotlib's ``text.parse_math`` off while it builds the figure):
    a class or file name holding ``$`` is shown, never parsed as mathtext that could fail the run."""
    import functools

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return wrapper


for _name in [n for n in __all__ if n.startswith("plot_")]:  # every figure soundlib draws
    globals()[_name] = _names_as_text(globals()[_name])
