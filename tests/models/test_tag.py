"""soundlib tag: an AudioSet network's own classes per clip and per frame (mn04 and YAMNet), on a real clip and
from the command line."""

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


needs_yamnet = pytest.mark.skipif(_yamnet_reason() is not None, reason=f"YAMNet not installed: {_yamnet_reason()}")


@pytest.fixture(scope="module")
def model():
    if _yamnet_reason() is not None:
        pytest.skip(f"YAMNet not installed: {_yamnet_reason()}")
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
@needs_yamnet
def test_tag_command_writes_a_csv(tmp_path):
    if not DOG.is_file():
        pytest.skip(f"no real clip at {DOG}")
    out = tmp_path / "tags.csv"
    r = subprocess.run([sys.executable, "-m", "soundlib.cli", "tag", str(DOG), "--top-k", "2", "--csv", str(out),
                        "--model", "yamnet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 18 and {r["rank"] for r in rows} == {"1", "2"}  # 2 clip rows, 8 frames x 2
    assert [r["level"] for r in rows[:2]] == ["clip", "clip"] and {rows[0]["label"], rows[1]["label"]} & {
        "Dog", "Animal", "Domestic animals, pets"}
    assert "XNNPACK" not in r.stderr and "Traceback" not in r.stderr


MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def test_mn04_tags_a_dog_bark_per_clip_and_per_frame(monkeypatch):
    """mn04 is the default tagger (the better AudioSet model): its clip summary and most frames say Dog."""
    if not DOG.is_file() or not MN04.is_file():
        pytest.skip("no real clip or mn04 checkpoint in the shared folder")
    monkeypatch.setenv("SOUNDLIB_MN04_CHECKPOINT", str(MN04))
    from soundlib.models.tag import DEFAULT_TAGGER, clip_summary, format_tags, open_tagger, tag_file

    assert DEFAULT_TAGGER == "mn04"
    tagger = open_tagger("mn04")
    assert tagger.sr == 32000 and len(tagger.names) == 527
    scores: list = []
    tags = list(tag_file(DOG, top_k=3, hop=0.5, tagger=tagger, scores_out=scores))
    assert len(scores) == len(tags) >= 6 and all(0 <= s.min() and s.max() <= 1 for s in scores)
    summary = clip_summary(tags, tagger, scores, top_k=3)
    assert "Dog" in summary.labels[:2] and sum("Dog" in t.labels for t in tags) >= len(tags) // 2
    assert "whole clip" in format_tags(DOG, tags, summary).splitlines()[1]
