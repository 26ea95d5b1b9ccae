"""``mfcc``: the classic control. MFCC statistics per window, standardized, logistic regression.

``features: basic`` is the textbook baseline: 40 MFCCs and their deltas,
mean and standard deviation over time (160 numbers per window). ``features:
rich`` adds second deltas, more statistics (min, max, median, skew, kurtosis)
and spectral descriptors (contrast, centroid, bandwidth, roll-off, flatness,
zero-crossing rate, RMS, chroma) and log-mel band means and deviations.
The windows are the variant's (``duration``, ``window_hop``), without padding:
a short clip's statistics are over its own audio. The statistics come from the
``mfcc`` embedder (:mod:`soundlib.embedders.mfcc`), so ``frozen`` with
``--backbone mfcc`` is the same method with the default statistics, and exports
the same model: a logistic head on the ``mfcc`` embedder (the default statistics
only: a model names a registered embedder, and ``mfcc`` is the basic 40).
"""

from __future__ import annotations

import dataclasses

from soundlib.audio.datasets import Dataset
from soundlib.embedders.mfcc import FEATURE_SETS, MfccEmbedder, mfcc_statistics
from soundlib.errors import ConfigError
from soundlib.methods import register_method
from soundlib.methods.base import CacheUnit, Context, Features, FoldFit, ModelArtifact, embedder_features
from soundlib.methods.heads import DEFAULT_CS, HeadMethod

__all__ = ["MfccOptions", "MfccMethod", "mfcc_statistics"]


@dataclasses.dataclass(frozen=True)
class MfccOptions:
    """Options of ``mfcc``.

    Attributes
    ----------
    n_mfcc : int
        Cepstral coefficients.
    features : {"basic", "rich"}
    Cs : tuple of float
        The inverse regularization strengths tried on validation.
    calibrate : bool
        Calibrate the head's probabilities on validation (see :mod:`soundlib.methods.heads`).
    """

    n_mfcc: int = 40
    features: str = "basic"
    Cs: tuple[float, ...] = DEFAULT_CS
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.features not in FEATURE_SETS:
            raise ConfigError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        if not 1 <= self.n_mfcc <= 128:
            raise ConfigError(f"n_mfcc must be in [1, 128], got {self.n_mfcc}")

    def embedder(self) -> MfccEmbedder:
        return MfccEmbedder(n_mfcc=self.n_mfcc, features=self.features)


@register_method("mfcc", options=MfccOptions, order=3, summary="MFCC statistics + logistic head (the classic control)")
class MfccMethod(HeadMethod):
    """See the module docstring."""

    @property
    def embeds(self) -> bool:
        return True

    @property
    def exportable(self) -> bool:  # type: ignore[override]
        """A model on the default statistics: those of the registered ``mfcc`` embedder, which the model names."""
        from soundlib.embedders import resolve_embedder

        return self.options.embedder().identity == resolve_embedder("mfcc").identity

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> ModelArtifact:
        """The logistic head on the ``mfcc`` embedder (what ``frozen --backbone mfcc`` exports)."""
        if not self.exportable:
            return super().artifact(fit, ctx, metadata=metadata)
        from soundlib.embedders import resolve_embedder

        calibration = {"temperature": float(fit.model.temperature),
                       "method": "temperature scaling fitted on the validation recordings" if self.options.calibrate
                       else "none (calibrate: false)"}
        return ModelArtifact("embedder_head", dict(
            embedder=resolve_embedder("mfcc"), head=fit.model, spec=ctx.spec, options={}, labels=list(ctx.classes),
            info={**metadata, "calibration": calibration, "method": self.spec.to_dict()}))

    @classmethod
    def cache_units(cls, spec, variant, backbone: str) -> "list[CacheUnit]":
        o = spec.options
        defaults = MfccOptions()
        options = {k: getattr(o, k) for k in ("features", "n_mfcc") if getattr(o, k) != getattr(defaults, k)}
        return [CacheUnit.of(spec, variant, backbone, o.embedder(), options)]

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        feats = embedder_features(dataset, self.options.embedder(), ctx)
        feats.info.update(features=self.options.features, n_mfcc=self.options.n_mfcc)
        return feats
