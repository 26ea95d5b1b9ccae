"""EfficientAT mn04_as: zip checkpoint reader, weights download and checks, log-mel, tf_keras and LiteRT parity.

The parity fixture ``tests/data/mn04_parity.npz`` holds four real UrbanSound8K clips
(4 s at 32 kHz, int16) with the log-mel spectrograms, AudioSet logits and embeddings
of a PyTorch reference of EfficientAT's mn04_as (made by
``tools/make_mn04_parity_fixture.py``); torch is not needed here. The weights are read
from ``../shared/models/efficientat`` beside the checkout (``$SOUNDLIB_SHARED_DIR``
elsewhere); without them the tests that need them are skipped.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders.nets import efficientat_mn as M
from soundlib.embedders.nets import efficientat_weights as MW
from soundlib.errors import BackboneError, FeatureError, SoundlibWarning

FIXTURE = Path(__file__).parents[1] / "data" / "mn04_parity.npz"
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
WEIGHTS = SHARED / "models" / "efficientat" / MW.CHECKPOINT_NAME

needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"the mn04 weights are not at {WEIGHTS} "
                                   "(../shared/models beside the checkout; set SOUNDLIB_SHARED_DIR elsewhere)")


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


needs_litert = pytest.mark.skipif(not _litert_available(), reason="ai-edge-litert is not installed "
                                  "(pip install -e '.[litert]'; the dev extra installs it)")

N_TENSORS = 312
N_ELEMENTS = 993_485  # every tensor of the state dict (the README's "parameters"), BN statistics included
N_LEARNABLE = 983_599  # conv/dense weights and biases, BN gamma/beta
N_BN_LAYERS = 46


@pytest.fixture(scope="module")
def parity():
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def waveforms(parity):
    return parity["waveforms_int16"].astype(np.float32) / np.float32(32768.0)


@pytest.fixture(scope="module")
def state():
    if not WEIGHTS.is_file():
        pytest.skip(f"the mn04 weights are not at {WEIGHTS}")
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == MW.CHECKPOINT_SHA256, f"{WEIGHTS} is not mn04's"
    return M.read_torch_checkpoint(WEIGHTS, max_bytes=M.MAX_CHECKPOINT_BYTES)


@pytest.fixture(scope="module")
def keras_model(state):
    return M.build_keras_model(state)


@pytest.fixture(scope="module")
def lite_cache(tmp_path_factory):
    """A fresh soundlib cache holding the LiteRT copy, converted once for this module."""
    if not WEIGHTS.is_file():
        pytest.skip(f"the mn04 weights are not at {WEIGHTS}")
    cache = tmp_path_factory.mktemp("mn04-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOUNDLIB_CACHE_DIR", str(cache))
        path = MW.litert_model_path(WEIGHTS)
        yield cache, path


def top3(logits: np.ndarray) -> np.ndarray:
    return np.argsort(-logits, axis=1)[:, :3]


# --- module and checkpoint -------------------------------------------------


def test_importing_module_does_not_import_tensorflow():
    code = ("import sys, soundlib.embedders.nets.efficientat_mn; "
            "sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules or 'torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@needs_weights
def test_zip_checkpoint_tensors_and_parameter_count(state):
    assert len(state) == N_TENSORS
    assert sum(a.size for a in state.values()) == N_ELEMENTS
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(a.size for k, a in state.items() if k.rsplit(".", 1)[-1] not in buffers) == N_LEARNABLE
    assert sum(k.endswith(".num_batches_tracked") for k in state) == N_BN_LAYERS
    assert state["features.0.0.weight"].shape == (8, 1, 3, 3)
    assert state["features.14.block.1.0.weight"].shape == (384, 1, 5, 5)
    assert state["classifier.5.weight"].shape == (M.NUM_CLASSES, 512)
    assert {a.dtype for k, a in state.items() if not k.endswith("num_batches_tracked")} == {np.dtype("float32")}
    assert all(np.isfinite(a).all() for a in state.values())


def _zip_checkpoint(path: Path, pickled: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return path


def test_zip_reader_refuses_foreign_global(tmp_path):
    marker = tmp_path / "pwned"
    bad = _zip_checkpoint(tmp_path / "malicious.pt", f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    with pytest.raises(BackboneError, match=r"os\.system") as info:
        M.read_torch_checkpoint(bad)
    assert str(bad) in str(info.value)
    assert not marker.exists()


def _unicode(text: str) -> bytes:
    return b"X" + len(text).to_bytes(4, "little") + text.encode()


def _one_tensor_pickle(name: str, numel: int, size: tuple[int, int]) -> bytes:
    """The data.pkl torch writes for ``{name: float32 tensor of shape size}`` in storage "0"."""
    persistent_id = (b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode("0") + _unicode("cpu")
                     + b"K" + bytes([numel]) + b"tQ")
    args = (b"(" + persistent_id + b"K\x00" + b"K" + bytes([size[0]]) + b"K" + bytes([size[1]]) + b"\x86"
            + b"K" + bytes([size[1]]) + b"K\x01\x86" + b"\x89" + b"ccollections\nOrderedDict\n)R" + b"t")
    return (b"\x80\x02}" + _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R" + b"s.")


def test_zip_reader_reads_a_small_state_dict_and_checks_storage_sizes(tmp_path):
    pickled = _one_tensor_pickle("w", 6, (2, 3))
    values = np.arange(6, dtype="<f4")
    got = M.read_torch_checkpoint(_zip_checkpoint(tmp_path / "ok.pt", pickled, {"0": values.tobytes()}))
    assert list(got) == ["w"]
    np.testing.assert_array_equal(got["w"], values.reshape(2, 3))

    short = _zip_checkpoint(tmp_path / "short.pt", pickled, {"0": values.tobytes()[:-4]})
    with pytest.raises(BackboneError, match=r"short\.pt is corrupt: storage 0 holds 20 bytes, expected 24"):
        M.read_torch_checkpoint(short)
    missing = _zip_checkpoint(tmp_path / "missing.pt", pickled)
    with pytest.raises(BackboneError, match=r"missing\.pt is truncated: storage 0"):
        M.read_torch_checkpoint(missing)
    with zipfile.ZipFile(tmp_path / "nopickle.pt", "w") as z:
        z.writestr("archive/version", "3\n")
    with pytest.raises(BackboneError, match=r"nopickle\.pt is a zip file but not a PyTorch checkpoint"):
        M.read_torch_checkpoint(tmp_path / "nopickle.pt")


@needs_weights
def test_zip_reader_rejects_truncated_file(tmp_path):
    data = WEIGHTS.read_bytes()
    for keep in (0.3, 0.999):
        cut = tmp_path / f"cut{keep}.pt"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(BackboneError) as info:
            M.read_torch_checkpoint(cut)
        assert str(cut) in str(info.value)


# --- preprocessing -----------------------------------------------------------


def test_fixture_records_provenance(parity):
    n = len(parity["clip_paths"])
    assert n == 4 and len(set(parity["clip_labels"].tolist())) == 4  # four classes
    assert parity["waveforms_int16"].shape == (n, 4 * M.SR) and int(parity["sample_rate"]) == M.SR
    assert parity["log_mel"].shape == (n, M.N_MELS, 400)
    assert parity["logits"].shape == (n, M.NUM_CLASSES) and parity["embedding"].shape == (n, M.EMBEDDING_DIM)
    assert str(parity["checkpoint_sha256"]) == MW.CHECKPOINT_SHA256
    assert any(v.startswith("torch==") for v in parity["versions"].tolist())


def test_log_mel_matches_torch(parity, waveforms):
    mel = M.log_mel(waveforms)
    assert mel.shape == parity["log_mel"].shape and mel.dtype == np.float32
    assert np.abs(mel - parity["log_mel"]).max() <= 2e-4


def test_log_mel_shapes_and_refusals():
    rng = np.random.default_rng(0)
    for samples, frames in ((M.MIN_SAMPLES, 2), (32000, 100), (32001, 101), (128000, 400)):
        assert M.log_mel(rng.standard_normal((2, samples)).astype(np.float32)).shape == (2, 128, frames)
    one = rng.standard_normal(5000).astype(np.float32)
    np.testing.assert_array_equal(M.log_mel(one), M.log_mel(one[None]))
    with pytest.raises(FeatureError, match=f"at least {M.MIN_SAMPLES} samples"):
        M.log_mel(np.zeros((1, M.MIN_SAMPLES - 1), np.float32))
    with pytest.raises(FeatureError, match="NaN or infinite"):
        M.log_mel(np.full((1, 4000), np.nan, np.float32))
    with pytest.raises(FeatureError, match=r"shape \(n, samples\)"):
        M.log_mel(np.zeros((1, 2, 4000), np.float32))


def test_mel_filterbank_is_kaldi_style():
    fb = M.mel_filterbank()
    assert fb.shape == (128, 513) and (fb >= 0).all() and fb.max() <= 1.0
    assert not fb[:, -1].any()  # the Nyquist bin is unused
    bin_hz = np.arange(513) * M.SR / M.N_FFT
    assert not fb[:, bin_hz > M.FMAX].any()  # nothing above 15 kHz
    assert (fb.argmax(axis=1)[1:] >= fb.argmax(axis=1)[:-1]).all()  # centres rise


# --- the tf_keras network ----------------------------------------------------


@needs_weights
def test_keras_model_shapes_and_parameter_count(keras_model):
    assert keras_model.input_shape == (None, M.N_MELS, None, 1)
    assert keras_model.output_shape == {"embedding": (None, 896), "logits": (None, 527)}
    assert M.EMBEDDING_DIM == 896
    assert sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights) == N_LEARNABLE
    assert keras_model.count_params() + N_BN_LAYERS == N_ELEMENTS  # + the unused num_batches_tracked


@needs_weights
def test_keras_model_matches_torch(keras_model, parity):
    out = keras_model(parity["log_mel"][..., None], training=False)
    embedding, logits = out["embedding"].numpy(), out["logits"].numpy()
    assert np.abs(embedding - parity["embedding"]).max() <= 1e-3
    assert np.abs(logits - parity["logits"]).max() <= 1e-3
    np.testing.assert_array_equal(top3(logits), top3(parity["logits"]))


@needs_weights
def test_weight_loading_checks_every_tensor(state):
    model, plan = M._build_network()
    bad = dict(state)
    del bad["features.4.block.2.conc_se_layers.0.fc1.bias"]
    with pytest.raises(BackboneError, match=r"missing tensor features\.4\.block\.2\.conc_se_layers\.0\.fc1\.bias"):
        M.load_checkpoint_weights(model, plan, bad)

    bad = dict(state, **{"features.99.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(BackboneError, match=r"not used: features\.99\.extra\.weight"):
        M.load_checkpoint_weights(model, plan, bad)

    bad = dict(state, **{"features.16.1.running_var": np.ones(383, np.float32)})
    with pytest.raises(BackboneError, match=r"features\.16\.1\.running_var has shape \(383,\)"):
        M.load_checkpoint_weights(model, plan, bad)


def test_audioset_labels(parity):
    labels = MW.audioset_labels()
    assert len(labels) == len(set(labels)) == M.NUM_CLASSES
    assert labels[0] == "Speech" and labels[-1] == "Field recording"
    # the reference model's own top-3 name the clip's sound: the label order is the logits' order
    expected = {"dog_bark": {"Dog", "Bark"}, "siren": {"Siren"}, "jackhammer": {"Jackhammer"}}
    for label, row in zip(parity["clip_labels"].tolist(), parity["logits"]):
        if label in expected:
            assert expected[label] <= {labels[i] for i in np.argsort(-row)[:3]}, label


# --- Mn04Model, both runtimes ------------------------------------------------


@needs_weights
def test_model_tf_runtime_matches_torch(parity, waveforms):
    model = MW.Mn04Model(WEIGHTS, runtime="tf")
    assert (model.runtime, model.output_dim) == ("tf", 896)
    embedding = model(waveforms, batch_size=3)  # a full batch and a partial one
    assert embedding.shape == (4, 896) and embedding.dtype == np.float32
    assert np.abs(embedding - parity["embedding"]).max() <= 1e-3
    np.testing.assert_array_equal(top3(model.logits(waveforms)), top3(parity["logits"]))


@needs_weights
@needs_litert
@pytest.mark.slow
def test_model_litert_runtime_matches_torch_and_tf(lite_cache, parity, waveforms, keras_model):
    model = MW.Mn04Model(WEIGHTS, threads=2, runtime="litert")
    assert (model.runtime, model.output_dim) == ("litert", 896)
    embedding = model(waveforms, batch_size=3)
    assert embedding.shape == (4, 896) and embedding.dtype == np.float32
    assert np.abs(embedding - parity["embedding"]).max() <= 1e-3
    np.testing.assert_array_equal(top3(model.logits(waveforms)), top3(parity["logits"]))

    # other lengths and batch sizes: the input is resized, results agree with tf_keras
    for clips in (waveforms[:3, :32000], waveforms[:1, :50000], waveforms[:, :128000]):
        expected = keras_model(M.log_mel(clips)[..., None], training=False)["embedding"].numpy()
        assert np.abs(model(clips) - expected).max() <= 1e-4


@needs_weights
@needs_litert
@pytest.mark.slow
def test_litert_copy_is_cached_verified_and_rebuilt(lite_cache, monkeypatch):
    cache, path = lite_cache
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(cache))
    assert path.parent == cache / "backbones" and path.suffix == ".tflite"
    sidecar = path.with_name(path.name + ".sha256")  # soundlib.embedders.derived's record
    assert hashlib.sha256(path.read_bytes()).hexdigest() in sidecar.read_text()
    mtime = path.stat().st_mtime_ns
    assert MW.litert_model_path(WEIGHTS) == path and path.stat().st_mtime_ns == mtime  # reused as it is

    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.warns(SoundlibWarning, match="mn04 LiteRT model .*rebuilding it"):
        assert MW.litert_model_path(WEIGHTS) == path
    assert hashlib.sha256(path.read_bytes()).hexdigest() in sidecar.read_text()
    assert len(path.read_bytes()) > len(good) // 2
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, sidecar.name, path.name + ".lock"])


def test_model_refuses_bad_arguments(tmp_path):
    with pytest.raises(BackboneError, match="runtime 'gpu'"):
        MW.Mn04Model(tmp_path / "x.pt", runtime="gpu")


# --- locating, checking and downloading the weights -------------------------


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(cache))
    monkeypatch.delenv(MW.CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv(MW.URL_ENV, raising=False)
    # the copy shipped in the package would be found first: these tests are about the cache and the download
    monkeypatch.setattr(MW, "packaged_checkpoint", lambda: tmp_path / "not-packaged" / MW.CHECKPOINT_NAME)
    return cache


class _Server:
    """An HTTP server on 127.0.0.1 serving ``payload`` (or ``status``) at every path; counts requests."""

    def __init__(self, payload: bytes = b"", status: int = 200):
        self.payload, self.status, self.requests = payload, status, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                if server.status != 200:
                    self.send_error(server.status)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.payload)))
                self.end_headers()
                self.wfile.write(server.payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{MW.CHECKPOINT_NAME}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@needs_weights
def test_download_from_local_server(fresh_cache, monkeypatch):
    with _Server(WEIGHTS.read_bytes()) as server:
        monkeypatch.setenv(MW.URL_ENV, server.url)
        path = MW.checkpoint_path()
        assert path == fresh_cache / "weights" / MW.CHECKPOINT_NAME
        assert path.read_bytes() == WEIGHTS.read_bytes()
        assert MW.checkpoint_path() == path and MW.checkpoint_path(download=False) == path
        assert server.requests == 1  # verified copy reused, not fetched again
    assert [p.name for p in path.parent.iterdir()] == [MW.CHECKPOINT_NAME]  # no temporary file left


def test_download_refuses_corrupt_bytes(fresh_cache, monkeypatch):
    other = (b"not the weights" * (MW.CHECKPOINT_SIZE // 15 + 1))[:MW.CHECKPOINT_SIZE]  # the size, other bytes
    with _Server(other) as server:
        monkeypatch.setenv(MW.URL_ENV, server.url)
        with pytest.raises(BackboneError) as info:
            MW.checkpoint_path()
    message = str(info.value)
    assert server.url in message and MW.CHECKPOINT_SHA256 in message
    assert hashlib.sha256(other).hexdigest() in message

    with _Server(b"not the weights" * 1000) as server:  # another length: refused before anything is written
        monkeypatch.setenv(MW.URL_ENV, server.url)
        with pytest.raises(BackboneError, match=f"announces 15,000 bytes, expected {MW.CHECKPOINT_SIZE:,}"):
            MW.checkpoint_path()
    weights = fresh_cache / "weights"
    assert not weights.exists() or not any(weights.iterdir())  # nothing left in the cache


def test_download_failures_name_the_url_and_the_way_out(fresh_cache, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/{MW.CHECKPOINT_NAME}"
    monkeypatch.setenv(MW.URL_ENV, dead)
    with pytest.raises(BackboneError, match=MW.CHECKPOINT_ENV) as info:
        MW.checkpoint_path()
    assert dead in str(info.value)

    with _Server(status=404) as server:
        monkeypatch.setenv(MW.URL_ENV, server.url)
        with pytest.raises(BackboneError, match="HTTP 404") as info:
            MW.checkpoint_path()
        assert server.url in str(info.value) and MW.CHECKPOINT_ENV in str(info.value)

    with pytest.raises(BackboneError, match="downloading was not allowed"):
        MW.checkpoint_path(download=False)
    weights = fresh_cache / "weights"
    assert not weights.exists() or not any(weights.iterdir())


@needs_weights
def test_corrupt_cached_copy_is_downloaded_again(fresh_cache, monkeypatch):
    cached = fresh_cache / "weights" / MW.CHECKPOINT_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(WEIGHTS.read_bytes()[:1000])
    with pytest.raises(BackboneError, match="downloading was not allowed"), \
            pytest.warns(SoundlibWarning, match="ignoring it"):
        MW.checkpoint_path(download=False)
    with _Server(WEIGHTS.read_bytes()) as server:
        monkeypatch.setenv(MW.URL_ENV, server.url)
        with pytest.warns(SoundlibWarning, match="downloading it again"):
            assert MW.checkpoint_path() == cached
    assert cached.read_bytes() == WEIGHTS.read_bytes()


@needs_weights
def test_checkpoint_env_is_checked(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv(MW.CHECKPOINT_ENV, str(WEIGHTS))
    assert MW.checkpoint_path() == WEIGHTS

    damaged = tmp_path / "damaged.pt"
    data = bytearray(WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv(MW.CHECKPOINT_ENV, str(damaged))
    with pytest.raises(BackboneError) as info:
        MW.checkpoint_path()
    message = str(info.value)
    assert str(damaged) in message and MW.CHECKPOINT_SHA256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message

    monkeypatch.setenv(MW.CHECKPOINT_ENV, str(tmp_path / "absent.pt"))
    with pytest.raises(BackboneError, match="absent.pt: no such file"):
        MW.checkpoint_path()
    assert not (fresh_cache / "weights").exists()  # never downloads when the variable is set
