"""Fault injection, part 3: crashes, hangs and unclear messages become clear errors; permissions follow the umask.

Each test reproduces one case of issue 9 ("Crashes and hangs that must become clear errors") and fails
on soundlib before the fix.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.errors import ConfigError, FeatureError, SoundlibWarning

from ..conftest import tone, write_csv, write_wav
from .conftest import FAST, run_unprivileged, unreadable

# ---------------------------------------------------------------------------
# Workers die with their parent


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux-only")
def test_kill_9_of_featurize_takes_its_workers_with_it(tmp_path):
    """`kill -9` of `featurize --jobs N` left its workers running forever (about 180 MB each)."""
    for i in range(40):
        write_wav(tmp_path / "in" / f"{i}.wav", tone(200 + 20 * i, seconds=4.0, seed=i))
    proc = subprocess.Popen([sys.executable, "-m", "soundlib.cli", "featurize", str(tmp_path / "in"), "--out",
                             str(tmp_path / "out"), "--jobs", "2", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [p for p in _children(proc.pid)
                       if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
            assert proc.poll() is None, "featurize finished before its workers were seen"
            time.sleep(0.05)
        assert len(workers) >= 2, "no worker processes appeared"
        time.sleep(0.5)  # let them start working
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"workers {survivors} outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:  # only the processes this test started
            if _alive(p):
                os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------------------
# Tracebacks that became one-line errors


def test_symlink_loops_are_reported_not_raised(tmp_path, capsys):
    """A link loop in an input folder raised 'RuntimeError: Symlink loop' (a traceback)."""
    d = tmp_path / "in"
    write_wav(d / "good.wav", tone(440))
    (d / "x.wav").symlink_to("y.wav")
    (d / "y.wav").symlink_to("x.wav")
    (d / "up").symlink_to("..")  # a folder link back up: never followed
    assert main(["featurize", str(d), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert "1 written" in cap.out and "x.wav: a link that loops or leads nowhere" in cap.err
    assert "Traceback" not in cap.err
    # a folder-per-class dataset: the loops are skipped with a warning naming them
    from soundlib.audio.loaders import load_dataset

    for label in ("dog", "cat"):
        write_wav(tmp_path / "ds" / label / "a.wav", tone(300 if label == "dog" else 900))
    (tmp_path / "ds" / "dog" / "loop.wav").symlink_to("loop.wav")
    with pytest.warns(SoundlibWarning, match=r"loop\.wav"):
        assert len(load_dataset(tmp_path / "ds")) == 2


def test_latin1_manifest_names_the_file_and_the_encoding(tmp_path, capsys):
    """A Latin-1 manifest gave a UnicodeDecodeError traceback."""
    manifest = tmp_path / "lista.csv"
    manifest.write_bytes("path,label\nperro_ladrando.wav,perro\nse\u00f1al.wav,se\u00f1al\n".encode("latin-1"))
    assert main(["evaluate", str(manifest), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("soundlib evaluate: error:") and "lista.csv: cannot be read as UTF-8" in err
    assert "line 3" in err and "Traceback" not in err


def test_unwritable_cache_falls_back_with_a_warning(tmp_path, capsys, synth_corpus, tiny_backbone, mel32):
    """A read-only or unwritable cache raised an OSError traceback."""
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    code = main(["embed", str(synth_corpus), "--variant", "mel32", "--backbone", str(tiny_backbone),
                 "--cache-dir", str(blocked), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0 and "computed" in cap.out
    assert "soundlib embed: warning: cannot write to the embedding cache" in cap.err and "Traceback" not in cap.err


def test_read_only_cache_is_read_and_not_written(tmp_path):
    """A real read-only cache folder (permissions, not root's privileges): entries read, no write attempted twice."""
    code = f"""
import numpy as np, warnings
from soundlib.embedding.cache import EmbeddingCache
cache = EmbeddingCache({str(tmp_path / 'ro')!r})
folder = cache.root / 'f'
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    cache.put(folder, 'ab' * 32, np.ones(4, np.float32))
    cache.put(folder, 'cd' * 32, np.ones(4, np.float32))
    got = cache.get(folder, 'ee' * 32, dim=4)
    locked = [cache.get(folder, h * 32, dim=4) for h in ('ff', '11')]
import json
print(json.dumps([[str(w.message) for w in caught], cache.writable, got.tolist(), locked]))
"""
    from soundlib.embedding.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "ro")
    for h, value in (("ee", 2.0), ("ff", 3.0), ("11", 4.0)):
        cache.put(cache.root / "f", h * 32, np.full(4, value, np.float32))
    for p in sorted((tmp_path / "ro").rglob("*"), reverse=True) + [tmp_path / "ro"]:
        p.chmod(0o555 if p.is_dir() else 0 if p.name[:2] in ("ff", "11") else 0o444)
    try:
        out = run_unprivileged(code)
    finally:
        for p in [tmp_path / "ro", *sorted((tmp_path / "ro").rglob("*"))]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert out.returncode == 0, out.stderr[-2000:]
    messages, writable, got, locked = json.loads(out.stdout)
    assert (writable, got, locked) == (False, [2.0] * 4, [None, None])
    assert len(messages) == 2  # one warning for the writes, one for the unreadable entries
    assert "cannot write to the embedding cache" in messages[0] and "permission denied" in messages[0]
    assert "cannot read the embedding cache" in messages[1] and "recomputing" in messages[1]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (its data is not needed to trigger the size checks)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@pytest.mark.parametrize("size", [20000, 10000])
def test_huge_picture_is_skipped_and_the_batch_finishes(tmp_path, exported_model, synth_corpus, size):
    """A 20000x20000 PNG aborted the whole predict batch with Pillow's DecompressionBombError."""
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(size, size))
    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    rows, failures = predict(load_model(exported_model), [bomb, wav], top_k=1)
    assert [r["input"] for r in rows] == [str(wav)]
    assert len(failures) == 1 and failures[0][0] == bomb
    assert "bomb.png: picture" in failures[0][1] and "soundlib decodes (4096x4096); not read" in failures[0][1]


@pytest.mark.parametrize("changes, words", [
    ({"n_fft": 2**24}, "n_fft must be in [16, 65536]"),
    ({"sr": 10**9}, "sr must be in [1000, 192000]"),
    ({"hop_length": 1, "duration": 600}, "make a spectrogram of"),
    ({"n_mels": 10**6}, "n_mels must be in [1, 1024]"),
])
def test_absurd_spec_values_are_refused_before_allocating(changes, words):
    """Spec values that would allocate 100+ GiB were accepted (and then ran out of memory)."""
    from soundlib.pictures.variants import resolve_variant

    with pytest.raises((ConfigError, FeatureError), match=r"sweep\.yaml: variants.*" + words.replace("[", r"\[")):
        resolve_variant({"name": "big", "base": "mel", **changes}, where="sweep.yaml: variants")


# ---------------------------------------------------------------------------
# Unclear messages


def test_folder_with_a_sub_folder_is_still_a_folder_of_audio(tmp_path, capsys):
    """A folder of audio that also held any sub-folder said "no audio files found"."""
    d = tmp_path / "recordings"
    write_wav(d / "a.wav", tone(300))
    write_wav(d / "b.wav", tone(600))
    (d / "notes").mkdir()
    assert main(["featurize", str(d), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert "2 written" in capsys.readouterr().out
    # as a dataset (folder per class), the message says what was found and where
    assert main(["evaluate", str(d), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "it holds 2 audio file(s) directly (a.wav, b.wav), which belong to no class" in err
    assert "sub-folders: notes" in err


def test_unreadable_file_says_permission_denied(tmp_path):
    """An unreadable audio file said "System error." instead of "permission denied"."""
    wav = unreadable(write_wav(tmp_path / "locked.wav", tone()))
    manifest = unreadable(write_csv(tmp_path / "locked.csv", ["path", "label"], [["a.wav", "x"]]))
    out = run_unprivileged(f"""
from soundlib.audio.clips import load_audio
from soundlib.audio.loaders import load_dataset
from soundlib.errors import SoundlibError
for f in (lambda: load_audio({str(wav)!r}), lambda: load_dataset({str(manifest)!r})):
    try:
        f()
    except SoundlibError as exc:
        print(exc)
""")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"{wav}: cannot read the file: permission denied"
    assert lines[1] == f"{manifest}: cannot read the metadata file: permission denied"


@pytest.mark.parametrize("k", ["0", "-1", "two"])
def test_top_k_must_be_positive(tmp_path, capsys, k):
    """`--top-k 0` printed "no audio or picture files found"; `--top-k -1` listed all labels but one."""
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path), str(tmp_path), "--top-k", k])
    assert exc.value.code == 2 and "--top-k: must be a positive integer" in capsys.readouterr().err


def test_predict_library_call_checks_top_k(exported_model, synth_corpus):
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    with pytest.raises(ConfigError, match="top_k must be a positive integer"):
        predict(load_model(exported_model), [synth_corpus], top_k=0)


# ---------------------------------------------------------------------------
# Permissions follow the umask


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_files_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    """Files were written 0600 and folders 0700 whatever the umask (a shared cache was unreadable to others)."""
    from soundlib import atomic
    from soundlib.pictures.featurize import write_png
    from soundlib.audio.synth import SynthConfig, generate_corpus

    old = os.umask(mask)
    try:
        json_file = atomic.write_json_atomic(tmp_path / "a" / "x.json", {"a": 1})
        png = write_png(tmp_path / "p.png", np.zeros((16, 16, 3), np.uint8))
        corpus = generate_corpus(tmp_path / "synth", SynthConfig(clips_per_class=1, duration=0.5,
                                                                 slices_per_recording=1, n_folds=2), progress=False)
        wav = next(corpus.rglob("*.wav"))
        for f in (json_file, png, wav, corpus / "metadata" / "UrbanSound8K.csv"):
            assert stat.S_IMODE(f.stat().st_mode) == file_mode, f
        assert stat.S_IMODE(atomic.make_temp_dir(tmp_path, ".t").stat().st_mode) == dir_mode
    finally:
        os.umask(old)


def test_exported_model_follows_the_umask(exported_model):
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.relative_to(exported_model): stat.S_IMODE(p.stat().st_mode)
             for p in [exported_model, *exported_model.rglob("*")]}
    want = {p: (0o777 if (exported_model / p).is_dir() else 0o666) & ~mask for p in modes}
    assert modes == want


def test_killed_export_leftover_of_another_live_process_is_kept(tmp_path):
    """Only temporary exports of dead processes (or of soundlib 0.1) are cleaned."""
    from soundlib.models.export import _host, clean_stale_exports

    live = tmp_path / f".model.tmp-{_host()}-{os.getpid()}-abc"
    dead = tmp_path / f".model.tmp-{_host()}-999999999-abc"
    legacy, other = tmp_path / ".model.k2j4_x9q", tmp_path / ".models.keep"
    for d in (live, dead, legacy, other):
        d.mkdir()
    removed = clean_stale_exports(tmp_path / "model")
    assert sorted(p.name for p in removed) == sorted([dead.name, legacy.name])
    assert live.exists() and other.exists()


def test_results_json_lists_warnings_even_when_empty(tmp_path, synth_corpus, tiny_backbone, mel32):
    assert main(["evaluate", str(synth_corpus), "--out", str(tmp_path / "ev"), "--backbone", str(tiny_backbone),
                 *FAST]) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["warnings"] == []
