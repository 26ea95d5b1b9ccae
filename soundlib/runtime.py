"""Process-level helpers: importing TensorFlow quietly, and child processes that die with their parent.

TensorFlow is imported only by the stages that need it, always through
:func:`import_tf`, so its C++ start-up noise is configured in one place.
"""

from __future__ import annotations

import os
import sys

__all__ = ["import_tf", "die_with_parent"]


def import_tf():
    """Import and return ``(tensorflow, tf_keras)``, with TensorFlow's C++ logging
    at warnings and above unless the environment already says otherwise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras

    return tf, tf_keras


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
