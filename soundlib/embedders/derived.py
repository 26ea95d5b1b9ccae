"""Derived model files: built once into the soundlib cache, checked on every use, rebuilt when damaged.

soundlib derives some model files from others and caches them for every later
process: the LiteRT copy of the embedded backbone (:mod:`soundlib.embedders.litert`),
the BirdNET model with its embedding as an output
(:mod:`soundlib.embedders.birdnet`). A damaged copy is worse than a missing one:
a few flipped bytes give wrong embeddings without any error (and they are
cached for everyone), a truncated file fails on every later run.

:func:`derived_file` is the one way to get such a file: it builds it when it
is missing, records its SHA-256 beside it (``<file>.sha256``, the format of
``sha256sum``), checks the file against that record on every use (once per
process while the file is unchanged), and rebuilds it, with a warning naming
it, when the two differ or the record is missing. Builders run under a lock
file, so processes sharing a cache build each file once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Callable

from soundlib.atomic import atomic_path, file_lock, write_text_atomic
from soundlib.errors import BackboneError, warn

__all__ = ["derived_file", "checksum_path", "record_checksum"]

#: Files this process found intact: path -> (size, mtime_ns, ctime_ns, inode) when it was checked.
_VERIFIED: dict[str, tuple[int, int, int, int]] = {}

#: Files built for this process only, because the cache could not be written: cache path -> private copy.
_PRIVATE: dict[str, Path] = {}

#: Errors that say the cache cannot be written at all (a private copy is built instead)...
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
#: ... and those that say it is full (one line: free some space).
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)

_CHUNK = 1 << 20


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of a derived file is recorded: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _open_regular(path: Path):
    """``path`` opened for reading when it is a regular file (not through a link, never waiting on a pipe);
    ``None`` when it is anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    fh = open(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        return None
    return fh


def _sha256(path: Path) -> str | None:
    """SHA-256 of the regular file ``path``, streamed; ``None`` when it is not one or cannot be read."""
    fh = _open_regular(path)
    if fh is None:
        return None
    h = hashlib.sha256()
    try:
        with fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _recorded(path: Path) -> str | None:
    fh = _open_regular(checksum_path(path))
    if fh is None:
        return None
    try:
        with fh:
            text = fh.read(4096).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.match(r"^([0-9a-f]{64})\b", text)
    return m[1] if m else None


def _kind(path: Path) -> str | None:
    """What ``path`` is when it cannot be a derived file (``None``: a regular file, or nothing there)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return next((name for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
                 if test(mode)), "not a regular file")


def _problem(path: Path) -> str | None:
    """What is wrong with the derived file ``path`` (``None``: it is there and matches its record)."""
    kind = _kind(path)
    if kind is not None:
        return f"is {kind}, not a regular file"
    stamp = _stamp(path)
    if stamp is None:
        return "missing"
    if _VERIFIED.get(str(path)) == stamp:
        return None
    recorded = _recorded(path)
    if recorded is None:
        return f"has no recorded SHA-256 ({checksum_path(path).name} missing or unreadable)"
    actual = _sha256(path)
    if actual != recorded:
        return (f"does not match the SHA-256 recorded when it was built ({checksum_path(path).name}): "
                f"it was damaged or changed since")
    _VERIFIED[str(path)] = stamp
    return None


def record_checksum(path: str | os.PathLike) -> str:
    """Record the SHA-256 of ``path`` in ``<path>.sha256`` (written atomically); returns it."""
    path = Path(path)
    digest = _sha256(path)
    if digest is None:
        raise BackboneError(f"{path}: cannot record its SHA-256: it is not a readable regular file")
    write_text_atomic(checksum_path(path), f"{digest}  {path.name}\n")
    stamp = _stamp(path)
    if stamp is not None:
        _VERIFIED[str(path)] = stamp
    return digest


def _cannot_write(path: Path, what: str, exc: OSError) -> BackboneError:
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return BackboneError(f"{path}: cannot write the {what} ({reason}); free some space there or set "
                             "$SOUNDLIB_CACHE_DIR to a folder with room, and run again")
    return BackboneError(f"{path}: cannot write the {what} ({reason})")


def _private_copy(path: Path, build: Callable[[Path], object], what: str, exc: OSError) -> Path:
    """The derived file built into a private temporary folder, for this process only (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    done = _PRIVATE.get(str(path))
    if done is not None and done.is_file():
        return done
    try:
        folder = Path(tempfile.mkdtemp(prefix="soundlib-derived-"))
    except OSError as err:
        raise _cannot_write(path, what, err) from None
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    warn(f"{path}: the soundlib cache cannot be written ({exc.strerror or exc}); the {what} is built for this "
         f"run only, in {folder}")
    tmp = folder / path.name
    try:
        build(tmp)
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise _cannot_write(tmp, what, err) from None
    _PRIVATE[str(path)] = tmp
    return tmp


def derived_file(path: str | os.PathLike, build: Callable[[Path], object], *, what: str | None = None) -> Path:
    """The path of a derived file, built with ``build`` when it is missing or does not match its recorded SHA-256.

    Parameters
    ----------
    path : path-like
        Where the file lives (in the soundlib cache).
    build : callable
        ``build(tmp)`` writes the file at the path ``tmp`` (beside ``path``); it then
        takes ``path``'s place atomically and its SHA-256 is recorded.
    what : str, optional
        What the file is, for the warning (default: its name).

    Returns
    -------
    pathlib.Path
        ``path``, intact; or, when the cache cannot be written (read-only, no permission), a copy
        built for this process only in a private temporary folder (one warning says so).

    Raises
    ------
    BackboneError
        A folder, a pipe or a device is where the file should be; the disk is full (one line, nothing
        half-written is left).

    Notes
    -----
    A damaged file is rebuilt with a :class:`~soundlib.errors.SoundlibWarning` naming it;
    a missing one silently. A symbolic link (never written by soundlib) is replaced by the
    rebuilt file; nothing but a regular file is ever read or hashed. The check reads the file
    once per process (it is remembered while the file's size, times and inode stay the same).
    """
    path = Path(path)
    what = what or "derived model file"
    if _problem(path) is None:
        return path
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(path.with_name(path.name + ".lock")))
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                return _private_copy(path, build, what, exc)
            raise _cannot_write(path, what, exc) from None
        problem = _problem(path)  # another process may have rebuilt it while we waited
        if problem is None:
            return path
        kind = _kind(path)
        if kind not in (None, "a symbolic link"):
            raise BackboneError(f"{path}: {kind} is where the {what} should be; remove it and run again")
        if problem != "missing":
            warn(f"{path}: {what} {problem}; rebuilding it")
        try:
            with atomic_path(path) as tmp:
                build(tmp)
            record_checksum(path)
        except OSError as exc:  # OutputError included: the folder or the disk refused the file
            if exc.errno in _READ_ONLY:
                return _private_copy(path, build, what, exc)
            raise _cannot_write(path, what, exc) from None
    return path
