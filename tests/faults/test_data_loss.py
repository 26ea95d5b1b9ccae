"""Fault injection, part 1: nothing a user made is lost or silently overwritten.

Each test reproduces one case of issue 9 ("Data loss") and fails on soundlib before the fix.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundlib.cli import main
from soundlib.errors import FeatureError

from ..conftest import SR, tone, write_csv, write_wav
from .conftest import FAST


def _train(corpus, out, backbone, *extra) -> int:
    return main(["train", str(corpus), "--test-fold", "1", "--out", str(out), "--backbone", str(backbone),
                 *FAST, *extra])


def test_train_never_deletes_a_folder_it_did_not_make(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """`train --out DIR` deleted an existing DIR/model without looking at it."""
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / "thesis.tex").write_text("three years of work")
    assert _train(synth_corpus, out, tiny_backbone) == 2
    err = capsys.readouterr().err
    assert "run/model exists and is a folder that is not a soundlib model" in err and "--overwrite" in err
    assert (out / "model" / "thesis.tex").read_text() == "three years of work"
    assert not (out / "metrics.json").exists()  # refused before training, nothing written
    (out / "model").rename(out / "saved-thesis")
    # a file in its place is refused too
    (out / "model").write_text("notes")
    assert _train(synth_corpus, out, tiny_backbone) == 2 and "is a file" in capsys.readouterr().err
    # --overwrite replaces it; a soundlib model is then replaced without being asked
    assert _train(synth_corpus, out, tiny_backbone, "--overwrite") == 0
    info = json.loads((out / "model" / "soundlib_model.json").read_text())
    assert info["format"].startswith("soundlib-model/")
    assert _train(synth_corpus, out, tiny_backbone) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".model")]  # no temporary leftovers


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_swaps_and_leaves_nothing_behind(tmp_path, monkeypatch, exchange):
    """The model folder is replaced by a complete new one (one atomic exchange on Linux, else two renames)."""
    from soundlib import atomic

    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    new, old = tmp_path / "new", tmp_path / "model"
    for d, text in ((new, "new"), (old, "old")):
        d.mkdir()
        (d / "labels.txt").write_text(text)
    atomic.replace_dir(new, old)
    assert (old / "labels.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _formats(folder: Path) -> dict[str, Path]:
    """x.wav, x.flac, x.ogg (and x.mp3 where libsndfile writes it), each a different sound."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (ext, fmt, sub) in enumerate((("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                                         ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III"))):
        if fmt not in sf.available_formats():
            continue
        path = folder / f"x.{ext}"
        sf.write(str(path), tone(200 * 3 ** i, seconds=1.0), SR, format=fmt, subtype=sub)
        out[ext] = path
    return out


def test_featurize_gives_every_clip_its_own_picture(tmp_path, capsys):
    """x.flac, x.ogg and x.mp3 (and two a.wav of a manifest) overwrote one another's picture."""
    files = _formats(tmp_path / "in")
    assert main(["featurize", str(tmp_path / "in"), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert f"{len(files)} written" in capsys.readouterr().out
    pngs = sorted((tmp_path / "p").glob("*.png"))
    assert [p.name for p in pngs] == sorted(f"x.{ext}.png" for ext in files)
    pictures = [np.asarray(__import__("PIL.Image", fromlist=["x"]).open(p)) for p in pngs]
    assert all(not np.array_equal(pictures[0], other) for other in pictures[1:])

    # a manifest: two a.wav in different folders, and one outside the manifest's folder
    base = tmp_path / "m"
    clips = [write_wav(base / "dog" / "a.wav", tone(300)), write_wav(base / "cat" / "a.wav", tone(3000)),
             write_wav(tmp_path / "elsewhere" / "a.wav", tone(1200))]
    write_csv(base / "list.csv", ["path", "label"], [[str(clips[0]), "dog"], ["cat/a.wav", "cat"],
                                                     [str(clips[2]), "cat"]])
    assert main(["featurize", str(base / "list.csv"), "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert "3 written" in capsys.readouterr().out
    assert len(list((tmp_path / "q").rglob("*.png"))) == 3


def test_featurize_refuses_to_mix_datasets_in_one_folder(tmp_path, capsys):
    """Pictures of another dataset's a.wav were silently taken as this one's ("already there")."""
    write_wav(tmp_path / "A" / "a.wav", tone(300))
    write_wav(tmp_path / "B" / "a.wav", tone(3000))
    assert main(["featurize", str(tmp_path / "A"), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["featurize", str(tmp_path / "B"), "--out", str(tmp_path / "p"), "--quiet"]) == 2
    assert "holds pictures of the clips under" in capsys.readouterr().err


def test_picture_collisions_are_errors(tmp_path):
    from soundlib.pictures.featurize import _destinations

    a, b = tmp_path / "x.WAV", tmp_path / "x.wav"
    with pytest.raises(FeatureError, match="would be shared by two clips"):
        _destinations([a, b], tmp_path, tmp_path / "out")
    # the same clip listed twice is rendered once, not an error
    assert len(_destinations([b, b], tmp_path, tmp_path / "out")) == 1


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from soundlib.pictures.variants import get_variant, register_variant
    register_variant(get_variant("mel").replace(name="mel32", height=32, width=32), overwrite=True)
    import soundlib.models.export as infer
    if sys.argv[1] == "export":      # killed in the middle of writing the model
        real = os.replace
        def replace(a, b, *args, **kw):
            if os.path.basename(str(a)).startswith(".model."):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b, *args, **kw)
        os.replace = replace
    else:                            # killed after the new predictions, before the model and metrics
        def export_model(*args, **kw):
            os.kill(os.getpid(), signal.SIGKILL)
        infer.export_model = export_model
    from soundlib.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _train_args(synth_corpus, out, tiny_backbone) -> list[str]:
    return ["train", str(synth_corpus), "--test-fold", "1", "--out", str(out), "--backbone", str(tiny_backbone),
            *FAST]


def _killed(stage: str, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLER, stage, *args], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.slow
def test_killed_export_leftovers_are_cleaned_by_the_next_run(tmp_path, synth_corpus, tiny_backbone, mel32):
    """A killed export left .model.* temporary folders forever."""
    out = tmp_path / "run"
    args = _train_args(synth_corpus, out, tiny_backbone)
    _killed("export", args)  # killed while the new model folder is being renamed into place
    assert [p.name for p in out.iterdir() if p.name.startswith(".model.")]  # the killed export's leftover
    assert not (out / "metrics.json").exists()
    assert main(args) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_killed_retrain_leaves_a_clearly_incomplete_folder(tmp_path, synth_corpus, tiny_backbone, mel32):
    """A killed re-train left the old metrics.json (and model) beside the new predictions.csv."""
    from soundlib.evaluation.metrics import RunMetrics

    out = tmp_path / "run"
    args = _train_args(synth_corpus, out, tiny_backbone)
    assert main(args) == 0
    first = json.loads((out / "metrics.json").read_text())
    (out / "predictions.csv").write_text("from the first run\n")
    _killed("predictions", args)  # killed after the new predictions, before the model and metrics.json
    assert (out / "predictions.csv").read_text() != "from the first run\n"  # the new run got that far
    assert not (out / "metrics.json").exists(), "the old run's metrics.json survived beside new outputs"
    assert RunMetrics.read(out) is None
    assert main(args) == 0 and json.loads((out / "metrics.json").read_text())["accuracy"] == first["accuracy"]
