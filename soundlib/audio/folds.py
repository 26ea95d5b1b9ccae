"""The evaluation protocol: which clips test, which train, which validate, and leakage checks.

* A dataset with folds keeps them (UrbanSound8K's 10, ESC-50's 5).
* Otherwise :func:`assign_folds` makes ``k`` folds grouped by recording
  (``Clip.group``), stratified by label and seeded: a recording is never split.
* Inside the training folds, :func:`grouped_validation_split` holds out a share
  of the *recordings* for validation (never a hash of the file name).
* :func:`leaky_folds` is the invalid protocol (slices split at random), kept
  only to show how much leakage inflates accuracy.
* :func:`find_leakage` / :func:`check_leakage` report recordings found in several folds.
* :func:`check_grouping` warns loudly when nothing said which files come from one
  recording (a folder per class, a manifest without ``group``): then every file is
  its own recording and slices of one recording can be split across folds.
* Degenerate inputs are refused or warned about loudly (:class:`~soundlib.errors.SoundlibWarning`,
  recorded in a run's results): one class, a file listed under two labels or in two folds
  (:func:`drop_duplicate_rows`), classes with fewer clips than folds (:func:`check_classes`),
  and test folds holding classes the training folds never show (:func:`check_test_fold`).
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from soundlib.audio.datasets import Clip, Dataset
from soundlib.errors import DatasetError, warn

__all__ = [
    "DEFAULT_K_FOLDS",
    "MAX_FOLD",
    "PROTOCOL_PREDEFINED",
    "PROTOCOL_LEAKY",
    "assign_folds",
    "leaky_folds",
    "prepare_folds",
    "grouped_validation_split",
    "find_leakage",
    "check_leakage",
    "drop_duplicate_rows",
    "check_classes",
    "check_test_fold",
    "check_grouping",
    "grouping_record",
]

#: The largest fold number a dataset may give (folds are numbered 0 or 1 up: UrbanSound8K has 10, ESC-50 5).
MAX_FOLD = 1000
#: Folds assigned when a dataset has none.
DEFAULT_K_FOLDS = 5
PROTOCOL_PREDEFINED = "predefined-folds"
PROTOCOL_LEAKY = "leaky-random-slices"


def assign_folds(dataset: Dataset, k: int = DEFAULT_K_FOLDS, *, seed: int = 0, force: bool = False) -> Dataset:
    """Return ``dataset`` with clips assigned to ``k`` folds grouped by ``group``.

    A recording's clips always land in one fold. Folds are stratified by label
    where the class sizes allow it (scikit-learn's ``StratifiedGroupKFold``).
    Datasets that already have folds are returned unchanged unless ``force``.
    """
    if dataset.has_folds and not force:
        return dataset
    if k < 2:
        raise DatasetError(f"k must be at least 2 folds, got {k}")
    groups = [c.group for c in dataset.clips]
    n_groups = len(set(groups))
    if n_groups < k:
        raise DatasetError(
            f"dataset {dataset.name!r} at {dataset.root} has {n_groups} distinct recording group(s); "
            f"cannot make {k} folds without splitting a recording"
        )
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    labels = [c.class_id for c in dataset.clips]
    fold_of = [0] * len(dataset.clips)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class smaller than k: stratify as well as possible
        for fold, (_, test_idx) in enumerate(splitter.split(labels, labels, groups), start=1):
            for i in test_idx:
                fold_of[i] = fold
    out = dataset.with_clips(dataclasses.replace(c, fold=f) for c, f in zip(dataset.clips, fold_of))
    leaks = find_leakage(out.clips)
    if leaks:  # cannot happen with StratifiedGroupKFold; guarded because the protocol depends on it
        raise DatasetError(f"fold assignment split {len(leaks)} recording(s) across folds: {list(leaks)[:5]}")
    return out


def leaky_folds(dataset: Dataset, k: int, *, seed: int = 0) -> Dataset:
    """Assign clips to ``k`` folds at random, ignoring recordings (the leaky protocol)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(dataset.clips))
    folds = np.empty(len(order), int)
    folds[order] = np.arange(len(order)) % k + 1
    return dataset.with_clips(dataclasses.replace(c, fold=int(f)) for c, f in zip(dataset.clips, folds))


def prepare_folds(dataset: Dataset, *, k_folds: int = DEFAULT_K_FOLDS, seed: int = 0,
                  leaky: bool = False) -> tuple[Dataset, str]:
    """The dataset with the folds the protocol uses, and the protocol's name.

    Returns ``(dataset, protocol)``: the dataset's own folds (``"predefined-folds"``),
    ``k_folds`` folds grouped by recording (``"grouped-<k>-folds"``), or with
    ``leaky=True`` random slice-level folds (``"leaky-random-slices"``, as many
    as the dataset has, else ``k_folds``).
    """
    if not dataset.clips:
        raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
    dataset = drop_duplicate_rows(dataset)
    k = len(dataset.folds) if dataset.has_folds else k_folds
    check_classes(dataset, k)
    if leaky:
        return leaky_folds(dataset, k, seed=seed), PROTOCOL_LEAKY
    check_grouping(dataset, assigned=not dataset.has_folds)
    if dataset.has_folds:
        return dataset, PROTOCOL_PREDEFINED
    return assign_folds(dataset, k_folds, seed=seed), f"grouped-{k_folds}-folds"


def _none_first(fold: int | None) -> int:
    return -1 if fold is None else fold


def _shown(items: Sequence[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def drop_duplicate_rows(dataset: Dataset) -> Dataset:
    """The dataset with each audio file listed once.

    A file listed twice with the same label (and fold) is a duplicate row: the
    copies are dropped with a warning. A file listed under two labels, or in
    two folds (it would be trained on and tested on), is refused.

    Raises
    ------
    DatasetError
        Naming the files and their labels or folds.
    """
    rows: dict[str, list[Clip]] = defaultdict(list)
    for clip in dataset.clips:
        rows[os.path.realpath(clip.path)].append(clip)
    repeated = {p: cs for p, cs in rows.items() if len(cs) > 1}
    if not repeated:
        return dataset
    where = f"dataset {dataset.name!r} at {dataset.root}"
    two_labels = [f"{p} ({' and '.join(sorted({c.label for c in cs}))})" for p, cs in repeated.items()
                  if len({c.label for c in cs}) > 1]
    if two_labels:
        raise DatasetError(f"{where}: {len(two_labels)} file(s) listed under more than one label, so their class "
                           f"is ambiguous: {_shown(two_labels, 3)}; give each file one label")
    two_folds = [f"{p} (folds {', '.join(str(f) for f in sorted({c.fold for c in cs}, key=_none_first))})"
                 for p, cs in repeated.items() if len({c.fold for c in cs}) > 1]
    if two_folds:
        raise DatasetError(f"{where}: {len(two_folds)} file(s) listed in more than one fold, so they would be "
                           f"trained on and tested on: {_shown(two_folds, 3)}; list each file once")
    n_dropped = sum(len(cs) - 1 for cs in repeated.values())
    warn(f"{where}: {n_dropped} duplicate row(s) dropped (the same file listed more than once with the same "
         f"label): {_shown([str(p) for p in repeated], 3)}")
    first: list[Clip] = []
    seen: set[str] = set()
    for clip in dataset.clips:
        key = os.path.realpath(clip.path)
        if key not in seen:
            seen.add(key)
            first.append(clip)
    return dataset.with_clips(first)


def check_classes(dataset: Dataset, k: int) -> None:
    """Refuse a dataset whose clips show fewer than two classes; warn about classes with fewer clips than folds.

    Parameters
    ----------
    dataset : Dataset
    k : int
        Number of folds the protocol uses.

    Raises
    ------
    DatasetError
        When the clips hold fewer than two distinct classes.
    """
    counts = dataset.counts()
    present = [c for c, n in counts.items() if n > 0]
    where = f"dataset {dataset.name!r} at {dataset.root}"
    if len(present) < 2:
        raise DatasetError(f"{where}: all {len(dataset)} clip(s) have the class {', '.join(present) or '(none)'}; "
                           "a classifier needs clips of at least two classes")
    small = [f"{c} ({n} clip{'s' if n != 1 else ''})" for c, n in counts.items() if n < k]
    if small:
        warn(f"{where}: {len(small)} class(es) have fewer clips than the {k} folds, so some test folds cannot "
             f"contain them and per-fold scores for them are missing or noisy: {_shown(small)}")


#: How to name the recordings, said in the warnings.
_GROUPING_HELP = ("name each file's recording: a manifest 'group' column, --group-by COLUMN (a manifest column), or "
                  "--group-regex REGEX (one group, searched in the file name; sweep keys group_by, group_regex)")


def check_grouping(dataset: Dataset, *, assigned: bool) -> None:
    """Warn when the dataset's recordings are unknown, or were recognised from file names.

    Parameters
    ----------
    dataset : Dataset
    assigned : bool
        True when folds are assigned by :func:`assign_folds` (then unknown recordings mean slices of
        one recording may be trained on and tested on); False for the dataset's own folds (then only
        the validation split and the leakage check are affected).
    """
    g = dataset.grouping
    where = f"dataset {dataset.name!r} at {dataset.root}"
    if not g.known:
        if assigned:
            warn(f"{where}: RECORDINGS UNKNOWN, every one of its {len(dataset)} files counts as its own recording "
                 "(a folder per class, or a manifest without a 'group' column). Slices cut from one recording can "
                 "land in different folds, trained on in one and tested on in another, and the scores come out too "
                 f"high. To fix it, {_GROUPING_HELP}")
        else:
            warn(f"{where}: recordings unknown, every file counts as its own recording: the folds are the "
                 "dataset's own, but the validation split inside the training folds and the leakage check cannot "
                 f"keep slices of one recording together; {_GROUPING_HELP}")
    elif g.source == "file-names":
        warn(f"{where}: recordings taken from the file names ({g.detail}): {dataset.n_recordings} recordings for "
             f"{len(dataset)} files; if that is wrong, give --group-by or --group-regex")


def grouping_record(dataset: Dataset) -> dict:
    """How the recordings were known, for results: :meth:`~soundlib.audio.datasets.Grouping.to_dict` plus
    ``recordings`` (distinct groups) and ``clips``."""
    return {**dataset.grouping.to_dict(), "recordings": dataset.n_recordings, "clips": len(dataset)}


def check_test_fold(dataset: Dataset, test_fold: int) -> list[str]:
    """Warn when the test fold holds classes that never occur in the training folds.

    Such clips cannot be classified correctly (the head never saw their class),
    so the fold's accuracy says little about them.

    Returns
    -------
    list of str
        Those classes, in the dataset's class order (empty when every test class was trained on).
    """
    train = {x for c in dataset.clips if c.fold != test_fold for x in c.all_labels}
    test = {x for c in dataset.clips if c.fold == test_fold for x in c.all_labels}
    unseen = [c for c in dataset.classes if c in test and c not in train]
    if unseen:
        n = sum(1 for c in dataset.clips if c.fold == test_fold and set(c.all_labels) & set(unseen))
        warn(f"fold {test_fold} of dataset {dataset.name!r}: class(es) {_shown(unseen)} occur in the test fold "
             f"({n} clip(s)) but never in the training folds; those clips cannot be classified correctly")
    return unseen


def grouped_validation_split(groups: Sequence[str], fraction: float, *,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` holding out ``fraction`` of the *groups* (recordings).

    Parameters
    ----------
    groups : sequence of str, length n
        The recording of each training clip.
    fraction : float
        Share of the distinct groups held out (at least one, never all); 0 disables validation.

    Returns
    -------
    train, validation : np.ndarray of int
        Disjoint index arrays covering ``range(n)``; no group is in both.
    """
    n = len(groups)
    idx = np.arange(n)
    if fraction <= 0 or n < 2:
        return idx, idx[:0]
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        return idx, idx[:0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    n_val = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
    val_groups = {uniq[i] for i in order[:n_val]}
    is_val = np.array([g in val_groups for g in groups])
    return idx[~is_val], idx[is_val]


def find_leakage(clips: Iterable[Clip]) -> dict[str, tuple[int, ...]]:
    """Map each group found in more than one fold to the folds it appears in."""
    folds_of: dict[str, set[int]] = defaultdict(set)
    for clip in clips:
        if clip.fold is not None:
            folds_of[clip.group].add(clip.fold)
    return {g: tuple(sorted(f)) for g, f in folds_of.items() if len(f) > 1}


def check_leakage(dataset: Dataset) -> None:
    """Raise :class:`DatasetError` if any recording group spans more than one fold."""
    leaks = find_leakage(dataset.clips)
    if leaks:
        shown = ", ".join(f"{g} in folds {list(f)}" for g, f in list(leaks.items())[:5])
        raise DatasetError(
            f"dataset {dataset.name!r} at {dataset.root}: {len(leaks)} recording group(s) span several folds "
            f"(fold leakage): {shown}{' ...' if len(leaks) > 5 else ''}"
        )
