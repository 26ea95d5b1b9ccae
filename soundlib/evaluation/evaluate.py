"""Fold-by-fold evaluation: leave-one-fold-out over a dataset's folds.

The protocol is :mod:`soundlib.audio.folds`'s: the dataset's own folds when it has
them, otherwise ``k`` folds grouped by recording. A learning method
(:mod:`soundlib.methods`) prepares every clip's features once (embeddings
through the cache...), then each fold fits it on the other folds, with
validation recordings held out of the training folds to choose its
hyperparameters, and scores it on its own clips, one decision per clip
(windows of long clips are aggregated). ``leaky_split=True`` instead splits
*slices* at random, reported beside the real protocol to show how much
leakage inflates accuracy.

:func:`evaluate` runs every fold and writes ``results.json``; training one fold or every fold into
an exported model is :mod:`soundlib.models.train`'s job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.audio.folds import DEFAULT_K_FOLDS
from soundlib.embedders.backbones import DEFAULT_BACKBONE
from soundlib.errors import ConfigError, DatasetError
from soundlib.methods import DEFAULT_METHOD, MethodSpec, resolve_method
from soundlib.methods.train import TrainConfig
from soundlib.pictures.variants import VARIANTS, FeatureSpec

__all__ = [
    "EvalConfig", "Prepared", "prepare", "run_fold", "check_folds", "check_size", "score_bytes", "evaluate",
    "protocol_note", "finite_or_none", "format_summary", "format_picks", "picks_of", "read_cross_validation",
    "run_fingerprint", "feature_identities", "check_cross_validation_features", "FINGERPRINT_VERSION",
    "MAX_SCORE_BYTES", "MAX_SCORE_ENV",
]

#: Version of the ``fingerprint`` record of ``results.json`` (:func:`run_fingerprint`).
FINGERPRINT_VERSION = 1

#: The memory an evaluation's (or a training run's) scores may be estimated to need (:func:`score_bytes`):
#: 4 GiB, or ``SOUNDLIB_EVALUATE_MAX_GB`` gigabytes.
MAX_SCORE_BYTES = 4 * 2**30
MAX_SCORE_ENV = "SOUNDLIB_EVALUATE_MAX_GB"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes
    ----------
    spec : FeatureSpec
        The pictures and windows (``duration: auto`` is chosen from the dataset's clip lengths). A variant
        name or mapping is resolved when the config is made (:func:`soundlib.pictures.variants.resolve_variant`).
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
        from soundlib.methods.base import AGGREGATIONS
        from soundlib.pictures.variants import resolve_variant

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
class Prepared:
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


def prepare(dataset: Dataset, config: EvalConfig, embed_config, progress: bool) -> Prepared:
    """Folds, ``duration: auto``, the method and its features (the part every fold shares)."""
    from soundlib.audio.folds import prepare_folds
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.methods import build_method
    from soundlib.methods.base import Context, clip_durations, labels_of
    from soundlib.pictures.variants import resolve_duration

    t0 = time.perf_counter()
    ds, protocol = prepare_folds(dataset, k_folds=config.k_folds, seed=config.seed, leaky=config.leaky_split)
    spec, duration = resolve_duration(config.spec, clip_durations(ds) if not config.spec.resolved else [])
    method = build_method(config.method)
    if ds.multilabel and not method.multilabel:
        raise ConfigError(f"dataset {ds.name!r} is multi-label (clips with several classes, 'a;b'); method "
                          f"{config.method.name!r} learns one class per clip: use a method with the logistic head "
                          "(frozen on any embedder, mn04, yamnet, mfcc), which trains one-vs-rest sigmoid outputs")
    ctx = Context(classes=tuple(ds.classes), spec=spec, backbone=config.backbone, train=config.train,
                  embed=embed_config or EmbedConfig(progress=progress), groups=tuple(c.group for c in ds.clips),
                  aggregate=config.aggregate, progress=progress)
    feats = method.prepare(ds, ctx)
    return Prepared(ds, protocol, spec, duration, method, ctx, feats, labels_of(ds),
                     round(time.perf_counter() - t0, 2))


def run_fold(p: Prepared, test_fold: int, config: EvalConfig):
    """Fit on every fold but ``test_fold``; returns ``(split, fit, test probabilities, seconds)``."""
    from soundlib.methods.base import FoldSplit

    t0 = time.perf_counter()
    split = FoldSplit.make(p.ds, test_fold, validation_split=config.train.validation_split, seed=config.train.seed)
    fit = p.method.fit(p.feats, split, p.y, p.ctx)
    proba = p.method.predict(fit, p.feats, split.test, p.ctx)
    return split, fit, proba, round(time.perf_counter() - t0, 2)


def score_bytes(n_clips: int, n_classes: int) -> int:
    """A rough estimate of the memory the scores of a run over ``n_clips`` clips of ``n_classes`` classes need:
    the confusion matrix (``n_classes`` squared cells, as an array, a list and JSON text: about 40 bytes a cell)
    and every clip's probability of every class (the head's training, the arrays, ``predictions.csv``'s
    rows: about 150 bytes a cell)."""
    return 40 * n_classes**2 + 150 * n_clips * n_classes


def check_size(dataset: Dataset) -> None:
    """Refuse, before any work, a dataset whose scores would need more than :data:`MAX_SCORE_BYTES`
    (:func:`score_bytes`; e.g. 10,000 classes of one clip each: a confusion matrix of 10^8 cells).

    Raises
    ------
    ConfigError
        ``SOUNDLIB_EVALUATE_MAX_GB`` is not a positive number.
    DatasetError
        With the estimate, the number of classes and clips, and what to do.
    """
    raw = os.environ.get(MAX_SCORE_ENV, "").strip()
    limit: float = MAX_SCORE_BYTES
    if raw:
        try:
            limit = float(raw) * 2**30
        except ValueError:
            limit = float("nan")
        if not 0 < limit < float("inf"):
            raise ConfigError(f"{MAX_SCORE_ENV}={raw!r}: expected a positive number of gigabytes")
    need = score_bytes(len(dataset.clips), len(dataset.classes))
    if need > limit:
        k = len(dataset.classes)
        raise DatasetError(
            f"dataset {dataset.name!r} at {dataset.root}: {k:,} classes over {len(dataset.clips):,} clips; its scores "
            f"alone (a {k:,}x{k:,} confusion matrix and every clip's probability of every class) would need about "
            f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:g} GiB allowed; merge classes or use a subset "
            f"(or raise the limit with {MAX_SCORE_ENV})")



def check_folds(ds: Dataset, folds) -> None:
    for f in folds:
        if f not in ds.folds:
            raise DatasetError(f"fold {f} has no clips in dataset {ds.name!r} at {ds.root}; folds: {list(ds.folds)}")


def evaluate(dataset: Dataset, config: EvalConfig = EvalConfig(), *, out_dir: str | os.PathLike | None = None,
             embed_config=None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Leave-one-fold-out evaluation of one (variant, method).

    Writes ``results.json`` (last: its presence marks a complete evaluation),
    ``predictions.csv`` (every class's probability per clip) and ``confusion_matrix.png``
    into ``out_dir`` when given: a run folder soundlib owns and locks while writing (see
    :func:`soundlib.evaluation.outputs.run_folder`; a folder it did not make is refused unless
    ``overwrite``). Returns the results as a dict (the content of ``results.json``):
    per-fold accuracy, macro-F1, top-k accuracy and calibration error (ECE), validation accuracy,
    what the method chose and its wall time, mean and std, pooled macro-F1
    (over the classes present, and ``macro_f1_all_classes``), per-class scores,
    the summed confusion matrix, timings, and ``warnings``: every
    :class:`~soundlib.errors.SoundlibWarning` the run issued (degenerate folds,
    duplicate rows, recomputed cache entries...).
    """
    from soundlib.errors import collect_warnings
    from soundlib.evaluation.outputs import run_folder

    check_size(dataset)  # before the run folder is touched
    folder = run_folder(out_dir, kind="evaluate", overwrite=overwrite) if out_dir is not None else None
    with collect_warnings() as log, folder or contextlib.nullcontext() as run:
        return _evaluate(dataset, config, run=run, embed_config=embed_config, progress=progress, log=log)


def _evaluate(dataset: Dataset, config: EvalConfig, *, run, embed_config, progress: bool, log) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from soundlib.audio.folds import find_leakage, grouping_record
    from soundlib.evaluation.metrics import compute_metrics, prediction_rows, write_predictions, write_results_json

    if dataset.multilabel:
        return _evaluate_multilabel(dataset, config, run=run, embed_config=embed_config, progress=progress, log=log)
    from soundlib.evaluation.plots import plot_confusion, save_png

    t0 = time.perf_counter()
    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
    p, folds = _prepared_folds(dataset, config, run=run, embed_config=embed_config, progress=progress)
    classes = list(p.ds.classes)
    per_fold, y_true, y_pred, rows, probas = [], [], [], [], []
    for f in tqdm(folds, desc=f"folds ({p.spec.name}, {config.method.name})", unit="fold", disable=not progress):
        split, fit, proba, seconds = run_fold(p, f, config)
        yt, yp = p.y[split.test].tolist(), proba.argmax(axis=1).tolist()
        scores = compute_metrics(yt, yp, classes, proba=proba)
        per_fold.append({"fold": int(f), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                         "macro_f1_all_classes": scores["macro_f1_all_classes"], "n": len(yt),
                         "top_k_accuracy": scores["top_k_accuracy"], "ece": scores["ece"],
                         "val_accuracy": finite_or_none(fit.val_accuracy), "choice": fit.choice, "seconds": seconds})
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
        "note": protocol_note(config.leaky_split, p.ds.grouping.known, p.protocol),
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
        "fingerprint": run_fingerprint(dataset, config, p.feats.info),
        "seconds": {"prepare": p.seconds, "folds": [r["seconds"] for r in per_fold],
                    "total": round(time.perf_counter() - t0, 2)},
        "warnings": log.messages,
    }
    picks = picks_of(per_fold)
    if picks:
        results["picked"] = picks
    if run is not None:
        out = run.path
        write_predictions(out, rows)
        save_png(plot_confusion(pooled["confusion_matrix"], classes,
                                title=f"{p.spec.name} / {config.method.name} / {p.protocol}: "
                                      f"accuracy {results['accuracy_mean']:.3f}"),
                 out / "confusion_matrix.png")
        write_results_json(out, results)
    return results


def _evaluate_multilabel(dataset: Dataset, config: EvalConfig, *, run, embed_config, progress: bool,
                         log) -> dict[str, Any]:
    """:func:`evaluate` of a multi-label dataset: per-fold and pooled mAP, micro and macro F1 and per-class
    average precision (:func:`~soundlib.evaluation.metrics.compute_multilabel_metrics`)."""
    from tqdm.auto import tqdm

    from soundlib.audio.folds import find_leakage, grouping_record
    from soundlib.evaluation.metrics import (compute_multilabel_metrics, prediction_rows, write_predictions,
                                             write_results_json)

    t0 = time.perf_counter()
    p, folds = _prepared_folds(dataset, config, run=run, embed_config=embed_config, progress=progress)
    classes = list(p.ds.classes)
    per_fold, truths, probas, rows = [], [], [], []
    for f in tqdm(folds, desc=f"folds ({p.spec.name}, {config.method.name})", unit="fold", disable=not progress):
        split, fit, proba, seconds = run_fold(p, f, config)
        s = compute_multilabel_metrics(p.y[split.test], proba, classes)
        per_fold.append({"fold": int(f), "map": s["map"], "micro_f1": s["micro_f1"], "macro_f1": s["macro_f1"],
                         "accuracy": s["subset_accuracy"], "n": s["n"], "val_map": finite_or_none(fit.val_accuracy),
                         "choice": fit.choice, "seconds": seconds})
        truths.append(p.y[split.test])
        probas.append(proba)
        rows += prediction_rows([p.ds.clips[i] for i in split.test], proba, classes)
    pooled = compute_multilabel_metrics(np.concatenate(truths), np.concatenate(probas), classes)
    maps, accs = [r["map"] for r in per_fold], [r["accuracy"] for r in per_fold]
    results = {
        "dataset": {"name": p.ds.name, "root": str(p.ds.root), "clips": len(p.ds), "classes": classes},
        "multilabel": True, "variant": p.spec.name, "feature_spec": p.spec.to_dict(), "duration": p.duration,
        "method": config.method.to_dict(), "features": p.feats.info, "backbone": p.feats.info.get("backbone"),
        "protocol": p.protocol, "leaky": bool(config.leaky_split),
        "note": protocol_note(config.leaky_split, p.ds.grouping.known, p.protocol),
        "grouping": grouping_record(p.ds), "aggregate": config.aggregate, "per_fold": per_fold,
        "cross_fold_groups": {g: list(v) for g, v in find_leakage(p.ds.clips).items()},
        "map_mean": float(np.mean(maps)), "map_std": float(np.std(maps)), "map": pooled["map"],
        "micro_f1": pooled["micro_f1"], "macro_f1": pooled["macro_f1"], "threshold": pooled["threshold"],
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
        "accuracy_note": "multi-label: accuracy is the subset accuracy (every class of a clip right)",
        "per_class": pooled["per_class"], "train_config": config.train.to_dict(),
        "seconds": {"prepare": p.seconds, "folds": [r["seconds"] for r in per_fold],
                    "total": round(time.perf_counter() - t0, 2)},
        "warnings": log.messages,
    }
    if run is not None:
        write_predictions(run.path, rows)
        write_results_json(run.path, results)
    return results


def protocol_note(leaky: bool, recordings_known: bool, protocol: str) -> str:
    """What ``results.json``'s protocol is worth, in one line."""
    from soundlib.audio.folds import PROTOCOL_PREDEFINED

    if leaky:
        return "LEAKY: slices split at random, recordings shared between train and test; NOT a valid estimate"
    if not recordings_known and protocol == PROTOCOL_PREDEFINED:
        return ("leave-one-fold-out over the dataset's own folds; recordings unknown, so soundlib cannot check that "
                "none is split across them (see grouping)")
    if not recordings_known:
        return ("leave-one-fold-out, but RECORDINGS UNKNOWN: every file counted as its own recording, so slices of "
                "one recording may be split across folds and the scores may be too high (see grouping)")
    return "leave-one-fold-out, recordings never split"


def finite_or_none(x: float) -> float | None:
    return None if x is None or x != x else round(float(x), 4)


def _prepared_folds(dataset: Dataset, config: EvalConfig, *, run, embed_config, progress: bool
                    ) -> tuple[Prepared, list[int]]:
    """The features prepared once and the test folds checked; then the run folder is started (the previous
    run's results, and a model beside them, go first)."""
    from soundlib.audio.folds import check_test_fold

    p = prepare(dataset, config, embed_config, progress)
    folds = list(config.folds or p.ds.folds)
    check_folds(p.ds, folds)
    for f in folds:
        check_test_fold(p.ds, f)
    if run is not None:
        run.start()
    return p, folds


def picks_of(per_fold: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What a choosing method (``auto``) picked on each fold, and why (empty for other methods)."""
    return [{"fold": r["fold"], "picked": r["choice"]["picked"], "rule": r["choice"].get("rule"),
             "protocol": r["choice"].get("protocol"), "exported": r["choice"].get("exported")}
            for r in per_fold if isinstance(r.get("choice"), Mapping) and "picked" in r["choice"]]


def format_picks(picks: list[Mapping[str, Any]]) -> str:
    """One line: what ``auto`` picked per fold and why, e.g. ``picked per fold: 1 mn04 (best accuracy 0.8123)``."""
    return "picked per fold (on the training folds only): " + "; ".join(
        f"{p['fold']} {p['picked']} ({p.get('rule')})" for p in picks)


def embedder_text(info: Mapping[str, Any] | None, choice: Mapping[str, Any] | None = None) -> str:
    """The embedder(s) a run's features came from, in words, from the features' ``info``: ``"embedder mn04"``;
    for ``auto``, the pick's (``"embedder mn04 (auto picked mn04)"``, from ``choice``) or every candidate's;
    for a fusion, its members'; ``""`` when nothing names one (``scratch``)."""
    info = info if isinstance(info, Mapping) else {}
    if isinstance(info.get("embedder"), str):
        return f"embedder {info['embedder']}"
    parts = info.get("candidates") or info.get("members")
    if not isinstance(parts, Mapping):
        return ""
    names = {k: v.get("embedder") if isinstance(v, Mapping) and isinstance(v.get("embedder"), str) else None
             for k, v in parts.items()}
    picked = (choice or {}).get("picked") if isinstance(choice, Mapping) else None
    if picked in names:
        return f"embedder {names[picked]} (picked {picked})" if names[picked] else f"picked {picked}"
    listed = ", ".join(n if not e or e == n else f"{n} on {e}" for n, e in names.items())
    return f"{'candidates' if 'candidates' in info else 'members'}: {listed}" if listed else ""


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
    if results.get("multilabel"):
        return (f"{results['variant']} / {method} (multi-label): mAP {results['map_mean']:.3f} ± "
                f"{results['map_std']:.3f} over {len(results['per_fold'])} folds (pooled {results['map']:.3f}), "
                f"micro-F1 {results['micro_f1']:.3f}, macro-F1 {results['macro_f1']:.3f} ({results['protocol']}, "
                f"{results['dataset']['clips']} clips){tag}")
    return (f"{results['variant']} / {method}: accuracy {results['accuracy_mean']:.3f} ± "
            f"{results['accuracy_std']:.3f} over {len(results['per_fold'])} folds, macro-F1 {results['macro_f1']:.3f} "
            f"({results['protocol']}, {results['dataset']['clips']} clips"
            f"{', ' + _embedder_of(results) if _embedder_of(results) else ''}){tag}"
            + (f"\n{format_picks(results['picked'])}" if results.get("picked") else ""))


def _embedder_of(results: Mapping[str, Any]) -> str:
    """What a summary says of the embedder: its name (or auto's candidates), else the backbone identity."""
    return embedder_text(results.get("features")) or str(results.get("backbone") or "")


def _handle(handle: Any) -> str:
    """A backbone handle as compared: a local folder by its resolved path, anything else as written."""
    text = str(handle)
    local = Path(text).expanduser()
    return str(local.resolve()) if local.exists() else text

def feature_identities(info: Any) -> list[str]:
    """The embedder identities and window keys a method's prepared features record (``backbone`` and
    ``spec_key`` anywhere in ``Features.info``: a fusion's or auto's members too), sorted, once each."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k in ("backbone", "spec_key") and isinstance(v, str):
                    found.add(f"{k}={v}")
                else:
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(info)
    return sorted(found)

def run_fingerprint(dataset: Dataset, config: EvalConfig, features: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``results.json`` records (``fingerprint``) so that ``train --cv-from`` can tell an evaluation of
    this data and configuration from any other: the data (:func:`~soundlib.audio.hashes.dataset_fingerprint`:
    classes, clip paths, labels, folds, recordings and audio content), how folds were assigned when the
    dataset has none, the variant, the method (with its embedder options), the backbone handle, and the
    embedder identities and window keys of the prepared features (:func:`feature_identities`)."""
    import json

    from soundlib.atomic import jsonable
    from soundlib.audio.hashes import dataset_fingerprint

    own_folds = bool(dataset.clips) and all(c.fold is not None for c in dataset.clips)
    return {"version": FINGERPRINT_VERSION, "data": dataset_fingerprint(dataset), "classes": list(dataset.classes),
            "clips": len(dataset),
            "fold_assignment": None if own_folds else {"k_folds": config.k_folds, "seed": config.seed},
            "variant": config.spec.name, "method": json.loads(json.dumps(config.method.to_dict(), default=jsonable)),
            "backbone": _handle(config.method.backbone or config.backbone),
            "embedders": feature_identities(features or {})}

def read_cross_validation(path: str | os.PathLike, config: EvalConfig, dataset: Dataset) -> dict[str, Any]:
    """The cross-validated accuracy an :func:`evaluate` run of the same data and configuration measured.

    Parameters
    ----------
    path : path-like
        An ``evaluate --out`` folder, or its ``results.json``.
    config : EvalConfig
        The configuration being trained: the results must be of the same variant, method (with its
        embedder options) and backbone (a leaky split's are refused: they are not a valid estimate).
    dataset : Dataset
        The data being trained on: the results must be of the same data (the ``fingerprint``
        ``results.json`` records, :func:`run_fingerprint`: classes, clips, labels, folds, audio content).

    Returns
    -------
    dict
        ``accuracy_mean, accuracy_std, macro_f1, folds, per_fold`` (``fold, accuracy``), ``protocol``,
        ``dataset_fingerprint``, ``embedders`` (to check against the prepared features:
        :func:`check_cross_validation_features`) and ``source`` (the file).

    Raises
    ------
    ConfigError
        The file is missing or not an evaluate ``results.json``; its scores are not finite numbers in
        [0, 1] consistent with its per-fold list (:func:`~soundlib.evaluation.metrics.results_problems`);
        it has no fingerprint (written before soundlib 0.3: evaluate again); or it measured other data
        or another configuration.
    """
    import json

    from soundlib.evaluation.metrics import RESULTS_FILE, results_problems

    src = Path(path)
    if src.is_dir():
        src = src / RESULTS_FILE
    try:
        res = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--cv-from {src}: no such file (expected the results.json an `soundlib evaluate --out DIR` "
                          "wrote)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--cv-from {src}: not an evaluate results.json ({type(exc).__name__}: {exc})") from None
    problems = results_problems(res)
    if problems:
        raise ConfigError(f"--cv-from {src}: not a valid evaluate results.json: {'; '.join(problems[:5])}"
                          + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    fp = res.get("fingerprint")
    if not isinstance(fp, dict) or fp.get("version") != FINGERPRINT_VERSION:
        raise ConfigError(f"--cv-from {src}: records no fingerprint of its data and configuration (written by a "
                          "soundlib older than 0.3, or edited), so soundlib cannot check that it measured what you "
                          "train; run `soundlib evaluate` of this configuration again and pass its folder")
    want = run_fingerprint(dataset, config)
    wrong = []
    if fp.get("data") != want["data"]:
        wrong.append(f"other data (classes, clips, labels, folds or audio differ: {fp.get('clips')} clips of "
                     f"{len(fp.get('classes') or [])} classes, training {want['clips']} clips of "
                     f"{len(want['classes'])} classes)")
    for key in ("fold_assignment", "variant", "method"):
        if fp.get(key) != want[key]:
            wrong.append(f"{key.replace('_', ' ')} {fp.get(key)!r} (training {want[key]!r})")
    if fp.get("embedders") and fp.get("backbone") != want["backbone"]:
        wrong.append(f"backbone {fp.get('backbone')!r} (training {want['backbone']!r})")
    if res.get("leaky"):
        wrong.append("a LEAKY split (not a valid estimate)")
    if wrong:
        raise ConfigError(f"--cv-from {src}: measured another configuration: {', '.join(wrong)}; evaluate the "
                          "configuration you train")
    per_fold = [{"fold": r["fold"], "accuracy": float(r["accuracy"])} for r in res["per_fold"]]
    return {"accuracy_mean": float(res["accuracy_mean"]), "accuracy_std": float(res["accuracy_std"]),
            "macro_f1": res.get("macro_f1"), "folds": [r["fold"] for r in per_fold], "per_fold": per_fold,
            "protocol": res.get("protocol"), "dataset_fingerprint": fp["data"],
            "embedders": list(fp.get("embedders") or []), "source": str(src)}

def check_cross_validation_features(cv: Mapping[str, Any] | None, features: Mapping[str, Any]) -> None:
    """Refuse a cross-validation (:func:`read_cross_validation`) whose embedders or windows are not those of the
    features just prepared for training (same handle, other weights or options: another identity)."""
    if cv is None:
        return
    got = feature_identities(features)
    if list(cv.get("embedders") or []) != got:
        had = ", ".join(cv.get("embedders") or []) or "none"
        raise ConfigError(f"--cv-from {cv.get('source')}: measured embeddings of {had}, but the training features "
                          f"are of {', '.join(got) or 'none'}; evaluate the configuration you train")
