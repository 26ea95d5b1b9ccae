"""Audio → pictures: spectrograms, waveform plots, merged and stacked variants.

Renderers are pure numpy functions that return ``uint8`` arrays of shape
``(H, W, 3)``. Colour maps are 256-entry lookup tables (matplotlib is imported
once to build a table, never to draw a figure). PNG files are written only
when asked, atomically.

Every variant is a frozen :class:`FeatureSpec` holding all its parameters;
:data:`VARIANTS` is the registry by name (``soundlib variants`` lists it).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import ConfigError, FeatureError, SoundlibError
from .merge import MergeSpec, merge_channels, stack_panels

__all__ = [
    "FeatureSpec",
    "VARIANTS",
    "BUILTIN_VARIANTS",
    "GALLERY_FILES",
    "FEATURE_VERSION",
    "get_variant",
    "register_variant",
    "spectrogram_plane",
    "waveform_plane",
    "render_spectrogram",
    "render_waveform",
    "render_merged",
    "render_stacked",
    "render",
    "colormap_lut",
    "featurize_clip",
    "featurize",
    "FeaturizeReport",
    "picture_path",
    "write_png",
    "read_picture",
    "write_gallery",
]

#: Bumped whenever rendering code changes what a spec produces; part of every cache key.
FEATURE_VERSION = 1

KINDS = ("spectrogram", "waveform", "merged", "stacked")
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
        of one image (see :class:`~soundlib.merge.MergeSpec`); ``stacked``:
        spectrogram panel on top of a waveform panel.
    sr, duration : int, float
        Audio is resampled to ``sr`` and padded/trimmed to ``duration`` seconds.
    n_fft, hop_length : int
        STFT window and hop in samples.
    frequency : {"mel", "linear"}
        Frequency axis of the spectrogram.
    n_mels, fmin, fmax : int, float, float or None
        Mel filterbank (``fmax=None``: ``sr / 2``). ``fmin``/``fmax`` also crop linear spectrograms.
    scale : {"db", "amplitude"}
        Log (dB, relative to the clip's maximum, floored at ``-top_db``) or
        linear amplitude normalised to the clip's maximum ("non-log").
    top_db : float
        Dynamic range kept in dB.
    colormap : str
        Any matplotlib colormap name (``"gray"`` for grayscale).
    height, width : int
        Output picture size in pixels.
    waveform_color, background_color : tuple of int
        RGB colours of the waveform plot.
    merge : MergeSpec
        Channel order, strengths, jitter (``merged``) and panel split (``stacked``).
    """

    name: str = "mel"
    kind: str = "spectrogram"
    sr: int = 22050
    duration: float = 4.0
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "waveform_color", tuple(int(c) for c in self.waveform_color))
        object.__setattr__(self, "background_color", tuple(int(c) for c in self.background_color))
        if isinstance(self.merge, Mapping):
            object.__setattr__(self, "merge", MergeSpec(**self.merge))
        where = f"feature variant {self.name!r}"
        _choice(where, "kind", self.kind, KINDS)
        _choice(where, "frequency", self.frequency, FREQUENCY_SCALES)
        _choice(where, "scale", self.scale, AMPLITUDE_SCALES)
        for field in ("sr", "n_fft", "hop_length", "n_mels"):
            if int(getattr(self, field)) <= 0:
                raise FeatureError(f"{where}: {field} must be a positive integer, got {getattr(self, field)}")
        if not 0 < self.duration <= 600:
            raise FeatureError(f"{where}: duration must be in (0, 600] seconds, got {self.duration}")
        nyquist = self.sr / 2
        fmax = self.fmax if self.fmax is not None else nyquist
        if not 0 <= self.fmin < fmax <= nyquist:
            raise FeatureError(
                f"{where}: need 0 <= fmin < fmax <= sr/2 = {nyquist:g}, got fmin={self.fmin}, fmax={self.fmax}"
            )
        if self.top_db <= 0:
            raise FeatureError(f"{where}: top_db must be positive, got {self.top_db}")
        if not (16 <= self.height <= 4096 and 16 <= self.width <= 4096):
            raise FeatureError(f"{where}: height and width must be in [16, 4096], got {self.height}x{self.width}")
        for field in ("waveform_color", "background_color"):
            c = getattr(self, field)
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise FeatureError(f"{where}: {field} must be three integers in [0, 255], got {c}")

    # -- identity -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["merge"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["merge"].items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base: "FeatureSpec | None" = None, where: str = "") -> "FeatureSpec":
        """Build a spec from a mapping (e.g. YAML); unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"{where or 'feature spec'}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(sorted(known))}"
            )
        d = dict(d)
        if "merge" in d and isinstance(d["merge"], Mapping):
            mknown = {f.name for f in dataclasses.fields(MergeSpec)}
            munknown = sorted(set(d["merge"]) - mknown)
            if munknown:
                raise ConfigError(
                    f"{where or 'feature spec'}: unknown merge key(s) {', '.join(map(repr, munknown))}; "
                    f"expected some of {', '.join(sorted(mknown))}"
                )
            basemerge = base.merge if base is not None else MergeSpec()
            d["merge"] = dataclasses.replace(basemerge, **d["merge"])
        try:
            return dataclasses.replace(base, **d) if base is not None else cls(**d)
        except TypeError as exc:
            raise ConfigError(f"{where or 'feature spec'}: {exc}") from None

    def key(self) -> str:
        """A content hash of every parameter that changes the pictures (not the name)."""
        d = self.to_dict()
        d.pop("name")
        d["_version"] = FEATURE_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "FeatureSpec":
        return dataclasses.replace(self, **changes)

    @property
    def n_samples(self) -> int:
        return int(round(self.sr * self.duration))


def _choice(where: str, field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise FeatureError(f"{where}: {field} must be one of {', '.join(allowed)}, got {value!r}")


_MEL = FeatureSpec(name="mel")
#: The seed's six variants, by name.
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

#: ``soundlib gallery`` file names (the seed's example set) → variant.
GALLERY_FILES: dict[str, str] = {
    "spectrogram.png": "mel",
    "gray_scale_spectrogram.png": "mel_gray",
    "non_log_spectrogram.png": "linear",
    "wave_form.png": "waveform",
    "spectrogram_and_wave_form_merged.png": "merged",
    "spectrogram_and_wave_form_stacked.png": "stacked",
}


def get_variant(name: "str | FeatureSpec") -> FeatureSpec:
    """Look a variant up by name (a :class:`FeatureSpec` passes through)."""
    if isinstance(name, FeatureSpec):
        return name
    try:
        return VARIANTS[name]
    except KeyError:
        raise FeatureError(f"unknown feature variant {name!r}; known: {', '.join(VARIANTS)}") from None


def register_variant(spec: FeatureSpec, *, overwrite: bool = False) -> FeatureSpec:
    if spec.name in VARIANTS and VARIANTS[spec.name] != spec and not overwrite:
        raise FeatureError(f"feature variant {spec.name!r} is already registered with other parameters")
    VARIANTS[spec.name] = spec
    return spec


# ---------------------------------------------------------------------------
# Planes: float arrays in [0, 1]

@functools.lru_cache(maxsize=32)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    """librosa's (Slaney) mel filterbank as a sparse CSR matrix.

    About 2 000 of its 131 000 entries are non-zero: the sparse product is ~10x
    faster than a dense BLAS call and needs no BLAS threads (which thrash when
    several featurizing workers share the cores).
    """
    import librosa
    import scipy.sparse

    return scipy.sparse.csr_matrix(
        librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32))


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann


def _power_stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2, centred frames with zero padding (librosa's defaults), shape (1 + n_fft//2, frames)."""
    pad = n_fft // 2
    yp = np.pad(np.asarray(y, dtype=np.float32), pad, mode="constant")
    if yp.shape[0] < n_fft:
        yp = np.pad(yp, (0, n_fft - yp.shape[0]))
    import scipy.fft

    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop_length]
    spec = scipy.fft.rfft(frames * _window(n_fft), axis=-1)  # float32 in, complex64 out
    return np.ascontiguousarray((spec.real**2 + spec.imag**2).T, dtype=np.float32)


def spectrogram_plane(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """The spectrogram as a float32 (freq, frames) array in [0, 1], low frequencies first."""
    power = _power_stft(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    if spec.frequency == "mel":
        S = np.asarray(_mel_basis(spec.sr, spec.n_fft, spec.n_mels, float(spec.fmin), float(fmax)) @ power)
    else:
        freqs = np.linspace(0, spec.sr / 2, power.shape[0])
        S = power[(freqs >= spec.fmin) & (freqs <= fmax)]
    peak = float(S.max()) if S.size else 0.0
    if peak <= 0:
        return np.zeros(S.shape, dtype=np.float32)
    if spec.scale == "db":
        db = 10.0 * np.log10(np.maximum(S, peak * 1e-10) / peak)  # 0 dB at the clip's maximum
        return np.clip(1.0 + db / spec.top_db, 0.0, 1.0).astype(np.float32)
    return (np.sqrt(S) / np.sqrt(peak)).astype(np.float32)  # non-log amplitude


def _resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D float plane, turned so that row 0 is the top (high frequency)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(plane[::-1], dtype=np.float32), mode="F")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def waveform_plane(y: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """A min/max waveform plot as a (height, width) mask in {0, 1}, scaled to the clip's peak."""
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    y = y / peak if peak > 0 else y
    edges = np.linspace(0, y.shape[0], width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, y.shape[0])
    yp = np.append(y, 0.0)
    lo = np.minimum.reduceat(yp, edges[:-1])
    hi = np.maximum.reduceat(yp, edges[:-1])
    top = np.floor((1.0 - hi) * 0.5 * (height - 1)).astype(int)
    bottom = np.ceil((1.0 - lo) * 0.5 * (height - 1)).astype(int)
    rows = np.arange(height)[:, None]
    return ((rows >= top[None, :]) & (rows <= bottom[None, :])).astype(np.float32)


# ---------------------------------------------------------------------------
# Pictures: uint8 (H, W, 3)

@functools.lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a matplotlib colormap name."""
    if name in ("gray", "grey", "Greys_r"):
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    try:
        from matplotlib import colormaps
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise FeatureError(f"colormap {name!r} needs matplotlib") from None
    try:
        cmap = colormaps[name]
    except KeyError:
        raise FeatureError(f"unknown colormap {name!r}; use a matplotlib colormap name such as magma, viridis, gray") from None
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    return np.ascontiguousarray((rgba[:, :3] * 255.0 + 0.5).astype(np.uint8))


def _apply_lut(plane: np.ndarray, name: str) -> np.ndarray:
    idx = (np.clip(plane, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return colormap_lut(name)[idx]


def render_spectrogram(y: np.ndarray, *, spec: FeatureSpec, height: int | None = None) -> np.ndarray:
    """A coloured spectrogram picture (``spec.colormap``), low frequencies at the bottom."""
    plane = _resize(spectrogram_plane(y, spec=spec), height or spec.height, spec.width)
    return _apply_lut(plane, spec.colormap)


def render_waveform(y: np.ndarray, *, spec: FeatureSpec, height: int | None = None) -> np.ndarray:
    """A waveform plot: ``waveform_color`` on ``background_color``."""
    mask = waveform_plane(y, height=height or spec.height, width=spec.width)[..., None]
    fg = np.asarray(spec.waveform_color, dtype=np.float32)
    bg = np.asarray(spec.background_color, dtype=np.float32)
    return (bg + mask * (fg - bg) + 0.5).astype(np.uint8)


def _clip_seed(y: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(y, dtype=np.float32).tobytes())


def render_merged(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Spectrogram and waveform as channels of one picture (:func:`~soundlib.merge.merge_channels`).

    The jitter of the strengths is seeded by ``spec.merge.seed`` and the clip's
    samples, so one clip always gives the same picture.
    """
    planes = {
        "spectrogram": _resize(spectrogram_plane(y, spec=spec), spec.height, spec.width),
        "waveform": waveform_plane(y, height=spec.height, width=spec.width),
    }
    return merge_channels(planes, spec=spec.merge, clip_seed=_clip_seed(y) if spec.merge.jitter else 0)


def render_stacked(y: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Spectrogram panel on top of a waveform panel, ``merge.stack_ratio`` of the height on top."""
    top_h = max(1, min(spec.height - 1, int(round(spec.height * spec.merge.stack_ratio))))
    return stack_panels(
        render_spectrogram(y, spec=spec, height=top_h),
        render_waveform(y, spec=spec, height=spec.height - top_h),
    )


_RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "spectrogram": render_spectrogram,
    "waveform": render_waveform,
    "merged": render_merged,
    "stacked": render_stacked,
}


def render(y: np.ndarray, spec: "FeatureSpec | str") -> np.ndarray:
    """Render mono audio ``y`` (already at ``spec.sr``) as a (H, W, 3) uint8 picture."""
    spec = get_variant(spec)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise FeatureError(f"render needs a non-empty 1-D signal, got shape {y.shape}")
    return _RENDERERS[spec.kind](y, spec=spec)


# ---------------------------------------------------------------------------
# Files

def featurize_clip(path: str | os.PathLike, spec: "FeatureSpec | str") -> np.ndarray:
    """Load one audio file and render it with ``spec``."""
    from .audio import load_audio

    spec = get_variant(spec)
    return render(load_audio(path, sr=spec.sr, duration=spec.duration), spec)


def write_png(path: str | os.PathLike, picture: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) picture as PNG, atomically."""
    from PIL import Image

    from ._io import atomic_path

    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
        raise FeatureError(f"{path}: expected a uint8 (H, W, 3) picture, got {picture.dtype} {picture.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG", compress_level=1)
    return Path(path)


def read_picture(path: str | os.PathLike) -> np.ndarray:
    """Read a picture file as uint8 (H, W, 3); raise :class:`FeatureError` naming the file if it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode not in ("RGB", "L", "RGBA", "P", "I;16", "I", "F"):
                raise FeatureError(f"{path}: unsupported picture mode {img.mode}")
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FeatureError(f"{path}: picture file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise FeatureError(f"{path}: not a readable picture ({exc})") from None


def picture_path(clip_path: Path, root: Path, out_dir: Path) -> Path:
    """Where a clip's picture goes: its path under the dataset root (minus ``audio/``), as .png."""
    try:
        rel = Path(clip_path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        rel = Path(Path(clip_path).name)
    if rel.parts and rel.parts[0] == "audio" and len(rel.parts) > 1:
        rel = Path(*rel.parts[1:])
    return Path(out_dir) / rel.with_suffix(".png")


@dataclasses.dataclass
class FeaturizeReport:
    """What :func:`featurize` did: pictures in memory or files written, and the failures."""

    spec: FeatureSpec
    pictures: dict[Path, np.ndarray] = dataclasses.field(default_factory=dict)
    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    failures: list[tuple[Path, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def failure_text(self) -> str:
        lines = [f"{len(self.failures)} file(s) failed:"]
        lines += [f"  {msg}" for _, msg in self.failures]
        return "\n".join(lines)


def _work(args: tuple[Path, FeatureSpec, Path | None]) -> tuple[Path, np.ndarray | None, str | None]:
    path, spec, dest = args
    try:
        pic = featurize_clip(path, spec)
        if dest is not None:
            write_png(dest, pic)
            return path, None, None
        return path, pic, None
    except SoundlibError as exc:
        return path, None, str(exc)
    except Exception as exc:  # keep going; report the file with what went wrong
        return path, None, f"{path}: {type(exc).__name__}: {exc}"


def _check_out_dir(out_dir: Path, spec: FeatureSpec) -> None:
    from ._io import write_json_atomic

    marker = out_dir / "feature_spec.json"
    if marker.is_file():
        try:
            old = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old is None or old.get("key") != spec.key():
            raise FeatureError(
                f"{out_dir} already holds pictures made with another feature spec ({marker}); "
                "choose another --out folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"key": spec.key(), "spec": spec.to_dict(), "feature_version": FEATURE_VERSION})


def featurize(
    clips: "Iterable[Any]",
    spec: "FeatureSpec | str",
    *,
    out_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> FeaturizeReport:
    """Render many clips; keep going past bad files and report them.

    Parameters
    ----------
    clips : iterable of :class:`~soundlib.data.Clip` or paths, or a :class:`~soundlib.data.Dataset`
    spec : FeatureSpec or variant name
    out_dir : path, optional
        Write one PNG per clip under it (see :func:`picture_path`), skipping
        pictures already there from the same spec. Without it, pictures stay in memory.
    root : path, optional
        Dataset root the PNG paths are made relative to (a Dataset's own root by default).
    jobs : int
        Worker processes (1: in this process).
    """
    spec = get_variant(spec)
    if root is None:
        root = getattr(clips, "root", None)
    paths = [Path(getattr(c, "path", c)) for c in clips]
    if root is None:
        root = Path(os.path.commonpath([p.parent.resolve() for p in paths])) if paths else Path(".")
    report = FeaturizeReport(spec=spec)
    tasks: list[tuple[Path, FeatureSpec, Path | None]] = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        _check_out_dir(out_dir, spec)
        for p in paths:
            dest = picture_path(p, Path(root), out_dir)
            if dest.is_file():
                report.skipped.append(dest)
            else:
                tasks.append((p, spec, dest))
    else:
        tasks = [(p, spec, None) for p in paths]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=f"featurize {spec.name}", unit="clip", disable=not progress)
    try:
        if jobs > 1 and len(tasks) > 1:
            import concurrent.futures as cf
            import multiprocessing as mp

            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
                results = pool.map(_work, tasks, chunksize=max(1, len(tasks) // (jobs * 8)))
                for task, (path, pic, err) in zip(tasks, results):
                    _collect(report, task, path, pic, err)
                    bar.update()
        else:
            for task in tasks:
                _collect(report, task, *_work(task))
                bar.update()
    finally:
        bar.close()
    return report


def _collect(report: FeaturizeReport, task, path, pic, err) -> None:
    if err is not None:
        report.failures.append((path, err))
    elif task[2] is not None:
        report.written.append(task[2])
    else:
        report.pictures[path] = pic


def write_gallery(clip: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write the seed's example set for one clip: one PNG per variant in :data:`GALLERY_FILES`."""
    from .audio import load_audio

    out_dir = Path(out_dir)
    written = []
    cache: dict[tuple[int, float], np.ndarray] = {}
    for filename, variant in GALLERY_FILES.items():
        spec = get_variant(variant)
        key = (spec.sr, spec.duration)
        if key not in cache:
            cache[key] = load_audio(clip, sr=spec.sr, duration=spec.duration)
        written.append(write_png(out_dir / filename, render(cache[key], spec)))
    return written
