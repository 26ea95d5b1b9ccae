"""Fold-by-fold evaluation: leave-one-fold-out over a dataset's folds.

Protocol: the dataset's own folds are used when it has them (UrbanSound8K's 10,
ESC-50's 5); otherwise k folds grouped by recording are assigned
(:func:`soundlib.data.assign_folds`). Each clip is embedded once (through the
cache); each fold trains a fresh head on the other folds, with validation
recordings held out of the training folds, and is scored on its own clips.

``leaky_split=True`` instead splits *slices* at random, ignoring recordings:
reported beside the real protocol to show how much leakage inflates accuracy.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DatasetError

__all__ = [
    "EvalConfig",
    "compute_metrics",
    "plot_confusion",
    "evaluate",
    "train_fold",
    "leaky_folds",
    "format_summary",
]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate: variant, backbone, head hyperparameters, protocol."""

    variant: str = "mel"
    backbone: str = "efficientnet_lite0"
    train: Any = None  # TrainConfig; default built lazily
    folds: tuple[int, ...] | None = None  # test folds to run (default: all)
    k_folds: int = 5  # folds to assign when the dataset has none
    seed: int = 0
    leaky_split: bool = False


def leaky_folds(dataset, k: int, *, seed: int = 0):
    """Assign clips to k folds at random, ignoring recordings (the leaky protocol)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(dataset.clips))
    folds = np.empty(len(order), int)
    folds[order] = np.arange(len(order)) % k + 1
    return dataset.with_clips(dataclasses.replace(c, fold=int(f)) for c, f in zip(dataset.clips, folds))


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike, *,
                   title: str = "") -> Path:
    """Write a confusion-matrix PNG (row-normalised colours, counts in the cells), atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ._io import write_bytes_atomic

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def _prepare(dataset, config: EvalConfig):
    from .data import assign_folds, find_leakage

    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
    if config.leaky_split:
        k = len(dataset.folds) if dataset.has_folds else config.k_folds
        return leaky_folds(dataset, k, seed=config.seed), "leaky-random-slices"
    if dataset.has_folds:
        return dataset, "predefined-folds"
    ds = assign_folds(dataset, config.k_folds, seed=config.seed)
    assert not find_leakage(ds.clips)
    return ds, f"grouped-{config.k_folds}-folds"


def _fit_predict(emb, ds, test_fold, train_cfg, classes, *, backbone=None, pictures=None):
    from .train import train_end_to_end, train_head

    tr = np.array([c.fold != test_fold for c in ds.clips])
    te = ~tr
    if not te.any():
        raise DatasetError(f"fold {test_fold} has no clips in dataset {ds.name!r} at {ds.root}")
    if not tr.any():
        raise DatasetError(f"no training clips outside fold {test_fold} in dataset {ds.name!r}")
    y = np.array([c.class_id for c in ds.clips])
    groups = [c.group for c in ds.clips]
    if train_cfg.needs_pictures:
        trained = train_end_to_end(pictures[tr], y[tr], len(classes), backbone_path=backbone.path,
                                   groups=[g for g, t in zip(groups, tr) if t], config=train_cfg)
        proba = trained.predict_proba(pictures[te].astype(np.float32) / 255.0)
    else:
        trained = train_head(emb[tr], y[tr], len(classes), groups=[g for g, t in zip(groups, tr) if t],
                             config=train_cfg)
        proba = trained.predict_proba(emb[te])
    return trained, te, proba


def _embed_dataset(ds, spec, backbone, embed_config):
    from .embed import EmbedConfig, embed_clips

    res = embed_clips(ds.clips, spec, backbone, config=embed_config or EmbedConfig())
    if res.failures:
        text = "\n  ".join(m for _, m in res.failures[:10])
        raise DatasetError(f"{len(res.failures)} clip(s) could not be featurized:\n  {text}")
    return res


def _inputs(ds, spec, train_cfg, backbone: str, embed_config, progress: bool):
    """``(embeddings, pictures)``: pictures when training must see them (fine-tuning or
    distortions bypass the cache, like retrain.py), cached embeddings otherwise."""
    from .embed import EmbedConfig

    if train_cfg.needs_pictures:
        return None, _pictures(ds, spec, progress)
    return _embed_dataset(ds, spec, backbone, embed_config or EmbedConfig(progress=progress)).embeddings, None


def _pictures(ds, spec, progress: bool) -> np.ndarray:
    from .features import featurize

    rep = featurize(ds.clips, spec, progress=progress)
    if rep.failures:
        raise DatasetError(rep.failure_text())
    return np.stack([rep.pictures[c.path] for c in ds.clips])


def _predictions_rows(ds, idx, proba, classes):
    rows = []
    for i, pr in zip(np.flatnonzero(idx), proba):
        c = ds.clips[i]
        k = int(np.argmax(pr))
        rows.append({"path": str(c.path), "fold": c.fold, "group": c.group, "true": c.label,
                     "predicted": classes[k], "probability": float(pr[k]), "correct": c.label == classes[k]})
    return rows


def evaluate(dataset, config: EvalConfig = EvalConfig(), *, out_dir: str | os.PathLike | None = None,
             embed_config=None, progress: bool = True) -> dict[str, Any]:
    """Leave-one-fold-out evaluation; writes ``results.json``, ``predictions.csv`` and
    ``confusion_matrix.png`` into ``out_dir`` when given. Returns the results dict."""
    from .backbones import resolve_backbone
    from .data import find_leakage
    from .features import get_variant
    from .train import TrainConfig
    from ._io import write_csv_atomic, write_json_atomic

    t0 = time.perf_counter()
    train_cfg = config.train or TrainConfig(seed=config.seed)
    spec = get_variant(config.variant)
    ds, protocol = _prepare(dataset, config)
    folds = list(config.folds or ds.folds)
    for f in folds:
        if f not in ds.folds:
            raise DatasetError(f"fold {f} has no clips in dataset {ds.name!r} at {ds.root}; folds: {list(ds.folds)}")
    leaks = find_leakage(ds.clips)
    backbone = resolve_backbone(config.backbone)  # loaded by embed_clips only when the cache misses
    t_embed = time.perf_counter()
    emb, pictures = _inputs(ds, spec, train_cfg, config.backbone, embed_config, progress)
    t_embed = time.perf_counter() - t_embed

    classes = list(ds.classes)
    per_fold, y_true, y_pred, rows = [], [], [], []
    from tqdm.auto import tqdm

    for f in tqdm(folds, desc=f"folds ({spec.name})", unit="fold", disable=not progress):
        _, te, proba = _fit_predict(emb, ds, f, train_cfg, classes, backbone=backbone, pictures=pictures)
        yt = [c.class_id for c, t in zip(ds.clips, te) if t]
        yp = proba.argmax(axis=1).tolist()
        per_fold.append({"fold": int(f), "accuracy": float(np.mean(np.array(yt) == np.array(yp))), "n": len(yt)})
        y_true += yt
        y_pred += yp
        rows += _predictions_rows(ds, te, proba, classes)

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
        "per_class": pooled["per_class"],
        "confusion_matrix": pooled["confusion_matrix"],
        "train_config": train_cfg.to_dict(),
        "seconds": {"embed": round(t_embed, 2), "total": round(time.perf_counter() - t0, 2)},
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_csv_atomic(out / "predictions.csv", rows)
        plot_confusion(pooled["confusion_matrix"], classes, out / "confusion_matrix.png",
                       title=f"{spec.name} / {protocol}: accuracy {results['accuracy_mean']:.3f}")
        write_json_atomic(out / "results.json", results)
    return results


def format_summary(results: Mapping[str, Any]) -> str:
    """One line: variant, protocol, mean ± std accuracy, macro-F1."""
    tag = " [LEAKY split: not a valid estimate]" if results.get("leaky") else ""
    return (f"{results['variant']}: accuracy {results['accuracy_mean']:.3f} ± {results['accuracy_std']:.3f} "
            f"over {len(results['per_fold'])} folds, macro-F1 {results['macro_f1']:.3f} "
            f"({results['protocol']}, {results['dataset']['clips']} clips, {results['backbone']}){tag}")


def train_fold(dataset, *, test_fold: int, config: EvalConfig = EvalConfig(), out_dir: str | os.PathLike,
               embed_config=None, export: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train on every fold but ``test_fold``, score on it, and write into ``out_dir``:
    ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png``, ``history.json`` and
    (``export=True``) the exported model under ``out_dir/model``. ``metrics.json`` is
    written last: its presence marks a complete run."""
    from .backbones import resolve_backbone
    from .features import get_variant
    from .train import TrainConfig, export_model
    from ._io import write_csv_atomic, write_json_atomic

    t0 = time.perf_counter()
    out = Path(out_dir)
    train_cfg = config.train or TrainConfig(seed=config.seed)
    spec = get_variant(config.variant)
    ds, protocol = _prepare(dataset, config)
    if test_fold not in ds.folds:
        raise DatasetError(f"fold {test_fold} has no clips in dataset {ds.name!r} at {ds.root}; "
                           f"folds: {list(ds.folds)}")
    backbone = resolve_backbone(config.backbone)  # loaded by embed_clips only when the cache misses
    emb, pictures = _inputs(ds, spec, train_cfg, config.backbone, embed_config, progress)
    classes = list(ds.classes)
    trained, te, proba = _fit_predict(emb, ds, test_fold, train_cfg, classes, backbone=backbone, pictures=pictures)
    yt = [c.class_id for c, t in zip(ds.clips, te) if t]
    metrics = compute_metrics(yt, proba.argmax(axis=1).tolist(), classes)
    write_csv_atomic(out / "predictions.csv", _predictions_rows(ds, te, proba, classes))
    plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png",
                   title=f"{spec.name}, test fold {test_fold}: accuracy {metrics['accuracy']:.3f}")
    write_json_atomic(out / "history.json", trained.history)
    if export:
        export_model(out / "model", trained, backbone_path=backbone.path, backbone_identity=backbone.identity,
                     spec=spec, labels=classes, metadata={"test_fold": test_fold, "protocol": protocol})
    result = {
        "variant": spec.name,
        "test_fold": int(test_fold),
        "protocol": protocol,
        "backbone": backbone.identity,
        **{k: metrics[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "n")},
        "train_clips": int((~te).sum()),
        "train_config": train_cfg.to_dict(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json_atomic(out / "metrics.json", result)
    return result
