"""The waveform LiteRT model (issue 23, item 1): audio in, probabilities out, the front-end inside, with the
metadata MediaPipe's AudioClassifier reads; written beside every exported model and by `soundlib export`.

Each model is checked on real UrbanSound8K clips (tests/data/us8k_real): the .tflite's probabilities of a
window against `soundlib predict`'s (tolerances measured: mn04 ~1e-6, MFCC ~1e-7, YAMNet ~1e-7, pictures 0;
asserted with margin for other CPUs), and MediaPipe's top class against soundlib's.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from soundlib.errors import ModelError
from ..conftest import write_wav

REAL = Path(__file__).resolve().parents[1] / "data" / "us8k_real"
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"
YAMNET_TFLITE = SHARED / "models" / "yamnet" / "yamnet_classification_int8.tflite"
ROWS = list(csv.DictReader(open(REAL / "manifest.csv", encoding="utf-8")))
LABELS = sorted({r["label"] for r in ROWS})


def _clips(sr: int, duration: float | None = None) -> list[np.ndarray]:
    from soundlib.audio.clips import read_segment

    return [read_segment(REAL / r["path"], sr=sr, duration=duration) for r in ROWS]


def _read(path: Path, sr: int) -> np.ndarray:
    from soundlib.audio.clips import read_segment

    return read_segment(path, sr=sr)


def _head(x: np.ndarray):
    """A logistic head fitted on the 12 real clips' features (one per class and fold)."""
    from sklearn.linear_model import LogisticRegression

    from soundlib.methods.heads import LogisticHead

    y = np.array([LABELS.index(r["label"]) for r in ROWS])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    return LogisticHead(mean, scale, lr.coef_, lr.intercept_)


def _embedder_model(out: Path, name: str, spec) -> Path:
    from soundlib.embedders import resolve_embedder
    from soundlib.models.export import export_embedder_model

    embedder = resolve_embedder(name)
    window = embedder.window(spec)
    loaded, prepare = embedder.load(), getattr(embedder, "prepare_window", None)
    x = np.concatenate([loaded(prepare(c, window)[None] if prepare else c[None], batch_size=1)
                        for c in _clips(window.sr)])
    return export_embedder_model(out, embedder=embedder, options={}, head=_head(x), spec=spec, labels=LABELS)


def _run(tflite: Path, window: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(tflite))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.zeros(inp["shape"], np.float32)
    x[0, :len(window)] = window[:x.shape[1]]
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0]


def _agrees_with_predict(model_dir: Path, tol: float, tmp: Path) -> None:
    """The model's .tflite gives soundlib's probabilities for every real clip (one window each), and for one
    cut to 1.5 s (which MediaPipe pads with silence), and says so in its manifest."""
    from soundlib.models.format import WAVEFORM_TFLITE_FILE, file_status
    from soundlib.models.label import window_probabilities
    from soundlib.models.load import load_model
    from soundlib.models.tflite_metadata import read_metadata

    model = load_model(model_dir)
    entry = model.info["waveform_tflite"]
    tflite = model.path / WAVEFORM_TFLITE_FILE
    assert entry["file"] == WAVEFORM_TFLITE_FILE and file_status(model.path, model.info)[WAVEFORM_TFLITE_FILE] == "ok"
    meta = read_metadata(tflite.read_bytes())
    assert meta["labels"] == LABELS and meta["channels"] == 1 and meta["sample_rate"] == entry["sample_rate"]
    sr = entry["sample_rate"]
    short = tmp / "short.wav"
    write_wav(short, _clips(sr)[0][:int(1.5 * sr)], sr=sr, subtype="FLOAT")
    worst = 0.0
    for path, clip in [*zip([REAL / r["path"] for r in ROWS], _clips(sr)), (short, _read(short, sr))]:
        proba, _, _ = window_probabilities(model, path)
        assert len(proba) == 1
        got = _run(tflite, clip)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
        worst = max(worst, float(np.max(np.abs(got - proba[0]))))
    assert worst <= tol, worst


def _mediapipe_top_classes(tflite: Path, sr: int) -> list[str]:
    audio = pytest.importorskip("mediapipe.tasks.python.audio", reason="mediapipe is not installed (extra 'mediapipe')")
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    options = audio.AudioClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=str(tflite)),
                                           max_results=1)
    with audio.AudioClassifier.create_from_options(options) as classifier:
        tops = []
        for clip in _clips(sr):
            results = classifier.classify(audio_data.AudioData.create_from_array(clip.astype(np.float64), sr))
            assert len(results) == 1  # one buffer: the clips are at most the window's length
            tops.append(results[0].classifications[0].categories[0].category_name)
    return tops


def _predict_top_classes(model_dir: Path) -> list[str]:
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    rows, failures = predict(load_model(model_dir), [REAL / r["path"] for r in ROWS], top_k=1)
    assert not failures
    return [r["label"] for r in rows]


# --- fast: metadata, what cannot be exported, the command's checks ---------------------------------------

def test_reads_the_metadata_of_googles_yamnet_classifier():
    if not YAMNET_TFLITE.is_file():
        pytest.skip(f"{YAMNET_TFLITE} is not here")
    from soundlib.models.tflite_metadata import read_metadata

    meta = read_metadata(YAMNET_TFLITE.read_bytes())
    assert (meta["sample_rate"], meta["channels"], meta["min_parser_version"]) == (16000, 1, "1.3.0")
    assert meta["labels_file"] == "yamnet_label_list.txt" and len(meta["labels"]) == 521 and meta["labels"][0] == "Speech"


def test_a_model_without_metadata_is_refused():
    from soundlib.models.tflite_metadata import read_metadata

    with pytest.raises(ModelError, match="not a TFLite model"):
        read_metadata(b"\0" * 64)


@pytest.mark.parametrize("kwargs, why", [
    ({"embedder": "birdnet"}, "BirdNET"),
    ({"embedder": "efficientnet"}, "have no waveform model"),
    ({"embedder": "mfcc", "options": {"features": "rich"}}, "'basic'"),
])
def test_models_that_cannot_be_expressed_say_why(kwargs, why):
    from soundlib.models.tflite_export import unsupported

    assert why in unsupported(**kwargs)
    assert unsupported(embedder="mn04") is None and unsupported(embedder="yamnet") is None


def test_picture_variants_that_cannot_be_expressed_say_why():
    from soundlib.pictures.merge import MergeSpec
    from soundlib.pictures.variants import get_variant

    from soundlib.models.tflite_export import unsupported

    assert "CRC-32" in unsupported(spec=get_variant("merged").replace(merge=MergeSpec(jitter=0.2)))
    assert "pad='center'" in unsupported(spec=get_variant("mel").replace(pad="center"))
    assert "pad='repeat'" in unsupported(spec=get_variant("waveform").replace(pad="repeat"))
    for variant in ("mel", "mel_gray", "linear", "waveform", "merged", "stacked"):
        assert unsupported(spec=get_variant(variant)) is None


def test_the_export_command_checks_its_target_before_loading_anything(tmp_path):
    from soundlib.cli import main

    assert main(["export", str(tmp_path / "nowhere"), "--tflite", str(tmp_path / "m.bin")]) == 2
    (tmp_path / "m.tflite").write_bytes(b"x")
    assert main(["export", str(tmp_path / "nowhere"), "--tflite", str(tmp_path / "m.tflite")]) == 2
    assert main(["export", str(tmp_path / "nowhere"), "--tflite", str(tmp_path / "n.tflite")]) == 2
    assert (tmp_path / "m.tflite").read_bytes() == b"x" and not (tmp_path / "n.tflite").exists()


@pytest.mark.parametrize("variant", ["mel", "linear", "waveform", "stacked", "merged"])
def test_the_picture_is_drawn_in_tf_ops_as_soundlib_draws_it(variant):
    from soundlib.models.tflite_graphs import spectrogram_picture
    from soundlib.pictures.features import render
    from soundlib.pictures.variants import get_variant
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    spec = get_variant(variant).replace(duration=1.0)
    draw = spectrogram_picture(tf, spec)
    clips = _clips(spec.sr, 1.0)[:2]
    for clip in [*clips, np.concatenate([clips[0][:8000], np.zeros(spec.n_samples - 8000, np.float32)])]:
        want = render(clip, spec).astype(np.float32) / 255.0
        got = draw(tf.constant(clip)).numpy()[0]
        assert got.shape == want.shape
        # a float32 rounding may move a pixel across one colormap step, no further
        assert np.mean(np.abs(got - want) > 1e-6) < 1e-3 and np.max(np.abs(got - want)) < 0.05


# --- exported models on real clips ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mfcc_model(tmp_path_factory, cache):
    from soundlib.pictures.variants import get_variant

    return _embedder_model(tmp_path_factory.mktemp("mfcc") / "model", "mfcc", get_variant("mel").replace(duration=4.0))


def test_an_mfcc_model_has_a_waveform_model_that_labels_as_predict_does(mfcc_model, tmp_path):
    _agrees_with_predict(mfcc_model, 1e-4, tmp_path)


def test_mediapipe_runs_the_mfcc_waveform_model_as_it_is(mfcc_model):
    assert _mediapipe_top_classes(mfcc_model / "model_waveform.tflite", 22050) == _predict_top_classes(mfcc_model)


def test_soundlib_export_writes_the_same_model_and_info_checks_it(mfcc_model, tmp_path):
    import shutil

    from soundlib.cli import main
    from soundlib.models.tflite_metadata import read_metadata

    out = tmp_path / "mfcc.tflite"
    assert main(["export", str(mfcc_model), "--tflite", str(out)]) == 0
    assert read_metadata(out.read_bytes())["labels"] == LABELS
    clip = _clips(22050)[0]
    np.testing.assert_allclose(_run(out, clip), _run(mfcc_model / "model_waveform.tflite", clip), atol=1e-6)
    copy = tmp_path / "copy"
    shutil.copytree(mfcc_model, copy)
    with open(copy / "model_waveform.tflite", "ab") as fh:
        fh.write(b"tampered")
    assert main(["info", str(copy)]) == 1


def test_a_failed_conversion_at_export_warns_and_exports_the_model(tmp_path, monkeypatch, cache):
    from soundlib.models import tflite_export
    from soundlib.models.load import load_model
    from soundlib.pictures.variants import get_variant

    def broken(fn, n):
        raise RuntimeError("an op LiteRT lacks")

    monkeypatch.setattr(tflite_export, "_convert", broken)
    with pytest.warns(UserWarning, match="no waveform LiteRT model .*an op LiteRT lacks"):
        out = _embedder_model(tmp_path / "model", "mfcc", get_variant("mel").replace(duration=4.0))
    model = load_model(out)
    assert model.info["waveform_tflite"] is None and not (out / "model_waveform.tflite").exists()


@pytest.mark.parametrize("variant", ["mel", "stacked"])
def test_a_picture_model_has_a_waveform_model_with_its_picture_inside(variant, tmp_path, cache):
    from soundlib.models.export import export_keras_model
    from soundlib.pictures.variants import get_variant
    from soundlib.runtime import import_tf

    tf, k = import_tf()
    tf.random.set_seed(0)
    spec = get_variant(variant).replace(height=32, width=32, duration=4.0)
    net = k.Sequential([k.Input((32, 32, 3)), k.layers.Conv2D(4, 3, activation="relu"),
                        k.layers.GlobalAveragePooling2D(), k.layers.Dense(len(LABELS), activation="softmax")])
    out = export_keras_model(tmp_path / "model", net, spec=spec, labels=LABELS)
    assert json.loads((out / "soundlib_model.json").read_text())["waveform_tflite"]["front_end"] == "picture"
    _agrees_with_predict(out, 1e-4, tmp_path)
    if variant == "mel":  # `soundlib export` builds it from the SavedModel on disk
        from soundlib.models.tflite_export import export_tflite

        entry = export_tflite(out, tmp_path / "picture.tflite")
        assert entry["front_end"] == "picture" and entry["samples"] == 88200
        clip = _clips(22050)[1]
        np.testing.assert_allclose(_run(tmp_path / "picture.tflite", clip), _run(out / "model_waveform.tflite", clip),
                                   atol=1e-6)


def test_a_model_on_jittered_merged_pictures_is_exported_without_one_and_the_command_says_why(tmp_path, cache):
    from soundlib.cli import main
    from soundlib.models.export import export_keras_model
    from soundlib.models.tflite_export import export_tflite
    from soundlib.pictures.merge import MergeSpec
    from soundlib.pictures.variants import get_variant
    from soundlib.runtime import import_tf

    _, k = import_tf()
    spec = get_variant("merged").replace(height=32, width=32, duration=1.0, merge=MergeSpec(jitter=0.3))
    net = k.Sequential([k.Input((32, 32, 3)), k.layers.GlobalAveragePooling2D(),
                        k.layers.Dense(len(LABELS), activation="softmax")])
    out = export_keras_model(tmp_path / "model", net, spec=spec, labels=LABELS)
    assert json.loads((out / "soundlib_model.json").read_text())["waveform_tflite"] is None
    with pytest.raises(ModelError, match="jitter 0.3: each clip's strengths are drawn"):
        export_tflite(out, tmp_path / "x.tflite")
    assert main(["export", str(out), "--tflite", str(tmp_path / "x.tflite")]) == 2
    assert not (tmp_path / "x.tflite").exists()


@pytest.fixture(scope="module")
def mn04_model(tmp_path_factory, cache):
    if not MN04.is_file():
        pytest.skip(f"the mn04 weights are not here ({MN04})")
    from soundlib.pictures.variants import get_variant

    old = os.environ.get("SOUNDLIB_MN04_CHECKPOINT")
    os.environ["SOUNDLIB_MN04_CHECKPOINT"] = str(MN04)
    try:
        yield _embedder_model(tmp_path_factory.mktemp("mn04") / "model", "mn04", get_variant("mel").replace(duration=4.0))
    finally:
        if old is None:
            os.environ.pop("SOUNDLIB_MN04_CHECKPOINT", None)
        else:
            os.environ["SOUNDLIB_MN04_CHECKPOINT"] = old


@pytest.mark.slow
def test_an_mn04_model_has_a_waveform_model_that_labels_as_predict_does(mn04_model, tmp_path):
    # the short clip is trimmed of MediaPipe's padding inside the model, as soundlib embeds it unpadded
    _agrees_with_predict(mn04_model, 1e-4, tmp_path)


@pytest.mark.slow
def test_mediapipe_runs_the_mn04_waveform_model_as_it_is(mn04_model):
    assert _mediapipe_top_classes(mn04_model / "model_waveform.tflite", 32000) == _predict_top_classes(mn04_model)


@pytest.mark.slow
def test_a_yamnet_model_has_a_waveform_model_that_labels_as_predict_does(tmp_path, cache):
    from soundlib.embedders import resolve_embedder
    from soundlib.pictures.variants import get_variant

    if not resolve_embedder("yamnet").is_ready():
        pytest.skip("YAMNet's weights are not installed (extra 'yamnet')")
    out = _embedder_model(tmp_path / "model", "yamnet", get_variant("mel").replace(duration=4.0))
    _agrees_with_predict(out, 1e-4, tmp_path)
    assert _mediapipe_top_classes(out / "model_waveform.tflite", 16000) == _predict_top_classes(out)


def test_the_readme_snippet_runs_a_waveform_model_in_mediapipe(mfcc_model, capsys):
    import re

    pytest.importorskip("mediapipe.tasks.python.audio", reason="mediapipe is not installed (extra 'mediapipe')")
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text[text.index("### One LiteRT file for MediaPipe"):], re.S).group(1)
    assert len(code.strip().splitlines()) <= 6
    code = code.replace('"mn04.tflite"', repr(str(mfcc_model / "model_waveform.tflite"))).replace("32000", "22050")
    exec(compile(code, "README.md", "exec"), {"samples": _clips(22050)[0].astype(np.float64)})
    printed = capsys.readouterr().out.split("\n")[0]
    assert printed.startswith("0 [(") and printed.count("'") >= 6 and _predict_top_classes(mfcc_model)[0] in printed
