"""MODEL_CARD.md as a reader needs it (desk review F11): the dataset by name and folder, never the training
machine's absolute path; the synthetic corpus named as such; intended use, limitations, per-class scores and the
calibration temperature; `soundlib info` saying the same."""

from __future__ import annotations

import json

import pytest

from soundlib.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory, synth_corpus):
    """An mn04 model trained on folds 2-4 of the synthetic corpus, tested on fold 1 (`soundlib train`)."""
    out = tmp_path_factory.mktemp("card") / "run"
    assert main(["train", str(synth_corpus), "--method", "mn04", "--test-fold", "1", "--out", str(out),
                 "--quiet"]) == 0
    return out / "model"


def test_card_names_the_dataset_without_its_absolute_path(model, synth_corpus):
    card = (model / "MODEL_CARD.md").read_text()
    manifest = (model / "soundlib_model.json").read_text()
    for text in (card, manifest):
        assert str(synth_corpus) not in text and str(synth_corpus.parent) not in text
    assert json.loads(manifest)["dataset"] == {"name": "synthetic", "folder": synth_corpus.name, "clips": 80}
    assert "- dataset: synthetic, soundlib's generated tones and noises in the UrbanSound8K layout (folder" in card
    assert f"folder `{synth_corpus.name}`" in card
    assert "dataset: urbansound8k" not in card  # the synthetic corpus used to be called that


def test_card_has_intended_use_limitations_per_class_scores_and_calibration(model):
    card = (model / "MODEL_CARD.md").read_text()
    for section in ("## Intended use", "## Limitations", "## Scores per class (test fold 1)", "## Calibration"):
        assert section in card, section
    limits = card[card.index("## Limitations"):card.index("## Embedder and licences")]
    assert "synthetic" in limits and "Not tested on" in limits and "single-label" in limits
    metrics = json.loads((model.parent / "metrics.json").read_text())
    scores = card[card.index("## Scores per class"):]
    rows = [line for line in scores.splitlines() if line.startswith("| siren |")][:1]
    siren = metrics["per_class"]["siren"]
    assert rows == [f"| siren | {siren['precision']:.3f} | {siren['recall']:.3f} | {siren['f1']:.3f} | "
                    f"{siren['support']} |"]
    temperature = json.loads((model / "soundlib_model.json").read_text())["calibration"]["temperature"]
    assert f"temperature {temperature:.3g}" in card


def test_info_says_the_same(model, capsys, synth_corpus):
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"of synthetic (folder {synth_corpus.name})" in out and str(synth_corpus) not in out
    temperature = json.loads((model / "soundlib_model.json").read_text())["calibration"]["temperature"]
    assert f"calibration: temperature {temperature:.3g}" in out


def test_old_manifests_show_the_folder_name_only(tmp_path):
    """A model exported by an older soundlib records the absolute root: the card shows its folder name."""
    from soundlib.models import card_sections

    text = card_sections.dataset_text({"name": "urbansound8k", "root": "/home/someone/data/UrbanSound8K",
                                       "clips": 8732})
    assert text == "urbansound8k (folder `UrbanSound8K`, 8732 clips)"
    assert card_sections.per_class_problems({"a": {"precision": 2.0}})
    assert not card_sections.per_class_problems({"a": {"precision": 0.5, "recall": 1.0, "f1": 0.6, "support": 3}})
