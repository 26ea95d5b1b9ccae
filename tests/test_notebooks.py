"""The four notebooks, executed by papermill on a tiny corpus with the stand-in backbone, and with their
default parameters after a (tiny) `make demo`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from soundlib.lab import notebook

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
    assert not notebook_residue(nb), notebook_residue(nb)
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
    from soundlib.pictures.variants import get_variant

    params = run_parameters(SweepConfig(dataset=Path("/data")), get_variant("mel"), 1, Path("/data"), Path("/out"))
    assert set(params) <= known
    assert set(pm.inspect_notebook(str(NOTEBOOKS / "evaluate.ipynb"))) == {"sweep_dir"}


def notebook_residue(nb) -> list[str]:
    """What a tracked notebook must not carry (what nbstripout removes): outputs, execution counts, a
    run's cell metadata (``execution``, ``collapsed``/``scrolled`` view state) and saved widget state."""
    found = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.get("outputs"):
            found.append(f"cell {i}: {len(c.outputs)} output(s)")
        if c.get("execution_count") is not None:
            found.append(f"cell {i}: execution_count {c.execution_count}")
        found += [f"cell {i}: metadata {k!r}" for k in ("execution", "collapsed", "scrolled", "papermill")
                  if k in c.metadata]
    found += [f"notebook metadata {k!r}" for k in ("widgets", "papermill") if k in nb.metadata]
    return found


def test_the_strip_check_fails_on_a_notebook_with_outputs():
    """The check above is not one that cannot fail: an executed notebook's cells are caught."""
    nb = nbformat.read(NOTEBOOKS / "visualize.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    assert not notebook_residue(nb)
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    assert len(notebook_residue(nb)) == 3


def test_pre_commit_strips_the_notebooks():
    """`.pre-commit-config.yaml` runs nbstripout on notebooks, nbstripout is in the dev extra and
    environment.yml, and the README says how to install the hook."""
    import tomllib

    import yaml

    root = NOTEBOOKS.parent
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    strip = [h for h in hooks if h["id"] == "nbstripout"]
    assert strip and all(h.get("files", r"\.ipynb$").endswith("ipynb$") for h in strip)
    dev = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith(("nbstripout", "pre-commit")) for d in dev)
    assert {d.split(">")[0].split("=")[0].strip() for d in dev} >= {"nbstripout", "pre-commit"}
    assert "nbstripout" in (root / "environment.yml").read_text()
    readme = (root / "README.md").read_text()
    assert "pre-commit install" in readme and "nbstripout --install" in readme


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
    subprocess.run([sys.executable, "-c", "import sys; from soundlib.embedders.backbones import save_tiny_backbone; "
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
    from soundlib.pictures.featurize import read_picture

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
    chosen = "".join(o.get("data", {}).get("text/html", "") for o in cell_outputs(nb, "choice_table"))
    assert "<th>C</th>" in chosen and "{'C'" not in json.dumps(outputs(nb))  # a table, never a raw dict
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


def test_visualize_notebook_shows_the_events_of_a_long_clip(trained, corpus, tmp_path):
    """A clip three windows long: the timeline (every class that wins a window) and its event segments."""
    import numpy as np
    import soundfile as sf

    from soundlib.audio.loaders import load_dataset

    _, run_dir, _ = trained
    ds = load_dataset(corpus)
    parts = [sf.read(str(next(c.path for c in ds.clips if c.label == lab)))[0]
             for lab in ("siren", "dog_bark", "drilling")]
    sf.write(str(tmp_path / "long.wav"), np.concatenate(parts), 22050)
    sf.write(str(tmp_path / "short.wav"), parts[0], 22050)
    (tmp_path / "manifest.csv").write_text("path,label,fold\nlong.wav,siren,1\nshort.wav,dog_bark,2\n")
    nb = execute("visualize.ipynb", tmp_path / "vis.ipynb", dataset=str(tmp_path / "manifest.csv"),
                 model_dir=str(run_dir / "model"), fold=1, threshold=0.01)
    assert not any(o.get("output_type") == "error" for o in outputs(nb))
    pngs = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2  # the picture and the timeline
    tables = [o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {})]
    events = [t for t in tables if "<th>confidence</th>" in t]
    assert len(events) == 1 and events[0].count("<tr>") >= 2  # the header and a row per segment
    assert "<td>0.0</td>" in events[0]  # at threshold 0.01 some class is heard from the start


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


# ---------------------------------------------------------------------------
# After `make demo`: every notebook with its default parameters (Run All right after the demo)

#: A tiny demo sweep (`python -m soundlib.demo --params`): the demo's layout, 30 one-second clips, one run.
TINY_DEMO = """\
synth: {clips_per_class: 3, seed: 0, duration: 1.0, slices_per_recording: 1, n_folds: 3}
folds: [1]
variants: [mel]
backbone: efficientnet_lite0
export_model: [1]
jobs: 1
seed: 0
"""


@contextlib.contextmanager
def environ(**changes):
    """``os.environ`` with ``changes`` (None removes a variable), restored afterwards (papermill's kernels
    inherit it)."""
    def apply(values):
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    old = {k: os.environ.get(k) for k in changes}
    apply(changes)
    try:
        yield
    finally:
        apply(old)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`python -m soundlib.demo` run once, as `make demo` runs it, into <root>/demo_out (a tiny sweep file);
    the notebooks then run in <root>/notebooks, where their defaults (../demo_out/...) resolve."""
    root = tmp_path_factory.mktemp("checkout")
    (root / "notebooks").mkdir()
    (root / "tiny_demo.yaml").write_text(TINY_DEMO)
    env = {"SOUNDLIB_CACHE_DIR": str(root / "cache"), "TF_CPP_MIN_LOG_LEVEL": None, "SOUNDLIB_VERBOSE": None}
    with environ(**env):
        out = subprocess.run([sys.executable, "-m", "soundlib.demo", "--out", "demo_out", "--jobs", "1",
                              "--params", "tiny_demo.yaml"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return root, env, out


def run_default(demo, name: str) -> nbformat.NotebookNode:
    """Execute a notebook with its default parameters after the demo (cwd: <root>/notebooks)."""
    import papermill as pm

    root, env, _ = demo
    with environ(**env):
        return pm.execute_notebook(str(NOTEBOOKS / name), str(root / "notebooks" / name), kernel_name=
                                   notebook.default_kernel_name(), progress_bar=False, cwd=str(root / "notebooks"))


def assert_nothing_written_beside_the_notebooks(root: Path) -> None:
    """Run from `make lab`, a notebook writes only under a run folder (demo_out/...), never into notebooks/
    (there: only the executed notebooks this test itself saved)."""
    left = sorted(p.name for p in (root / "notebooks").iterdir() if p.suffix != ".ipynb")
    assert not left, f"written into notebooks/: {left}"


def test_notebook_defaults_write_outside_notebooks():
    """Every path parameter a notebook writes to defaults to a place under demo_out/ (ignored by git), never
    to notebooks/ or the checkout's root."""
    import ast

    import papermill as pm

    writes = {"plotting_trials.ipynb": ["output_png"], "train.ipynb": ["output_dir"],
              "visualize.ipynb": ["output_json"], "evaluate.ipynb": []}
    for name, keys in writes.items():
        params = pm.inspect_notebook(str(NOTEBOOKS / name))
        for key in keys:
            default = ast.literal_eval(params[key]["default"])
            if default is None:
                continue
            target = (NOTEBOOKS / default).resolve()
            assert target.is_relative_to((NOTEBOOKS.parent / "demo_out").resolve()), (name, key, default)
    ignored = (NOTEBOOKS.parent / ".gitignore").read_text().split()
    assert "/demo_out/" in ignored


def check_clean(nb) -> None:
    """No error, no TensorFlow start-up line, no progress bar printed as text."""
    from .test_quiet import tf_noise

    outs = outputs(nb)
    assert not any(o.get("output_type") == "error" for o in outs)
    text = "\n".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
    text += "\n".join(o.get("data", {}).get("text/plain", "") for o in outs)
    assert not tf_noise(text), tf_noise(text)
    assert not re.search(r"\d+%\|", "\n".join(o.get("text", "") for o in outs if o.get("output_type") == "stream"))


def test_notebook_defaults_read_what_make_demo_writes():
    """The parameters cells' defaults are the paths `make demo` (params/demo.yaml into demo_out/) writes."""
    import ast

    import papermill as pm

    from soundlib.demo import DEFAULT_OUT, DEMO_PARAMS
    from soundlib.sweep import load_sweep_config

    config = load_sweep_config(DEMO_PARAMS)
    fold = min(f for f in range(1, 11) if config.exports(f, config.variants[0].name))
    sweep_dir = DEFAULT_OUT / "sweep"
    expected = {
        "plotting_trials.ipynb": {"dataset": DEFAULT_OUT / "synth"},
        "train.ipynb": {"dataset": DEFAULT_OUT / "synth"},
        "visualize.ipynb": {"dataset": DEFAULT_OUT / "synth",
                            "model_dir": sweep_dir / config.variants[0].name / config.methods[0].name
                            / f"fold{fold}" / "model"},
        "evaluate.ipynb": {"sweep_dir": sweep_dir},
    }
    assert "DEMO   ?= demo_out" in (NOTEBOOKS.parent / "Makefile").read_text()
    for name, paths in expected.items():
        params = pm.inspect_notebook(str(NOTEBOOKS / name))
        for key, path in paths.items():
            default = ast.literal_eval(params[key]["default"])
            assert (NOTEBOOKS / default).resolve() == path.resolve(), (name, key, default)


def test_make_demo_says_the_notebooks_run_as_they_are(tmp_path):
    """Into demo_out/ (`make demo`), the next step is `make lab` and the notebooks as they are; elsewhere
    it names the parameters to set."""
    from soundlib.demo import DEFAULT_OUT, next_step

    model = DEFAULT_OUT / "sweep" / "mel" / "frozen" / "fold1" / "model"
    line = next_step(DEFAULT_OUT, DEFAULT_OUT / "synth", DEFAULT_OUT / "sweep", model)
    assert "`make lab`" in line and "visualize.ipynb" in line and "mel/frozen/fold1" in line
    assert "model_dir =" not in line and "default parameters read demo_out/" in line
    line = next_step(tmp_path, tmp_path / "synth", tmp_path / "sweep", tmp_path / "m")
    assert f"model_dir = '{tmp_path / 'm'}'" in line and f"sweep_dir = '{tmp_path / 'sweep'}'" in line


@pytest.mark.slow
def test_demo_says_what_to_open_next(demo):
    root, _, out = demo
    from .test_quiet import tf_noise

    lines = out.stdout.splitlines()
    model = root / "demo_out" / "sweep" / "mel" / "frozen" / "fold1" / "model"
    assert (model / "saved_model").is_dir()
    assert "make lab" in lines[-1] and "visualize.ipynb" in lines[-1] and str(model) in lines[-1]
    listed = [line for line in lines if line.rstrip().endswith(".ipynb") or "train.ipynb" in line]
    assert len(listed) == 1 and "executed notebooks: 1 under" in listed[0]  # one line, not one per run
    assert not tf_noise(out.stdout + out.stderr), tf_noise(out.stdout + out.stderr)  # the sweep is quiet
    exported = nbformat.read(root / "demo_out" / "sweep" / "mel" / "frozen" / "fold1" / "train.ipynb", as_version=4)
    check_clean(exported)  # the run that exported its model: TensorFlow's first import there


@pytest.mark.slow
def test_plotting_trials_with_defaults_after_demo(demo):
    root, _, _ = demo
    nb = run_default(demo, "plotting_trials.ipynb")
    check_clean(nb)
    assert (root / "demo_out" / "lab" / "plotting_trials.png").is_file()
    assert has_mime(nb, "application/vnd.jupyter.widget-view+json")
    assert_nothing_written_beside_the_notebooks(root)


@pytest.mark.slow
def test_train_with_defaults_after_demo(demo):
    root, _, _ = demo
    nb = run_default(demo, "train.ipynb")
    check_clean(nb)
    run = root / "demo_out" / "lab" / "train"
    assert json.loads((run / "metrics.json").read_text())["variant"] == "mel"
    assert_nothing_written_beside_the_notebooks(root)
    assert not (root / "runs").exists()
    assert (run / "model" / "saved_model").is_dir()
    bars = [o["data"]["text/plain"] for o in outputs(nb)
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert any("embed mel" in bar for bar in bars), bars  # tqdm.auto's bar, a widget in the notebook


@pytest.mark.slow
def test_visualize_with_defaults_after_demo(demo):
    nb = run_default(demo, "visualize.ipynb")
    check_clean(nb)
    assert has_mime(nb, "image/png") and "<audio" in json.dumps(outputs(nb))
    assert "(fold 1): true class" in json.dumps(outputs(nb))


@pytest.mark.slow
def test_evaluate_with_defaults_after_demo(demo):
    root, _, _ = demo
    nb = run_default(demo, "evaluate.ipynb")
    check_clean(nb)
    assert "| mel | frozen | 1 |" in (root / "demo_out" / "sweep" / "results.md").read_text()
    assert has_mime(nb, "text/html")
