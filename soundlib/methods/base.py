"""What every learning method shares: the inputs of a fold, a fitted method, window aggregation.

A *method* turns clips into class probabilities. It works in three steps, so
that the expensive part is shared by every fold and the choice of
hyperparameters never sees the test fold:

1. :meth:`Method.prepare` once per evaluation: per-window features of every
   clip (embeddings through the cache, MFCC statistics, log-mel planes...) as
   a :class:`Features` object;
2. :meth:`Method.fit` once per test fold, on the training clips only, with a
   grouped validation split inside them (:class:`FoldSplit`) used to choose
   hyperparameters, stop early, weight a fusion or pick a method;
3. :meth:`Method.predict` on the test clips: per-window probabilities averaged
   (or max-pooled) into one decision per clip (:func:`aggregate`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Sequence

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.errors import ConfigError, DatasetError

__all__ = ["AGGREGATIONS", "Features", "FoldSplit", "FoldFit", "Method", "Context", "CacheUnit", "aggregate",
           "accuracy", "average_precision", "mean_average_precision", "score_of", "backbone_info",
           "member_context", "clip_durations", "labels_of", "window_pictures", "embedder_features"]

#: How window probabilities become one clip decision.
AGGREGATIONS = ("mean", "max")


@dataclasses.dataclass
class Features:
    """Per-window inputs of every clip of a dataset.

    Attributes
    ----------
    x : np.ndarray, shape (n_rows, ...)
        One row per window (embeddings (n_rows, dim), or planes (n_rows, H, W)).
    row_clip : np.ndarray, shape (n_rows,), int
        Index of each row's clip in the dataset's clip list.
    n_clips : int
        Clips in the dataset; every clip has at least one row.
    info : dict
        What made them (backbone identity, spec key, seconds...), recorded in results.
    """

    x: np.ndarray
    row_clip: np.ndarray
    n_clips: int
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row_clip = np.asarray(self.row_clip, dtype=np.int64)
        if len(self.x) != len(self.row_clip):
            raise ValueError(f"{len(self.x)} feature rows but {len(self.row_clip)} row->clip indices")

    def rows_of(self, clips: np.ndarray) -> np.ndarray:
        """Row indices of the windows of ``clips`` (clip indices), in row order."""
        mask = np.zeros(self.n_clips, dtype=bool)
        mask[np.asarray(clips, dtype=np.int64)] = True
        return np.flatnonzero(mask[self.row_clip])

    def clip_means(self) -> np.ndarray:
        """One row per clip: the mean of its windows' rows (for methods that work on clips), shape (n_clips, dim)."""
        x = self.x.reshape(len(self.x), -1).astype(np.float64)
        sums = np.zeros((self.n_clips, x.shape[1]))
        np.add.at(sums, self.row_clip, x)
        counts = np.bincount(self.row_clip, minlength=self.n_clips)[:, None]
        return (sums / np.maximum(counts, 1)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class FoldSplit:
    """The clips of one outer fold: ``train`` (all training clips), its grouped split into
    ``fit`` and ``val``, and ``test``. All are clip indices into the dataset."""

    train: np.ndarray
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def make(cls, dataset: Dataset, test_fold: int, *, validation_split: float, seed: int) -> "FoldSplit":
        """Hold out ``validation_split`` of the training *recordings* for validation (never the test fold)."""
        from soundlib.audio.folds import grouped_validation_split

        folds = np.array([c.fold for c in dataset.clips])
        test = np.flatnonzero(folds == test_fold)
        train = np.flatnonzero(folds != test_fold)
        if not len(test):
            raise DatasetError(f"fold {test_fold} has no clips in dataset {dataset.name!r} at {dataset.root}")
        if not len(train):
            raise DatasetError(f"no training clips outside fold {test_fold} in dataset {dataset.name!r}")
        groups = [dataset.clips[i].group for i in train]
        fit_i, val_i = grouped_validation_split(groups, validation_split, seed=seed)
        return cls(train=train, fit=train[fit_i], val=train[val_i], test=test)

    @classmethod
    def all_folds(cls, dataset: Dataset, *, validation_split: float, seed: int) -> "FoldSplit":
        """Every clip trains and none is tested (the model to ship): ``validation_split`` of the
        *recordings* is still held out of them to choose the method's hyperparameters."""
        from soundlib.audio.folds import grouped_validation_split

        train = np.arange(len(dataset.clips))
        if not len(train):
            raise DatasetError(f"no clips in dataset {dataset.name!r} at {dataset.root}")
        fit_i, val_i = grouped_validation_split([c.group for c in dataset.clips], validation_split, seed=seed)
        return cls(train=train, fit=train[fit_i], val=train[val_i], test=np.zeros(0, np.int64))


@dataclasses.dataclass(frozen=True)
class ModelArtifact:
    """What a fitted method exports, handed to :func:`soundlib.models.export.export_artifact`.

    ``kind`` names the writer: ``"picture_head"`` (a head on a picture backbone), ``"keras"`` (any Keras
    model on pictures), ``"embedder_head"`` (a logistic head on an audio embedder); ``inputs`` are that
    writer's keyword arguments. Methods build artifacts; only :mod:`soundlib.models` writes model folders.
    """

    kind: str
    inputs: Mapping[str, Any]


@dataclasses.dataclass
class FoldFit:
    """A method fitted on one fold's training clips.

    Attributes
    ----------
    model : Any
        What :meth:`Method.predict` needs.
    val_proba : np.ndarray, shape (len(split.val), n_classes)
        Probabilities of the validation clips from the model fitted without them
        (what fusions and ``auto`` compare and weight).
    val_accuracy : float
    choice : dict
        The hyperparameters chosen on validation (C, epochs, members, weights...); recorded in results.
    seconds : float
        Wall time of the fit.
    """

    model: Any
    val_proba: np.ndarray
    val_accuracy: float
    choice: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything a method may need besides its own options (resolved at the edge).

    Attributes
    ----------
    classes : tuple of str
    spec : soundlib.pictures.variants.FeatureSpec
        The pictures (numeric duration).
    backbone : str
        The image backbone's handle (resolved by the methods that use it: :func:`backbone_info`).
    train : soundlib.methods.train.TrainConfig
        Neural-training hyperparameters (epochs, learning rates, batch size, distortions, seed).
    embed : soundlib.embedding.embed.EmbedConfig
    groups : tuple of str
        The recording of every clip of the dataset.
    aggregate : {"mean", "max"}
    progress : bool
    """

    classes: tuple[str, ...]
    spec: Any
    backbone: Any
    train: Any
    embed: Any
    groups: tuple[str, ...] = ()
    aggregate: str = "mean"
    progress: bool = False

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def aggregate(proba: np.ndarray, row_clip: np.ndarray, clips: np.ndarray, *, how: str = "mean") -> np.ndarray:
    """Window probabilities -> one row per clip.

    Parameters
    ----------
    proba : np.ndarray, shape (n_rows, n_classes)
    row_clip : np.ndarray, shape (n_rows,)
        Clip index of each row.
    clips : np.ndarray, shape (n,)
        The clips wanted, in output order (each must have rows).
    how : {"mean", "max"}
        Mean of the windows' probabilities, or the maximum per class (renormalised to sum to 1 when the
        windows' probabilities are distributions; a multi-label head's independent ones are kept).

    Returns
    -------
    np.ndarray, shape (n, n_classes)
    """
    if how not in AGGREGATIONS:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATIONS)}, got {how!r}")
    pos = {int(c): k for k, c in enumerate(clips)}
    out = np.zeros((len(clips), proba.shape[1]), dtype=np.float64)
    counts = np.zeros(len(clips))
    for r, c in enumerate(row_clip):
        k = pos.get(int(c))
        if k is None:
            continue
        if how == "mean":
            out[k] += proba[r]
        else:
            out[k] = np.maximum(out[k], proba[r])
        counts[k] += 1
    if np.any(counts == 0):
        raise DatasetError(f"{int(np.sum(counts == 0))} clip(s) have no windows to aggregate")
    if how == "mean":
        out = out / counts[:, None]
    elif len(proba) and np.allclose(np.asarray(proba).sum(axis=1), 1.0, atol=1e-3):
        out = out / out.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose most probable class is ``y``."""
    return float(np.mean(np.asarray(proba).argmax(axis=1) == np.asarray(y))) if len(y) else 0.0


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision of one class (scikit-learn's ``average_precision_score``, in numpy):
    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds; NaN without positives."""
    y = np.asarray(y) > 0.5
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    s, y = np.asarray(score, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    precision, recall = tps / (last + 1), tps / tps[-1]
    return float(np.sum((recall - np.r_[0.0, recall[:-1]]) * precision))


def mean_average_precision(proba: np.ndarray, Y: np.ndarray) -> float:
    """The mean over classes (with at least one positive) of :func:`average_precision`; ``Y`` multi-hot
    (n, n_classes)."""
    aps = [average_precision(Y[:, k], proba[:, k]) for k in range(Y.shape[1]) if np.any(Y[:, k] > 0.5)]
    return float(np.mean(aps)) if aps else 0.0


def score_of(proba: np.ndarray, y: np.ndarray) -> float:
    """What validation maximises: :func:`accuracy` of class ids ``y`` (n,), or the
    :func:`mean_average_precision` of multi-hot labels ``y`` (n, n_classes)."""
    y = np.asarray(y)
    return mean_average_precision(np.asarray(proba), y) if y.ndim == 2 else accuracy(proba, y)


@dataclasses.dataclass(frozen=True)
class CacheUnit:
    """Cached features a method reads, as a fill job that can run ahead of it (a sweep fills each once).

    Attributes
    ----------
    key : str
        Equal for every method that reads the same entries (embedder, its options, the windows).
    method : MethodSpec
        Preparing this method with ``variant`` and ``backbone`` fills the entries.
    variant : FeatureSpec
    backbone : str
        The evaluation's backbone handle the method is prepared with.
    embedder : soundlib.embedders.Embedder
        What computes the entries (resolved, not loaded).
    options : str
        The embedder's non-default options, as they appear in ``key``.
    """

    key: str
    method: Any
    variant: Any
    backbone: str
    embedder: Any
    options: str = ""

    @classmethod
    def of(cls, method: Any, variant: Any, backbone: str, embedder: Any, options: Mapping[str, Any]) -> "CacheUnit":
        """The unit of ``embedder`` (with its non-default ``options``) on ``variant``'s windows."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
        return cls(cls._key(embedder, opts, variant), method, variant, backbone, embedder, opts)

    @staticmethod
    def _key(embedder: Any, opts: str, variant: Any) -> str:
        import json

        if variant.resolved:
            windows = embedder.window(variant).key()
        else:  # duration "fit"/"auto": known once the dataset is read; the variant names the windows meanwhile
            windows = json.dumps(variant.to_dict(), sort_keys=True)
        return f"{embedder.name}|{opts}|{windows}"

    def with_durations(self, clip_seconds: Sequence[float]) -> "CacheUnit":
        """This unit with its variant's duration rule chosen from the dataset's clip lengths (itself when
        the variant has a number), so that its key names the windows the runs will read."""
        if self.variant.resolved:
            return self
        from soundlib.pictures.variants import resolve_duration

        variant = resolve_duration(self.variant, clip_seconds)[0]
        return dataclasses.replace(self, key=self._key(self.embedder, self.options, variant), variant=variant)

    @property
    def label(self) -> str:
        """A short name for progress and logs: the embedder, and the variant when its pictures matter."""
        probe = self.variant if self.variant.resolved else self.variant.replace(duration=1.0)
        uses_variant = self.embedder.window(probe) is probe  # the variant's pictures (or windows) themselves
        name = self.embedder.name.rstrip("/").rsplit("/", 1)[-1]
        return f"fill-{name}" + (f"-{self.variant.name}" if uses_variant else "")

    def is_filled(self, paths: Sequence[Any]) -> bool:
        """True when every window of every file is cached (checked without loading, exporting or converting)."""
        from soundlib.embedding.cache import EmbeddingCache

        ready = getattr(self.embedder, "is_ready", lambda: True)
        if not self.variant.resolved or not ready():
            return False
        return EmbeddingCache().has_all(paths, self.embedder.window(self.variant), self.embedder.identity)


class Method:
    """Base class of the learning methods (see the module docstring for the three steps).

    Subclasses register themselves (:func:`soundlib.methods.register_method`, which sets :attr:`kind`)
    and implement :meth:`prepare`, :meth:`fit` and :meth:`predict`.
    """

    kind: str = ""
    #: Whether :meth:`export` can write a labelling model.
    exportable: bool = False

    def __init__(self, spec: "Any", options: Any):
        self.spec = spec  # the MethodSpec (name, kind, options)
        self.options = options

    @property
    def embeds(self) -> bool:
        """Whether its features are embeddings (one vector per window) that an early fusion can concatenate."""
        return False

    def unavailable(self) -> str | None:
        """Why it cannot run here (a missing extra), or ``None``."""
        return None

    @property
    def multilabel(self) -> bool:
        """Whether it can learn several labels per clip (one-vs-rest sigmoid outputs)."""
        return False

    @classmethod
    def cache_units(cls, spec: Any, variant: Any, backbone: str) -> "list[CacheUnit]":
        """The cached features it reads (none by default); see :func:`soundlib.methods.cache_units`."""
        return []

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        raise NotImplementedError

    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        raise NotImplementedError

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> "ModelArtifact":
        """What this fitted method exports, for :func:`soundlib.models.export.export_artifact` to write
        (a method never writes a model folder itself: the format belongs to :mod:`soundlib.models`)."""
        from soundlib.errors import ModelError

        raise ModelError(f"method {self.spec.name!r} ({self.kind}) cannot export a labelling model; "
                         "exportable methods: frozen, finetune, scratch")


def timed(fn):
    """Decorator for :meth:`Method.fit`: fills :attr:`FoldFit.seconds`."""

    def wrapper(*args, **kwargs) -> FoldFit:
        t0 = time.perf_counter()
        fit = fn(*args, **kwargs)
        fit.seconds = round(time.perf_counter() - t0, 2)
        return fit

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def window_pictures(dataset: Dataset, spec: Any, *, progress: bool, channel: int | None = None,
                    info: dict | None = None) -> Features:
    """Every window of every clip rendered with ``spec``: one row per window.

    The rows are counted from the files' headers first and filled in place, a picture at a time from
    the streamed audio (:func:`~soundlib.pictures.featurize.iter_featurize_windows`), so the memory needed is the
    pictures' (uint8) and a few windows', whatever the clips' length.

    Parameters
    ----------
    channel : int, optional
        Keep only this channel: rows of shape (H, W) instead of (H, W, 3).

    info : dict, optional
        Recorded in the result's ``info``, beside ``windows`` (their count).

    Returns
    -------
    Features
        ``x`` uint8, shape (n_windows, H, W, 3) or (n_windows, H, W). A clip that cannot be read
        is named in one :class:`DatasetError` after every clip was tried.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from soundlib.errors import SoundlibError
    from soundlib.pictures.featurize import iter_featurize_windows, window_starts_of

    errors: dict[int, str] = {}
    counts = []
    for i, clip in enumerate(dataset.clips):
        try:
            counts.append(len(window_starts_of(clip.path, spec)))
        except SoundlibError as exc:
            errors[i] = str(exc)
            counts.append(0)
    first = np.cumsum([0] + counts)
    shape = (spec.height, spec.width) + (() if channel is not None else (3,))
    x = np.zeros((int(first[-1]),) + shape, dtype=np.uint8)

    def one(i: int) -> str | None:
        path, got = dataset.clips[i].path, 0
        try:
            for _, picture in iter_featurize_windows(path, spec):
                if got < counts[i]:
                    x[first[i] + got] = picture if channel is None else picture[..., channel]
                got += 1
        except SoundlibError as exc:
            return str(exc)
        return None if got == counts[i] else f"{path}: {got} windows rendered, {counts[i]} expected"

    todo = [i for i in range(len(counts)) if i not in errors]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for i, err in zip(todo, tqdm(pool.map(one, todo), total=len(dataset.clips), initial=len(errors),
                                     desc=f"pictures {spec.name}", unit="clip", disable=not progress)):
            if err is not None:
                errors[i] = err
    failures = [errors[i] for i in sorted(errors)]
    if failures:
        raise DatasetError(f"{len(failures)} clip(s) could not be featurized:\n  " + "\n  ".join(failures[:10]))
    return Features(x, np.repeat(np.arange(len(counts)), counts), len(dataset.clips),
                    info={**(info or {}), "windows": len(x)})


def embedder_features(dataset: Dataset, embedder: Any, ctx: "Context") -> Features:
    """Per-window embeddings of every clip by ``embedder`` (through the embedding cache), as :class:`Features`.

    The windows are the embedder's for the context's variant (:meth:`Embedder.window`): the variant's
    pictures for a picture embedder, the audio windows a waveform embedder takes.
    """
    from soundlib.embedding.embed import EmbedConfig, embed_clips

    t0 = time.perf_counter()
    window = embedder.window(ctx.spec)
    config = ctx.embed or EmbedConfig(progress=ctx.progress)
    res = embed_clips(dataset.clips, window, embedder, config=config, inputs=embedder.inputs)
    if res.failures:
        text = "\n  ".join(m for _, m in res.failures[:10])
        raise DatasetError(f"{len(res.failures)} clip(s) could not be embedded by {embedder.name!r}:\n  {text}")
    return Features(res.embeddings, res.row_clip, len(dataset.clips),
                    info={"embedder": embedder.name, "modality": embedder.modality, "backbone": embedder.identity,
                          "spec_key": window.key(), "windows": len(res.row_clip), "embed_hits": res.hits,
                          "embed_computed": res.computed, "license": embedder.license,
                          "seconds": round(time.perf_counter() - t0, 2)})


def labels_of(dataset: Dataset) -> np.ndarray:
    """Class ids of the dataset's clips, shape (n_clips,); for a multi-label dataset, the multi-hot
    matrix (n_clips, n_classes) of every clip's classes."""
    if not dataset.multilabel:
        return np.array([c.class_id for c in dataset.clips], dtype=np.int64)
    index = {c: k for k, c in enumerate(dataset.classes)}
    out = np.zeros((len(dataset.clips), len(dataset.classes)), np.float32)
    for i, clip in enumerate(dataset.clips):
        out[i, [index[x] for x in clip.all_labels]] = 1.0
    return out


def check_rows(feats: Features, what: str, clips: Sequence[int]) -> None:
    """Every clip in ``clips`` has at least one feature row."""
    have = np.bincount(feats.row_clip, minlength=feats.n_clips)
    missing = [int(c) for c in clips if have[int(c)] == 0]
    if missing:
        raise DatasetError(f"{what}: {len(missing)} clip(s) have no features")


def clip_durations(dataset: Dataset) -> list[float]:
    """Every clip's length in seconds, from the file headers (0 for unreadable files)."""
    from soundlib.audio.clips import audio_info
    from soundlib.errors import SoundlibError

    out = []
    for c in dataset.clips:
        try:
            out.append(audio_info(c.path).duration)
        except SoundlibError:
            out.append(0.0)
    return out


def member_context(ctx: Context, spec: Any, dataset: Dataset) -> Context:
    """``ctx`` with a method spec's own variant and backbone (when it names them), durations resolved."""
    if spec.variant is None and spec.backbone is None:
        return ctx
    changes: dict[str, Any] = {}
    if spec.variant is not None:
        from soundlib.pictures.variants import resolve_duration

        variant = spec.variant
        if not variant.resolved:
            variant, _ = resolve_duration(variant, clip_durations(dataset))
        changes["spec"] = variant
    if spec.backbone is not None:
        changes["backbone"] = spec.backbone
    return dataclasses.replace(ctx, **changes)


_RESOLVED: dict[str, Any] = {}


def backbone_info(ctx: Context):
    """The context's backbone resolved (exported or downloaded on first use), once per process."""
    from soundlib.embedders.backbones import resolve_backbone

    if ctx.backbone not in _RESOLVED:
        _RESOLVED[ctx.backbone] = resolve_backbone(ctx.backbone)
    return _RESOLVED[ctx.backbone]
