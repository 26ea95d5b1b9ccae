"""Dataset downloads, offline: a local HTTP server on 127.0.0.1 serves tiny archives of the real layouts.

The faults (checksum mismatch, interrupted transfer or unpacking, hostile archives) are in
tests/faults/test_download_faults.py.
"""

from __future__ import annotations

import stat

import pytest

from soundlib.audio import datasets as D
from soundlib.audio import loaders as L
from soundlib.audio import download as DL
from soundlib.cli import main
from soundlib.errors import DatasetError

from ..conftest import esc50_archive, serve_dataset, us8k_archive


def test_urbansound8k_through_soundata_record_and_local_server(tmp_path, monkeypatch, archive_server):
    """The whole path: soundata's record (URL, MD5, unpack folder) -> fetch -> verify -> unpack -> load."""
    path = serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    home = DL.download("UrbanSound8K", tmp_path / "home", progress=False)
    ds = L.load_dataset(home)
    assert ds.name == "urbansound8k" and len(ds) == 2 and ds.folds == (1, 2)
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == ["audio", "metadata"]
    assert not (home / DL.STAGING).exists() and not (home / D.INCOMPLETE_MARKER).exists()
    # a second call finds it complete and fetches nothing
    assert DL.download("urbansound8k", home, progress=False) == home and archive_server.hits[path] == 1


def test_esc50_zip(tmp_path, monkeypatch, archive_server):
    serve_dataset(monkeypatch, archive_server, "esc50", esc50_archive())
    home = DL.download("esc50", tmp_path / "esc", progress=False)
    ds = L.load_dataset(home)
    assert ds.name == "esc50" and ds.classes == ("dog", "rooster")


def test_files_get_the_umask_permissions(tmp_path, monkeypatch, archive_server):
    import os

    serve_dataset(monkeypatch, archive_server, "urbansound8k", us8k_archive())
    old = os.umask(0o022)
    try:
        home = DL.download("urbansound8k", tmp_path / "home", progress=False)
    finally:
        os.umask(old)
    wav = next(home.rglob("*.wav"))
    assert stat.S_IMODE(wav.stat().st_mode) == 0o644 and stat.S_IMODE(wav.parent.stat().st_mode) == 0o755


def test_cli_download_and_unknown_dataset(tmp_path, monkeypatch, archive_server, capsys):
    serve_dataset(monkeypatch, archive_server, "esc50", esc50_archive())
    assert main(["download", "esc50", "--data-home", str(tmp_path / "e")]) == 0
    assert "esc50 ready in" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="unknown dataset 'audioset'"):
        DL.download("audioset", tmp_path)


def test_remote_record_comes_from_soundata():
    r = DL.remote_archive("urbansound8k")
    assert r.filename == "UrbanSound8K.tar.gz" and r.unpack_dirs == ("UrbanSound8K",) and len(r.md5) == 32
    assert r.url.startswith("https://")
