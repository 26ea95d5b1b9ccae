"""What every method shares: window aggregation, fold splits, features, the method registry."""

from __future__ import annotations

import numpy as np
import pytest

from soundlib.errors import ConfigError, DatasetError
from soundlib.methods import cache_units, resolve_method
from soundlib.methods.base import Features, FoldSplit, aggregate
from soundlib.methods.fusion import best_weights, weight_grid
from soundlib.pictures.variants import VARIANTS

from ..conftest import fake_dataset


def test_aggregate_mean_and_max():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], np.float32)
    row_clip = np.array([0, 0, 1, 2])
    mean = aggregate(proba, row_clip, np.array([0, 1, 2]), how="mean")
    assert np.allclose(mean, [[0.55, 0.45], [0.6, 0.4], [0.5, 0.5]])
    mx = aggregate(proba, row_clip, np.array([2, 0]), how="max")  # output follows the clips asked for
    assert np.allclose(mx[1], np.array([0.9, 0.8]) / 1.7) and np.allclose(mx[0], [0.5, 0.5])
    with pytest.raises(DatasetError, match="no windows"):
        aggregate(proba, row_clip, np.array([3]))
    with pytest.raises(ConfigError, match="aggregate"):
        aggregate(proba, row_clip, np.array([0]), how="median")


def test_features_rows_and_clip_means():
    f = Features(np.arange(10, dtype=np.float32).reshape(5, 2), np.array([0, 0, 1, 2, 2]), 3)
    assert f.rows_of(np.array([2, 0])).tolist() == [0, 1, 3, 4]
    assert np.allclose(f.clip_means(), [[1, 2], [4, 5], [7, 8]])
    with pytest.raises(ValueError):
        Features(np.zeros((3, 2)), np.array([0, 1]), 2)


def test_fold_split_holds_out_recordings_of_the_training_folds_only():
    import dataclasses

    ds = fake_dataset(n_groups=40, per_group=3)
    ds = ds.with_clips(dataclasses.replace(c, fold=1 + int(c.group[3:]) % 4) for c in ds.clips)
    split = FoldSplit.make(ds, 2, validation_split=0.25, seed=0)
    folds = np.array([c.fold for c in ds.clips])
    groups = np.array([c.group for c in ds.clips])
    assert set(folds[split.test]) == {2} and 2 not in set(folds[split.train])
    assert sorted(split.fit.tolist() + split.val.tolist()) == sorted(split.train.tolist())
    assert not set(groups[split.fit]) & set(groups[split.val])  # a recording is never on both sides
    assert 0.15 < len(split.val) / len(split.train) < 0.35
    with pytest.raises(DatasetError, match="fold 9 has no clips"):
        FoldSplit.make(ds, 9, validation_split=0.2, seed=0)


def test_resolve_method_names_options_and_errors():
    m = resolve_method("frozen")
    assert (m.name, m.kind, m.options.head) == ("frozen", "frozen", "logistic")
    m = resolve_method({"name": "f2", "method": "frozen", "head": "softmax", "Cs": ["0.1", 1], "variant": "linear"})
    assert m.options.Cs == (0.1, 1.0) and m.variant == VARIANTS["linear"] and m.to_dict()["variant"]["name"] == "linear"
    assert resolve_method(m.to_dict()) == m
    fusion = resolve_method({"name": "fz", "method": "fusion", "mode": "early", "members": ["frozen", "mfcc"]})
    assert [x.kind for x in fusion.options.members] == ["frozen", "mfcc"]
    auto = resolve_method({"method": "auto", "candidates": ["frozen", {"name": "m40", "method": "mfcc"}]})
    assert [c.name for c in auto.options.candidates] == ["frozen", "m40"]
    for bad, words in (("svm", "unknown method 'svm'"), ({"method": "frozen", "head": "tree"}, "head"),
                       ({"method": "frozen", "hed": "softmax"}, "'hed'"), ({"method": "mfcc", "n_mfcc": 0}, "n_mfcc"),
                       ({"method": "fusion", "members": ["frozen"]}, "at least two"),
                       ({"method": "fusion", "mode": "early", "members": ["frozen", "scratch"]}, "embedding"),
                       ({"method": "auto", "candidates": ["auto"]}, "auto cannot be a candidate"),
                       ({"method": "frozen", "Cs": [float("nan")]}, "finite"),
                       ({"method": "scratch", "epochs": 0}, "epochs")):
        with pytest.raises(ConfigError, match=words):
            resolve_method(bad, where="sweep.yaml")


def test_cache_units_are_shared_between_methods():
    mel, lin = VARIANTS["mel"], VARIANTS["linear"]
    frozen = cache_units(resolve_method("frozen"), mel, "efficientnet_lite0")
    finetune = cache_units(resolve_method("finetune"), mel, "efficientnet_lite0")
    assert list(frozen) == list(finetune) and len(frozen) == 1  # the same embeddings
    assert cache_units(resolve_method("frozen"), lin, "efficientnet_lite0").keys() != frozen.keys()
    assert cache_units(resolve_method("scratch"), mel, "efficientnet_lite0") == {}
    b14 = resolve_method({"method": "frozen", "layer": "block14", "pooling": "time_stats"})
    (key, unit), = cache_units(b14, mel, "efficientnet_lite0").items()
    assert key not in frozen and unit.method.options.layer == "block14"  # other embeddings, another fill
    fz = resolve_method({"method": "fusion", "members": ["frozen", {"method": "frozen", "variant": "linear"}, "mfcc"]})
    units = cache_units(fz, mel, "efficientnet_lite0")
    assert len(units) == 3 and {u.variant.name for u in units.values()} == {"mel", "linear"}


def test_cache_units_choose_the_duration_rule_from_the_clips(tmp_path):
    """A unit of a variant with duration "fit" names the windows the runs will read once its window is
    chosen from the clip lengths (what the sweep fills); 4-s clips give the fixed 4.0's units."""
    from soundlib.sweep.config import SweepConfig
    from soundlib.sweep.driver import _plan

    from ..conftest import tone, write_csv, write_wav

    mel, lin = VARIANTS["mel"], VARIANTS["linear"]
    fz = resolve_method({"method": "fusion", "members": ["frozen", "mfcc", {"method": "mfcc", "variant": "linear"}]})
    units = cache_units(fz, mel, "efficientnet_lite0")
    assert len(units) == 3 and not any(u.variant.resolved for u in units.values())
    for seconds in (0.5, 4.0):
        chosen = {u.key: u for u in (x.with_durations([seconds] * 20) for x in units.values())}
        fixed = cache_units(resolve_method({"method": "fusion", "members": [
            "frozen", "mfcc", {"method": "mfcc", "variant": lin.replace(duration=seconds).to_dict()}]}),
            mel.replace(duration=seconds), "efficientnet_lite0")
        assert chosen.keys() == fixed.keys() and len(chosen) == 3
        assert {u.variant.duration for u in chosen.values()} == {seconds}
    rows = []
    for k in range(6):
        path = write_wav(tmp_path / "c" / f"{k}.wav", tone(300 + 500 * (k % 2), seconds=0.5, seed=k))
        rows.append([f"c/{path.name}", "ab"[k % 2], 1 + (k // 2) % 2, f"r{k}"])
    ds_path = write_csv(tmp_path / "m.csv", ["path", "label", "fold", "group"], rows)
    from soundlib.audio.loaders import load_dataset

    config = SweepConfig(dataset=ds_path, folds=(1, 2), variants=(mel,), methods=(fz,))
    plan = _plan(config, load_dataset(ds_path), ds_path, tmp_path / "out", "", None)
    assert {u.variant.duration for u in plan.fills.values()} == {0.5} and len(plan.fills) == 3
    assert all(list(t.needs) == sorted(plan.fills) for t in plan.todo) and len(plan.todo) == 2
    assert all(t.parameters["variant"] == "mel" for t in plan.todo)  # each run chooses it the same way


def test_fusion_weights_are_chosen_on_validation():
    grid = weight_grid(3)
    assert grid[0] == (1 / 3, 1 / 3, 1 / 3) and all(abs(sum(w) - 1) < 1e-9 for w in grid)
    y = np.array([0, 1, 0, 1])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]])
    bad = good[:, ::-1]
    w, acc = best_weights([bad, good], y)
    assert acc == 1.0 and w[1] > w[0]
    w, acc = best_weights([good, good], y)
    assert w == (0.5, 0.5)  # ties keep equal weights


def test_window_pictures_are_the_whole_clip_pictures_filled_in_place(tmp_path):
    """The pictures (and planes) of every window, as rendering each clip read whole gave them; a clip that
    cannot be read or turns out silent is named."""
    from soundlib.audio.clips import load_windows
    from soundlib.audio.datasets import Clip, Dataset
    from soundlib.pictures.features import render
    from soundlib.methods.base import window_pictures

    from ..conftest import small_spec, tone, write_wav

    spec = small_spec().replace(duration=1.0)
    paths = [write_wav(tmp_path / f"{i}.wav", tone(300 + 100 * i, seconds=s, sr=44100, seed=i), sr=44100)
             for i, s in enumerate((0.5, 4.2, 2.6))]
    ds = Dataset("t", tmp_path, ("a",), tuple(Clip(p, "a", 0, 1, str(i)) for i, p in enumerate(paths)))
    ref = [np.stack([render(w, spec) for w in load_windows(p, sr=spec.sr, duration=1.0, hop=0.5)[0]])
           for p in paths]
    feats = window_pictures(ds, spec, progress=False, info={"x": 1})
    assert np.array_equal(feats.x, np.concatenate(ref)) and feats.x.dtype == np.uint8
    assert feats.row_clip.tolist() == [i for i, r in enumerate(ref) for _ in r]
    assert feats.info == {"x": 1, "windows": len(feats.x)}
    planes = window_pictures(ds, spec, progress=False, channel=0)
    assert np.array_equal(planes.x, np.concatenate(ref)[..., 0])
    bad = Clip(write_wav(tmp_path / "silent.wav", np.zeros(44100 * 3, np.float32), sr=44100), "a", 0, 1, "s")
    missing = Clip(tmp_path / "missing.wav", "a", 0, 1, "m")
    with pytest.raises(DatasetError, match=r"2 clip\(s\)[^$]*missing.wav: file not found[^$]*silent.wav: silent"):
        window_pictures(Dataset("t", tmp_path, ("a",), ds.clips + (missing, bad)), spec, progress=False)
