"""The persistent audio-hash index (soundlib.audio.hashes): right digests, reuse across processes, safe fallbacks."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soundlib.audio import hashes
from soundlib.errors import SoundlibWarning

OLD = time.time() - 3600  # an mtime well outside the "recently modified" window


def write(path: Path, data: bytes, *, mtime: float | None = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(d))
    monkeypatch.setattr(hashes, "_memo", {})
    # the files are written just now, so their ctime is in the "recently changed" window: remember them anyway
    monkeypatch.setattr(hashes, "_RACY_SECONDS", 0.0)
    return d


def rows(cache_dir: Path) -> dict[str, str]:
    with sqlite3.connect(cache_dir / hashes.INDEX_FILE) as conn:
        return {os.fsdecode(bytes(path)): digest
                for path, digest in conn.execute("SELECT path, sha256 FROM hashes_v2").fetchall()}


def in_other_process(cache_dir: Path, paths, *, forbid_hashing: bool = False) -> list[str]:
    """Hashes computed by a fresh Python process (optionally one that cannot read file contents)."""
    code = ("import sys\nfrom soundlib.audio import hashes\n"
            + ("hashes.sha256_file = lambda p: (_ for _ in ()).throw(AssertionError(f'hashed {p}'))\n"
               if forbid_hashing else "")
            + "print('\\n'.join(hashes.file_hashes(sys.argv[1:])))")
    out = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True,
                         env={**os.environ, "SOUNDLIB_CACHE_DIR": str(cache_dir)})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_digests_are_sha256_and_reused_by_other_processes(tmp_path, cache_dir):
    files = [write(tmp_path / f"a{i}.wav", bytes([i]) * (1000 + i)) for i in range(5)]
    expected = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert hashes.file_hashes(files) == expected
    assert [hashes.file_hash(f) for f in files] == expected
    assert rows(cache_dir) == {str(f.resolve()): h for f, h in zip(files, expected)}
    # a new process answers from the index without reading a single file
    assert in_other_process(cache_dir, files, forbid_hashing=True) == expected


def test_changed_replaced_or_fresh_files_are_hashed_again(tmp_path, cache_dir, monkeypatch):
    f = write(tmp_path / "clip.wav", b"one")
    first = in_other_process(cache_dir, [f])[0]
    write(f, b"two", mtime=OLD + 10)  # same size and inode, new content and mtime
    assert in_other_process(cache_dir, [f])[0] == hashlib.sha256(b"two").hexdigest() != first
    # replaced by another file with the same size and mtime: only the inode tells
    tmp = write(tmp_path / "new.wav", b"six", mtime=OLD + 10)
    os.replace(tmp, f)
    assert in_other_process(cache_dir, [f])[0] == hashlib.sha256(b"six").hexdigest()
    # a file changed just now is hashed but not remembered (its times may not move on the next write)
    monkeypatch.setattr(hashes, "_RACY_SECONDS", 2.0)
    fresh = write(tmp_path / "fresh.wav", b"fresh", mtime=None)
    assert hashes.file_hashes([fresh]) == [hashlib.sha256(b"fresh").hexdigest()]
    assert str(fresh.resolve()) not in rows(cache_dir)


def test_missing_file_raises_oserror(tmp_path, cache_dir):
    with pytest.raises(OSError):
        hashes.file_hash(tmp_path / "nope.wav")


def test_corrupt_index_falls_back_to_hashing(tmp_path, cache_dir):
    cache_dir.mkdir(parents=True)
    (cache_dir / hashes.INDEX_FILE).write_bytes(b"this is not an sqlite database" * 100)
    f = write(tmp_path / "x.wav", b"abc")
    with pytest.warns(SoundlibWarning, match=r"audio_hashes\.sqlite: cannot use the audio hash index"):
        assert hashes.file_hashes([f]) == [hashlib.sha256(b"abc").hexdigest()]


def test_many_processes_at_once(tmp_path, cache_dir):
    files = [write(tmp_path / "d" / f"{i}.wav", os.urandom(2000)) for i in range(300)]
    expected = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    code = ("import sys\nfrom soundlib.audio import hashes\nhashes._RACY_SECONDS = 0.0  # the files were written just now\n"
            "print('\\n'.join(hashes.file_hashes(sys.argv[1:])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, *map(str, files[i::2] + files[1 - i::2])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "SOUNDLIB_CACHE_DIR": str(cache_dir)}) for i in (0, 1, 0, 1)]
    for i, p in zip((0, 1, 0, 1), procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "cannot use the audio hash index" not in err, err
        assert out.split() == [h for h in expected[i::2] + expected[1 - i::2]]
    assert rows(cache_dir) == {str(f.resolve()): h for f, h in zip(files, expected)}
