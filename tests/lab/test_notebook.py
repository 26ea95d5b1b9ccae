"""The helpers the notebooks call."""

from __future__ import annotations

import pytest

from soundlib.lab import notebook
from soundlib.errors import ConfigError, DatasetError
from soundlib.evaluation.plots import plot_history
from soundlib.pictures.variants import resolve_variant

TINY_VARIANT = {"name": "tmel", "base": "mel", "height": 32, "width": 32, "duration": 1.0}


def test_pick_clip_and_helpers(corpus):
    ds = notebook.open_dataset(corpus)
    a = notebook.pick_clip(ds, fold=2, label="siren", seed=3)
    assert a.fold == 2 and a.label == "siren"
    assert notebook.pick_clip(ds, fold=2, label="siren", seed=3) == a
    with pytest.raises(DatasetError, match="no clip"):
        notebook.pick_clip(ds, fold=9)
    assert notebook.alert_tone(True) is None  # not in a Jupyter kernel
    fig = plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.2, 0.6]})
    assert fig._repr_png_()[:4] == b"\x89PNG"
    cfg = notebook.eval_config(variant=TINY_VARIANT, seed=4, train={"epochs": 3, "l2": "1e-4", "steps": 5,
                                                                    "dropout": None})
    assert cfg.train.l2 == 1e-4 and cfg.train.steps == 5 and cfg.train.seed == 4 and cfg.seed == 4
    assert cfg.train.dropout == type(cfg.train)().dropout  # None keeps the default
    assert cfg.spec.height == 32 and cfg.backbone == type(cfg)().backbone and cfg.k_folds == type(cfg)().k_folds
    with pytest.raises(ConfigError, match="learning_rate"):
        notebook.eval_config(variant="mel", train={"learning_rate": float("nan")})
    with pytest.raises(ConfigError, match="unknown feature variant"):
        notebook.eval_config(variant="nope")
    assert resolve_variant(TINY_VARIANT).height == 32
    assert resolve_variant(resolve_variant(TINY_VARIANT).to_dict()) == resolve_variant(TINY_VARIANT)


def test_open_dataset_generates_only_when_asked(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        notebook.open_dataset(tmp_path / "nothing")
    ds = notebook.open_dataset(tmp_path / "made", generate_if_missing=True, clips_per_class=1)
    assert len(ds) == 10


# ---------------------------------------------------------------------------
# Executed by papermill


def test_prediction_figure_is_picture_beside_top_k_bars(corpus):
    import numpy as np

    clip = notebook.pick_clip(notebook.open_dataset(corpus), label="siren", seed=0)
    pred = notebook.ClipPrediction(clip, np.zeros((32, 32, 3), np.uint8), [("dog_bark", 0.6), ("siren", 0.3),
                                                                          ("drilling", 0.1)])
    fig = pred.figure()
    picture, bars = fig.axes
    assert picture.images and not picture.axison  # the picture, as the model sees it
    assert [t.get_text() for t in bars.get_yticklabels()] == ["dog_bark", "siren", "drilling"]
    assert [round(p.get_width(), 3) for p in bars.patches] == [0.6, 0.3, 0.1]
    assert "predicted dog_bark" in bars.get_title() and fig._repr_png_()[:4] == b"\x89PNG"
