"""The sweep driver: plan the (variant, method, fold) runs, fill caches, drive the runs, evaluate.

:func:`run` reads as the sequence it performs:

1. resolve the configuration and the dataset (generating the synthetic corpus if asked);
2. plan one run per (variant, method, fold), skipping runs already complete;
3. fill each cache the runs read once (backbone embeddings per variant, BirdNET
   and MFCC features: one task each), then execute ``train.ipynb`` once per
   remaining run as soon as its fills are done, ``jobs`` at a time (:mod:`.executors`);
4. execute ``evaluate.ipynb`` over the output folder and collect the table (:mod:`.results`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Iterator

from soundlib.atomic import ensure_dir
from soundlib.errors import ConfigError
from soundlib.methods import DEFAULT_METHOD, CacheUnit, MethodSpec
from soundlib.pictures.variants import VARIANTS, FeatureSpec
from soundlib.sweep.config import SweepConfig, check_method_folds, load_sweep_config, method_param
from soundlib.sweep.executors import DaskBackend, LocalBackend, drive, parse_scheduler
from soundlib.sweep.results import collect_results, collect_runs, grouping_note, results_table_markdown, write_results
from soundlib.sweep.processes import clean_stale_temp
from soundlib.sweep.tasks import (EVALUATE_NOTEBOOK, TRAIN_NOTEBOOK, FillTask, NotebookTask, ShardTask, Task,
                                  dataset_fingerprint, fingerprint, run_complete, run_task)

__all__ = ["RunOutcome", "SweepResult", "run", "run_parameters"]


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What happened to one (variant, method, fold) run.

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
    method: str = DEFAULT_METHOD

    def __str__(self) -> str:
        where = f" (cell {self.cell})" if self.cell is not None else ""
        err = f": {self.error}{where}" if self.error else ""
        return f"{self.variant}/{self.method}/fold{self.fold} {self.status}{err} [{self.notebook or self.run_dir}]"


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
        Cache fill (``fill-<kind>-<variant>``) -> its error (the runs then compute what they need themselves).
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
        if grouping_note(self.table):
            lines += ["", grouping_note(self.table)]
        for r in self.failed:
            lines.append(f"FAILED {r}")
        if self.evaluate_error:
            lines.append(f"FAILED evaluate notebook {self.evaluate_notebook}: {self.evaluate_error}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Planning

def run_parameters(config: SweepConfig, spec: FeatureSpec, fold: int, dataset: Path, run_dir: Path,
                   method: MethodSpec | None = None) -> dict[str, Any]:
    """The parameters ``train.ipynb`` receives for one run (also the run's identity, see
    :func:`~soundlib.sweep.tasks.fingerprint`)."""
    t = config.train.to_dict()
    named = ("learning_rate", "epochs", "batch_size", "dropout", "label_smoothing", "l2", "validation_split", "seed")
    defaults = type(config.train)().to_dict()
    return {
        "dataset": str(dataset),
        "fold": int(fold),
        "variant": spec.name if VARIANTS.get(spec.name) == spec else spec.to_dict(),
        "method": method_param(method or config.methods[0]),
        "aggregate": config.aggregate,
        "backbone": config.backbone,
        **{k: t[k] for k in named},
        "train_extra": {k: v for k, v in t.items() if k not in named and v != defaults[k]},
        "embed_batch_size": config.embed_batch_size,
        "k_folds": config.k_folds,
        "output_dir": str(run_dir),
        "export_model": config.exports(fold, spec.name),
        "alert": False,
        "generate_if_missing": False,
        "progress": False,
        # the map of the embeddings is the same for every fold: drawn once per (variant, method)
        "embedding_map": fold == min(config.method_folds((method or config.methods[0]).name, config.folds or (fold,))
                                     or (fold,)),
        **{k: getattr(config, k) for k in ("group_by", "group_regex") if getattr(config, k) is not None},
    }


@dataclasses.dataclass
class _Plan:
    """Runs already complete, the notebook tasks still to execute, and the cache fills they wait for."""

    outcomes: dict[tuple[str, str, int], RunOutcome]
    todo: list[NotebookTask]
    fills: dict[str, CacheUnit]
    env: dict[str, str]
    deferred: list[Task] = dataclasses.field(default_factory=list)

    @property
    def remaining(self) -> int:
        return len(self.todo)


def _env() -> dict[str, str]:
    """The environment of the sweep's tasks. ``$SOUNDLIB_CACHE_DIR`` is resolved here, once, to an absolute path:
    a relative one would name a cache inside each run's own folder (the runs work there)."""
    from soundlib.config import cache_dir

    env = {"SOUNDLIB_BATCH": "1"}
    if os.environ.get("SOUNDLIB_CACHE_DIR"):
        env["SOUNDLIB_CACHE_DIR"] = str(cache_dir())
    return env


def _plan(config: SweepConfig, ds, ds_path: Path, out: Path, notebook: str, kernel_name: str | None) -> _Plan:
    from soundlib.methods import cache_units

    env = _env()
    synth = dataclasses.asdict(config.synth) if config.synth is not None else None
    data = dataset_fingerprint(ds)  # a run over changed clips, labels, folds or audio is not complete
    classes = list(ds.classes)
    plan = _Plan({}, [], {}, env)
    seconds: list[float] | None = None
    for spec in config.variants:
        for method in config.methods:
            if not config.runs(spec.name, method.name):
                continue
            units = cache_units(method, spec, config.backbone)
            if not all(u.variant.resolved for u in units.values()):
                # a duration rule (fit, auto) is chosen from the clip lengths, as each run will choose it
                if seconds is None:
                    from soundlib.methods.base import clip_durations

                    seconds = clip_durations(ds)
                units = {u.key: u for u in (x.with_durations(seconds) for x in units.values())}
            for fold in config.method_folds(method.name, config.folds or ()):
                run_dir = out / spec.name / method.name / f"fold{fold}"
                params = run_parameters(config, spec, fold, ds_path, run_dir, method)
                fp = fingerprint(params, synth, data)
                key = (spec.name, method.name, fold)
                if run_complete(run_dir, fp, spec.name, fold):
                    nb = run_dir / TRAIN_NOTEBOOK
                    plan.outcomes[key] = RunOutcome(spec.name, fold, run_dir, "skipped", nb if nb.is_file() else None,
                                                    log=run_dir / "run.log", method=method.name)
                    continue
                plan.fills.update(units)
                plan.todo.append(NotebookTask(
                    label=f"{spec.name}-{method.name}-fold{fold}", variant=spec.name, method=method.name, fold=fold,
                    needs=tuple(sorted(units)), notebook=notebook, output=str(run_dir / TRAIN_NOTEBOOK),
                    parameters=params, kernel_name=kernel_name, cwd=str(run_dir), lock=str(run_dir / ".lock"),
                    log=str(run_dir / "run.log"), env=env,
                    check={"run_dir": str(run_dir), "fingerprint": fp, "variant": spec.name, "fold": fold,
                           "record": {"fingerprint": fp, "parameters": params, "synth": synth, "classes": classes,
                                      "data": data}}))
    return plan


def _schedule(plan: _Plan, config: SweepConfig, ds, ds_path: Path, out: Path) -> tuple[list[Task], dict[str, set]]:
    """``(initial tasks, pending fills by run label)``: a run starts when the fills it reads are done."""
    from soundlib.embedders.backbones import is_ready

    fills: list[FillTask] = []
    paths = [c.path for c in ds.clips]
    for key, unit in plan.fills.items():
        if unit.is_filled(paths):
            continue
        label = unit.label
        if any(t.label == label for t in fills):
            label = f"{label}-{len(fills)}"
        fills.append(FillTask(label=label, unit=key, dataset=str(ds_path), method=unit.method.to_dict(),
                              variant=unit.variant.to_dict(), backbone=unit.backbone,
                              batch_size=config.embed_batch_size, env=plan.env,
                              picture=unit.embedder.modality == "picture", log=str(out / ".logs" / f"{label}.log"),
                              group_by=config.group_by, group_regex=config.group_regex))
    filling = {t.unit for t in fills}
    pending = {t.label: set(t.needs) & filling for t in plan.todo}
    ready: list[Task] = [t for t in plan.todo if not pending[t.label]]
    backbone_fills = [t for t in fills if t.picture]
    if backbone_fills and not is_ready(config.backbone) and not _converted_under_lock(config.backbone):
        # the first backbone fill exports (or downloads) the backbone alone; the rest then only load it
        # (measured: the first variant's runs interleave with the other fills better than fills first)
        first = backbone_fills[0]
        plan.deferred = [*(t for t in fills if t is not first), *ready]
        return [first], pending
    return [*fills, *ready], pending


def _converted_under_lock(handle: str) -> bool:
    """Whether the fills of ``handle`` open it through a copy built under a lock (an embedded backbone on
    LiteRT: the first fill converts it, the others wait for the lock and then load it), so that they may all
    start at once rather than after the first one."""
    from soundlib.embedders import litert
    from soundlib.embedders.backbones import EMBEDDED_BACKBONES, resolve_backbone
    from soundlib.errors import BackboneError

    if handle not in EMBEDDED_BACKBONES:
        return False
    try:
        return litert.wanted(resolve_backbone(handle))
    except BackboneError:
        return False


class _Tracker:
    """Collects outcomes as tasks finish, starts runs whose fills are done, keeps the progress bar current."""

    def __init__(self, plan: _Plan, fills: list[FillTask], pending: dict[str, set], total: int, progress: bool):
        from tqdm.auto import tqdm

        self.outcomes = plan.outcomes
        self.waiting = {t.label: t for t in plan.todo if pending.get(t.label)}
        self.pending = pending
        self.deferred = list(plan.deferred)
        self.filling = {t.unit for t in fills}
        self.embed_errors: dict[str, str] = {}
        self.shards_left: dict[str, int] = {}
        self.bar = tqdm(total=total, initial=total - plan.remaining, desc="sweep", unit="run",
                        disable=not progress, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        n_failed = sum(o.status == "failed" for o in self.outcomes.values())
        if self.filling:
            names = sorted({u.split("|")[0].rstrip("/").rsplit("/", 1)[-1] for u in self.filling})
            shards = sum(self.shards_left.get(u, 0) for u in self.filling)
            left = f", {shards} shard(s) left" if shards else ""
            self.bar.set_postfix_str(f"filling caches: {', '.join(names)} ({len(self.filling)}{left})")
        else:
            self.bar.set_postfix_str(f"{n_failed} failed" if n_failed else "")

    def on_done(self, task: Task, result: dict) -> list[Task]:
        if isinstance(task, ShardTask):  # one shard of a fill on a cluster (soundlib.sweep.shards)
            shard_error = result.get("error") or (f"{result.get('ename')}: {result.get('evalue')}"
                                                  if result.get("status") == "failed" else None)
            bad = result.get("failures") or []
            if bad and not shard_error:
                shard_error = f"{len(bad)} clip(s) could not be embedded: " + "; ".join(m for _, m in bad[:3])
            if shard_error:
                self.embed_errors[task.label] = shard_error
            self.shards_left[task.unit] -= 1
            released = list(self.deferred)
            self.deferred = []
            if self.shards_left[task.unit] > 0:
                self._postfix()
                return released
            return released + self._filled(task.unit)
        if isinstance(task, FillTask):
            if result.get("status") != "completed":
                self.embed_errors[task.label] = f"{result.get('ename')}: {result.get('evalue')}"
            released = list(self.deferred)
            self.deferred = []
            return released + self._filled(task.unit)
        status = result.get("status", "failed")
        nb = result.get("notebook")
        err = f"{result.get('ename')}: {result.get('evalue')}" if status == "failed" else None
        if task.check is None or task.variant is None or task.fold is None:
            raise ConfigError(f"sweep task {task.label!r} is not a training run")  # the driver only queues runs
        self.outcomes[(task.variant, str(task.method), task.fold)] = RunOutcome(
            task.variant, task.fold, Path(task.check["run_dir"]), status, Path(nb) if nb else None,
            err, result.get("cell"), Path(task.log), float(result.get("seconds") or 0.0), str(task.method))
        self.bar.update(1)
        self._postfix()
        return []

    def _filled(self, unit: str) -> list[Task]:
        """The runs that no longer wait for a fill, now that cache unit ``unit`` is filled."""
        self.filling.discard(unit)
        released: list[Task] = []
        for label in list(self.waiting):
            self.pending[label].discard(unit)
            if not self.pending[label]:
                released.append(self.waiting.pop(label))
        self._postfix()
        return released

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------
# Steps of run()

def _load_config(config_or_path: "SweepConfig | str | os.PathLike", jobs: int | None,
                 max_runs: int | None = None) -> SweepConfig:
    from soundlib.config import to_int

    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    if max_runs is not None:
        max_runs = to_int(max_runs, "max_runs (--max-runs)", minimum=1)
    if not isinstance(config_or_path, SweepConfig):
        return load_sweep_config(config_or_path, max_runs=max_runs)
    config = config_or_path if max_runs is None else dataclasses.replace(config_or_path, max_runs=max_runs)
    config.check_runs()
    return config


def _read_notebooks(notebooks: str | os.PathLike | None) -> tuple[str, str]:
    from soundlib.lab.notebook import notebooks_dir

    folder = notebooks_dir(notebooks)
    return ((folder / TRAIN_NOTEBOOK).read_text(encoding="utf-8"),
            (folder / EVALUATE_NOTEBOOK).read_text(encoding="utf-8"))


def _prepare_dataset(config: SweepConfig, out: Path, *, progress: bool):
    """``(dataset path, Dataset, config with the folds resolved)``."""
    from soundlib.audio.folds import assign_folds, check_grouping

    if config.synth is not None:
        from soundlib.audio.synth import ensure_corpus

        path = config.dataset or out / "data"
        ensure_corpus(path, config.synth, progress=progress)
    else:
        if config.dataset is None or not config.dataset.exists():
            raise ConfigError(f"{config.source or 'sweep config'}: dataset path {config.dataset} does not exist")
        path = config.dataset
    ds = config.load_dataset(path)
    check_grouping(ds, assigned=not ds.has_folds)  # said once here; every run records it too
    available = list(ds.folds) if ds.has_folds else list(assign_folds(ds, config.k_folds, seed=config.train.seed).folds)
    missing = [f for f in (config.folds or ()) if f not in available]
    if missing:
        raise ConfigError(f"{config.source or 'sweep config'}: fold(s) {missing} not in dataset {ds.root} "
                          f"(folds there: {available})")
    folds = tuple(config.folds) if config.folds is not None else tuple(available)
    check_method_folds(config.only, folds, str(config.source or "sweep config"))
    return Path(path), ds, dataclasses.replace(config, dataset=Path(path), folds=folds)


def _write_resolved(out: Path, config: SweepConfig) -> None:
    import yaml

    from soundlib.atomic import write_text_atomic

    write_text_atomic(out / "sweep.yaml", "# resolved by soundlib.sweep.run; `soundlib sweep` reads it back\n"
                      + yaml.safe_dump(config.to_dict(), sort_keys=False))


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` while the sweep runs, so that its tasks are stopped and its temporary
    files removed as on Ctrl-C (Python's default SIGTERM ends the process at once, leaving them behind)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _shard_fills(initial: list[Task], plan: _Plan, ds, backend) -> tuple[list[Task], dict[str, int]]:
    """``(initial tasks, shards per cache unit)`` with every fill replaced by its shards; when the first fill
    runs alone (it exports the picture backbone), only its first shard does."""
    from soundlib.sweep.shards import sweep_shard_tasks

    paths = [c.path for c in ds.clips]
    workers = getattr(backend, "workers", 1)
    alone = len(initial) == 1 and isinstance(initial[0], FillTask) and bool(plan.deferred)
    first, counts = sweep_shard_tasks(initial, plan.fills, paths, n_workers=workers)
    deferred, more = sweep_shard_tasks(plan.deferred, plan.fills, paths, n_workers=workers)
    for unit, n in more.items():
        counts[unit] = counts.get(unit, 0) + n
    if alone:
        first, deferred = first[:1], first[1:] + deferred
    plan.deferred = deferred
    return first, counts


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
    result = run_task(NotebookTask(label="evaluate", notebook=notebook, output=str(out / EVALUATE_NOTEBOOK),
                                   parameters={"sweep_dir": str(out)}, kernel_name=kernel_name, cwd=str(out),
                                   lock=str(out / ".evaluate.lock"), log=str(out / ".logs" / "evaluate.log"), env=env))
    error = None if result.get("status") == "completed" else f"{result.get('ename')}: {result.get('evalue')}"
    if error is not None:
        write_results(out)
    return (Path(result["notebook"]) if result.get("notebook") else None), error


def run(config_or_path: "SweepConfig | str | os.PathLike", *, out_dir: str | os.PathLike, jobs: int | None = None,
        scheduler: Any = None, progress: bool = True, kernel_name: str | None = None,
        notebooks: str | os.PathLike | None = None, max_runs: int | None = None) -> SweepResult:
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
        Jupyter kernel for the notebooks (default :func:`soundlib.lab.notebook.default_kernel_name`,
        chosen where a run executes).
    notebooks : path-like, optional
        Folder with the notebooks (default :func:`soundlib.lab.notebook.notebooks_dir`).
    max_runs : int, optional
        The most runs the grid may hold (default: the file's ``max_runs``, else
        :data:`soundlib.sweep.config.DEFAULT_MAX_RUNS`); a larger grid is refused before any work.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError, DatasetError
        Invalid sweep file, missing dataset, unknown folds, notebooks not found.
    """
    t0 = time.perf_counter()
    if isinstance(scheduler, str):
        parse_scheduler(scheduler)  # a malformed address fails at once
    clean_stale_temp()  # what sweeps killed with kill -9 left in $TMPDIR
    config = _load_config(config_or_path, jobs, max_runs)
    train_nb, eval_nb = _read_notebooks(notebooks)
    out = ensure_dir(Path(out_dir).expanduser().resolve())
    # connect first: an unreachable scheduler fails before any work
    backend = DaskBackend(scheduler, jobs) if scheduler is not None else LocalBackend(jobs or config.jobs)
    with _sigterm_exits():
        with _aborting(backend):
            ds_path, ds, config = _prepare_dataset(config, out, progress=progress)
            config.check_runs()  # now with the dataset's folds
            _write_resolved(out, config)
            plan = _plan(config, ds, ds_path, out, train_nb, kernel_name)
            initial, pending = _schedule(plan, config, ds, ds_path, out)
            fills = [t for t in initial + plan.deferred if isinstance(t, FillTask)]
            shards: dict[str, int] = {}
            if scheduler is not None:  # on a cluster each fill runs as shards of clips (soundlib.sweep.shards)
                initial, shards = _shard_fills(initial, plan, ds, backend)
            total = sum(len(config.method_folds(m.name, config.folds)) for v in config.variants
                        for m in config.methods if config.runs(v.name, m.name))
            tracker = _Tracker(plan, fills, pending, total, progress)
            tracker.shards_left = shards
            try:
                drive(backend, initial, tracker.on_done)
            finally:
                tracker.close()
        eval_path, eval_error = _evaluate(out, eval_nb, kernel_name, plan.env)

    ordered = [plan.outcomes[(s.name, m.name, f)] for s in config.variants for m in config.methods
               for f in config.folds if (s.name, m.name, f) in plan.outcomes]
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
