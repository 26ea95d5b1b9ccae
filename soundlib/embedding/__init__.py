"""Stage 4, the embedding cache: every clip's embedding by any embedder, computed once.

:mod:`~soundlib.embedding.embed` (batch embedding, streamed windows, ``EmbedConfig``) and
:mod:`~soundlib.embedding.cache` (the on-disk cache: its one owner). Imports audio, pictures, embedders.
"""
