"""Sweeps end to end: local / resumed / failing / Dask runs.

The end-to-end tests use a tiny synthetic corpus (5 clips per class, 1 s, 3 folds),
32x32 pictures and the stand-in backbone (``save_tiny_backbone``); every TensorFlow
artefact goes to a temporary ``SOUNDLIB_CACHE_DIR``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from soundlib import sweep
from soundlib.lab.notebook import notebooks_dir
from soundlib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------
# Configuration (fast, no TensorFlow)


@pytest.fixture(scope="module")
def project(tmp_path_factory, cache) -> Path:
    """A folder with a tiny corpus, the stand-in backbone and sweep files using both (relative paths)."""
    from soundlib.audio.synth import SynthConfig, generate_corpus

    root = tmp_path_factory.mktemp("project")
    generate_corpus(root / "data", SynthConfig(clips_per_class=5, duration=1.0, slices_per_recording=1, n_folds=3),
                    progress=False)
    subprocess.run([sys.executable, "-c", "import sys; from soundlib.embedders.backbones import save_tiny_backbone; "
                    "save_tiny_backbone(sys.argv[1])", str(root / "tiny")], check=True, capture_output=True)
    common = """
        dataset: data
        backbone: ./tiny
        train: {epochs: 20, learning_rate: 0.05}
        embed: {batch_size: 16}
        export_model: [1]
    """
    write(root / "sweep.yaml", common + """
        variants:
          - {name: tmel, base: mel, height: 32, width: 32, duration: 1.0}
          - {name: twave, base: waveform, height: 32, width: 32, duration: 1.0}
    """)
    write(root / "broken.yaml", common + """
        folds: [1]
        variants:
          - {name: tmel, base: mel, height: 32, width: 32, duration: 1.0}
          - {name: broken, base: mel, height: 32, width: 32, duration: 1.0, colormap: no_such_colormap}
    """)
    return root


@pytest.fixture(scope="module")
def reference(project):
    """An uninterrupted local sweep: 2 variants x 3 folds, 2 jobs."""
    return sweep.run(project / "sweep.yaml", out_dir=project / "out_ref", jobs=2, progress=False)


def run_table(out: Path):
    return sweep.collect_runs(out)[["variant", "fold", "accuracy", "macro_f1", "n"]]


def same_scores(a, b) -> bool:
    """Equal result tables, wall time aside."""
    return a.drop(columns="seconds_per_fold").equals(b.drop(columns="seconds_per_fold"))


def assert_same_results(out: Path, ref: Path) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(run_table(out), run_table(ref))  # exact: training is seeded
    for pred in sorted(ref.glob("*/fold*/predictions.csv")):
        a = pd.read_csv(pred)
        b = pd.read_csv(out / pred.relative_to(ref))
        assert list(a["predicted"]) == list(b["predicted"])
        np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_local_sweep(project, reference):
    res = reference
    out = project / "out_ref"
    assert res.ok, res.summary()
    assert len(res.completed) == 6 and not res.skipped and not res.failed
    assert list(res.table.index) == [("tmel", "frozen"), ("twave", "frozen")] and list(res.table["folds"]) == [3, 3]
    assert len(res.runs) == 6
    for variant in ("tmel", "twave"):
        for fold in (1, 2, 3):
            d = out / variant / "frozen" / f"fold{fold}"
            for name in ("metrics.json", "predictions.csv", "confusion_matrix.png", "history.json", "train.ipynb",
                         "params.json"):
                assert (d / name).is_file(), d / name
            assert (d / "model" / "labels.txt").is_file() == (fold == 1)  # export_model: [1]
            assert not list(d.glob(".*.tmp*"))
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()
    assert res.evaluate_notebook == out / "evaluate.ipynb" and res.evaluate_notebook.is_file()
    assert len(res.notebooks) == 7 and res.notebooks[-1] == out / "evaluate.ipynb"
    assert "tmel" in (out / "results.md").read_text()
    resolved = sweep.load_sweep_config(out / "sweep.yaml")
    assert resolved.folds == (1, 2, 3) and resolved.dataset == project / "data"

    import nbformat

    nb = nbformat.read(out / "tmel" / "frozen" / "fold2" / "train.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in c.get("outputs", []))
    for fold in (1, 2):  # the embedding map, the same for every fold, is drawn in the first fold's run only
        nb = nbformat.read(out / "tmel" / "frozen" / f"fold{fold}" / "train.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "embedmap.embedding_map" in c.source)
        assert any("image/png" in o.get("data", {}) for o in cell.outputs) == (fold == 1)

    # run again: everything is complete, nothing executes
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/fold*/metrics.json")}
    again = sweep.run(project / "sweep.yaml", out_dir=out, jobs=2, progress=False)
    assert len(again.skipped) == 6 and not again.completed and not again.failed
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/fold*/metrics.json")} == stamps
    assert again.table.equals(res.table)

    # complete outputs count only for the same parameters: changing one re-executes the run
    import dataclasses
    import shutil

    stale = project / "out_stale"
    shutil.copytree(out / "tmel" / "frozen" / "fold1", stale / "tmel" / "frozen" / "fold1")
    c = sweep.load_sweep_config(project / "sweep.yaml")
    same = dataclasses.replace(c, variants=c.variants[:1], folds=(1,))
    assert len(sweep.run(same, out_dir=stale, jobs=1, progress=False).skipped) == 1
    changed = dataclasses.replace(same, train=dataclasses.replace(c.train, epochs=3))
    res = sweep.run(changed, out_dir=stale, jobs=1, progress=False)
    assert len(res.completed) == 1 and not res.skipped
    assert json.loads((stale / "tmel" / "frozen" / "fold1" / "params.json").read_text())["parameters"]["epochs"] == 3
    assert json.loads((stale / "tmel" / "frozen" / "fold1" / "metrics.json").read_text())["train_config"]["epochs"] == 3


def descendants(pid: int):
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for p in procs:
        try:
            p.cmdline()
            alive.append(p)
        except psutil.Error:  # exited meanwhile
            continue
    return alive


def is_kernel(p) -> bool:
    """A kernel forked by a task process (named soundlib-kernel), or one launched the usual way."""
    import psutil

    try:
        return p.name() == "soundlib-kernel" or "ipykernel_launcher" in " ".join(p.cmdline())
    except psutil.Error:
        return False


@pytest.mark.slow
def test_resume_after_kill_9(project, reference, tmp_path):
    import nbformat
    import psutil

    out = project / "out_killed"
    run_dirs = [out / v / "frozen" / f"fold{f}" for v in ("tmel", "twave") for f in (1, 2, 3)]
    code = ("import sys; from soundlib.sweep import run; "
            "run(sys.argv[1], out_dir=sys.argv[2], jobs=1, progress=False)")
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, str(project / "sweep.yaml"), str(out)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "the sweep finished before it could be interrupted"
            assert time.monotonic() < deadline, "no run finished in time"
            done = [d for d in run_dirs if (d / "train.ipynb").is_file()]
            running = [d for d in run_dirs if list(d.glob(".train.*.tmp.ipynb"))]
            if done and running and any(is_kernel(p) for p in descendants(proc.pid)):
                break  # a run's kernel is up: kill the sweep in the middle of that run
            time.sleep(0.05)
        victims = descendants(proc.pid)
        assert victims, "the sweep should have a worker process and a kernel running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(victims, timeout=15)
        assert not alive, f"processes outlived the killed sweep: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in descendants(proc.pid):
            p.kill()
        log.close()

    # complete: metrics.json and the renamed executed notebook (a kill between the two re-executes the run)
    complete = {d: (d / "metrics.json").stat().st_mtime_ns for d in run_dirs
                if (d / "metrics.json").is_file() and (d / "train.ipynb").is_file()}
    assert 1 <= len(complete) < 6
    interrupted = [d for d in run_dirs if d not in complete and (d / "params.json").is_file()]
    assert interrupted, "a run was in progress when the sweep was killed"
    for d in complete:  # nothing half-written is taken for complete
        json.loads((d / "metrics.json").read_text())
    for nb in out.glob("*/*/fold*/train.ipynb"):
        nbformat.read(nb, as_version=4)

    res = sweep.run(project / "sweep.yaml", out_dir=out, jobs=2, progress=False)
    assert res.ok, res.summary()
    assert {o.run_dir for o in res.skipped} == set(complete)
    assert {o.run_dir for o in res.completed} == set(run_dirs) - set(complete)
    for d, stamp in complete.items():  # no complete run was executed again
        assert (d / "metrics.json").stat().st_mtime_ns == stamp
    assert all((d / "train.ipynb").is_file() for d in interrupted)
    assert not list(out.glob("*/*/fold*/.train.*.tmp.ipynb"))
    assert_same_results(out, project / "out_ref")
    assert same_scores(res.table, reference.table)


@pytest.mark.slow
def test_failed_run_is_reported_and_others_finish(project):
    out = project / "out_broken"
    res = sweep.run(project / "broken.yaml", out_dir=out, jobs=2, progress=False)
    assert not res.ok
    assert [(o.variant, o.fold) for o in res.completed] == [("tmel", 1)]
    assert len(res.failed) == 1
    bad = res.failed[0]
    assert (bad.variant, bad.fold) == ("broken", 1)
    assert bad.notebook == out / "broken" / "frozen" / "fold1" / "train.ipynb" and bad.notebook.is_file()
    assert "no_such_colormap" in bad.error and bad.cell is not None
    assert "no_such_colormap" in str(bad)
    assert "fill-tiny-broken" in res.embed_errors
    assert not (out / "broken" / "frozen" / "fold1" / "metrics.json").exists()
    # the failed row is shown, as incomplete, never averaged (desk review finding 9)
    assert list(res.table.index) == [("tmel", "frozen"), ("broken", "frozen")]
    assert not res.table.loc[("broken", "frozen"), "complete"] and res.table.loc[("tmel", "frozen"), "complete"]
    assert res.evaluate_error is None and (out / "results.md").is_file()
    import nbformat

    nb = nbformat.read(bad.notebook, as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_dask_cluster_matches_local(project, reference, tmp_path, monkeypatch):
    import logging

    from dask.distributed import LocalCluster

    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))  # embeddings are filled on the cluster
    out = project / "out_dask"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        res = sweep.run(project / "sweep.yaml", out_dir=out, scheduler=cluster.scheduler_address, progress=False)
        assert res.ok, res.summary()
        assert len(res.completed) == 6 and not res.embed_errors
        assert list((tmp_path / "cache" / "embeddings").iterdir())
        again = sweep.run(project / "sweep.yaml", out_dir=out, scheduler=cluster.scheduler_address, progress=False)
        assert len(again.skipped) == 6
    assert_same_results(out, project / "out_ref")
    assert same_scores(res.table, reference.table)
    assert all((out / v / "frozen" / f"fold{f}" / "train.ipynb").is_file() for v in ("tmel", "twave")
               for f in (1, 2, 3))
    assert (out / "evaluate.ipynb").is_file() and (out / "results.csv").is_file()


def test_unreachable_scheduler_is_a_config_error(tmp_path):
    (tmp_path / "data").mkdir()
    import dask
    import distributed  # noqa: F401  (its defaults enter dask's config first: set() below would hide them)

    cfg = write(tmp_path / "s.yaml", "dataset: data\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConfigError, match="Dask scheduler"):
            sweep.run(cfg, out_dir=tmp_path / "out", scheduler="tcp://127.0.0.1:1", progress=False)
    assert not (tmp_path / "out" / "sweep.yaml").exists()  # failed before doing any work


@pytest.mark.slow
def test_run_failing_after_metrics_is_not_complete(project, tmp_path):
    """A notebook that fails after train_fold wrote metrics.json leaves the run incomplete."""
    import dataclasses
    import shutil

    import nbformat

    notebooks = tmp_path / "notebooks"
    shutil.copytree(notebooks_dir(), notebooks)
    nb = nbformat.read(notebooks / "train.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('raise RuntimeError("display went wrong")'))
    nbformat.write(nb, notebooks / "train.ipynb")
    c = sweep.load_sweep_config(project / "sweep.yaml")
    one = dataclasses.replace(c, variants=c.variants[:1], folds=(2,))
    out = tmp_path / "out"
    res = sweep.run(one, out_dir=out, jobs=1, progress=False, notebooks=notebooks)
    assert [(o.variant, o.fold) for o in res.failed] == [("tmel", 2)]
    assert "RuntimeError: display went wrong" in res.failed[0].error
    assert res.failed[0].notebook.is_file() and not (out / "tmel" / "frozen" / "fold2" / "metrics.json").exists()
    assert len(res.table) == 1 and not res.table["complete"].iloc[0]  # shown as incomplete, not averaged
    assert res.table["missing_folds"].iloc[0] == "2" and np.isnan(res.table["accuracy_mean"].iloc[0])
    again = sweep.run(one, out_dir=out, jobs=1, progress=False)  # the real notebooks: it runs again
    assert [(o.variant, o.fold) for o in again.completed] == [("tmel", 2)]


@pytest.mark.slow
def test_methods_sweep_variant_by_method(project, tmp_path, monkeypatch):
    """methods: every variant runs with every method into <variant>/<method>/fold<k>; fills run once."""
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached yet: both fills run
    write(project / "methods.yaml", """
        dataset: data
        backbone: ./tiny
        folds: [2]
        variants:
          - {name: tmel, base: mel, height: 32, width: 32, duration: 1.0}
        methods: [mfcc, {name: pick, method: auto, candidates: [frozen, mfcc], fusions: false}]
        export_model: false
    """)
    out = tmp_path / "out"
    res = sweep.run(project / "methods.yaml", out_dir=out, jobs=2, progress=False)
    assert res.ok, res.summary()
    assert list(res.table.index) == [("tmel", "mfcc"), ("tmel", "pick")]
    assert (out / "tmel" / "mfcc" / "fold2" / "metrics.json").is_file()
    picked = json.loads((out / "tmel" / "pick" / "fold2" / "metrics.json").read_text())
    assert picked["method"] == "pick" and picked["choice"]["picked"] in ("frozen", "mfcc")
    assert set(picked["choice"]["val_accuracy"]) == {"frozen", "mfcc"}
    logs = sorted(p.name for p in (out / ".logs").glob("fill-*.log"))
    assert logs == ["fill-mfcc-tmel.log", "fill-tiny-tmel.log"]  # one fill per cache, shared by both runs
    assert "| tmel | pick | 1 |" in (out / "results.md").read_text()



def test_long_runs_are_queued_first():
    """Waiting tasks start fills first, then runs that export, then those drawing the embedding map, each group
    in its order; drive() keeps its queue in that order as tasks are released."""
    from types import SimpleNamespace

    from soundlib.sweep.executors import drive
    from soundlib.sweep.tasks import longest_first

    def run(name, export=False, emap=False):
        return SimpleNamespace(label=name, parameters={"export_model": export, "embedding_map": emap})

    tasks = [run("a"), run("b", emap=True), run("c", export=True, emap=True), run("d"), run("e", export=True)]
    assert [t.label for t in longest_first(tasks)] == ["c", "e", "b", "a", "d"]
    fill = SimpleNamespace(label="fill")  # a fill (no parameters) goes before every run
    assert [t.label for t in longest_first([run("x", export=True), fill])] == ["fill", "x"]

    started = []

    class OneAtATime:
        limit = 1

        def submit(self, task):
            started.append(task.label)
            return task.label

        def wait_any(self, futures):
            return set(futures)

        def close(self, *, abort=False):
            pass

    class Done:
        def result(self):
            return {}

    released = {"fill": [run("short1"), run("short2"), run("export", export=True)]}
    backend = OneAtATime()
    backend.submit = lambda task: (started.append(task.label), Done())[1]
    drive(backend, [fill, run("short0")], lambda task, result: released.get(task.label, []))
    assert started == ["fill", "export", "short0", "short1", "short2"]
