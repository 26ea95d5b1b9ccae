"""soundlib: classify sounds by transfer learning.

The package is laid out as its pipeline, each stage a sub-package that imports only the stages
before it: :mod:`soundlib.audio` (clips, datasets, folds) -> :mod:`soundlib.pictures` (audio as
pictures) -> :mod:`soundlib.embedders` (picture backbones and audio networks behind one seam) ->
:mod:`soundlib.embedding` (batch embedding and its cache) -> :mod:`soundlib.methods` (heads and
training methods) -> :mod:`soundlib.evaluation` (folds, metrics, significance) -> :mod:`soundlib.models`
(the exported model: write, read, label) -> :mod:`soundlib.lab` (what the notebooks call) ->
:mod:`soundlib.sweep` (papermill sweeps) -> :mod:`soundlib.cli`. TensorFlow is imported only by the
stages that need it. The module paths of soundlib 0.2 (``soundlib.infer``, ...) still import, with a
DeprecationWarning (:mod:`soundlib._compat`).
"""

from soundlib import _compat
from soundlib.errors import (
    AudioError,
    BackboneError,
    ConfigError,
    DatasetError,
    FeatureError,
    ModelError,
    OutputError,
    SoundlibError,
    SoundlibWarning,
    TrainingError,
)

__version__ = "0.3.0"

_compat.install()

#: Names exported lazily (their modules load on first use, so ``import soundlib`` stays light).
_LAZY = {"SoundClassifier": "soundlib.models.estimator"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'soundlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "__version__",
    "SoundlibError",
    "AudioError",
    "DatasetError",
    "FeatureError",
    "BackboneError",
    "ConfigError",
    "ModelError",
    "OutputError",
    "TrainingError",
    "SoundlibWarning",
]
