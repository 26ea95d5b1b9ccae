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
           "plot_per_class_f1", "plot_timeline"]


def figure(figsize: tuple[float, float], *, dpi: int = 100):
    """A new pyplot-free Figure of ``figsize`` inches that displays as PNG in a notebook."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    fig._repr_png_ = lambda: png_bytes(fig)  # IPython's display() looks for it
    return fig


def png_bytes(fig) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write the figure as a PNG file, atomically; returns the path."""
    from .atomic import write_bytes_atomic

    return write_bytes_atomic(path, png_bytes(fig))


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str = ""):
    """A confusion matrix: row-normalised colours, counts in the cells.

    Parameters
    ----------
    matrix : array-like, shape (n_classes, n_classes)
        Counts; rows are true classes, columns predicted ones.
    classes : sequence of str, length n_classes
    """
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig = figure((1.0 + 0.6 * n, 0.8 + 0.55 * n), dpi=110)
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix", fontsize=9)
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
                  top: int = 5, title: str = ""):
    """What a model hears along a recording: the probability of the ``top`` classes (by their mean) per window.

    Parameters
    ----------
    starts : sequence of float, length n_windows
        Window starts in seconds.
    proba : np.ndarray, shape (n_windows, n_classes)
    labels : sequence of str, length n_classes
    window : float
        Window length in seconds (each window is drawn over its span, centred on its middle).
    """
    proba = np.asarray(proba, dtype=float)
    order = np.argsort(-proba.mean(axis=0))[:max(1, min(top, proba.shape[1]))]
    fig = figure((8.0, 1.2 + 0.35 * len(order)))
    ax = fig.add_subplot()
    centres = np.asarray(starts, dtype=float) + window / 2
    im = ax.imshow(proba[:, order].T, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest",
                   extent=(centres[0] - window / 2, centres[-1] + window / 2, len(order) - 0.5, -0.5))
    ax.set_yticks(range(len(order)), [labels[k] for k in order], fontsize=8)
    ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=ax, fraction=0.03, label="probability")
    ax.set_title(title or "probability per window", fontsize=9)
    fig.tight_layout()
    return fig

