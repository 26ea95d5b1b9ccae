from __future__ import annotations

import numpy as np
import pytest

from soundlib.errors import FeatureError
from soundlib.pictures.merge import MergeSpec, jittered_strengths, merge_channels, stack_panels


def _planes():
    spec = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (6, 1))
    wave = np.zeros((6, 8), np.float32)
    wave[2:4] = 1.0
    return {"spectrogram": spec, "waveform": wave}


def test_default_puts_background_in_green():
    img = merge_channels(_planes())
    assert img.shape == (6, 8, 3) and img.dtype == np.uint8
    assert np.all(img[..., 1] == 255)  # constant background, full strength, green
    assert img[0, -1, 0] == 255 and img[0, 0, 0] == 0  # spectrogram in red
    assert img[2, 0, 2] == 128 and img[0, 0, 2] == 0  # waveform in blue at strength 0.5


def test_order_and_strength():
    spec = MergeSpec(order=("waveform", "spectrogram", "background"), strengths=(0.5, 1.0, 0.2))
    img = merge_channels(_planes(), spec=spec)
    assert img[2, 0, 0] == 128 and img[0, 0, 0] == 0  # waveform now red, at 0.5
    assert img[0, -1, 1] == 255 and img[0, 0, 1] == 0  # spectrogram green at 1.0
    assert np.all(img[..., 2] == 51)  # background blue at 0.2


def test_jitter_is_seeded_and_varies_per_clip():
    spec = MergeSpec(jitter=0.3, seed=7, strengths=(0.5, 0.5, 0.5))
    a = jittered_strengths(spec, clip_seed=1)
    assert a == jittered_strengths(spec, clip_seed=1)
    assert a != jittered_strengths(spec, clip_seed=2)
    assert a != jittered_strengths(MergeSpec(jitter=0.3, seed=8, strengths=(0.5, 0.5, 0.5)), clip_seed=1)
    assert all(0.35 <= s <= 0.65 for s in a)
    assert jittered_strengths(MergeSpec(), clip_seed=3) == (1.0, 1.0, 0.5)


def test_validation():
    with pytest.raises(FeatureError, match="permutation"):
        MergeSpec(order=("spectrogram", "spectrogram", "waveform"))
    with pytest.raises(FeatureError, match="strengths"):
        MergeSpec(strengths=(1.5, 1, 1))
    with pytest.raises(FeatureError, match="jitter"):
        MergeSpec(jitter=1.0)
    with pytest.raises(FeatureError, match="one shape"):
        merge_channels({"spectrogram": np.zeros((4, 4)), "waveform": np.zeros((4, 5))})


def test_stack_panels():
    top = np.zeros((3, 5, 3), np.uint8)
    bottom = np.full((2, 5, 3), 9, np.uint8)
    out = stack_panels(top, bottom)
    assert out.shape == (5, 5, 3) and out[-1, 0, 0] == 9
    with pytest.raises(FeatureError):
        stack_panels(top, np.zeros((2, 4, 3), np.uint8))
