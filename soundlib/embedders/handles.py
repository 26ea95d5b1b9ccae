"""Plain data shared by the embedders and their runtimes: the cache root, backbone handles and identities.

Both runtimes of the picture backbones (TensorFlow in :mod:`soundlib.embedders.backbones`,
LiteRT in :mod:`soundlib.embedders.litert`) import this module and nothing of each other's
but what the other hands them: it holds no model code and imports no runtime.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from soundlib.config import cache_dir
from soundlib.errors import FeatureError

__all__ = ["cache_dir", "BackboneInfo", "DEFAULT_BACKBONE", "EMBEDDED_BACKBONES", "LITERT_INT8_SUFFIX",
           "EMBEDDED_PORT_VERSION", "INT8_RECIPE", "embedded_dir", "as_picture_batch"]

DEFAULT_BACKBONE = "efficientnet_lite0"
#: Version of the embedded port; part of the embedded backbone's identity (and so of cache keys).
EMBEDDED_PORT_VERSION = 1
#: An embedded backbone's name plus this suffix: its LiteRT int8 model (:mod:`soundlib.embedders.litert`).
LITERT_INT8_SUFFIX = "_int8"
EMBEDDED_BACKBONES = ("efficientnet_lite0", "efficientnet_lite0" + LITERT_INT8_SUFFIX)
#: Version of the int8 recipe (calibration set and converter options); part of the int8 identity.
INT8_RECIPE = 1




def embedded_dir(name: str) -> Path:
    """The SavedModel export of an embedded backbone in the cache."""
    return cache_dir() / "backbones" / f"{name}-port{EMBEDDED_PORT_VERSION}"


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """Where a picture backbone lives and what it is (resolved, not loaded).

    ``identity`` names the exact weights (it is part of every embedding cache key).
    """

    handle: str
    identity: str
    path: Path
    input_size: tuple[int, int]


def as_picture_batch(pictures: np.ndarray, handle: str) -> np.ndarray:
    """Pictures as a uint8 batch for a backbone named ``handle`` (named in the errors).

    Parameters
    ----------
    pictures : np.ndarray, shape (N, H, W, 3) or (H, W, 3)
        uint8 RGB, or floats in [0, 1] (scaled to uint8 with rounding).

    Returns
    -------
    np.ndarray, shape (N, H, W, 3), uint8
    """
    pictures = np.asarray(pictures)
    if pictures.ndim == 3:
        pictures = pictures[None]
    if pictures.ndim != 4 or pictures.shape[-1] != 3:
        raise FeatureError(f"backbone {handle!r} needs (N, H, W, 3) pictures, got shape {pictures.shape}")
    if pictures.dtype != np.uint8:
        if pictures.size and (pictures.min() < 0 or pictures.max() > 1):
            raise FeatureError(f"backbone {handle!r}: float pictures must hold values in [0, 1]")
        pictures = (pictures * 255.0 + 0.5).astype(np.uint8)
    return pictures
