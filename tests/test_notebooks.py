"""The four notebooks, executed by papermill on a tiny corpus with the stand-in backbone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from soundlib import notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("plotting_trials.ipynb", "train.ipynb", "visualize.ipynb", "evaluate.ipynb")
TINY_VARIANT = {"name": "tmel", "base": "mel", "height": 32, "width": 32, "duration": 1.0}


# ---------------------------------------------------------------------------
# The notebook files themselves (fast)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_thin_stripped_and_parameterised(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be stripped"
    source = "\n".join(c.source for c in code)
    assert "from soundlib" in source
    if name != "evaluate.ipynb":  # only the notebook that reads sweeps imports the sweep package
        assert "soundlib.sweep" not in source and "import sweep" not in source
    assert "soundlib._" not in source, "notebooks use public modules only"
    assert not re.search(r"^\s*(def|class) ", source, re.M), "notebook logic belongs in soundlib"


def test_sweep_passes_only_known_parameters():
    import papermill as pm

    known = set(pm.inspect_notebook(str(NOTEBOOKS / "train.ipynb")))
    from soundlib.sweep import SweepConfig
    from soundlib.sweep.driver import run_parameters
    from soundlib.variants import get_variant

    params = run_parameters(SweepConfig(dataset=Path("/data")), get_variant("mel"), 1, Path("/data"), Path("/out"))
    assert set(params) <= known
    assert set(pm.inspect_notebook(str(NOTEBOOKS / "evaluate.ipynb"))) == {"sweep_dir"}


# ---------------------------------------------------------------------------
# Helpers, in process (fast)




def execute(name: str, out: Path, **parameters) -> nbformat.NotebookNode:
    import papermill as pm

    return pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters,
                               kernel_name=notebook.default_kernel_name(), progress_bar=False, cwd=str(out.parent))


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def has_mime(nb, mime: str) -> bool:
    return any(mime in o.get("data", {}) for o in outputs(nb))


def cell_outputs(nb, text: str) -> list[dict]:
    """The outputs of the one code cell whose source holds ``text``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    assert len(cells) == 1, f"{len(cells)} cells hold {text!r}"
    return cells[0].get("outputs", [])


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory, cache) -> Path:
    path = tmp_path_factory.mktemp("backbone") / "tiny"
    subprocess.run([sys.executable, "-c", "import sys; from soundlib.backbones import save_tiny_backbone; "
                    "save_tiny_backbone(sys.argv[1])", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, tiny_backbone):
    """train.ipynb run once: <sweep>/tmel/frozen/fold1 holds its outputs and the exported model."""
    sweep_dir = tmp_path_factory.mktemp("nbsweep")
    run_dir = sweep_dir / "tmel" / "frozen" / "fold1"
    run_dir.mkdir(parents=True)
    nb = execute("train.ipynb", run_dir / "train.ipynb", dataset=str(corpus), fold=1, variant=TINY_VARIANT,
                 backbone=str(tiny_backbone), epochs=2, batch_size=8, output_dir=str(run_dir), export_model=True,
                 alert=False, generate_if_missing=False)
    return sweep_dir, run_dir, nb


def test_plotting_trials_notebook(tmp_path, cache):
    data = tmp_path / "new_corpus"  # missing: the notebook generates a small synthetic corpus there
    png = tmp_path / "picture.png"
    nb = execute("plotting_trials.ipynb", tmp_path / "out.ipynb", dataset=str(data), variant="stacked",
                 output_png=str(png))
    assert (data / "metadata" / "UrbanSound8K.csv").is_file()
    from soundlib.featurize import read_picture

    assert read_picture(png).shape == (224, 224, 3)
    assert has_mime(nb, "application/vnd.jupyter.widget-view+json")  # the widgets were built
    assert has_mime(nb, "image/png")


def test_train_notebook(trained):
    _, run_dir, nb = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_fold"] == 1 and metrics["variant"] == "tmel" and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["train_config"]["epochs"] == 2
    for name in ("predictions.csv", "confusion_matrix.png", "history.json"):
        assert (run_dir / name).is_file()
    assert (run_dir / "model" / "labels.txt").read_text().split() [0] == "air_conditioner"
    assert (run_dir / "model" / "saved_model").is_dir()
    pngs = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 1  # the confusion matrix (the frozen method's logistic head has no training curves)
    assert "chosen: {'C':" in json.dumps(outputs(nb))  # what the method chose on validation
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    assert "autoplay" not in json.dumps(outputs(nb))  # alert=False: no chime

    import pandas as pd

    predictions = pd.read_csv(run_dir / "predictions.csv")
    classes = list(metrics["per_class"])
    assert [c for c in predictions.columns if c.startswith("p_")] == [f"p_{c}" for c in classes]
    assert predictions[[f"p_{c}" for c in classes]].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-4)
    assert set(metrics["top_k_accuracy"]) == {"1", "3", "5"} and 0.0 <= metrics["ece"] <= 1.0
    # the normalised confusion matrix and the per-class table
    table = cell_outputs(nb, "run.per_class")
    assert any("image/png" in o.get("data", {}) for o in table)
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in table)
    assert all(col in html for col in ("precision", "recall", "f1", "support", classes[0]))
    # the misclassified clips: each with its picture and top-k chart, and its player
    wrong = int((predictions["true"] != predictions["predicted"]).sum())
    assert wrong > 0, "the fixture's run should get some test clips wrong"
    shown = cell_outputs(nb, "notebook.misclassified")
    assert f"{wrong} of {metrics['n']} test clips misclassified; showing {min(wrong, 4)}" in json.dumps(shown)
    assert sum("<audio" in "".join(o.get("data", {}).get("text/html", "")) for o in shown) == min(wrong, 4)
    assert sum("image/png" in o.get("data", {}) for o in shown) == min(wrong, 4)
    # the embedding map
    assert [o for o in cell_outputs(nb, "embedmap.embedding_map") if "image/png" in o.get("data", {})]


def test_visualize_notebook(trained, corpus, tmp_path):
    _, run_dir, _ = trained
    result = tmp_path / "pick.json"
    nb = execute("visualize.ipynb", tmp_path / "vis.ipynb", dataset=str(corpus), model_dir=str(run_dir / "model"),
                 seed=4, top_k=3, output_json=str(result))
    pick = json.loads(result.read_text())
    assert pick["fold"] == 1  # the model's test fold by default
    assert len(pick["top"]) == 3 and pick["predicted"] == pick["top"][0]["label"]
    probs = [t["probability"] for t in pick["top"]]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert pick["correct"] == (pick["predicted"] == pick["true_label"])
    assert has_mime(nb, "image/png")  # the picture
    assert "<audio" in json.dumps(outputs(nb))  # the player
    other = tmp_path / "pick2.json"
    execute("visualize.ipynb", tmp_path / "vis2.ipynb", dataset=str(corpus), model_dir=str(run_dir / "model"),
            fold=2, label="siren", output_json=str(other))
    assert json.loads(other.read_text())["true_label"] == "siren"


def test_evaluate_notebook(trained, tmp_path):
    sweep_dir, _, _ = trained
    nb = execute("evaluate.ipynb", tmp_path / "eval.ipynb", sweep_dir=str(sweep_dir))
    import pandas as pd

    table = pd.read_csv(sweep_dir / "results.csv", index_col=["variant", "method"])
    assert list(table.index) == [("tmel", "frozen")] and table.loc[("tmel", "frozen"), "folds"] == 1
    assert "| tmel | frozen | 1 |" in (sweep_dir / "results.md").read_text()
    assert (sweep_dir / "tmel" / "frozen" / "confusion_matrix.png").is_file()
    assert has_mime(nb, "image/png") and has_mime(nb, "text/html")
    calibration = cell_outputs(nb, "plot_reliability")  # the reliability diagram, and top-k and ECE per row
    assert [o for o in calibration if "image/png" in o.get("data", {})]
    assert "top_5_accuracy" in "".join(o.get("data", {}).get("text/html", "") for o in calibration)
