"""Fault injection, part 6: files and paths.

Stale content hashes, outputs that destroy inputs or models, run folders shared by two runs or
taken from the user, sweeps resumed over changed data, damaged derived models, file names that are
not UTF-8, outputs of the wrong kind, named pipes, a relative cache, leftovers of killed sweeps and
unclear messages. Each test reproduces one case of the reliability issue and fails on soundlib
before the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from soundlib.cli import main
from soundlib.errors import ConfigError, SoundlibWarning

from ..conftest import tone, write_wav
from .conftest import FAST, tone_manifest

OLD = time.time() - 3600


def _one_error_line(err: str, command: str) -> str:
    """The single ``soundlib COMMAND: error: ...`` line of ``err`` (no traceback, nothing else)."""
    lines = [line for line in err.strip().splitlines() if line.strip() and ": warning: " not in line]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"soundlib {command}: error: "), err
    return lines[0]


def _train(corpus, out, backbone, *extra) -> int:
    return main(["train", str(corpus), "--test-fold", "1", "--out", str(out), "--backbone", str(backbone), *FAST,
                 *extra])


# ---------------------------------------------------------------------------
# 1. Stale audio hashes


def test_replaced_audio_with_the_same_size_and_mtime_is_hashed_again(tmp_path, monkeypatch):
    """`cp -p`/`touch -r` of another clip of the same size gave the old clip's hash (and cached embedding)."""
    from soundlib.audio import hashes

    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hashes, "_memo", {})
    monkeypatch.setattr(hashes, "_RACY_SECONDS", 0.0)  # remember files written just now
    clip = write_wav(tmp_path / "a.wav", tone(300, seed=1))
    os.utime(clip, (OLD, OLD))
    first = hashes.file_hash(clip)
    hashes.flush()
    before = clip.stat()
    time.sleep(0.05)  # the next change gets a later ctime
    other = write_wav(tmp_path / "b.wav", tone(2000, seed=2))  # same length: same size
    clip.write_bytes(other.read_bytes())  # in place: same inode
    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))  # what cp -p / touch -r / tar x do
    after = clip.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns  # the one thing nobody can set back
    want = hashlib.sha256(other.read_bytes()).hexdigest()
    assert want != first
    assert hashes.file_hash(clip) == want  # this process
    hashes.flush()
    monkeypatch.setattr(hashes, "_memo", {})
    assert hashes.file_hashes([clip]) == [want]  # another process: through the index


# ---------------------------------------------------------------------------
# 2. predict overwrote its own inputs and the model


def test_predict_never_overwrites_an_input_the_model_or_a_foreign_file(tmp_path, capsys, exported_model,
                                                                        synth_corpus):
    """`predict MODEL a.wav --timeline a.wav` turned the audio into CSV; `--csv MODEL/labels.txt` ruined the model."""
    model = Path(shutil.copytree(exported_model, tmp_path / "model"))
    wav = tmp_path / "a.wav"
    shutil.copy(sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0], wav)
    audio, labels = wav.read_bytes(), (model / "labels.txt").read_bytes()

    def predict(*extra) -> tuple[int, str]:
        code = main(["predict", str(model), str(wav), "--top-k", "1", *extra])
        return code, capsys.readouterr().err

    code, err = predict("--timeline", str(wav))
    assert code == 2 and "is one of the inputs" in _one_error_line(err, "predict")
    code, err = predict("--csv", str(tmp_path / "." / "a.wav"), "--overwrite")  # never, not even with --overwrite
    assert code == 2 and "is one of the inputs" in err
    assert wav.read_bytes() == audio
    for target in (model / "labels.txt", model / "new.csv"):
        code, err = predict("--csv", str(target), "--overwrite")
        assert code == 2 and "lies inside the model folder" in _one_error_line(err, "predict")
    assert (model / "labels.txt").read_bytes() == labels and not (model / "new.csv").exists()
    notes = tmp_path / "notes.csv"
    notes.write_text("my own notes\n")
    code, err = predict("--csv", str(notes))
    assert code == 2 and "is not a file soundlib wrote" in _one_error_line(err, "predict") and "--overwrite" in err
    assert notes.read_text() == "my own notes\n"
    # a new file, then the same file again (soundlib's own output), then the foreign one with --overwrite
    out = tmp_path / "p.csv"
    assert predict("--csv", str(out), "--timeline", str(tmp_path / "t.csv"))[0] == 0
    assert predict("--csv", str(out), "--timeline", str(tmp_path / "t.csv"))[0] == 0
    assert out.read_text().startswith("input,rank,label,probability,windows")
    assert predict("--csv", str(notes), "--overwrite")[0] == 0 and notes.read_text().startswith("input,rank")
    from soundlib.models.load import load_model

    load_model(model)  # intact


# ---------------------------------------------------------------------------
# 3. Run folders: owned, locked, complete or clearly incomplete


def test_rerun_with_a_method_that_exports_nothing_removes_the_old_model(tmp_path, capsys, synth_corpus,
                                                                       tiny_backbone, mel32):
    """A frozen run then an mfcc run into DIR left the frozen model beside the mfcc metrics; the CLI still
    printed `model: DIR/model`, and `predict DIR` used the stale model."""
    out = tmp_path / "run"
    assert _train(synth_corpus, out, tiny_backbone) == 0
    assert (out / "model" / "saved_model").is_dir()
    capsys.readouterr()
    # a late fusion exports no model (mfcc does since 0.3: a model on its default statistics)
    assert _train(synth_corpus, out, tiny_backbone, "--method", "fusion") == 0
    printed = capsys.readouterr().out
    assert "model: " not in printed and "no model exported: method 'fusion'" in printed
    assert not (out / "model").exists()
    assert json.loads((out / "metrics.json").read_text())["method"] == "fusion"
    # 14. predict on it says why there is no model and what to do
    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    assert main(["predict", str(out), str(wav)]) == 2
    line = _one_error_line(capsys.readouterr().err, "predict")
    assert "a run of method 'fusion', which exports no model" in line and "--method frozen" in line


def test_results_soundlib_did_not_write_are_not_replaced(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """`train`/`evaluate --out DIR` silently replaced the user's own metrics.json, predictions.csv, results.json."""
    mine = {"metrics.json": '{"accuracy": "my thesis number"}\n', "predictions.csv": "a,b\n1,2\n",
            "results.json": "[1, 2, 3]\n"}
    for command, name in (("train", "metrics.json"), ("evaluate", "results.json")):
        out = tmp_path / command
        out.mkdir()
        for n, text in mine.items():
            (out / n).write_text(text)
        args = [command, str(synth_corpus), "--out", str(out), "--backbone", str(tiny_backbone), *FAST]
        args += ["--test-fold", "1"] if command == "train" else ["--folds", "1"]
        assert main(args) == 2
        line = _one_error_line(capsys.readouterr().err, command)
        assert "holds files soundlib did not write (metrics.json, predictions.csv, results.json)" in line
        assert "--overwrite" in line
        assert {n: (out / n).read_text() for n in mine} == mine
        assert main([*args, "--overwrite"]) == 0  # asked for: only the run's own files are replaced
        assert json.loads((out / name).read_text())["variant"] == "mel32"
        assert json.loads((out / "soundlib_run.json").read_text())["state"] == "complete"
        assert main(args) == 0  # now soundlib's own folder


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """Two `train --out DIR` at once mixed their files (metrics of one, predictions of the other)."""
    from soundlib.atomic import file_lock

    out = tmp_path / "run"
    assert _train(synth_corpus, out, tiny_backbone) == 0
    stamp = (out / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    with file_lock(out / ".soundlib_run.lock"):  # what a run writing the folder holds
        assert _train(synth_corpus, out, tiny_backbone) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "another soundlib process is writing a run into this folder" in line
    assert (out / "metrics.json").stat().st_mtime_ns == stamp  # untouched


# ---------------------------------------------------------------------------
# 4. Sweeps resumed over changed data


def test_sweep_reruns_runs_whose_data_changed(tmp_path):
    """Dropping metadata rows (or changing a clip's audio) and re-running the sweep said "already complete"."""
    from soundlib.evaluation.metrics import RunMetrics
    from soundlib.sweep import SweepConfig
    from soundlib.sweep.driver import _plan, _prepare_dataset

    rows = [(f"{c}{i}.wav", c, 1 + i % 2) for c in "ab" for i in range(6)]
    manifest = tone_manifest(tmp_path / "data", rows)
    config = SweepConfig.from_dict({"dataset": str(manifest), "folds": [1], "methods": ["mfcc"],
                                    "variants": [{"name": "v", "base": "mel", "duration": 1.0}]})
    out = tmp_path / "out"

    def todo() -> list:
        ds_path, ds, cfg = _prepare_dataset(config, out, progress=False)
        plan = _plan(cfg, ds, ds_path, out, "{}", None)
        for task in plan.todo:  # pretend it ran: what a finished run leaves
            run_dir = Path(task.check["run_dir"])
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "params.json").write_text(json.dumps(task.check["record"]))
            (run_dir / "train.ipynb").write_text("{}")
            RunMetrics(variant="v", test_fold=1, accuracy=1.0, macro_f1=1.0).write(run_dir)
        return plan.todo

    assert len(todo()) == 1
    assert todo() == []  # unchanged: complete
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-3]) + "\n")  # 3 rows dropped
    assert len(todo()) == 1
    assert todo() == []
    clip = tmp_path / "data" / "a0.wav"
    write_wav(clip, tone(4321, seconds=1.0, seed=9))  # same name, label and fold; other audio
    assert len(todo()) == 1


# ---------------------------------------------------------------------------
# 5. Derived model files


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 4:len(data) // 4 + 4096] = bytes(b ^ 0xFF for b in data[len(data) // 4:len(data) // 4 + 4096])
    path.write_bytes(bytes(data))


def test_damaged_derived_models_are_rebuilt_with_a_warning(tmp_path, monkeypatch):
    """Flipping 4 KiB of the cached LiteRT model gave wrong embeddings (exit 0); a truncated one failed every later
    run and was never rebuilt; the BirdNET embedding model likewise."""
    from soundlib.embedders import litert
    from soundlib.embedders.backbones import BackboneInfo
    from soundlib.embedders import birdnet

    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    built: list[Path] = []
    blob = bytes(range(256)) * 64  # 16 KiB "model"

    def fake_convert(savedmodel, out, *, quantization="float", calibration=None, **kw):
        built.append(Path(out))
        Path(out).write_bytes(blob)

    monkeypatch.setattr(litert, "convert", fake_convert)
    monkeypatch.setattr(litert, "convert_embedded", lambda out: fake_convert(None, out))  # (the float model's way)
    info = BackboneInfo("efficientnet_lite0", "efficientnet_lite0@test", tmp_path / "cache" / "backbones" / "bb",
                        (224, 224))
    path = litert.ensure_model(info)
    assert path.read_bytes() == blob and len(built) == 1
    assert litert.ensure_model(info) == path and len(built) == 1  # intact: used as it is
    for damage in (_damage, lambda p: p.write_bytes(p.read_bytes()[:1000])):
        damage(path)
        with pytest.warns(SoundlibWarning, match=rf"{path.name}: LiteRT model of efficientnet_lite0 does not match "
                                                 "the SHA-256 recorded"):
            assert litert.ensure_model(info) == path
        assert path.read_bytes() == blob
    assert len(built) == 3

    # BirdNET's derived model: a damaged copy in the cache (here from before the checksums) is rebuilt
    source = tmp_path / "BirdNET.tflite"
    source.write_bytes(b"birdnet" * 100)
    derived = (tmp_path / "cache" / "backbones" /
               f"birdnet-2.4-embedding-{hashlib.sha256(source.read_bytes()).hexdigest()[:16]}.tflite")
    derived.parent.mkdir(parents=True, exist_ok=True)
    derived.write_bytes(b"truncated")
    monkeypatch.setattr(birdnet, "_write_embedding_model", lambda src, out: Path(out).write_bytes(blob[::-1]),
                        raising=False)
    with pytest.warns(SoundlibWarning, match=rf"{derived.name}: BirdNET embedding model has no recorded SHA-256"):
        assert birdnet._derived_model(source) == derived
    assert derived.read_bytes() == blob[::-1]
    _damage(derived)
    with pytest.warns(SoundlibWarning, match="does not match the SHA-256 recorded"):
        birdnet._derived_model(source)
    assert derived.read_bytes() == blob[::-1]


# ---------------------------------------------------------------------------
# 8. File names that are not valid UTF-8


def test_file_names_that_are_not_utf8_work_everywhere(tmp_path, capsys, exported_model, tiny_backbone, mel32):
    """A clip named `caf\\xe9.wav` (Latin-1 on a UTF-8 system): UnicodeEncodeError in hashes.py (embed, train,
    evaluate); featurize and predict rejected a valid WAV."""
    ds = tmp_path / "ds"
    odd = os.fsdecode(b"caf\xe9.wav")
    for label, freq in (("a", 300), ("b", 3000)):
        for i in range(4):
            write_wav(ds / label / f"{i}.wav", tone(freq + 50 * i, seed=i))
    clip = ds / "a" / odd
    os.rename(ds / "a" / "0.wav", clip)
    assert main(["embed", str(ds), "--variant", "mel32", "--backbone", str(tiny_backbone), "--quiet"]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert main(["featurize", str(ds), "--out", str(tmp_path / "pics"), "--quiet"]) == 0
    assert "8 written" in capsys.readouterr().out and (tmp_path / "pics" / "a" / (odd + ".png")).is_file()
    assert main(["predict", str(exported_model), str(clip), "--top-k", "1", "--csv", str(tmp_path / "p.csv")]) == 0
    cap = capsys.readouterr()
    assert "caf\\udce9.wav" in cap.out and "error" not in cap.err
    assert os.fsencode(clip) in (tmp_path / "p.csv").read_bytes()  # the name's own bytes
    assert main(["evaluate", str(ds), "--out", str(tmp_path / "ev"), "--backbone", str(tiny_backbone), *FAST,
                 "--k-folds", "2"]) == 0
    assert os.fsencode(clip) in (tmp_path / "ev" / "predictions.csv").read_bytes()


# ---------------------------------------------------------------------------
# 9. Outputs of the wrong kind


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("synth: {clips_per_class: 2}\n")
    return path


@pytest.mark.parametrize("case", ["predict --csv folder", "predict --csv /proc", "train --out file",
                                  "train --out /proc", "evaluate --out under a file", "featurize --out file",
                                  "sweep --out file", "gallery out_dir file"])
def test_outputs_of_the_wrong_kind_are_one_line_errors(tmp_path, capsys, case, exported_model, synth_corpus,
                                                       tiny_backbone, mel32):
    """`--csv` a folder, `--out` a file, a path under /proc: a raw OSError from atomic.py (a traceback)."""
    command = case.split()[0]
    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    file = tmp_path / "file"
    file.write_text("mine\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    where = {"folder": folder, "/proc": Path("/proc/soundlib-test.csv"), "file": file,
             "under a file": file / "out"}[case.split(maxsplit=2)[-1]]
    train = ["--backbone", str(tiny_backbone), *FAST]
    args = {"predict": ["predict", str(exported_model), str(wav), "--csv", str(where)],
            "train": ["train", str(synth_corpus), "--test-fold", "1", "--out", str(where), *train],
            "evaluate": ["evaluate", str(synth_corpus), "--out", str(where), "--folds", "1", *train],
            "featurize": ["featurize", str(synth_corpus), "--out", str(where), "--variant", "mel32", "--quiet"],
            "sweep": ["sweep", str(_sweep_file(tmp_path)), "--out", str(where), "--quiet"],
            "gallery": ["gallery", str(wav), str(where)]}[command]
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err, command)
    assert f"cannot write {where}" in line
    assert any(words in line for words in ("is a folder, expected a file", "is a file, expected a folder",
                                           "is a file, not a folder", "cannot create files in /proc"))
    assert file.read_text() == "mine\n" and not list(folder.iterdir())  # nothing half-done


def test_cache_dir_that_is_a_file_is_a_one_line_error(tmp_path, capsys, monkeypatch, synth_corpus, tiny_backbone,
                                                      mel32):
    """`SOUNDLIB_CACHE_DIR` naming a regular file: NotADirectoryError."""
    blocked = tmp_path / "cache"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(blocked))
    assert main(["embed", str(synth_corpus), "--variant", "mel32", "--backbone", str(tiny_backbone), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err, "embed")
    assert f"$SOUNDLIB_CACHE_DIR={blocked}: {blocked} is a file, expected a folder" in line
    from soundlib.embedders.backbones import resolve_backbone

    with pytest.raises(ConfigError, match="is a file, expected a folder"):  # was NotADirectoryError on export
        resolve_backbone("efficientnet_lite0")
    assert blocked.read_text() == "not a folder"


def test_notebooks_into_a_file_or_over_a_folder_copy_nothing(tmp_path, capsys):
    """`soundlib notebooks DIR` with DIR a file: a traceback; a folder in a notebook's place: a half-done copy."""
    file = tmp_path / "nb"
    file.write_text("mine\n")
    assert main(["notebooks", str(file)]) == 2
    assert "is a file, expected a folder" in _one_error_line(capsys.readouterr().err, "notebooks")
    assert file.read_text() == "mine\n"
    d = tmp_path / "d"
    (d / "train.ipynb").mkdir(parents=True)  # second in the list: the first would be copied, then a traceback
    assert main(["notebooks", str(d)]) == 2
    assert "train.ipynb: it is a folder, expected a file" in _one_error_line(capsys.readouterr().err, "notebooks")
    assert sorted(p.name for p in d.iterdir()) == ["train.ipynb"]


# ---------------------------------------------------------------------------
# 11a. Named pipes


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_predict_refuses_a_named_pipe_instead_of_blocking(tmp_path, exported_model):
    """`predict MODEL x.wav` with x.wav a named pipe waited forever for a writer."""
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    model = load_model(exported_model)
    pipe = tmp_path / "x.wav"
    os.mkfifo(pipe)
    got: list = []
    worker = threading.Thread(target=lambda: got.append(predict(model, [pipe])), daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader, so that the thread ends
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(timeout=60)
        pytest.fail("predict blocked on a named pipe")
    rows, failures = got[0]
    assert rows == [] and failures == [(pipe, f"{pipe}: is a named pipe, not a regular file; expected an audio file "
                                              "(not read)")]


# ---------------------------------------------------------------------------
# 12. A relative SOUNDLIB_CACHE_DIR in a sweep


def test_relative_cache_dir_is_one_cache_for_every_run(tmp_path, monkeypatch):
    """A relative `SOUNDLIB_CACHE_DIR` gave every sweep run its own cache inside its run folder."""
    from soundlib.sweep.driver import _env

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", "relative-cache")
    assert _env()["SOUNDLIB_CACHE_DIR"] == str(tmp_path / "relative-cache")


# ---------------------------------------------------------------------------
# 13. Leftovers of killed sweeps


def test_leftovers_of_killed_sweeps_are_cleaned_and_task_files_are_private(tmp_path, monkeypatch):
    """After `kill -9` of a sweep, its task files, kernel connection files (HMAC keys) and TensorFlow temporary
    folders stayed in $TMPDIR forever."""
    import tempfile

    from soundlib import sweep
    from soundlib.sweep import processes as tasks

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(tasks, "_TEMP", None, raising=False)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp / f"soundlib-sweep-{gone.pid}-x1"  # a killed sweep's folder
    (stale / "task-1" / "tmpabcd").mkdir(parents=True)
    (stale / "task-1" / "kernel.json").write_text('{"key": "secret"}')
    live = tmp / f"soundlib-sweep-{os.getppid()}-x2"  # a running sweep's folder
    live.mkdir()
    legacy = tmp / "soundlib-sweep-ab12cd34.task.json"  # soundlib <= 0.2 wrote them here
    legacy.write_text("{}")
    os.utime(legacy, (OLD, OLD))
    with pytest.raises(ConfigError, match="does not exist"):  # the next sweep cleans up first
        sweep.run(sweep.SweepConfig(dataset=tmp_path / "missing"), out_dir=tmp_path / "out", progress=False)
    assert not stale.exists() and not legacy.exists() and live.is_dir()

    from soundlib.sweep.tasks import run_task

    result = run_task({"kind": "nothing", "label": "t", "log": str(tmp_path / "t.log")})
    assert result["status"] == "failed" and "unknown task kind" in result["evalue"]
    mine = [p for p in tmp.iterdir() if p.name.startswith(f"soundlib-sweep-{os.getpid()}-")]
    assert len(mine) == 1 and stat.S_IMODE(mine[0].stat().st_mode) == 0o700  # private: keys live there
    assert not list(mine[0].iterdir())  # the task's files are gone with the task
    assert sorted(tmp.iterdir()) == sorted([live, mine[0]])  # and nothing else was left in $TMPDIR


@pytest.mark.slow
@pytest.mark.parametrize("signum", [15, 9])
def test_sweep_stopped_with_sigterm_or_kill_9_leaves_no_task_files(tmp_path, monkeypatch, signum, synth_corpus,
                                                                   tiny_backbone):
    """The real thing: a sweep stopped in the middle of a run. SIGTERM now cleans up at once; after `kill -9` the
    private folder (task file, the kernel's connection file) stays until the next sweep starts."""
    import signal
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    params = tmp_path / "s.yaml"
    params.write_text(f"dataset: {synth_corpus}\nbackbone: {tiny_backbone}\nfolds: [1, 2]\nexport_model: false\n"
                      "train: {epochs: 2}\nvariants: [{name: t, base: mel, height: 32, width: 32, duration: 1.0}]\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "soundlib.cli", "sweep", str(params), "--out", str(out), "--quiet"],
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*/*/fold*/.train.*.tmp.ipynb")):  # a run's notebook is executing
            assert proc.poll() is None and time.monotonic() < deadline, "no run started in time"
            time.sleep(0.1)
        time.sleep(2)  # its kernel is up
        assert any(p.name.endswith(".json") for p in tmp.rglob("*"))  # the task file and the connection file
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(2)  # the task process and the kernel follow their parent

    def left() -> list[str]:
        return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.name.endswith(".json")
                      or p.name.startswith("soundlib-sweep-"))

    if signum == signal.SIGTERM:
        assert left() == []
        return
    assert left()  # kill -9: nothing could run; the next sweep cleans up
    from soundlib.sweep.processes import clean_stale_temp

    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    clean_stale_temp()
    assert left() == []


# ---------------------------------------------------------------------------
# 14. Unclear messages


def test_unusable_hash_index_is_one_warning_line_naming_it(tmp_path, capsys, monkeypatch, synth_corpus,
                                                           tiny_backbone, mel32):
    """A corrupt hash index printed Python's raw two-line RuntimeWarning."""
    from soundlib.audio import hashes

    monkeypatch.setattr(hashes, "_memo", {})  # hash the corpus again: through the index
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "audio_hashes.sqlite").write_bytes(b"not a database" * 100)
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(cache))
    assert main(["embed", str(synth_corpus), "--variant", "mel32", "--backbone", str(tiny_backbone), "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "hash index" in line or "hashes.py" in line]
    assert lines == [f"soundlib embed: warning: {cache / 'audio_hashes.sqlite'}: cannot use the audio hash index "
                     "(file is not a database); hashing the audio files without it (slower, same results)"], err


def test_truncated_wav_is_labelled_with_a_warning(tmp_path, capsys, exported_model):
    """A WAV cut in half (an interrupted copy) was labelled without a word."""
    wav = write_wav(tmp_path / "cut.wav", tone(440, seconds=1.0))
    data = wav.read_bytes()
    wav.write_bytes(data[:data.index(b"data") + 8 + 2 * 11025])  # the header and half of the 22050 frames
    assert main(["predict", str(exported_model), str(wav), "--top-k", "1"]) == 0
    err = capsys.readouterr().err
    assert (f"soundlib predict: warning: {wav}: truncated WAV file: its header declares 44100 bytes of audio but the "
            "file holds 22050; 22050 bytes (11025 frames, 0.5 s) are missing") in err
    assert err.count("truncated WAV") == 1


def test_method_folds_outside_the_sweeps_folds_are_an_error(tmp_path):
    """A method's `folds:` naming folds the sweep does not run gave 0 runs and exit 0; `folds: all` gave 0 too."""
    from soundlib.sweep import SweepConfig

    with pytest.raises(ConfigError, match=r"methods: 'mfcc': folds \[5\] are not among the sweep's test folds"):
        SweepConfig.from_dict({"synth": True, "folds": [1, 2], "methods": [{"name": "mfcc", "folds": [5]}]})
    config = SweepConfig.from_dict({"synth": True, "folds": [1, 2], "methods": [{"name": "mfcc", "folds": "all"}]})
    assert config.method_folds("mfcc", (1, 2)) == (1, 2)
    # with the sweep's folds known only from the dataset: checked once they are
    from soundlib.sweep.driver import _prepare_dataset

    rows = [(f"{c}{i}.wav", c, 1 + i % 2) for c in "ab" for i in range(4)]
    manifest = tone_manifest(tmp_path / "data", rows)
    config = SweepConfig.from_dict({"dataset": str(manifest), "methods": [{"name": "mfcc", "folds": [3]}]})
    with pytest.raises(ConfigError, match=r"folds \[3\] are not among the sweep's test folds \[1, 2\]"):
        _prepare_dataset(config, tmp_path / "out", progress=False)


def test_repeated_method_option_is_refused(capsys, synth_corpus, tmp_path):
    """`--method-option head=softmax --method-option head=logistic` silently kept the last."""
    assert main(["train", str(synth_corpus), "--test-fold", "1", "--out", str(tmp_path / "o"),
                 "--method-option", "head=softmax", "--method-option", "head=logistic"]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "--method-option head: given more than once" in line
    assert not (tmp_path / "o").exists()
