"""Reading datasets from disk: UrbanSound8K, ESC-50, a manifest CSV or a folder per class
(:func:`load_dataset` picks the loader). CSVs are read as UTF-8 (a file in another encoding is refused
with the line and byte that are not UTF-8); every error names the file, the line and what was expected.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

from soundlib.audio.datasets import (AUDIO_EXTENSIONS, INCOMPLETE_MARKER, US8K_CLASSES, US8K_HEADER, Clip, Dataset, Grouping,
                                     compile_group_regex, grouped_by_names, regroup)
from soundlib.audio.folds import MAX_FOLD
from soundlib.errors import DatasetError

__all__ = [
    "CSV_ENCODING", "load_urbansound8k", "load_esc50", "load_manifest", "list_audio_files", "load_folder",
    "load_dataset",
]


#: The one encoding metadata and manifest CSVs are read with (a UTF-8 byte-order mark is allowed).
CSV_ENCODING = "utf-8-sig"


def _decode_error(path: Path, exc: UnicodeDecodeError) -> DatasetError:
    """A :class:`DatasetError` naming the file, the encoding tried and where decoding failed."""
    try:
        with open(path, "rb") as fh:
            line = fh.read(exc.start).count(b"\n") + 1
    except OSError:
        line = None
    where = f"line {line}, " if line is not None else ""
    bad = exc.object[exc.start:exc.end].hex(" ") if isinstance(exc.object, (bytes, bytearray)) else "?"
    return DatasetError(f"{path}: cannot be read as UTF-8 (the encoding soundlib reads CSVs with): byte(s) {bad} "
                        f"at {where}byte {exc.start} are not UTF-8; it looks like another encoding (Latin-1, "
                        "Windows-1252...): save it as UTF-8")


def _os_error(path: Path, exc: OSError, what: str = "file") -> DatasetError:
    """A :class:`DatasetError` naming the file and the system's reason (permission denied, ...)."""
    return DatasetError(f"{path}: cannot read the {what}: {(exc.strerror or str(exc)).lower()}")


def _check_header(path: Path, header: Sequence[str]) -> list[str]:
    """The stripped header; :class:`DatasetError` for an empty or repeated column name."""
    names = [h.strip() for h in header]
    repeated = sorted({h for h in names if names.count(h) > 1})
    if repeated:
        raise DatasetError(f"{path}: column(s) {', '.join(repr(h) for h in repeated)} appear more than once in the "
                           f"header ({', '.join(names)}); each column must be named once")
    return names


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: metadata file not found")
    with _csv_errors(path), open(path, newline="", encoding=CSV_ENCODING) as fh:
        reader = csv.DictReader(fh)
        header = _check_header(path, reader.fieldnames or [])
        missing = [col for col in required if col not in header]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(required)}"
                f" (found {', '.join(header) or 'no header'})"
            )
        reader.fieldnames = header
        rows = [row for row in reader]
    if not rows:
        raise DatasetError(f"{path}: metadata has a header but no rows")
    return rows


#: An integer in a CSV file: ASCII digits with an optional sign (not Python's ``1_0`` or other scripts' digits).
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def _int(path: Path, lineno: int, column: str, value: str | None) -> int:
    """``value`` as an integer of at most 64 bits, or a :class:`DatasetError` naming the file, line and column."""
    text = str(value).strip() if value is not None else ""
    if not _INTEGER.fullmatch(text) or not -2**63 <= int(text) < 2**63:
        raise DatasetError(f"{path}, line {lineno}: column {column!r} should be an integer, got {_shown(value)} "
                           "(ASCII digits 0-9 with an optional sign, within 64 bits)")
    return int(text)


def _fold(path: Path, lineno: int, value: str | None) -> int:
    """A fold number: an integer (:func:`_int`) from 0 to :data:`~soundlib.audio.folds.MAX_FOLD`."""
    text = str(value).strip() if value is not None else ""
    digits = text.lstrip("+-").lstrip("0")
    if re.fullmatch(r"[+-]?[0-9]+", text) and (len(digits) > 4 or not 0 <= int(text) <= MAX_FOLD):
        raise DatasetError(f"{path}, line {lineno}: column 'fold' should be a fold number from 0 to {MAX_FOLD}, "
                           f"got {_shown(value)}")
    return _int(path, lineno, "fold", value)


def _shown(value: str | None) -> str:
    """``value`` quoted, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(str(value))} characters)"



def _float(path: Path, lineno: int, column: str, value: str | None) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        raise DatasetError(f"{path}, line {lineno}: column {column!r} should be a number, got {value!r}") from None


def _check_files_exist(clips: Sequence[Clip], source: Path) -> None:
    missing = [c.path for c in clips if not c.path.is_file()]
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(
            f"{source}: {len(missing)} of {len(clips)} listed audio file(s) do not exist:\n  {shown}{more}"
        )


def load_urbansound8k(path: str | os.PathLike, *, check_files: bool = True) -> Dataset:
    """Load the UrbanSound8K layout.

    ``path`` is the dataset folder (``metadata/UrbanSound8K.csv`` + ``audio/foldN/``)
    or the metadata CSV itself. With ``check_files=False`` only metadata is read
    (useful to inspect folds without the audio).
    """
    path = Path(path)
    if path.is_dir():
        csv_path = path / "metadata" / "UrbanSound8K.csv"
        root = path
    else:
        csv_path = path
        root = path.parent.parent if path.parent.name == "metadata" else path.parent
    rows = _read_csv(csv_path, US8K_HEADER)
    clips = []
    for lineno, row in enumerate(rows, start=2):
        class_id = _int(csv_path, lineno, "classID", row["classID"])
        label = (row["class"] or "").strip()
        if label not in US8K_CLASSES:
            raise DatasetError(
                f"{csv_path}, line {lineno}: unknown class {label!r}; expected one of {', '.join(US8K_CLASSES)}"
            )
        if US8K_CLASSES.index(label) != class_id:
            raise DatasetError(
                f"{csv_path}, line {lineno}: classID {class_id} does not match class {label!r} "
                f"(expected classID {US8K_CLASSES.index(label)})"
            )
        fold = _fold(csv_path, lineno, row["fold"])
        name = row["slice_file_name"].strip()
        clips.append(
            Clip(
                path=root / "audio" / f"fold{fold}" / name,
                label=label,
                class_id=class_id,
                fold=fold,
                group=f"fs{_int(csv_path, lineno, 'fsID', row['fsID'])}",
                meta={
                    "start": _float(csv_path, lineno, "start", row["start"]),
                    "end": _float(csv_path, lineno, "end", row["end"]),
                    "salience": _int(csv_path, lineno, "salience", row["salience"]),
                },
            )
        )
    if check_files:
        _check_files_exist(clips, csv_path)
    # soundlib's synthetic corpus has this layout too: it is named for what it is (its marker file beside the CSV)
    name = "synthetic" if (csv_path.parent / "synth_config.json").is_file() else "urbansound8k"
    return Dataset(name, root, US8K_CLASSES, tuple(clips),
                   Grouping("metadata", "UrbanSound8K metadata: fsID (the Freesound recording)"))


def load_esc50(path: str | os.PathLike, *, check_files: bool = True) -> Dataset:
    """Load the ESC-50 layout (``meta/esc50.csv`` + ``audio/``), 5 folds."""
    path = Path(path)
    if path.is_dir():
        csv_path, root = path / "meta" / "esc50.csv", path
    else:
        csv_path = path
        root = path.parent.parent if path.parent.name == "meta" else path.parent
    rows = _read_csv(csv_path, ("filename", "fold", "target", "category"))
    by_id: dict[int, str] = {}
    clips = []
    for lineno, row in enumerate(rows, start=2):
        target = _int(csv_path, lineno, "target", row["target"])
        label = (row["category"] or "").strip()
        if not label:
            raise DatasetError(f"{csv_path}, line {lineno}: empty category")
        if by_id.setdefault(target, label) != label:
            raise DatasetError(
                f"{csv_path}, line {lineno}: target {target} is {label!r} here but {by_id[target]!r} earlier"
            )
        name = row["filename"].strip()
        src = (row.get("src_file") or "").strip() or Path(name).stem
        clips.append(
            Clip(
                path=root / "audio" / name,
                label=label,
                class_id=target,
                fold=_fold(csv_path, lineno, row["fold"]),
                group=f"src{src}",
                meta={k: row[k] for k in ("esc10", "take") if k in row},
            )
        )
    ids = sorted(by_id)
    if ids != list(range(len(ids))):
        raise DatasetError(f"{csv_path}: targets should be 0..{len(ids) - 1} without gaps, got {ids}")
    if check_files:
        _check_files_exist(clips, csv_path)
    return Dataset("esc50", root, tuple(by_id[i] for i in ids), tuple(clips),
                   Grouping("metadata", "ESC-50 metadata: src_file (the Freesound recording)"))


def load_manifest(path: str | os.PathLike, *, check_files: bool = True, group_by: str | None = None) -> Dataset:
    """Load a manifest CSV with columns ``path,label`` and optional ``fold,group``.

    Relative paths resolve against the CSV's folder. Class ids follow the sorted
    label names. A ``label`` naming several classes separated by ``;`` (``siren;dog_bark``)
    makes a multi-label clip (:attr:`Clip.labels`; the classes are every name that appears).
    The recording of each file is its ``group`` column, or the
    column named by ``group_by`` (every row must fill it). Without either,
    UrbanSound8K or ESC-50 file names are recognised (:func:`group_by_file_names`);
    otherwise every file is its own recording (:data:`GROUPING_UNKNOWN`): give a
    group when several files were cut from the same recording.
    """
    csv_path = Path(path)
    rows = _read_csv(csv_path, ("path", "label"))
    if group_by is not None and group_by not in rows[0]:
        raise DatasetError(f"{csv_path}: no column {group_by!r} to group recordings by (group_by / --group-by); "
                           f"its columns are {', '.join(rows[0])}")
    column = group_by or "group"
    has_fold = "fold" in rows[0]
    parts = [[x.strip() for x in (r["label"] or "").split(";")] for r in rows]
    for lineno, names in enumerate(parts, start=2):
        if not any(names):
            raise DatasetError(f"{csv_path}, line {lineno}: empty label")
        if not all(names):
            raise DatasetError(f"{csv_path}, line {lineno}: label {rows[lineno - 2]['label']!r} has an empty class "
                               "name between ';' (several classes are written 'a;b')")
        if len(set(names)) != len(names):
            raise DatasetError(f"{csv_path}, line {lineno}: label {rows[lineno - 2]['label']!r} names a class twice")
    labels = sorted({x for names in parts for x in names})
    clips = []
    for lineno, row in enumerate(rows, start=2):
        raw = (row["path"] or "").strip()
        if not raw:
            raise DatasetError(f"{csv_path}, line {lineno}: empty path")
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = csv_path.parent / p
        names = parts[lineno - 2]
        label = names[0]
        fold_raw = (row.get("fold") or "").strip() if has_fold else ""
        group = (row.get(column) or "").strip()
        if group_by is not None and not group:
            raise DatasetError(f"{csv_path}, line {lineno}: empty {group_by!r}, the column recordings are grouped by "
                               "(group_by / --group-by); fill it for every row")
        clips.append(
            Clip(
                path=p,
                label=label,
                class_id=labels.index(label),
                fold=_fold(csv_path, lineno, fold_raw) if fold_raw else None,
                group=group or str(p),
                labels=tuple(names) if len(names) > 1 else (),
            )
        )
    if has_fold and any(c.fold is None for c in clips) and any(c.fold is not None for c in clips):
        raise DatasetError(f"{csv_path}: column 'fold' is filled for some rows but empty for others")
    if check_files:
        _check_files_exist(clips, csv_path)
    grouped = any((r.get(column) or "").strip() for r in rows)
    ds = Dataset(csv_path.stem, csv_path.parent, tuple(labels), tuple(clips),
                 Grouping("column", f"manifest column {column!r}" + (" (group_by)" if group_by else "")))
    return ds if grouped else grouped_by_names(ds)


def list_audio_files(folder: str | os.PathLike, *, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """The audio files under ``folder``, and the audio-named entries that are not readable files.

    Symbolic links to folders are not followed (a link loop cannot recurse);
    an entry named like audio that is a broken or looping link, or not a
    regular file, is returned in the second list so the caller can name it.

    Returns
    -------
    files, broken : list of Path, sorted
    """
    folder = Path(folder)
    files: list[Path] = []
    broken: list[Path] = []
    try:
        entries = folder.rglob("*") if recursive else folder.iterdir()
        for f in entries:
            if f.suffix.lower() not in AUDIO_EXTENSIONS or any(part.startswith(".") for part in
                                                                f.relative_to(folder).parts):
                continue
            try:
                ok = f.is_file() and f.stat().st_size >= 0
            except OSError:  # a looping link raises ELOOP on stat
                ok = False
            (files if ok else broken).append(f)
    except OSError as exc:
        raise _os_error(folder, exc, "folder") from None
    return sorted(files), sorted(broken)


def load_folder(path: str | os.PathLike) -> Dataset:
    """Load a folder-per-class tree: ``ROOT/<label>/*.wav``. No folds.

    Audio files directly in ``ROOT`` belong to no class and are not used (a
    warning names them); so are links that loop or lead nowhere.
    """
    from soundlib.errors import warn

    root = Path(path)
    try:
        labels = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as exc:
        raise _os_error(root, exc, "folder") from None
    clips, broken = [], []
    for class_id, label in enumerate(labels):
        files, bad = list_audio_files(root / label)
        broken += bad
        clips += [Clip(path=f, label=label, class_id=class_id, fold=None, group=str(f)) for f in files]
    top, _ = list_audio_files(root, recursive=False)
    if not clips:
        found = (f"; it holds {len(top)} audio file(s) directly ({', '.join(p.name for p in top[:3])}"
                 f"{', ...' if len(top) > 3 else ''}), which belong to no class" if top else "")
        subs = f" (sub-folders: {', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})" if labels else ""
        raise DatasetError(
            f"{root}: no audio files found in a sub-folder per class{subs}{found}; expected one sub-folder per class "
            f"holding {', '.join(sorted(AUDIO_EXTENSIONS))} files"
        )
    if top:
        warn(f"{root}: {len(top)} audio file(s) directly in the dataset folder belong to no class and are not "
             f"used ({', '.join(p.name for p in top[:3])}{', ...' if len(top) > 3 else ''})")
    if broken:
        warn(f"{root}: {len(broken)} audio-named entr{'y is' if len(broken) == 1 else 'ies are'} not a readable "
             f"file (a broken or looping link?) and not used: {', '.join(str(p) for p in broken[:3])}"
             f"{', ...' if len(broken) > 3 else ''}")
    used = sorted({c.label for c in clips})
    return grouped_by_names(Dataset(root.name, root, tuple(used), tuple(
        dataclasses.replace(c, class_id=used.index(c.label)) for c in clips)))


def _no_group_by(group_by: str | None, path: Path, kind: str) -> None:
    """Refuse ``group_by`` (a manifest column) for a dataset that is not a manifest."""
    if group_by is not None:
        raise DatasetError(f"{path}: group_by (--group-by {group_by}) names a column of a manifest CSV, but this is "
                           f"{kind}; use group_regex (--group-regex) to take the recording from the file names")


def _csv_header(path: Path) -> list[str]:
    with _csv_errors(path), open(path, newline="", encoding=CSV_ENCODING) as fh:
        return _check_header(path, next(csv.reader(fh), []))


@contextlib.contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    """Turn decoding, CSV and OS errors while reading metadata file ``path`` into a :class:`DatasetError`
    that names it."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: not a valid CSV file ({exc})") from None
    except OSError as exc:
        raise _os_error(path, exc, "metadata file") from None


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return "no details"


def load_dataset(path: str | os.PathLike, *, check_files: bool = True, group_by: str | None = None,
                 group_regex: str | None = None) -> Dataset:
    """Open any supported dataset, choosing the loader from what ``path`` is.

    Parameters
    ----------
    group_by : str, optional
        A manifest CSV's column naming each file's recording (instead of ``group``).
    group_regex : str, optional
        A regex with one group, searched in each file name, whose match names the recording
        (:func:`regroup`); any kind of dataset.
    """
    from soundlib.errors import ConfigError

    if group_by is not None and group_regex is not None:
        raise ConfigError("give group_by (--group-by) or group_regex (--group-regex), not both")
    if group_regex is not None:
        compile_group_regex(group_regex)  # a bad regex fails before the dataset is read
        ds = load_dataset(path, check_files=check_files)
        return regroup(ds, group_regex)
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: dataset path does not exist")
    if path.is_dir() and (path / INCOMPLETE_MARKER).exists():
        raise DatasetError(f"{path}: incomplete: it was being written when the writer stopped ({INCOMPLETE_MARKER}: "
                           f"{_first_line(path / INCOMPLETE_MARKER)}); run that command again (e.g. `soundlib "
                           "download`) to finish it")
    if path.is_dir():
        if (path / "metadata" / "UrbanSound8K.csv").is_file():
            _no_group_by(group_by, path, "an UrbanSound8K folder (grouped by fsID)")
            return load_urbansound8k(path, check_files=check_files)
        if (path / "meta" / "esc50.csv").is_file():
            _no_group_by(group_by, path, "an ESC-50 folder (grouped by src_file)")
            return load_esc50(path, check_files=check_files)
        _no_group_by(group_by, path, "a folder per class")
        return load_folder(path)
    if path.suffix.lower() == ".csv":
        header = _csv_header(path)
        if set(US8K_HEADER) <= set(header):
            _no_group_by(group_by, path, "UrbanSound8K metadata (grouped by fsID)")
            return load_urbansound8k(path, check_files=check_files)
        if {"filename", "target", "category", "fold"} <= set(header):
            _no_group_by(group_by, path, "ESC-50 metadata (grouped by src_file)")
            return load_esc50(path, check_files=check_files)
        return load_manifest(path, check_files=check_files, group_by=group_by)
    raise DatasetError(
        f"{path}: not a dataset; expected a dataset folder (UrbanSound8K, ESC-50 or one sub-folder per class) "
        "or a metadata/manifest .csv"
    )
