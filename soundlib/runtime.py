"""Process-level helpers: importing TensorFlow quietly, and child processes that die with their parent.

TensorFlow is imported only by the stages that need it, always through
:func:`import_tf` (and ``tensorflow_hub``, which imports TensorFlow itself,
through :func:`import_hub`), so its start-up noise is handled in one place. By default
that noise is dropped: the C++ lines TensorFlow prints while it loads and
initialises its devices ("oneDNN custom operations are on", "Could not find cuda
drivers", "failed call to cuInit: ... CUDA error" on a machine without a GPU,
absl's "All log messages before absl::InitializeLog() ..."), its C++ INFO and
WARNING logs (``TF_CPP_MIN_LOG_LEVEL=2``) and its Python-side warnings. Any
other line written to stderr meanwhile is kept. ``soundlib --verbose`` (or
``SOUNDLIB_VERBOSE=1``, inherited by sweep processes and kernels) keeps all of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Iterator

__all__ = ["import_tf", "import_hub", "die_with_parent", "verbose", "set_verbose", "filtered_stderr", "TF_NOISE"]

#: Start-up lines of TensorFlow (and of the LiteRT runtime) that say nothing a user can act on.
TF_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|Created TensorFlow Lite XNNPACK delegate for CPU"
)


def verbose() -> bool:
    """Whether TensorFlow's start-up noise is kept (``$SOUNDLIB_VERBOSE`` set to a true value)."""
    return os.environ.get("SOUNDLIB_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


def set_verbose(on: bool) -> None:
    """Keep TensorFlow's start-up noise in this process and the processes it starts (``soundlib --verbose``)."""
    if on:
        os.environ["SOUNDLIB_VERBOSE"] = "1"
    else:
        os.environ.pop("SOUNDLIB_VERBOSE", None)


def _flush_all() -> None:
    """Flush Python's and the C library's buffered streams (C++ code may write through stdio)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    with contextlib.suppress(OSError, AttributeError, TypeError):
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = TF_NOISE, *, stdout: bool = False) -> Iterator[None]:
    """Capture what is written to file descriptor 2 (and 1 with ``stdout``), C++ code included,
    while the block runs; afterwards write back every line that ``noise`` does not match.
    A no-op when verbose."""
    if verbose():
        yield
        return
    import tempfile

    fds = (1, 2) if stdout else (2,)
    _flush_all()
    saved = {}
    try:
        for fd in fds:
            saved[fd] = os.dup(fd)
    except OSError:  # no usable stream: nothing to filter
        for dup in saved.values():
            os.close(dup)
        yield
        return
    captures = {fd: tempfile.TemporaryFile() for fd in fds}
    try:
        for fd, tmp in captures.items():
            os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            _flush_all()
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)
        for fd, tmp in captures.items():
            tmp.seek(0)
            lines = tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not noise.search(line))
            if kept:
                os.write(fd, kept.encode())
    finally:
        for tmp in captures.values():
            tmp.close()


#: Set once :func:`import_tf` has imported TensorFlow and quietened its loggers in this process.
_TF_READY = False


def import_tf():
    """Import and return ``(tensorflow, tf_keras)``, quietly unless verbose (see the module docstring).

    Also when something else imported TensorFlow first: its devices are then
    initialised here (where "failed call to cuInit" is said) and its loggers quietened.
    """
    global _TF_READY
    if _TF_READY:
        return sys.modules["tensorflow"], sys.modules["tf_keras"]
    if verbose():
        import tensorflow as tf
        import tf_keras

        _TF_READY = True
        return tf, tf_keras
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # tensorflow_hub imports pkg_resources, which setuptools >= 80 says is deprecated on every import
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    with filtered_stderr():
        import tensorflow as tf
        import tf_keras

        tf.config.list_physical_devices()  # initialises the platforms now: "failed call to cuInit" is said here
    tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    _TF_READY = True
    return tf, tf_keras


def import_hub():
    """Import and return ``tensorflow_hub``, after TensorFlow (quietly, see :func:`import_tf`).

    ``tensorflow_hub`` imports TensorFlow and tf_keras itself: imported first, it
    would bring TensorFlow's start-up noise with it.
    """
    import_tf()
    import tensorflow_hub as hub

    return hub


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process die when its parent does (Linux; elsewhere a no-op).

    Worker processes and notebook kernels call it at start-up so that killing
    the process that started them, even with ``kill -9``, leaves nothing running
    behind it. ``parent_pid`` (default ``$JPY_PARENT_PID``, set by
    jupyter_client for kernels) guards against a parent that died before the call.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is None:
        parent_pid = int(os.environ.get("JPY_PARENT_PID") or 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)
