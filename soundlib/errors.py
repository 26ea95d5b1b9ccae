"""The one exception family soundlib raises for bad input.

Every message names the offending file (or key) and says what was expected,
so a user can fix the input without reading a stack trace.
"""

from __future__ import annotations

__all__ = [
    "SoundlibError",
    "AudioError",
    "DatasetError",
    "FeatureError",
    "BackboneError",
    "ConfigError",
    "ModelError",
]


class SoundlibError(Exception):
    """Base class of every error soundlib raises on purpose."""


class AudioError(SoundlibError):
    """An audio file is unreadable, empty, not audio, or silent."""


class DatasetError(SoundlibError):
    """A dataset layout, metadata CSV or manifest is wrong."""


class FeatureError(SoundlibError):
    """A feature spec or a picture is not what a stage expects."""


class BackboneError(SoundlibError):
    """A backbone handle cannot be resolved or loaded."""


class ConfigError(SoundlibError):
    """A parameter file or option is invalid (unknown key, bad value)."""


class ModelError(SoundlibError):
    """An exported model directory is missing or corrupt."""
