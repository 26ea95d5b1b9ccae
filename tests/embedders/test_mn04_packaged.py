"""mn04 offline: the EfficientAT release file ships inside soundlib (MIT notice beside it) and is found
after ``$SOUNDLIB_MN04_CHECKPOINT`` and before the cache and the download."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

import soundlib.embedders as _embedders
from soundlib.embedders.nets import efficientat_weights as M
from soundlib.errors import BackboneError, SoundlibWarning

PACKAGED = Path(_embedders.__file__).parent / "weights"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No $SOUNDLIB_MN04_CHECKPOINT, an empty cache, and the download URL on a port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/{M.CHECKPOINT_NAME}"
    monkeypatch.delenv(M.CHECKPOINT_ENV, raising=False)
    monkeypatch.setenv(M.URL_ENV, dead)
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    return dead


def test_the_release_file_and_its_mit_notice_ship_in_the_package():
    assert M.packaged_checkpoint() == PACKAGED / M.CHECKPOINT_NAME
    assert hashlib.sha256(M.packaged_checkpoint().read_bytes()).hexdigest() == M.CHECKPOINT_SHA256
    notice = (PACKAGED / "EfficientAT-LICENSE.txt").read_text()
    assert notice.startswith("MIT License") and "Copyright (c) 2022 Florian Schmid" in notice
    readme = (PACKAGED / "README.md").read_text()
    assert M.CHECKPOINT_SHA256 in readme and M.CHECKPOINT_URL in readme


def test_mn04_loads_from_the_package_file_without_internet(offline, tmp_path):
    from soundlib.embedders import resolve_embedder

    assert M.checkpoint_path() == M.packaged_checkpoint()
    assert M.checkpoint_path(download=False) == M.packaged_checkpoint()
    emb = resolve_embedder("mn04")
    assert emb.is_ready()
    model = emb.load()
    y = np.sin(2 * np.pi * 440 * np.arange(32000) / 32000).astype(np.float32)[None] * 0.3
    out = model(y)
    assert out.shape == (1, model.output_dim) and np.all(np.isfinite(out))
    assert not (tmp_path / "cache" / "weights").exists()  # nothing was downloaded


def test_the_checkpoint_variable_comes_before_the_package_file(offline, tmp_path, monkeypatch):
    copy = tmp_path / "mine.pt"
    copy.write_bytes(M.packaged_checkpoint().read_bytes())
    monkeypatch.setenv(M.CHECKPOINT_ENV, str(copy))
    assert M.checkpoint_path() == copy


def test_a_damaged_package_file_is_skipped_with_a_warning(offline, tmp_path, monkeypatch):
    damaged = tmp_path / "pkg" / M.CHECKPOINT_NAME
    damaged.parent.mkdir()
    data = bytearray(M.packaged_checkpoint().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(M, "packaged_checkpoint", lambda: damaged)
    with pytest.warns(SoundlibWarning, match="shipped with soundlib"), \
            pytest.raises(BackboneError, match=M.CHECKPOINT_ENV) as info:
        M.checkpoint_path()  # then the (dead) download
    assert offline in str(info.value)
