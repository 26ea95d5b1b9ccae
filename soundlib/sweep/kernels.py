"""Notebook kernels forked from the run's task process.

Every sweep run executes its notebook in a new kernel. Started the usual way, a
kernel pays a Python start and about a second of CPU for imports (ipykernel,
IPython, numpy, matplotlib, soundlib) before its first cell, and a run whose head
trains from cached embeddings costs little more than that. A run's task process
is forked from the fork server of :mod:`soundlib.sweep.tasks`, which has imported
those modules once (:data:`PRELOAD`); forked in turn from the task process, the
kernel starts without either. It is still a new process per run, in its own
session, with the kernel's own command line, environment, working folder and
parent (the task process, with whom it dies).

:class:`ForkedKernelManager` is the jupyter_client kernel manager a forked task
process gives papermill. It forks when the kernelspec runs ``ipykernel`` on this
very Python interpreter, and launches the kernel the usual way otherwise.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

__all__ = ["PRELOAD", "ForkedKernelManager"]

#: Modules a kernel imports before (or while) running the sweep's notebooks: imported once by the fork server.
PRELOAD = ["ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "IPython.display", "numpy",
           "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.colorbar", "PIL.Image",
           "soundlib.lab.notebook", "soundlib.evaluation.evaluate", "soundlib.models.train", "soundlib.embedding.embed",
           "soundlib.evaluation.plots", "soundlib.methods.head",
           "soundlib.audio.hashes", "soundlib.methods.frozen", "soundlib.methods.heads", "soundlib.methods.mfcc",
           "soundlib.methods.fusion", "soundlib.methods.auto", "sklearn.linear_model", "sklearn.preprocessing",
           "threadpoolctl"]
_LAUNCHER = "ipykernel_launcher"


def _forkable(cmd: list[str]) -> list[str] | None:
    """The ipykernel arguments of a kernel command that runs ``python -m ipykernel_launcher`` on this
    interpreter, else None (then the kernel is launched the usual way)."""
    if len(cmd) < 3 or _LAUNCHER not in cmd:
        return None
    i = cmd.index(_LAUNCHER)
    if cmd[i - 1] != "-m":
        return None
    try:
        same = Path(cmd[0]).resolve() == Path(sys.executable).resolve() or os.path.samefile(cmd[0], sys.executable)
    except OSError:
        return None
    interpreter_flags = [a for a in cmd[1:i - 1] if a not in ("-Xfrozen_modules=off",)]
    if not same or interpreter_flags:
        return None
    return cmd[i + 1:]


class _ForkedKernel:
    """A kernel forked from this process, as ``subprocess.Popen``'s ``pid``/``poll``/``wait``/
    ``send_signal``/``kill``/``terminate`` (what jupyter_client's local provisioner calls)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped elsewhere
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int | None:
        if timeout is None:
            return self._reap(0)
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class _ForkedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, forking the kernel from this process when it can."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        args = _forkable(cmd)
        if args is None:
            return await super().launch_kernel(cmd, **kwargs)
        env = dict(kwargs.get("env") or os.environ, JPY_PARENT_PID=str(os.getpid()))  # as launch_kernel sets it
        cwd = str(kwargs.get("cwd") or os.getcwd())  # a launched kernel starts in this process's folder
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the kernel: never returns into the code of this process
            code = 1
            try:
                _kernel_main(args, env, cwd)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        self.process = _ForkedKernel(pid)  # type: ignore[assignment]  # a Popen look-alike for jupyter_client
        self.pid = pid
        self.pgid = None  # signal the kernel itself, as it sets up its own session
        self.cwd = cwd
        return self.connection_info


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels are forked from this process (see the module docstring)."""

    async def _async_pre_start_kernel(self, **kw: Any):
        if self.provisioner is None:
            import uuid

            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = _ForkedProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


def _kernel_main(args: list[str], env: dict[str, str], cwd: str) -> None:
    """The forked kernel: the session, environment, folder and streams a launched one would get, then ipykernel."""
    import asyncio
    import atexit

    from soundlib.runtime import die_with_parent

    os.setsid()
    asyncio.events._set_running_loop(None)  # the parent's running event loop is not this process's
    asyncio.set_event_loop_policy(None)
    os.environ.clear()
    os.environ.update(env)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _close_inherited_fds()
    os.chdir(cwd)
    die_with_parent(int(env.get("JPY_PARENT_PID") or 0))
    _set_process_name(b"soundlib-kernel")
    # ipykernel read $JPY_PARENT_PID when the fork server imported it, before there was one
    args = [*args, f"--IPKernelApp.parent_handle={int(env.get('JPY_PARENT_PID') or 0)}"]
    sys.argv = [_LAUNCHER, *args]
    try:
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=args)
    finally:
        atexit._run_exitfuncs()  # os._exit follows


def _close_inherited_fds() -> None:
    """Close every descriptor above stderr but multiprocessing's resource-tracker pipe.

    The run folder's lock and the parent's sockets stay with the parent. The tracker's pipe
    stays open: multiprocessing keeps its number, and a kernel that creates a semaphore (tqdm
    does, for its lock) would otherwise write to whatever the number names by then (one of
    the kernel's own sockets), relaunch a tracker, and hang when asked to shut down until
    jupyter_client terminates it 2.5 s later (measured: a run took 3.9 s instead of 1.3 s).
    """
    keep = sorted(fd for fd in (_resource_tracker_fd(),) if fd is not None and fd > 2)
    start = 3
    for fd in keep:
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)


def _resource_tracker_fd() -> int | None:
    try:
        from multiprocessing import resource_tracker
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fd = getattr(resource_tracker._resource_tracker, "_fd", None)
    return fd if isinstance(fd, int) else None


def _set_process_name(name: bytes) -> None:
    """``ps``/``top`` show the forked kernel as ``name`` (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
        except (OSError, AttributeError):
            pass
