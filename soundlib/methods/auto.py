"""``auto``: inside each training fold, pick the method that does best on the grouped validation split.

Every candidate is fitted on the fold's training clips with the same
validation split (each uses it for its own hyperparameters); with
``fusions: true`` a late fusion of all candidates (weights chosen on the same
validation clips) and an early fusion of the embedding candidates join them.
The candidate with the best validation accuracy predicts the test fold; the
test fold is never looked at. What was picked, and every candidate's
validation accuracy, is recorded per fold (``choice``).

Candidates that cannot run here (the ``birdnet`` extra not installed) are
left out with a note.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import ConfigError, SoundlibError
from .base import Context, Features, FoldFit, FoldSplit, Method, member_context, timed

__all__ = ["AutoOptions", "AutoMethod"]


@dataclasses.dataclass(frozen=True)
class AutoOptions:
    """Options of ``auto``.

    Attributes
    ----------
    candidates : tuple
        Method names or mappings to choose among.
    fusions : bool
        Also consider the late fusion of all candidates and the early fusion of the embedding candidates.
    """

    candidates: tuple[Any, ...] = ("frozen", "mfcc", "scratch", "birdnet")
    fusions: bool = True

    def resolve(self, *, where: str) -> "AutoOptions":
        from . import resolve_method

        cands = tuple(resolve_method(c, where=f"{where}: candidates") for c in self.candidates)
        if not cands:
            raise ConfigError(f"{where}: auto needs at least one candidate")
        if any(c.kind == "auto" for c in cands):
            raise ConfigError(f"{where}: auto cannot be a candidate of auto")
        names = [c.name for c in cands]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: candidates repeat: {names}")
        return dataclasses.replace(self, candidates=cands)


class AutoMethod(Method):
    """See the module docstring."""

    kind = "auto"

    def __init__(self, spec, options):
        from . import build_method

        super().__init__(spec, options)
        self.notes: list[str] = []
        self.candidates = []
        for c in options.candidates:
            method = build_method(c)
            reason = method.unavailable() if hasattr(method, "unavailable") else None
            if reason:
                self.notes.append(f"candidate {c.name!r} left out: {reason}")
            else:
                self.candidates.append(method)
        if not self.candidates:
            raise ConfigError(f"method {spec.name!r}: no candidate can run here ({'; '.join(self.notes)})")

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        from .fusion import EMBEDDING_KINDS, FusionMethod, FusionOptions

        self._dataset = dataset
        self._feats = [m.prepare(dataset, member_context(ctx, m.spec, dataset)) for m in self.candidates]
        self._fusions = []
        if self.options.fusions and len(self.candidates) >= 2:
            from . import MethodSpec

            specs = [m.spec for m in self.candidates]
            late = FusionOptions(members=tuple(specs), mode="late")
            self._fusions.append(FusionMethod(MethodSpec("late_fusion", "fusion", late), late))
            emb = [s for s in specs if s.kind in EMBEDDING_KINDS and getattr(s.options, "head", "logistic")
                   == "logistic"]
            if len(emb) >= 2:
                early = FusionOptions(members=tuple(emb), mode="early")
                self._fusions.append(FusionMethod(MethodSpec("early_fusion", "fusion", early), early))
            for f in self._fusions:  # reuse the candidates' features instead of computing them again
                f.members = [self.candidates[specs.index(m.spec)] for m in f.members]
                f._member_feats = [self._feats[specs.index(m.spec)] for m in f.members]
                f._dataset = dataset
            self._fusion_feats = []
            for f in self._fusions:
                if f.options.mode == "early":
                    blocks = [mf.clip_means() for mf in f._member_feats]
                    self._fusion_feats.append(Features(np.concatenate(blocks, axis=1), np.arange(len(dataset.clips)),
                                                       len(dataset.clips)))
                else:
                    self._fusion_feats.append(Features(np.zeros((len(dataset.clips), 0), np.float32),
                                                       np.arange(len(dataset.clips)), len(dataset.clips)))
        return Features(np.zeros((len(dataset.clips), 0), np.float32), np.arange(len(dataset.clips)),
                        len(dataset.clips), info={"candidates": {m.spec.name: f.info for m, f in
                                                                 zip(self.candidates, self._feats)},
                                                  "notes": list(self.notes)})

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        fits = {}
        for m, f in zip(self.candidates, self._feats):
            try:
                fits[m.spec.name] = (m, f, m.fit(f, split, y, member_context(ctx, m.spec, self._dataset)))
            except SoundlibError as exc:
                self.notes.append(f"candidate {m.spec.name!r} failed on this fold: {exc}")
        if self._fusions and len(fits) == len(self.candidates):
            for fm, ff in zip(self._fusions, self._fusion_feats):
                fits[fm.spec.name] = (fm, ff, _fit_fusion_from(fm, ff, fits, split, y, ctx))
        if not fits:
            raise SoundlibError(f"method {self.spec.name!r}: every candidate failed: {'; '.join(self.notes)}")
        name = max(fits, key=lambda n: fits[n][2].val_accuracy)  # first best in candidate order
        method, mfeats, fit = fits[name]
        return FoldFit(model=(method, mfeats, fit), val_proba=fit.val_proba, val_accuracy=fit.val_accuracy,
                       choice={"picked": name, "picked_choice": fit.choice,
                               "val_accuracy": {n: round(v[2].val_accuracy, 4) for n, v in fits.items()},
                               "fit_seconds": {n: v[2].seconds for n, v in fits.items()},
                               "notes": list(self.notes)})

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        method, mfeats, mfit = fit.model
        return method.predict(mfit, mfeats, clips, member_context(ctx, method.spec, self._dataset))


def _fit_fusion_from(fusion, feats: Features, fits: dict, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
    """A fusion of already fitted candidates: the late one reuses their fits (no refitting)."""
    from .fusion import best_weights

    if fusion.options.mode == "early":
        return fusion.fit(feats, split, y, ctx)
    members = [fits[m.spec.name][2] for m in fusion.members]
    weights, acc = best_weights([f.val_proba for f in members], y[split.val])
    val = sum(w * f.val_proba for w, f in zip(weights, members))
    return FoldFit(model=(members, weights), val_proba=np.asarray(val, np.float32), val_accuracy=acc,
                   choice={"mode": "late", "weights": {m.spec.name: w for m, w in zip(fusion.members, weights)}},
                   seconds=0.0)
