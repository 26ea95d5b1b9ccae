"""Embedders: everything that turns a window of a clip into a vector, behind one seam.

=======================  ==========  ==========================================================
name                     modality    what
=======================  ==========  ==========================================================
``efficientnet_lite0``   picture     the embedded ImageNet EfficientNet-Lite0 (TF or LiteRT)
``efficientnet_lite0_int8`` picture  its LiteRT int8 model
TF Hub handle / folder   picture     any TF2 image feature-vector SavedModel
``mn04``                 waveform    EfficientAT mn04_as (AudioSet, MIT)
``yamnet``               waveform    Google's YAMNet (AudioSet, Apache-2.0)
``birdnet``              waveform    BirdNET 2.4 (CC BY-NC-SA 4.0: non-commercial)
``speech``               waveform    Google's speech_embedding (openwakeword wheel; check before
                                     commercial use: Apache-2.0 on TF Hub, CC BY-NC-SA 4.0 in the wheel)
``mfcc``                 waveform    MFCC statistics (the classic control)
=======================  ==========  ==========================================================

See :mod:`soundlib.embedders.base` for the protocol; each embedder is one module here.
"""

from soundlib.embedders.base import (MODALITIES, Embedder, EmbedderOptions, LoadedEmbedder, WindowSpec, embedder_entry,
                   embedder_names, register_embedder, resolve_embedder)

__all__ = ["MODALITIES", "Embedder", "EmbedderOptions", "LoadedEmbedder", "WindowSpec", "embedder_entry",
           "embedder_names", "register_embedder", "resolve_embedder"]
