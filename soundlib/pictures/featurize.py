"""Pictures on disk: render clips to PNG files (or memory), read pictures back, the gallery.

:func:`featurize` renders many clips with one :class:`~soundlib.pictures.variants.FeatureSpec`,
in worker processes, keeping going past bad files and reporting them. It owns
the layout of a pictures folder: one PNG per clip under the clip's path
relative to the dataset root, its file name kept whole (``x.wav`` ->
``x.wav.png``, so ``x.wav`` and ``x.flac`` never share a picture), and
``feature_spec.json`` recording the spec and the dataset root that made them
(a folder never mixes two specs or two datasets). Two clips that would share
a picture are an error, never a silent overwrite.

A spec whose duration is a rule (``fit``, the built-in variants' default, or
``auto``) gets its window from the clips: :func:`featurize` from all the clips
it is given (the rule :func:`soundlib.evaluation.evaluate.evaluate` applies to a dataset),
the one-clip functions and the gallery from that clip's own length
(:func:`soundlib.pictures.variants.resolve_for_clips`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from soundlib.errors import FeatureError, SoundlibError
from soundlib.pictures.features import render
from soundlib.pictures.variants import FEATURE_VERSION, FeatureSpec, get_variant, resolve_for_clips

__all__ = [
    "GALLERY_FILES",
    "MAX_PICTURE_PIXELS",
    "PICTURES_LAYOUT",
    "featurize_clip",
    "featurize_windows",
    "iter_featurize_windows",
    "window_starts_of",
    "featurize",
    "FeaturizeReport",
    "picture_path",
    "write_png",
    "read_picture",
    "write_gallery",
]

#: ``soundlib gallery`` file names (the seed's example set) -> variant.
GALLERY_FILES: dict[str, str] = {
    "spectrogram.png": "mel",
    "gray_scale_spectrogram.png": "mel_gray",
    "non_log_spectrogram.png": "linear",
    "wave_form.png": "waveform",
    "spectrogram_and_wave_form_merged.png": "merged",
    "spectrogram_and_wave_form_stacked.png": "stacked",
}

#: Largest picture :func:`read_picture` decodes (the largest a feature spec makes, 4096 x 4096).
MAX_PICTURE_PIXELS = 4096 * 4096
#: Version of the pictures-folder layout in ``feature_spec.json`` (2: file names keep the audio extension).
PICTURES_LAYOUT = 2


def _one_clip(path: str | os.PathLike, spec: FeatureSpec) -> FeatureSpec:
    """``spec`` with a rule's duration (``fit``, ``auto``) chosen from this clip's own length."""
    return spec if spec.resolved else resolve_for_clips(spec, [path])[0]


def featurize_clip(path: str | os.PathLike, spec: FeatureSpec) -> np.ndarray:
    """Load the first window of one audio file and render it with ``spec``
    (a rule's duration: the clip's own length, see :func:`soundlib.pictures.variants.resolve_for_clips`).

    Returns
    -------
    np.ndarray, shape (spec.height, spec.width, 3), dtype uint8
    """
    from soundlib.audio.clips import load_audio

    spec = _one_clip(path, spec)
    return render(load_audio(path, sr=spec.sr, duration=spec.seconds, pad=spec.pad), spec)


def window_starts_of(path: str | os.PathLike, spec: FeatureSpec) -> list[float]:
    """Start (seconds) of each window ``spec`` cuts the file into, from its header alone
    (a rule's duration: the clip's own length)."""
    from soundlib.audio.clips import clip_samples, window_starts

    spec = _one_clip(path, spec)
    hop = max(1, int(round(spec.hop_seconds * spec.sr)))
    return [s / spec.sr for s in window_starts(clip_samples(path, spec.sr), spec.n_samples, hop, path=path,
                                               sr=spec.sr)]


def iter_featurize_windows(path: str | os.PathLike, spec: FeatureSpec) -> Iterator[tuple[float, np.ndarray]]:
    """Every window of one clip rendered with ``spec``, streamed: ``(start seconds, picture)`` in time order.

    The clip is read once, a block at a time (:func:`soundlib.audio.clips.stream_windows`), so memory stays at a
    window's audio and picture whatever its length; the pictures are those of :func:`featurize_windows`.
    A clip that fails a check known only once it is read whole (a silent clip) raises after its last picture.

    Yields
    ------
    start : float
    picture : np.ndarray, shape (spec.height, spec.width, 3), dtype uint8
    """
    from soundlib.audio.clips import stream_windows

    for start, window in stream_windows(path, sr=spec.sr, duration=spec.seconds, hop=spec.hop_seconds,
                                        pad=spec.pad):
        yield start, render(window, spec)


def featurize_windows(path: str | os.PathLike, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Every window of one clip rendered with ``spec`` (a clip that fits one window gives one picture;
    a rule's duration: the clip's own length).

    Only the pictures are held (the audio is streamed, :func:`iter_featurize_windows`).

    Returns
    -------
    pictures : np.ndarray, shape (n_windows, spec.height, spec.width, 3), dtype uint8
    starts : np.ndarray, shape (n_windows,)
        Start of each window in seconds.
    """
    spec = _one_clip(path, spec)
    pictures, starts = [], []
    for start, picture in iter_featurize_windows(path, spec):
        pictures.append(picture)
        starts.append(start)
    return np.stack(pictures), np.asarray(starts, dtype=np.float64)


def write_png(path: str | os.PathLike, picture: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) picture as PNG, atomically."""
    from PIL import Image

    from soundlib.atomic import atomic_path

    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
        raise FeatureError(f"{path}: expected a uint8 (H, W, 3) picture, got {picture.dtype} {picture.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG", compress_level=1)
    return Path(path)


def read_picture(path: str | os.PathLike) -> np.ndarray:
    """Read a picture file as uint8 (H, W, 3); raise :class:`FeatureError` naming the file if it is not one.

    Pictures of more than :data:`MAX_PICTURE_PIXELS` pixels are refused before
    they are decoded (a 20000 x 20000 PNG would need over a gigabyte).
    """
    import stat
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # reported by the open below
    if mode is not None and not stat.S_ISREG(mode):  # a named pipe would block the open forever
        raise FeatureError(f"{path}: is {'a folder' if stat.S_ISDIR(mode) else 'not a regular file'}; expected a "
                           "picture file (not read)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by size
            img = Image.open(path)
        with img:
            w, h = img.size
            if w * h > MAX_PICTURE_PIXELS:
                raise FeatureError(f"{path}: picture is {w}x{h} pixels, more than the {MAX_PICTURE_PIXELS:,} "
                                   "soundlib decodes (4096x4096); not read")
            if img.mode not in ("RGB", "L", "RGBA", "P", "I;16", "I", "F"):
                raise FeatureError(f"{path}: unsupported picture mode {img.mode}")
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FeatureError(f"{path}: picture file not found") from None
    except PermissionError:
        raise FeatureError(f"{path}: cannot read the picture: permission denied") from None
    except Image.DecompressionBombError as exc:
        raise FeatureError(f"{path}: picture has more than the {MAX_PICTURE_PIXELS:,} pixels soundlib decodes "
                           f"(4096x4096); not read ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FeatureError(f"{path}: not a readable picture ({type(exc).__name__}: {exc})") from None


def _relative(path: Path, root: Path) -> Path | None:
    """``path`` relative to ``root`` (lexically; links are not resolved, so a link loop cannot raise), or None."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else Path(rel)


def picture_path(clip_path: Path, root: Path, out_dir: Path) -> Path:
    """Where a clip's picture goes: its path under the dataset root (minus a leading ``audio/``), with
    ``.png`` added to the whole file name (``fold1/x.wav`` -> ``OUT/fold1/x.wav.png``).

    Raises
    ------
    FeatureError
        The clip is not under ``root``.
    """
    rel = _relative(Path(clip_path), Path(root))
    if rel is None or rel == Path("."):
        raise FeatureError(f"{clip_path}: not inside the dataset root {root}, so it has no place in the pictures "
                           "folder")
    if rel.parts and rel.parts[0] == "audio" and len(rel.parts) > 1:
        rel = Path(*rel.parts[1:])
    return Path(out_dir) / rel.with_name(rel.name + ".png")


def _common_root(paths: list[Path], root: Path | None) -> Path:
    """``root`` when every path is inside it, else the deepest folder holding ``root`` and every path."""
    folders = [os.path.abspath(p.parent) for p in paths]
    if root is not None and all(_relative(p, root) is not None for p in paths):
        return Path(root)
    if root is not None:
        folders.append(os.path.abspath(root))
    return Path(os.path.commonpath(folders)) if folders else Path(".")


def _destinations(paths: list[Path], root: Path, out_dir: Path) -> dict[Path, Path]:
    """Picture path of each distinct clip; :class:`FeatureError` when two clips would share one."""
    dests: dict[Path, Path] = {}
    owner: dict[str, Path] = {}
    clashes = []
    for p in dict.fromkeys(paths):  # a clip listed twice is rendered once
        dest = picture_path(p, root, out_dir)
        key = os.path.normcase(str(dest)).lower()  # case-insensitive filesystems would merge x.WAV and x.wav
        if key in owner and os.path.abspath(owner[key]) != os.path.abspath(p):
            clashes.append(f"{owner[key]} and {p} -> {dest}")
        owner.setdefault(key, p)
        dests[p] = dest
    if clashes:
        raise FeatureError(f"{len(clashes)} picture path(s) would be shared by two clips, and one picture would "
                           f"overwrite the other: {'; '.join(clashes[:3])}{' ...' if len(clashes) > 3 else ''}; "
                           "rename the files")
    return dests


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
        """True when no file failed."""
        return not self.failures

    def failure_text(self) -> str:
        """The failures, one line each, for printing."""
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


def _check_out_dir(out_dir: Path, spec: FeatureSpec, root: Path) -> None:
    """Refuse a pictures folder made with another spec, from another dataset root, or in the old layout
    (or a path that cannot be a folder of pictures)."""
    from soundlib.atomic import check_output_path, ensure_dir, write_json_atomic

    check_output_path(out_dir, folder=True)
    marker = out_dir / "feature_spec.json"
    root_text = os.path.abspath(root)
    if marker.is_file():
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("key") != spec.key():
            raise FeatureError(
                f"{out_dir} already holds pictures made with another feature spec ({marker}); "
                "choose another --out folder"
            )
        if old.get("layout") != PICTURES_LAYOUT:
            raise FeatureError(f"{out_dir} holds pictures written by an older soundlib, named without the audio "
                               "extension (x.png, now x.wav.png); choose another --out folder")
        if old.get("root") != root_text:
            raise FeatureError(f"{out_dir} holds pictures of the clips under {old.get('root')}, not {root_text}; "
                               "pictures of two datasets would overwrite one another: choose another --out folder")
        return
    ensure_dir(out_dir)
    write_json_atomic(marker, {"key": spec.key(), "spec": spec.to_dict(), "feature_version": FEATURE_VERSION,
                               "layout": PICTURES_LAYOUT, "root": root_text})


def featurize(
    clips: "Iterable[Any]",
    spec: FeatureSpec,
    *,
    out_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> FeaturizeReport:
    """Render many clips; keep going past bad files and report them.

    Parameters
    ----------
    clips : iterable of :class:`~soundlib.audio.datasets.Clip` or paths, or a :class:`~soundlib.audio.datasets.Dataset`
    spec : FeatureSpec
        A rule's duration (``fit``, ``auto``) is chosen from the lengths of all the clips
        (their headers) before anything is rendered; the report's ``spec`` holds the number.
    out_dir : path, optional
        Write one PNG per clip under it (see :func:`picture_path`), skipping
        pictures already there from the same spec. Without it, pictures stay in memory.
    root : path, optional
        Dataset root the PNG paths are made relative to (a Dataset's own root by
        default; widened to a folder holding every clip when some lie outside it).
    jobs : int
        Worker processes (1: in this process). They die with this process, even
        when it is killed with ``kill -9``.

    Raises
    ------
    FeatureError
        ``out_dir`` holds pictures of another spec or dataset root, or two clips
        would share a picture path.
    """
    if root is None:
        root = getattr(clips, "root", None)
    paths = [Path(getattr(c, "path", c)) for c in clips]
    root = _common_root(paths, Path(root) if root is not None else None)
    spec = resolve_for_clips(spec, paths)[0] if paths else spec
    from soundlib.pictures.features import empty_mel_warning

    empty = empty_mel_warning(spec)
    if empty:
        from soundlib.errors import warn

        warn(empty)
    report = FeaturizeReport(spec=spec)
    tasks: list[tuple[Path, FeatureSpec, Path | None]] = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        dests = _destinations(paths, root, out_dir)
        _check_out_dir(out_dir, spec, root)
        for p, dest in dests.items():
            if dest.is_file():
                report.skipped.append(dest)
            else:
                tasks.append((p, spec, dest))
    else:
        tasks = [(p, spec, None) for p in dict.fromkeys(paths)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=f"featurize {spec.name}", unit="clip", disable=not progress)
    try:
        if jobs > 1 and len(tasks) > 1:
            import concurrent.futures as cf
            import multiprocessing as mp

            from soundlib.runtime import die_with_parent

            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                        initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
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
    """Write the seed's example set for one clip: one PNG per variant in :data:`GALLERY_FILES`
    (a rule's duration: the clip's own length)."""
    from soundlib.audio.clips import load_audio

    out_dir = Path(out_dir)
    written = []
    cache: dict[tuple[int, float, str], np.ndarray] = {}
    for filename, variant in GALLERY_FILES.items():
        spec = _one_clip(clip, get_variant(variant))
        key = (spec.sr, spec.seconds, spec.pad)
        if key not in cache:
            cache[key] = load_audio(clip, sr=spec.sr, duration=spec.seconds, pad=spec.pad)
        written.append(write_png(out_dir / filename, render(cache[key], spec)))
    return written
