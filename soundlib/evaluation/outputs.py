"""What soundlib may write where: single output files and run folders.

soundlib never destroys what it did not write, and never leaves a folder that
looks complete when it is not. Two guards:

* :func:`check_output_file`, for a single output file (``predict --csv``,
  ``--timeline``, ``--events``, ``--raven``, ``tag --csv``, ``embed --export``):
  it may not be one of the inputs (clips, a dataset's metadata), nor lie inside
  the model folder; an existing file is replaced only when soundlib wrote it (its
  first line is a header soundlib writes, or ``recognise`` knows it), or with
  ``overwrite``.
* :func:`run_folder`, for the folder of a run (``train``/``evaluate --out``, a
  sweep's run). The folder is

  - *owned*: ``soundlib_run.json`` says soundlib made it (kind, state, writer's
    pid and host). A folder soundlib did not make (not empty, no marker and no
    soundlib results) is refused unless ``overwrite``; even then only the files
    the run writes are replaced;
  - *locked* while a run writes it (an ``flock`` on ``.soundlib_run.lock``,
    removed when the run ends): a second writer is refused at once, with the
    first one's pid, instead of mixing its files with the first one's;
  - *complete or clearly incomplete*: :meth:`RunFolder.start` removes the
    previous run's results (its completion mark ``metrics.json`` or
    ``results.json``, its predictions, a model this run will not replace...)
    before new ones are written, the completion mark is written last, and the
    marker's ``state`` stays ``running`` (``failed`` after an error) until the
    run is ``complete``.

Sweeps mark their run folders with :func:`claim_run_folder` (they hold their own lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from soundlib.atomic import check_output_path, ensure_dir, write_json_atomic
from soundlib.errors import OutputError

__all__ = ["RUN_MARKER", "RUN_FORMAT", "RUN_OUTPUTS", "RunFolder", "run_folder", "claim_run_folder", "read_run_marker",
           "check_output_file", "check_output_folder"]

#: The marker of a run folder soundlib owns.
RUN_MARKER = "soundlib_run.json"
RUN_FORMAT = "soundlib-run/1"
#: Locked (``flock``) by the process writing a run into the folder.
RUN_LOCK = ".soundlib_run.lock"
#: Entries that do not make a folder someone else's.
_OURS = (RUN_MARKER, RUN_LOCK)
#: What a run (``train`` or ``evaluate``) writes into its folder; ``metrics.json``/``results.json``, written last,
#: mark it complete.
RUN_OUTPUTS = ("metrics.json", "results.json", "predictions.csv", "history.json", "confusion_matrix.png", "model")


# ---------------------------------------------------------------------------
# Single output files

def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return Path(os.path.abspath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return _resolved(a) == _resolved(b)


def _first_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            line = fh.readline(4096)
    except OSError:
        return None
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace")


def _named(option: str, path: Path, *, folder: bool = False) -> None:
    """:func:`check_output_path`, its error naming ``option`` (the user's name for the output)."""
    try:
        check_output_path(path, folder=folder)
    except OutputError as exc:
        named = OutputError(f"{option}: {exc}")
        named.errno, named.strerror, named.filename = exc.errno, exc.strerror, exc.filename
        raise named from None


def check_output_folder(path: str | os.PathLike, *, option: str) -> Path:
    """Check, before any work, that the folder ``path`` can be made or written into (not a file, not under
    a file, a place that takes files); :class:`OutputError` naming ``option`` otherwise."""
    path = Path(path)
    _named(option, path, folder=True)
    return path


def check_output_file(path: str | os.PathLike, *, option: str, inputs: Iterable[str | os.PathLike] = (),
                      protected: Iterable[str | os.PathLike] = (), headers: Iterable[str] = (),
                      overwrite: bool = False, recognise: Callable[[Path], bool] | None = None) -> Path:
    """Check, before any work, that writing the file ``path`` destroys nothing soundlib must keep.

    Parameters
    ----------
    option : str
        How the user named the output (``"--csv"``), for the messages.
    inputs : iterable of path-like
        Files (and folders) the command reads: the output may be none of them.
    protected : iterable of path-like
        Folders nothing may be written into (the model being used).
    headers : iterable of str
        First lines of the files soundlib writes there: an existing file starting with one of
        them is a previous output, replaced without asking.
    overwrite : bool
        Replace an existing file that soundlib did not write.
    recognise : callable, optional
        ``recognise(path)``: whether an existing file is a previous output, for outputs without a
        header line (a binary file, such as the ``.npz`` of ``embed --export``).

    Raises
    ------
    OutputError
        ``path`` cannot be written (see :func:`soundlib.atomic.check_output_path`), is an
        input, lies in a protected folder, or exists, was not written by soundlib and
        ``overwrite`` is false.
    """
    path = Path(path)
    _named(option, path)
    for item in inputs:
        if _same_file(path, Path(item)):
            raise OutputError(f"{option} {path}: is one of the inputs; soundlib will not overwrite what it reads: "
                              "choose another file")
    target = _resolved(path)
    for folder in protected:
        if target.is_relative_to(_resolved(Path(folder))):
            raise OutputError(f"{option} {path}: lies inside the model folder {folder}; writing there would damage "
                              "the model: choose a file outside it")
    if (path.exists() or path.is_symlink()) and not overwrite:
        first = _first_line(path)
        if first not in set(headers) and not (recognise is not None and path.is_file() and recognise(path)):
            raise OutputError(f"{option} {path}: exists and is not a file soundlib wrote (it does not start with "
                              "the header soundlib writes); soundlib will not replace it: choose another file, move "
                              "it away, or pass --overwrite")
    return path


# ---------------------------------------------------------------------------
# Run folders

def _host() -> str:
    return socket.gethostname()


def read_run_marker(folder: str | os.PathLike) -> dict | None:
    """The ``soundlib_run.json`` of a folder (``None`` when missing or not a soundlib run marker)."""
    try:
        marker = json.loads((Path(folder) / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == RUN_FORMAT else None


#: The manifest of an exported model (:data:`soundlib.models.format.INFO_FILE`; a test keeps the two equal:
#: run folders are recognised here, below the models stage, without importing it).
MODEL_INFO_FILE = "soundlib_model.json"


def _is_model_folder(path: Path) -> bool:
    """Whether ``path`` is an exported soundlib model (its manifest carries a ``soundlib-model/`` format tag)."""
    try:
        info = json.loads((Path(path) / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and isinstance(info.get("format"), str) and info["format"].startswith("soundlib-model/")


def _legacy_run(folder: Path) -> bool:
    """A run folder written by a soundlib without the marker: a valid ``metrics.json``, a ``results.json``
    of an evaluation, a sweep's ``params.json``, or a soundlib model."""
    from soundlib.evaluation.metrics import RESULTS_FILE, RunMetrics
    if RunMetrics.read(folder) is not None or _is_model_folder(folder / "model"):
        return True
    for name, key in ((RESULTS_FILE, "per_fold"), ("params.json", "fingerprint")):
        try:
            d = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(d, dict) and key in d:
            return True
    return False


def _foreign_entries(folder: Path, ignore: Iterable[str] = ()) -> list[str]:
    """What makes ``folder`` someone else's: its entries when it is not empty, has no marker and holds no
    soundlib results (``[]`` when soundlib may write there). ``ignore``: names the caller itself wrote."""
    if not folder.is_dir():
        return []
    # an executed notebook (papermill writes it before the run starts) and its log share the folder harmlessly:
    # the run never writes over them
    names = sorted(e.name for e in folder.iterdir() if e.name not in (*_OURS, *ignore, "run.log")
                   and not e.name.endswith(".ipynb"))
    if not names or read_run_marker(folder) is not None or _legacy_run(folder):
        return []
    return names


def _check_owner(folder: Path, option: str, overwrite: bool, ignore: Iterable[str] = ()) -> None:
    _named(option, folder, folder=True)
    names = _foreign_entries(folder, ignore)
    if names and not overwrite:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise OutputError(f"{option} {folder}: exists and holds files soundlib did not write ({shown}); soundlib "
                          "will not write its results among them: choose another folder, move them away, or pass "
                          "--overwrite (then only the files the run writes are replaced)")


def _write_marker(folder: Path, kind: str, state: str, **extra: Any) -> None:
    write_json_atomic(folder / RUN_MARKER, {"format": RUN_FORMAT, "kind": kind, "state": state, "pid": os.getpid(),
                                            "host": _host(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra})


def claim_run_folder(folder: str | os.PathLike, *, kind: str, overwrite: bool = False, option: str = "--out",
                     ignore: Iterable[str] = ()) -> Path:
    """Make ``folder`` (if needed) and mark it as a soundlib run folder, without locking it.

    For writers that hold their own lock (a sweep's run; ``ignore``: the files it wrote there
    already, its log and lock). Raises :class:`OutputError` like :func:`run_folder`.
    """
    folder = Path(folder)
    _check_owner(folder, option, overwrite, ignore)
    ensure_dir(folder)
    if read_run_marker(folder) is None:
        _write_marker(folder, kind, "created")
    return folder


class RunFolder:
    """A run folder held by this process (see :func:`run_folder`)."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.started = False

    def start(self, *, keep: Iterable[str] = ()) -> None:
        """Mark the folder ``running`` and remove every output of a previous run (:data:`RUN_OUTPUTS`, of
        either kind) but ``keep`` (a model this run replaces in one step).

        Call it once the run's inputs are known to be good, before its first output: until
        then a failing run leaves the previous one as it was. Files are removed; a folder only
        when it is a soundlib model (a model this run will not replace must not pass for its own).
        """
        import shutil

        _write_marker(self.path, self.kind, "running")
        self.started = True
        for name in (n for n in RUN_OUTPUTS if n not in set(keep)):
            entry = self.path / name
            if entry.is_dir() and not entry.is_symlink():
                if _is_model_folder(entry):
                    shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)


def _lock(folder: Path, option: str):
    """The open, ``flock``-ed lock file of ``folder`` (``None`` where ``fcntl`` is missing).

    The holder removes the file when it is done (:func:`_unlock`), so a finished run leaves
    nothing behind; a process that locked the file just as it was removed sees that the path
    no longer names what it locked, and tries again.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    path = folder / RUN_LOCK
    while True:
        try:
            fh = open(path, "a+")
        except OSError as exc:
            from soundlib.atomic import output_error

            raise output_error(path, exc) from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            marker = read_run_marker(folder) or {}
            who = f"{marker.get('kind', 'a run')}, pid {marker.get('pid', '?')} on {marker.get('host', '?')}"
            raise OutputError(f"{option} {folder}: another soundlib process is writing a run into this folder "
                              f"({who}); wait for it to finish or choose another folder") from None
        try:
            current = os.stat(path).st_ino
        except OSError:
            current = None
        if current == os.fstat(fh.fileno()).st_ino:
            return fh
        fh.close()


def _unlock(folder: Path, fh) -> None:
    """Remove the lock file, then release the lock (see :func:`_lock`)."""
    if fh is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(folder / RUN_LOCK)
    fh.close()


@contextlib.contextmanager
def run_folder(folder: str | os.PathLike, *, kind: str, overwrite: bool = False,
               option: str = "--out") -> Iterator[RunFolder]:
    """Own and lock the run folder ``folder`` for the ``with`` block, which writes a run into it.

    On entry the folder is checked (it can be written; soundlib made it, or it is empty or
    new, or ``overwrite``), made, locked and marked as soundlib's. The block calls
    :meth:`RunFolder.start` before its first output (the folder is then ``running``); on
    leaving, a started run is marked ``complete``, or ``failed`` (with the error) when the
    block raised. A process killed meanwhile leaves ``running`` with its pid, and releases
    the lock.

    Parameters
    ----------
    kind : str
        What writes the folder (``"train"``, ``"evaluate"``), recorded in the marker.
    option : str
        How the user named the folder, for the messages.

    Raises
    ------
    OutputError
        The folder cannot be written, holds files soundlib did not write (and not
        ``overwrite``), or another process is writing a run into it.
    """
    folder = Path(folder)
    _check_owner(folder, option, overwrite)
    ensure_dir(folder)
    fh = _lock(folder, option)
    try:
        _check_owner(folder, option, overwrite)  # again, now that no other soundlib process can write here
        if read_run_marker(folder) is None:
            _write_marker(folder, kind, "created")
        run = RunFolder(folder, kind)
        try:
            yield run
        except BaseException as exc:
            if run.started:
                with contextlib.suppress(OSError):
                    _write_marker(folder, kind, "failed" if isinstance(exc, Exception) else "interrupted",
                                  error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if run.started:
            _write_marker(folder, kind, "complete")
    finally:
        _unlock(folder, fh)
