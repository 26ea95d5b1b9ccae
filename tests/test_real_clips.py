"""Twelve real UrbanSound8K clips (tests/data/us8k_real, CC BY-NC 3.0): loader, windows, pictures, features."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundlib.audio.loaders import load_dataset
from soundlib.pictures.featurize import featurize_windows, window_starts_of
from soundlib.audio.folds import find_leakage
from soundlib.pictures.variants import VARIANTS

REAL = Path(__file__).parent / "data" / "us8k_real" / "manifest.csv"


def test_manifest_of_real_clips_loads_with_folds_and_recordings():
    ds = load_dataset(REAL)
    assert len(ds) == 12 and ds.folds == (1, 2) and len(ds.classes) == 6
    assert not find_leakage(ds.clips)
    assert all(c.path.suffix == ".ogg" and c.path.is_file() for c in ds.clips)


def test_real_clips_in_windows_and_pictures():
    ds = load_dataset(REAL)
    clip = ds.clips[0].path
    one = VARIANTS["mel"]  # 4-s windows: each 4-s clip is one window
    assert window_starts_of(clip, one) == [0.0]
    short = one.replace(duration=1.0, window_hop=0.5)
    starts = window_starts_of(clip, short)
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    pics, got = featurize_windows(clip, short)
    assert pics.shape == (7, 224, 224, 3) and pics.dtype == np.uint8 and got.tolist() == starts
    assert all(p.std() > 5 for p in pics)  # real sound in every window, not a blank picture
    assert not np.array_equal(pics[0], pics[3])


def test_mfcc_statistics_of_real_clips():
    from soundlib.audio.clips import load_audio
    from soundlib.methods.mfcc import mfcc_statistics

    ds = load_dataset(REAL)
    x = np.stack([mfcc_statistics(load_audio(c.path, sr=22050, duration=4.0), sr=22050) for c in ds.clips[:4]])
    assert x.shape == (4, 160) and np.all(np.isfinite(x))
    assert len({tuple(np.round(r, 3)) for r in x}) == 4  # every clip its own statistics
    again = mfcc_statistics(load_audio(ds.clips[0].path, sr=22050, duration=4.0), sr=22050)
    assert np.array_equal(again, x[0])
    rich = mfcc_statistics(load_audio(ds.clips[0].path, sr=22050, duration=4.0), sr=22050, features="rich")
    assert rich.shape[0] > 500 and np.all(np.isfinite(rich))
