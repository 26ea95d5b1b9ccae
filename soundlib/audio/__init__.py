"""Stage 1, audio: reading clips, datasets and manifests, folds, downloads, content hashes, the synthetic corpus.

Nothing here knows of pictures, embedders or models. Modules: :mod:`~soundlib.audio.clips` (decode,
resample, windows), :mod:`~soundlib.audio.datasets` (what a dataset is: clips, recordings)
and :mod:`~soundlib.audio.loaders` (how each layout is read), :mod:`~soundlib.audio.folds` (folds and leakage),
:mod:`~soundlib.audio.download` (checked downloads), :mod:`~soundlib.audio.hashes` (content hashes),
:mod:`soundlib.audio.synth` (the synthetic corpus).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    # soundlib 0.2's module soundlib.audio is soundlib.audio.clips now: its names stay readable here
    # for one minor version, with a DeprecationWarning.
    if name.startswith("__"):
        raise AttributeError(name)
    clips = importlib.import_module("soundlib.audio.clips")
    if hasattr(clips, name):
        warnings.warn(f"soundlib.audio.{name} is deprecated: it is soundlib.audio.clips.{name} since soundlib 0.3",
                      DeprecationWarning, stacklevel=2)
        return getattr(clips, name)
    raise AttributeError(f"module 'soundlib.audio' has no attribute {name!r}")
