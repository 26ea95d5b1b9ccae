"""Datasets as lazy indexes of clips with label, fold and group metadata.

The loaders (:mod:`soundlib.audio.loaders`) read metadata only; audio is read later by :mod:`soundlib.audio.clips`.
``load_dataset(path)`` picks the loader from what ``path`` is:

* a folder with ``metadata/UrbanSound8K.csv`` (and ``audio/foldN/``): UrbanSound8K,
* a folder with ``meta/esc50.csv`` (and ``audio/``): ESC-50,
* a ``.csv`` file with the UrbanSound8K header: UrbanSound8K (audio beside it in ``../audio``),
* any other ``.csv`` file: a manifest with columns ``path,label`` and optional ``fold,group``,
* any other folder: one sub-folder per class holding audio files.

Every clip names its source recording (``Clip.group``), and the dataset says how
that was known (:class:`Grouping`): the metadata (UrbanSound8K's ``fsID``,
ESC-50's ``src_file``), a manifest column (``group``, or any column with
``group_by=``), a regex on the file names (``group_regex=``), UrbanSound8K or
ESC-50 file names recognised in a folder or manifest, or nothing: then every
file is its own recording (``Grouping.known`` is false), and the protocol warns.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from soundlib.errors import DatasetError

__all__ = [
    "US8K_CLASSES", "US8K_HEADER", "ESC50_HEADER", "AUDIO_EXTENSIONS", "INCOMPLETE_MARKER", "Clip",
    "Grouping", "GROUPING_UNKNOWN", "Dataset", "US8KName", "parse_us8k_filename", "group_by_file_names",
    "grouped_by_names", "compile_group_regex", "search_names", "regroup", "GROUP_REGEX_SECONDS",
]


#: UrbanSound8K class names, indexed by ``classID``.
US8K_CLASSES: tuple[str, ...] = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)

US8K_HEADER: tuple[str, ...] = (
    "slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class",
)

ESC50_HEADER: tuple[str, ...] = (
    "filename", "fold", "target", "category", "esc10", "src_file", "take",
)


AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".au"})


#: A file that marks a dataset folder still being written (e.g. by ``soundlib download``); such a folder
#: is refused by :func:`load_dataset` until the writer finishes and removes it.
INCOMPLETE_MARKER = ".soundlib-incomplete"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One labelled audio clip.

    ``group`` identifies the source recording: clips sharing a group must never
    be split across folds (UrbanSound8K's ``fsID``, ESC-50's ``src_file``).

    A clip of a multi-label dataset (a manifest ``label`` such as ``siren;dog_bark``) lists every
    class heard in ``labels``; its ``label`` and ``class_id`` are the first of them. Single-label
    clips leave ``labels`` empty (:attr:`all_labels` is then ``(label,)``).
    """

    path: Path
    label: str
    class_id: int
    fold: int | None
    group: str
    meta: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False)
    labels: tuple[str, ...] = ()

    @property
    def all_labels(self) -> tuple[str, ...]:
        """Every class heard in the clip: ``labels``, or ``(label,)`` for a single-label clip."""
        return self.labels or (self.label,)

    @property
    def clip_id(self) -> str:
        """A short stable name (the file stem)."""
        return self.path.stem


@dataclasses.dataclass(frozen=True)
class Grouping:
    """How a dataset's clips were grouped into recordings (each :class:`Clip`'s ``group``).

    Attributes
    ----------
    source : str
        ``"metadata"`` (UrbanSound8K's ``fsID``, ESC-50's ``src_file``), ``"column"`` (a manifest
        column), ``"regex"`` (``group_regex`` on the file names), ``"file-names"`` (UrbanSound8K or
        ESC-50 file names recognised), ``"given"`` (clips built in Python, groups as given) or
        ``"none"``: unknown, every file is its own recording.
    detail : str
        The same in words, recorded in results (``results.json``, ``metrics.json``).
    """

    source: str
    detail: str

    @property
    def known(self) -> bool:
        """False when nothing said which files come from one recording (every file is its own)."""
        return self.source != "none"

    def to_dict(self) -> dict[str, object]:
        """``source``, ``detail`` and ``known`` as plain data."""
        return {"source": self.source, "detail": self.detail, "known": self.known}


#: The grouping of a folder per class, or a manifest without a ``group`` column, whose file names say nothing.
GROUPING_UNKNOWN = Grouping("none", "unknown: no recording of each file was given, so every file is its own recording")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """An index of clips plus the ordered class list (``classes[class_id]``), and how the clips'
    recordings (``Clip.group``) were known (:class:`Grouping`)."""

    name: str
    root: Path
    classes: tuple[str, ...]
    clips: tuple[Clip, ...]
    grouping: Grouping = Grouping("given", "the clips' group as given")

    def __post_init__(self) -> None:
        from soundlib.text import check_class_names

        # the class names go into labels.txt, CSV headers and model cards: refuse, here where they are
        # established, names that cannot be stored one per line and read back the same
        check_class_names(self.classes, where=f"dataset {self.name!r} at {self.root}")

    @property
    def multilabel(self) -> bool:
        """True when some clip has several labels (a manifest ``label`` like ``a;b``)."""
        return any(len(c.labels) > 1 for c in self.clips)

    @property
    def n_recordings(self) -> int:
        """Distinct recordings (groups) among the clips."""
        return len({c.group for c in self.clips})

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self):
        return iter(self.clips)

    @property
    def folds(self) -> tuple[int, ...]:
        """Sorted fold numbers present (empty when the dataset has no folds)."""
        return tuple(sorted({c.fold for c in self.clips if c.fold is not None}))

    @property
    def has_folds(self) -> bool:
        """True when every clip has a fold (and there is at least one clip)."""
        return all(c.fold is not None for c in self.clips) and bool(self.clips)

    def with_clips(self, clips: Iterable[Clip]) -> "Dataset":
        """The same dataset (name, root, classes) holding ``clips``."""
        return dataclasses.replace(self, clips=tuple(clips))

    def split(self, test_fold: int) -> tuple["Dataset", "Dataset"]:
        """Return ``(train, test)``: clips outside ``test_fold`` and inside it."""
        if not self.has_folds:
            raise DatasetError(f"dataset {self.name!r} at {self.root} has no folds; call assign_folds first")
        if test_fold not in self.folds:
            raise DatasetError(
                f"fold {test_fold} has no clips in dataset {self.name!r} at {self.root}; "
                f"folds present: {list(self.folds)}"
            )
        train = [c for c in self.clips if c.fold != test_fold]
        test = [c for c in self.clips if c.fold == test_fold]
        return self.with_clips(train), self.with_clips(test)

    def counts(self) -> dict[str, int]:
        """Clips per class, every class listed (a multi-label clip counts for each of its classes)."""
        out: dict[str, int] = {c: 0 for c in self.classes}
        for clip in self.clips:
            for label in clip.all_labels:
                out[label] += 1
        return out

    def subset(self, *, folds: Sequence[int] | None = None, labels: Sequence[str] | None = None) -> "Dataset":
        """The clips in ``folds`` and/or with ``labels`` (``None``: no filter)."""
        clips = self.clips
        if folds is not None:
            clips = tuple(c for c in clips if c.fold in set(folds))
        if labels is not None:
            clips = tuple(c for c in clips if c.label in set(labels))
        return self.with_clips(clips)


@dataclasses.dataclass(frozen=True)
class US8KName:
    """The parts of an UrbanSound8K file name ``[fsID]-[classID]-[occurrenceID]-[sliceID].wav``."""

    fsid: int
    class_id: int
    occurrence_id: int
    slice_id: int

    @property
    def label(self) -> str:
        """The class name of ``class_id``."""
        return US8K_CLASSES[self.class_id]


_US8K_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)-(\d+)\.[A-Za-z0-9]+$", re.ASCII)


def parse_us8k_filename(name: str | os.PathLike) -> US8KName:
    """Parse ``[fsID]-[classID]-[occurrenceID]-[sliceID].wav``.

    >>> parse_us8k_filename("100032-3-0-0.wav").label
    'dog_bark'
    """
    base = Path(name).name
    m = _US8K_NAME.match(base)
    if not m:
        raise DatasetError(
            f"{base!r} does not follow the UrbanSound8K name convention "
            "[fsID]-[classID]-[occurrenceID]-[sliceID].wav"
        )
    fsid, class_id, occ, sl = (int(g) for g in m.groups())
    if not 0 <= class_id < len(US8K_CLASSES):
        raise DatasetError(f"{base!r}: classID {class_id} is not one of 0..{len(US8K_CLASSES) - 1}")
    return US8KName(fsid, class_id, occ, sl)


#: ESC-50 file names: ``{fold}-{Freesound clip id}-{take}-{target}.wav``, e.g. ``1-100032-A-0.wav``.
_ESC50_NAME = re.compile(r"^(\d+)-(\d+)-([A-Z]+)-(\d+)\.[A-Za-z0-9]+$", re.ASCII)


#: Naming conventions recognised in folders and manifests: (name, pattern, the recording of a match, detail).
_NAME_CONVENTIONS = (
    ("UrbanSound8K", _US8K_NAME, lambda m: f"fs{m.group(1)}",
     "UrbanSound8K file names fsID-classID-occurrence-slice (e.g. 100032-3-0-0.wav): the fsID"),
    ("ESC-50", _ESC50_NAME, lambda m: f"src{m.group(2)}",
     "ESC-50 file names fold-srcfile-take-target (e.g. 1-100032-A-0.wav): the source file"),
)


def group_by_file_names(dataset: Dataset) -> Dataset | None:
    """The dataset grouped by recording from UrbanSound8K or ESC-50 file names, or ``None``.

    Every file name must follow one convention: UrbanSound8K's
    ``[fsID]-[classID]-[occurrenceID]-[sliceID].wav`` (grouped by ``fsID``) or
    ESC-50's ``[fold]-[src_file]-[take]-[target].wav`` (grouped by ``src_file``).
    """
    if not dataset.clips:
        return None
    for _, pattern, group_of, detail in _NAME_CONVENTIONS:
        matches = [pattern.match(c.path.name) for c in dataset.clips]
        if all(matches):
            clips = (dataclasses.replace(c, group=group_of(m)) for c, m in zip(dataset.clips, matches))
            return dataclasses.replace(dataset, clips=tuple(clips),
                                       grouping=Grouping("file-names", f"recognised {detail}"))
    return None


def grouped_by_names(dataset: Dataset) -> Dataset:
    """Grouped by recognised file names, else every file its own recording (:data:`GROUPING_UNKNOWN`)."""
    return group_by_file_names(dataset) or dataclasses.replace(
        dataset, clips=tuple(dataclasses.replace(c, group=str(c.path)) for c in dataset.clips),
        grouping=GROUPING_UNKNOWN)


def compile_group_regex(pattern: str) -> "re.Pattern[str]":
    """``pattern`` compiled; :class:`~soundlib.errors.ConfigError` unless it is a regex with exactly one group."""
    from soundlib.errors import ConfigError

    try:
        rx = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise ConfigError(f"group_regex (--group-regex) {pattern!r} is not a valid regular expression ({exc})") from None
    if rx.groups != 1:
        raise ConfigError(f"group_regex (--group-regex) {pattern!r} has {rx.groups} groups; it needs exactly one, "
                          "the part of the file name that names the recording, e.g. '^(.+)_slice\\d+'")
    return rx


#: Seconds a group_regex (``--group-regex``) may take over all of a dataset's file names: a pattern with
#: nested repeats such as ``'^((?:a+)+)$'`` backtracks for ever on a name it does not match.
GROUP_REGEX_SECONDS = 10.0


#: Searches every name in a child process (the deadline off the main thread): stdin JSON, stdout JSON.
_SEARCH_CHILD = ("import json, re, sys\n"
                 "job = json.load(sys.stdin)\n"
                 "rx = re.compile(job['pattern'])\n"
                 "out = []\n"
                 "for name in job['names']:\n"
                 "    m = rx.search(name)\n"
                 "    out.append(m.group(1) if m is not None else None)\n"
                 "json.dump(out, sys.stdout)\n")


def search_names(rx: "re.Pattern[str]", names: Sequence[str], *, seconds: float | None = None) -> list[str | None]:
    """``rx.search(name).group(1)`` (``None`` where it does not match) for every name, within ``seconds``
    (default :data:`GROUP_REGEX_SECONDS`) in all.

    In the main thread an interval timer interrupts the search (Python's regex engine checks for signals);
    elsewhere (a thread, or no ``SIGALRM``, or a timer already set) the names are searched in a child
    process, killed at the deadline.

    Raises
    ------
    ConfigError
        The search took longer (catastrophic backtracking), naming the pattern and the deadline.
    """
    import signal
    import threading

    from soundlib.errors import ConfigError

    seconds = GROUP_REGEX_SECONDS if seconds is None else float(seconds)

    def too_slow(name: str | None) -> ConfigError:
        at = f" (stopped at file name {name!r})" if name is not None else ""
        return ConfigError(f"group_regex (--group-regex) {rx.pattern!r} took more than {seconds:g} s over "
                           f"{len(names)} file name(s){at}: a pattern with nested repeats such as '(a+)+' can "
                           "backtrack for ever on a name it does not match; simplify it (e.g. '^(.+)_slice\\d+')")

    in_main = threading.current_thread() is threading.main_thread()
    if in_main and hasattr(signal, "setitimer") and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0):
        class _Expired(Exception):
            pass

        out: list[str | None] = []
        running = [True]

        def expire(signum, frame):
            if running[0]:
                raise _Expired

        previous = signal.signal(signal.SIGALRM, expire)
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            for name in names:
                m = rx.search(name)
                out.append(m.group(1) if m is not None else None)
            running[0] = False
        except _Expired:
            raise too_slow(names[len(out)] if len(out) < len(names) else None) from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return out
    import json
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-I", "-c", _SEARCH_CHILD], capture_output=True, timeout=seconds,
                              input=json.dumps({"pattern": rx.pattern, "names": list(names)}).encode())
    except subprocess.TimeoutExpired:
        raise too_slow(None) from None
    if done.returncode != 0:
        raise ConfigError(f"group_regex (--group-regex) {rx.pattern!r}: searching the file names failed "
                          f"({done.stderr.decode(errors='replace').strip().splitlines()[-1:]})")
    return json.loads(done.stdout)



def regroup(dataset: Dataset, group_regex: str) -> Dataset:
    """The dataset with each clip's recording taken from its file name by ``group_regex``.

    The regex is searched (``re.search``) in the file name (no folders); its one
    group is the recording, e.g. ``'^(.+)_slice\\d+'`` groups ``dogA_slice1.wav`` and
    ``dogA_slice2.wav`` as recording ``dogA``.

    Raises
    ------
    ConfigError
        The regex is invalid or does not have exactly one group.
    ConfigError
        Matching took more than :data:`GROUP_REGEX_SECONDS` (see :func:`search_names`).
    DatasetError
        Some file names do not match (or match an empty group); the message names them.
    """
    rx = compile_group_regex(group_regex)
    groups = []
    bad = []
    for c, group in zip(dataset.clips, search_names(rx, [c.path.name for c in dataset.clips])):
        if not group:
            bad.append(c.path.name)
        else:
            groups.append(group)
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad)} in all)" if len(bad) > 5 else "")
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root}: {len(bad)} of {len(dataset)} file name(s) do "
                           f"not match group_regex (--group-regex) {group_regex!r} (or match an empty group): {shown}")
    return dataclasses.replace(
        dataset, clips=tuple(dataclasses.replace(c, group=g) for c, g in zip(dataset.clips, groups)),
        grouping=Grouping("regex", f"file names matched by group_regex {group_regex!r}"))
