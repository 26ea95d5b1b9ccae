"""``auto`` (the default method): inside each training fold, pick the method that does best by grouped
k-fold cross-validation on the training folds alone.

The training clips are split into ``inner_folds`` folds by recording (stratified by label,
seeded); every candidate is fitted on each inner training part (with its own validation split
for its own hyperparameters) and predicts the held-out inner fold, so that every training clip is
scored once by a model that did not see its recording. With ``fusions: true`` a late fusion of all
candidates (weights chosen on the same clips) and an early fusion of the embedding candidates join
them. ``inner_folds: 1`` falls back to one grouped validation split (soundlib 0.2's rule). The test
fold is never looked at.

The pick: the best pooled accuracy, except that the late fusion is kept when the best single
candidate beats it by no more than the noise of the comparison (``tolerance`` paired standard errors
of the difference in accuracy on the same clips): an average of the candidates is the choice that holds
better on data not seen (measured in the README). The picked method is then fitted on the whole
training folds as it would be alone. What was picked, why, and every candidate's accuracy is recorded
per fold (``metrics.json``, ``results.json``, the command's last line, the model card).

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
from soundlib.methods.base import (CacheUnit, Context, Features, FoldFit, FoldSplit, Method, ModelArtifact, member_context,
                                   timed)

__all__ = ["AutoOptions", "AutoMethod", "paired_se", "DEFAULT_CANDIDATES", "inner_splits"]

#: What ``auto`` (the default method) chooses among when not told: audio networks, the speech model,
#: pictures on the embedded backbone, and the MFCC statistics. Candidates that cannot run here are left out.
DEFAULT_CANDIDATES: tuple[str, ...] = ("mn04", "yamnet", "speech", "frozen", "mfcc")


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
    inner_folds : int
        Grouped folds of the training clips on which the candidates are compared (1: one grouped
        validation split, as in soundlib 0.2).

    The default candidates are the installed embedders whose weights are not known to be
    non-commercial, cheapest heads on cached embeddings: ``birdnet`` (CC BY-NC-SA) and the trained
    networks (``scratch``, ``finetune``) are opt-in.
    """

    candidates: tuple[Any, ...] = DEFAULT_CANDIDATES
    fusions: bool = True
    tolerance: float = 1.0
    budget_seconds: float = 0.0
    inner_folds: int = 3

    def resolve(self, *, where: str) -> "AutoOptions":
        from soundlib.methods import resolve_method

        if not 1 <= self.inner_folds <= 20:
            raise ConfigError(f"{where}: inner_folds must be in [1, 20], got {self.inner_folds}")
        if not 0 <= self.tolerance <= 10:
            raise ConfigError(f"{where}: tolerance must be in [0, 10] standard errors, got {self.tolerance}")
        if self.budget_seconds < 0:
            raise ConfigError(f"{where}: budget_seconds must be >= 0 (0: no limit), got {self.budget_seconds}")
        from soundlib.embedders import embedder_names
        from soundlib.methods import method_kinds

        known = set(method_kinds()) | set(embedder_names())
        # a default candidate whose module is not in this installation (an embedder not registered) is left out;
        # one the user named is an error
        named = [c for c in self.candidates if not (self.candidates is DEFAULT_CANDIDATES and c not in known)]
        cands = tuple(resolve_method(c, where=f"{where}: candidates") for c in named)
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

    exportable = True

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

    def _fit_all(self, split: FoldSplit, y: np.ndarray, ctx: Context, notes: list[str], t0: float,
                 only: set[str] | None = None) -> "dict[str, tuple[Method, Features, FoldFit]]":
        """Every candidate (and fusion) fitted on ``split``; failures and skips go to ``notes``."""
        fits: dict[str, tuple[Method, Features, FoldFit]] = {}
        for m, f in zip(self.candidates, self._feats):
            if only is not None and m.spec.name not in only:
                continue
            if self.options.budget_seconds and time.perf_counter() - t0 > self.options.budget_seconds:
                notes.append(f"candidate {m.spec.name!r} skipped on this fold: the {self.options.budget_seconds:g}-s "
                             "budget was spent")
                continue
            try:
                fits[m.spec.name] = (m, f, m.fit(f, split, y, member_context(ctx, m.spec, self._dataset)))
            except SoundlibError as exc:
                notes.append(f"candidate {m.spec.name!r} failed on this fold: {exc}")
        for fusion, ff in self._fusions:
            if only is not None and fusion.spec.name not in only:
                continue
            if all(m.spec.name in fits for m in fusion.members):
                member_fits = [fits[m.spec.name][2] for m in fusion.members]
                fits[fusion.spec.name] = (fusion, ff, fusion.fit_from(member_fits, ff, split, y, ctx))
        return fits

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        notes = list(self.notes)
        t0 = time.perf_counter()
        inner = inner_splits(split, y, ctx.groups, k=self.options.inner_folds, seed=getattr(ctx.train, "seed", 0))
        if inner:
            # every training clip scored once by each candidate trained without its recording
            scored = np.concatenate([s.test for s in inner])
            pooled: dict[str, list[np.ndarray]] = {}
            for s_k in inner:
                for name, (m, f, f_k) in self._fit_all(s_k, y, ctx, notes, t0).items():
                    pooled.setdefault(name, []).append(
                        m.predict(f_k, f, s_k.test, member_context(ctx, m.spec, self._dataset)))
            scores = {n: np.concatenate(v) for n, v in pooled.items() if len(v) == len(inner)}
            protocol = f"grouped {len(inner)}-fold cross-validation on the training folds ({len(scored)} clips)"
        else:
            scored = split.val
            scores = {}
            protocol = f"one grouped validation split ({len(split.val)} clips)"
        if inner and not scores:
            raise SoundlibError(f"method {self.spec.name!r}: every candidate failed: {'; '.join(notes)}")
        if inner:
            yv = y[scored]
            acc = {n: float(np.mean(p.argmax(1) == yv)) if len(yv) else 0.0 for n, p in scores.items()}
            name, rule = self._pick(acc, scores, yv)
            fits = self._fit_all(split, y, ctx, notes, t0, only={name} | {m.spec.name for f_, _ in self._fusions
                                                                        if f_.spec.name == name for m in f_.members})
            if name not in fits:
                raise SoundlibError(f"method {self.spec.name!r}: the pick {name!r} failed on the training folds: "
                                    f"{'; '.join(notes)}")
        else:
            fits = self._fit_all(split, y, ctx, notes, t0)
            if not fits:
                raise SoundlibError(f"method {self.spec.name!r}: every candidate failed: {'; '.join(notes)}")
            acc = {n: v[2].val_accuracy for n, v in fits.items()}
            name, rule = self._pick(acc, {n: v[2].val_proba for n, v in fits.items()}, y[split.val])
        method, mfeats, fit = fits[name]
        export = name
        if not method.exportable:  # a fusion: the model to export is the best single candidate that can be
            ranked = [n for n in sorted(acc, key=lambda n: -acc[n])
                      if n in {m.spec.name for m in self.candidates if m.exportable}]
            if ranked:
                export = ranked[0]
                if export not in fits:
                    fits.update(self._fit_all(split, y, ctx, notes, t0, only={export}))
                if export not in fits:
                    export = ""
            else:
                export = ""
        return FoldFit(model=(method, mfeats, fit, fits.get(export)), val_proba=fit.val_proba,
                       val_accuracy=fit.val_accuracy,
                       choice={"picked": name, "rule": rule, "protocol": protocol, "picked_choice": fit.choice,
                               "exported": export or None,
                               "val_accuracy": {n: round(v, 4) for n, v in acc.items()},
                               "fit_seconds": round(time.perf_counter() - t0, 2),
                               "notes": notes})

    def _pick(self, acc: dict[str, float], proba: dict[str, np.ndarray], y: np.ndarray) -> tuple[str, str]:
        """The best accuracy (first in candidate order on ties), or the late fusion within the noise."""
        best = max(acc, key=lambda n: acc[n])
        name, rule = best, f"best accuracy ({acc[best]:.4f})"
        if "late_fusion" in acc and best != "late_fusion" and self.options.tolerance > 0:
            se = paired_se(proba[best], proba["late_fusion"], y)
            if acc[best] - acc["late_fusion"] <= self.options.tolerance * se:
                name = "late_fusion"
                rule = (f"late fusion kept: {best!r} is ahead by {acc[best] - acc['late_fusion']:.4f}, within "
                        f"{self.options.tolerance:g} paired SE ({se:.4f})")
        return name, rule

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        method, mfeats, mfit = fit.model[:3]
        return method.predict(mfit, mfeats, clips, member_context(ctx, method.spec, self._dataset))

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> ModelArtifact:
        """The picked method's model; when the pick is a fusion (which cannot be exported as one model), the
        best single candidate's. The card and ``info`` name the pick, the rule and what was exported."""
        from soundlib.errors import ModelError

        exported = fit.model[3]
        if exported is None:
            raise ModelError(f"method {self.spec.name!r} picked {fit.choice['picked']!r}, which cannot be exported, "
                             "and no exportable candidate was fitted; train with --method mn04 (or frozen, finetune, "
                             "scratch) to get a model")
        method, _, mfit = exported
        pick, chosen = fit.choice["picked"], method.spec.name
        why = fit.choice["rule"] if pick == chosen else (
            f"picked {pick} ({fit.choice['rule']}); exported its best single exportable candidate {chosen} "
            "(a fusion is not one model)")
        art = method.artifact(mfit, member_context(ctx, method.spec, self._dataset), metadata={
            **metadata, "auto": {"picked": pick, "exported": chosen, "rule": fit.choice["rule"],
                                 "protocol": fit.choice.get("protocol"), "accuracy": fit.choice.get("val_accuracy")}})
        inputs = dict(art.inputs)
        key = "metadata" if "metadata" in inputs else "info"
        record = dict(inputs.get(key) or {})
        record["method"] = {**(record.get("method") or {}), "name": f"auto: {chosen}", "why": why}
        inputs[key] = record
        return ModelArtifact(art.kind, inputs)


def inner_splits(split: FoldSplit, y: np.ndarray, groups: Any, *, k: int, seed: int) -> list[FoldSplit]:
    """Grouped, label-stratified ``k``-fold splits of ``split.train``: each inner fold is the ``test`` of one
    split, whose training part keeps its own grouped validation split for the methods' hyperparameters
    (the held-out inner fold is never used to choose them). Empty when ``k < 2`` or when the training
    clips hold fewer than ``k`` recordings."""
    from sklearn.model_selection import StratifiedGroupKFold

    from soundlib.audio.folds import grouped_validation_split

    train = np.asarray(split.train)
    g = np.asarray([groups[int(i)] for i in train]) if len(groups) else np.asarray([str(i) for i in train])
    k = min(k, len(set(g.tolist())))
    if k < 2:
        return []
    import warnings

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "The least populated class has only n members"
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(train, y[train], g)
        for fit_idx, val_idx in folds:
            inner_train = train[fit_idx]
            share = len(split.val) / max(len(split.train), 1) or 0.2
            f_i, v_i = grouped_validation_split(g[fit_idx].tolist(), share, seed=seed)
            out.append(FoldSplit(train=inner_train, fit=inner_train[f_i], val=inner_train[v_i], test=train[val_idx]))
    return out
