"""``make demo``: the main job on the embedded default, offline.

Generates the synthetic corpus, renders the feature gallery, and runs the demo
sweep (``params/demo.yaml``: every fold × three feature variants, each run an
executed ``notebooks/train.ipynb``, then ``notebooks/evaluate.ipynb``) with the
embedded EfficientNet-Lite0 backbone. Prints the results table (mean ± std
accuracy and macro-F1 per variant), where the executed notebooks are, the total
time, and which notebook to open next. Running it again resumes: complete runs
are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["DEMO_PARAMS", "run_demo", "main"]

#: The demo's sweep file (in a source checkout, beside the notebooks it runs).
DEMO_PARAMS = Path(__file__).resolve().parent.parent / "params" / "demo.yaml"
#: Where ``make demo`` writes (the notebooks' default parameters read from there).
DEFAULT_OUT = DEMO_PARAMS.parent.parent / "demo_out"


def run_demo(out: Path, *, jobs: int = 2, params: Path | None = None, progress: bool = True) -> dict:
    """Run the demo into ``out``; returns paths and the :class:`~soundlib.sweep.SweepResult`."""
    from soundlib import sweep
    from soundlib.audio.loaders import load_dataset
    from soundlib.pictures.featurize import featurize, write_gallery
    from soundlib.audio.synth import ensure_corpus
    from soundlib.pictures.variants import get_variant

    t0 = time.perf_counter()
    out = Path(out)
    config = sweep.load_sweep_config(params or DEMO_PARAMS)
    preparing = _prepare_backbone(config.backbone)  # meanwhile: the corpus, the gallery, the pictures
    data = (out / "synth").resolve()
    if config.synth is not None:
        config = dataclasses.replace(config, dataset=data)
        ensure_corpus(data, config.synth, progress=progress)
    else:
        assert config.dataset is not None  # (load_sweep_config refuses a file with neither dataset nor synth)
        data = config.dataset
    ds = load_dataset(data)
    print(f"[demo] corpus: {len(ds)} clips, {len(ds.classes)} classes, folds {list(ds.folds)} -> {data}")
    gallery = out / "gallery"
    write_gallery(ds.clips[0].path, gallery)
    print(f"[demo] gallery of the six variants for {ds.clips[0].path.name} -> {gallery}")
    pictures = out / "pictures" / "mel"
    report = featurize(ds, get_variant("mel"), out_dir=pictures, jobs=jobs, progress=progress)
    print(f"[demo] featurized {len(report.written) + len(report.skipped)} clips (mel) -> {pictures}")

    sweep_dir = out / "sweep"
    names = ", ".join(v.name for v in config.variants)
    n_folds = len(config.folds) if config.folds else len(ds.folds)
    print(f"[demo] sweep {params or DEMO_PARAMS}: {len(config.variants)} variants ({names}) x {n_folds} folds, "
          f"backbone {config.backbone}, {jobs} job(s) -> {sweep_dir}", flush=True)
    # (while the backbone is still being prepared, the sweep's fills wait for its lock; a failure there is the
    # sweep's to report: its first fill prepares the backbone again)
    result = sweep.run(config, out_dir=sweep_dir, jobs=jobs, progress=progress)
    if preparing is not None:
        preparing.wait()

    print(f"[demo] {len(result.completed)} run(s) executed, {len(result.skipped)} already complete, "
          f"{len(result.failed)} failed")
    print(f"[demo] results, mean ± std over the test folds ({sweep_dir / 'results.md'}):")
    print(sweep.results_table_markdown(result.table))
    runs = [nb for nb in result.notebooks if nb != result.evaluate_notebook]
    print(f"[demo] executed notebooks: {len(runs)} under {sweep_dir}/<variant>/<method>/fold<k>/train.ipynb"
          + (f", and {result.evaluate_notebook}" if result.evaluate_notebook else ""))
    for failure in result.failed:
        print(f"[demo] FAILED {failure}", file=sys.stderr)
    if result.evaluate_error:
        print(f"[demo] FAILED evaluate notebook: {result.evaluate_error}", file=sys.stderr)
    for variant, err in result.embed_errors.items():
        print(f"[demo] embedding fill for {variant} failed: {err}", file=sys.stderr)
    print(f"[demo] done in {time.perf_counter() - t0:.1f} s")
    print(next_step(out, data, sweep_dir, _exported_model(sweep_dir, config)))
    return {"data": Path(data), "gallery": gallery, "pictures": pictures, "sweep": sweep_dir, "result": result}


def _prepare_backbone(handle: str) -> "subprocess.Popen | None":
    """Prepare the sweep's backbone in a process of its own (on one thread) while the demo makes its corpus and
    pictures, when it is not ready (a fresh cache: the embedded backbone's LiteRT copy is converted, ~7 s on
    2 cores); ``None`` when there is nothing to prepare."""
    import os

    from soundlib.embedders.backbones import is_ready
    from soundlib.sweep.tasks import THREAD_VARS

    try:
        if is_ready(handle):
            return None
    except Exception:  # (the sweep will say what is wrong with it)
        return None
    code = "import sys\nfrom soundlib.embedders.backbones import load_backbone\nload_backbone(sys.argv[1])\n"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **{var: os.environ.get(var, "1") for var in THREAD_VARS}}
    return subprocess.Popen([sys.executable, "-c", code, handle], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _exported_model(sweep_dir: Path, config) -> Path | None:
    """The first model the sweep exported (variants, then methods, then folds, in the sweep file's order)."""
    from soundlib.models.format import INFO_FILE

    for spec in config.variants:
        for method in config.methods:
            runs = (sweep_dir / spec.name / method.name).glob("fold*")
            for run in sorted((d for d in runs if d.name[4:].isdigit()), key=lambda d: int(d.name[4:])):
                if (run / "model" / INFO_FILE).is_file():
                    return run / "model"
    return None


def next_step(out: Path, data: Path, sweep_dir: Path, model: Path | None) -> str:
    """What to open after the demo: the notebooks' default parameters read ``make demo``'s folder
    (``demo_out/`` beside ``notebooks/``); another ``--out`` names the parameters to set."""
    if Path(out).resolve() == DEFAULT_OUT.resolve():
        return ("[demo] next: `make lab`, then open visualize.ipynb (a clip labelled by the exported "
                f"{'/'.join(model.parts[-4:-1]) if model else 'fold-1'} model) and evaluate.ipynb (this sweep's "
                "tables and plots); their default parameters read demo_out/")
    settings = [f"dataset = {str(Path(data).resolve())!r}"] + ([f"model_dir = {str(model.resolve())!r}"]
                                                               if model else [])
    return (f"[demo] next: `make lab`, then open visualize.ipynb with {', '.join(settings)} in its parameters "
            f"cell, and evaluate.ipynb with sweep_dir = {str(Path(sweep_dir).resolve())!r}")


def main(argv: list[str] | None = None) -> int:
    """``python -m soundlib.demo``: run the demo; exit status 0 when every run succeeded."""
    from soundlib.errors import SoundlibError

    p = argparse.ArgumentParser(prog="python -m soundlib.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--jobs", type=int, default=2, help="notebook runs executed at once")
    p.add_argument("--params", type=Path, default=None, help=f"sweep file (default {DEMO_PARAMS})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        res = run_demo(args.out, jobs=args.jobs, params=args.params, progress=not args.quiet)
    except SoundlibError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 2
    return 0 if res["result"].ok else 1


if __name__ == "__main__":
    sys.exit(main())
