"""The one exception family soundlib raises for bad input, and its one warning category.

Every message names the offending file (or key) and says what was expected,
so a user can fix the input without reading a stack trace. Problems that do
not stop a run (a degenerate fold, a bad cache entry recomputed) are
:class:`SoundlibWarning` warnings; :func:`collect_warnings` gathers them so a
run can record them in its results.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

__all__ = [
    "SoundlibError",
    "AudioError",
    "DatasetError",
    "FeatureError",
    "InputError",
    "BackboneError",
    "ConfigError",
    "ModelError",
    "TrainingError",
    "OutputError",
    "SoundlibWarning",
    "warn",
    "collect_warnings",
    "WarningLog",
]


class SoundlibError(Exception):
    """Base class of every error soundlib raises on purpose."""


class AudioError(SoundlibError):
    """An audio file is unreadable, empty, not audio, or silent."""


class DatasetError(SoundlibError):
    """A dataset layout, metadata CSV or manifest is wrong."""


class FeatureError(SoundlibError):
    """A feature spec or a picture is not what a stage expects."""


class InputError(FeatureError, ValueError):
    """Data given to :class:`soundlib.SoundClassifier` (or another scikit-learn-style call) is not what it
    takes: also a :class:`ValueError`, as scikit-learn's conventions expect."""


class BackboneError(SoundlibError):
    """A backbone handle cannot be resolved or loaded."""


class ConfigError(SoundlibError):
    """A parameter file or option is invalid (unknown key, bad value)."""


class ModelError(SoundlibError):
    """An exported model directory is missing or corrupt."""


class TrainingError(SoundlibError):
    """Training diverged (a non-finite loss or weights) or cannot run on the data given."""


class OutputError(SoundlibError, OSError):
    """An output cannot be written where asked: a folder where a file goes (or the reverse), a place that
    takes no files (``/proc``), no permission, or a file soundlib must not replace.

    Also an :class:`OSError` (``errno``/``strerror`` of the failure when there was one), so code that
    falls back on write errors (the embedding cache) keeps doing so.
    """

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror"
        return str(self.args[0]) if self.args else ""


class SoundlibWarning(UserWarning):
    """Something a user must know about a run's inputs or results that does not stop it."""


def warn(message: str) -> None:
    """Issue ``message`` as a :class:`SoundlibWarning` (shown every time, recorded by :func:`collect_warnings`)."""
    warnings.warn(message, SoundlibWarning, stacklevel=2)


class WarningLog:
    """The :class:`SoundlibWarning` messages caught so far by :func:`collect_warnings` (read :attr:`messages`)."""

    def __init__(self, caught: list):
        self._caught = caught

    @property
    def messages(self) -> list[str]:
        """The messages in the order issued, each once."""
        return list(dict.fromkeys(str(w.message) for w in self._caught if issubclass(w.category, SoundlibWarning)))


@contextlib.contextmanager
def collect_warnings() -> Iterator[WarningLog]:
    """Record the :class:`SoundlibWarning` messages issued inside the block.

    Yields a :class:`WarningLog` whose ``messages`` fill while the block runs
    (so a run can write them into its results before the block ends). Every
    warning caught, soundlib's or not, is shown again on leaving the block
    (soundlib's once per message), so nothing is hidden from the user.
    """
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SoundlibWarning)
            yield WarningLog(caught)
    finally:
        shown: set[str] = set()
        for w in caught:
            if issubclass(w.category, SoundlibWarning):
                if str(w.message) in shown:
                    continue
                shown.add(str(w.message))
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
