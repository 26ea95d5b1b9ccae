"""Figures as a reader sees them (desk review F13-F14): no title or colour-bar label cut at the image's edge,
the two ECE figures labelled (pooled vs mean of folds), no table shown twice, no raw dict in a notebook."""

from __future__ import annotations

import io
from pathlib import Path

import nbformat
import numpy as np

from soundlib.evaluation import plots

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def ink_at_edges(png: bytes) -> tuple[bool, bool]:
    """Whether any non-white pixel touches the left or the right edge (text cut there)."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return bool((a[:, 0] < 200).any()), bool((a[:, -1] < 200).any())


def test_long_titles_and_colour_bar_labels_are_never_cut():
    """The embedding map's title (a long embedder name) used to be cut on the left, the explorer's colour-bar
    label on the right: the saved PNG now grows to hold them."""
    title = "40 clips, mel embedded by embedded:efficientnet_lite0:efficientnet-lite0-57934424.pth:port1 " * 2
    fig = plots.figure((4.0, 3.0))
    ax = fig.add_subplot()
    im = ax.imshow(np.zeros((4, 4)))
    fig.colorbar(im, ax=ax, label="dB re clip maximum, a long colour-bar label")
    ax.set_title(title)
    png = plots.png_bytes(fig)
    assert png_size(png)[0] > 400  # wider than the 4-inch canvas at 100 dpi: nothing clipped
    assert ink_at_edges(png) == (False, False)


def test_the_embedding_map_title_is_wrapped_and_whole():
    xy = np.random.default_rng(0).normal(size=(20, 2))
    labels = np.array(["a", "b"] * 10)
    title = "20 clips, mn04 (4-s windows at 32 kHz every 2 s, short clips as they are) (t-SNE) " * 2
    png = plots.plot_embedding_map(xy, labels, title=title)._repr_png_()
    assert ink_at_edges(png) == (False, False)


def test_reliability_diagram_says_its_ece_is_pooled():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 200)
    fig = plots.plot_reliability({"mel/frozen": (conf, rng.uniform(size=200) < conf)})
    top = fig.axes[0]
    assert top.get_legend().get_texts()[1].get_text().startswith("mel/frozen (pooled ECE 0.")
    assert "pooled" in top.get_title()
    assert top.get_legend()._loc != 2  # not pinned to the upper left, where under-confident curves lie


def test_evaluate_notebook_labels_its_ece_and_shows_each_table_once():
    nb = nbformat.read(NOTEBOOKS / "evaluate.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    first = next(s for s in code if "results_table_markdown" in s)
    assert not first.rstrip().endswith("table")  # the Markdown table only, not the same DataFrame again
    assert any('"ece (mean of folds)"' in s for s in code)
    assert any('notebook.choice_text' in s for s in code)  # the choice column as words, not dicts


def test_train_notebook_prints_no_raw_dict():
    nb = nbformat.read(NOTEBOOKS / "train.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "{metrics.top_k_accuracy}" not in code and "{metrics.choice}" not in code
    assert "notebook.choice_table(metrics.choice)" in code and "notebook.scores_line(metrics)" in code
    assert "run.per_class.round(3)" in code
