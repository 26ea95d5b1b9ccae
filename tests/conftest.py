"""Shared fixtures: tiny fixed-seed audio files written by the tests themselves."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from soundlib.audio import datasets as D

# Tests never touch the user's cache: backbones exports and embeddings go to a fresh folder.
os.environ["SOUNDLIB_CACHE_DIR"] = tempfile.mkdtemp(prefix="soundlib-test-cache-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SR = 22050
DATA = Path(__file__).parent / "data"


def tone(freq: float = 440.0, *, seconds: float = 1.0, sr: int = SR, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "tone.wav", tone())


@pytest.fixture
def us8k_csv() -> Path:
    return DATA / "UrbanSound8K.csv"


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """A tiny synthetic corpus (UrbanSound8K layout), made once per session."""
    from soundlib.audio.synth import SynthConfig, generate_corpus

    out = tmp_path_factory.mktemp("synth")
    return generate_corpus(out, SynthConfig(clips_per_class=8, duration=1.0, slices_per_recording=2, n_folds=4),
                           progress=False)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A stand-in feature-vector SavedModel (32x32 -> 16), built by the tests."""
    from soundlib.embedders.backbones import save_tiny_backbone

    return save_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny")


def small_spec(name: str = "mel"):
    """A variant at 32x32 so the stand-in backbone sees its own input size."""
    from soundlib.pictures.variants import get_variant

    return get_variant(name).replace(height=32, width=32)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh soundlib cache for one test module (SOUNDLIB_CACHE_DIR), restored afterwards."""
    old = os.environ.get("SOUNDLIB_CACHE_DIR")
    path = tmp_path_factory.mktemp("cache")
    os.environ["SOUNDLIB_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SOUNDLIB_CACHE_DIR", None)
    else:
        os.environ["SOUNDLIB_CACHE_DIR"] = old


def write_csv(path: Path, header, rows) -> Path:
    """Write a CSV file with ``header`` and ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def fake_dataset(n_groups=40, per_group=3, n_classes=4) -> D.Dataset:
    """An index of clips (no audio) with ``n_groups`` recordings of ``per_group`` slices, no folds."""
    clips = []
    for g in range(n_groups):
        label = f"c{g % n_classes}"
        for s in range(per_group):
            clips.append(D.Clip(Path(f"/x/{g}-{s}.wav"), label, g % n_classes, None, f"rec{g}"))
    return D.Dataset("fake", Path("/x"), tuple(f"c{i}" for i in range(n_classes)), tuple(clips))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A tiny synthetic corpus for the notebooks: 4 clips per class, 1 s, 3 folds."""
    from soundlib.audio.synth import SynthConfig, generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("nbdata") / "data",
                           SynthConfig(clips_per_class=4, duration=1.0, slices_per_recording=1, n_folds=3),
                           progress=False)


class ArchiveServer:
    """A local HTTP server on 127.0.0.1 serving byte strings (``files``: URL path -> bytes).

    Paths in ``truncate`` announce their full length but send only half of it,
    then close the connection (an interrupted transfer). ``hits`` counts requests per path.
    """

    def __init__(self):
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                body = server.files.get(path)
                if body is None:
                    self.send_error(404, "not here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if path in server.truncate else body)
                self.wfile.flush()
                if path in server.truncate:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server():
    server = ArchiveServer()
    yield server
    server.close()


def us8k_archive(clips=(("7-3-0-0.wav", 1, "dog_bark", 3), ("9-1-0-0.wav", 2, "car_horn", 1))) -> bytes:
    """A tiny UrbanSound8K.tar.gz with the real layout (``UrbanSound8K/audio/foldN``, ``UrbanSound8K/metadata``)."""
    import io
    import tarfile

    import soundfile as sf

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        def add(name: str, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))

        rows = [",".join(D.US8K_HEADER)]
        for i, (name, fold, label, class_id) in enumerate(clips):
            wav = io.BytesIO()
            sf.write(wav, tone(300 + 100 * i, seconds=0.5), SR, format="WAV", subtype="PCM_16")
            add(f"UrbanSound8K/audio/fold{fold}/{name}", wav.getvalue())
            rows.append(f"{name},{name.split('-')[0]},0,0.5,1,{fold},{class_id},{label}")
        add("UrbanSound8K/metadata/UrbanSound8K.csv", ("\n".join(rows) + "\n").encode())
    return buf.getvalue()


def esc50_archive() -> bytes:
    """A tiny ESC-50-master.zip with the real layout (``ESC-50-master/audio``, ``ESC-50-master/meta/esc50.csv``)."""
    import io
    import zipfile

    import soundfile as sf

    buf = io.BytesIO()
    rows = [",".join(D.ESC50_HEADER)]
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (name, fold, target, cat) in enumerate((("1-100-A-0.wav", 1, 0, "dog"), ("2-200-A-1.wav", 2, 1,
                                                                                           "rooster"))):
            wav = io.BytesIO()
            sf.write(wav, tone(400 + 100 * i, seconds=0.5), SR, format="WAV", subtype="PCM_16")
            zf.writestr(f"ESC-50-master/audio/{name}", wav.getvalue())
            rows.append(f"{name},{fold},{target},{cat},False,{name.split('-')[1]},A")
        zf.writestr("ESC-50-master/meta/esc50.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def serve_dataset(monkeypatch, server: ArchiveServer, dataset: str, body: bytes, *, md5: str | None = None) -> str:
    """Point soundata's archive record of ``dataset`` at ``server`` serving ``body``; return the URL path."""
    import hashlib
    import importlib

    from soundata.download_utils import RemoteFileMetadata

    module = importlib.import_module(f"soundata.datasets.{dataset}")
    old = module.REMOTES["all"]
    path = "/" + old.filename
    server.files[path] = body
    monkeypatch.setitem(module.REMOTES, "all", RemoteFileMetadata(
        filename=old.filename, url=server.url(path), checksum=md5 or hashlib.md5(body).hexdigest(),
        unpack_directories=old.unpack_directories))
    return path
