"""The command line names the embedder (desk review F12 and issue 23): `--help`, the project's description
and the README's first lines say pictures OR audio networks, and the last lines of `evaluate` and `train`
name the embedder the method used (before: "a pretrained image model", and no embedder for mn04)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from soundlib.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_and_description_name_audio_networks(capsys):
    from soundlib.cli.parser import build_parser

    text = build_parser().format_help()
    assert "pretrained image model" not in text and "audio network" in text and "mn04" in text
    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    assert "audio networks" in description and "image models" not in description
    first = (ROOT / "README.md").read_text().split("\n\n")[1]
    assert first.startswith("Classify sounds") and first.index("audio network") < first.index("pictures")
    assert "pretrained image model" not in first
    build_parser().parse_args(["predict", "m", "x"])  # (the parser builds; predict's summary below)
    assert "label WAVs or pictures" not in text


def test_evaluate_and_train_name_the_embedder(tmp_path, capsys, synth_corpus):
    """MFCC statistics (no TensorFlow): `evaluate --method mfcc` and `train` say `embedder mfcc`."""
    assert main(["evaluate", str(synth_corpus), "--method", "mfcc", "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "embedder mfcc" in last and "mfcc:basic" not in last, last
    assert main(["train", str(synth_corpus), "--method", "mfcc", "--test-fold", "1", "--out",
                 str(tmp_path / "tr"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(embedder mfcc, trained on" in out, out
    assert main(["train", str(synth_corpus), "--method", "mfcc", "--all-folds", "--out", str(tmp_path / "all"),
                 "--quiet"]) == 0
    assert "clips (embedder mfcc), validation accuracy" in capsys.readouterr().out


def test_auto_summaries_name_the_pick_or_the_candidates():
    from soundlib.evaluation.evaluate import embedder_text

    info = {"candidates": {"mn04": {"embedder": "mn04"}, "frozen": {"embedder": "efficientnet_lite0"},
                           "mfcc": {"embedder": "mfcc"}}}
    assert embedder_text(info, {"picked": "frozen"}) == "embedder efficientnet_lite0 (picked frozen)"
    assert embedder_text(info) == "candidates: mn04, frozen on efficientnet_lite0, mfcc"
    assert embedder_text(info, {"picked": "late_fusion"}) == "candidates: mn04, frozen on efficientnet_lite0, mfcc"
    assert embedder_text({"embedder": "yamnet"}) == "embedder yamnet" and embedder_text({}) == ""
