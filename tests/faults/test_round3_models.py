"""Red-team round 3 (report red-team-0.2.0.md), sections D and H: a model folder is data, not instructions,
and a number copied from another run is checked before any model card states it.

The models are tiny: a logistic head on MFCC statistics (``frozen`` on the ``mfcc`` embedder: an
``embedder.json`` and a ``head.npz``, like an mn04 model's) trained on 12 one-second tones. Where a case of
the report says "checksums updated", :func:`rehash` records the edited files' checksums, sizes and the
manifest's own digest again, so that the case tests the design rather than the checksum.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from soundlib.errors import ConfigError, ModelError, SoundlibError, SoundlibWarning

from ..conftest import tone, write_wav

ROWS = [(f"{label}{i}.wav", label, 1 + i % 2) for label in "abc" for i in range(4)]
FREQS = {"a": 300, "b": 1200, "c": 4000}


def _corpus(folder: Path, *, seed: int = 0) -> Path:
    """12 one-second tones of classes a, b, c over folds 1 and 2 (a manifest CSV); ``seed`` changes the audio."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, label, _) in enumerate(ROWS):
        write_wav(folder / name, tone(FREQS[label] + 37 * i + 101 * seed, seconds=1.0, seed=i + 50 * seed))
    lines = ["path,label,fold,group"] + [f"{n},{lab},{f},{n}" for n, lab, f in ROWS]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def _config(backbone: str = "mfcc"):
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.pictures.variants import get_variant

    return EvalConfig(spec=get_variant("mel").replace(duration=1.0), method="frozen", backbone=backbone)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two corpora of the same name and size (other audio), an evaluation of the first, and a model."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import evaluate
    from soundlib.models.train import train_fold

    root = tmp_path_factory.mktemp("round3")
    ds = load_dataset(_corpus(root / "c"))
    other = load_dataset(_corpus(root / "c2", seed=1))
    evaluate(ds, _config(), out_dir=root / "ev", progress=False)
    evaluate(other, _config(), out_dir=root / "ev2", progress=False)
    train_fold(ds, test_fold=1, config=_config(), out_dir=root / "run", progress=False)
    return {"root": root, "ds": ds, "other": other, "model": root / "run" / "model"}


def copy_model(world, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(world["model"], dst)
    return dst


def rehash(model: Path, **manifest_edits) -> dict:
    """Record the files' checksums and sizes and the manifest's digest again (the report's "checksums
    updated"), after applying ``manifest_edits`` to the manifest."""
    info = json.loads((model / "soundlib_model.json").read_text())
    info.update(manifest_edits)
    info["checksums"] = {name: _sha256(model / name) for name in info["checksums"]}
    info["sizes"] = {name: (model / name).stat().st_size for name in info["checksums"]}
    info["manifest_sha256"] = _digest(info)
    (model / "soundlib_model.json").write_text(json.dumps(info, indent=2))
    return info


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(info: dict) -> str:
    """The manifest's digest as the format defines it: SHA-256 of its canonical JSON without that entry."""
    body = {k: v for k, v in info.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def edit_json(path: Path, **changes) -> dict:
    value = json.loads(path.read_text())
    value.update(changes)
    path.write_text(json.dumps(value, indent=2))
    return value


def edit_head(model: Path, **arrays) -> None:
    with np.load(model / "head.npz") as z:
        head = {k: z[k] for k in z.files}
    head.update(arrays)
    with open(model / "head.npz", "wb") as fh:
        np.savez(fh, **head)


def info_of(model: Path, capsys) -> tuple[int, str, str]:
    from soundlib.cli import main

    capsys.readouterr()
    rc = main(["info", str(model)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---------------------------------------------------------------------------
# D: the exported model's files


def test_the_model_loads_and_its_manifest_records_its_own_digest_and_sizes(world):
    from soundlib.models.load import load_model

    info = json.loads((world["model"] / "soundlib_model.json").read_text())
    assert info["manifest_sha256"] == _digest(info)
    assert info["sizes"] == {n: (world["model"] / n).stat().st_size for n in info["checksums"]}
    model = load_model(world["model"])
    assert model.window.sr == 22050 and model.window.pad == "none"
    assert model.predict_windows(np.zeros((1, 22050), np.float32)).shape == (1, 3)


def test_D_npz_nan_is_refused_at_load(world, tmp_path):
    """coef all NaN, checksums updated: was loaded, and every class printed with probability nan."""
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    with np.load(model / "head.npz") as z:
        edit_head(model, coef=np.full_like(z["coef"], np.nan))
    rehash(model)
    with pytest.raises(ModelError, match=r"head\.npz: 'coef' holds \d+ non-finite value"):
        load_model(model)


def test_D_npz_shapes_is_refused_at_load_naming_head_npz(world, tmp_path):
    """mean cut to 10 entries, checksums updated: was a per-file broadcasting ValueError."""
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    with np.load(model / "head.npz") as z:
        edit_head(model, mean=z["mean"][:10])
    rehash(model)
    with pytest.raises(ModelError, match=r"head\.npz: 'scale' has shape \(160,\), expected \(10,\)"):
        load_model(model)
    edit_head(model, mean=np.zeros(160), intercept=np.zeros(2))
    rehash(model)
    with pytest.raises(ModelError, match=r"head\.npz: 'intercept' has shape \(2,\), expected \(3,\) \(3 labels"):
        load_model(model)


@pytest.mark.parametrize("field, value", [("sr", 8000), ("duration", 0.001), ("window_hop", 0.25), ("pad", "end")])
def test_D_emb_window_edits_are_refused_at_load(world, tmp_path, field, value):
    """D_emb_window_sr (32000 -> 8000 changed every prediction silently) and D_emb_window_dur (0.001 s: a
    per-file error without a file name), checksums updated: the window must be the embedder's own."""
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    record = json.loads((model / "embedder.json").read_text())
    edit_json(model / "embedder.json", window={**record["window"], field: value})
    rehash(model)
    with pytest.raises(ModelError, match=rf"embedder\.json: the recorded window is not the one 'mfcc' uses .*{field} "):
        load_model(model)


@pytest.mark.parametrize("name", ["/tmp/some/saved_model_folder", "https://tfhub.dev/google/yamnet/1",
                                  "efficientnet_lite0", "../outside"])
def test_D_emb_external_savedmodel_no_path_url_or_picture_backbone_is_resolved(world, tmp_path, monkeypatch, name):
    """embedder.json's name set to a SavedModel outside the model (identity matched, checksums updated):
    TensorFlow loaded it (15.8 s, 1 GB). Now nothing but a registered audio embedder is ever resolved."""
    import soundlib.embedders as E
    from soundlib.models.load import load_model

    resolved = []
    real = E.resolve_embedder
    monkeypatch.setattr(E, "resolve_embedder", lambda handle, *a, **k: resolved.append(handle) or real(handle, *a, **k))
    model = copy_model(world, tmp_path)
    edit_json(model / "embedder.json", name=name)
    rehash(model)
    with pytest.raises(ModelError, match=r"embedder\.json: 'name' .* is not a registered audio embedder \(.*mfcc"):
        load_model(model)
    assert resolved == []


def test_D_emb_modality_must_be_waveform(world, tmp_path):
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    edit_json(model / "embedder.json", modality="picture")
    rehash(model)
    with pytest.raises(ModelError, match=r"embedder\.json: 'modality' 'picture', but 'mfcc' embeds audio"):
        load_model(model)


def test_D_emb_other_embedder_with_its_own_identity_is_refused_before_loading(world, tmp_path, monkeypatch):
    """name yamnet with yamnet's identity, checksums updated: YAMNet was loaded, then per-file errors."""
    from soundlib.embedders.yamnet import YamnetEmbedder
    from soundlib.models.load import load_model

    monkeypatch.setattr(YamnetEmbedder, "load", lambda self: pytest.fail("YAMNet was loaded"))
    model = copy_model(world, tmp_path)
    edit_json(model / "embedder.json", name="yamnet", identity=YamnetEmbedder().identity)
    rehash(model)
    with pytest.raises(ModelError, match=r"embedder\.json: the recorded window is not the one 'yamnet' uses.*"
                                         r"sr 22050 \(it computes 16000\)"):
        load_model(model)


def test_an_edited_manifest_is_refused_at_load_and_flagged_by_info(world, tmp_path, capsys):
    """The manifest's statements are checksummed too (manifest_sha256): an edit without a new digest."""
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    edit_json(model / "soundlib_model.json", test_accuracy={"accuracy": 0.99, "macro_f1": 0.99, "n": 6})
    with pytest.raises(ModelError, match=r"soundlib_model\.json: edited after export"):
        load_model(model)
    rc, out, _ = info_of(model, capsys)
    assert rc == 1 and "soundlib_model.json  MISMATCH (edited after export" in out


def test_models_without_the_new_records_still_load_quietly(world, tmp_path, recwarn):
    """A 0.2 model (no sizes, no manifest_sha256) loads as before; info shows its manifest unchecked."""
    from soundlib.models.card import info_text
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    info = json.loads((model / "soundlib_model.json").read_text())
    del info["sizes"], info["manifest_sha256"]
    (model / "soundlib_model.json").write_text(json.dumps(info))
    assert load_model(model).labels == ["a", "b", "c"]
    assert not [w for w in recwarn if issubclass(w.category, SoundlibWarning)]
    text, ok = info_text(model)
    assert ok and "soundlib_model.json  present (no checksum)" in text


def test_a_size_that_differs_from_the_recorded_one_is_refused_without_hashing(world, tmp_path, monkeypatch):
    import soundlib.models.format as F
    from soundlib.models.load import load_model

    model = copy_model(world, tmp_path)
    with open(model / "head.npz", "ab") as fh:
        fh.write(b"\0" * 10)
    real = F.sha256_file
    monkeypatch.setattr(F, "sha256_file", lambda p: pytest.fail(f"{p} was hashed") if p.name == "head.npz" else real(p))
    with pytest.raises(ModelError, match=r"head\.npz: does not match .* bytes recorded at export"):
        load_model(model)


@pytest.mark.parametrize("case, edits", [
    ("D_info_training_str", {"training": "x"}),
    ("D_info_cv_int", {"cross_validation": {"folds": 3}}),
    ("dataset_list", {"dataset": [1, 2]}),
    ("training_fields", {"training": {"folds": "1,2", "clips": -3, "validation_split": "a", "seed": None}}),
    ("test_accuracy_nan", {"test_accuracy": {"accuracy": float("nan"), "n": "six"}}),
])
@pytest.mark.parametrize("digest", ["stale", "updated"])
def test_D_info_never_tracebacks_on_an_edited_manifest(world, tmp_path, capsys, case, edits, digest):
    """`"training": "x"` and `"cross_validation": {"folds": 3}` gave AttributeError / TypeError tracebacks."""
    from soundlib.models.card import model_card

    model = copy_model(world, tmp_path)
    if digest == "updated":
        rehash(model, **edits)
    else:
        edit_json(model / "soundlib_model.json", **edits)
    rc, out, err = info_of(model, capsys)
    assert rc == 1 and "Traceback" not in out + err
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    section = next(iter(edits))
    assert problems and all(section in line for line in problems), out
    assert ("MISMATCH" in out) == (digest == "stale")
    card = model_card(model)
    assert "## Problems in the manifest" in card and "0.990" not in card and "nan" not in card.lower().split(
        "## problems")[0]


def test_info_survives_every_field_of_the_manifest_with_every_wrong_type(world, tmp_path):
    from soundlib.models.card import info_text, model_card

    model = copy_model(world, tmp_path)
    original = json.loads((model / "soundlib_model.json").read_text())
    for key in [k for k in original if k not in ("format", "checksums", "sizes", "kind")]:
        for value in ("x", 3, -1.5, [1, "a"], {"a": {"b": None}}, None, True, float("inf")):
            (model / "soundlib_model.json").write_text(json.dumps({**original, key: value}))
            text, _ = info_text(model)
            assert text.startswith("model: ") and model_card(model).startswith("# Model card")


def test_D_licence_spoof_info_shows_the_licence_of_embedder_json(world, tmp_path, capsys):
    """soundlib_model.json's embedder edited to `mfcc:x` made an mn04 (or BirdNET) model print "licences:
    none", every file "ok". Here a BirdNET record in embedder.json (checksums updated) and a manifest that
    claims MFCC (its digest updated too): info shows BirdNET's licence and flags the difference."""
    model = copy_model(world, tmp_path)
    edit_json(model / "embedder.json", name="birdnet", identity="birdnet:2.4:51726412:embedding")
    rehash(model, embedder={"identity": "mfcc:basic:40:1"})
    rc, out, _ = info_of(model, capsys)
    assert "licences: CC BY-NC-SA 4.0 (NON-COMMERCIAL" in out and "licences: none" not in out
    assert "embedder: birdnet:2.4:51726412:embedding" in out
    assert ("problem: soundlib_model.json names the embedder 'mfcc:basic:40:1', but embedder.json (checksummed; "
            "what the model runs) names 'birdnet:2.4:51726412:embedding'") in out
    assert rc == 1


def test_D09_info_and_card_of_a_model_on_an_audio_embedder_tell_the_truth(world, capsys):
    """Was: "runs on: SavedModel only (TensorFlow)", "rendered as a 224x224 picture", "padded: end",
    "`saved_model/` (not checksummed)" for every model on an audio embedder."""
    rc, out, _ = info_of(world["model"], capsys)
    card = (world["model"] / "MODEL_CARD.md").read_text()
    assert rc == 0
    for text in (out, card):
        assert "SavedModel only" not in text and "picture;" not in text and "224x224" not in text
        assert "saved_model/" not in text and "padded: end" not in text
        assert "soundlib alone: MFCC statistics (librosa) and the logistic head (numpy); no TensorFlow needed" in text
        assert ("the audio embedder 'mfcc' (mfcc:basic:40:1): audio resampled to 22050 Hz, cut into 1-s windows "
                "every 0.5 s; a clip shorter than one window is embedded as it is (not padded)") in text
    assert "| `head.npz` |" in card and "| `soundlib_model.json` (its content but this entry) |" in card


def test_D09_an_mn04_model_is_described_from_its_embedder_json(world, tmp_path, capsys):
    from soundlib.embedders.mn04 import Mn04Embedder
    from soundlib.models.card import model_card
    from soundlib.models.load import embedder_window
    from soundlib.pictures.variants import FeatureSpec

    model = copy_model(world, tmp_path)
    mn04 = Mn04Embedder()
    spec = FeatureSpec.from_dict(json.loads((model / "feature_spec.json").read_text()))
    record = edit_json(model / "embedder.json", name="mn04", identity=mn04.identity, license=mn04.license,
                       window=embedder_window(mn04, spec).to_dict())
    rehash(model, embedder=record)
    rc, out, _ = info_of(model, capsys)
    assert rc == 0, out
    assert "runs on: soundlib's mn04 port on LiteRT" in out and "licences: MIT" in out
    assert "audio resampled to 32000 Hz, cut into 1-s windows every 0.5 s; a clip shorter than one window is " \
           "embedded as it is (not padded)" in out
    assert "32000 Hz" in model_card(model) and "22050 Hz" not in model_card(model)


def _fake_picture_model(folder: Path, *, litert_size: bool) -> Path:
    """A picture model's files without TensorFlow: labels, spec, an (empty) SavedModel folder, a manifest
    recording a small model.tflite, and in its place a 32 GB sparse file."""
    from soundlib.pictures.variants import get_variant

    folder.mkdir()
    (folder / "saved_model").mkdir()
    (folder / "labels.txt").write_text("a\nb\n")
    (folder / "feature_spec.json").write_text(json.dumps(get_variant("mel").replace(duration=1.0).to_dict()))
    (folder / "model.tflite").write_bytes(b"TFL3" * 100)
    lite = {"file": "model.tflite", "sha256": _sha256(folder / "model.tflite"),
            **({"size": 400} if litert_size else {})}
    info = {"format": "soundlib-model/2", "input": {"height": 224, "width": 224, "channels": 3},
            "checksums": {n: _sha256(folder / n) for n in ("labels.txt", "feature_spec.json")}, "litert": lite}
    if litert_size:
        info["manifest_sha256"] = _digest(info)
    (folder / "soundlib_model.json").write_text(json.dumps(info))
    with open(folder / "model.tflite", "r+b") as fh:
        fh.truncate(32 << 30)
    return folder


@pytest.mark.parametrize("litert_size", [True, False], ids=["recorded_size", "0.2_manifest"])
def test_D_sparse_tflite_info_is_one_line_without_reading_it(tmp_path, capsys, litert_size):
    """A 32 GB sparse model.tflite: `soundlib info` was a MemoryError traceback."""
    model = _fake_picture_model(tmp_path / "m", litert_size=litert_size)
    t0 = time.perf_counter()
    rc, out, err = info_of(model, capsys)
    assert time.perf_counter() - t0 < 5
    line = next(x for x in out.splitlines() if x.strip().startswith("model.tflite"))
    assert "MISMATCH (34,359,738,368 bytes, " in line
    assert ("400 bytes recorded at export" if litert_size else "more than such a file can be") in line
    assert rc == 1 and "Traceback" not in err


@pytest.mark.parametrize("litert_size", [True, False], ids=["recorded_size", "0.2_manifest"])
def test_D_sparse_tflite_predict_falls_back_with_a_warning(tmp_path, litert_size):
    """Same, `predict`: was a MemoryError in _open_litert. Now the SavedModel serves, with a warning."""
    from soundlib.models.litert_runner import open_litert
    from soundlib.models.load import read_model_info
    from soundlib.pictures.variants import get_variant

    model = _fake_picture_model(tmp_path / "m", litert_size=litert_size)
    t0 = time.perf_counter()
    with pytest.warns(SoundlibWarning, match=r"model\.tflite does not match the checksum .*34,359,738,368 bytes.*"
                                             r"using its SavedModel instead"):
        assert open_litert(model, read_model_info(model), get_variant("mel"), 2) is None
    assert time.perf_counter() - t0 < 5


def test_a_model_file_that_is_a_device_or_folder_is_never_hashed(world, tmp_path):
    from soundlib.models.format import file_status

    model = copy_model(world, tmp_path)
    (model / "head.npz").unlink()
    (model / "head.npz").symlink_to("/dev/zero")
    info = json.loads((model / "soundlib_model.json").read_text())
    assert file_status(model, info)["head.npz"] == "MISMATCH (not a regular file)"


# ---------------------------------------------------------------------------
# H: numbers and sets from another run


def test_cv_from_the_same_data_and_configuration_is_recorded(world, tmp_path, capsys):
    from soundlib.cli import main
    from soundlib.models.train import train_all_folds

    metrics = train_all_folds(world["ds"], config=_config(), out_dir=tmp_path / "ship", progress=False,
                              cv_from=world["root"] / "ev")
    results = json.loads((world["root"] / "ev" / "results.json").read_text())
    cv = metrics["cross_validation"]
    assert cv["accuracy_mean"] == results["accuracy_mean"] and cv["dataset_fingerprint"] == results["fingerprint"]["data"]
    rc, out, _ = info_of(tmp_path / "ship", capsys)
    assert rc == 0 and f"cross-validated accuracy {cv['accuracy_mean']:.3f}" in out
    assert main(["info", str(tmp_path / "ship")]) == 0


def test_H01_cv_from_an_evaluation_of_other_data_of_the_same_name_and_size_is_refused(world, tmp_path):
    """Was accepted: "cross-validated accuracy 1.000" where the real figure was 0.667."""
    from soundlib.models.train import train_all_folds

    assert world["ds"].name == world["other"].name and len(world["ds"]) == len(world["other"])
    with pytest.raises(ConfigError, match=r"--cv-from .*ev2.*measured another configuration: other data \(classes, "
                                          r"clips, labels, folds or audio differ"):
        train_all_folds(world["ds"], config=_config(), out_dir=tmp_path / "ship", progress=False,
                        cv_from=world["root"] / "ev2")
    assert not (tmp_path / "ship").exists()  # refused before anything was trained


def test_H01_relabelled_or_refolded_data_is_other_data(world):
    import dataclasses

    from soundlib.audio.datasets import Dataset
    from soundlib.evaluation.evaluate import read_cross_validation

    ds = world["ds"]
    clips = list(ds.clips)
    clips[0] = dataclasses.replace(clips[0], fold=2 if clips[0].fold == 1 else 1)
    refolded = Dataset(**{**{f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}, "clips": clips})
    with pytest.raises(ConfigError, match="other data"):
        read_cross_validation(world["root"] / "ev", _config(), refolded)


def test_H03_cv_from_an_evaluation_on_another_embedder_is_refused(world, tmp_path):
    """`--method frozen --backbone mn04 --cv-from <frozen/EfficientNet evaluation>` was accepted."""
    from soundlib.evaluation.evaluate import check_cross_validation_features, read_cross_validation
    from soundlib.models.train import train_all_folds

    with pytest.raises(ConfigError, match=r"measured another configuration: backbone 'mfcc' \(training 'mn04'\)"):
        train_all_folds(world["ds"], config=_config("mn04"), out_dir=tmp_path / "ship", progress=False,
                        cv_from=world["root"] / "ev")
    cv = read_cross_validation(world["root"] / "ev", _config(), world["ds"])  # same handle, other weights:
    with pytest.raises(ConfigError, match=r"measured embeddings of backbone=mfcc:basic:40:1.*but the training "
                                          r"features are of backbone=mfcc:rich:40:1"):
        check_cross_validation_features(cv, {"backbone": "mfcc:rich:40:1", "spec_key": "x"})


def _results_with(world, tmp_path, **changes) -> Path:
    res = json.loads((world["root"] / "ev" / "results.json").read_text())
    for key, value in changes.items():
        if key == "fold0":
            res["per_fold"][0]["fold"] = value
        elif value is _DROP:
            res.pop(key)
        else:
            res[key] = value
    folder = tmp_path / "ev"
    folder.mkdir()
    shutil.copy(world["root"] / "ev" / "predictions.csv", folder / "predictions.csv")
    (folder / "results.json").write_text(json.dumps(res))  # NaN and Infinity as Python writes them
    return folder


_DROP = object()


@pytest.mark.parametrize("value, why", [
    (0.99, r"accuracy_mean 0\.99 is not the mean of the per-fold accuracies"),
    ("NaN", r"accuracy_mean should be a number in \[0, 1\], got 'NaN'"),
    (float("nan"), r"accuracy_mean should be a finite number in \[0, 1\], got nan"),
    (5.0, r"accuracy_mean should be a finite number in \[0, 1\], got 5\.0"),
    ("Infinity", r"accuracy_mean should be a number in \[0, 1\], got 'Infinity'"),
    (float("inf"), r"accuracy_mean should be a finite number in \[0, 1\], got inf"),
])
def test_H04_cv_from_checks_every_number_it_copies(world, tmp_path, value, why):
    """accuracy_mean edited to 0.99, "NaN", 5.0, "Infinity": all reached MODEL_CARD.md and metrics.json."""
    from soundlib.evaluation.evaluate import read_cross_validation

    folder = _results_with(world, tmp_path, accuracy_mean=value)
    with pytest.raises(ConfigError, match=rf"--cv-from .*results\.json: not a valid evaluate results\.json: {why}"):
        read_cross_validation(folder, _config(), world["ds"])


def test_H04_cv_from_an_old_results_json_without_fingerprint_is_refused(world, tmp_path):
    from soundlib.evaluation.evaluate import read_cross_validation

    folder = _results_with(world, tmp_path, fingerprint=_DROP)
    with pytest.raises(ConfigError, match=r"records no fingerprint of its data and configuration .*run `soundlib "
                                          r"evaluate` of this configuration again"):
        read_cross_validation(folder, _config(), world["ds"])


@pytest.mark.parametrize("fold", ["x", 1.5, True, None])
def test_H05c_a_fold_that_is_not_an_integer_is_a_soundlib_error(world, tmp_path, fold):
    """per_fold [{"fold": "x"}]: a raw ValueError traceback from results.load."""
    from soundlib import results
    from soundlib.evaluation.evaluate import read_cross_validation

    folder = _results_with(world, tmp_path, fold0=fold)
    with pytest.raises(SoundlibError, match=r"results\.json: not a valid soundlib results\.json: per_fold\[0\]\.fold "
                                            r"should be an integer"):
        results.load(folder)
    with pytest.raises(ConfigError, match=r"per_fold\[0\]\.fold should be an integer"):
        read_cross_validation(folder, _config(), world["ds"])


@pytest.mark.parametrize("body", [b"\x00\xff\xfe garbage", b'path,true\n"unterminated', b"a,b,c\n1,2,3\n",
                                  b"path,fold,group,true,predicted,probability,correct\nx.wav,1,g,a\n"])
def test_H05f_a_broken_predictions_csv_is_a_warning_naming_it(world, tmp_path, body):
    """predictions.csv replaced by a broken CSV: r.predictions was silently empty."""
    from soundlib import results

    folder = _results_with(world, tmp_path)
    (folder / "predictions.csv").write_bytes(body)
    with pytest.warns(SoundlibWarning, match=r"predictions\.csv: .*its predictions are left out"):
        r = results.load(folder)
    assert r.predictions.empty and len(r.folds) == 2
    (folder / "predictions.csv").unlink()  # a missing file is no warning: older runs have none
    assert results.load(folder).predictions.empty


def test_model_cards_never_state_a_cross_validation_that_fails_the_checks(world, tmp_path, capsys):
    """A manifest whose cross_validation says 0.99 beside per-fold 0.5s (its digest updated): not shown."""
    from soundlib.models.card import model_card

    model = copy_model(world, tmp_path)
    rehash(model, cross_validation={"accuracy_mean": 0.99, "accuracy_std": 0.0, "macro_f1": 0.5, "folds": [1, 2],
                                    "per_fold": [{"fold": 1, "accuracy": 0.5}, {"fold": 2, "accuracy": 0.5}]})
    rc, out, _ = info_of(model, capsys)
    assert rc == 1 and "0.990" not in out and "problem: cross_validation: accuracy_mean 0.99 is not the mean" in out
    assert "0.990" not in model_card(model)
