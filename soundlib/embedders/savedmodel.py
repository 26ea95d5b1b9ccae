"""Picture backbones from TF Hub / Kaggle handles, their short aliases, and local SavedModel folders.

Any TF2 image feature-vector SavedModel: (N, H, W, 3) float pictures in [0, 1] -> (N, D). Handles are
downloaded by ``tensorflow_hub`` the first time (needs internet; ``TFHUB_CACHE_DIR`` keeps them).
"""

from __future__ import annotations

from pathlib import Path

from soundlib.embedders.picture import PictureEmbedder
from soundlib.embedders.base import EmbedderOptions, register_embedder, register_fallback

LICENSE = "the licence of the TF Hub / Kaggle model or SavedModel named (see its model page)"


def _make(name: str, options: EmbedderOptions) -> PictureEmbedder:
    return PictureEmbedder(name, options, LICENSE)


def _resolve(handle: str, options: EmbedderOptions) -> PictureEmbedder | None:
    from soundlib.embedders.backbones import _is_url_or_hub_handle

    if Path(handle).expanduser().exists() or _is_url_or_hub_handle(handle):
        if options.layer != "head" or options.pooling != "avg":
            from soundlib.errors import BackboneError

            raise BackboneError(f"backbone {handle!r}: layer and pooling choices need the feature maps of the "
                                "embedded efficientnet_lite0; other backbones give pooled vectors only")
        return _make(handle, options)
    return None


def _register_aliases() -> None:
    from soundlib.embedders.backbones import HUB_ALIASES

    for alias in HUB_ALIASES:
        register_embedder(alias, _make, modality="picture", license=LICENSE,
                          summary=f"TF Hub ImageNet feature vector ({alias}; needs internet the first time)")


_register_aliases()
register_fallback(_resolve)
