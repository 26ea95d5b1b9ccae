"""Atomic file writes: a reader never sees a half-written artifact.

Every file soundlib writes goes through here: the data are written to a
temporary name in the destination folder, flushed, and renamed into place
(``os.replace`` is atomic on one filesystem). On error the temporary file is
removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "atomic_path",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "write_csv_atomic",
    "jsonable",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary file lives in the same directory so ``os.replace`` is atomic.
    On error the temporary file (or directory) is removed and ``path`` is untouched.
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
        os.replace(tmp_path, path)
    except BaseException:
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
