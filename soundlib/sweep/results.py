"""A sweep folder's runs -> tables: per-run scores, mean ± std per variant, summed confusions.

Every ``<variant>/fold<k>/metrics.json`` under a sweep folder is read through
:class:`~soundlib.metrics.RunMetrics`; torn or foreign files are ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterator

from ..metrics import RunMetrics

__all__ = [
    "collect_runs",
    "collect_results",
    "results_table_markdown",
    "write_results",
    "summed_confusion",
    "per_class_f1",
    "write_summed_confusions",
]

_FOLD_DIR = re.compile(r"^fold(\d+)$")
_RUN_COLUMNS = ["variant", "fold", "accuracy", "macro_f1", "n", "seconds", "run_dir"]
_TABLE_COLUMNS = ["folds", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "clips"]


def _variant_order(sweep_dir: Path) -> list[str]:
    try:
        import yaml

        data = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
        return [v if isinstance(v, str) else v["name"] for v in data.get("variants", [])]
    except Exception:  # no or foreign sweep.yaml: alphabetical order
        return []


def _runs(sweep_dir: Path) -> Iterator[tuple[Path, RunMetrics]]:
    """``(run folder, metrics)`` of every complete run, in sweep.yaml's variant order, then by fold."""
    order = _variant_order(sweep_dir)
    found = []
    for path in Path(sweep_dir).glob("*/fold*/metrics.json"):
        m = _FOLD_DIR.match(path.parent.name)
        metrics = RunMetrics.read(path) if m else None
        if metrics is not None:
            found.append((path.parent.parent.name, int(m.group(1)), path.parent, metrics))
    rank = {name: i for i, name in enumerate(order)}
    found.sort(key=lambda r: (rank.get(r[0], len(rank)), r[0], r[1]))
    return iter((run_dir, _named_by_folder(metrics, variant, fold)) for variant, fold, run_dir, metrics in found)


def _named_by_folder(metrics: RunMetrics, variant: str, fold: int) -> RunMetrics:
    """The run's folder names its variant and fold (what the tables group by)."""
    return dataclasses.replace(metrics, variant=variant, test_fold=fold)


def collect_runs(sweep_dir: str | os.PathLike):
    """One row per complete run under ``sweep_dir`` (every ``<variant>/fold<k>/metrics.json``).

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, fold, accuracy, macro_f1, n, seconds, run_dir``; variants
        in the order of ``sweep.yaml`` when there is one.
    """
    import pandas as pd

    rows = [{"variant": m.variant, "fold": m.test_fold, "accuracy": m.accuracy, "macro_f1": m.macro_f1,
             "n": int(m.n), "seconds": m.seconds, "run_dir": str(run_dir)}
            for run_dir, m in _runs(Path(sweep_dir))]
    return pd.DataFrame(rows, columns=_RUN_COLUMNS)


def collect_results(sweep_dir: str | os.PathLike):
    """Per-variant mean ± std of accuracy and macro-F1 over the folds found under ``sweep_dir``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``variant``; columns ``folds`` (runs found), ``accuracy_mean``,
        ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std`` (population std, ddof=0,
        as :func:`soundlib.evaluate.evaluate` reports) and ``clips`` (test clips summed).
    """
    import pandas as pd

    runs = collect_runs(sweep_dir)
    rows = []
    for variant in dict.fromkeys(runs["variant"]):
        r = runs[runs["variant"] == variant]
        rows.append({"variant": variant, "folds": len(r),
                     "accuracy_mean": float(r["accuracy"].mean()), "accuracy_std": float(r["accuracy"].std(ddof=0)),
                     "macro_f1_mean": float(r["macro_f1"].mean()), "macro_f1_std": float(r["macro_f1"].std(ddof=0)),
                     "clips": int(r["n"].sum())})
    return pd.DataFrame(rows, columns=["variant"] + _TABLE_COLUMNS).set_index("variant")


def results_table_markdown(table: Any, *, digits: int = 3) -> str:
    """A Markdown table of :func:`collect_results`: variant, folds, accuracy and macro-F1 as mean ± std."""
    lines = ["| variant | folds | accuracy | macro-F1 |", "|---|---:|---|---|"]
    for variant, r in table.iterrows():
        lines.append(f"| {variant} | {int(r['folds'])} "
                     f"| {r['accuracy_mean']:.{digits}f} ± {r['accuracy_std']:.{digits}f} "
                     f"| {r['macro_f1_mean']:.{digits}f} ± {r['macro_f1_std']:.{digits}f} |")
    if len(table) == 0:
        lines.append("| (no complete runs) | 0 | | |")
    return "\n".join(lines)


def write_results(sweep_dir: str | os.PathLike, table: Any = None) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` into ``sweep_dir`` atomically; return their paths."""
    from ..atomic import write_text_atomic

    sweep_dir = Path(sweep_dir)
    table = collect_results(sweep_dir) if table is None else table
    csv_path = write_text_atomic(sweep_dir / "results.csv", table.to_csv())
    md = ("# Sweep results\n\n" + results_table_markdown(table) + "\n\n"
          "Mean ± standard deviation (ddof=0) over test folds; each fold trained on the others.\n")
    md_path = write_text_atomic(sweep_dir / "results.md", md)
    return csv_path, md_path


def _run_classes(run_dir: Path, metrics: RunMetrics) -> list[str]:
    """Class names in confusion-matrix order: from params.json, the model's labels, or sorted names."""
    from ..errors import ModelError
    from ..infer import read_labels
    from .tasks import read_run_record

    n = len(metrics.confusion_matrix or [])
    record = read_run_record(run_dir)
    if record is not None and isinstance(record.get("classes"), list) and len(record["classes"]) == n:
        return list(record["classes"])
    try:
        names = read_labels(run_dir / "model")
        if len(names) == n:
            return names
    except ModelError:
        pass
    return sorted(metrics.per_class or {})[:n]


def summed_confusion(sweep_dir: str | os.PathLike) -> dict[str, tuple[list[str], Any]]:
    """Per variant: ``(classes, confusion matrix summed over its folds)`` as an int64 array."""
    import numpy as np

    out: dict[str, tuple[list[str], Any]] = {}
    for run_dir, m in _runs(Path(sweep_dir)):
        mat = np.asarray(m.confusion_matrix or [], dtype=np.int64)
        if mat.ndim != 2 or mat.size == 0:
            continue
        if m.variant not in out:
            out[m.variant] = (_run_classes(run_dir, m), mat.copy())
        elif out[m.variant][1].shape == mat.shape:
            out[m.variant][1][...] += mat
    return out


def per_class_f1(sweep_dir: str | os.PathLike):
    """Per-class F1 of each variant from its summed confusion matrix (variants × classes DataFrame)."""
    import numpy as np
    import pandas as pd

    rows = {}
    for variant, (classes, mat) in summed_confusion(sweep_dir).items():
        tp = np.diag(mat).astype(float)
        denom = 2 * tp + (mat.sum(axis=0) - tp) + (mat.sum(axis=1) - tp)
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        rows[variant] = pd.Series(f1, index=classes)
    return pd.DataFrame(rows).T


def write_summed_confusions(sweep_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<variant>/confusion_matrix.png`` (summed over folds) for every variant; return the paths."""
    from ..plots import plot_confusion, save_png

    sweep_dir = Path(sweep_dir)
    paths = {}
    for variant, (classes, mat) in summed_confusion(sweep_dir).items():
        acc = float(mat.trace() / max(mat.sum(), 1))
        fig = plot_confusion(mat.tolist(), classes, title=f"{variant}: all folds, pooled accuracy {acc:.3f}")
        paths[variant] = save_png(fig, sweep_dir / variant / "confusion_matrix.png")
    return paths
