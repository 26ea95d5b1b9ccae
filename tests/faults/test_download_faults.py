"""Fault injection, part 4: `soundlib download` offline, against a local HTTP server on 127.0.0.1.

Before the fix every download failed inside soundata 1.0.1 (``urllib.request`` used without being
imported) and soundlib reported it as a network problem; a partial archive or a half-unpacked tree
could be taken as complete.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile

import pytest

from soundlib.audio import loaders as L
from soundlib.audio import download as DL
from soundlib.errors import DatasetError

from ..conftest import serve_dataset, us8k_archive


def _no_dataset_in(home) -> None:
    assert not (home / "audio").exists() and not (home / "metadata").exists()
    assert not list(home.rglob("*.part"))
    with pytest.raises(DatasetError):
        L.load_urbansound8k(home)


def test_soundata_1_0_1_cannot_download_by_itself():
    """The cause soundlib works around: soundata's downloader names urllib.request without importing it."""
    code = ("import soundata.download_utils as d, types\n"
            "r = types.SimpleNamespace(url='http://127.0.0.1:9/x', filename='x', checksum='0', destination_dir=None)\n"
            "try:\n    d.download_from_remote(r, '.', False)\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/tmp")
    import soundata

    if soundata.__version__ != "1.0.1":  # pragma: no cover - a fixed soundata: nothing to show
        pytest.skip(f"soundata {soundata.__version__}")
    assert "module 'urllib' has no attribute 'request'" in out.stdout


def test_download_works_in_a_fresh_process(tmp_path, archive_server, monkeypatch):
    """In a process where nothing imported urllib.request first (the CLI's case), the download works."""
    serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    import soundata.datasets.urbansound8k as us8k

    remote = us8k.REMOTES["all"]
    code = (f"import soundata.datasets.urbansound8k as m, soundata.download_utils as d\n"
            f"m.REMOTES['all'] = d.RemoteFileMetadata(filename={remote.filename!r}, url={remote.url!r}, "
            f"checksum={remote.checksum!r}, unpack_directories={remote.unpack_directories!r})\n"
            f"import sys; from soundlib.cli import main\n"
            f"sys.exit(main(['download', 'urbansound8k', '--data-home', {str(tmp_path / 'home')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(L.load_dataset(tmp_path / "home")) == 2


def test_checksum_mismatch_is_named_and_nothing_is_unpacked(tmp_path, monkeypatch, archive_server):
    body = us8k_archive()
    serve_dataset(monkeypatch, archive_server, "urbansound8k", body, md5="0" * 32)
    with pytest.raises(DatasetError) as exc:
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    msg = str(exc.value)
    assert f"has MD5 {hashlib.md5(body).hexdigest()}, expected {'0' * 32}" in msg and "nothing was unpacked" in msg
    assert "network" not in msg
    _no_dataset_in(tmp_path / "home")


def test_interrupted_transfer_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, archive_server):
    path = serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    archive_server.truncate.add(path)
    with pytest.raises(DatasetError, match="the transfer was cut short"):
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    _no_dataset_in(tmp_path / "home")
    archive_server.truncate.clear()  # the connection is back: the same command finishes the job
    DL.download("urbansound8k", tmp_path / "home", progress=False)
    assert len(L.load_dataset(tmp_path / "home")) == 2


def test_interrupted_unpacking_is_not_taken_as_complete(tmp_path, monkeypatch, archive_server):
    path = serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    real = DL._move_into_place

    def killed_half_way(tree, remote, home):
        (tree / "UrbanSound8K" / "audio").rename(home / "audio")  # the audio is in place, the metadata not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(DL, "_move_into_place", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    with pytest.raises(DatasetError, match="incomplete: it was being written"):
        L.load_dataset(tmp_path / "home")
    monkeypatch.setattr(DL, "_move_into_place", real)
    DL.download("urbansound8k", tmp_path / "home", progress=False)
    assert len(L.load_dataset(tmp_path / "home")) == 2
    assert archive_server.hits[path] == 1  # the verified archive was reused, not fetched again


def test_http_error_and_unreachable_server_are_told_apart(tmp_path, monkeypatch, archive_server):
    path = serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    del archive_server.files[path]
    with pytest.raises(DatasetError, match=r"the server answered HTTP 404") as exc:
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    assert "network" not in str(exc.value)


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_members_outside_the_data_folder_are_refused(tmp_path, monkeypatch, archive_server):
    body = _tar({"UrbanSound8K/metadata/UrbanSound8K.csv": b"x", "UrbanSound8K/../../evil.txt": b"pwned"})
    serve_dataset(monkeypatch, archive_server, "urbansound8k", body)
    with pytest.raises(DatasetError, match="would be written outside the data folder"):
        DL.download("urbansound8k", tmp_path / "a" / "home", progress=False)
    assert not list(tmp_path.rglob("evil.txt"))


def test_wrong_layout_and_foreign_files_are_refused(tmp_path, monkeypatch, archive_server):
    serve_dataset(monkeypatch, archive_server, "urbansound8k", _tar({"Other/readme.txt": b"x"}))
    with pytest.raises(DatasetError, match="holds no folder 'UrbanSound8K'"):
        DL.download("urbansound8k", tmp_path / "home", progress=False)
    serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    mine = tmp_path / "mine"
    (mine / "audio").mkdir(parents=True)
    (mine / "audio" / "field-recording.wav").write_bytes(b"precious")
    with pytest.raises(DatasetError, match="already holds audio, which soundlib did not download"):
        DL.download("urbansound8k", mine, progress=False)
    assert (mine / "audio" / "field-recording.wav").read_bytes() == b"precious"
