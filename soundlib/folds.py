"""The evaluation protocol: which clips test, which train, which validate, and leakage checks.

* A dataset with folds keeps them (UrbanSound8K's 10, ESC-50's 5).
* Otherwise :func:`assign_folds` makes ``k`` folds grouped by recording
  (``Clip.group``), stratified by label and seeded: a recording is never split.
* Inside the training folds, :func:`grouped_validation_split` holds out a share
  of the *recordings* for validation (never a hash of the file name).
* :func:`leaky_folds` is the invalid protocol (slices split at random), kept
  only to show how much leakage inflates accuracy.
* :func:`find_leakage` / :func:`check_leakage` report recordings found in several folds.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from .data import Clip, Dataset
from .errors import DatasetError

__all__ = [
    "DEFAULT_K_FOLDS",
    "PROTOCOL_PREDEFINED",
    "PROTOCOL_LEAKY",
    "assign_folds",
    "leaky_folds",
    "prepare_folds",
    "grouped_validation_split",
    "find_leakage",
    "check_leakage",
]

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
    if leaky:
        k = len(dataset.folds) if dataset.has_folds else k_folds
        return leaky_folds(dataset, k, seed=seed), PROTOCOL_LEAKY
    if dataset.has_folds:
        return dataset, PROTOCOL_PREDEFINED
    return assign_folds(dataset, k_folds, seed=seed), f"grouped-{k_folds}-folds"


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
