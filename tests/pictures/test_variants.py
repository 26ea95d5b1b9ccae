"""FeatureSpec, the registry, name resolution, and the generated params/variants.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundlib.pictures import features as F
from soundlib.pictures import variants as V
from soundlib.errors import ConfigError, FeatureError

from ..conftest import tone


def test_six_seed_variants_registered():
    assert set(V.VARIANTS) >= {"mel", "mel_gray", "linear", "waveform", "merged", "stacked"}
    assert len({s.key() for s in V.VARIANTS.values()}) == len(V.VARIANTS)


def test_spec_validation_and_from_dict():
    with pytest.raises(FeatureError, match="kind must be one of"):
        V.FeatureSpec(kind="sonogram")
    with pytest.raises(FeatureError, match="fmax"):
        V.FeatureSpec(fmax=20000, sr=22050)
    with pytest.raises(FeatureError, match="unknown colormap"):
        F.render(tone(), V.FeatureSpec(colormap="nope"))
    spec = V.FeatureSpec.from_dict({"name": "m", "n_mels": 64, "merge": {"jitter": 0.2}}, base=V.VARIANTS["merged"])
    assert spec.n_mels == 64 and spec.merge.jitter == 0.2 and spec.kind == "merged"
    with pytest.raises(ConfigError, match="unknown key.*'n_mel'"):
        V.FeatureSpec.from_dict({"n_mel": 64})
    with pytest.raises(ConfigError, match="merge: unknown key.*'strength'"):
        V.FeatureSpec.from_dict({"merge": {"strength": [1, 1, 1]}})
    assert V.FeatureSpec.from_dict(V.VARIANTS["stacked"].to_dict()) == V.VARIANTS["stacked"]
    assert V.VARIANTS["mel"].key() == V.VARIANTS["mel"].replace(name="other").key()
    assert V.VARIANTS["mel"].key() != V.VARIANTS["mel"].replace(hop_length=256).key()
    with pytest.raises(FeatureError, match="unknown feature variant 'spectro'"):
        V.get_variant("spectro")


def test_params_variants_yaml_is_generated_from_registry():
    import yaml

    path = Path(__file__).parents[2] / "params" / "variants.yaml"
    assert path.read_text() == V.variants_yaml(), "regenerate: soundlib variants --yaml > params/variants.yaml"
    doc = yaml.safe_load(path.read_text())
    assert tuple(doc["variants"]) == V.BUILTIN_VARIANTS
    for name, d in doc["variants"].items():
        assert V.FeatureSpec.from_dict({"name": name, **d}) == V.VARIANTS[name], name


def test_cache_keys_are_stable():
    """Keys made by soundlib 0.1.0 (4-s windows): a change here invalidates every user's embedding cache.
    The built-in variants' ``duration: fit`` gives 4-s clips (UrbanSound8K) and longer ones exactly those."""
    for seconds in ([4.0] * 20, [4.0] * 19 + [1.5], [5.0, 300.0]):
        resolved = {n: V.resolve_duration(V.VARIANTS[n], seconds)[0] for n in V.BUILTIN_VARIANTS}
        assert {n: s.duration for n, s in resolved.items()} == dict.fromkeys(V.BUILTIN_VARIANTS, 4.0)
        assert {n: s.key() for n, s in resolved.items()} == {
            "mel": "31fbb58285ca88e3", "mel_gray": "de78cd9bd992fc53", "linear": "7b422ba6b9fd69a2",
            "waveform": "5cbe5ebecbe0f1f3", "merged": "8792351a7e1ca6d5", "stacked": "6161a9d1f4e042d4"}


def test_resolve_variant_names_and_mappings():
    assert V.resolve_variant("mel") is V.VARIANTS["mel"]
    derived = V.resolve_variant({"name": "m2", "base": "merged", "hop_length": "256", "merge": {"jitter": 0.1}})
    assert derived.name == "m2" and derived.kind == "merged" and derived.hop_length == 256
    assert derived.merge.jitter == 0.1 and derived.merge.order == V.VARIANTS["merged"].merge.order
    assert V.resolve_variant({"name": "mel_gray", "n_mels": 64}).colormap == "gray"  # base: its own name
    assert V.resolve_variant({"name": "new", "n_mels": 64}).colormap == "magma"  # base: mel
    assert V.resolve_variant(derived.to_dict()) == derived
    for bad, words in ((("mfcc"), "unknown feature variant 'mfcc'"), ({"base": "mel"}, "needs a 'name'"),
                       ({"name": "x", "base": "nope"}, "unknown base 'nope'"),
                       ({"name": "x", "hop_lenght": 1}, "'hop_lenght'"), ({"name": "x", "top_db": float("nan")}, "finite"),
                       ({"name": "x", "fmin": 20000}, "fmin"), (3, "a registered name or a mapping")):
        with pytest.raises(ConfigError, match=words):
            V.resolve_variant(bad, where="params.yaml")


def test_duration_rules_fit_and_auto():
    """fit: the clips' 95th-percentile length rounded up to 0.1 s within [0.25, 4] s; auto: up to 30 s."""
    mel = V.VARIANTS["mel"]
    assert V.DEFAULT_DURATION == "fit" and V.FeatureSpec().duration == "fit" and not mel.resolved
    for lengths, fit, auto in (([0.5] * 20, 0.5, 0.5), ([0.93] * 20, 1.0, 1.0), ([0.1] * 5, 0.25, 0.25),
                               ([4.0] * 19 + [0.7], 4.0, 4.0), ([5.0] * 20, 4.0, 5.0), ([120.0], 4.0, 30.0),
                               ([0.5] * 39 + [3.0], 0.5, 0.5), ([0.0, -1.0, 0.6], 0.6, 0.6)):
        spec, record = V.resolve_duration(mel, lengths)
        assert spec == mel.replace(duration=fit) and record["rule"] == "fit" and record["seconds"] == fit, lengths
        assert V.resolve_duration(mel.replace(duration="auto"), lengths)[0].duration == auto, lengths
    fixed = mel.replace(duration=2.0)
    assert V.resolve_duration(fixed, [0.5]) == (fixed, {"auto": False, "seconds": 2.0})
    with pytest.raises(FeatureError, match="no clip with a known length"):
        V.resolve_duration(mel, [0.0])
    with pytest.raises(ConfigError, match=r"duration must be a number of seconds or one of 'fit', 'auto'"):
        V.resolve_variant({"name": "x", "duration": "long"}, where="params.yaml")
    # a rule is checked at the longest window it may choose: what 4.0 refused, fit refuses up front
    with pytest.raises(FeatureError, match=r"duration=4 s \(the longest window duration 'fit' may choose\)"):
        mel.replace(hop_length=1, n_fft=8192)
    with pytest.raises(FeatureError, match="make a spectrogram of"):
        mel.replace(hop_length=1, n_fft=8192, duration=4.0)
