"""A sweep folder's runs -> tables: per-run scores, mean ± std per variant, summed confusions.

Every ``<variant>/fold<k>/metrics.json`` under a sweep folder is read through
:class:`~soundlib.evaluation.metrics.RunMetrics`; torn or foreign files are ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterator

from soundlib.evaluation.metrics import RunMetrics

__all__ = [
    "collect_runs",
    "collect_results",
    "results_table_markdown",
    "write_results",
    "summed_confusion",
    "per_class_f1",
    "write_summed_confusions",
    "row_label",
    "significance",
    "significance_markdown",
    "grouping_note",
    "planned_runs",
]

_FOLD_DIR = re.compile(r"^fold(\d+)$")
_RUN_COLUMNS = ["variant", "method", "fold", "accuracy", "macro_f1", "val_accuracy", "n", "seconds", "fit_seconds",
                "choice", "run_dir", "train_clips", "recordings_known", "top_3_accuracy", "top_5_accuracy", "ece"]
_TABLE_COLUMNS = ["folds", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "clips",
                  "seconds_per_fold", "recordings_known", "complete", "missing_folds"]


def _order(sweep_dir: Path) -> tuple[list[str], list[str]]:
    """Variant and method names in the order of ``sweep.yaml`` (empty when there is none)."""
    try:
        import yaml

        data = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
        variants = [v if isinstance(v, str) else v["name"] for v in data.get("variants", [])]
        methods = [m if isinstance(m, str) else m["name"] for m in data.get("methods", [])]
        return variants, methods
    except Exception:  # no or foreign sweep.yaml: alphabetical order
        return [], []


def complete_runs(sweep_dir: Path) -> Iterator[tuple[Path, RunMetrics]]:
    """``(run folder, metrics)`` of every complete run: ``<variant>/<method>/fold<k>`` (and soundlib 0.1's
    ``<variant>/fold<k>``, whose method is ``frozen``), in sweep.yaml's order, then by fold."""
    variants, methods = _order(sweep_dir)
    found = []
    for pattern, depth in (("*/*/fold*/metrics.json", 2), ("*/fold*/metrics.json", 1)):
        for path in Path(sweep_dir).glob(pattern):
            m = _FOLD_DIR.match(path.parent.name)
            metrics = RunMetrics.read(path) if m else None
            if m is None or metrics is None:
                continue
            variant = path.parents[depth].name
            method = path.parent.parent.name if depth == 2 else metrics.method
            found.append((variant, method, int(m.group(1)), path.parent, metrics))
    vr, mr = {n: i for i, n in enumerate(variants)}, {n: i for i, n in enumerate(methods)}
    found.sort(key=lambda r: (vr.get(r[0], len(vr)), r[0], mr.get(r[1], len(mr)), r[1], r[2]))
    return iter((run_dir, dataclasses.replace(metrics, variant=variant, method=method, test_fold=fold))
                for variant, method, fold, run_dir, metrics in found)


def collect_runs(sweep_dir: str | os.PathLike):
    """One row per complete run under ``sweep_dir``.

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, method, fold, accuracy, macro_f1, val_accuracy, n, seconds, fit_seconds,
        choice, run_dir, train_clips, recordings_known, top_3_accuracy, top_5_accuracy, ece`` (NaN where a
        run did not record it: fewer classes than k, or an older soundlib); variants and methods in the order of
        ``sweep.yaml`` when there is one. ``recordings_known`` is False when the dataset did not say which
        files come from one recording (every file its own; see :func:`soundlib.audio.folds.check_grouping`),
        ``None`` for runs of soundlib versions that did not record it.
    """
    import pandas as pd

    rows = [{"variant": m.variant, "method": m.method, "fold": m.test_fold, "accuracy": m.accuracy,
             "macro_f1": m.macro_f1, "val_accuracy": m.val_accuracy, "n": int(m.n), "seconds": m.seconds,
             "fit_seconds": m.fit_seconds, "choice": _choice_text(m.choice), "run_dir": str(run_dir),
             "train_clips": int(m.train_clips), "recordings_known": (m.grouping or {}).get("known"),
             "top_3_accuracy": _top_k(m, 3), "top_5_accuracy": _top_k(m, 5),
             "ece": float(m.ece) if m.ece is not None else float("nan")}
            for run_dir, m in complete_runs(Path(sweep_dir))]
    return pd.DataFrame(rows, columns=_RUN_COLUMNS)


def _top_k(m: RunMetrics, k: int) -> float:
    value = (m.top_k_accuracy or {}).get(str(k))
    return float(value) if value is not None else float("nan")


def _choice_text(choice: dict) -> str:
    """A short text of what a method chose (the method auto picked, C, best epoch)."""
    parts = []
    for key in ("picked", "C", "best_epoch", "mode"):
        if key in (choice or {}):
            parts.append(f"{key}={choice[key]}")
    return ", ".join(parts)


def planned_runs(sweep_dir: str | os.PathLike) -> dict[tuple[str, str], set[int]]:
    """The test folds each (variant, method) was to run: every ``<variant>/<method>/fold<k>`` folder the
    sweep made (a run that failed or was stopped leaves its folder), plus the folds ``sweep.yaml`` lists
    (when it lists them; ``folds: all`` depends on the data)."""
    import yaml

    sweep_dir = Path(sweep_dir)
    planned: dict[tuple[str, str], set[int]] = {}
    for folder in sweep_dir.glob("*/*/fold*"):
        m = _FOLD_DIR.match(folder.name)
        if m and folder.is_dir():
            planned.setdefault((folder.parent.parent.name, folder.parent.name), set()).add(int(m.group(1)))
    try:
        data = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
        folds = data.get("folds") if isinstance(data, dict) else None
        if isinstance(folds, list) and all(isinstance(f, int) for f in folds):
            for key in list(planned):
                planned[key] |= set(folds)
    except Exception:  # no or foreign sweep.yaml: the folders alone
        pass
    return planned


def collect_results(sweep_dir: str | os.PathLike):
    """Mean ± std of accuracy and macro-F1 over the folds of each (variant, method) under ``sweep_dir``.

    A row with a planned fold that did not complete (failed, stopped, still running) is **incomplete**:
    ``complete`` False, ``missing_folds`` lists them, and its means and stds are NaN, never averaged
    over the folds that survived (a failed hard fold would otherwise flatter it).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(variant, method)``; columns ``folds`` (runs found), ``accuracy_mean``,
        ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std`` (population std, ddof=0,
        as :func:`soundlib.evaluation.evaluate.evaluate` reports), ``clips`` (test clips summed),
        ``seconds_per_fold`` (mean wall time of a run) and ``recordings_known`` (False when some
        run's dataset did not say which files come from one recording; None when not recorded).
    """
    import pandas as pd

    runs = collect_runs(sweep_dir)
    planned = planned_runs(sweep_dir)
    rows = []
    keys = list(dict.fromkeys(zip(runs["variant"], runs["method"])))
    keys += [k for k in planned if k not in keys]
    nan = float("nan")
    for (variant, method) in keys:
        r = runs[(runs["variant"] == variant) & (runs["method"] == method)]
        missing = sorted(planned.get((variant, method), set()) - {int(f) for f in r["fold"]})
        whole = not missing
        rows.append({"variant": variant, "method": method, "folds": len(r),
                     "accuracy_mean": float(r["accuracy"].mean()) if whole else nan,
                     "accuracy_std": float(r["accuracy"].std(ddof=0)) if whole else nan,
                     "macro_f1_mean": float(r["macro_f1"].mean()) if whole else nan,
                     "macro_f1_std": float(r["macro_f1"].std(ddof=0)) if whole else nan,
                     "clips": int(r["n"].sum()),
                     "seconds_per_fold": float(r["seconds"].astype(float).mean()) if len(r) else nan,
                     "recordings_known": all_known(r["recordings_known"]), "complete": whole,
                     "missing_folds": " ".join(map(str, missing))})
    return pd.DataFrame(rows, columns=["variant", "method"] + _TABLE_COLUMNS).set_index(["variant", "method"])


def all_known(values) -> bool | None:
    """False if any run's recordings were unknown, True if all were known, None if none recorded it."""
    seen = [bool(v) for v in values if v is not None and v == v]
    return None if not seen else all(seen)


def grouping_note(table: Any) -> str:
    """A loud Markdown paragraph when some row's dataset did not say which files come from one recording
    (``recordings_known`` False in :func:`collect_results`); empty otherwise."""
    if "recordings_known" not in getattr(table, "columns", ()):
        return ""
    from soundlib.text import markdown

    unknown = [markdown(f"{v}/{m}") for (v, m), known in table["recordings_known"].items() if known is False]
    if not unknown:
        return ""
    return (f"**Recordings unknown** ({', '.join(unknown)}): the dataset did not say which files come from one "
            "recording, so every file counted as its own. Slices of one recording may sit in different folds, "
            "trained on in one and tested on in another: these scores may be too high. Name the recordings (a "
            "manifest `group` column, `group_by`, or `group_regex` in the sweep file) and run the sweep again.")


def results_table_markdown(table: Any, *, digits: int = 3) -> str:
    """A Markdown table of :func:`collect_results`: variant, method, folds, accuracy and macro-F1 as
    mean ± std, seconds per fold."""
    lines = ["| variant | method | folds | accuracy | macro-F1 | s / fold |", "|---|---|---:|---|---|---:|"]
    from soundlib.text import markdown

    for (variant, method), r in table.iterrows():
        if "complete" in r and not r["complete"]:
            lines.append(f"| {markdown(variant)} | {markdown(method)} | {int(r['folds'])} | incomplete: fold(s) "
                         f"{r['missing_folds']} did not complete (not averaged) | | |")
            continue
        lines.append(f"| {markdown(variant)} | {markdown(method)} | {int(r['folds'])} "
                     f"| {r['accuracy_mean']:.{digits}f} ± {r['accuracy_std']:.{digits}f} "
                     f"| {r['macro_f1_mean']:.{digits}f} ± {r['macro_f1_std']:.{digits}f} "
                     f"| {r['seconds_per_fold']:.0f} |")
    if len(table) == 0:
        lines.append("| (no complete runs) | | 0 | | | |")
    return "\n".join(lines)


def significance(sweep_dir: str | os.PathLike, *, alpha: float = 0.05, seed: int = 0):
    """Is each row's difference to the best row real? Tests over the same folds and clips, Holm-corrected.

    Every other (variant, method) is compared with the best row (highest mean accuracy):

    * Nadeau and Bengio's **corrected resampled t-test** of the per-fold accuracies over the
      folds both rows ran (:func:`soundlib.evaluation.stats.corrected_resampled_t`, with the folds'
      test/train size ratio): the folds share training data, so the plain paired t-test over
      folds is too confident; with 4 folds it has 3 degrees of freedom and rarely declares anything;
    * **McNemar's exact test** over the clips both rows labelled, pooled over folds: of the clips
      exactly one of the two got right, are the two counts compatible with chance?
    * a **95 % bootstrap interval** of the accuracy difference over those clips, resampling whole
      recordings (:func:`soundlib.evaluation.stats.bootstrap_difference`, 2,000 resamples, seeded).

    Both p-values are **Holm-corrected** across the rows compared with the best
    (:func:`soundlib.evaluation.stats.holm`); the verdict uses the corrected ones.

    Returns
    -------
    pandas.DataFrame
        One row per (variant, method) other than the best: ``accuracy``, ``delta`` (vs the best),
        ``delta_low`` and ``delta_high`` (its bootstrap interval over clips), ``folds``,
        ``test_train_ratio``, ``corrected_t_p`` and ``corrected_t_p_holm``, ``clips``, ``best_only``
        and ``other_only`` (clips only the best / only this row got right), ``mcnemar_p`` and
        ``mcnemar_p_holm``, ``verdict``.
    """
    import pandas as pd

    from soundlib.evaluation.metrics import read_predictions
    from soundlib.evaluation.stats import bootstrap_difference, corrected_resampled_t, holm, mcnemar

    runs = collect_runs(sweep_dir)
    columns = ["variant", "method", "accuracy", "delta", "delta_low", "delta_high", "folds", "test_train_ratio",
               "corrected_t_p", "corrected_t_p_holm", "clips", "best_only", "other_only", "mcnemar_p",
               "mcnemar_p_holm", "verdict"]
    if runs.empty:
        return pd.DataFrame(columns=columns).set_index(["variant", "method"])
    table = collect_results(sweep_dir)
    table = table[table["complete"].astype(bool)]  # incomplete rows are neither the best nor compared
    if table.empty:
        return pd.DataFrame(columns=columns).set_index(["variant", "method"])
    best = table["accuracy_mean"].idxmax()
    groups: dict[str, str] = {}

    def of(key):
        return runs[(runs["variant"] == key[0]) & (runs["method"] == key[1])]

    def correct(key) -> "pd.Series":
        parts = []
        for run_dir in of(key)["run_dir"]:
            frame = read_predictions(run_dir)
            if frame is not None:
                parts.append(pd.Series((frame["true"] == frame["predicted"]).to_numpy(), index=frame["path"]))
                if "group" in frame:
                    groups.update(zip(frame["path"].astype(str), frame["group"].astype(str)))
        return pd.concat(parts) if parts else pd.Series(dtype=bool)

    def per_fold(key, column="accuracy") -> "pd.Series":
        r = of(key)
        return pd.Series(r[column].to_numpy(), index=r["fold"].to_numpy())

    best_correct, best_folds = correct(best), per_fold(best)
    rows = []
    for key in table.index:
        if key == best:
            continue
        folds = best_folds.index.intersection(per_fold(key).index)
        a, b = best_folds[folds].to_numpy(), per_fold(key)[folds].to_numpy()
        ratio = _test_train_ratio(per_fold(key, "n")[folds], per_fold(key, "train_clips")[folds])
        _, t_p = corrected_resampled_t(b, a, ratio)
        other = correct(key)
        common = best_correct.index.intersection(other.index)
        x, y = best_correct[common].to_numpy(), other[common].to_numpy()
        n01, n10, mc_p = mcnemar(x, y)
        low, high = bootstrap_difference(x, y, [groups.get(str(c), str(c)) for c in common], seed=seed)
        rows.append({"variant": key[0], "method": key[1], "accuracy": float(table.loc[key, "accuracy_mean"]),
                     "delta": float(table.loc[key, "accuracy_mean"] - table.loc[best, "accuracy_mean"]),
                     "delta_low": low, "delta_high": high, "folds": len(folds), "test_train_ratio": ratio,
                     "corrected_t_p": t_p, "clips": len(common), "best_only": n01, "other_only": n10,
                     "mcnemar_p": mc_p})
    frame = pd.DataFrame(rows, columns=columns)
    frame["corrected_t_p_holm"] = holm(frame["corrected_t_p"].to_numpy(dtype=float))
    frame["mcnemar_p_holm"] = holm(frame["mcnemar_p"].to_numpy(dtype=float))
    frame["verdict"] = [_verdict(r, alpha) for _, r in frame.iterrows()]
    return frame.set_index(["variant", "method"])


def _test_train_ratio(n_test, n_train) -> float:
    """Mean test/train clip ratio over the folds; ``1/(k-1)`` (leave-one-fold-out of equal folds) when
    the runs did not record their training clips."""
    import numpy as np

    test, train = np.asarray(n_test, dtype=float), np.asarray(n_train, dtype=float)
    ok = train > 0
    if ok.any():
        return float(np.mean(test[ok] / train[ok]))
    return 1.0 / max(1, len(test) - 1)


def _verdict(row, alpha: float) -> str:
    sig = [name for name, p in (("McNemar", row["mcnemar_p_holm"]), ("corrected t", row["corrected_t_p_holm"]))
           if p == p and p < alpha]
    return (f"significantly different from the best (Holm-adjusted p < {alpha:g}: {', '.join(sig)})" if sig
            else "not significantly different from the best")


def significance_markdown(frame: Any, best: tuple[str, str] | None = None) -> str:
    """A Markdown table of :func:`significance`."""
    from soundlib.text import markdown

    head = ""
    if best:
        head = (f"Compared with the best row ({markdown(best[0])} / {markdown(best[1])}), over the same folds and "
                "clips. p-values: "
                "Nadeau and Bengio's corrected resampled t-test over folds (not the plain paired t-test, which "
                "ignores that the folds share training data) and McNemar's exact test over clips, each then "
                f"Holm-corrected across the {len(frame)} row(s) compared; the interval of Δ is a 95 % bootstrap "
                "over clips, resampling whole recordings.\n\n")
    lines = ["| variant | method | accuracy | Δ vs best [95 % CI] | corrected t (folds) p, Holm | "
             "McNemar (clips) p, Holm | verdict |",
             "|---|---|---|---|---|---|---|"]
    for (variant, method), r in frame.iterrows():
        variant, method = markdown(variant), markdown(method)
        ci = f" [{r['delta_low']:+.3f}, {r['delta_high']:+.3f}]" if r["delta_low"] == r["delta_low"] else ""
        t_p = (f"{r['corrected_t_p']:.3f}, {r['corrected_t_p_holm']:.3f} ({int(r['folds'])} folds)"
               if r["corrected_t_p"] == r["corrected_t_p"] else f"n/a ({int(r['folds'])} folds)")
        lines.append(f"| {variant} | {method} | {r['accuracy']:.3f} | {r['delta']:+.3f}{ci} | {t_p} "
                     f"| {r['mcnemar_p']:.2g}, {r['mcnemar_p_holm']:.2g} ({int(r['best_only'])} vs "
                     f"{int(r['other_only'])} of {int(r['clips'])}) | {r['verdict']} |")
    return head + "\n".join(lines)


def write_results(sweep_dir: str | os.PathLike, table: Any = None) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` (the table, and which differences to the best row are
    significant) into ``sweep_dir`` atomically; return their paths."""
    from soundlib.atomic import write_text_atomic
    from soundlib.text import csv_cell

    sweep_dir = Path(sweep_dir)
    table = collect_results(sweep_dir) if table is None else table
    cells = table.rename(index=csv_cell, columns=csv_cell)  # names as text: never a spreadsheet formula
    for column in cells.select_dtypes(include=["object", "string"]).columns:
        cells[column] = cells[column].map(csv_cell)
    csv_path = write_text_atomic(sweep_dir / "results.csv", cells.to_csv())
    md = ("# Sweep results\n\n" + results_table_markdown(table) + "\n\n"
          "Mean ± standard deviation (ddof=0) over test folds; each fold trained on the others.\n")
    if grouping_note(table):
        md += "\n" + grouping_note(table) + "\n"
    if len(table) > 1:
        best = table["accuracy_mean"].idxmax()
        md += "\n## Differences to the best row\n\n" + significance_markdown(significance(sweep_dir), best) + "\n"
    md_path = write_text_atomic(sweep_dir / "results.md", md)
    return csv_path, md_path


def _run_classes(run_dir: Path, metrics: RunMetrics) -> list[str]:
    """Class names in confusion-matrix order: from params.json, the model's labels, or sorted names."""
    from soundlib.errors import ModelError
    from soundlib.models.load import read_labels
    from soundlib.sweep.tasks import read_run_record

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


def row_label(variant: str, method: str) -> str:
    """How a (variant, method) row is named in figures and file names: ``variant/method``."""
    return f"{variant}/{method}"


def summed_confusion(sweep_dir: str | os.PathLike) -> dict[str, tuple[list[str], Any]]:
    """Per ``variant/method``: ``(classes, confusion matrix summed over its folds)`` as an int64 array."""
    import numpy as np

    out: dict[str, tuple[list[str], Any]] = {}
    for run_dir, m in complete_runs(Path(sweep_dir)):
        mat = np.asarray(m.confusion_matrix or [], dtype=np.int64)
        if mat.ndim != 2 or mat.size == 0:
            continue
        label = row_label(m.variant, m.method)
        if label not in out:
            out[label] = (_run_classes(run_dir, m), mat.copy())
        elif out[label][1].shape == mat.shape:
            out[label][1][...] += mat
    return out


def per_class_f1(sweep_dir: str | os.PathLike):
    """Per-class F1 of each ``variant/method`` from its summed confusion matrix (rows × classes DataFrame)."""
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
    """Write ``<variant>/<method>/confusion_matrix.png`` (summed over folds) for every row; return the paths."""
    from soundlib.evaluation.plots import plot_confusion, save_png

    sweep_dir = Path(sweep_dir)
    paths = {}
    for label, (classes, mat) in summed_confusion(sweep_dir).items():
        acc = float(mat.trace() / max(mat.sum(), 1))
        fig = plot_confusion(mat.tolist(), classes, title=f"{label}: all folds, pooled accuracy {acc:.3f}")
        paths[label] = save_png(fig, sweep_dir / label / "confusion_matrix.png")
    return paths
