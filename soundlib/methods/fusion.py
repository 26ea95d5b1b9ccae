"""``fusion``: several methods (backbones, variants) combined, chosen on validation only.

* ``mode: early`` — the members' embeddings (one row per clip: the mean of its
  windows), each standardized, concatenated into one logistic-regression head
  whose C is chosen on validation. Members must be embedding methods
  (``frozen`` with the logistic head, ``mfcc``, ``birdnet``).
* ``mode: late`` — every member is fitted on its own; their clip
  probabilities are averaged with weights chosen on the validation clips (a
  grid over the simplex, step 0.1; ties keep equal weights).

Members name a method and, optionally, their own variant and backbone::

    {name: bn+mel, method: fusion, mode: early,
     members: [birdnet, {method: frozen, variant: mel}, {method: frozen, variant: linear}]}
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import ConfigError
from .base import Context, Features, FoldFit, FoldSplit, Method, accuracy, member_context, timed
from .heads import DEFAULT_CS, fit_logistic_head

__all__ = ["FusionOptions", "FusionMethod", "weight_grid", "best_weights"]

MODES = ("early", "late")
#: Kinds whose features are embeddings an early fusion can concatenate.
EMBEDDING_KINDS = ("frozen", "mfcc", "birdnet")


@dataclasses.dataclass(frozen=True)
class FusionOptions:
    """Options of ``fusion``.

    Attributes
    ----------
    members : tuple
        Method names or mappings (resolved to :class:`~soundlib.methods.MethodSpec`).
    mode : {"early", "late"}
    Cs : tuple of float
        The early fusion head's inverse regularization strengths.
    """

    members: tuple[Any, ...] = ("frozen", "mfcc")
    mode: str = "late"
    Cs: tuple[float, ...] = DEFAULT_CS

    def resolve(self, *, where: str) -> "FusionOptions":
        """Members resolved into method specs (checked: at least two, unique names, early = embeddings)."""
        from . import resolve_method

        if self.mode not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        members = tuple(resolve_method(m, where=f"{where}: members") for m in self.members)
        names = [m.name + (f"@{m.variant.name}" if m.variant is not None else "") for m in members]
        if len(members) < 2:
            raise ConfigError(f"{where}: a fusion needs at least two members, got {len(members)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: members repeat: {names}")
        if self.mode == "early":
            bad = [m.name for m in members if m.kind not in EMBEDDING_KINDS
                   or (m.kind == "frozen" and m.options.head != "logistic")]
            if bad:
                raise ConfigError(f"{where}: early fusion concatenates embeddings; {bad} are not embedding methods "
                                  f"({', '.join(EMBEDDING_KINDS)}; frozen with head: logistic)")
        return dataclasses.replace(self, members=members)


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Weights of ``n`` members on the simplex, every multiple of ``step``; equal weights first."""
    k = int(round(1 / step))
    grid = [tuple(c / k for c in combo) for combo in itertools.product(range(k + 1), repeat=n) if sum(combo) == k]
    return [tuple([1.0 / n] * n)] + grid


def best_weights(val_probas: list[np.ndarray], y: np.ndarray) -> tuple[tuple[float, ...], float]:
    """The weights (and accuracy) maximising validation accuracy of the weighted average (first best wins)."""
    best, best_acc = None, -1.0
    for w in weight_grid(len(val_probas), 0.1 if len(val_probas) <= 4 else 0.25):
        acc = accuracy(sum(wi * p for wi, p in zip(w, val_probas)), y)
        if acc > best_acc + 1e-12:
            best, best_acc = w, acc
    return best, best_acc


class FusionMethod(Method):
    """See the module docstring."""

    kind = "fusion"

    def __init__(self, spec, options):
        from . import build_method

        super().__init__(spec, options)
        self.members = [build_method(m) for m in options.members]

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        feats = [m.prepare(dataset, member_context(ctx, m.spec, dataset)) for m in self.members]
        self._member_feats = feats
        self._dataset = dataset
        info = {m.spec.name: f.info for m, f in zip(self.members, feats)}
        if self.options.mode == "early":
            blocks = [f.clip_means() for f in feats]
            return Features(np.concatenate(blocks, axis=1), np.arange(len(dataset.clips)), len(dataset.clips),
                            info={"members": info, "dims": [b.shape[1] for b in blocks]})
        return Features(np.zeros((len(dataset.clips), 0), np.float32), np.arange(len(dataset.clips)),
                        len(dataset.clips), info={"members": info})

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        if self.options.mode == "early":
            fit = fit_logistic_head(feats, split, y, n_classes=ctx.n_classes, Cs=self.options.Cs,
                                    how=ctx.aggregate, seed=ctx.train.seed)
            fit.choice.update(mode="early", members=[m.spec.name for m in self.members])
            return fit
        fits = [m.fit(f, split, y, member_context(ctx, m.spec, self._dataset))
                for m, f in zip(self.members, self._member_feats)]
        weights, acc = best_weights([f.val_proba for f in fits], y[split.val])
        val = sum(w * f.val_proba for w, f in zip(weights, fits))
        return FoldFit(model=(fits, weights), val_proba=np.asarray(val, np.float32), val_accuracy=acc,
                       choice={"mode": "late", "weights": {m.spec.name: w for m, w in zip(self.members, weights)},
                               "member_val_accuracy": {m.spec.name: round(f.val_accuracy, 4)
                                                       for m, f in zip(self.members, fits)}})

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        if self.options.mode == "early":
            return fit.model.predict_proba(feats.x[clips])
        fits, weights = fit.model
        probas = [m.predict(f, mf, clips, member_context(ctx, m.spec, self._dataset))
                  for m, f, mf in zip(self.members, fits, self._member_feats)]
        return np.asarray(sum(w * p for w, p in zip(weights, probas)), np.float32)
