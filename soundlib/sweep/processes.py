"""How a sweep's tasks run in their own processes: forked from a pre-loaded server (fast start) or spawned,
killed with the sweep, their temporary folders cleaned when their owner is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "LIVE", "temp_dir", "pid_alive", "clean_stale_temp", "fork_available", "fork_context", "ForkedProcess",
    "exit_with", "kill_running", "tail",
]


LIVE: set = set()


_TEMP_PREFIX = "soundlib-sweep-"

_TEMP: tuple[int, Path] | None = None


def temp_dir() -> Path:
    """This process's private temporary folder for its tasks: ``$TMPDIR/soundlib-sweep-<pid>-*``, mode 0700,
    made on first use and removed at exit (a killed process's is removed by :func:`clean_stale_temp`)."""
    global _TEMP
    if _TEMP is None or _TEMP[0] != os.getpid() or not _TEMP[1].is_dir():
        import atexit

        path = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-"))  # 0700
        atexit.register(shutil.rmtree, path, True)
        _TEMP = (os.getpid(), path)
    return _TEMP[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def clean_stale_temp(*, legacy_age: float = 600.0) -> list[Path]:
    """Remove what killed sweeps left in ``$TMPDIR``; returns what was removed.

    A private folder (:func:`temp_dir`) is removed when it is this user's and the process
    whose pid it names no longer runs. The task and result files soundlib <= 0.2 wrote
    directly into ``$TMPDIR`` (``soundlib-sweep-*.task.json``, ``*.result.json``) name no
    process: they are removed when older than ``legacy_age`` seconds (a task reads its
    file when it starts, and a result is read as soon as it is written).
    """
    import re

    removed: list[Path] = []
    pattern = re.compile(rf"^{re.escape(_TEMP_PREFIX)}(\d+)-")
    legacy = re.compile(rf"^{re.escape(_TEMP_PREFIX)}[A-Za-z0-9_]+\.(task|result)\.json$")
    root = Path(tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            st = entry.lstat()
        except OSError:
            continue
        if st.st_uid != os.getuid():
            continue
        m = pattern.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink():
            if int(m[1]) != os.getpid() and not pid_alive(int(m[1])):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        elif legacy.match(entry.name) and entry.is_file() and now - st.st_mtime > legacy_age:
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


#: Imported once by the fork server, so that each forked task process (and kernel, see
#: :mod:`soundlib.sweep.kernels`) starts with them loaded.
_PRELOAD = ["soundlib.sweep.tasks", "soundlib.sweep.kernels", "papermill", "nbformat", "nbclient", "jupyter_client"]

_FORK_CONTEXT: Any = None


_START_LOCK = threading.Lock()


def fork_available() -> bool:
    """Whether task processes can be forked from the fork server here (Linux, not inside a
    daemonic process such as a Dask worker under a nanny, which may not have children)."""
    import multiprocessing

    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def fork_context():
    """multiprocessing's ``forkserver`` context, its server preloading :data:`_PRELOAD` and the
    kernels' :data:`soundlib.sweep.kernels.PRELOAD` (not ``__main__``)."""
    global _FORK_CONTEXT
    if _FORK_CONTEXT is None:
        import multiprocessing

        from soundlib.sweep.kernels import PRELOAD

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD) + PRELOAD)
        _FORK_CONTEXT = ctx
    return _FORK_CONTEXT


class ForkedProcess:
    """A task process forked from the fork server, with ``subprocess.Popen``'s ``wait``/``poll``/``kill``.

    A forked task process watches this process and exits the moment it dies
    (``kill -9`` included, see :func:`exit_with`); its kernel dies with it
    (:func:`soundlib.runtime.die_with_parent`).
    """

    def __init__(self, target: Any, task_path: str, log: Path, env: Mapping[str, str], cwd: str | None):
        self._proc = fork_context().Process(target=target, name="soundlib-sweep-task",
                                             args=(task_path, str(log), dict(env), cwd, os.getpid()))
        with _START_LOCK:
            # multiprocessing would run this program's __main__ again in the task process (as spawn does):
            # an unguarded script calling sweep.run would start a sweep per run
            import types

            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                self._proc.start()
            finally:
                sys.modules["__main__"] = main

    def wait(self) -> int | None:
        self._proc.join()
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def kill(self) -> None:
        self._proc.kill()


def exit_with(pid: int) -> None:
    """Exit this process (``os._exit``) as soon as process ``pid`` ends, watched by a daemon thread.

    A forked task's parent is the fork server, which outlives the sweep while any
    process it forked still runs, so the parent-death signal alone would not stop it.
    """
    import select

    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has exited
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except OSError:
                    pass
                time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="soundlib-exit-with-sweep", daemon=True).start()


def kill_running() -> None:
    """Kill every task process this process started that is still running."""
    for proc in list(LIVE):
        with contextlib.suppress(OSError):
            proc.kill()


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
