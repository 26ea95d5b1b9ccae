"""Atomic file writes: a reader never sees a half-written artifact.

Every file soundlib writes goes through here: the data are written to a
temporary name in the destination folder, flushed, and renamed into place
(``os.replace`` is atomic on one filesystem). On error the temporary file is
removed and the destination is untouched.

Temporary files and folders are created private (``mkstemp``: 0600,
``mkdtemp``: 0700); before they take their final name they get the
permissions an ordinary ``open``/``mkdir`` would have given them under the
process umask (0644 / 0755 under umask 022), so a shared cache or dataset is
readable by the other users the umask allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "atomic_path",
    "make_temp_dir",
    "replace_dir",
    "current_umask",
    "apply_umask",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "write_csv_atomic",
    "jsonable",
    "file_lock",
]


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (the lock keeps soundlib's own threads consistent)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the permissions the umask allows.

    Files get ``0666 & ~umask`` (``0777`` for executables), folders ``0777 & ~umask``:
    what ``open`` and ``mkdir`` would have made, not the private 0600 / 0700 of
    ``mkstemp`` / ``mkdtemp``.
    """
    mask = current_umask()
    path = Path(path)

    def fix(p: str, is_dir: bool) -> None:
        mode = os.stat(p, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            return
        full = 0o777 if is_dir or mode & 0o100 else 0o666
        os.chmod(p, full & ~mask)

    fix(str(path), path.is_dir())
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for d in dirnames:
                fix(os.path.join(dirpath, d), True)
            for f in filenames:
                fix(os.path.join(dirpath, f), False)


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new empty folder in ``parent`` (created if needed) with the permissions the umask allows."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    apply_umask(tmp)
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # EINVAL (filesystem without exchange), ENOSYS...: fall back to two renames


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put the folder ``src`` at ``dst``, replacing what was there, and remove the old one.

    On Linux the two are exchanged in one atomic step, so ``dst`` is never
    missing or half-written; elsewhere (or on filesystems without the exchange)
    the old ``dst`` is renamed aside first, then ``src`` renamed into place.
    ``src`` and ``dst`` must be on one filesystem (make ``src`` beside ``dst``).
    """
    src, dst = Path(src), Path(dst)
    if not (dst.exists() or dst.is_symlink()):
        os.replace(src, dst)
        return dst
    if _exchange(src, dst):
        _remove(src)  # now holds the old dst
        return dst
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    _remove(old)
    os.replace(dst, old)
    os.replace(src, dst)
    _remove(old)
    return dst


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary file lives in the same directory so ``os.replace`` is atomic.
    On error the temporary file (or directory) is removed and ``path`` is untouched.
    What the caller wrote there (a file, or a folder in its place) gets the
    permissions the umask allows before it is renamed (see :func:`apply_umask`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=(suffix if suffix is not None else path.suffix) + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            apply_umask(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if tmp_path.is_dir() and not tmp_path.is_symlink():
            import shutil

            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed and fsync'ed before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (numpy scalars and arrays allowed)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: list[dict], *, fieldnames: list[str] | None = None) -> Path:
    """Write dict rows as CSV (header from ``fieldnames`` or the first row's keys), atomically."""
    import csv
    import io

    buf = io.StringIO()
    fields = fieldnames or (list(rows[0]) if rows else None)
    if fields:
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def jsonable(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars and arrays, paths."""
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the ``with`` block (a no-op when ``path`` is ``None``).

    The lock file's folder is created; the lock is released when the block ends or the process dies,
    so a killed holder never leaves it stuck. On a platform without ``fcntl`` it does not lock.
    """
    if not path:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
