"""Parameter sweeps: folds × feature variants, each run an executed notebook.

A sweep file (YAML, :mod:`.config`) names a dataset, the test folds, the
feature variants, the backbone and the head's hyperparameters. :func:`run`
(:mod:`.driver`) expands it into one run per (variant, fold): the embedding
cache is filled once per variant, ``notebooks/train.ipynb`` is executed by
papermill once per run, each in its own process with its own kernel
(:mod:`.tasks`), ``jobs`` at a time locally or on a Dask cluster
(:mod:`.executors`), into ``OUT/<variant>/fold<k>/``; then
``notebooks/evaluate.ipynb`` aggregates every run (:mod:`.results`).

Sweeps are resumable: a run is complete when its ``params.json`` matches the
run's parameters, its ``metrics.json`` is valid and its executed notebook is in
place. Complete runs are skipped, so a sweep killed at any moment (``kill -9``
included) and started again finishes the same table without running a
complete run twice. Each run holds a lock on its folder while it executes; a
failed run is reported with its notebook and the failing cell's error, and the
other runs go on.
"""

from soundlib.sweep.config import SweepConfig, load_sweep_config
from soundlib.sweep.driver import RunOutcome, SweepResult, run
from soundlib.sweep.results import (
    collect_results,
    collect_runs,
    per_class_f1,
    results_table_markdown,
    summed_confusion,
    write_results,
    write_summed_confusions,
)

__all__ = [
    "SweepConfig",
    "load_sweep_config",
    "run",
    "RunOutcome",
    "SweepResult",
    "collect_runs",
    "collect_results",
    "results_table_markdown",
    "write_results",
    "summed_confusion",
    "per_class_f1",
    "write_summed_confusions",
]
