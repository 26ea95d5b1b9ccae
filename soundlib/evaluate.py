"""Fold-by-fold evaluation: leave-one-fold-out over a dataset's folds, and one-fold training runs.

The protocol is :mod:`soundlib.folds`'s: the dataset's own folds when it has
them, otherwise ``k`` folds grouped by recording. Each clip is embedded once
(through the cache); each fold trains a fresh head on the other folds, with
validation recordings held out of the training folds, and is scored on its
own clips. ``leaky_split=True`` instead splits *slices* at random, reported
beside the real protocol to show how much leakage inflates accuracy.

:func:`evaluate` runs every fold and writes ``results.json``;
:func:`train_fold` runs one (the unit of a sweep) and writes ``metrics.json``
and, optionally, the exported model.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .backbones import DEFAULT_BACKBONE, BackboneInfo
from .data import Dataset
from .errors import ConfigError, DatasetError
from .folds import DEFAULT_K_FOLDS
from .metrics import RunMetrics
from .train import TrainConfig
from .variants import VARIANTS, FeatureSpec

__all__ = ["EvalConfig", "evaluate", "train_fold", "format_summary", "format_run"]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how.

    Attributes
    ----------
    spec : FeatureSpec
        The pictures (a resolved variant, see :func:`soundlib.variants.resolve_variant`).
    backbone : str
        Backbone handle (embedded name, TF Hub handle or SavedModel folder), resolved once per evaluation.
    train : TrainConfig
        Head hyperparameters.
    folds : tuple of int or None
        Test folds to run (default: all).
    k_folds : int
        Folds assigned, grouped by recording, when the dataset has none.
    seed : int
        Seed of fold assignment (and of the leaky split).
    leaky_split : bool
        Use the leaky random slice-level split instead (for comparison only).
    """

    spec: FeatureSpec = VARIANTS["mel"]
    backbone: str = DEFAULT_BACKBONE
    train: TrainConfig = TrainConfig()
    folds: tuple[int, ...] | None = None
    k_folds: int = DEFAULT_K_FOLDS
    seed: int = 0
    leaky_split: bool = False

    def __post_init__(self) -> None:
        if self.folds is not None:
            twice = sorted({f for f in self.folds if self.folds.count(f) > 1})
            if twice:
                raise ConfigError(f"folds: fold(s) {', '.join(map(str, twice))} listed more than once in "
                                  f"{list(self.folds)}; list each test fold once")
            if not self.folds:
                raise ConfigError("folds: an empty list; give at least one test fold (or none for all)")


def _fit_predict(emb, pictures, ds: Dataset, test_fold: int, train_cfg: TrainConfig, backbone: BackboneInfo):
    """Train on every fold but ``test_fold``; return ``(trained, test mask, test probabilities)``."""
    from .train import train_end_to_end, train_head

    tr = np.array([c.fold != test_fold for c in ds.clips])
    te = ~tr
    if not te.any():
        raise DatasetError(f"fold {test_fold} has no clips in dataset {ds.name!r} at {ds.root}")
    if not tr.any():
        raise DatasetError(f"no training clips outside fold {test_fold} in dataset {ds.name!r}")
    y = np.array([c.class_id for c in ds.clips])
    groups = [c.group for c, t in zip(ds.clips, tr) if t]
    n_classes = len(ds.classes)
    if train_cfg.needs_pictures:
        trained = train_end_to_end(pictures[tr], y[tr], n_classes, backbone_path=backbone.path, groups=groups,
                                   config=train_cfg)
        proba = trained.predict_proba(pictures[te].astype(np.float32) / 255.0)
    else:
        trained = train_head(emb[tr], y[tr], n_classes, groups=groups, config=train_cfg)
        proba = trained.predict_proba(emb[te])
    return trained, te, proba


def _inputs(ds: Dataset, spec: FeatureSpec, train_cfg: TrainConfig, backbone: BackboneInfo, embed_config,
            progress: bool):
    """``(embeddings, pictures)``: pictures when training must see them (fine-tuning or
    distortions bypass the cache, like retrain.py), cached embeddings otherwise."""
    from .embed import EmbedConfig, embed_clips
    from .featurize import featurize

    if train_cfg.needs_pictures:
        rep = featurize(ds.clips, spec, progress=progress)
        if rep.failures:
            raise DatasetError(rep.failure_text())
        return None, np.stack([rep.pictures[c.path] for c in ds.clips])
    res = embed_clips(ds.clips, spec, backbone, config=embed_config or EmbedConfig(progress=progress))
    if res.failures:
        text = "\n  ".join(m for _, m in res.failures[:10])
        raise DatasetError(f"{len(res.failures)} clip(s) could not be featurized:\n  {text}")
    return res.embeddings, None


def _test_clips(ds: Dataset, mask: np.ndarray) -> list:
    return [c for c, t in zip(ds.clips, mask) if t]


def evaluate(dataset: Dataset, config: EvalConfig = EvalConfig(), *, out_dir: str | os.PathLike | None = None,
             embed_config=None, progress: bool = True) -> dict[str, Any]:
    """Leave-one-fold-out evaluation.

    Writes ``results.json``, ``predictions.csv`` and ``confusion_matrix.png``
    into ``out_dir`` when given. Returns the results as a dict (the content of
    ``results.json``): per-fold accuracy and macro-F1, mean and std, pooled
    macro-F1 (over the classes present, and ``macro_f1_all_classes``),
    per-class scores, the summed confusion matrix, timings, and ``warnings``:
    every :class:`~soundlib.errors.SoundlibWarning` the run issued (degenerate
    folds, duplicate rows, recomputed cache entries...).
    """
    from .errors import collect_warnings

    with collect_warnings() as log:
        return _evaluate(dataset, config, out_dir=out_dir, embed_config=embed_config, progress=progress, log=log)


def _evaluate(dataset: Dataset, config: EvalConfig, *, out_dir, embed_config, progress: bool, log) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from .backbones import resolve_backbone
    from .folds import check_test_fold, find_leakage, prepare_folds
    from .metrics import compute_metrics, prediction_rows, write_predictions, write_results_json
    from .plots import plot_confusion, save_png

    t0 = time.perf_counter()
    spec, train_cfg = config.spec, config.train
    ds, protocol = prepare_folds(dataset, k_folds=config.k_folds, seed=config.seed, leaky=config.leaky_split)
    folds = list(config.folds or ds.folds)
    for f in folds:
        if f not in ds.folds:
            raise DatasetError(f"fold {f} has no clips in dataset {ds.name!r} at {ds.root}; folds: {list(ds.folds)}")
    leaks = find_leakage(ds.clips)
    for f in folds:
        check_test_fold(ds, f)
    backbone = resolve_backbone(config.backbone)  # loaded by embed_clips only when the cache misses
    t_embed = time.perf_counter()
    emb, pictures = _inputs(ds, spec, train_cfg, backbone, embed_config, progress)
    t_embed = time.perf_counter() - t_embed

    classes = list(ds.classes)
    per_fold, y_true, y_pred, rows = [], [], [], []
    for f in tqdm(folds, desc=f"folds ({spec.name})", unit="fold", disable=not progress):
        _, te, proba = _fit_predict(emb, pictures, ds, f, train_cfg, backbone)
        yt = [c.class_id for c in _test_clips(ds, te)]
        yp = proba.argmax(axis=1).tolist()
        fold_scores = compute_metrics(yt, yp, classes)
        per_fold.append({"fold": int(f), "accuracy": fold_scores["accuracy"], "macro_f1": fold_scores["macro_f1"],
                         "macro_f1_all_classes": fold_scores["macro_f1_all_classes"], "n": len(yt)})
        y_true += yt
        y_pred += yp
        rows += prediction_rows(_test_clips(ds, te), proba, classes)

    accs = [p["accuracy"] for p in per_fold]
    pooled = compute_metrics(y_true, y_pred, classes)
    results = {
        "dataset": {"name": ds.name, "root": str(ds.root), "clips": len(ds), "classes": classes},
        "variant": spec.name,
        "feature_spec": spec.to_dict(),
        "backbone": backbone.identity,
        "protocol": protocol,
        "leaky": bool(config.leaky_split),
        "note": ("LEAKY: slices split at random, recordings shared between train and test; "
                 "NOT a valid estimate" if config.leaky_split else "leave-one-fold-out, recordings never split"),
        "cross_fold_groups": {g: list(v) for g, v in leaks.items()},
        "per_fold": per_fold,
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "macro_f1": pooled["macro_f1"],
        "macro_f1_all_classes": pooled["macro_f1_all_classes"],
        "per_class": pooled["per_class"],
        "confusion_matrix": pooled["confusion_matrix"],
        "train_config": train_cfg.to_dict(),
        "seconds": {"embed": round(t_embed, 2), "total": round(time.perf_counter() - t0, 2)},
        "warnings": log.messages,
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_predictions(out, rows)
        save_png(plot_confusion(pooled["confusion_matrix"], classes,
                                title=f"{spec.name} / {protocol}: accuracy {results['accuracy_mean']:.3f}"),
                 out / "confusion_matrix.png")
        write_results_json(out, results)
    return results


def format_summary(results: Mapping[str, Any]) -> str:
    """One line about an :func:`evaluate` result: variant, protocol, mean ± std accuracy, macro-F1."""
    tag = " [LEAKY split: not a valid estimate]" if results.get("leaky") else ""
    if results.get("warnings"):
        tag += f" [{len(results['warnings'])} warning(s) in results.json]"
    return (f"{results['variant']}: accuracy {results['accuracy_mean']:.3f} ± {results['accuracy_std']:.3f} "
            f"over {len(results['per_fold'])} folds, macro-F1 {results['macro_f1']:.3f} "
            f"({results['protocol']}, {results['dataset']['clips']} clips, {results['backbone']}){tag}")


def train_fold(dataset: Dataset, *, test_fold: int, config: EvalConfig = EvalConfig(),
               out_dir: str | os.PathLike, embed_config=None, export: bool = True, overwrite: bool = False,
               progress: bool = True) -> RunMetrics:
    """Train on every fold but ``test_fold``, score on it, and write its outputs into ``out_dir``.

    Writes ``predictions.csv``, ``confusion_matrix.png``, ``history.json``,
    (``export=True``) the exported model under ``out_dir/model``, and last
    ``metrics.json``: its presence marks a complete run. A previous run's
    ``metrics.json`` is removed first, so a run killed half-way leaves a
    folder that reads as incomplete, never an old score beside new outputs.

    Parameters
    ----------
    overwrite : bool
        Replace an ``out_dir/model`` that is not a soundlib model. Without it,
        such a folder is refused before anything is trained (a soundlib model is
        replaced atomically either way; see :func:`soundlib.infer.export_model`).
    """
    from .errors import collect_warnings

    with collect_warnings() as log:
        return _train_fold(dataset, test_fold=test_fold, config=config, out_dir=Path(out_dir),
                           embed_config=embed_config, export=export, overwrite=overwrite, progress=progress, log=log)


def _train_fold(dataset: Dataset, *, test_fold: int, config: EvalConfig, out_dir: Path, embed_config, export: bool,
                overwrite: bool, progress: bool, log) -> RunMetrics:
    from .atomic import write_json_atomic
    from .backbones import resolve_backbone
    from .folds import check_test_fold, prepare_folds
    from .infer import check_model_target, export_model
    from .metrics import compute_metrics, prediction_rows, start_run, write_predictions
    from .plots import plot_confusion, save_png

    t0 = time.perf_counter()
    out = out_dir
    spec, train_cfg = config.spec, config.train
    if export:
        check_model_target(out / "model", overwrite=overwrite)
    ds, protocol = prepare_folds(dataset, k_folds=config.k_folds, seed=config.seed, leaky=config.leaky_split)
    if test_fold not in ds.folds:
        raise DatasetError(f"fold {test_fold} has no clips in dataset {ds.name!r} at {ds.root}; "
                           f"folds: {list(ds.folds)}")
    check_test_fold(ds, test_fold)
    start_run(out)
    for name in ("history.json", "confusion_matrix.png"):  # this run writes them again
        (out / name).unlink(missing_ok=True)
    backbone = resolve_backbone(config.backbone)  # loaded by embed_clips only when the cache misses
    emb, pictures = _inputs(ds, spec, train_cfg, backbone, embed_config, progress)
    classes = list(ds.classes)
    trained, te, proba = _fit_predict(emb, pictures, ds, test_fold, train_cfg, backbone)
    yt = [c.class_id for c in _test_clips(ds, te)]
    scores = compute_metrics(yt, proba.argmax(axis=1).tolist(), classes)
    write_predictions(out, prediction_rows(_test_clips(ds, te), proba, classes))
    save_png(plot_confusion(scores["confusion_matrix"], classes,
                            title=f"{spec.name}, test fold {test_fold}: accuracy {scores['accuracy']:.3f}"),
             out / "confusion_matrix.png")
    write_json_atomic(out / "history.json", trained.history)
    if export:
        export_model(out / "model", trained, backbone=backbone, spec=spec, labels=classes, overwrite=overwrite,
                     metadata={"test_fold": test_fold, "protocol": protocol})
    metrics = RunMetrics(
        variant=spec.name, test_fold=int(test_fold), protocol=protocol, backbone=backbone.identity,
        **{k: scores[k] for k in ("accuracy", "macro_f1", "macro_f1_all_classes", "per_class", "confusion_matrix",
                                  "n")},
        train_clips=int((~te).sum()), train_config=train_cfg.to_dict(),
        seconds=round(time.perf_counter() - t0, 2), warnings=log.messages,
    )
    metrics.write(out)
    return metrics


def format_run(metrics: RunMetrics) -> str:
    """One line about a :func:`train_fold` result (plus a count of its warnings, if any)."""
    warned = f"; {len(metrics.warnings)} warning(s) in metrics.json" if metrics.warnings else ""
    return (f"{metrics.variant}, test fold {metrics.test_fold}: accuracy {metrics.accuracy:.3f}, "
            f"macro-F1 {metrics.macro_f1:.3f} on {metrics.n} clips (trained on {metrics.train_clips}, "
            f"{metrics.seconds} s){warned}")
