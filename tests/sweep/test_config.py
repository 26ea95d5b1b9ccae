"""Sweep files: keys, values and paths checked; round trip through YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from soundlib import sweep
from soundlib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.mark.parametrize("body, key", [
    ("dataset: data\nvariants: [mel]\nepochs: 3\n", "epochs"),
    ("dataset: data\ntrain: {epochs: 3, learning_rat: 0.1}\n", "learning_rat"),
    ("dataset: data\nvariants: [{name: m2, base: mel, hop_lenght: 256}]\n", "hop_lenght"),
    ("dataset: data\nvariants: [{name: m2, base: mel, merge: {strenghts: [1, 1, 1]}}]\n", "strenghts"),
    ("dataset: data\nembed: {batch_size: 8, jobs: 2}\n", "jobs"),
    ("synth: {clips_per_class: 4, colour: red}\n", "colour"),
])
def test_unknown_key_names_key_and_file(tmp_path, data_dir, body, key):
    cfg = write(tmp_path / "bad.yaml", body)
    with pytest.raises(ConfigError) as err:
        sweep.load_sweep_config(cfg)
    assert key in str(err.value)
    assert str(cfg) in str(err.value)


def test_missing_dataset_fails_naming_path(tmp_path):
    cfg = write(tmp_path / "cfg" / "s.yaml", "dataset: no/such/place\nvariants: [mel]\n")
    with pytest.raises(ConfigError) as err:
        sweep.load_sweep_config(cfg)
    msg = str(err.value)
    assert str(tmp_path / "cfg" / "no" / "such" / "place") in msg  # resolved against the YAML's folder
    assert "does not exist" in msg and str(cfg) in msg


@pytest.mark.parametrize("body, words", [
    ("variants: [mel]\n", ["no dataset"]),
    ("dataset: data\nvariants: [mfcc]\n", ["unknown feature variant", "mfcc"]),
    ("dataset: data\nvariants: [mel, mel]\n", ["given twice"]),
    ("dataset: data\nfolds: [1, x]\n", ["folds", "integer"]),
    ("dataset: data\ntrain: {epochs: 0}\n", ["epochs"]),
    ("dataset: data\ntrain: {l2: lots}\n", ["l2"]),
    ("dataset: data\nexport_model: maybe\n", ["export_model"]),
    ("dataset: data\ndata_home: data\n", ["data_home"]),
    ("dataset: data\nvariants: [{name: 'bad/name', base: mel}]\n", ["bad/name"]),
    ("dataset: [unclosed\n", ["YAML"]),
])
def test_invalid_values_are_config_errors(tmp_path, data_dir, body, words):
    cfg = write(tmp_path / "s.yaml", body)
    with pytest.raises(ConfigError) as err:
        sweep.load_sweep_config(cfg)
    for w in words:
        assert w in str(err.value)


def test_config_resolves_and_round_trips(tmp_path, data_dir):
    cfg = write(tmp_path / "s.yaml", """
        data_home: data
        folds: [2, 1]
        variants: [mel, {name: mel_hop256, base: mel, hop_length: 256, merge: {jitter: 0.1}}]
        train: {epochs: 3, l2: 1e-4, distortions: {time_mask: 0.1}}
        embed: {batch_size: 8}
        export_model: [1]
        jobs: 3
        seed: 7
    """)
    c = sweep.load_sweep_config(cfg)
    assert c.dataset == data_dir.resolve()
    assert c.folds == (2, 1) and c.jobs == 3 and c.embed_batch_size == 8
    assert [v.name for v in c.variants] == ["mel", "mel_hop256"]
    assert c.variants[1].hop_length == 256 and c.variants[1].merge.jitter == 0.1
    assert c.train.l2 == 1e-4 and c.train.epochs == 3 and c.train.seed == 7  # seed defaults the head's
    assert c.exports(1) and not c.exports(2)
    import yaml

    again = write(tmp_path / "again.yaml", yaml.safe_dump(c.to_dict()))
    assert sweep.load_sweep_config(again) == c


def test_shipped_params_files(tmp_path, monkeypatch):
    demo = sweep.load_sweep_config(PARAMS / "demo.yaml")
    assert demo.synth is not None and demo.synth.clips_per_class == 40 and demo.folds is None
    assert len(demo.variants) == 3 and demo.backbone == "efficientnet_lite0"
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, n_variants in (("urbansound8k", 6), ("esc50", 6)):
        with pytest.raises(ConfigError, match="does not exist"):
            sweep.load_sweep_config(PARAMS / f"{name}.yaml")
        (tmp_path / "soundata" / name).mkdir(parents=True)
        c = sweep.load_sweep_config(PARAMS / f"{name}.yaml")
        assert c.dataset == tmp_path / "soundata" / name and len(c.variants) == n_variants



def test_shipped_real_recordings_benchmark_file(tmp_path):
    """params/urbansound8k_subset.yaml (the README's benchmark) stays a valid sweep: every method and
    variant resolves, the dataset path points at ../shared beside the checkout."""
    params = tmp_path / "checkout" / "params"
    params.mkdir(parents=True)
    (params / "urbansound8k_subset.yaml").write_text((PARAMS / "urbansound8k_subset.yaml").read_text())
    with pytest.raises(ConfigError, match="manifest.csv"):
        sweep.load_sweep_config(params / "urbansound8k_subset.yaml")
    manifest = tmp_path / "shared" / "data" / "urbansound8k_subset" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("path,label,fold,group\n")
    c = sweep.load_sweep_config(params / "urbansound8k_subset.yaml")
    assert c.dataset == manifest and c.folds is None
    assert [v.name for v in c.variants] == ["mel", "mel_hop256"]
    assert c.variants[-1].hop_length == 256
    names = [m.name for m in c.methods]
    assert names == ["frozen", "frozen_block14", "frozen_multi", "mfcc", "scratch", "mn04", "yamnet", "birdnet",
                     "late_mn04_yamnet", "late_free", "late_all", "fusion", "auto"]
    by_name = {m.name: m for m in c.methods}
    assert (by_name["mn04"].kind, by_name["mn04"].backbone) == ("frozen", "mn04")
    assert [m.name for m in by_name["late_free"].options.members] == ["mn04", "yamnet", "frozen_multi"]
    assert [m.name for m in by_name["auto"].options.candidates][:2] == ["mn04", "yamnet"]
    assert c.only["frozen_multi"]["variants"] == ("mel", "mel_hop256")
    (params / "urbansound8k_subset_finetune.yaml").write_text((PARAMS / "urbansound8k_subset_finetune.yaml").read_text())
    ft = sweep.load_sweep_config(params / "urbansound8k_subset_finetune.yaml")
    assert ft.folds == (1, 10) and [(m.kind, m.backbone) for m in ft.methods][-3:] == [
        ("finetune", "mn04"), ("finetune", "yamnet"), ("finetune", None)]
    assert c.backbone == "efficientnet_lite0" and not c.export_model

# ---------------------------------------------------------------------------
# Aggregation (fast: hand-written metrics files)


def test_export_model_per_variant(tmp_path, data_dir):
    """``export_model: {variant: folds}`` exports those folds of the variants it names, none of the others;
    it round-trips through the sweep file, and names a variant the sweep does not run as an error."""
    from soundlib.sweep.driver import run_parameters

    cfg = write(tmp_path / "s.yaml", """
        data_home: data
        variants: [mel, waveform, merged]
        export_model: {mel: [1, 3], merged: true}
    """)
    c = sweep.load_sweep_config(cfg)
    assert [c.exports(f, "mel") for f in (1, 2, 3)] == [True, False, True]
    assert not any(c.exports(f, "waveform") for f in (1, 2, 3))
    assert all(c.exports(f, "merged") for f in (1, 2, 3))
    spec = {v.name: v for v in c.variants}
    assert run_parameters(c, spec["mel"], 1, data_dir, tmp_path / "r")["export_model"] is True
    assert run_parameters(c, spec["waveform"], 1, data_dir, tmp_path / "r")["export_model"] is False
    import yaml

    again = write(tmp_path / "again.yaml", yaml.safe_dump(c.to_dict()))
    assert sweep.load_sweep_config(again) == c
    bad = write(tmp_path / "bad.yaml", "data_home: data\nvariants: [mel]\nexport_model: {melody: [1]}\n")
    with pytest.raises(ConfigError, match=r"export_model names variant\(s\) 'melody'.*expected some of mel"):
        sweep.load_sweep_config(bad)
    worse = write(tmp_path / "worse.yaml", "data_home: data\nvariants: [mel]\nexport_model: {mel: maybe}\n")
    with pytest.raises(ConfigError, match="export_model: mel"):
        sweep.load_sweep_config(worse)
