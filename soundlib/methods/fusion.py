"""``fusion``: several methods (embedders, variants) combined, chosen on validation only.

* ``mode: early`` — the members' embeddings (one row per clip: the mean of its
  windows), each standardized, concatenated into one logistic-regression head
  whose C is chosen on validation. Members must be embedding methods
  (``frozen`` with the logistic head on any embedder, ``mfcc``).
* ``mode: late`` — every member is fitted on its own; their clip
  probabilities are averaged with weights chosen on the validation clips
  (:func:`best_weights`: every point of a 0.1 grid over the simplex for up to
  three members; greedy forward selection with replacement beyond, so the
  search grows linearly with the members; ties keep equal weights).

Members name a method or an embedder (``mn04`` is ``frozen`` on mn04) and, optionally, their own
variant and backbone; a picture embedder and a waveform embedder fuse like any two::

    {name: mn04+yamnet, method: fusion, mode: late, members: [mn04, yamnet, {method: frozen, variant: mel}]}

Other methods build fusions of methods they already prepared and fitted through the public
:meth:`FusionMethod.of`, :meth:`FusionMethod.features_from` and :meth:`FusionMethod.fit_from`
(``auto`` does).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.errors import ConfigError, SoundlibError
from soundlib.methods import register_method
from soundlib.methods.base import CacheUnit, Context, Features, FoldFit, FoldSplit, Method, accuracy, member_context, timed
from soundlib.methods.heads import DEFAULT_CS, fit_logistic_head

__all__ = ["FusionOptions", "FusionMethod", "weight_grid", "best_weights"]

MODES = ("early", "late")
#: Members up to which the late fusion tries every point of the weight grid.
EXHAUSTIVE_MEMBERS = 3
#: Steps of the greedy weight search beyond that (weights are multiples of 1/GREEDY_STEPS).
GREEDY_STEPS = 20


@dataclasses.dataclass(frozen=True)
class FusionOptions:
    """Options of ``fusion``.

    Attributes
    ----------
    members : tuple
        Method or embedder names, or mappings (resolved to :class:`~soundlib.methods.MethodSpec`).
    mode : {"early", "late"}
    Cs : tuple of float
        The early fusion head's inverse regularization strengths.
    calibrate : bool
        Calibrate on validation: the early fusion head's temperature (see :mod:`soundlib.methods.heads`), and one
        temperature on the late fusion's averaged probabilities.
    """

    members: tuple[Any, ...] = ("frozen", "mfcc")
    mode: str = "late"
    Cs: tuple[float, ...] = DEFAULT_CS
    calibrate: bool = True

    def resolve(self, *, where: str) -> "FusionOptions":
        """Members resolved into method specs (checked: at least two, unique names, early = embeddings)."""
        from soundlib.methods import build_method, resolve_method

        if self.mode not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        members = tuple(resolve_method(m, where=f"{where}: members") for m in self.members)
        names = [m.name + (f"@{m.variant.name}" if m.variant is not None else "") for m in members]
        if len(members) < 2:
            raise ConfigError(f"{where}: a fusion needs at least two members, got {len(members)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: members repeat: {names}")
        if self.mode == "early":
            bad = [m.name for m in members if not build_method(m).embeds]
            if bad:
                raise ConfigError(f"{where}: early fusion concatenates embeddings; {bad} are not embedding methods "
                                  "(frozen with head: logistic on any embedder, mfcc)")
        return dataclasses.replace(self, members=members)


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Weights of ``n`` members on the simplex, every multiple of ``step``; equal weights first."""
    k = int(round(1 / step))
    grid = [tuple(c / k for c in combo) for combo in itertools.product(range(k + 1), repeat=n) if sum(combo) == k]
    return [tuple([1.0 / n] * n)] + grid


def _greedy_weights(val_probas: list[np.ndarray], y: np.ndarray) -> tuple[float, ...]:
    """Forward selection with replacement (Caruana et al. 2004): add, :data:`GREEDY_STEPS` times, the
    member that most improves validation accuracy (ties: validation log-likelihood, then member order)."""
    counts = np.zeros(len(val_probas))
    total = np.zeros_like(val_probas[0], dtype=np.float64)

    def score(p: np.ndarray) -> tuple[float, float]:
        return accuracy(p, y), float(np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))

    for step in range(1, GREEDY_STEPS + 1):
        scores = [score((total + p) / step) for p in val_probas]
        best = max(range(len(val_probas)), key=lambda i: (scores[i], -i))
        counts[best] += 1
        total += val_probas[best]
    return tuple(float(c) / GREEDY_STEPS for c in counts)


def best_weights(val_probas: list[np.ndarray], y: np.ndarray) -> tuple[tuple[float, ...], float]:
    """The weights (and accuracy) maximising validation accuracy of the weighted average.

    Up to :data:`EXHAUSTIVE_MEMBERS` members: every point of the 0.1 grid (first best wins, equal weights
    first); more members: equal weights or the greedy selection, whichever is better (equal on a tie).
    The work grows polynomially with the members.
    """
    n = len(val_probas)
    candidates = weight_grid(n, 0.1) if n <= EXHAUSTIVE_MEMBERS else [tuple([1.0 / n] * n),
                                                                      _greedy_weights(val_probas, y)]
    best, best_acc = candidates[0], -1.0
    for w in candidates:
        acc = accuracy(np.sum([wi * p for wi, p in zip(w, val_probas)], axis=0), y)
        if acc > best_acc + 1e-12:
            best, best_acc = w, acc
    return best, best_acc


@register_method("fusion", options=FusionOptions, order=5,
                 summary="members' embeddings in one head (early) or probabilities averaged (late)")
class FusionMethod(Method):
    """See the module docstring."""

    def __init__(self, spec, options):
        from soundlib.methods import build_method

        super().__init__(spec, options)
        self.members: list[Method] = [build_method(m) for m in options.members]
        self._member_feats: list[Features] = []
        self._dataset: Dataset | None = None

    @classmethod
    def of(cls, name: str, members: Sequence[Method], *, mode: str, Cs: tuple[float, ...] = DEFAULT_CS
           ) -> "FusionMethod":
        """A fusion of methods already built (their features and fits can then be reused)."""
        from soundlib.methods import MethodSpec

        options = FusionOptions(members=tuple(m.spec for m in members), mode=mode, Cs=Cs)
        fusion = cls.__new__(cls)
        Method.__init__(fusion, MethodSpec(name, "fusion", options), options)
        fusion.members = list(members)
        fusion._member_feats, fusion._dataset = [], None
        return fusion

    @classmethod
    def cache_units(cls, spec, variant, backbone: str) -> "list[CacheUnit]":
        from soundlib.methods import cache_units

        return [u for m in spec.options.members for u in cache_units(m, variant, backbone).values()]

    def features_from(self, member_feats: Sequence[Features], dataset: Dataset) -> Features:
        """The fusion's features from its members' prepared features (nothing is computed again)."""
        self._member_feats, self._dataset = list(member_feats), dataset
        info = {m.spec.name: f.info for m, f in zip(self.members, member_feats)}
        n = len(dataset.clips)
        if self.options.mode == "early":
            blocks = [f.clip_means() for f in member_feats]
            return Features(np.concatenate(blocks, axis=1), np.arange(n), n,
                            info={"members": info, "dims": [b.shape[1] for b in blocks]})
        return Features(np.zeros((n, 0), np.float32), np.arange(n), n, info={"members": info})

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        return self.features_from([m.prepare(dataset, member_context(ctx, m.spec, dataset)) for m in self.members],
                                  dataset)

    def fit_from(self, member_fits: Sequence[FoldFit], feats: Features, split: FoldSplit, y: np.ndarray,
                 ctx: Context) -> FoldFit:
        """Fit the fusion reusing its members' fits on this fold (late: only the weights are chosen)."""
        if self.options.mode == "early":
            return self.fit(feats, split, y, ctx)
        weights, acc = best_weights([f.val_proba for f in member_fits], y[split.val])
        val = sum(w * f.val_proba for w, f in zip(weights, member_fits))
        # an average of calibrated members is less confident than it is right: one temperature on the fused
        # probabilities, fitted on the same validation clips (1 without calibrate, or without validation clips)
        temperature = _fused_temperature(np.asarray(val), y[split.val]) if self.options.calibrate else 1.0
        val = _sharpen(np.asarray(val), temperature)
        return FoldFit(model=(list(member_fits), weights, temperature), val_proba=np.asarray(val, np.float32),
                       val_accuracy=acc,
                       choice={"mode": "late", "weights": {m.spec.name: w for m, w in zip(self.members, weights)},
                               "temperature": round(temperature, 4),
                               "member_val_accuracy": {m.spec.name: round(f.val_accuracy, 4)
                                                       for m, f in zip(self.members, member_fits)}})

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        if self.options.mode == "early":
            fit = fit_logistic_head(feats, split, y, n_classes=ctx.n_classes, Cs=self.options.Cs,
                                    how=ctx.aggregate, seed=ctx.train.seed, calibrate=self.options.calibrate)
            fit.choice.update(mode="early", members=[m.spec.name for m in self.members])
            return fit
        fits = [m.fit(f, split, y, self._member_ctx(ctx, m)) for m, f in zip(self.members, self._member_feats)]
        return self.fit_from(fits, feats, split, y, ctx)

    def _member_ctx(self, ctx: Context, member: Method) -> Context:
        if self._dataset is None:
            raise SoundlibError(f"fusion {self.spec.name!r}: prepare (or features_from) comes before fit and predict")
        return member_context(ctx, member.spec, self._dataset)

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        if self.options.mode == "early":
            return fit.model.predict_proba(feats.x[clips])
        fits, weights, temperature = fit.model
        probas = [m.predict(f, mf, clips, self._member_ctx(ctx, m))
                  for m, f, mf in zip(self.members, fits, self._member_feats)]
        return np.asarray(_sharpen(np.asarray(sum(w * p for w, p in zip(weights, probas))), temperature), np.float32)


def _fused_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature of the fused probabilities (their logs as logits) minimising the validation NLL."""
    from soundlib.methods.heads import fit_temperature

    if proba.ndim != 2 or not len(proba) or np.asarray(y).ndim != 1:
        return 1.0
    rows = np.arange(len(proba))
    return fit_temperature(np.log(np.clip(proba, 1e-12, 1.0)), rows, rows, np.asarray(y))


def _sharpen(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(proba) / temperature)`` (``proba`` itself at temperature 1)."""
    if temperature == 1.0 or proba.ndim != 2 or not len(proba):
        return proba
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
