"""The sweep driver: plan the (variant, fold) runs, fill caches, drive the runs, evaluate.

:func:`run` reads as the sequence it performs:

1. resolve the configuration and the dataset (generating the synthetic corpus if asked);
2. plan one run per (variant, fold), skipping runs already complete;
3. fill the embedding cache once per variant (one task each), then execute
   ``train.ipynb`` once per remaining run, ``jobs`` at a time (:mod:`.executors`);
4. execute ``evaluate.ipynb`` over the output folder and collect the table (:mod:`.results`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import ConfigError
from ..variants import VARIANTS, FeatureSpec
from .config import SweepConfig, load_sweep_config
from .executors import DaskBackend, LocalBackend, drive
from .results import collect_results, collect_runs, results_table_markdown, write_results
from .tasks import EVALUATE_NOTEBOOK, TRAIN_NOTEBOOK, fingerprint, run_complete, run_task

__all__ = ["RunOutcome", "SweepResult", "run", "run_parameters"]


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What happened to one (variant, fold) run.

    ``status`` is ``"completed"`` (executed now), ``"skipped"`` (already complete)
    or ``"failed"``; ``error`` is ``"ename: evalue"`` of the failing cell (or of the
    process) and ``cell`` the failing cell's execution count when papermill knows it.
    """

    variant: str
    fold: int
    run_dir: Path
    status: str
    notebook: Path | None = None
    error: str | None = None
    cell: int | None = None
    log: Path | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        where = f" (cell {self.cell})" if self.cell is not None else ""
        err = f": {self.error}{where}" if self.error else ""
        return f"{self.variant}/fold{self.fold} {self.status}{err} [{self.notebook or self.run_dir}]"


@dataclasses.dataclass
class SweepResult:
    """Everything :func:`run` did.

    Attributes
    ----------
    out_dir : Path
    config : SweepConfig
        As run (dataset and folds resolved); also saved as ``out_dir/sweep.yaml``.
    table : pandas.DataFrame
        :func:`~soundlib.sweep.results.collect_results` of ``out_dir``: one row per variant, mean ± std over folds.
    runs : pandas.DataFrame
        :func:`~soundlib.sweep.results.collect_runs` of ``out_dir``: one row per complete (variant, fold).
    completed, skipped, failed : list of RunOutcome
    notebooks : list of Path
        Executed notebooks (every run's ``train.ipynb`` that exists, then ``evaluate.ipynb``).
    evaluate_notebook : Path or None
    evaluate_error : str or None
    embed_errors : dict
        Variant name -> error of its embedding-cache fill (the runs then embed themselves).
    seconds : float
    """

    out_dir: Path
    config: SweepConfig
    table: Any
    runs: Any
    completed: list[RunOutcome]
    skipped: list[RunOutcome]
    failed: list[RunOutcome]
    notebooks: list[Path]
    evaluate_notebook: Path | None
    evaluate_error: str | None
    embed_errors: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every run is complete and the evaluate notebook ran."""
        return not self.failed and self.evaluate_error is None

    def summary(self) -> str:
        """A short text report: counts, the results table, failures."""
        lines = [f"sweep {self.out_dir}: {len(self.completed)} run(s) executed, {len(self.skipped)} already complete, "
                 f"{len(self.failed)} failed, {self.seconds:.1f} s", "", results_table_markdown(self.table)]
        for r in self.failed:
            lines.append(f"FAILED {r}")
        if self.evaluate_error:
            lines.append(f"FAILED evaluate notebook {self.evaluate_notebook}: {self.evaluate_error}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Planning

def run_parameters(config: SweepConfig, spec: FeatureSpec, fold: int, dataset: Path, run_dir: Path) -> dict[str, Any]:
    """The parameters ``train.ipynb`` receives for one run (also the run's identity, see
    :func:`~soundlib.sweep.tasks.fingerprint`)."""
    t = config.train.to_dict()
    named = ("learning_rate", "epochs", "batch_size", "dropout", "label_smoothing", "l2", "validation_split", "seed")
    defaults = type(config.train)().to_dict()
    return {
        "dataset": str(dataset),
        "fold": int(fold),
        "variant": spec.name if VARIANTS.get(spec.name) == spec else spec.to_dict(),
        "backbone": config.backbone,
        **{k: t[k] for k in named},
        "train_extra": {k: v for k, v in t.items() if k not in named and v != defaults[k]},
        "embed_batch_size": config.embed_batch_size,
        "k_folds": config.k_folds,
        "output_dir": str(run_dir),
        "export_model": config.exports(fold),
        "alert": False,
        "generate_if_missing": False,
    }


@dataclasses.dataclass
class _Plan:
    """Runs already complete, and the notebook tasks still to execute, by variant."""

    outcomes: dict[tuple[str, int], RunOutcome]
    todo: dict[str, list[dict]]
    env: dict[str, str]

    @property
    def remaining(self) -> int:
        return sum(len(v) for v in self.todo.values())


def _env() -> dict[str, str]:
    env = {"SOUNDLIB_BATCH": "1"}
    if os.environ.get("SOUNDLIB_CACHE_DIR"):
        env["SOUNDLIB_CACHE_DIR"] = os.environ["SOUNDLIB_CACHE_DIR"]
    return env


def _plan(config: SweepConfig, ds, ds_path: Path, out: Path, notebook: str, kernel_name: str | None) -> _Plan:
    env = _env()
    synth = dataclasses.asdict(config.synth) if config.synth is not None else None
    classes = list(ds.classes)
    plan = _Plan({}, {}, env)
    for spec in config.variants:
        for fold in config.folds:
            run_dir = out / spec.name / f"fold{fold}"
            params = run_parameters(config, spec, fold, ds_path, run_dir)
            fp = fingerprint(params, synth)
            if run_complete(run_dir, fp, spec.name, fold):
                nb = run_dir / TRAIN_NOTEBOOK
                plan.outcomes[(spec.name, fold)] = RunOutcome(spec.name, fold, run_dir, "skipped",
                                                              nb if nb.is_file() else None, log=run_dir / "run.log")
                continue
            plan.todo.setdefault(spec.name, []).append({
                "kind": "notebook", "label": f"{spec.name}-fold{fold}", "variant": spec.name, "fold": fold,
                "notebook": notebook, "output": str(run_dir / TRAIN_NOTEBOOK), "parameters": params,
                "kernel_name": kernel_name, "cwd": str(run_dir), "lock": str(run_dir / ".lock"),
                "log": str(run_dir / "run.log"), "env": env,
                "check": {"run_dir": str(run_dir), "fingerprint": fp, "variant": spec.name, "fold": fold,
                          "record": {"fingerprint": fp, "parameters": params, "synth": synth, "classes": classes}},
            })
    return plan


def _schedule(plan: _Plan, config: SweepConfig, ds, ds_path: Path, out: Path) -> tuple[list, dict[str, list]]:
    """``(initial tasks, follow-ups by task label)``: each variant's runs wait for its cache fill."""
    from ..backbones import is_ready, resolve_backbone
    from ..cache import EmbeddingCache

    embed_tasks = []
    if not config.train.needs_pictures:
        identity = resolve_backbone(config.backbone).identity if is_ready(config.backbone) else None
        paths = [c.path for c in ds.clips]
        for spec in config.variants:
            if spec.name not in plan.todo:
                continue
            if identity is not None and EmbeddingCache().has_all(paths, spec, identity):
                continue
            embed_tasks.append({"kind": "embed", "label": f"embed-{spec.name}", "variant_name": spec.name,
                                "variant": spec.to_dict(), "dataset": str(ds_path), "backbone": config.backbone,
                                "batch_size": config.embed_batch_size, "env": plan.env,
                                "log": str(out / ".logs" / f"embed-{spec.name}.log")})
    waiting = {t["variant_name"] for t in embed_tasks}
    ready = [t for name, ts in plan.todo.items() if name not in waiting for t in ts]
    followups = {t["label"]: list(plan.todo.get(t["variant_name"], [])) for t in embed_tasks}
    if embed_tasks and not is_ready(config.backbone):
        # the first fill exports (or downloads) the backbone alone; the others then only load it
        # (measured: the first variant's runs interleave with the other fills better than fills first)
        followups[embed_tasks[0]["label"]] += ready + embed_tasks[1:]
        return [embed_tasks[0]], followups
    return list(embed_tasks) + ready, followups


class _Tracker:
    """Collects outcomes as tasks finish and keeps the progress bar current."""

    def __init__(self, plan: _Plan, filling: set[str], followups: dict[str, list], total: int, progress: bool):
        from tqdm.auto import tqdm

        self.outcomes = plan.outcomes
        self.followups = followups
        self.filling = set(filling)
        self.embed_errors: dict[str, str] = {}
        self.bar = tqdm(total=total, initial=total - plan.remaining, desc="sweep", unit="run",
                        disable=not progress, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        n_failed = sum(o.status == "failed" for o in self.outcomes.values())
        if self.filling:
            self.bar.set_postfix_str(f"filling embedding cache: {', '.join(sorted(self.filling))}")
        else:
            self.bar.set_postfix_str(f"{n_failed} failed" if n_failed else "")

    def on_done(self, task: Mapping[str, Any], result: dict) -> list:
        if task["kind"] == "embed":
            if result.get("status") != "completed":
                self.embed_errors[task["variant_name"]] = f"{result.get('ename')}: {result.get('evalue')}"
            self.filling.discard(task["variant_name"])
            self._postfix()
            return self.followups.get(task["label"], [])
        status = result.get("status", "failed")
        nb = result.get("notebook")
        err = f"{result.get('ename')}: {result.get('evalue')}" if status == "failed" else None
        self.outcomes[(task["variant"], task["fold"])] = RunOutcome(
            task["variant"], task["fold"], Path(task["check"]["run_dir"]), status, Path(nb) if nb else None,
            err, result.get("cell"), Path(task["log"]), float(result.get("seconds") or 0.0))
        self.bar.update(1)
        self._postfix()
        return []

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------
# Steps of run()

def _load_config(config_or_path: "SweepConfig | str | os.PathLike", jobs: int | None) -> SweepConfig:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    return config_or_path if isinstance(config_or_path, SweepConfig) else load_sweep_config(config_or_path)


def _read_notebooks(notebooks: str | os.PathLike | None) -> tuple[str, str]:
    from ..notebook import notebooks_dir

    folder = notebooks_dir(notebooks)
    return ((folder / TRAIN_NOTEBOOK).read_text(encoding="utf-8"),
            (folder / EVALUATE_NOTEBOOK).read_text(encoding="utf-8"))


def _prepare_dataset(config: SweepConfig, out: Path, *, progress: bool):
    """``(dataset path, Dataset, config with the folds resolved)``."""
    from ..data import load_dataset
    from ..folds import assign_folds

    if config.synth is not None:
        from ..synth import ensure_corpus

        path = config.dataset or out / "data"
        ensure_corpus(path, config.synth, progress=progress)
    else:
        path = config.dataset
        if path is None or not path.exists():
            raise ConfigError(f"{config.source or 'sweep config'}: dataset path {path} does not exist")
    ds = load_dataset(path)
    available = list(ds.folds) if ds.has_folds else list(assign_folds(ds, config.k_folds, seed=config.train.seed).folds)
    missing = [f for f in (config.folds or ()) if f not in available]
    if missing:
        raise ConfigError(f"{config.source or 'sweep config'}: fold(s) {missing} not in dataset {ds.root} "
                          f"(folds there: {available})")
    folds = tuple(config.folds) if config.folds is not None else tuple(available)
    return Path(path), ds, dataclasses.replace(config, dataset=Path(path), folds=folds)


def _write_resolved(out: Path, config: SweepConfig) -> None:
    import yaml

    from ..atomic import write_text_atomic

    write_text_atomic(out / "sweep.yaml", "# resolved by soundlib.sweep.run; `soundlib sweep` reads it back\n"
                      + yaml.safe_dump(config.to_dict(), sort_keys=False))


@contextlib.contextmanager
def _aborting(backend) -> Iterator[None]:
    """Kill the backend's running tasks if the body fails (Ctrl-C included); close it cleanly otherwise."""
    try:
        yield
    except BaseException:
        backend.close(abort=True)
        raise
    backend.close()


def _evaluate(out: Path, notebook: str, kernel_name: str | None, env: dict[str, str]) -> tuple[Path | None, str | None]:
    """Execute ``evaluate.ipynb`` over ``out``; ``(notebook path, error)``. The results files are
    written even when the notebook fails (the table does not depend on it)."""
    result = run_task({"kind": "notebook", "label": "evaluate", "notebook": notebook,
                       "output": str(out / EVALUATE_NOTEBOOK), "parameters": {"sweep_dir": str(out)},
                       "kernel_name": kernel_name, "cwd": str(out), "lock": str(out / ".evaluate.lock"),
                       "log": str(out / ".logs" / "evaluate.log"), "env": env})
    error = None if result.get("status") == "completed" else f"{result.get('ename')}: {result.get('evalue')}"
    if error is not None:
        write_results(out)
    return (Path(result["notebook"]) if result.get("notebook") else None), error


def run(config_or_path: "SweepConfig | str | os.PathLike", *, out_dir: str | os.PathLike, jobs: int | None = None,
        scheduler: Any = None, progress: bool = True, kernel_name: str | None = None,
        notebooks: str | os.PathLike | None = None) -> SweepResult:
    """Run a sweep: every (variant, fold) through ``train.ipynb``, then ``evaluate.ipynb``.

    Parameters
    ----------
    config_or_path : SweepConfig or path of a sweep YAML file
    out_dir : path-like
        Output folder: ``sweep.yaml``, ``<variant>/fold<k>/...``, ``evaluate.ipynb``,
        ``results.csv``, ``results.md``. Re-running into the same folder resumes.
    jobs : int, optional
        Runs executed at once (default: the file's ``jobs``; with a scheduler: no limit).
    scheduler : str or distributed.Client, optional
        ``"tcp://HOST:PORT"`` of a Dask scheduler (or a connected client): the
        embedding fills and the runs execute on its workers; ``evaluate.ipynb`` runs here.
    progress : bool
        Show a progress bar (runs done / total); nothing else is printed.
    kernel_name : str, optional
        Jupyter kernel for the notebooks (default :func:`soundlib.notebook.default_kernel_name`,
        chosen where a run executes).
    notebooks : path-like, optional
        Folder with the notebooks (default :func:`soundlib.notebook.notebooks_dir`).

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError, DatasetError
        Invalid sweep file, missing dataset, unknown folds, notebooks not found.
    """
    t0 = time.perf_counter()
    config = _load_config(config_or_path, jobs)
    train_nb, eval_nb = _read_notebooks(notebooks)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    # connect first: an unreachable scheduler fails before any work
    backend = DaskBackend(scheduler, jobs) if scheduler is not None else LocalBackend(jobs or config.jobs)
    with _aborting(backend):
        ds_path, ds, config = _prepare_dataset(config, out, progress=progress)
        _write_resolved(out, config)
        plan = _plan(config, ds, ds_path, out, train_nb, kernel_name)
        initial, followups = _schedule(plan, config, ds, ds_path, out)
        filling = {t["variant_name"] for t in initial + [f for fs in followups.values() for f in fs]
                   if t["kind"] == "embed"}
        tracker = _Tracker(plan, filling, followups, len(config.variants) * len(config.folds), progress)
        try:
            drive(backend, initial, tracker.on_done)
        finally:
            tracker.close()
    eval_path, eval_error = _evaluate(out, eval_nb, kernel_name, plan.env)

    ordered = [plan.outcomes[(s.name, f)] for s in config.variants for f in config.folds
               if (s.name, f) in plan.outcomes]
    notebooks_run = [o.notebook for o in ordered if o.notebook is not None and o.notebook.is_file()]
    if eval_path is not None:
        notebooks_run.append(eval_path)
    return SweepResult(
        out_dir=out, config=config, table=collect_results(out), runs=collect_runs(out),
        completed=[o for o in ordered if o.status == "completed"],
        skipped=[o for o in ordered if o.status == "skipped"],
        failed=[o for o in ordered if o.status == "failed"],
        notebooks=notebooks_run, evaluate_notebook=eval_path, evaluate_error=eval_error,
        embed_errors=tracker.embed_errors, seconds=round(time.perf_counter() - t0, 2),
    )
