"""The protocol: grouped fold assignment, leakage checks, validation split by recording."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from soundlib.audio import loaders as L
from soundlib.audio import folds as FO
from soundlib.errors import DatasetError

from ..conftest import fake_dataset
from .test_datasets import OFFICIAL_CROSS_FOLD


def test_us8k_official_split_groups(us8k_csv):
    """Every (fsID, class) annotation sits in one fold; five fsIDs cross folds with a second label."""
    ds = L.load_dataset(us8k_csv, check_files=False)
    per_annotation: dict[tuple[str, str], set[int]] = {}
    for c in ds:
        per_annotation.setdefault((c.group, c.label), set()).add(c.fold)
    assert all(len(f) == 1 for f in per_annotation.values())
    assert FO.find_leakage(ds.clips) == OFFICIAL_CROSS_FOLD
    # the US8K authors' grouping unit passes the check

    by_annotation = ds.with_clips(dataclasses.replace(c, group=f"{c.group}/{c.label}") for c in ds)
    FO.check_leakage(by_annotation)


def test_leakage_check_fails_on_shuffled_folds(us8k_csv):
    ds = L.load_dataset(us8k_csv, check_files=False)
    folds = [c.fold for c in ds]
    random.Random(0).shuffle(folds)

    shuffled = ds.with_clips(dataclasses.replace(c, fold=f) for c, f in zip(ds, folds))
    leaks = FO.find_leakage(shuffled.clips)
    assert len(leaks) > 500
    with pytest.raises(DatasetError, match="fold leakage"):
        FO.check_leakage(shuffled)


def test_assign_folds_grouped_stratified_seeded():
    ds = fake_dataset()
    a = FO.assign_folds(ds, 5, seed=1)
    assert a.folds == (1, 2, 3, 4, 5)
    assert FO.find_leakage(a.clips) == {}
    for fold in a.folds:  # stratified: every class in every fold (8 groups per fold, 2 per class)
        assert {c.label for c in a.clips if c.fold == fold} == set(ds.classes)
    assert [c.fold for c in FO.assign_folds(ds, 5, seed=1)] == [c.fold for c in a]
    assert [c.fold for c in FO.assign_folds(ds, 5, seed=2)] != [c.fold for c in a]
    assert FO.assign_folds(a, 3) is a  # existing folds are kept
    assert FO.assign_folds(a, 3, force=True).folds == (1, 2, 3)
    with pytest.raises(DatasetError, match="3 distinct recording group"):
        FO.assign_folds(fake_dataset(n_groups=3), 5)


def test_leaky_folds_split_recordings(synth_corpus):
    ds = L.load_dataset(synth_corpus)
    assert FO.find_leakage(FO.leaky_folds(ds, 4, seed=0).clips)  # the leaky protocol does share recordings


def test_grouped_validation_split_never_splits_a_recording():
    groups = [f"r{i // 4}" for i in range(100)]
    tr, va = FO.grouped_validation_split(groups, 0.2, seed=3)
    assert len(tr) + len(va) == 100 and 15 <= len(va) <= 25
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    assert np.array_equal(va, FO.grouped_validation_split(groups, 0.2, seed=3)[1])
    assert len(FO.grouped_validation_split(groups, 0.0)[1]) == 0
