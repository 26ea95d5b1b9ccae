"""A scikit-learn estimator over soundlib's methods: :class:`SoundClassifier`.

``SoundClassifier(method="mn04")`` is a classifier whose samples are sounds: audio file paths, or 1-D
waveforms (numpy arrays) at the sample rate ``sr``. ``fit(X, y, groups=None)`` prepares the method's
features (embeddings through the embedding cache, MFCC statistics...) and fits it as ``soundlib train
--all-folds`` does: the hyperparameters (C, epochs...) and the calibration are chosen on a validation
split held out *by recording* (``groups``: the recording of each sound; without them every sound is its
own recording). ``predict``, ``predict_proba``, ``score`` and ``classes_`` follow scikit-learn, so it
works in ``cross_val_score(clf, X, y, groups=groups, cv=GroupKFold(3))``, ``GridSearchCV`` and pipelines.

Waveforms are written to temporary WAV files for the method to read (the embedding cache keys them by
content, so the same sound is embedded once); files are read where they are.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from soundlib.errors import ConfigError, InputError

__all__ = ["SoundClassifier"]

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError:  # scikit-learn is a dependency of soundlib; this keeps the error readable if it is missing
    BaseEstimator, ClassifierMixin = object, object


def _sounds(X: Any) -> list:
    """``X`` as a list of sounds (paths or waveforms), refusing what is not one (an :class:`InputError`
    saying what was expected)."""
    import scipy.sparse

    if isinstance(X, (str, os.PathLike)):
        raise InputError("X must be a sequence of sounds (paths or 1-D waveforms), got a single path")
    if scipy.sparse.issparse(X):
        raise InputError("sparse input is not supported: X holds sounds (paths or dense 1-D waveforms)")
    if not isinstance(X, (list, tuple, np.ndarray)) and hasattr(X, "__array__"):
        X = np.asarray(X)
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "fiucb":
        raise InputError("X must be a sequence of sounds, got one 1-D array of numbers. Reshape your data: "
                         "[waveform] for one sound, or a 2-D array with one waveform per row")
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 0:
        raise InputError(f"0 feature(s) (shape=({X.shape[0]}, 0)) while a minimum of 1 is required: every "
                         "waveform needs samples")
    try:
        items = list(X)
    except TypeError:
        raise InputError(f"X must be a sequence of sounds (paths or 1-D waveforms), got {type(X).__name__}") from None
    if not items:
        raise InputError("X holds no sounds (0 samples); at least one is required")
    return items


class SoundClassifier(ClassifierMixin, BaseEstimator):
    """A soundlib method as a scikit-learn classifier of sounds.

    Parameters
    ----------
    method : str
        A method name (``frozen``, ``mfcc``, ``finetune``, ``scratch``, ``fusion``, ``auto``) or an
        embedder name (``mn04``, ``yamnet``...: ``frozen`` on it); see ``soundlib evaluate --help``.
    backbone : str or None
        The embedder of ``frozen`` (``None``: the method's own, or the default picture backbone).
    variant : str
        The feature variant (pictures, windows): ``mel`` by default.
    sr : int or None
        Sample rate of waveforms given as arrays (needed then; unused for paths).
    options : dict or None
        The method's options (``{"Cs": [0.01, 0.1], "calibrate": False}``...).
    validation_split : float
        Share of the training recordings held out to choose hyperparameters and calibrate.
    random_state : int
        Seed of the validation split and of training.
    aggregate : {"mean", "max"}
        How the windows of a long sound become one decision.
    """

    def __init__(self, method: str = "frozen", backbone: str | None = None, variant: str = "mel",
                 sr: int | None = None, options: dict | None = None, validation_split: float = 0.2,
                 random_state: int = 0, aggregate: str = "mean"):
        self.method = method
        self.backbone = backbone
        self.variant = variant
        self.sr = sr
        self.options = options
        self.validation_split = validation_split
        self.random_state = random_state
        self.aggregate = aggregate

    # -- inputs -------------------------------------------------------------------------------------

    def _paths(self, X: Any, folder: Path) -> list[Path]:
        """Each sample as an audio file: paths as given, waveforms written into ``folder``."""
        import soundfile as sf

        from soundlib.audio.clips import SILENCE_PEAK

        items = _sounds(X)
        out = []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                out.append(Path(item))
                continue
            if self.sr is None:
                raise ConfigError("SoundClassifier(sr=...) is needed for sounds given as arrays (their sample rate "
                                  "in Hz)")
            if np.iscomplexobj(item):
                raise InputError(f"X[{i}]: complex data is not supported (a waveform holds real samples)")
            try:
                y = np.asarray(item, dtype=np.float32)
            except (TypeError, ValueError):
                raise InputError(f"X[{i}]: expected a path or a 1-D waveform, got {type(item).__name__}") from None
            if y.ndim != 1 or not y.size:
                raise InputError(f"X[{i}]: a waveform must be 1-D and non-empty, got shape {y.shape}")
            if not np.all(np.isfinite(y)):
                raise InputError(f"X[{i}]: the waveform holds NaN or infinite samples")
            peak = float(np.max(np.abs(y)))
            if peak > 1.0:
                y = y / peak  # written as a float WAV; kept within full scale
            if peak < SILENCE_PEAK:
                raise InputError(f"X[{i}]: silent waveform (peak {peak:.2g}); there is nothing to classify")
            path = folder / f"x{i:06d}.wav"
            sf.write(str(path), y, int(self.sr), subtype="FLOAT")
            out.append(path)
        return out

    def _dataset(self, paths: Sequence[Path], labels: Sequence[str], groups: Sequence[str], classes: Sequence[str]):
        from soundlib.audio.datasets import Clip, Dataset, Grouping

        index = {c: k for k, c in enumerate(classes)}
        clips = tuple(Clip(p, lab, index[lab], None, g) for p, lab, g in zip(paths, labels, groups))
        root = Path(os.path.commonpath([str(p.parent.resolve()) for p in paths])) if paths else Path(".")
        return Dataset("SoundClassifier", root, tuple(classes), clips, Grouping("given", "groups given to fit"))

    def _spec_and_method(self):
        from soundlib.methods import resolve_method
        from soundlib.pictures.variants import resolve_variant

        spec = resolve_variant(self.variant, where="SoundClassifier(variant=...)")
        item: dict[str, Any] = {"name": str(self.method), "method": str(self.method), **dict(self.options or {})}
        if self.backbone is not None:
            item["backbone"] = self.backbone
        return spec, resolve_method(item, where="SoundClassifier(method=...)")

    # -- scikit-learn ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, groups: Any = None) -> "SoundClassifier":
        """Fit the method on sounds ``X`` (paths or 1-D waveforms) with labels ``y``.

        ``groups`` (optional): the recording of each sound; the validation split never separates one.
        """
        from soundlib.embedders.backbones import DEFAULT_BACKBONE
        from soundlib.methods import build_method
        from soundlib.methods.base import Context, FoldSplit, clip_durations
        from soundlib.methods.train import TrainConfig
        from soundlib.pictures.variants import resolve_duration

        from sklearn.utils import assert_all_finite, column_or_1d
        from sklearn.utils.multiclass import check_classification_targets

        X = _sounds(X)
        if y is None:
            raise InputError("SoundClassifier requires y to be passed, but the target y is None")
        y = column_or_1d(np.asarray(y), warn=True)
        if y.dtype.kind in "fc":
            assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InputError(f"y has {len(self.classes_)} class(es); a classifier needs at least two")
        if not 0 <= float(self.validation_split) < 1:
            raise ConfigError(f"validation_split must be in [0, 1), got {self.validation_split!r}")
        if len(X) != len(y):
            raise InputError(f"X has {len(X)} sounds but y has {len(y)} labels; give one label per sound")
        names = [str(c) for c in self.classes_]
        labels = [names[k] for k in np.searchsorted(self.classes_, y)]
        spec, method_spec = self._spec_and_method()
        with tempfile.TemporaryDirectory(prefix="soundlib-fit-") as tmp:
            paths = self._paths(X, Path(tmp))
            if len(paths) != len(y):
                raise InputError(f"X has {len(paths)} sounds but y has {len(y)} labels")
            if groups is None:
                groups = [f"sound{i}" for i in range(len(paths))]
            groups = [str(g) for g in groups]
            if len(groups) != len(paths):
                raise InputError(f"groups has {len(groups)} entries for {len(paths)} sounds")
            ds = self._dataset(paths, labels, groups, names)
            if not spec.resolved:
                spec, _ = resolve_duration(spec, clip_durations(ds))
            train = TrainConfig(validation_split=float(self.validation_split), seed=int(self.random_state))
            method = build_method(method_spec)
            ctx = Context(classes=tuple(names), spec=spec, backbone=self.backbone or DEFAULT_BACKBONE, train=train,
                          embed=None, groups=tuple(groups), aggregate=self.aggregate, progress=False)
            feats = method.prepare(ds, ctx)
            split = FoldSplit.all_folds(ds, validation_split=train.validation_split, seed=train.seed)
            ids = np.array([c.class_id for c in ds.clips])
            self.fit_ = method.fit(feats, split, ids, ctx)
        self.method_, self.context_, self.spec_ = method, ctx, spec
        self.choice_ = dict(self.fit_.choice)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_sounds, n_classes), columns in :attr:`classes_` order."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "fit_")
        X = _sounds(X)
        with tempfile.TemporaryDirectory(prefix="soundlib-predict-") as tmp:
            paths = self._paths(X, Path(tmp))
            if not paths:
                return np.zeros((0, len(self.classes_)), np.float32)
            names = [str(c) for c in self.classes_]
            groups = [f"sound{i}" for i in range(len(paths))]
            ds = self._dataset(paths, [names[0]] * len(paths), groups, names)
            ctx = dataclasses.replace(self.context_, groups=tuple(groups))
            feats = self.method_.prepare(ds, ctx)
            return np.asarray(self.method_.predict(self.fit_, feats, np.arange(len(paths)), ctx), np.float32)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sound (labels as given to :meth:`fit`)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True  # a 2-D array: one waveform per row (at sr)
        tags.input_tags.string = True  # file paths
        tags.non_deterministic = False
        return tags
