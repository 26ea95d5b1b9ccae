"""Feature variants: :class:`FeatureSpec`, the registry of named variants, and name resolution.

A variant is a frozen :class:`FeatureSpec` holding every parameter of one kind
of picture. :data:`VARIANTS` maps names to specs (the seed's six are built in).
:func:`resolve_variant` is the one place where a name or a mapping (from a
YAML file, a notebook parameter or a JSON file) becomes a spec; everything
past that edge takes a ``FeatureSpec``.

``params/variants.yaml`` is generated from the registry (``soundlib variants
--yaml``, :func:`variants_yaml`), never edited by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Sequence

from soundlib.audio.clips import PAD_POLICIES
from soundlib.config import check_finite, from_mapping, to_dict
from soundlib.errors import ConfigError, FeatureError
from soundlib.pictures.merge import MergeSpec

__all__ = [
    "FeatureSpec",
    "VARIANTS",
    "BUILTIN_VARIANTS",
    "FEATURE_VERSION",
    "KINDS",
    "LIMITS",
    "MAX_STFT_CELLS",
    "get_variant",
    "register_variant",
    "resolve_variant",
    "resolve_duration",
    "resolve_for_clips",
    "AUTO_DURATION_PERCENTILE",
    "DURATION_RULES",
    "DEFAULT_DURATION",
    "variants_yaml",
]

#: ``duration: auto`` (and ``fit``) covers this percentile of a dataset's clip lengths.
AUTO_DURATION_PERCENTILE = 95

#: Windows chosen from the clips' lengths: ``duration: <rule>`` -> the (shortest, longest) window it may
#: choose, in seconds (see :func:`resolve_duration`). ``fit``, the built-in variants' default, never
#: exceeds the 4 s soundlib 0.1 used: short clips get a window of their length instead of a mostly empty
#: 4-s picture, while 4-s clips (UrbanSound8K) and longer recordings keep 4-s windows, so their pictures,
#: cache entries and results stay those of a fixed ``duration: 4.0``. ``auto`` may grow to 30 s.
DURATION_RULES: dict[str, tuple[float, float]] = {"fit": (0.25, 4.0), "auto": (0.25, 30.0)}
#: The window of the built-in variants (and of a FeatureSpec that names none).
DEFAULT_DURATION = "fit"

#: Bumped whenever rendering code changes what a spec produces; part of every cache key.
FEATURE_VERSION = 1

KINDS = ("spectrogram", "waveform", "merged", "stacked")

#: Inclusive bounds of a spec's numbers: beyond them a picture would take minutes or
#: gigabytes to render (or is meaningless), so such a spec is refused up front.
LIMITS: dict[str, tuple[float, float]] = {
    "sr": (1000, 192000),
    "duration": (0.01, 600),
    "n_fft": (16, 65536),
    "hop_length": (1, 65536),
    "n_mels": (1, 1024),
    "top_db": (1, 300),
    "height": (16, 4096),
    "width": (16, 4096),
}
#: Largest STFT (frames × frequency bins) one picture may need (about 2.5 GiB while computed).
MAX_STFT_CELLS = 2**27
FREQUENCY_SCALES = ("mel", "linear")
AMPLITUDE_SCALES = ("db", "amplitude")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Every parameter of one feature variant.

    Attributes
    ----------
    name : str
        The variant's name (not part of :meth:`key`: equal parameters, equal pictures).
    kind : {"spectrogram", "waveform", "merged", "stacked"}
        What the picture shows. ``merged``: spectrogram and waveform as channels
        of one image (see :class:`~soundlib.pictures.merge.MergeSpec`); ``stacked``:
        spectrogram panel on top of a waveform panel.
    sr : int
        Sample rate in Hz the audio is resampled to.
    duration : float, "fit" or "auto"
        Seconds of audio one picture (one *window*) shows. A longer clip is cut
        into windows (see ``window_hop``); a shorter one is padded (see ``pad``).
        ``"fit"`` (the default) and ``"auto"`` are chosen from a dataset's clip
        lengths (:data:`DURATION_RULES`, :func:`resolve_duration`) before any
        picture is made: ``fit`` is the clips' length up to 4 s, ``auto`` up to 30 s.
    n_fft, hop_length : int
        STFT window and hop in samples.
    frequency : {"mel", "linear"}
        Frequency axis of the spectrogram.
    n_mels, fmin, fmax : int, float, float or None
        Mel filterbank (``fmax=None``: ``sr / 2``), in Hz. ``fmin``/``fmax`` also crop linear spectrograms.
    scale : {"db", "amplitude"}
        Log (dB, relative to the clip's maximum, floored at ``-top_db``) or
        linear amplitude normalised to the clip's maximum ("non-log").
    top_db : float
        Dynamic range kept, in dB.
    colormap : str
        Any matplotlib colormap name (``"gray"`` for grayscale).
    height, width : int
        Output picture size in pixels.
    waveform_color, background_color : tuple of int
        RGB colours of the waveform plot.
    merge : MergeSpec
        Channel order, strengths, jitter (``merged``) and panel split (``stacked``).
    pad : {"end", "center", "repeat"}
        How a clip shorter than ``duration`` is padded: silence after it, silence
        on both sides, or the clip repeated.
    window_hop : float or None
        Seconds between the starts of consecutive windows of a long clip
        (``None``: half of ``duration``, i.e. 50 % overlap).

    Fields added after soundlib 0.1 (``pad``, ``window_hop``) are left out of
    :meth:`to_dict` and :meth:`key` while they hold their default, so specs,
    files and cache keys made by 0.1 stay valid.
    """

    name: str = "mel"
    kind: str = "spectrogram"
    sr: int = 22050
    duration: float | str = DEFAULT_DURATION
    n_fft: int = 2048
    hop_length: int = 512
    frequency: str = "mel"
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    scale: str = "db"
    top_db: float = 80.0
    colormap: str = "magma"
    height: int = 224
    width: int = 224
    waveform_color: tuple[int, int, int] = (31, 119, 180)
    background_color: tuple[int, int, int] = (255, 255, 255)
    merge: MergeSpec = MergeSpec()
    pad: str = "end"
    window_hop: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "waveform_color", tuple(int(c) for c in self.waveform_color))
        object.__setattr__(self, "background_color", tuple(int(c) for c in self.background_color))
        if isinstance(self.merge, Mapping):
            object.__setattr__(self, "merge", MergeSpec(**self.merge))
        where = f"feature variant {self.name!r}"
        _choice(where, "kind", self.kind, KINDS)
        _choice(where, "frequency", self.frequency, FREQUENCY_SCALES)
        _choice(where, "scale", self.scale, AMPLITUDE_SCALES)
        check_finite(self, where)
        if self.resolved and (isinstance(self.duration, bool) or not isinstance(self.duration, (int, float))):
            raise FeatureError(f"{where}: duration must be a number of seconds or one of "
                               f"{', '.join(map(repr, DURATION_RULES))}, got {self.duration!r}")
        for field, (low, high) in LIMITS.items():
            value = getattr(self, field)
            if field == "duration" and not self.resolved:
                continue
            if not low <= value <= high:
                raise FeatureError(f"{where}: {field} must be in [{low:g}, {high:g}], got {value}")
        _choice(where, "pad", self.pad, PAD_POLICIES)
        if self.window_hop is not None and not LIMITS["duration"][0] <= self.window_hop <= LIMITS["duration"][1]:
            raise FeatureError(f"{where}: window_hop must be in [{LIMITS['duration'][0]:g}, "
                               f"{LIMITS['duration'][1]:g}] seconds or null, got {self.window_hop}")
        # a rule's duration is checked at the longest window it may choose (fit: 4 s, what 0.1 checked)
        seconds = float(self.duration) if self.resolved else DURATION_RULES[str(self.duration)][1]
        cells = (1 + int(round(self.sr * seconds)) // self.hop_length) * (1 + self.n_fft // 2)
        if cells > MAX_STFT_CELLS:
            longest = "" if self.resolved else f" (the longest window duration {self.duration!r} may choose)"
            raise FeatureError(
                f"{where}: sr={self.sr}, duration={seconds:g} s{longest}, n_fft={self.n_fft} and "
                f"hop_length={self.hop_length} make a spectrogram of {cells:,} cells (about "
                f"{cells * 20 / 2**30:.0f} GiB to compute); at most {MAX_STFT_CELLS:,} are allowed: "
                "raise hop_length, or lower n_fft, sr or duration")
        nyquist = self.sr / 2
        fmax = self.fmax if self.fmax is not None else nyquist
        if not 0 <= self.fmin < fmax <= nyquist:
            raise FeatureError(
                f"{where}: need 0 <= fmin < fmax <= sr/2 = {nyquist:g}, got fmin={self.fmin}, fmax={self.fmax}"
            )
        for field in ("waveform_color", "background_color"):
            c = getattr(self, field)
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise FeatureError(f"{where}: {field} must be three integers in [0, 255], got {c}")

    # -- identity -----------------------------------------------------------
    def to_dict(self, *, every_field: bool = False) -> dict[str, Any]:
        """Every field as plain data (tuples as lists); :meth:`from_dict` reads it back.
        Fields added after 0.1 appear only when they differ from their default, unless ``every_field``
        (what ``soundlib variants`` shows); :meth:`key` hashes the short form."""
        d = to_dict(self)
        if every_field:
            return d
        for field, default in _SINCE_0_1.items():
            if d[field] == default:
                del d[field]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base: "FeatureSpec | None" = None,
                  where: str = "feature spec") -> "FeatureSpec":
        """Build a spec from a mapping of its fields (missing ones from ``base`` or the defaults).

        Unknown keys and invalid values raise :class:`~soundlib.errors.ConfigError` naming ``where``.
        """
        return from_mapping(cls, d, where=where, base=base)

    def key(self) -> str:
        """A content hash of every parameter that changes the pictures (not the name)."""
        d = self.to_dict()
        d.pop("name")
        d["_version"] = FEATURE_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "FeatureSpec":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def resolved(self) -> bool:
        """False while ``duration`` is a rule (``"fit"``, ``"auto"``: see :func:`resolve_duration`)."""
        return not isinstance(self.duration, str) or self.duration not in DURATION_RULES

    def _need_resolved(self) -> None:
        if not self.resolved:
            raise FeatureError(f"feature variant {self.name!r}: duration is {self.duration!r}; choose it from the "
                               "clips first (soundlib.pictures.variants.resolve_duration or resolve_for_clips)")

    @property
    def seconds(self) -> float:
        """``duration`` in seconds (:class:`~soundlib.errors.FeatureError` while it is a rule)."""
        self._need_resolved()
        return float(self.duration)

    @property
    def n_samples(self) -> int:
        """Samples in one picture's window (``sr * duration``)."""
        return int(round(self.sr * self.seconds))

    @property
    def hop_seconds(self) -> float:
        """Seconds between window starts (``window_hop``, else half of ``duration``)."""
        self._need_resolved()
        return float(self.window_hop) if self.window_hop is not None else float(self.duration) / 2

    @property
    def stft_cells(self) -> int:
        """Cells of one picture's STFT: frames (centred, ``1 + n_samples // hop_length``) × ``(1 + n_fft // 2)``."""
        return (1 + self.n_samples // self.hop_length) * (1 + self.n_fft // 2)


#: Fields added after soundlib 0.1, with the default that keeps 0.1's behaviour.
_SINCE_0_1 = {"pad": "end", "window_hop": None}


def _choice(where: str, field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise FeatureError(f"{where}: {field} must be one of {', '.join(allowed)}, got {value!r}")


_MEL = FeatureSpec(name="mel")
#: The registry of named variants (the seed's six are built in).
VARIANTS: dict[str, FeatureSpec] = {
    "mel": _MEL,
    "mel_gray": _MEL.replace(name="mel_gray", colormap="gray"),
    "linear": _MEL.replace(name="linear", frequency="linear", scale="amplitude"),
    "waveform": _MEL.replace(name="waveform", kind="waveform"),
    "merged": _MEL.replace(name="merged", kind="merged"),
    "stacked": _MEL.replace(name="stacked", kind="stacked"),
}

#: The names of the built-in variants (``register_variant`` may add more at run time).
BUILTIN_VARIANTS: tuple[str, ...] = tuple(VARIANTS)


def get_variant(name: str) -> FeatureSpec:
    """The registered variant called ``name``; :class:`FeatureError` listing the known ones otherwise."""
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise FeatureError(f"unknown feature variant {name!r}; known: {', '.join(VARIANTS)}") from None


def register_variant(spec: FeatureSpec, *, overwrite: bool = False) -> FeatureSpec:
    """Add ``spec`` to :data:`VARIANTS` under its name (an equal spec may be registered twice)."""
    if spec.name in VARIANTS and VARIANTS[spec.name] != spec and not overwrite:
        raise FeatureError(f"feature variant {spec.name!r} is already registered with other parameters")
    VARIANTS[spec.name] = spec
    return spec


def resolve_variant(item: "str | Mapping[str, Any]", *, where: str = "variant") -> FeatureSpec:
    """Turn a variant name or a mapping into a :class:`FeatureSpec` (the edge where names are resolved).

    Parameters
    ----------
    item : str or mapping
        A registered name (``"mel"``), or a mapping with ``name`` and any
        FeatureSpec fields, optionally ``base`` (the registered variant it
        derives from; default: ``name`` when registered, else ``"mel"``).
        A full :meth:`FeatureSpec.to_dict` is a valid mapping.
    where : str
        Prefix of error messages (the file and key the item came from).

    Raises
    ------
    ConfigError
        Unknown name or base, a mapping without ``name``, unknown fields or invalid values.
    """
    if isinstance(item, str):
        if item not in VARIANTS:
            raise ConfigError(f"{where}: unknown feature variant {item!r}; known: {', '.join(VARIANTS)} "
                              "(or derive one: {name: my_variant, base: mel, hop_length: 256})")
        return VARIANTS[item]
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a variant is a registered name or a mapping with 'name', got {item!r}")
    d = dict(item)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: a derived variant needs a 'name' (used as its output folder)")
    base_name = d.pop("base", name if name in VARIANTS else "mel")
    if not isinstance(base_name, str) or base_name not in VARIANTS:
        raise ConfigError(f"{where}: variant {name!r}: unknown base {base_name!r}; known: {', '.join(VARIANTS)}")
    return FeatureSpec.from_dict(d, base=VARIANTS[base_name], where=f"{where}: variant {name!r}")


def resolve_duration(spec: FeatureSpec, clip_durations: Sequence[float]) -> tuple[FeatureSpec, dict[str, Any]]:
    """Choose ``duration: fit`` or ``auto`` from a dataset's clip lengths (a spec with a number passes through).

    The window covers the :data:`AUTO_DURATION_PERCENTILE` th percentile of the
    clip lengths, rounded up to 0.1 s and kept within the rule's bounds
    (:data:`DURATION_RULES`: [0.25, 4] s for ``fit``, [0.25, 30] s for ``auto``):
    most clips then fill one picture instead of being a thin stripe in a mostly
    empty one, and the few longer ones are cut into windows.

    Parameters
    ----------
    spec : FeatureSpec
    clip_durations : sequence of float
        Seconds, one per clip (0 or less: unknown, ignored).

    Returns
    -------
    spec : FeatureSpec
        With a numeric ``duration``.
    record : dict
        What was chosen and why (recorded in results.json): ``auto`` (whether it was
        chosen from the clips), ``rule``, ``seconds``, ``percentile``, ``clip_seconds``
        (min, median, max).
    """
    import math

    import numpy as np

    if spec.resolved:
        return spec, {"auto": False, "seconds": float(spec.duration)}
    low, high = DURATION_RULES[str(spec.duration)]
    d = np.asarray([x for x in clip_durations if x > 0], dtype=float)
    if d.size == 0:
        raise FeatureError(f"feature variant {spec.name!r}: duration {spec.duration!r} is chosen from the clips' "
                           "lengths, but no clip with a known length was given")
    q = float(np.percentile(d, AUTO_DURATION_PERCENTILE))
    seconds = min(high, max(low, math.ceil(q * 10 - 1e-9) / 10))
    record = {"auto": True, "rule": spec.duration, "seconds": seconds, "percentile": AUTO_DURATION_PERCENTILE,
              "clip_seconds": {"min": float(d.min()), "median": float(np.median(d)), "max": float(d.max())}}
    return spec.replace(duration=seconds), record


def resolve_for_clips(spec: FeatureSpec, clips: "Sequence[Any]") -> tuple[FeatureSpec, dict[str, Any]]:
    """:func:`resolve_duration` from the clips' file headers (nothing is read when ``spec`` has a number).

    The rule for one clip (``featurize_clip``, the gallery, the picture explorer)
    is the same: its own length, rounded up to 0.1 s, within the rule's bounds.

    Parameters
    ----------
    spec : FeatureSpec
    clips : sequence of Clip or paths

    Raises
    ------
    AudioError
        The rule needs a length and no clip's header could be read (the first
        clip's error, which names its file).
    """
    if spec.resolved:
        return resolve_duration(spec, ())
    from soundlib.audio.clips import audio_info
    from soundlib.errors import SoundlibError

    seconds: list[float] = []
    first_error: SoundlibError | None = None
    for c in clips:
        try:
            seconds.append(audio_info(getattr(c, "path", c)).duration)
        except SoundlibError as exc:
            first_error = first_error or exc
    if first_error is not None and not any(x > 0 for x in seconds):
        raise first_error
    return resolve_duration(spec, seconds)


def variants_yaml(names: Sequence[str] = BUILTIN_VARIANTS) -> str:
    """The text of ``params/variants.yaml``: every parameter of the named variants, generated."""
    import yaml

    body = {"variants": {n: {k: v for k, v in VARIANTS[n].to_dict(every_field=True).items() if k != "name"}
                         for n in names}}
    header = ("# Feature variants: every parameter of the built-in pictures.\n"
              "# GENERATED by `soundlib variants --yaml > params/variants.yaml` from soundlib/variants.py;\n"
              "# do not edit (tests/test_variants.py checks it is up to date).\n"
              "# duration: fit = the clips' length (95th percentile, rounded up to 0.1 s) within [0.25, 4] s,\n"
              "# chosen from the dataset when it is read (4-s clips keep 4.0); give seconds to fix it.\n"
              "# Sweep files refer to these by name, or derive new ones:\n"
              "#   variants: [mel, {name: mel_hop256, base: mel, hop_length: 256}]\n")
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)
