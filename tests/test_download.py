"""Dataset downloads through soundata."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundlib import data as D
from soundlib import download as DL
from soundlib.errors import DatasetError

from .conftest import tone, write_csv, write_wav



def test_download_offline_is_clear(tmp_path, monkeypatch):
    import soundata

    class Offline:
        def download(self):
            raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(soundata, "initialize", lambda name, data_home: Offline())
    with pytest.raises(DatasetError, match=r"could not download urbansound8k .*Check the network"):
        DL.download("urbansound8k", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'audioset'"):
        DL.download("audioset", tmp_path)


def test_download_uses_soundata_layout(tmp_path, monkeypatch):
    """soundata's UrbanSound8K layout is the one load_dataset reads."""
    import soundata

    calls = []

    class Fake:
        def __init__(self, home):
            self.home = Path(home)

        def download(self):
            calls.append("download")
            name = "7-3-0-0.wav"
            write_wav(self.home / "audio" / "fold1" / name, tone())
            write_csv(self.home / "metadata" / "UrbanSound8K.csv", D.US8K_HEADER,
                       [[name, 7, 0, 1, 1, 1, 3, "dog_bark"]])

        def validate(self, verbose=False):
            calls.append("validate")
            return {}, {}

    monkeypatch.setattr(soundata, "initialize", lambda name, data_home: Fake(data_home))
    home = DL.download("UrbanSound8K", tmp_path / "home")
    assert calls == ["download", "validate"]
    assert len(D.load_dataset(home)) == 1
