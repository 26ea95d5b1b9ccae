"""The Embedder seam: what every embedder (picture or audio network, or hand-made features) provides.

An *embedder* turns one window of a clip into one vector. It says

* ``name`` — the handle it was resolved from (``"mn04"``, ``"efficientnet_lite0"``, a TF Hub URL...);
* ``identity`` — the exact weights, runtime and preprocessing (part of every embedding cache key);
* ``modality`` — ``"picture"`` (it embeds the variant's pictures) or ``"waveform"`` (it embeds audio);
* ``license`` — the licence of its weights (printed in model cards and on first use);
* :meth:`Embedder.window` — the windowing it uses for an evaluation's feature variant: a picture
  embedder uses the variant itself; a waveform embedder a :class:`WindowSpec` that holds only what it
  uses (its sample rate, the window's length, hop and padding), so its cache key changes with nothing else;
* :meth:`Embedder.inputs` — one input per window of a file (pictures, audio windows, statistics), as
  chunks of at most :data:`CHUNK_WINDOWS` windows streamed from the file (:func:`chunked`), so that a long
  recording costs the memory of a few windows, not of its length;
* :meth:`Embedder.load` — the loaded network, called on a batch of inputs.

Embedders are registered by name (:func:`register_embedder`); a new one is one file in this package
that calls it (see :mod:`soundlib.embedders.mn04`). :func:`resolve_embedder` turns a handle into one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Protocol, Union, runtime_checkable

import numpy as np

from soundlib.errors import BackboneError, ConfigError

__all__ = ["MODALITIES", "Modality", "WindowSpec", "Windowing", "LoadedEmbedder", "Embedder", "EmbedderOptions",
           "register_embedder", "resolve_embedder", "embedder_names", "embedder_entry", "EmbedderEntry",
           "WAVEFORM_PADS", "CHUNK_WINDOWS", "Inputs", "chunked", "audio_windows"]

Modality = Literal["picture", "waveform"]
MODALITIES: tuple[str, ...] = ("picture", "waveform")
#: How a waveform embedder's short clip is padded: as the variants do, or ``"none"`` (the clip as it is:
#: networks that pool over time see only the sound, not seconds of added silence).
WAVEFORM_PADS = ("end", "center", "repeat", "none")
#: Version of :class:`WindowSpec` keys.
_WINDOW_KEY_VERSION = 1
#: Windows in one chunk of an embedder's inputs (:func:`chunked`).
CHUNK_WINDOWS = 16
#: What :meth:`Embedder.inputs` returns: the inputs of every window of a file, stacked (n_windows, ...), or
#: an iterator of such stacks (chunks) in window order.
Inputs = Union[np.ndarray, Iterable[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """The windows a waveform embedder sees: the part of a feature variant it uses.

    Attributes
    ----------
    name : str
        Shown in progress bars (``"mn04"``...); not part of the key.
    sr : int
        Sample rate in Hz the audio is resampled to.
    duration : float
        Seconds of one window; a longer clip is cut into windows every ``window_hop`` seconds.
    window_hop : float or None
        Seconds between window starts (``None``: half of ``duration``).
    pad : {"end", "center", "repeat", "none"}
        How a clip shorter than ``duration`` is padded (``"none"``: not at all).
    """

    name: str
    sr: int
    duration: float
    window_hop: float | None = None
    pad: str = "end"

    def __post_init__(self) -> None:
        if not (isinstance(self.sr, int) and 1000 <= self.sr <= 192000):
            raise ConfigError(f"window {self.name!r}: sr must be an integer in [1000, 192000] Hz, got {self.sr!r}")
        if not 0 < float(self.duration) <= 600:
            raise ConfigError(f"window {self.name!r}: duration must be in (0, 600] seconds, got {self.duration!r}")
        if self.window_hop is not None and not 0 < float(self.window_hop) <= 600:
            raise ConfigError(f"window {self.name!r}: window_hop must be in (0, 600] seconds, got {self.window_hop!r}")
        if self.pad not in WAVEFORM_PADS:
            raise ConfigError(f"window {self.name!r}: pad must be one of {', '.join(WAVEFORM_PADS)}, got {self.pad!r}")

    resolved = True

    @property
    def n_samples(self) -> int:
        """Samples in one window."""
        return int(round(self.sr * self.duration))

    @property
    def hop_seconds(self) -> float:
        """Seconds between window starts."""
        return float(self.window_hop) if self.window_hop is not None else float(self.duration) / 2

    def to_dict(self) -> dict[str, Union[str, int, float, None]]:
        return {"name": self.name, "sr": self.sr, "duration": float(self.duration),
                "window_hop": None if self.window_hop is None else float(self.window_hop), "pad": self.pad}

    def key(self) -> str:
        """A content hash of what changes the windows (not the name)."""
        d = self.to_dict()
        d.pop("name")
        d["_window"] = _WINDOW_KEY_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class Windowing(Protocol):
    """What the embedding stage reads of a window specification (a :class:`WindowSpec`, or a picture
    variant's :class:`~soundlib.pictures.variants.FeatureSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def sr(self) -> int: ...
    @property
    def n_samples(self) -> int: ...
    @property
    def hop_seconds(self) -> float: ...
    @property
    def pad(self) -> str: ...
    @property
    def resolved(self) -> bool: ...
    def key(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class LoadedEmbedder(Protocol):
    """A loaded embedder: a batch of inputs -> (n, output_dim) float32."""

    @property
    def identity(self) -> str: ...
    @property
    def output_dim(self) -> int: ...
    def __call__(self, batch: np.ndarray, /, *, batch_size: int = 32) -> np.ndarray: ...


@runtime_checkable
class Embedder(Protocol):
    """A resolved embedder (see the module docstring); loading it may be slow, resolving it is not."""

    @property
    def name(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def modality(self) -> str: ...
    @property
    def license(self) -> str: ...
    def window(self, spec: Windowing) -> Windowing: ...
    def inputs(self, path: Path, window: Windowing) -> Inputs: ...
    def load(self) -> LoadedEmbedder: ...


@dataclasses.dataclass(frozen=True)
class EmbedderOptions:
    """Choices an embedder may take (each embedder reads the ones it understands and refuses the rest).

    Attributes
    ----------
    layer : str
        Where the embedded picture network is cut (``head``, ``multi``, ``block14``...).
    pooling : str
        How its feature map becomes a vector (``avg``, ``time_stats``, ``time_max``).
    hop : float or None
        Seconds between an embedder's own windows (BirdNET's 3-s windows); ``None``: its default.
    pad : str or None
        How a clip shorter than the embedder's own window is padded; ``None``: its default.
    threads : int
        Interpreter threads of a LiteRT embedder (0: its default).
    """

    layer: str = "head"
    pooling: str = "avg"
    hop: float | None = None
    pad: str | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.hop is not None and not 0 < self.hop <= 60:
            raise ConfigError(f"hop must be in (0, 60] seconds, got {self.hop}")
        if self.pad is not None and self.pad not in WAVEFORM_PADS:
            raise ConfigError(f"pad must be one of {', '.join(WAVEFORM_PADS)}, got {self.pad!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 0 <= self.threads <= 256:
            raise ConfigError(f"threads must be an integer from 0 (automatic) to 256, got {self.threads!r}")

    def non_default(self) -> dict[str, Union[str, int, float, None]]:
        """The options that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


Factory = Callable[[str, EmbedderOptions], Embedder]


@dataclasses.dataclass(frozen=True)
class EmbedderEntry:
    """A registered embedder name: how to make it and what it is (read without loading anything)."""

    name: str
    factory: Factory
    modality: str
    license: str
    summary: str
    accepts: tuple[str, ...]


_ENTRIES: dict[str, EmbedderEntry] = {}
#: Resolvers tried, in order, for handles that are not registered names (TF Hub handles, folders).
_FALLBACKS: list[Callable[[str, EmbedderOptions], "Embedder | None"]] = []
_LOADED_MODULES = False


def register_embedder(name: str, factory: Factory, *, modality: str, license: str, summary: str,
                      accepts: tuple[str, ...] = ()) -> None:
    """Register an embedder under ``name`` (called by the modules of this package at import).

    Parameters
    ----------
    factory : callable
        ``factory(name, options) -> Embedder``; cheap (no loading, downloading or converting).
    modality : {"picture", "waveform"}
    license : str
        The licence of its weights, as a person should read it.
    summary : str
        One line for ``--help`` and ``soundlib embedders``.
    accepts : tuple of str
        The :class:`EmbedderOptions` fields it reads (others set to non-defaults are refused).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    _ENTRIES[name] = EmbedderEntry(name, factory, modality, license, summary, accepts)


def register_fallback(resolver: Callable[[str, EmbedderOptions], "Embedder | None"]) -> None:
    """Register a resolver for handles that are not names (returns ``None`` when the handle is not its kind)."""
    _FALLBACKS.append(resolver)


#: Modules of this package that register no embedder (the seam, the runtimes, the picture base).
_NOT_EMBEDDERS = ("base", "handles", "picture", "backbones", "litert", "derived")


def _load_modules() -> None:
    """Import every module of this package once: each registers its embedders."""
    global _LOADED_MODULES
    if _LOADED_MODULES:
        return
    _LOADED_MODULES = True
    package = importlib.import_module(__package__ or "soundlib.embedders")
    for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_") and mod.name not in _NOT_EMBEDDERS and not mod.ispkg:
            importlib.import_module(f"{package.__name__}.{mod.name}")


def embedder_names() -> tuple[str, ...]:
    """The registered embedder names (TF Hub handles and SavedModel folders are accepted too)."""
    _load_modules()
    return tuple(_ENTRIES)


def embedder_entry(name: str) -> EmbedderEntry | None:
    """The registry entry of a name (``None`` for handles that are not registered names)."""
    _load_modules()
    return _ENTRIES.get(name)


def resolve_embedder(handle: str, options: EmbedderOptions = EmbedderOptions()) -> Embedder:
    """The embedder a handle names (the edge where embedder names are resolved).

    Parameters
    ----------
    handle : str
        A registered name (:func:`embedder_names`), a TF Hub / Kaggle handle or URL, or a local
        SavedModel folder (picture backbones).
    options : EmbedderOptions
        Options the embedder takes; one it does not take, set to a non-default, is an error.

    Raises
    ------
    BackboneError
        Unknown handle, or an option the embedder does not take.
    """
    _load_modules()
    handle = str(handle)
    entry = _ENTRIES.get(handle)
    if entry is not None:
        extra = sorted(set(options.non_default()) - set(entry.accepts))
        if extra:
            raise BackboneError(f"embedder {handle!r} does not take the option(s) {', '.join(extra)}"
                                + (f"; it takes: {', '.join(entry.accepts)}" if entry.accepts else ""))
        return entry.factory(handle, options)
    for resolver in _FALLBACKS:
        found = resolver(handle, options)
        if found is not None:
            return found
    raise BackboneError(f"unknown embedder {handle!r}: not a registered name ({', '.join(_ENTRIES)}), "
                        "an existing SavedModel folder, or a TF Hub/Kaggle handle")


def chunked(windows: Iterable[np.ndarray], size: int = CHUNK_WINDOWS) -> Iterator[np.ndarray]:
    """Stack consecutive windows' inputs into chunks of at most ``size`` (one shape per chunk: a window of
    another shape starts a new chunk).

    Yields
    ------
    np.ndarray, shape (k, ...) with 1 <= k <= size
    """
    group: list[np.ndarray] = []
    for w in windows:
        if group and (len(group) >= size or w.shape != group[0].shape):
            yield np.stack(group)
            group = []
        group.append(w)
    if group:
        yield np.stack(group)


def audio_windows(path: Path, window: Windowing) -> Iterator[np.ndarray]:
    """Every window of a clip as audio, streamed from the file in chunks of (k, n_samples) float32 at
    ``window.sr`` (:func:`chunked`; concatenated, the windows of :func:`soundlib.audio.clips.load_windows`).

    With ``pad == "none"`` a clip shorter than one window gives one row of its own length.
    """
    from soundlib.audio.clips import clip_samples, read_segment, stream_windows

    n = window.n_samples
    pad = window.pad
    if pad == "none":
        if clip_samples(path, window.sr) <= 2 * n:  # short (a window or two): read whole, as it always was
            y = read_segment(path, sr=window.sr, allow_silent=False)
            if len(y) <= n:
                yield np.asarray(y, np.float32)[None]
                return
        pad = "end"
    yield from chunked(w for _, w in stream_windows(path, sr=window.sr, duration=n / window.sr,
                                                    hop=window.hop_seconds, pad=pad))
