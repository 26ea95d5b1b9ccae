"""train.ipynb and visualize.ipynb on audio embedders (papermill, tiny corpus): the header names the method,
its embedder and its windows; the misclassified clips show the network's own input; the embedding map is
the method's own embeddings; the model on mn04 is visualised with its log-mel. (Before: with
``method="frozen", backbone="mn04"`` the map cell failed, the header said ``backbone efficientnet_lite0`` for
``method="mn04"``, and the clips and the map were EfficientNet's mel pictures.)"""

from __future__ import annotations

import json

import pytest

from .test_notebooks import TINY_VARIANT, cell_outputs, execute, outputs

pytestmark = pytest.mark.timeout(900)


def text_of(outs) -> str:
    return "\n".join(o.get("text", "") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain", "")
                     for o in outs)


def titles_of_figures(nb) -> str:
    return json.dumps(outputs(nb))


#: train.ipynb's parameters per way of naming an embedder.
RUNS = {"mn04": {"method": "mn04"}, "frozen_mn04": {"method": "frozen", "backbone": "mn04"},
        "mfcc": {"method": "mfcc"},
        "auto": {"method": {"name": "auto", "method": "auto", "candidates": ["mfcc", "mn04"], "fusions": False,
                            "inner_folds": 2}}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus, cache):
    """train.ipynb once per key of :data:`RUNS` asked for (each exporting its model, when the method can)."""
    done: dict = {}

    def run(key):
        if key not in done:
            run_dir = tmp_path_factory.mktemp(key) / "run"
            nb = execute("train.ipynb", run_dir.parent / "train.ipynb", dataset=str(corpus), fold=1,
                         variant=TINY_VARIANT, output_dir=str(run_dir), export_model=True, alert=False,
                         generate_if_missing=False, progress=False, n_misclassified=2, **RUNS[key])
            done[key] = (run_dir, nb)
        return done[key]

    return run


@pytest.mark.parametrize("key", ["mn04", pytest.param("frozen_mn04", marks=pytest.mark.slow)])
def test_train_notebook_on_mn04(runs, key):
    run_dir, nb = runs(key)
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    header = text_of(cell_outputs(nb, "views.describe_method(config, dataset=ds)"))
    assert "embedder mn04 (1-s windows at 32 kHz every 0.5 s, short clips as they are)" in header, header
    assert "efficientnet" not in header.lower()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["backbone"].startswith("efficientat:mn04")
    shown = cell_outputs(nb, "notebook.misclassified")
    pictures = [o for o in shown if "image/png" in o.get("data", {})]
    assert pictures and all("<audio" in json.dumps(shown) for _ in pictures)
    emap = cell_outputs(nb, "embedmap.embedding_map")
    assert [o for o in emap if "image/png" in o.get("data", {})], text_of(emap)


def test_what_the_mn04_model_sees_is_its_log_mel(runs, corpus):
    """The helper the misclassified cell calls returns mn04's 128-band log-mel (not a 224x224 picture), and
    the map maps mn04's own embeddings."""
    from soundlib.lab import embedmap, notebook
    from soundlib.audio.loaders import load_dataset

    run_dir, _ = runs("mn04")
    config = notebook.eval_config(variant=TINY_VARIANT, method="mn04")
    examples = notebook.misclassified(run_dir, config.spec, limit=1, config=config)
    for ex in examples:
        assert ex.picture.ndim == 2 and ex.picture.shape[0] == 128 and ex.seen.startswith("mn04's input: log-mel")
    emap = embedmap.embedding_map(load_dataset(corpus), config, test_fold=1, run_dir=run_dir)
    assert emap.table.backbone.startswith("efficientat:mn04") and emap.embedder.startswith("mn04 (")


def test_train_notebook_on_mfcc(runs):
    run_dir, nb = runs("mfcc")
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    header = text_of(cell_outputs(nb, "views.describe_method(config, dataset=ds)"))
    assert "method mfcc (embedder mfcc (1-s windows at 22.05 kHz every 0.5 s" in header, header
    assert [o for o in cell_outputs(nb, "embedmap.embedding_map") if "image/png" in o.get("data", {})]


@pytest.mark.slow
def test_train_notebook_on_auto_maps_the_pick(runs):
    run_dir, nb = runs("auto")
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    header = text_of(cell_outputs(nb, "views.describe_method(config, dataset=ds)"))
    assert header.count("method auto: picks per fold") == 1 and "mfcc on mfcc" in header and "mn04 on mn04" in header
    picked = json.loads((run_dir / "metrics.json").read_text())["choice"]["picked"]
    assert picked in ("mfcc", "mn04")
    chosen = "".join(o.get("data", {}).get("text/html", "") for o in cell_outputs(nb, "choice_table"))
    assert "<th>picked</th>" in chosen and f"<td>{picked}</td>" in chosen
    assert [o for o in cell_outputs(nb, "embedmap.embedding_map") if "image/png" in o.get("data", {})]


@pytest.mark.parametrize("key", ["mn04"])
def test_visualize_notebook_on_an_audio_model(runs, corpus, tmp_path, key):
    run_dir, _ = runs(key)
    result = tmp_path / "pick.json"
    nb = execute("visualize.ipynb", tmp_path / "vis.ipynb", dataset=str(corpus), model_dir=str(run_dir / "model"),
                 seed=1, output_json=str(result))
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    said = text_of(outputs(nb))
    assert f"method {key}, embedder {key} (1-s windows" in said, said
    assert json.loads(result.read_text())["top"]
    assert any("image/png" in o.get("data", {}) for o in outputs(nb)) and "<audio" in json.dumps(outputs(nb))
