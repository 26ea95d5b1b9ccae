"""Training runs that export a model: one fold held out (:func:`train_fold`, the unit of a sweep:
``metrics.json``, predictions and, optionally, the exported model) or every fold (:func:`train_all_folds`,
the model to ship; validation recordings still held out). The protocol and the prepared features are
:mod:`soundlib.evaluation.evaluate`'s; the model is written by :mod:`soundlib.models.export`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from soundlib.audio.datasets import Dataset
from soundlib.errors import DatasetError
from soundlib.evaluation.evaluate import (EvalConfig, Prepared, check_cross_validation_features, check_folds, check_size,
                                          embedder_text, finite_or_none, prepare, read_cross_validation, run_fold)
from soundlib.evaluation.metrics import RunMetrics
from soundlib.models.export import export_artifact

__all__ = ["train_fold", "format_run", "train_all_folds", "format_all_folds"]


@contextlib.contextmanager
def _training_run(dataset: Dataset, config: EvalConfig, out_dir: str | os.PathLike, *, export: bool, overwrite: bool,
                  cv_from: str | os.PathLike | None) -> Iterator[tuple[Any, Any, dict | None]]:
    """What every training run checks and holds before it starts: clips to train on, a model target it may
    replace, the cross-validation it will record, and its run folder (owned, locked) with its warnings log.
    Yields ``(run folder, warnings log, cross-validation or None)``."""
    from soundlib.errors import collect_warnings
    from soundlib.evaluation.outputs import run_folder
    from soundlib.models.export import check_model_target

    out = Path(out_dir)
    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
    check_size(dataset)
    if export:
        check_model_target(out / "model", overwrite=overwrite)
    cv = read_cross_validation(cv_from, config, dataset) if cv_from is not None else None
    with collect_warnings() as log, run_folder(out, kind="train", overwrite=overwrite) as run:
        yield run, log, cv


def train_fold(dataset: Dataset, *, test_fold: int, config: EvalConfig = EvalConfig(),
               out_dir: str | os.PathLike, embed_config=None, export: bool = True, overwrite: bool = False,
               progress: bool = True, cv_from: str | os.PathLike | None = None) -> RunMetrics:
    """Train on every fold but ``test_fold``, score on it, and write its outputs into ``out_dir``.

    Writes ``predictions.csv``, ``confusion_matrix.png``, ``history.json``
    (what the method chose on validation), the exported model under
    ``out_dir/model`` (``export=True`` and a method that can export one), and
    last ``metrics.json``: its presence marks a complete run. ``out_dir`` is a
    run folder soundlib owns and locks while writing (see
    :func:`soundlib.evaluation.outputs.run_folder`): a second run into it at the same time
    is refused, and the previous run's outputs (``metrics.json`` first, and its
    model when this run exports none) are removed before new ones are written,
    so a run killed half-way leaves a folder that reads as incomplete, never an
    old score or model beside new outputs.

    Parameters
    ----------
    overwrite : bool
        Write into an ``out_dir`` that soundlib did not make, and replace an
        ``out_dir/model`` that is not a soundlib model. Without it, such folders
        are refused before anything is trained (a soundlib model is replaced
        atomically either way; see :func:`soundlib.models.export.export_keras_model`).
    cv_from : path-like, optional
        An :func:`evaluate` folder (or its ``results.json``) of the same configuration whose
        cross-validated accuracy the exported model records (:func:`read_cross_validation`).
    """
    with _training_run(dataset, config, out_dir, export=export, overwrite=overwrite, cv_from=cv_from) as (run, log, cv):
        return _train_fold(dataset, test_fold=test_fold, config=config, run=run, embed_config=embed_config,
                           export=export, overwrite=overwrite, progress=progress, log=log, cv=cv)


def _train_fold(dataset: Dataset, *, test_fold: int, config: EvalConfig, run, embed_config, export: bool,
                overwrite: bool, progress: bool, log, cv: dict | None = None) -> RunMetrics:
    from soundlib.atomic import write_json_atomic
    from soundlib.audio.folds import check_test_fold, grouping_record
    from soundlib.evaluation.metrics import compute_metrics, prediction_rows, write_predictions
    from soundlib.evaluation.plots import plot_confusion, save_png

    t0 = time.perf_counter()
    out = run.path
    p = prepare(dataset, config, embed_config, progress)
    check_cross_validation_features(cv, p.feats.info)
    check_folds(p.ds, [test_fold])
    check_test_fold(p.ds, test_fold)
    exports = export and p.method.exportable
    run.start(keep=["model"] if exports else [])  # a model this run will not replace must not pass for its own
    classes = list(p.ds.classes)
    split, fit, proba, seconds = run_fold(p, test_fold, config)
    yt = p.y[split.test]
    if p.ds.multilabel:
        from soundlib.evaluation.metrics import compute_multilabel_metrics

        ml = compute_multilabel_metrics(yt, proba, classes)
        scores = {"accuracy": ml["subset_accuracy"], "macro_f1": ml["macro_f1"], "macro_f1_all_classes": None,
                  "per_class": ml["per_class"], "confusion_matrix": [], "n": ml["n"], "top_k_accuracy": {},
                  "ece": None, "map": ml["map"], "micro_f1": ml["micro_f1"]}
    else:
        scores = compute_metrics(yt.tolist(), proba.argmax(axis=1).tolist(), classes, proba=proba)
    write_predictions(out, prediction_rows([p.ds.clips[i] for i in split.test], proba, classes))
    if not p.ds.multilabel:
        save_png(plot_confusion(scores["confusion_matrix"], classes,
                                title=f"{p.spec.name} / {config.method.name}, test fold {test_fold}: "
                                      f"accuracy {scores['accuracy']:.3f}"),
                 out / "confusion_matrix.png")
    write_json_atomic(out / "history.json", fit.choice.get("history", {}))
    exported = None
    if exports:
        exported = export_artifact(p.method.artifact(fit, p.ctx, metadata={
            "test_fold": test_fold, "protocol": p.protocol, **_model_metadata(p, split, config, cv),
            "test_accuracy": {k: scores[k] for k in ("accuracy", "macro_f1", "n", "per_class")}}), out / "model",
            overwrite=overwrite)
    metrics = RunMetrics(
        variant=p.spec.name, test_fold=int(test_fold), protocol=p.protocol,
        backbone=p.feats.info.get("backbone", ""),
        **{k: scores[k] for k in ("accuracy", "macro_f1", "macro_f1_all_classes", "per_class", "confusion_matrix",
                                  "n", "top_k_accuracy", "ece")}, map=scores.get("map"), micro_f1=scores.get("micro_f1"),
        train_clips=int(len(split.train)), train_config=config.train.to_dict(),
        seconds=round(time.perf_counter() - t0, 2), method=config.method.name,
        method_config=config.method.to_dict(), val_accuracy=finite_or_none(fit.val_accuracy),
        choice={k: v for k, v in fit.choice.items() if k != "history"},
        fit_seconds=seconds, prepare_seconds=p.seconds, exported=exported is not None, duration=p.duration,
        warnings=log.messages, grouping=grouping_record(p.ds), embedder=embedder_text(p.feats.info, fit.choice),
    )
    metrics.write(out)
    return metrics


def format_run(metrics: RunMetrics) -> str:
    """One line about a :func:`train_fold` result (plus a count of its warnings, if any)."""
    warned = f"; {len(metrics.warnings)} warning(s) in metrics.json" if metrics.warnings else ""
    on = f"{metrics.embedder}, " if metrics.embedder else ""
    return (f"{metrics.variant} / {metrics.method}, test fold {metrics.test_fold}: accuracy {metrics.accuracy:.3f}, "
            f"macro-F1 {metrics.macro_f1:.3f} on {metrics.n} clips ({on}trained on {metrics.train_clips}, "
            f"{metrics.seconds} s){warned}" + _picked(metrics.choice))


def _picked(choice: Mapping[str, Any] | None) -> str:
    """A second line naming what ``auto`` picked and why (nothing for other methods)."""
    if not isinstance(choice, Mapping) or "picked" not in choice:
        return ""
    exported = choice.get("exported")
    tail = "" if not exported or exported == choice["picked"] else f"; the exported model is {exported}'s"
    return f"\npicked {choice['picked']} ({choice.get('rule')}; {choice.get('protocol')}){tail}"


def _model_metadata(p: Prepared, split, config: EvalConfig, cv: dict | None) -> dict[str, Any]:
    """What an exported model records about its data and protocol (read by :mod:`soundlib.models.card`)."""
    train = [p.ds.clips[i] for i in split.train]
    per_class = {c: 0 for c in p.ds.classes}
    for clip in train:
        for label in clip.all_labels:
            per_class[label] += 1
    return {
        # the dataset's folder by name, never the absolute path it has on the machine that trained the model
        "dataset": {"name": p.ds.name, "folder": Path(p.ds.root).name, "clips": len(p.ds)},
        "training": {"folds": sorted({int(c.fold) for c in train if c.fold is not None}), "clips": len(train),
                     "clips_per_class": per_class, "recordings": len({c.group for c in train}),
                     "validation_split": config.train.validation_split, "validation_clips": int(len(split.val)),
                     "seed": config.train.seed},
        "cross_validation": cv,
    }


def train_all_folds(dataset: Dataset, *, config: EvalConfig = EvalConfig(), out_dir: str | os.PathLike,
                    embed_config=None, export: bool = True, overwrite: bool = False, progress: bool = True,
                    cv_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train the model to ship on every fold, and export it into ``out_dir/model``.

    No fold is held out, so there is no test score. Hyperparameters are still
    chosen on validation recordings held out of the training data
    (``config.train.validation_split``, :meth:`FoldSplit.all_folds
    <soundlib.methods.base.FoldSplit.all_folds>`). Writes ``history.json``, the
    model (with its ``MODEL_CARD.md``) and last ``metrics.json``, whose
    ``test_fold`` is ``null`` and ``accuracy`` is ``null``; its
    ``cross_validation`` carries the leave-one-fold-out accuracy of ``cv_from``
    (an evaluate folder of the same configuration, see
    :func:`read_cross_validation`), or ``null`` when none was given.

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    with _training_run(dataset, config, out_dir, export=export, overwrite=overwrite, cv_from=cv_from) as (run, log, cv):
        return _train_all_folds(dataset, config=config, run=run, embed_config=embed_config,
                                export=export, overwrite=overwrite, progress=progress, cv=cv, log=log)


def _train_all_folds(dataset: Dataset, *, config: EvalConfig, run, embed_config, export: bool,
                     overwrite: bool, progress: bool, cv: dict | None, log) -> dict[str, Any]:
    from soundlib.atomic import write_json_atomic
    from soundlib.evaluation.metrics import METRICS_FILE
    from soundlib.methods.base import FoldSplit

    t0 = time.perf_counter()
    out = run.path
    p = prepare(dataset, config, embed_config, progress)
    check_cross_validation_features(cv, p.feats.info)
    exports = export and p.method.exportable
    run.start(keep=["model"] if exports else [])  # no test fold: no predictions or confusion matrix either
    t1 = time.perf_counter()
    split = FoldSplit.all_folds(p.ds, validation_split=config.train.validation_split, seed=config.train.seed)
    fit = p.method.fit(p.feats, split, p.y, p.ctx)
    fit_seconds = round(time.perf_counter() - t1, 2)
    write_json_atomic(out / "history.json", fit.choice.get("history", {}))
    meta = _model_metadata(p, split, config, cv)
    exported = None
    if exports:
        exported = export_artifact(p.method.artifact(fit, p.ctx, metadata={"test_fold": None, "protocol": p.protocol, **meta}),
                                   out / "model", overwrite=overwrite)
    metrics = {
        "variant": p.spec.name, "test_fold": None, "folds": meta["training"]["folds"],
        "note": "trained on every fold: no fold was held out, so there is no test accuracy; cross_validation "
                "carries the leave-one-fold-out accuracy of --cv-from when it was given",
        "accuracy": None, "cross_validation": cv, "protocol": p.protocol,
        "backbone": p.feats.info.get("backbone", ""), "train_clips": int(len(split.train)),
        "validation_clips": int(len(split.val)), "training": meta["training"], "dataset": meta["dataset"],
        "train_config": config.train.to_dict(), "method": config.method.name,
        "method_config": config.method.to_dict(), "val_accuracy": finite_or_none(fit.val_accuracy),
        "choice": {k: v for k, v in fit.choice.items() if k != "history"}, "fit_seconds": fit_seconds,
        "prepare_seconds": p.seconds, "seconds": round(time.perf_counter() - t0, 2),
        "exported": exported is not None, "duration": p.duration, "warnings": log.messages,
        "embedder": embedder_text(p.feats.info, fit.choice),
    }
    write_json_atomic(out / METRICS_FILE, metrics)
    return metrics


def format_all_folds(metrics: Mapping[str, Any]) -> str:
    """One line about a :func:`train_all_folds` result."""
    cv = metrics.get("cross_validation")
    acc = (f"cross-validated accuracy {cv['accuracy_mean']:.3f} ± {cv['accuracy_std']:.3f} over folds "
           f"{', '.join(map(str, cv['folds']))} (from {cv['source']})" if cv else
           "no cross-validated accuracy recorded (--cv-from an evaluate folder of this configuration adds it)")
    val = metrics.get("val_accuracy")
    warned = f"; {len(metrics['warnings'])} warning(s) in metrics.json" if metrics.get("warnings") else ""
    on = f" ({metrics['embedder']})" if metrics.get("embedder") else ""
    return (f"{metrics['variant']} / {metrics['method']}, all folds ({', '.join(map(str, metrics['folds']))}): "
            f"trained on {metrics['train_clips']} clips{on}, validation accuracy "
            f"{'n/a' if val is None else f'{val:.3f}'}, no test fold; {acc}{warned}" + _picked(metrics.get("choice")))
