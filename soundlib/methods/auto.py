"""``auto``: inside each training fold, pick the method that does best on the grouped validation split.

Every candidate is fitted on the fold's training clips with the same
validation split (each uses it for its own hyperparameters); with
``fusions: true`` a late fusion of all candidates (weights chosen on the same
validation clips) and an early fusion of the embedding candidates join them.
The test fold is never looked at.

The pick: the best validation accuracy, except that the late fusion is kept
when the best single candidate beats it by no more than the noise of the
comparison (``tolerance`` paired standard errors of the difference in
accuracy on the same validation clips): a few hundred validation clips cannot
tell two candidates a point apart, and an average of the candidates is the
choice that holds better on data not seen (measured in the README).
What was picked, and every candidate's validation accuracy, is recorded per fold.

Candidates that cannot run here (an extra not installed, weights that cannot be
fetched) are left out with a note. ``budget_seconds`` bounds the fitting time
per fold: once spent, the remaining candidates are skipped (with a note), so
put expensive ones (``scratch``, ``finetune``) last.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.errors import ConfigError, SoundlibError
from soundlib.methods import register_method
from soundlib.methods.base import CacheUnit, Context, Features, FoldFit, FoldSplit, Method, member_context, timed

__all__ = ["AutoOptions", "AutoMethod", "paired_se"]


@dataclasses.dataclass(frozen=True)
class AutoOptions:
    """Options of ``auto``.

    Attributes
    ----------
    candidates : tuple
        Method or embedder names, or mappings, to choose among (cheap ones first).
    fusions : bool
        Also consider the late fusion of all candidates and the early fusion of the embedding candidates.
    tolerance : float
        Paired standard errors within which the late fusion is kept over a single candidate (0: plain best).
    budget_seconds : float
        Fitting time per fold after which the remaining candidates are skipped (0: no limit).
    """

    candidates: tuple[Any, ...] = ("mn04", "yamnet", "frozen", "mfcc", "birdnet", "scratch")
    fusions: bool = True
    tolerance: float = 1.0
    budget_seconds: float = 0.0

    def resolve(self, *, where: str) -> "AutoOptions":
        from soundlib.methods import resolve_method

        if not 0 <= self.tolerance <= 10:
            raise ConfigError(f"{where}: tolerance must be in [0, 10] standard errors, got {self.tolerance}")
        if self.budget_seconds < 0:
            raise ConfigError(f"{where}: budget_seconds must be >= 0 (0: no limit), got {self.budget_seconds}")
        cands = tuple(resolve_method(c, where=f"{where}: candidates") for c in self.candidates)
        if not cands:
            raise ConfigError(f"{where}: auto needs at least one candidate")
        if any(c.kind == "auto" for c in cands):
            raise ConfigError(f"{where}: auto cannot be a candidate of auto")
        names = [c.name for c in cands]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: candidates repeat: {names}")
        return dataclasses.replace(self, candidates=cands)


def paired_se(proba_a: np.ndarray, proba_b: np.ndarray, y: np.ndarray) -> float:
    """Standard error of the difference in accuracy of two classifiers on the same clips (McNemar's
    discordant pairs: ``sqrt(n01 + n10 - (n01 - n10)^2 / n) / n``)."""
    a, b = np.asarray(proba_a).argmax(1) == y, np.asarray(proba_b).argmax(1) == y
    n = len(y)
    if not n:
        return 0.0
    n01, n10 = float(np.sum(a & ~b)), float(np.sum(~a & b))
    return float(np.sqrt(max(n01 + n10 - (n01 - n10) ** 2 / n, 0.0)) / n)


@register_method("auto", options=AutoOptions, order=6,
                 summary="pick among candidates and their fusions on validation, per fold")
class AutoMethod(Method):
    """See the module docstring."""

    def __init__(self, spec, options):
        from soundlib.methods import build_method

        super().__init__(spec, options)
        self.notes: list[str] = []
        self.candidates: list[Method] = []
        for c in options.candidates:
            method = build_method(c)
            try:
                reason = method.unavailable()
            except SoundlibError as exc:
                reason = str(exc)
            if reason:
                self.notes.append(f"candidate {c.name!r} left out: {reason}")
            else:
                self.candidates.append(method)
        if not self.candidates:
            raise ConfigError(f"method {spec.name!r}: no candidate can run here ({'; '.join(self.notes)})")
        self._fusions: list[tuple[Any, Features]] = []

    @classmethod
    def cache_units(cls, spec, variant, backbone: str) -> "list[CacheUnit]":
        from soundlib.methods import build_method, cache_units

        units = []
        for c in spec.options.candidates:
            try:
                if build_method(c).unavailable():
                    continue
            except SoundlibError:
                continue
            units += list(cache_units(c, variant, backbone).values())
        return units

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        from soundlib.methods.fusion import FusionMethod

        self._dataset = dataset
        kept, self._feats = [], []
        for m in self.candidates:
            try:
                self._feats.append(m.prepare(dataset, member_context(ctx, m.spec, dataset)))
                kept.append(m)
            except SoundlibError as exc:
                self.notes.append(f"candidate {m.spec.name!r} left out: {exc}")
        if not kept:
            raise SoundlibError(f"method {self.spec.name!r}: no candidate could prepare its features: "
                                f"{'; '.join(self.notes)}")
        self.candidates = kept
        self._fusions = []
        if self.options.fusions and len(kept) >= 2:
            late = FusionMethod.of("late_fusion", kept, mode="late")
            self._fusions.append((late, late.features_from(self._feats, dataset)))
            emb = [(m, f) for m, f in zip(kept, self._feats) if m.embeds]
            if len(emb) >= 2:
                early = FusionMethod.of("early_fusion", [m for m, _ in emb], mode="early")
                self._fusions.append((early, early.features_from([f for _, f in emb], dataset)))
        n = len(dataset.clips)
        return Features(np.zeros((n, 0), np.float32), np.arange(n), n,
                        info={"candidates": {m.spec.name: f.info for m, f in zip(kept, self._feats)},
                              "notes": list(self.notes)})

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        fits: dict[str, tuple[Method, Features, FoldFit]] = {}
        notes = list(self.notes)
        t0 = time.perf_counter()
        for m, f in zip(self.candidates, self._feats):
            if self.options.budget_seconds and time.perf_counter() - t0 > self.options.budget_seconds:
                notes.append(f"candidate {m.spec.name!r} skipped on this fold: the {self.options.budget_seconds:g}-s "
                             "budget was spent")
                continue
            try:
                fits[m.spec.name] = (m, f, m.fit(f, split, y, member_context(ctx, m.spec, self._dataset)))
            except SoundlibError as exc:
                notes.append(f"candidate {m.spec.name!r} failed on this fold: {exc}")
        for fusion, ff in self._fusions:
            if all(m.spec.name in fits for m in fusion.members):
                member_fits = [fits[m.spec.name][2] for m in fusion.members]
                fits[fusion.spec.name] = (fusion, ff, fusion.fit_from(member_fits, ff, split, y, ctx))
        if not fits:
            raise SoundlibError(f"method {self.spec.name!r}: every candidate failed: {'; '.join(notes)}")
        best = max(fits, key=lambda n: fits[n][2].val_accuracy)  # first best in candidate order
        name, rule = best, "best validation accuracy"
        if "late_fusion" in fits and best != "late_fusion" and self.options.tolerance > 0:
            late, top = fits["late_fusion"][2], fits[best][2]
            se = paired_se(top.val_proba, late.val_proba, y[split.val])
            if top.val_accuracy - late.val_accuracy <= self.options.tolerance * se:
                name = "late_fusion"
                rule = (f"late fusion kept: {best!r} is ahead by {top.val_accuracy - late.val_accuracy:.4f}, within "
                        f"{self.options.tolerance:g} paired SE ({se:.4f})")
        method, mfeats, fit = fits[name]
        return FoldFit(model=(method, mfeats, fit), val_proba=fit.val_proba, val_accuracy=fit.val_accuracy,
                       choice={"picked": name, "rule": rule, "picked_choice": fit.choice,
                               "val_accuracy": {n: round(v[2].val_accuracy, 4) for n, v in fits.items()},
                               "fit_seconds": {n: v[2].seconds for n, v in fits.items()},
                               "notes": notes})

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        method, mfeats, mfit = fit.model
        return method.predict(mfit, mfeats, clips, member_context(ctx, method.spec, self._dataset))
