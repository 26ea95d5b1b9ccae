"""Merge feature pictures: channels of one image, or stacked panels.

The seed's merged picture puts the spectrogram and the waveform into two colour
channels of one image and fills the third with a constant background (green by
default). :class:`MergeSpec` controls the channel *order*, each channel's
*strength*, and seeded random *variability* (jitter) of the strengths.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from soundlib.config import check_finite
from soundlib.errors import FeatureError

__all__ = ["MergeSpec", "CHANNEL_SOURCES", "merge_channels", "stack_panels", "jittered_strengths"]

#: Names a merged image's channels can take, in ``MergeSpec.order``.
CHANNEL_SOURCES = ("spectrogram", "waveform", "background")


@dataclasses.dataclass(frozen=True)
class MergeSpec:
    """How channel planes become one RGB picture.

    Attributes
    ----------
    order : tuple of str
        Source for the R, G and B channels, a permutation of
        ``("spectrogram", "waveform", "background")``. The default puts the
        constant background in green, as in the seed.
    strengths : tuple of float
        Multiplier of each output channel (R, G, B, i.e. of the sources in
        ``order``); each in [0, 1].
    jitter : float
        Relative random variation of each strength per clip, in [0, 1): a
        strength ``s`` becomes ``s * (1 + u)``, ``u ~ U(-jitter, jitter)``, clipped to [0, 1].
    seed : int
        Seed of the jitter; combined with the clip's content so the same clip
        always gets the same picture.
    stack_ratio : float
        For stacked pictures: the share of the height given to the top panel.
    """

    order: tuple[str, str, str] = ("spectrogram", "background", "waveform")
    strengths: tuple[float, float, float] = (1.0, 1.0, 0.5)
    jitter: float = 0.0
    seed: int = 0
    stack_ratio: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))
        object.__setattr__(self, "strengths", tuple(float(s) for s in self.strengths))
        check_finite(self, "merge spec")
        if sorted(self.order) != sorted(CHANNEL_SOURCES):
            raise FeatureError(
                f"merge order {list(self.order)} must be a permutation of {list(CHANNEL_SOURCES)}"
            )
        if len(self.strengths) != 3 or not all(0.0 <= s <= 1.0 for s in self.strengths):
            raise FeatureError(f"merge strengths {list(self.strengths)} must be three numbers in [0, 1]")
        if not 0.0 <= self.jitter < 1.0:
            raise FeatureError(f"merge jitter {self.jitter} must be in [0, 1)")
        if not 0.05 <= self.stack_ratio <= 0.95:
            raise FeatureError(f"stack_ratio {self.stack_ratio} must be in [0.05, 0.95]")


def jittered_strengths(spec: MergeSpec, *, clip_seed: int = 0) -> tuple[float, float, float]:
    """The per-source strengths for one clip (the spec's, varied by the seeded jitter)."""
    s = np.asarray(spec.strengths, dtype=np.float64)
    if spec.jitter > 0:
        rng = np.random.default_rng([spec.seed, clip_seed])
        s = np.clip(s * (1.0 + rng.uniform(-spec.jitter, spec.jitter, size=3)), 0.0, 1.0)
    return tuple(float(v) for v in s)  # type: ignore[return-value]


def merge_channels(
    planes: Mapping[str, np.ndarray], *, spec: MergeSpec = MergeSpec(), clip_seed: int = 0
) -> np.ndarray:
    """Combine 2-D planes in [0, 1] into one (H, W, 3) uint8 picture.

    ``planes`` maps ``"spectrogram"`` and ``"waveform"`` to equally sized float
    arrays in [0, 1]; ``"background"`` may be omitted (a constant plane of ones).
    """
    shapes = {k: np.shape(v) for k, v in planes.items()}
    ref = shapes.get("spectrogram") or next(iter(shapes.values()))
    if len(ref) != 2 or any(s != ref for s in shapes.values()):
        raise FeatureError(f"merge_channels needs 2-D planes of one shape, got {shapes}")
    strengths = jittered_strengths(spec, clip_seed=clip_seed)
    out = np.empty(ref + (3,), dtype=np.float32)
    for c, source in enumerate(spec.order):
        plane = planes.get(source)
        if plane is None:
            if source != "background":
                raise FeatureError(f"merge_channels: missing plane {source!r}")
            out[..., c] = strengths[c]
        else:
            out[..., c] = np.clip(plane, 0.0, 1.0) * strengths[c]
    return (out * 255.0 + 0.5).astype(np.uint8)


def stack_panels(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Stack two (h, W, 3) uint8 panels vertically into one picture."""
    if top.ndim != 3 or bottom.ndim != 3 or top.shape[1:] != bottom.shape[1:]:
        raise FeatureError(f"stack_panels needs (h, W, 3) panels of one width, got {top.shape} and {bottom.shape}")
    return np.concatenate([top, bottom], axis=0)
