"""Content hashes of audio files, remembered across processes in a persistent index.

The embedding cache is keyed by the SHA-256 of each audio file's bytes
(:func:`soundlib.embedding.cache.audio_hash` delegates here). Hashing UrbanSound8K (6.6 GB)
in every sweep run process would cost more than the run itself, so hashes are
kept in an SQLite index, ``<soundlib cache>/audio_hashes.sqlite``
(``$SOUNDLIB_CACHE_DIR`` or ``~/.cache/soundlib``), keyed by the file's resolved
path (its bytes: names that are not valid UTF-8 are fine), size, modification
time, status-change time (ctime, ns) and inode: a file that changed, moved or was
replaced is hashed again, even when the new one has the old size and modification
time (``cp -p``, ``touch -r``, ``tar x``, an inode reused after ``rm``: the ctime
cannot be set back). A file changed in the last few seconds is hashed but not
remembered (its times may not change on a further write within the clock's
resolution).

Several processes may read and write the index at once: SQLite's own file
locking serialises writers (rollback journal, not WAL, so that the index also
works on a shared filesystem with working locks), new hashes are written in
batches, and any trouble with the index (locked too long, corrupt, read-only)
falls back to hashing the file, with one warning naming the index file: the
index can make hashing faster, never wrong or failing.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable

__all__ = ["INDEX_FILE", "file_hash", "file_hashes", "sha256_file", "flush", "index_path", "dataset_fingerprint"]

#: The index file's name inside the soundlib cache folder.
INDEX_FILE = "audio_hashes.sqlite"
#: Hashes waiting to be written are flushed once this many have accumulated (and at exit).
_BATCH = 256
#: Files modified less than this many seconds ago are not remembered.
_RACY_SECONDS = 2.0
#: ``hashes_v2``: the path as bytes and the ctime in the key (the table ``hashes`` of soundlib <= 0.2 is not read).
_SCHEMA = ("CREATE TABLE IF NOT EXISTS hashes_v2 (path BLOB PRIMARY KEY, size INTEGER NOT NULL, "
           "mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL)")

#: A file's identity: (resolved path as bytes, size, mtime_ns, ctime_ns, inode).
_Key = tuple[bytes, int, int, int, int]
_lock = threading.RLock()
_memo: dict[_Key, str] = {}


def index_path() -> Path:
    """The index file: ``<soundlib cache>/audio_hashes.sqlite``."""
    from soundlib.config import cache_dir

    return cache_dir() / INDEX_FILE


def sha256_file(path: str | bytes | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Index:
    """One process's connection to the index file, with the rows it has yet to write."""

    def __init__(self, path: Path):
        self.path = path
        self.pid = os.getpid()
        self.pending: dict[bytes, tuple[int, int, int, int, str]] = {}
        self.conn: sqlite3.Connection | None = None
        self.broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self.conn is None and not self.broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
                self.conn = conn
            except (sqlite3.Error, OSError) as exc:
                self._give_up(exc)
        return self.conn

    def _give_up(self, exc: BaseException) -> None:
        from soundlib.errors import warn

        self.broken = True
        self.conn = None
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        warn(f"{self.path}: cannot use the audio hash index ({reason}); hashing the audio files without it "
             "(slower, same results)")

    def lookup(self, keys: list[_Key]) -> dict[bytes, str]:
        """Hashes of the keys the index holds with the same size, mtime, ctime and inode."""
        conn = self._connect()
        found: dict[bytes, str] = {}
        if conn is None or not keys:
            return found
        want = {k[0]: k for k in keys}
        names = list(want)
        try:
            for start in range(0, len(names), 500):
                chunk = names[start:start + 500]
                rows = conn.execute(f"SELECT path, size, mtime_ns, ctime_ns, inode, sha256 FROM hashes_v2 WHERE "
                                    f"path IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for path, size, mtime_ns, ctime_ns, inode, digest in rows:
                    path = bytes(path)
                    if path in want and want[path][1:] == (size, mtime_ns, ctime_ns, inode):
                        found[path] = digest
        except sqlite3.Error as exc:
            self._give_up(exc)
        return found

    def add(self, key: _Key, digest: str) -> None:
        if not self.broken:
            self.pending[key[0]] = (*key[1:], digest)

    def flush(self) -> None:
        if not self.pending:
            return
        conn = self._connect()
        rows = [(path, *rest) for path, rest in self.pending.items()]
        self.pending = {}
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO hashes_v2 (path, size, mtime_ns, ctime_ns, inode, sha256) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._give_up(exc)


_INDEX: _Index | None = None


def _index() -> _Index:
    """This process's index (reopened after a fork or when ``$SOUNDLIB_CACHE_DIR`` changes)."""
    global _INDEX
    path = index_path()
    if _INDEX is None or _INDEX.pid != os.getpid() or _INDEX.path != path:
        if _INDEX is not None and _INDEX.pid == os.getpid():
            _INDEX.flush()
        _INDEX = _Index(path)
    return _INDEX


def _key(path: str | os.PathLike) -> _Key:
    p = os.fsencode(Path(path).resolve())
    st = os.stat(p)
    return p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _hashes(keys: list[_Key]) -> list[str]:
    """Digests of ``keys`` (from :func:`_key`): memo, then the index, then the files themselves."""
    todo = [k for k in dict.fromkeys(keys) if k not in _memo]
    if todo:
        index = _index()
        found = index.lookup(todo)
        racy = time.time_ns() - int(_RACY_SECONDS * 1e9)
        for k in todo:
            digest = found.get(k[0])
            if digest is None:
                digest = sha256_file(k[0])
                if max(k[2], k[3]) < racy:
                    index.add(k, digest)
                    if len(index.pending) >= _BATCH:
                        index.flush()
            _memo[k] = digest
    return [_memo[k] for k in keys]


def file_hashes(paths: Iterable[str | os.PathLike]) -> list[str]:
    """SHA-256 (hex) of each file's bytes, through the persistent index.

    Parameters
    ----------
    paths : iterable of path-like

    Returns
    -------
    list of str
        One 64-character hex digest per path, in order. New hashes are written to the index
        before returning.

    Raises
    ------
    OSError
        A file cannot be read (missing, unreadable).
    """
    with _lock:
        digests = _hashes([_key(p) for p in paths])
        flush()
        return digests


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of one file's bytes, through the persistent index.

    A new hash is written to the index with the next batch (every 256 new hashes, at
    :func:`flush` and at exit), so that hashing files one by one stays cheap.
    """
    with _lock:
        return _hashes([_key(path)])[0]


def flush() -> None:
    """Write the hashes this process computed and has not written yet (also done at exit)."""
    with _lock:
        if _INDEX is not None and _INDEX.pid == os.getpid():
            _INDEX.flush()


atexit.register(flush)


def dataset_fingerprint(ds) -> str:
    """The identity of a dataset's contents: the classes and every clip's path (relative to the dataset's
    root), label, fold, recording group and audio content (SHA-256, through the index, so a dataset hashed
    once is not read again). A file that cannot be read counts by its name alone. 20 hex digits.

    A sweep tells a run over changed data by it; ``evaluate`` records it in ``results.json`` so that
    ``train --cv-from`` can refuse an evaluation of other data."""
    h = hashlib.sha256(json.dumps(list(ds.classes)).encode())
    for clip in ds.clips:
        try:
            digest = file_hash(clip.path)
        except OSError:
            digest = "unreadable"
        rel = os.path.relpath(clip.path, ds.root) if ds.root else str(clip.path)
        h.update(json.dumps([os.fsencode(rel).hex(), clip.label, clip.fold, clip.group, digest]).encode())
    flush()
    return h.hexdigest()[:20]
