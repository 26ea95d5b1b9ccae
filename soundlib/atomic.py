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

A path that cannot take the output (a folder where a file goes or the reverse,
a file in the middle of the path, a place that takes no files such as
``/proc``, no permission) raises :class:`~soundlib.errors.OutputError` naming
the path and the reason; :func:`check_output_path` finds the same problems
before any work is done, without creating anything.
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

from soundlib.errors import OutputError

__all__ = [
    "atomic_path",
    "special_kind",
    "check_output_path",
    "ensure_dir",
    "output_error",
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


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``lstat``: a broken link counts as existing)."""
    for p in (path, *path.parents):
        try:
            os.lstat(p)
            return p
        except OSError:
            continue
    return Path(path.anchor or ".")


def _obstacle(path: Path, *, folder: bool) -> str | None:
    """What makes ``path`` impossible to write, found by looking (``None`` when nothing visible does)."""
    existing = _nearest_existing(path)
    if existing != path:  # a file where a folder of the path should be
        return None if existing.is_dir() else f"{existing} is a file, not a folder"
    if folder and not path.is_dir():
        return "it is a file, expected a folder"
    if not folder and path.is_dir():
        return "it is a folder, expected a file"
    special = None if folder else special_kind(path)
    return f"it is {special}, not a regular file" if special else None


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it is a named pipe, a device or a socket (renaming a file over it would
    replace the pipe or device itself), else ``None``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return next((name for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
                 if test(mode)), None)


def output_error(path: str | os.PathLike, exc: OSError | None = None, *, folder: bool = False) -> OutputError:
    """The :class:`~soundlib.errors.OutputError` for ``path`` that could not be written (``exc``: why)."""
    path = Path(path)
    why = _obstacle(path, folder=folder)
    if why is None and exc is not None:
        reason = (exc.strerror or str(exc)).lower()
        existing = _nearest_existing(path if folder else path.parent)
        why = f"cannot create files in {existing} ({reason})" if existing.is_dir() and existing != path else reason
    err = OutputError(f"cannot write {path}: {why or 'unknown reason'}")
    if exc is not None:
        err.errno, err.strerror, err.filename = exc.errno, exc.strerror, exc.filename
    return err


def check_output_path(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Check, before any work and without creating anything, that ``path`` can be written.

    ``path`` is a file to write (``folder=False``: written through :func:`atomic_path`, so
    its folder must take new files) or a folder to write into (``folder=True``). Folders
    missing on the way are fine (they are made when writing).

    Raises
    ------
    OutputError
        A folder where a file goes or the reverse, a file in the middle of the path, or a
        folder that takes no new files (no permission, read-only, ``/proc``...).
    """
    path = Path(path)
    why = _obstacle(path, folder=folder)
    if why is not None:
        raise output_error(path, folder=folder)
    where = _nearest_existing(path if folder else path.parent)
    try:  # the only sure test: make a file there (and remove it)
        fd, probe = tempfile.mkstemp(prefix=".soundlib-probe-", dir=where)
    except OSError as exc:
        raise output_error(path, exc, folder=folder) from None
    os.close(fd)
    os.unlink(probe)
    return path


def ensure_dir(path: str | os.PathLike) -> Path:
    """Make the folder ``path`` (and its parents) if needed; :class:`~soundlib.errors.OutputError` if impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc, folder=True) from None
    return path


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new empty folder in ``parent`` (created if needed) with the permissions the umask allows."""
    parent = ensure_dir(parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise output_error(parent / prefix, exc) from None
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
    if special_kind(path):  # a pipe or device is never replaced
        raise output_error(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=(suffix if suffix is not None else path.suffix) + ".tmp",
            dir=path.parent,
        )
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            apply_umask(tmp_path)
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            raise output_error(path, exc, folder=tmp_path.is_dir()) from None
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
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # no space left, quota...
            raise output_error(path, exc) from None
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    File names that are not valid UTF-8 (Python holds their bytes as surrogates) are
    written as their original bytes, as ``ls > file`` would.
    """
    return write_bytes_atomic(path, text.encode("utf-8", errors="surrogateescape"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (numpy scalars and arrays allowed)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: list[dict], *, fieldnames: list[str] | None = None) -> Path:
    """Write dict rows as CSV (header from ``fieldnames`` or the first row's keys), atomically.

    Every text cell, header included, is written by :func:`soundlib.text.csv_cell`: on one line, and
    never as something a spreadsheet would run as a formula (a leading ``'``).
    """
    import csv
    import io

    from soundlib.text import csv_cell

    buf = io.StringIO()
    fields = fieldnames or (list(rows[0]) if rows else None)
    if fields:
        w = csv.writer(buf)
        w.writerow([csv_cell(f) for f in fields])
        for row in rows:
            extra = [k for k in row if k not in fields]
            if extra:
                raise ValueError(f"dict contains fields not in fieldnames: {', '.join(map(repr, extra))}")
            w.writerow([csv_cell(row.get(f, "")) for f in fields])
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
