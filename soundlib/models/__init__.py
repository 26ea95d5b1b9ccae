"""Stage 6, models: the exported-model format and what runs it.

:mod:`~soundlib.models.format` (file names, checksums: the format's one definition),
:mod:`~soundlib.models.export` (writing a model), :mod:`~soundlib.models.load` (reading and verifying one),
:mod:`~soundlib.models.litert_runner` (the LiteRT copy), :mod:`~soundlib.models.label` (labelling files:
``predict``), :mod:`~soundlib.models.card` (``MODEL_CARD.md`` and ``soundlib info``),
:mod:`~soundlib.models.train` (train one fold or all folds and export), :mod:`~soundlib.models.events`,
:mod:`~soundlib.models.tag`. Imports everything below it (audio … methods, evaluation); nothing above.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The stage's public API, importable from ``soundlib.models`` (each loaded on first use).
_API = {"load_model": "load", "predict": "label", "window_probabilities": "label", "train_fold": "train",
        "train_all_folds": "train", "export_artifact": "export", "LoadedModel": "load"}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f"soundlib.models.{_API[name]}"), name)
    raise AttributeError(f"module 'soundlib.models' has no attribute {name!r}")
