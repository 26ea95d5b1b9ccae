"""The ``speech`` embedder: Google's speech_embedding from the openwakeword wheel, checked and run on LiteRT."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders import WindowSpec, embedder_entry, resolve_embedder
from soundlib.embedders import speech as S
from soundlib.errors import BackboneError

from tests.conftest import tone, write_wav

#: Read-only data beside the checkout (``../shared``); ``$SOUNDLIB_SHARED_DIR`` points elsewhere.
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
SPOKEN = SHARED / "data" / "spoken_words"

_REASON = S.unavailable()
needs_models = pytest.mark.skipif(_REASON is not None, reason=f"speech_embedding cannot run here: {_REASON}")


@pytest.fixture(scope="module")
def model():
    return resolve_embedder("speech").load()


def _signals(n: int = 4, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Fixed-seed test signals at 16 kHz: tones with noise and a chirp-like sweep."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * S.SR)) / S.SR
    rows = [0.3 * np.sin(2 * np.pi * (200 + 300 * i) * t * (1 + 0.5 * t)) + 0.02 * rng.standard_normal(t.size)
            for i in range(n)]
    return np.stack(rows).astype(np.float32)


def test_registered_with_its_licence_caveat_and_resolves_without_loading():
    entry = embedder_entry("speech")
    assert entry.modality == "waveform" and "threads" in entry.accepts
    emb = resolve_embedder("speech")
    assert emb.name == "speech" and emb.license == S.LICENSE == entry.license
    for words in ("CHECK BEFORE COMMERCIAL USE", "Apache-2.0", "CC BY-NC-SA 4.0", "openwakeword 0.5.1",
                  "google/speech_embedding/1"):
        assert words in S.LICENSE
    assert emb.identity.startswith("speech_embedding:") and S.EMBEDDING_SHA256[:16] in emb.identity
    assert S.TFHUB_HANDLE == "https://tfhub.dev/google/speech_embedding/1"


def test_importing_it_imports_neither_tensorflow_nor_the_wheel():
    code = ("import sys, soundlib.embedders.speech\n"
            "bad = [m for m in ('tensorflow', 'openwakeword', 'ai_edge_litert') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_windows_follow_the_variant_at_16_khz_unpadded_and_key_the_cache():
    from soundlib.pictures.variants import VARIANTS

    emb = resolve_embedder("speech")
    w = emb.window(VARIANTS["mel"].replace(duration=1.0))
    assert (w.sr, w.duration, w.hop_seconds, w.pad) == (16000, 1.0, 0.5, "none")
    assert emb.window(VARIANTS["linear"].replace(duration=1.0)).key() == w.key()
    assert emb.window(VARIANTS["mel"].replace(duration=2.0)).key() != w.key()


def test_network_windows_cover_the_whole_clip():
    assert S.window_starts(76) == [0]
    assert S.window_starts(97) == [0, 8, 16, 21]  # one second: three every 8 frames and one ending at the last
    assert S.window_starts(92) == [0, 8, 16]
    with pytest.raises(ValueError):
        S.window_starts(75)


def test_short_mel_is_centred_on_its_own_background():
    mel = np.arange(20 * 32, dtype=np.float32).reshape(20, 32)
    out = S.pad_frames(mel)
    assert out.shape == (76, 32)
    before = (76 - 20) // 2
    assert np.array_equal(out[before:before + 20], mel)
    assert np.array_equal(out[0], mel.min(axis=0)) and np.array_equal(out[-1], mel.min(axis=0))
    assert S.pad_frames(np.zeros((80, 32), np.float32)).shape == (80, 32)


def test_pooling_is_mean_max_std_per_row():
    emb = np.array([[1, 2], [3, 0], [5, 5]], np.float32)
    out = S.pool_windows(emb, np.array([0, 0, 1]), 2)
    assert out.shape == (2, 6)
    assert np.allclose(out[0], [2, 1, 3, 2, 1, 1]) and np.allclose(out[1], [5, 5, 5, 5, 0, 0])


# --- the model files: found through importlib, checked by SHA-256 -------------------------------

@needs_models
def test_model_files_come_from_the_wheel_with_their_pinned_hashes(monkeypatch):
    monkeypatch.delenv(S.MODELS_ENV, raising=False)
    melspec, embedding = S.model_paths()
    assert (melspec.name, embedding.name) == (S.MELSPEC_FILE, S.EMBEDDING_FILE)
    assert "openwakeword" in str(embedding) and melspec.parent == embedding.parent


@needs_models
@pytest.mark.parametrize("name", [S.EMBEDDING_FILE, S.MELSPEC_FILE])
def test_a_tampered_copy_is_refused_naming_the_file(name, tmp_path, monkeypatch):
    monkeypatch.delenv(S.MODELS_ENV, raising=False)
    for src in S.model_paths():
        shutil.copyfile(src, tmp_path / src.name)
    monkeypatch.setenv(S.MODELS_ENV, str(tmp_path))
    assert S.model_paths() == (tmp_path / S.MELSPEC_FILE, tmp_path / S.EMBEDDING_FILE)  # intact copies are fine
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    expected = S.EMBEDDING_SHA256 if name == S.EMBEDDING_FILE else S.MELSPEC_SHA256
    with pytest.raises(BackboneError, match=name) as info:
        S.model_paths()
    assert expected in str(info.value) and "SHA-256" in str(info.value)
    emb = resolve_embedder("speech")
    assert not emb.is_ready() and name in emb.unavailable()
    with pytest.raises(BackboneError, match=name):
        emb.load()


def test_without_the_wheel_the_message_says_how_to_install_it(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.delenv(S.MODELS_ENV, raising=False)
    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(BackboneError, match=r"pip install --no-deps openwakeword==0\.5\.1"):
        S.model_paths()
    monkeypatch.setenv(S.MODELS_ENV, "/nonexistent-folder")
    with pytest.raises(BackboneError, match="no such file"):
        S.model_paths()


# --- running it ---------------------------------------------------------------------------------

@needs_models
def test_min_samples_give_one_network_window(model):
    mel = S.log_mel(model.model._front, np.zeros((1, S.MIN_SAMPLES), np.float32) + 0.01)
    assert mel.shape[1:] == (S.WINDOW_FRAMES, 32)


@needs_models
def test_shapes_and_determinism_on_fixed_seed_signals(model):
    x = _signals(4)
    out = model(x)
    assert out.shape == (4, 288) == (4, model.output_dim) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.array_equal(out, model(x))  # same input, same numbers
    assert np.allclose(model(x[1:2])[0], out[1], atol=1e-5)  # independent of the batch
    assert np.all(out[:, 96:192] >= out[:, :96] - 1e-5) and np.all(out[:, 192:] >= 0)  # [mean, max, std]
    assert not np.allclose(out[0], out[1])
    again = resolve_embedder("speech").load()
    assert np.array_equal(again(x), out)  # and in a fresh interpreter


@needs_models
def test_short_and_long_clips_through_the_seam(model, tmp_path):
    emb = resolve_embedder("speech")
    w = WindowSpec("speech", 16000, 1.0, 0.5, pad="none")
    short = write_wav(tmp_path / "short.wav", tone(700, seconds=0.3, sr=16000), sr=16000)
    chunks = list(emb.inputs(short, w))
    assert [c.shape for c in chunks] == [(1, 4800)]  # the clip as it is: padded inside, to 0.79 s only
    out = model(chunks[0])
    assert out.shape == (1, 288) and np.all(np.isfinite(out))
    tiny = model(np.full((1, 100), 0.1, np.float32))  # shorter than one mel frame
    assert tiny.shape == (1, 288) and np.all(np.isfinite(tiny))
    long = write_wav(tmp_path / "long.wav", tone(300, seconds=3.0, sr=22050), sr=22050)
    windows = np.concatenate(list(emb.inputs(long, w)))
    assert windows.shape == (5, 16000)
    assert model(windows).shape == (5, 288)


@needs_models
def test_same_word_clips_are_closer_than_different_words(model):
    manifest = SPOKEN / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"no spoken words at {SPOKEN} (../shared/data beside the checkout; set SOUNDLIB_SHARED_DIR)")
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    words = ("yes", "no", "one", "five")
    speakers = sorted({r["group"] for r in rows})[:4]
    chosen = [r for r in rows if r["label"] in words and r["group"] in speakers and r["path"].endswith("_01.flac")]
    assert len(chosen) == 16
    emb = resolve_embedder("speech")
    w = WindowSpec("speech", 16000, 1.0, 0.5, pad="none")
    x = np.stack([model(np.concatenate(list(emb.inputs(SPOKEN / r["path"], w))))[0] for r in chosen])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - x @ x.T
    labels = np.array([r["label"] for r in chosen])
    same = (labels[:, None] == labels[None]) & ~np.eye(len(labels), dtype=bool)
    different = labels[:, None] != labels[None]
    assert dist[same].mean() < 0.9 * dist[different].mean()


# --- names, methods and licences ----------------------------------------------------------------

def test_method_speech_and_frozen_on_speech_resolve(tmp_path):
    from soundlib.cli import build_parser, method_from_args
    from soundlib.methods import build_method, resolve_method

    spec = resolve_method("speech")
    assert (spec.name, spec.kind, spec.backbone) == ("speech", "frozen", "speech")
    parser = build_parser()
    a = method_from_args(parser.parse_args(["evaluate", str(tmp_path), "--method", "speech", "--out", str(tmp_path)]))
    assert (a.kind, a.backbone) == ("frozen", "speech")
    args = parser.parse_args(["evaluate", str(tmp_path), "--method", "frozen", "--backbone", "speech",
                              "--out", str(tmp_path)])
    b = method_from_args(args)
    assert b.kind == "frozen" and (b.backbone or args.backbone) == "speech"
    build_method(a)
    build_method(b)


def test_licence_is_flagged_wherever_licences_are_shown(capsys):
    from soundlib.cli import main
    from soundlib.models.card import licence_of

    lic = licence_of(resolve_embedder("speech").identity)
    assert lic is not None and "CC BY-NC-SA 4.0" in lic.licence and "Apache-2.0" in lic.licence
    assert "CHECK BEFORE COMMERCIAL USE" in lic.note
    assert main(["embedders", "--licenses"]) == 0
    out = capsys.readouterr().out
    line = next(i for i, s in enumerate(out.splitlines()) if s.startswith("speech "))
    assert "CHECK BEFORE COMMERCIAL USE" in out.splitlines()[line + 1]


@needs_models
def test_first_use_prints_the_licence(capsys, monkeypatch):
    monkeypatch.setattr(S, "_NOTED", set())
    resolve_embedder("speech").load()
    assert "CHECK BEFORE COMMERCIAL USE" in capsys.readouterr().out


@needs_models
def test_a_model_on_speech_exports_with_its_licence_and_predicts(synth_corpus, tmp_path, cache):
    from soundlib.cli import main
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    out = tmp_path / "run"
    assert main(["train", str(synth_corpus), "--method", "speech", "--test-fold", "1", "--out", str(out),
                 "--quiet"]) == 0
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "speech_embedding:" in card and "CHECK BEFORE COMMERCIAL USE" in card and "CC BY-NC-SA 4.0" in card
    model = load_model(out)
    assert model.modality == "waveform" and model.window.sr == 16000
    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    rows, failures = predict(model, [wav], top_k=1)
    assert not failures and len(rows) == 1
