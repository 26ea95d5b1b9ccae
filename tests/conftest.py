"""Shared fixtures: tiny fixed-seed audio files written by the tests themselves."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from soundlib import data as D

# Tests never touch the user's cache: backbones exports and embeddings go to a fresh folder.
os.environ["SOUNDLIB_CACHE_DIR"] = tempfile.mkdtemp(prefix="soundlib-test-cache-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SR = 22050
DATA = Path(__file__).parent / "data"


def tone(freq: float = 440.0, *, seconds: float = 1.0, sr: int = SR, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "tone.wav", tone())


@pytest.fixture
def us8k_csv() -> Path:
    return DATA / "UrbanSound8K.csv"


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """A tiny synthetic corpus (UrbanSound8K layout), made once per session."""
    from soundlib.synth import SynthConfig, generate_corpus

    out = tmp_path_factory.mktemp("synth")
    return generate_corpus(out, SynthConfig(clips_per_class=8, duration=1.0, slices_per_recording=2, n_folds=4),
                           progress=False)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A stand-in feature-vector SavedModel (32x32 -> 16), built by the tests."""
    from soundlib.backbones import save_tiny_backbone

    return save_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny")


def small_spec(name: str = "mel"):
    """A variant at 32x32 so the stand-in backbone sees its own input size."""
    from soundlib.variants import get_variant

    return get_variant(name).replace(height=32, width=32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh soundlib cache for one test module (SOUNDLIB_CACHE_DIR), restored afterwards."""
    old = os.environ.get("SOUNDLIB_CACHE_DIR")
    path = tmp_path_factory.mktemp("cache")
    os.environ["SOUNDLIB_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SOUNDLIB_CACHE_DIR", None)
    else:
        os.environ["SOUNDLIB_CACHE_DIR"] = old


def write_csv(path: Path, header, rows) -> Path:
    """Write a CSV file with ``header`` and ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def fake_dataset(n_groups=40, per_group=3, n_classes=4) -> D.Dataset:
    """An index of clips (no audio) with ``n_groups`` recordings of ``per_group`` slices, no folds."""
    clips = []
    for g in range(n_groups):
        label = f"c{g % n_classes}"
        for s in range(per_group):
            clips.append(D.Clip(Path(f"/x/{g}-{s}.wav"), label, g % n_classes, None, f"rec{g}"))
    return D.Dataset("fake", Path("/x"), tuple(f"c{i}" for i in range(n_classes)), tuple(clips))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A tiny synthetic corpus for the notebooks: 4 clips per class, 1 s, 3 folds."""
    from soundlib.synth import SynthConfig, generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("nbdata") / "data",
                           SynthConfig(clips_per_class=4, duration=1.0, slices_per_recording=1, n_folds=3),
                           progress=False)
