"""What the picture embedders share: a picture backbone (embedded, TF Hub or SavedModel) behind the seam."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from soundlib.embedders.base import EmbedderOptions, LoadedEmbedder, Windowing, chunked

if TYPE_CHECKING:
    from soundlib.pictures.variants import FeatureSpec

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
        """The resolved backbone (:class:`~soundlib.embedders.backbones.BackboneInfo`, or a
        :class:`~soundlib.embedders.backbones.PooledInfo` for a layer/pooling choice)."""
        from soundlib.embedders.backbones import pooled_backbone, resolve_backbone

        return pooled_backbone(resolve_backbone(self.name), layer=self.options.layer, pooling=self.options.pooling)

    @property
    def identity(self) -> str:
        return self.info.identity

    @property
    def runs_as_savedmodel(self) -> bool:
        """Whether its SavedModel computes its embeddings, so that a model on it can hold that network. Not so for
        the LiteRT int8 model, whose SavedModel is the float network: a model on it runs the embedder itself
        (:func:`soundlib.models.export.export_embedder_model`), or it would not label as it was measured."""
        from soundlib.embedders.handles import EMBEDDED_BACKBONES, LITERT_INT8_SUFFIX

        return not (self.name in EMBEDDED_BACKBONES and self.name.endswith(LITERT_INT8_SUFFIX))

    def is_ready(self) -> bool:
        """Whether it opens without exporting, converting or downloading anything."""
        from soundlib.embedders.backbones import is_ready

        return is_ready(self.name)

    def window(self, spec: Windowing) -> Windowing:
        """The variant itself: its key covers every picture parameter."""
        return spec

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """Every window rendered as a picture, streamed in chunks of (k, H, W, 3) uint8."""
        return picture_windows(path, window)  # type: ignore[arg-type]

    def load(self) -> LoadedEmbedder:
        from soundlib.embedders.backbones import open_backbone

        return open_backbone(self.info)


def picture_windows(path: Path, spec: "FeatureSpec") -> Iterator[np.ndarray]:
    """The inputs of an image backbone: every window rendered as a picture, streamed from the file in
    chunks of (k, H, W, 3) uint8 (:func:`~soundlib.embedders.base.chunked`)."""
    from soundlib.pictures.featurize import iter_featurize_windows

    return chunked(picture for _, picture in iter_featurize_windows(path, spec))
