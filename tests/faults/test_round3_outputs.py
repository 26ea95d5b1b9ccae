"""Red team of soundlib 0.2.0, round 3 (/work/shared/reports/red-team-0.2.0.md): outputs.

* I00: ``embed --export`` from every registered embedder, not only picture backbones;
* I01-I04: ``embed --export`` checked like every other writer, and every output option of the command line
  refused when it names an input or a foreign file (the test walks the parser, so a new writer is covered);
* D08, D08b, D09b, D10, E14, F07, B04: class and file names are text, escaped for their destination.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from soundlib.cli import build_parser, main

from ..conftest import tone, write_wav

SR = 16000
#: Class names of the report's D07 that a dataset may hold (control characters are refused now, D10).
INJ = ("=cmd|' calc'!A0", "<img src=x onerror=alert(1)> x|y **b** [l](javascript:alert(1))")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _wav(path: Path, freq: float, seed: int = 0) -> Path:
    return write_wav(path, tone(freq, seconds=0.5, sr=SR, seed=seed), sr=SR)


def _err_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error" in line]


@pytest.fixture(scope="module")
def inj(tmp_path_factory):
    """A folder dataset whose two classes are the report's injection names, and a model trained on it (MFCC
    embedder + logistic head: no TensorFlow, a few seconds)."""
    root = tmp_path_factory.mktemp("inj")
    ds = root / "ds"
    for k, name in enumerate(INJ):
        for i in range(4):
            _wav(ds / name / f"c{k}_{i}.wav", 300 + 2500 * k + 37 * i, seed=i)
    assert main(["train", str(ds), "--method", "frozen", "--backbone", "mfcc", "--k-folds", "2", "--test-fold", "1",
                 "--out", str(root / "run"), "--quiet"]) == 0
    wavs = sorted(ds.rglob("*.wav"))
    return SimpleNamespace(root=root, ds=ds, run=root / "run", model=root / "run" / "model", wavs=wavs)


@pytest.fixture(scope="module")
def us8k(tmp_path_factory):
    """A tiny UrbanSound8K-layout corpus: 20 clips of 0.5 s, 2 folds, with its metadata CSV."""
    from soundlib.audio.synth import SynthConfig, generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("us8k") / "c",
                           SynthConfig(clips_per_class=2, duration=0.5, slices_per_recording=1, n_folds=2),
                           progress=False)


def _cells(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


# ---------------------------------------------------------------------------
# I00: embed --export from any embedder


def test_i00_embed_export_from_an_audio_embedder(us8k, tmp_path, capsys):
    """`embed --backbone mfcc --export e.npz`: rc 2 "unknown backbone 'mfcc': not an embedded backbone"."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.lab.embedmap import read_npz

    out = tmp_path / "e.npz"
    assert main(["embed", str(us8k), "--backbone", "mfcc", "--export", str(out), "--quiet"]) == 0
    assert "unknown backbone" not in capsys.readouterr().err
    table, ds = read_npz(out), load_dataset(us8k)
    assert len(table) == len(ds) and table.embeddings.shape == (len(ds), 160)
    assert table.backbone.startswith("mfcc:") and table.paths.tolist() == [str(c.path) for c in ds.clips]
    assert np.isfinite(table.embeddings).all()
    # the same file again: soundlib's own .npz is replaced without --overwrite
    assert main(["embed", str(us8k), "--backbone", "mfcc", "--export", str(out), "--quiet"]) == 0


SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"


@pytest.mark.slow  # about 25 s on 2 cores: mn04's LiteRT copy is made in the test's fresh cache
@pytest.mark.skipif(not MN04.is_file(), reason=f"the shared mn04 checkpoint {MN04} is not here")
def test_i00_embed_export_from_mn04(us8k, tmp_path, monkeypatch, capsys):
    """`embed --backbone mn04 --export`: rc 2 "unknown backbone 'mn04'" (only picture backbones worked)."""
    from soundlib.lab.embedmap import read_npz

    monkeypatch.setenv("SOUNDLIB_MN04_CHECKPOINT", str(MN04))
    out = tmp_path / "e.npz"
    assert main(["embed", str(us8k), "--backbone", "mn04", "--export", str(out), "--quiet"]) == 0
    table = read_npz(out)
    assert len(table) == 20 and table.embeddings.shape[1] > 0 and "mn04" in table.backbone


# ---------------------------------------------------------------------------
# I01-I04: embed --export goes through the output checks


@pytest.mark.parametrize("case", ["I01 clip", "I02 metadata", "I03 foreign", "I04 folder"])
def test_i01_i04_embed_export_is_checked_before_any_work(us8k, tmp_path, capsys, monkeypatch, case):
    """I01: the WAV became a zip; I02: the metadata was replaced and the dataset no longer loaded; I03: a user's
    file replaced; I04: a folder refused only after every clip was embedded."""
    import soundlib.embedding.embed as embed_module

    clip = sorted((us8k / "audio" / "fold1").glob("*.wav"))[0]
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("my notes\n")
    folder = tmp_path / "adir"
    folder.mkdir()
    target = {"I01 clip": clip, "I02 metadata": us8k / "metadata" / "UrbanSound8K.csv", "I03 foreign": foreign,
              "I04 folder": folder}[case]
    before = target.read_bytes() if target.is_file() else None

    def no_work(*args, **kwargs):
        raise AssertionError("embedded before the output was checked")

    monkeypatch.setattr(embed_module, "embed_clips", no_work)
    assert main(["embed", str(us8k), "--backbone", "mfcc", "--export", str(target), "--quiet"]) == 2
    lines = _err_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "--export" in lines[0] and str(target) in lines[0], lines
    assert (target.read_bytes() if target.is_file() else None) == before
    if case == "I04 folder":
        assert not list(folder.iterdir())
    if case == "I03 foreign":  # refused only without --overwrite
        monkeypatch.undo()
        assert main(["embed", str(us8k), "--backbone", "mfcc", "--export", str(foreign), "--quiet",
                     "--overwrite"]) == 0
        assert foreign.read_bytes()[:4] == b"PK\x03\x04"


# ---------------------------------------------------------------------------
# Every output option of the command line


#: Words of an option's ``dest`` that make it an output path.
OUTPUT_WORDS = ("out", "out_dir", "output", "csv", "timeline", "events", "raven", "export", "audacity", "data_home",
                "summaries_dir", "cache_dir", "save", "write", "report")
#: Outputs that are folders (anything else named above is a file).
FOLDER_DESTS = ("out", "out_dir", "output", "data_home", "summaries_dir", "cache_dir")
#: Output options left out, and why.
NOT_CHECKED = {"cache_dir": "a cache: one that cannot be written is skipped with a warning and the run goes on "
                            "(tests/faults/test_crashes.py); it never writes over a file"}


def _is_output(action: argparse.Action) -> bool:
    return any(action.dest == w or action.dest.endswith("_" + w) or action.dest.startswith(w + "_")
               for w in OUTPUT_WORDS) and action.dest not in ("overwrite", "cv_from")


def _output_options() -> list[tuple[str, str, str]]:
    """``(command, dest, name)`` of every output path option of every command (``name``: the flag, or the
    positional argument's dest)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, p in sub.choices.items():
        for action in p._actions:
            if _is_output(action) and action.dest not in NOT_CHECKED:
                found.append((command, action.dest, action.option_strings[0] if action.option_strings else action.dest))
    return found


def test_the_audit_finds_every_known_writer():
    """The walk of the parser finds the writers the report lists (so the test below covers them)."""
    found = {(c, n) for c, _, n in _output_options()}
    assert {("embed", "--export"), ("predict", "--csv"), ("predict", "--timeline"), ("predict", "--events"),
            ("predict", "--raven"), ("tag", "--csv"), ("train", "--out"), ("evaluate", "--out"),
            ("featurize", "--out"), ("sweep", "--out"), ("gallery", "out_dir"), ("synth", "out_dir"),
            ("notebooks", "out_dir"), ("download", "--data-home")} <= found


def _recipe(command: str, ctx: SimpleNamespace, name: str, path: Path) -> list[str]:
    """The command line of ``command`` with its output ``name`` at ``path`` (everything else small and valid)."""
    opt = [name, str(path)] if name.startswith("--") else []
    pos = [str(path)] if not name.startswith("--") else []
    learn = ["--method", "mfcc", "--quiet"]
    out = [] if name == "--out" else ["--out", str(ctx.tmp / "run")]
    return {
        "synth": ["synth", *pos, "--clips-per-class", "1", "--duration", "0.5", "--quiet"],
        "featurize": ["featurize", str(ctx.us8k), *opt, "--quiet"],
        "gallery": ["gallery", str(ctx.clip), *pos],
        "download": ["download", "urbansound8k", *opt],
        "tag": ["tag", str(ctx.clip), *opt],
        "evaluate": ["evaluate", str(ctx.us8k), *out, *opt, "--folds", "1", *learn],
        "train": ["train", str(ctx.us8k), *out, *opt, "--test-fold", "1", *learn],
        "embed": ["embed", str(ctx.us8k), "--backbone", "mfcc", *opt, "--quiet"],
        "predict": ["predict", str(ctx.model), str(ctx.clip), *opt],
        "notebooks": ["notebooks", *pos],
        "sweep": ["sweep", str(ctx.yaml), *opt, "--quiet"],
    }[command]


#: What each command reads, by the recipe above (an output may be none of them).
INPUTS = {"featurize": ("clip", "metadata"), "gallery": ("clip",), "tag": ("clip",), "evaluate": ("clip", "metadata"),
          "train": ("clip", "metadata"), "embed": ("clip", "metadata"), "predict": ("clip", "labels"),
          "sweep": ("yaml",), "synth": (), "download": (), "notebooks": ()}


def _cases():
    for command, dest, name in _output_options():
        for target in (*INPUTS.get(command, ("unknown",)), "foreign"):
            yield pytest.param(command, dest, name, target, id=f"{command} {name} -> {target}")


@pytest.mark.parametrize("command, dest, name, target", list(_cases()))
def test_every_output_option_refuses_an_input_or_a_foreign_file(command, dest, name, target, us8k, inj, tmp_path,
                                                                capsys, monkeypatch):
    """I01-I03 for `embed --export`, and the same audit of every other writer: the output at an input file or
    at a user's file is refused before any work, with one line naming the option, and the file is unchanged."""
    assert command in INPUTS, f"a new command with an output option ({command} {name}): add it to the recipe"
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    clip = sorted((us8k / "audio" / "fold1").glob("*.wav"))[0]
    yaml = tmp_path / "s.yaml"
    yaml.write_text("synth: {clips_per_class: 1}\n")
    labels = tmp_path / "m" / "labels.txt"
    model = shutil.copytree(inj.model, tmp_path / "m") if target == "labels" else inj.model
    foreign = tmp_path / "notes.txt"
    foreign.write_text("my notes, not soundlib's\n")
    ctx = SimpleNamespace(tmp=tmp_path, us8k=us8k, clip=clip, model=model, yaml=yaml)
    path = {"clip": clip, "metadata": us8k / "metadata" / "UrbanSound8K.csv", "labels": labels, "yaml": yaml,
            "foreign": foreign}[target]
    before = path.read_bytes()
    rc = main(_recipe(command, ctx, name, path))
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    lines = _err_lines(err)
    assert len(lines) == 1 and name in lines[0] and str(path) in lines[0], err
    assert path.read_bytes() == before
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.json")) or command == "sweep"


# ---------------------------------------------------------------------------
# D08, E14, F07: CSV and Raven cells


def test_d08_names_never_start_a_formula_in_any_table(inj, tmp_path, capsys):
    """`predict --csv --events --raven --timeline` and predictions.csv: `=cmd|' calc'!A0` written raw."""
    from soundlib import results

    out = {k: tmp_path / f"{k}.csv" for k in ("csv", "timeline", "events")}
    raven = tmp_path / "r.txt"
    assert main(["predict", str(inj.model), *map(str, inj.wavs), "--top-k", "2", "--threshold", "0.01",
                 "--csv", str(out["csv"]), "--timeline", str(out["timeline"]), "--events", str(out["events"]),
                 "--raven", str(raven)]) == 0
    tables = [_cells(p) for p in out.values()] + [_cells(raven, "\t"), _cells(inj.run / "predictions.csv")]
    for table in tables:
        cells = [c for row in table for c in row]
        assert not [c for c in cells if c.startswith(FORMULA)], table[:3]
        assert "'" + INJ[0] in cells  # the name is there, as text
    header = _cells(inj.run / "predictions.csv")[0]
    assert "p_" + INJ[0] in header and "p_" + INJ[1] in header
    frame = results.load(inj.run).predictions  # read back as the names they are
    assert set(frame["true"]) == set(INJ) and "p_" + INJ[0] in frame.columns


def test_csv_cell_rules():
    from soundlib.text import csv_cell, csv_uncell

    for name in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x", "'plain", "plain", "a,b \"q\"", "é"):
        cell = csv_cell(name)
        assert not cell.startswith(FORMULA) and "\n" not in cell and "\t" not in cell
        if "\t" not in name and "\r" not in name:
            assert csv_uncell(cell) == name
    assert csv_cell(-1.5) == -1.5 and csv_cell(None) is None and csv_uncell("'abc") == "'abc"


def test_e14_a_file_name_with_line_breaks_keeps_every_table_row_on_one_line(inj, tmp_path, capsys):
    """A file name holding `\\n` and tabs: the Raven selection row split across 3 lines."""
    weird = tmp_path / "a\nb\tc\rd.wav"
    shutil.copy(inj.wavs[0], weird)
    raven, events, timeline = tmp_path / "r.txt", tmp_path / "e.csv", tmp_path / "t.csv"
    assert main(["predict", str(inj.model), str(weird), "--threshold", "0.01", "--raven", str(raven),
                 "--events", str(events), "--timeline", str(timeline)]) == 0
    lines = raven.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) > 1 and all(len(line.split("\t")) == 12 for line in lines)
    assert all(r"a\nb\tc\rd.wav" in line.split("\t")[10] for line in lines[1:])
    for table in (events, timeline):  # one physical line per row
        text = table.read_text(encoding="utf-8")
        assert len(text.splitlines()) == len(_cells(table))
    out = capsys.readouterr().out
    assert "a\nb" not in out and r"a\nb\tc\rd.wav" in out


class _FakeYamnet:
    pass


def _fake_tags(monkeypatch, labels):
    """`tag` without YAMNet: every file that is not named bad* gets one frame of ``labels``."""
    from soundlib.embedders.nets import yamnet_weights
    from soundlib.errors import AudioError
    from soundlib.models import tag as tag_module

    scores = np.array([0.5 / (k + 1) for k in range(len(labels))], np.float32)

    def tag_file(path, scores_out=None, **kwargs):
        if Path(path).name.startswith("bad"):
            raise AudioError(f"{path}: not a readable audio file")
        if scores_out is not None:
            scores_out.append(scores)
        yield tag_module.Tag(0.0, 0.975, tuple(labels), tuple(float(x) for x in scores))

    monkeypatch.setattr(yamnet_weights, "YamnetModel", _FakeYamnet)
    monkeypatch.setattr(tag_module, "open_tagger",
                        lambda name="mn04": tag_module.Tagger(name, 16000, 0.975, list(labels), lambda f: scores[None]))
    monkeypatch.setattr(tag_module, "tag_file", tag_file)


def test_f07_tag_csv_neutralises_names_and_writes_nothing_when_every_input_fails(inj, tmp_path, capsys,
                                                                                  monkeypatch):
    """`tag --csv` wrote `"=HYPERLINK(""http:\\evil.test"",""x"").wav"` raw, and an empty CSV when every input
    failed. B04: an edited class map's `=HYPERLINK(...)` label."""
    hyper = '=HYPERLINK("http://evil.test","Explosion")'
    _fake_tags(monkeypatch, [hyper, "Speech"])
    evil = tmp_path / '=HYPERLINK("http:\\evil.test","x").wav'
    shutil.copy(inj.wavs[0], evil)
    out = tmp_path / "t.csv"
    monkeypatch.chdir(tmp_path)  # the input as the user typed it: a relative name
    assert main(["tag", evil.name, "--csv", str(out)]) == 0
    rows = _cells(out)
    assert rows[0] == ["input", "level", "start", "end", "rank", "label", "score"]
    assert rows[1][0] == "'" + evil.name and rows[1][1] == "clip" and rows[1][5] == "'" + hyper
    assert rows[3][1] == "frame" and rows[3][5] == "'" + hyper
    assert not [c for row in rows for c in row if c.startswith(FORMULA)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    none = tmp_path / "none.csv"
    assert main(["tag", str(bad), "--csv", str(none)]) == 1
    assert not none.exists() and "not written" in capsys.readouterr().err


def test_f07_predict_writes_no_empty_tables_when_every_input_fails(inj, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    outs = [tmp_path / f"{k}.csv" for k in ("csv", "timeline", "events")]
    assert main(["predict", str(inj.model), str(bad), "--csv", str(outs[0]), "--timeline", str(outs[1]),
                 "--events", str(outs[2]), "--raven", str(tmp_path / "r.txt")]) == 1
    assert not any(p.exists() for p in (*outs, tmp_path / "r.txt"))
    assert "not written" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# D08b, B04: terminals


ANSI = "\x1b[31mRED\x1b[0m\x1b]0;pwned\x07"
BIDI = "abc\u202edcba\u2066x\u2069"


def _tampered(model: Path, dest: Path, labels: list[str]) -> Path:
    """A copy of ``model`` with other labels, its checksum recomputed (a model made by hand, as an attacker would)."""
    shutil.copytree(model, dest)
    (dest / "labels.txt").write_text("".join(f"{x}\n" for x in labels), encoding="utf-8")
    info = json.loads((dest / "soundlib_model.json").read_text())
    info["checksums"]["labels.txt"] = hashlib.sha256((dest / "labels.txt").read_bytes()).hexdigest()
    if "sizes" in info:  # and the sizes and the manifest's own digest (soundlib 0.3), as an attacker would
        from soundlib.models.format import MANIFEST_DIGEST, manifest_digest

        info["sizes"]["labels.txt"] = (dest / "labels.txt").stat().st_size
        info[MANIFEST_DIGEST] = manifest_digest(info)
    (dest / "soundlib_model.json").write_text(json.dumps(info))
    return dest


def _no_raw_controls(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]", text), repr(text)


def test_d08b_predict_and_info_show_control_characters_as_escapes(inj, tmp_path, capsys):
    """ANSI/OSC escapes in class names recoloured the terminal and set its title (`predict`, `info`)."""
    model = _tampered(inj.model, tmp_path / "m", [ANSI, BIDI])
    weird = tmp_path / "x\x1b[2Jy.wav"
    shutil.copy(inj.wavs[0], weird)
    assert main(["predict", str(model), str(weird), "--top-k", "2"]) == 0
    cap = capsys.readouterr()
    _no_raw_controls(cap.out + cap.err)
    assert r"\x1b[31mRED" in cap.out and r"\u202e" in cap.out and r"x\x1b[2Jy.wav" in cap.out
    main(["info", str(model)])
    cap = capsys.readouterr()
    _no_raw_controls(cap.out + cap.err)
    assert r"\x1b]0;pwned\x07" in cap.out


def test_b04_tag_shows_class_map_names_as_text(inj, tmp_path, capsys, monkeypatch):
    _fake_tags(monkeypatch, [ANSI, '=HYPERLINK("http://evil.test","Explosion")'])
    assert main(["tag", str(inj.wavs[0])]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert r"\x1b[31mRED" in out


def test_error_messages_show_names_as_text(tmp_path, capsys):
    """A file name with escapes, named in an error line, reaches the terminal raw."""
    ds = tmp_path / "d\x1b]0;pwned\x07"
    ds.mkdir()
    assert main(["featurize", str(ds), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    _no_raw_controls(err)
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# D09b: model cards


def _cells_of_markdown_row(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_d09b_model_card_shows_names_as_text(inj):
    """MODEL_CARD.md: raw `<img src=x onerror=alert(1)>`, a `javascript:` link, and `|` splitting the class table."""
    card = (inj.model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "<img" not in card and "javascript:" not in card
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", card)  # no link: every [ and ] of a name escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in card
    data = card.split("## Data")[1].split("##")[0]
    rows = [line for line in data.splitlines() if line.startswith("| ") and "training clips" not in line
            and any(n[:4] in line for n in ("=cmd", "&lt;img"))]
    assert len(rows) == 2 and all(len(_cells_of_markdown_row(r)) == 2 for r in rows), rows
    scores = card.split("## Scores per class")[1].split("##")[0]  # the per-class scores name them as text too
    rows = [line for line in scores.splitlines() if any(n[:4] in line for n in ("=cmd", "&lt;img"))]
    assert len(rows) == 2 and all(len(_cells_of_markdown_row(r)) == 5 for r in rows), rows
    classes = card.split("## Classes (2)")[1].split("##")[0]
    assert "\\[l\\]" in classes and "\\|" in classes


def test_markdown_and_html_helpers():
    from soundlib.text import html, markdown, markdown_code

    text = markdown("a<b>&c|d`e`[l](JavaScript:x)\nnext")
    for raw in ("<", ">", "`e`", "[l]", "JavaScript:", "\n"):
        assert raw not in text
    assert markdown_code("air_conditioner") == "`air_conditioner`" and markdown_code("a|b") == "a\\|b"
    assert html("<b>x</b>\x1b") == "&lt;b&gt;x&lt;/b&gt;\\x1b"


def test_trials_widget_message_is_html_text(tmp_path):
    """The notebooks' clip explorer showed the class name as HTML (`<b>{label}</b>`)."""
    pytest.importorskip("ipywidgets")
    from soundlib.audio.loaders import load_dataset
    from soundlib.lab.trials import TrialsUI

    ds = tmp_path / "ds"
    _wav(ds / INJ[1] / "a.wav", 440)
    _wav(ds / "b" / "b.wav", 880)
    ui = TrialsUI(load_dataset(ds))
    ui.class_dd.value = INJ[1]
    ui.redraw()
    assert "<img" not in ui.message.value and "&lt;img src=x" in ui.message.value


# ---------------------------------------------------------------------------
# D10: class names that cannot round-trip


@pytest.mark.parametrize("classes, shown", [(("cr\rx", "y"), r"'cr\rx'"), (("a\u2028b", "c"), r"'a\u2028b'"),
                                            (("dog", "dog "), "'dog '"), (("tab\tname", "z"), r"'tab\tname'")])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_d10_class_names_that_cannot_round_trip_are_refused(tmp_path, capsys, classes, shown, command):
    """train rc 0 and "model: ..." for `cr\\rx`/`y`, `a\\u2028b`/`c`, `dog`/`dog `; every later predict rc 2."""
    ds = tmp_path / "ds"
    for k, name in enumerate(classes):
        for i in range(2):
            _wav(ds / name / f"{k}{i}.wav", 400 + 900 * k + 50 * i, seed=i)
    args = [command, str(ds), "--method", "mfcc", "--k-folds", "2", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args + (["--test-fold", "1"] if command == "train" else [])) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "class name" in lines[0] and shown in lines[0], err
    assert not (tmp_path / "run").exists()


NAMES = ["dog", "dog bark", "a,b \"q\"", "<img src=x>", "=cmd", "é", "a\u202eb", "cr\rx", "lf\nx", "a\u2028b",
         "a\u2029b", "a\x85b", "a\x0bb", "a\x0cb", "a\x1cb", "esc\x1b[0m", "tab\tx", "dog ", " dog", "\u3000x", "a\x00b"]


@pytest.mark.parametrize("name", NAMES, ids=[repr(n) for n in NAMES])
def test_d10_label_problem_is_exactly_what_labels_txt_cannot_hold(tmp_path, name):
    """label_problem() is None exactly for names that labels.txt stores and read_labels reads back; the export
    refuses the others (it refused only `\\n`)."""
    from soundlib.embedders.mfcc import MfccEmbedder
    from soundlib.errors import ModelError
    from soundlib.models.export import export_embedder_model
    from soundlib.models.load import read_labels
    from soundlib.pictures.variants import get_variant
    from soundlib.text import label_problem

    (tmp_path / "labels.txt").write_text(f"{name}\nother\n", encoding="utf-8")
    round_trips = read_labels(tmp_path) == [name, "other"]
    assert (label_problem(name) is None) == (round_trips and "\x00" not in name and "\x1b" not in name
                                             and "\t" not in name)
    if label_problem(name) is None:
        return
    head = SimpleNamespace(coef=np.zeros((2, 4)), intercept=np.zeros(2), mean=np.zeros(4), scale=np.ones(4))
    with pytest.raises(ModelError, match="labels must be distinct one-line names"):
        export_embedder_model(tmp_path / "m", embedder=MfccEmbedder(), options={}, head=head,
                              spec=get_variant("mel").replace(duration=1.0), labels=[name, "other"])
    assert not (tmp_path / "m").exists()


def test_sweep_results_csv_and_markdown_show_names_as_text(tmp_path):
    """results.csv / results.md of a sweep: variant and method names from the YAML, written raw."""
    import pandas as pd

    from soundlib.sweep.results import write_results

    index = pd.MultiIndex.from_tuples([("=v", "<b>m|x</b>")], names=["variant", "method"])
    table = pd.DataFrame({"folds": [2], "accuracy_mean": [0.5], "accuracy_std": [0.1], "macro_f1_mean": [0.4],
                          "macro_f1_std": [0.1], "seconds_per_fold": [3.0], "note": ["@x"]}, index=index)
    csv_path, md_path = write_results(tmp_path, table)
    cells = [c for row in _cells(csv_path) for c in row]
    assert "'=v" in cells and "'@x" in cells and not [c for c in cells if c.startswith(FORMULA)]
    md = md_path.read_text()
    assert "<b>" not in md and "&lt;b&gt;m\\|x&lt;/b&gt;" in md


def test_figures_draw_names_with_dollars_as_text():
    """A class named `$\\frac$` made the confusion matrix (drawn by every train/evaluate run) fail in mathtext."""
    from soundlib.evaluation.plots import plot_confusion, plot_embedding_map, png_bytes

    names = ["$\\frac$", "b$x"]
    assert png_bytes(plot_confusion([[1, 0], [0, 1]], names, title=names[0]))[:4] == b"\x89PNG"
    fig = plot_embedding_map(np.eye(2), np.asarray(names), classes=names)
    assert png_bytes(fig)[:4] == b"\x89PNG"
