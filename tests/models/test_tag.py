"""soundlib tag: YAMNet's own AudioSet classes per frame, on a real clip and from the command line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundlib.errors import AudioError, ConfigError

from ..conftest import write_wav

SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
DOG = SHARED / "data" / "urbansound8k_subset" / "audio" / "fold1" / "101415-3-0-2.ogg"


def _yamnet_reason() -> str | None:
    from soundlib.embedders import resolve_embedder

    return resolve_embedder("yamnet").unavailable()


pytestmark = pytest.mark.skipif(_yamnet_reason() is not None, reason=f"YAMNet not installed: {_yamnet_reason()}")


@pytest.fixture(scope="module")
def model():
    from soundlib.embedders.nets.yamnet_weights import YamnetModel

    return YamnetModel(threads=1)


def test_a_dog_bark_is_tagged_dog_in_most_frames(model):
    if not DOG.is_file():
        pytest.skip(f"no real clip at {DOG}")
    from soundlib.models.tag import tag_file

    tags = list(tag_file(DOG, top_k=3, model=model))
    assert len(tags) == 8 and tags[0].start == 0.0 and tags[-1].end == pytest.approx(4.0, abs=0.01)
    assert all(len(t.labels) == 3 and list(t.scores) == sorted(t.scores, reverse=True) for t in tags)
    assert sum("Dog" in t.labels for t in tags) >= 5


def test_silence_is_refused_and_hop_checked(tmp_path, model):
    from soundlib.models.tag import tag_file

    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32), sr=16000)
    with pytest.raises(AudioError, match="silent"):
        list(tag_file(quiet, model=model))
    with pytest.raises(ConfigError, match="hop"):
        list(tag_file(quiet, hop=0, model=model))


@pytest.mark.slow
def test_tag_command_writes_a_csv(tmp_path):
    if not DOG.is_file():
        pytest.skip(f"no real clip at {DOG}")
    out = tmp_path / "tags.csv"
    r = subprocess.run([sys.executable, "-m", "soundlib.cli", "tag", str(DOG), "--top-k", "2", "--csv", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 16 and {r["rank"] for r in rows} == {"1", "2"}
    assert "XNNPACK" not in r.stderr and "Traceback" not in r.stderr
