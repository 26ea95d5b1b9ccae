"""What the picture embedders share: a picture backbone (embedded, TF Hub or SavedModel) behind the seam."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import EmbedderOptions, LoadedEmbedder, Windowing

__all__ = ["PictureEmbedder"]


@dataclasses.dataclass(frozen=True)
class PictureEmbedder:
    """A picture backbone as an embedder: it embeds the variant's pictures.

    Resolving the handle (exporting the embedded backbone, or downloading a TF Hub module) happens on
    first use of :attr:`info`, not when the embedder is made.
    """

    name: str
    options: EmbedderOptions
    license: str
    modality: str = "picture"

    @functools.cached_property
    def info(self):
        """The resolved backbone (:class:`~soundlib.backbones.BackboneInfo`, or a
        :class:`~soundlib.backbones.PooledInfo` for a layer/pooling choice)."""
        from ..backbones import pooled_backbone, resolve_backbone

        return pooled_backbone(resolve_backbone(self.name), layer=self.options.layer, pooling=self.options.pooling)

    @property
    def identity(self) -> str:
        return self.info.identity

    def is_ready(self) -> bool:
        """Whether it opens without exporting, converting or downloading anything."""
        from ..backbones import is_ready

        return is_ready(self.name)

    def window(self, spec: Windowing) -> Windowing:
        """The variant itself: its key covers every picture parameter."""
        return spec

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """Every window rendered as a picture, streamed in chunks of (k, H, W, 3) uint8."""
        from ..embed import picture_windows

        return picture_windows(path, window)  # type: ignore[arg-type]

    def load(self) -> LoadedEmbedder:
        return self.info.load()
