"""soundlib: classify sounds by transfer learning from pretrained image models.

Audio is rendered as pictures (:mod:`soundlib.features`, :mod:`soundlib.merge`),
embedded by an image backbone (:mod:`soundlib.backbones`, :mod:`soundlib.embed`),
a small head is trained (:mod:`soundlib.train`) and evaluated fold by fold
(:mod:`soundlib.evaluate`). TensorFlow is imported only by the stages that need it.
"""

from .errors import (
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

__version__ = "0.2.0"

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
