"""What a method embeds with and what its network sees (soundlib.lab.views), for every kind of embedder:
train.ipynb's header, its misclassified view and its embedding map read these."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.lab import notebook, views

from ..conftest import small_spec


MEL4 = {"name": "mel4", "base": "mel", "duration": 4.0}


def config(method, backbone=None, variant=MEL4):
    return notebook.eval_config(variant=variant, method=method, backbone=backbone)


@pytest.mark.parametrize("method, backbone, name", [
    ("frozen", None, "efficientnet_lite0"), ("frozen", "mn04", "mn04"), ("mn04", None, "mn04"),
    ("yamnet", None, "yamnet"), ("speech", None, "speech"), ("mfcc", None, "mfcc"),
    ({"name": "m20", "method": "mfcc", "n_mfcc": 20}, None, "mfcc")])
def test_method_embedder_is_the_one_the_method_uses(method, backbone, name):
    """`method="frozen", backbone="mn04"` and `method="mn04"` both embed with mn04 (the header used to say
    `backbone efficientnet_lite0` for the second), at 32 kHz and unpadded."""
    me = views.method_embedder(config(method, backbone))
    assert me.name == name and not me.trained
    line = views.describe_method(config(method, backbone))
    assert f"embedder {name}" in line
    if name == "mn04":
        assert "4-s windows at 32 kHz every 2 s, short clips as they are" in line
        assert "efficientnet" not in line
    if name == "efficientnet_lite0":
        assert "224x224 mel4 pictures of 4-s windows at 22.05 kHz every 2 s" in line
    if isinstance(method, dict):
        assert me.embedder.n_mfcc == 20  # the method's own options, not the registered default


def test_auto_embeds_with_the_candidate_it_picked():
    cfg = config("auto")
    assert views.method_embedder(cfg) is None  # nothing picked yet
    line = views.describe_method(cfg)
    assert line.startswith("method auto: picks per fold") and "mn04 on mn04 (4-s windows at 32 kHz" in line
    assert "mfcc on mfcc" in line and "frozen on efficientnet_lite0" in line
    me = views.method_embedder(cfg, choice={"picked": "mn04"})
    assert me.name == "mn04" and me.via == "auto picked mn04"
    me = views.method_embedder(cfg, choice={"picked": "late_fusion", "exported": "yamnet"})
    assert me.name == "yamnet" and "late_fusion (a fusion); its best single candidate yamnet" in me.via
    assert views.method_embedder(config("scratch")) is None
    assert views.method_embedder(config("finetune")).trained


def test_method_embedder_reads_the_pick_of_a_run(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    from soundlib.evaluation.metrics import RunMetrics

    m = RunMetrics(variant="mel", test_fold=1, accuracy=1.0, macro_f1=1.0, n=1, per_class={}, confusion_matrix=[],
                   choice={"picked": "mfcc", "rule": "best"}, duration={"seconds": 1.5})
    m.write(tmp_path)
    cfg = config("auto", variant="mel")
    assert "their length chosen from the clips (duration: fit)" in views.method_embedder(
        cfg, choice={"picked": "mfcc"}).describe()
    me = views.method_embedder(cfg, run_dir=tmp_path)
    assert me.name == "mfcc" and me.via == "auto picked mfcc"
    assert "1.5-s windows" in me.describe()  # the window the run chose (duration: fit)


def test_model_input_is_the_networks_own(synth_corpus):
    """What the model sees: the picture for a picture backbone; for mn04 its 128-band log-mel at 32 kHz (10-ms
    frames), for mfcc the MFCC matrix: never the mel picture of an audio network."""
    from soundlib.embedders import resolve_embedder
    from soundlib.embedders.mfcc import MfccEmbedder

    path = load_dataset(synth_corpus).clips[0].path  # one second at 22.05 kHz
    spec = small_spec()
    title, pic = views.model_input(path, resolve_embedder("efficientnet_lite0"), spec)
    assert pic.shape == (32, 32, 3) and pic.dtype == np.uint8 and "mel picture" in title
    title, mel = views.model_input(path, resolve_embedder("mn04"), spec)
    assert mel.ndim == 2 and mel.shape[0] == 128 and 95 <= mel.shape[1] <= 101 and "mn04's input: log-mel" in title
    from soundlib.embedders.nets.efficientat_mn import log_mel

    assert np.isfinite(mel).all() and mel.dtype == log_mel(np.zeros(32000, np.float32)).dtype
    title, mf = views.model_input(path, MfccEmbedder(n_mfcc=20), spec)
    assert mf.shape[0] == 20 and mf.ndim == 2 and "20 MFCCs" in title


def test_the_prediction_figure_draws_a_2d_input():
    from soundlib.evaluation.plots import plot_prediction

    fig = plot_prediction(np.random.default_rng(0).normal(size=(128, 100)), [("a", 0.7), ("b", 0.3)],
                          true_label="b", picture_title="mn04's input: log-mel, 128 bands x 100 frames")
    assert fig._repr_png_()[:4] == b"\x89PNG"
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("mn04's input") for t in titles) and len(fig.axes) == 3  # with its colour bar


def test_choice_and_scores_are_tables_not_dicts():
    table = notebook.choice_table({"picked": "mn04", "val_accuracy": {"mn04": 0.83333, "mfcc": 0.5},
                                   "notes": [], "C": 0.1})
    assert table.loc["val_accuracy / mn04", "value"] == "0.8333" and table.loc["notes", "value"] == "-"
    assert "{" not in table.to_string()

    class M:
        top_k_accuracy = {"1": 0.5666666666666667, "3": 0.9, "5": 1.0}
        ece = 0.23456

    line = notebook.scores_line(M())
    assert line == "top-1 0.567, top-3 0.900, top-5 1.000; calibration error (ECE, 15 bins, this fold's clips) 0.235"
    assert json.dumps(M.top_k_accuracy) not in line


def test_no_map_reason_says_why():
    assert "trains its own small network" in views.no_map_reason(config("scratch"))
    assert "not in the cache" in views.no_map_reason(config("finetune"))
    assert "joins several embedders" in views.no_map_reason(config({"name": "f", "method": "fusion"}))
