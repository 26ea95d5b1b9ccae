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
