"""Fold-by-fold evaluation: leave-one-fold-out over a dataset's folds, and one-fold training runs.

The protocol is :mod:`soundlib.folds`'s: the dataset's own folds when it has
them, otherwise ``k`` folds grouped by recording. A learning method
(:mod:`soundlib.methods`) prepares every clip's features once (embeddings
through the cache...), then each fold fits it on the other folds, with
validation recordings held out of the training folds to choose its
hyperparameters, and scores it on its own clips, one decision per clip
(windows of long clips are aggregated). ``leaky_split=True`` instead splits
*slices* at random, reported beside the real protocol to show how much
leakage inflates accuracy.

:func:`evaluate` runs every fold and writes ``results.json``;
:func:`train_fold` runs one (the unit of a sweep) and writes ``metrics.json``
and, optionally, the exported model; :func:`train_all_folds` trains the model to
ship on every fold (no test fold; validation recordings still held out).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .backbones import DEFAULT_BACKBONE
from .data import Dataset
from .errors import ConfigError, DatasetError
from .folds import DEFAULT_K_FOLDS
from .methods import DEFAULT_METHOD, MethodSpec, resolve_method
from .metrics import RunMetrics
from .train import TrainConfig
from .variants import VARIANTS, FeatureSpec

__all__ = ["EvalConfig", "evaluate", "train_fold", "train_all_folds", "read_cross_validation", "format_summary",
           "format_run", "format_all_folds"]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes
    ----------
    spec : FeatureSpec
        The pictures and windows (``duration: auto`` is chosen from the dataset's clip lengths). A variant
        name or mapping is resolved when the config is made (:func:`soundlib.variants.resolve_variant`).
    method : MethodSpec
        The learning method; a name or mapping is resolved when the config is made
        (:func:`soundlib.methods.resolve_method`).
    backbone : str
        Backbone handle (embedded name, TF Hub handle or SavedModel folder), resolved once per evaluation.
    train : TrainConfig
        Training hyperparameters: the validation split (share of training recordings held out to
        choose hyperparameters), the seed, and the 0.1 softmax head's settings.
    folds : tuple of int or None
        Test folds to run (default: all).
    k_folds : int
        Folds assigned, grouped by recording, when the dataset has none.
    seed : int
        Seed of fold assignment (and of the leaky split).
    leaky_split : bool
        Use the leaky random slice-level split instead (for comparison only).
    aggregate : {"mean", "max"}
        How the windows of a long clip become one decision.
    """

    spec: FeatureSpec = VARIANTS["mel"]
    method: MethodSpec = resolve_method(DEFAULT_METHOD)
    backbone: str = DEFAULT_BACKBONE
    train: TrainConfig = TrainConfig()
    folds: tuple[int, ...] | None = None
    k_folds: int = DEFAULT_K_FOLDS
    seed: int = 0
    leaky_split: bool = False
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        from .methods.base import AGGREGATIONS
        from .variants import resolve_variant

        if not isinstance(self.spec, FeatureSpec):  # a name or mapping: resolved here, or refused
            object.__setattr__(self, "spec", resolve_variant(self.spec, where="EvalConfig.spec"))
        if not isinstance(self.method, MethodSpec):
            object.__setattr__(self, "method", resolve_method(self.method, where="EvalConfig.method"))

        if self.aggregate not in AGGREGATIONS:
            raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATIONS)}, got {self.aggregate!r}")
        if self.folds is not None:
            twice = sorted({f for f in self.folds if self.folds.count(f) > 1})
            if twice:
                raise ConfigError(f"folds: fold(s) {', '.join(map(str, twice))} listed more than once in "
                                  f"{list(self.folds)}; list each test fold once")
            if not self.folds:
                raise ConfigError("folds: an empty list; give at least one test fold (or none for all)")


@dataclasses.dataclass
class _Prepared:
    """An evaluation set up: the dataset with its folds, the resolved spec, the method, its features."""

    ds: Dataset
    protocol: str
    spec: FeatureSpec
    duration: dict
    method: Any
    ctx: Any
    feats: Any
    y: np.ndarray
    seconds: float


def _prepare(dataset: Dataset, config: EvalConfig, embed_config, progress: bool) -> _Prepared:
    """Folds, ``duration: auto``, the method and its features (the part every fold shares)."""
    from .embed import EmbedConfig
    from .folds import prepare_folds
    from .methods import build_method
    from .methods.base import Context, clip_durations, labels_of
    from .variants import resolve_duration

    t0 = time.perf_counter()
    ds, protocol = prepare_folds(dataset, k_folds=config.k_folds, seed=config.seed, leaky=config.leaky_split)
    spec, duration = resolve_duration(config.spec, clip_durations(ds) if not config.spec.resolved else [])
    method = build_method(config.method)
    ctx = Context(classes=tuple(ds.classes), spec=spec, backbone=config.backbone, train=config.train,
                  embed=embed_config or EmbedConfig(progress=progress), groups=tuple(c.group for c in ds.clips),
                  aggregate=config.aggregate, progress=progress)
    feats = method.prepare(ds, ctx)
    return _Prepared(ds, protocol, spec, duration, method, ctx, feats, labels_of(ds),
                     round(time.perf_counter() - t0, 2))


def _run_fold(p: _Prepared, test_fold: int, config: EvalConfig):
    """Fit on every fold but ``test_fold``; returns ``(split, fit, test probabilities, seconds)``."""
    from .methods.base import FoldSplit

    t0 = time.perf_counter()
    split = FoldSplit.make(p.ds, test_fold, validation_split=config.train.validation_split, seed=config.train.seed)
    fit = p.method.fit(p.feats, split, p.y, p.ctx)
    proba = p.method.predict(fit, p.feats, split.test, p.ctx)
    return split, fit, proba, round(time.perf_counter() - t0, 2)


def _check_folds(ds: Dataset, folds) -> None:
    for f in folds:
        if f not in ds.folds:
            raise DatasetError(f"fold {f} has no clips in dataset {ds.name!r} at {ds.root}; folds: {list(ds.folds)}")


def evaluate(dataset: Dataset, config: EvalConfig = EvalConfig(), *, out_dir: str | os.PathLike | None = None,
             embed_config=None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Leave-one-fold-out evaluation of one (variant, method).

    Writes ``results.json`` (last: its presence marks a complete evaluation),
    ``predictions.csv`` (every class's probability per clip) and ``confusion_matrix.png``
    into ``out_dir`` when given: a run folder soundlib owns and locks while writing (see
    :func:`soundlib.outputs.run_folder`; a folder it did not make is refused unless
    ``overwrite``). Returns the results as a dict (the content of ``results.json``):
    per-fold accuracy, macro-F1, top-k accuracy and calibration error (ECE), validation accuracy,
    what the method chose and its wall time, mean and std, pooled macro-F1
    (over the classes present, and ``macro_f1_all_classes``), per-class scores,
    the summed confusion matrix, timings, and ``warnings``: every
    :class:`~soundlib.errors.SoundlibWarning` the run issued (degenerate folds,
    duplicate rows, recomputed cache entries...).
    """
    from .errors import collect_warnings
    from .outputs import run_folder

    folder = run_folder(out_dir, kind="evaluate", overwrite=overwrite) if out_dir is not None else None
    with collect_warnings() as log, folder or contextlib.nullcontext() as run:
        return _evaluate(dataset, config, run=run, embed_config=embed_config, progress=progress, log=log)


def _evaluate(dataset: Dataset, config: EvalConfig, *, run, embed_config, progress: bool, log) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from .folds import check_test_fold, find_leakage, grouping_record
    from .metrics import compute_metrics, prediction_rows, write_predictions, write_results_json
    from .plots import plot_confusion, save_png

    t0 = time.perf_counter()
    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
    p = _prepare(dataset, config, embed_config, progress)
    folds = list(config.folds or p.ds.folds)
    _check_folds(p.ds, folds)
    for f in folds:
        check_test_fold(p.ds, f)
    if run is not None:
        run.start()  # the previous run's results (and a model beside them) go first
    classes = list(p.ds.classes)
    per_fold, y_true, y_pred, rows, probas = [], [], [], [], []
    for f in tqdm(folds, desc=f"folds ({p.spec.name}, {config.method.name})", unit="fold", disable=not progress):
        split, fit, proba, seconds = _run_fold(p, f, config)
        yt, yp = p.y[split.test].tolist(), proba.argmax(axis=1).tolist()
        scores = compute_metrics(yt, yp, classes, proba=proba)
        per_fold.append({"fold": int(f), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                         "macro_f1_all_classes": scores["macro_f1_all_classes"], "n": len(yt),
                         "top_k_accuracy": scores["top_k_accuracy"], "ece": scores["ece"],
                         "val_accuracy": _num(fit.val_accuracy), "choice": fit.choice, "seconds": seconds})
        y_true += yt
        y_pred += yp
        probas.append(proba)
        rows += prediction_rows([p.ds.clips[i] for i in split.test], proba, classes)

    accs = [r["accuracy"] for r in per_fold]
    pooled = compute_metrics(y_true, y_pred, classes, proba=np.concatenate(probas))
    results = {
        "dataset": {"name": p.ds.name, "root": str(p.ds.root), "clips": len(p.ds), "classes": classes},
        "variant": p.spec.name,
        "feature_spec": p.spec.to_dict(),
        "duration": p.duration,
        "method": config.method.to_dict(),
        "features": p.feats.info,
        "backbone": p.feats.info.get("backbone"),
        "protocol": p.protocol,
        "leaky": bool(config.leaky_split),
        "note": _note(config.leaky_split, p.ds.grouping.known, p.protocol),
        "grouping": grouping_record(p.ds),
        "cross_fold_groups": {g: list(v) for g, v in find_leakage(p.ds.clips).items()},
        "aggregate": config.aggregate,
        "per_fold": per_fold,
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "macro_f1": pooled["macro_f1"],
        "macro_f1_all_classes": pooled["macro_f1_all_classes"],
        "top_k_accuracy": pooled["top_k_accuracy"],
        "ece": pooled["ece"],
        "per_class": pooled["per_class"],
        "confusion_matrix": pooled["confusion_matrix"],
        "train_config": config.train.to_dict(),
        "seconds": {"prepare": p.seconds, "folds": [r["seconds"] for r in per_fold],
                    "total": round(time.perf_counter() - t0, 2)},
        "warnings": log.messages,
    }
    if run is not None:
        out = run.path
        write_predictions(out, rows)
        save_png(plot_confusion(pooled["confusion_matrix"], classes,
                                title=f"{p.spec.name} / {config.method.name} / {p.protocol}: "
                                      f"accuracy {results['accuracy_mean']:.3f}"),
                 out / "confusion_matrix.png")
        write_results_json(out, results)
    return results


def _note(leaky: bool, recordings_known: bool, protocol: str) -> str:
    """What ``results.json``'s protocol is worth, in one line."""
    from .folds import PROTOCOL_PREDEFINED

    if leaky:
        return "LEAKY: slices split at random, recordings shared between train and test; NOT a valid estimate"
    if not recordings_known and protocol == PROTOCOL_PREDEFINED:
        return ("leave-one-fold-out over the dataset's own folds; recordings unknown, so soundlib cannot check that "
                "none is split across them (see grouping)")
    if not recordings_known:
        return ("leave-one-fold-out, but RECORDINGS UNKNOWN: every file counted as its own recording, so slices of "
                "one recording may be split across folds and the scores may be too high (see grouping)")
    return "leave-one-fold-out, recordings never split"


def _num(x: float) -> float | None:
    return None if x is None or x != x else round(float(x), 4)


def format_summary(results: Mapping[str, Any]) -> str:
    """One line about an :func:`evaluate` result: variant, method, protocol, mean ± std accuracy, macro-F1."""
    tag = " [LEAKY split: not a valid estimate]" if results.get("leaky") else ""
    if not results.get("leaky") and results.get("grouping", {}).get("known") is False:
        tag += (" [recordings unknown: leakage across the dataset's folds not checked]"
                if results.get("protocol") == "predefined-folds" else
                " [RECORDINGS UNKNOWN: slices of one recording may be split across folds]")
    if results.get("warnings"):
        tag += f" [{len(results['warnings'])} warning(s) in results.json]"
    method = results.get("method", {}).get("name", DEFAULT_METHOD)
    return (f"{results['variant']} / {method}: accuracy {results['accuracy_mean']:.3f} ± "
            f"{results['accuracy_std']:.3f} over {len(results['per_fold'])} folds, macro-F1 {results['macro_f1']:.3f} "
            f"({results['protocol']}, {results['dataset']['clips']} clips"
            f"{', ' + results['backbone'] if results.get('backbone') else ''}){tag}")


@contextlib.contextmanager
def _training_run(dataset: Dataset, config: EvalConfig, out_dir: str | os.PathLike, *, export: bool, overwrite: bool,
                  cv_from: str | os.PathLike | None) -> Iterator[tuple[Any, Any, dict | None]]:
    """What every training run checks and holds before it starts: clips to train on, a model target it may
    replace, the cross-validation it will record, and its run folder (owned, locked) with its warnings log.
    Yields ``(run folder, warnings log, cross-validation or None)``."""
    from .errors import collect_warnings
    from .infer import check_model_target
    from .outputs import run_folder

    out = Path(out_dir)
    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
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
    :func:`soundlib.outputs.run_folder`): a second run into it at the same time
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
        atomically either way; see :func:`soundlib.infer.export_keras_model`).
    cv_from : path-like, optional
        An :func:`evaluate` folder (or its ``results.json``) of the same configuration whose
        cross-validated accuracy the exported model records (:func:`read_cross_validation`).
    """
    with _training_run(dataset, config, out_dir, export=export, overwrite=overwrite, cv_from=cv_from) as (run, log, cv):
        return _train_fold(dataset, test_fold=test_fold, config=config, run=run, embed_config=embed_config,
                           export=export, overwrite=overwrite, progress=progress, log=log, cv=cv)


def _train_fold(dataset: Dataset, *, test_fold: int, config: EvalConfig, run, embed_config, export: bool,
                overwrite: bool, progress: bool, log, cv: dict | None = None) -> RunMetrics:
    from .atomic import write_json_atomic
    from .folds import check_test_fold, grouping_record
    from .metrics import compute_metrics, prediction_rows, write_predictions
    from .plots import plot_confusion, save_png

    t0 = time.perf_counter()
    out = run.path
    p = _prepare(dataset, config, embed_config, progress)
    _check_folds(p.ds, [test_fold])
    check_test_fold(p.ds, test_fold)
    exports = export and p.method.exportable
    run.start(keep=["model"] if exports else [])  # a model this run will not replace must not pass for its own
    classes = list(p.ds.classes)
    split, fit, proba, seconds = _run_fold(p, test_fold, config)
    yt = p.y[split.test]
    scores = compute_metrics(yt.tolist(), proba.argmax(axis=1).tolist(), classes, proba=proba)
    write_predictions(out, prediction_rows([p.ds.clips[i] for i in split.test], proba, classes))
    save_png(plot_confusion(scores["confusion_matrix"], classes,
                            title=f"{p.spec.name} / {config.method.name}, test fold {test_fold}: "
                                  f"accuracy {scores['accuracy']:.3f}"),
             out / "confusion_matrix.png")
    write_json_atomic(out / "history.json", fit.choice.get("history", {}))
    exported = None
    if exports:
        exported = p.method.export(fit, out / "model", p.ctx, overwrite=overwrite, metadata={
            "test_fold": test_fold, "protocol": p.protocol, **_model_metadata(p, split, config, cv),
            "test_accuracy": {k: scores[k] for k in ("accuracy", "macro_f1", "n")}})
    metrics = RunMetrics(
        variant=p.spec.name, test_fold=int(test_fold), protocol=p.protocol,
        backbone=p.feats.info.get("backbone", ""),
        **{k: scores[k] for k in ("accuracy", "macro_f1", "macro_f1_all_classes", "per_class", "confusion_matrix",
                                  "n", "top_k_accuracy", "ece")},
        train_clips=int(len(split.train)), train_config=config.train.to_dict(),
        seconds=round(time.perf_counter() - t0, 2), method=config.method.name,
        method_config=config.method.to_dict(), val_accuracy=_num(fit.val_accuracy),
        choice={k: v for k, v in fit.choice.items() if k != "history"},
        fit_seconds=seconds, prepare_seconds=p.seconds, exported=exported is not None, duration=p.duration,
        warnings=log.messages, grouping=grouping_record(p.ds),
    )
    metrics.write(out)
    return metrics


def format_run(metrics: RunMetrics) -> str:
    """One line about a :func:`train_fold` result (plus a count of its warnings, if any)."""
    warned = f"; {len(metrics.warnings)} warning(s) in metrics.json" if metrics.warnings else ""
    return (f"{metrics.variant} / {metrics.method}, test fold {metrics.test_fold}: accuracy {metrics.accuracy:.3f}, "
            f"macro-F1 {metrics.macro_f1:.3f} on {metrics.n} clips (trained on {metrics.train_clips}, "
            f"{metrics.seconds} s){warned}")


# ---------------------------------------------------------------------------
# The model to ship: every fold trains

def _model_metadata(p: _Prepared, split, config: EvalConfig, cv: dict | None) -> dict[str, Any]:
    """What an exported model records about its data and protocol (read by :mod:`soundlib.modelcard`)."""
    train = [p.ds.clips[i] for i in split.train]
    per_class = {c: 0 for c in p.ds.classes}
    for clip in train:
        per_class[clip.label] += 1
    return {
        "dataset": {"name": p.ds.name, "root": str(p.ds.root), "clips": len(p.ds)},
        "training": {"folds": sorted({int(c.fold) for c in train if c.fold is not None}), "clips": len(train),
                     "clips_per_class": per_class, "recordings": len({c.group for c in train}),
                     "validation_split": config.train.validation_split, "validation_clips": int(len(split.val)),
                     "seed": config.train.seed},
        "cross_validation": cv,
    }


def read_cross_validation(path: str | os.PathLike, config: EvalConfig, dataset: Dataset) -> dict[str, Any]:
    """The cross-validated accuracy an :func:`evaluate` run of the same configuration measured.

    Parameters
    ----------
    path : path-like
        An ``evaluate --out`` folder, or its ``results.json``.
    config : EvalConfig
        The configuration being trained: the results must be of the same variant and
        method (a leaky split's are refused: they are not a valid estimate).
    dataset : Dataset
        The data being trained on: the results must be of a dataset of the same name and size.

    Returns
    -------
    dict
        ``accuracy_mean, accuracy_std, macro_f1, folds, per_fold`` (``fold, accuracy``),
        ``dataset`` (name, clips) and ``source`` (the file).

    Raises
    ------
    ConfigError
        The file is missing or not an evaluate ``results.json``, or it measured another
        configuration or dataset.
    """
    import json

    from .metrics import RESULTS_FILE

    src = Path(path)
    if src.is_dir():
        src = src / RESULTS_FILE
    try:
        res = json.loads(src.read_text(encoding="utf-8"))
        per_fold = [{"fold": int(r["fold"]), "accuracy": float(r["accuracy"])} for r in res["per_fold"]]
        mean, std = float(res["accuracy_mean"]), float(res["accuracy_std"])
    except FileNotFoundError:
        raise ConfigError(f"--cv-from {src}: no such file (expected the results.json an `soundlib evaluate --out DIR` "
                          "wrote)") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--cv-from {src}: not an evaluate results.json ({type(exc).__name__}: {exc})") from None
    from .atomic import jsonable

    method = json.loads(json.dumps(config.method.to_dict(), default=jsonable))
    ds = res.get("dataset") or {}
    wrong = [f"{what} {got!r} (training {want!r})" for what, got, want in (
        ("dataset", ds.get("name"), dataset.name), ("dataset size", ds.get("clips"), len(dataset)),
        ("variant", res.get("variant"), config.spec.name), ("method", res.get("method"), method)) if got != want]
    if res.get("leaky"):
        wrong.append("a LEAKY split (not a valid estimate)")
    if wrong:
        raise ConfigError(f"--cv-from {src}: measured another configuration: {', '.join(wrong)}; evaluate the "
                          "configuration you train")
    return {"accuracy_mean": mean, "accuracy_std": std, "macro_f1": res.get("macro_f1"),
            "folds": [r["fold"] for r in per_fold], "per_fold": per_fold, "protocol": res.get("protocol"),
            "source": str(src)}


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
    from .atomic import write_json_atomic
    from .methods.base import FoldSplit
    from .metrics import METRICS_FILE

    t0 = time.perf_counter()
    out = run.path
    p = _prepare(dataset, config, embed_config, progress)
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
        exported = p.method.export(fit, out / "model", p.ctx, overwrite=overwrite,
                                   metadata={"test_fold": None, "protocol": p.protocol, **meta})
    metrics = {
        "variant": p.spec.name, "test_fold": None, "folds": meta["training"]["folds"],
        "note": "trained on every fold: no fold was held out, so there is no test accuracy; cross_validation "
                "carries the leave-one-fold-out accuracy of --cv-from when it was given",
        "accuracy": None, "cross_validation": cv, "protocol": p.protocol,
        "backbone": p.feats.info.get("backbone", ""), "train_clips": int(len(split.train)),
        "validation_clips": int(len(split.val)), "training": meta["training"], "dataset": meta["dataset"],
        "train_config": config.train.to_dict(), "method": config.method.name,
        "method_config": config.method.to_dict(), "val_accuracy": _num(fit.val_accuracy),
        "choice": {k: v for k, v in fit.choice.items() if k != "history"}, "fit_seconds": fit_seconds,
        "prepare_seconds": p.seconds, "seconds": round(time.perf_counter() - t0, 2),
        "exported": exported is not None, "duration": p.duration, "warnings": log.messages,
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
    return (f"{metrics['variant']} / {metrics['method']}, all folds ({', '.join(map(str, metrics['folds']))}): "
            f"trained on {metrics['train_clips']} clips, validation accuracy "
            f"{'n/a' if val is None else f'{val:.3f}'}, no test fold; {acc}{warned}")
