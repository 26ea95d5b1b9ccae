"""Settings that leave mel bands empty are said, not drawn silently as black stripes (desk review F15:
n_fft 256 with n_mels 128 in the picture explorer)."""

from __future__ import annotations

import warnings

import numpy as np

from soundlib.pictures.features import empty_mel_bands, empty_mel_warning, spectrogram_plane
from soundlib.pictures.variants import get_variant


def test_the_empty_bands_are_the_black_stripes():
    spec = get_variant("mel").replace(n_fft=256, n_mels=128, duration=1.0)
    empty = empty_mel_bands(spec)
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.flatnonzero(librosa.filters.mel(sr=spec.sr, n_fft=256, n_mels=128).max(axis=1) == 0)
    assert empty == reference.tolist() and len(empty) == 20
    noise = np.random.default_rng(0).normal(size=spec.sr).astype(np.float32)
    plane = spectrogram_plane(noise, spec=spec)
    assert (plane[empty] == 0).all() and (np.delete(plane, empty, axis=0).max(axis=1) > 0).all()
    text = empty_mel_warning(spec)
    assert text.startswith("variant 'mel': 20 of its 128 mel bands are empty (band 0, 1, 4,") and "lower n_mels" in text
    assert empty_mel_bands(get_variant("mel")) == [] and empty_mel_warning(get_variant("mel")) is None
    assert empty_mel_bands(get_variant("linear").replace(n_fft=256)) == []


def test_explorer_and_featurize_warn(tmp_path, synth_corpus):
    from soundlib.audio.loaders import load_dataset
    from soundlib.errors import SoundlibWarning
    from soundlib.lab.trials import TrialsUI
    from soundlib.pictures.featurize import featurize

    ds = load_dataset(synth_corpus)
    ui = TrialsUI(ds, variant="mel")
    assert ui.warning is None and "&#9888;" not in ui.message.value
    ui.n_fft.value = 256  # the reviewer's setting: the stripes come with a warning that names the bands
    assert ui.picture is not None and ui.warning and "mel bands are empty (band 0, 1," in ui.warning
    assert "&#9888;" in ui.message.value and "lower n_mels" in ui.message.value
    ui.n_fft.value = 2048
    assert ui.warning is None
    spec = get_variant("mel").replace(n_fft=256, height=32, width=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        featurize(ds.clips[:2], spec, out_dir=tmp_path / "pics", jobs=1)
    said = [str(w.message) for w in caught if issubclass(w.category, SoundlibWarning)]
    assert any("mel bands are empty" in m for m in said), said
