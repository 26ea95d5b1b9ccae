"""Recordings of a dataset without metadata: unknown (warned, recorded), named by --group-by / --group-regex,
or recognised from UrbanSound8K / ESC-50 file names."""

from __future__ import annotations

import json
import re
import warnings
from collections import defaultdict
from pathlib import Path

import pytest

from soundlib.audio import datasets as D
from soundlib.audio import loaders as L
from soundlib.errors import ConfigError, DatasetError, SoundlibWarning
from soundlib.audio.folds import prepare_folds

from ..conftest import small_spec, tone, write_csv, write_wav

N_CLASSES, RECORDINGS, SLICES = 3, 4, 4


def slices_tree(root: Path, name=lambda c, r, s: f"rec{c}{r}_slice{s}.wav", seconds: float = 0.3) -> Path:
    """A folder per class: RECORDINGS recordings per class, each cut into SLICES slices."""
    for c in range(N_CLASSES):
        for r in range(RECORDINGS):
            for s in range(SLICES):
                write_wav(root / f"class{c}" / name(c, r, s), tone(200 + 150 * c + 20 * r, seconds=seconds, seed=s))
    return root


def recording_folds(ds: D.Dataset) -> dict[str, set[int]]:
    """The folds each true recording (``rec<c><r>``, from the file name) landed in."""
    folds = defaultdict(set)
    for clip in ds.clips:
        folds[re.match(r"(rec\d+)_", clip.path.name).group(1)].add(clip.fold)
    return folds


def prepared(ds):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SoundlibWarning)
        out, protocol = prepare_folds(ds, k_folds=4, seed=0)
    return out, protocol, [str(w.message) for w in caught if issubclass(w.category, SoundlibWarning)]


def test_folder_per_class_slices_split_across_folds_unless_grouped(tmp_path):
    root = slices_tree(tmp_path / "tree")
    ds = L.load_dataset(root)
    assert not ds.grouping.known and ds.n_recordings == len(ds) == N_CLASSES * RECORDINGS * SLICES
    folds, protocol, said = prepared(ds)
    assert protocol == "grouped-4-folds"
    split = [r for r, f in recording_folds(folds).items() if len(f) > 1]
    assert split  # the leak this warning is about: slices of one recording in several folds
    assert any("RECORDINGS UNKNOWN" in w and "--group-regex" in w for w in said), said

    grouped = L.load_dataset(root, group_regex=r"^(rec\d+)_slice")
    assert grouped.grouping.source == "regex" and grouped.n_recordings == N_CLASSES * RECORDINGS
    folds, _, said = prepared(grouped)
    assert all(len(f) == 1 for f in recording_folds(folds).values())  # a recording is never split
    assert not any("RECORDINGS UNKNOWN" in w for w in said)


def test_group_regex_errors(tmp_path):
    root = slices_tree(tmp_path / "tree")
    with pytest.raises(ConfigError, match="has 0 groups; it needs exactly one"):
        L.load_dataset(root, group_regex=r"rec\d+")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        L.load_dataset(root, group_regex=r"(rec")
    write_wav(root / "class0" / "odd.wav", tone())
    with pytest.raises(DatasetError, match=r"1 of 49 file name\(s\) do not match group_regex .*: odd.wav"):
        L.load_dataset(root, group_regex=r"^(rec\d+)_")
    with pytest.raises(ConfigError, match="not both"):
        L.load_dataset(root, group_by="x", group_regex=r"(x)")
    with pytest.raises(DatasetError, match="names a column of a manifest CSV, but this is a folder per class"):
        L.load_dataset(root, group_by="recording")


@pytest.mark.parametrize("convention, name, group", [
    ("UrbanSound8K", lambda c, r, s: f"{100030 + 10 * c + r}-{c}-0-{s}.wav", "fs100030"),
    ("ESC-50", lambda c, r, s: f"{1 + s % 5}-{100030 + 10 * c + r}-{'AB'[s % 2]}-{c}.wav", "src100030"),
])
def test_us8k_and_esc50_file_names_recognised_in_a_folder(tmp_path, convention, name, group):
    root = slices_tree(tmp_path / "tree", name=name, seconds=0.1)
    ds = L.load_dataset(root)
    assert ds.grouping.source == "file-names" and convention in ds.grouping.detail and ds.grouping.known
    assert ds.n_recordings == N_CLASSES * RECORDINGS and ds.clips[0].group == group
    _, _, said = prepared(ds)
    assert any(f"recordings taken from the file names (recognised {convention}" in w for w in said), said
    # one name that follows neither convention: nothing is guessed
    write_wav(root / "class0" / "other.wav", tone(seconds=0.1))
    assert not L.load_dataset(root).grouping.known


def test_manifest_group_by_column_and_unknown(tmp_path):
    rows = []
    for r in range(4):
        for s in range(2):
            write_wav(tmp_path / "clips" / f"{r}_{s}.wav", tone(300 + 50 * r, seconds=0.1))
            rows.append([f"clips/{r}_{s}.wav", f"c{r % 2}", f"take{r}"])
    plain = write_csv(tmp_path / "m.csv", ["path", "label", "session"], rows)
    ds = L.load_dataset(plain)
    assert ds.grouping.source == "none" and not ds.grouping.known and ds.n_recordings == 8
    by = L.load_dataset(plain, group_by="session")
    assert by.grouping.known and "'session'" in by.grouping.detail and by.n_recordings == 4
    with pytest.raises(DatasetError, match=r"m.csv: no column 'take' to group recordings by .* path, label, session"):
        L.load_dataset(plain, group_by="take")
    holes = write_csv(tmp_path / "h.csv", ["path", "label", "session"], rows[:-1] + [rows[-1][:2] + [""]])
    with pytest.raises(DatasetError, match=r"h.csv, line 9: empty 'session'"):
        L.load_dataset(holes, group_by="session")
    with_group = write_csv(tmp_path / "g.csv", ["path", "label", "group"], rows)
    assert L.load_dataset(with_group).grouping.source == "column"


def test_sweep_keys(tmp_path):
    from soundlib.sweep import SweepConfig

    (tmp_path / "d").mkdir()
    cfg = SweepConfig.from_dict({"dataset": "d", "group_regex": r"^(rec\d+)_"}, base_dir=tmp_path)
    assert cfg.group_regex == r"^(rec\d+)_" and SweepConfig.from_dict(cfg.to_dict(), base_dir=tmp_path) == cfg
    # passed to every run's train.ipynb (a parameter it has) and to the cache fills
    import papermill as pm

    from soundlib.lab.notebook import notebooks_dir
    from soundlib.sweep.driver import run_parameters
    from soundlib.pictures.variants import get_variant

    params = run_parameters(cfg, get_variant("mel"), 1, tmp_path / "d", tmp_path / "o")
    assert params["group_regex"] == r"^(rec\d+)_" and "group_by" not in params
    assert set(params) <= set(pm.inspect_notebook(str(notebooks_dir() / "train.ipynb")))
    for bad, words in (({"group_by": "a", "group_regex": "(a)"}, "not both"), ({"group_regex": "a"}, "0 groups"),
                       ({"group_by": 3}, "group_by must be a non-empty string")):
        with pytest.raises(ConfigError, match=words):
            SweepConfig.from_dict({"dataset": "d", **bad}, base_dir=tmp_path)


def test_evaluate_records_unknown_recordings_and_cli_group_regex(tmp_path, capsys, tiny_backbone):
    from soundlib.cli import main
    from soundlib.pictures.variants import register_variant

    register_variant(small_spec().replace(name="mel32", duration=0.3), overwrite=True)
    root = slices_tree(tmp_path / "tree")
    common = [str(root), "--variant", "mel32", "--backbone", str(tiny_backbone), "--k-folds", "4", "--quiet"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "plain")]) == 0
    out, err = capsys.readouterr()
    assert "soundlib evaluate: warning:" in err and "RECORDINGS UNKNOWN" in err
    assert "[RECORDINGS UNKNOWN" in out.strip().splitlines()[-1]
    res = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert res["grouping"]["known"] is False and res["grouping"]["recordings"] == len(res["dataset"]["classes"]) * 16
    assert "RECORDINGS UNKNOWN" in res["note"] and any("RECORDINGS UNKNOWN" in w for w in res["warnings"])

    assert main(["evaluate", *common, "--out", str(tmp_path / "grouped"), "--group-regex", r"^(rec\d+)_"]) == 0
    assert "RECORDINGS UNKNOWN" not in capsys.readouterr().err
    res = json.loads((tmp_path / "grouped" / "results.json").read_text())
    assert res["grouping"]["source"] == "regex" and res["grouping"]["recordings"] == N_CLASSES * RECORDINGS
    assert res["note"] == "leave-one-fold-out, recordings never split"

    assert main(["train", *common, "--test-fold", "1", "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["grouping"]["known"] is False and any("RECORDINGS UNKNOWN" in w for w in metrics["warnings"])
    assert main(["evaluate", *common, "--out", str(tmp_path / "x"), "--group-regex", "rec"]) == 2
    assert "soundlib evaluate: error: group_regex (--group-regex) 'rec' has 0 groups" in capsys.readouterr().err
