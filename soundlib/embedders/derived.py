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

import os
import re
from pathlib import Path
from typing import Callable

from soundlib.atomic import atomic_path, file_lock, write_text_atomic
from soundlib.errors import warn

__all__ = ["derived_file", "checksum_path", "record_checksum"]

#: Files this process found intact: path -> (size, mtime_ns, ctime_ns, inode) when it was checked.
_VERIFIED: dict[str, tuple[int, int, int, int]] = {}


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of a derived file is recorded: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _recorded(path: Path) -> str | None:
    try:
        text = checksum_path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.match(r"^([0-9a-f]{64})\b", text)
    return m[1] if m else None


def _problem(path: Path) -> str | None:
    """What is wrong with the derived file ``path`` (``None``: it is there and matches its record)."""
    from soundlib.audio.hashes import sha256_file

    stamp = _stamp(path)
    if stamp is None:
        return "missing"
    if _VERIFIED.get(str(path)) == stamp:
        return None
    recorded = _recorded(path)
    if recorded is None:
        return f"has no recorded SHA-256 ({checksum_path(path).name} missing or unreadable)"
    actual = sha256_file(path)
    if actual != recorded:
        return (f"does not match the SHA-256 recorded when it was built ({checksum_path(path).name}): "
                f"it was damaged or changed since")
    _VERIFIED[str(path)] = stamp
    return None


def record_checksum(path: str | os.PathLike) -> str:
    """Record the SHA-256 of ``path`` in ``<path>.sha256`` (written atomically); returns it."""
    from soundlib.audio.hashes import sha256_file

    path = Path(path)
    digest = sha256_file(path)
    write_text_atomic(checksum_path(path), f"{digest}  {path.name}\n")
    stamp = _stamp(path)
    if stamp is not None:
        _VERIFIED[str(path)] = stamp
    return digest


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
        ``path``, intact.

    Notes
    -----
    A damaged file is rebuilt with a :class:`~soundlib.errors.SoundlibWarning` naming it;
    a missing one silently. The check reads the file once per process (it is
    remembered while the file's size, times and inode stay the same).
    """
    path = Path(path)
    if _problem(path) is None:
        return path
    with file_lock(path.with_name(path.name + ".lock")):
        problem = _problem(path)  # another process may have rebuilt it while we waited
        if problem is None:
            return path
        if problem != "missing":
            warn(f"{path}: {what or 'derived model file'} {problem}; rebuilding it")
        with atomic_path(path) as tmp:
            build(tmp)
        record_checksum(path)
    return path
