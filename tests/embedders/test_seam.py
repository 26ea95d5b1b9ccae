"""The embedder seam: registry, windows, methods on any embedder, and a new embedder in one file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders import EmbedderOptions, WindowSpec, embedder_entry, embedder_names, resolve_embedder
from soundlib.embedders.base import audio_windows, register_embedder
from soundlib.errors import BackboneError, ConfigError
from soundlib.methods import build_method, cache_units, method_kinds, resolve_method
from soundlib.pictures.variants import VARIANTS

from ..conftest import tone, write_wav


def test_every_registered_embedder_says_what_it_is_without_loading():
    names = embedder_names()
    for must in ("efficientnet_lite0", "mn04", "yamnet", "birdnet", "mfcc", "speech"):
        assert must in names
    for name in names:
        entry = embedder_entry(name)
        assert entry.modality in ("picture", "waveform") and entry.license and entry.summary
        emb = resolve_embedder(name)
        assert emb.modality == entry.modality and emb.name == name


def test_unknown_handles_and_options_an_embedder_does_not_take_are_refused():
    with pytest.raises(BackboneError, match="unknown embedder 'nope'"):
        resolve_embedder("nope")
    with pytest.raises(BackboneError, match="does not take the option.*layer"):
        resolve_embedder("mn04", EmbedderOptions(layer="block14"))
    with pytest.raises(ConfigError, match="threads"):
        EmbedderOptions(threads=-5)


def test_a_waveform_embedder_keys_its_cache_on_what_it_uses_only():
    mn04 = resolve_embedder("mn04")
    windows = {name: mn04.window(VARIANTS[name].replace(duration=4.0)) for name in ("mel", "mel_gray", "linear",
                                                                                     "merged")}
    assert len({w.key() for w in windows.values()}) == 1  # the pictures' parameters do not matter
    w = windows["mel"]
    assert (w.sr, w.duration, w.hop_seconds, w.pad) == (32000, 4.0, 2.0, "none")
    longer = mn04.window(VARIANTS["mel"].replace(duration=5.0))
    with pytest.raises(Exception, match="duration"):  # a rule ("fit") is chosen from the clips first
        mn04.window(VARIANTS["mel"])
    assert longer.key() != w.key()
    pic = resolve_embedder("efficientnet_lite0")
    mel = VARIANTS["mel"].replace(duration=4.0)
    assert pic.window(mel) is mel  # a picture embedder keeps the variant's key


def test_window_spec_checks_its_fields():
    for bad in ({"sr": 10}, {"duration": 0}, {"pad": "mirror"}, {"window_hop": -1.0}):
        with pytest.raises(ConfigError):
            WindowSpec(**{"name": "w", "sr": 16000, "duration": 1.0, **bad})


def test_unpadded_windows_keep_a_short_clip_as_it_is(tmp_path):
    short = write_wav(tmp_path / "short.wav", tone(seconds=0.5, sr=16000), sr=16000)
    long = write_wav(tmp_path / "long.wav", tone(seconds=3.0, sr=16000), sr=16000)
    w = WindowSpec("t", 16000, 1.0, 0.5, pad="none")

    def windows(path, window):  # the chunks it streams, stacked
        return np.concatenate(list(audio_windows(path, window)))

    assert windows(short, w).shape == (1, 8000)
    assert windows(long, w).shape == (5, 16000)
    padded = dataclasses.replace(w, pad="end")
    assert windows(short, padded).shape == (1, 16000)


def test_embedder_names_are_method_aliases_and_birdnet_still_works():
    for name in ("mn04", "yamnet", "birdnet", "speech", "efficientnet_lite0"):
        spec = resolve_method(name)
        assert (spec.name, spec.kind, spec.backbone) == (name, "frozen", name)
    spec = resolve_method({"name": "bn2", "method": "birdnet", "hop": 2.0})
    assert spec.kind == "frozen" and spec.backbone == "birdnet" and spec.options.hop == 2.0
    assert "birdnet" not in method_kinds()  # an alias, not a kind


def test_methods_with_no_options_resolve_and_build():
    for kind in method_kinds():
        spec = resolve_method(kind)
        build_method(spec)
        for member in getattr(spec.options, "members", ()) + getattr(spec.options, "candidates", ()):
            assert not isinstance(member, str)


def test_fusion_of_a_picture_and_a_waveform_embedder_has_one_unit_each():
    fz = resolve_method({"method": "fusion", "mode": "early", "members": ["efficientnet_lite0", "mn04", "mfcc"]})
    units = cache_units(fz, VARIANTS["mel"], "efficientnet_lite0")
    assert sorted(u.embedder.name for u in units.values()) == ["efficientnet_lite0", "mfcc", "mn04"]
    assert {u.label for u in units.values()} == {"fill-efficientnet_lite0-mel", "fill-mn04", "fill-mfcc-mel"}


# --- a new embedder is one file: this test registers one and evaluates with it -------------------

@dataclasses.dataclass(frozen=True)
class _BandEnergies:
    """A toy waveform embedder: log energy in 8 frequency bands per window."""

    name: str = "bands"
    modality: str = "waveform"
    license: str = "none"
    identity: str = "test:bands:1"
    output_dim: int = 8

    def window(self, spec):
        return WindowSpec("bands", 8000, spec.n_samples / spec.sr, spec.hop_seconds, pad="none")

    def inputs(self, path: Path, window):
        return audio_windows(path, window)

    def load(self):
        return self

    def __call__(self, batch, *, batch_size=32):
        spec = np.abs(np.fft.rfft(np.asarray(batch, np.float64), axis=1)) ** 2
        return np.log1p(np.stack([b.sum(axis=1) for b in np.array_split(spec, 8, axis=1)], axis=1)).astype(np.float32)


def test_a_new_embedder_registered_in_one_place_runs_frozen_and_fusion(synth_corpus, cache):
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig, evaluate

    register_embedder("bands", lambda name, options: _BandEnergies(), modality="waveform", license="none",
                      summary="test: band energies")
    ds = load_dataset(synth_corpus)
    res = evaluate(ds, EvalConfig(method=resolve_method("bands"), folds=(1, 2)), progress=False)
    assert res["method"]["backbone"] == "bands" and res["features"]["embedder"] == "bands"
    assert res["accuracy_mean"] > 1.5 / len(ds.classes)
    fused = resolve_method({"method": "fusion", "mode": "late", "members": ["bands", "mfcc"]})
    res2 = evaluate(ds, EvalConfig(method=fused, folds=(1, 2)), progress=False)
    assert set(res2["per_fold"][0]["choice"]["weights"]) == {"bands", "mfcc"}
