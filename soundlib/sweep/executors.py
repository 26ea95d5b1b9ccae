"""Where sweep tasks run: a local pool of worker processes, or a Dask distributed cluster.

Both backends submit :func:`soundlib.sweep.tasks.run_task` calls; :func:`drive`
keeps at most ``limit`` of them in flight and feeds follow-up tasks back in.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections import deque
from typing import Any, Callable, Iterable, Sequence

from soundlib.errors import ConfigError
from soundlib.sweep.processes import kill_running
from soundlib.sweep.tasks import ShardTask, Task, longest_first, run_task, task_threads

__all__ = ["LocalBackend", "DaskBackend", "drive", "parse_scheduler", "connect_scheduler", "scheduler_timeout",
           "SCHEDULER_TIMEOUT_ENV", "DEFAULT_SCHEDULER_TIMEOUT", "SCHEDULER_SCHEMES"]

#: Seconds to reach a Dask scheduler and hear its greeting (``SOUNDLIB_SCHEDULER_TIMEOUT`` overrides it).
DEFAULT_SCHEDULER_TIMEOUT = 30.0
SCHEDULER_TIMEOUT_ENV = "SOUNDLIB_SCHEDULER_TIMEOUT"
#: The address schemes of Dask's comms (``tcp://`` is the default; only its greeting is checked before connecting;
#: ``inproc://`` is an in-process cluster's, with no port).
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_ADDRESS = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})/?", re.ASCII)
_GREETING_BYTES = 1 << 20  # a Dask comm's first message (its handshake) is about 60 bytes


def scheduler_timeout(timeout: float | None = None) -> float:
    """``timeout`` seconds, else ``SOUNDLIB_SCHEDULER_TIMEOUT``, else :data:`DEFAULT_SCHEDULER_TIMEOUT`."""
    raw: Any = timeout
    if raw is None:
        raw = os.environ.get(SCHEDULER_TIMEOUT_ENV, "").strip() or DEFAULT_SCHEDULER_TIMEOUT
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not 0 < value <= 3600:
        where = "timeout" if timeout is not None else SCHEDULER_TIMEOUT_ENV
        raise ConfigError(f"{where}: the scheduler connection deadline must be a number of seconds in (0, 3600], "
                          f"got {raw!r}")
    return value


def parse_scheduler(address: Any) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a Dask scheduler address ``[SCHEME://]HOST:PORT`` (scheme ``tcp`` by
    default; an IPv6 host in brackets), or a one-line :class:`ConfigError` saying what was expected.
    An in-process cluster's ``inproc://HOST/PID/N`` gives ``("inproc", "HOST/PID/N", 0)``."""
    expected = "expected tcp://HOST:PORT of a Dask scheduler (e.g. tcp://10.0.0.5:8786)"
    if not isinstance(address, str):
        raise ConfigError(f"scheduler (--scheduler) {address!r}: {expected}")
    if re.fullmatch(r"inproc://[A-Za-z0-9_.:/-]+", address, re.ASCII):
        return "inproc", address[len("inproc://"):], 0
    m = _ADDRESS.fullmatch(address.strip())
    if m is None:
        scheme = address.split("://", 1)[0].lower() if "://" in address else None
        if scheme is not None and scheme not in SCHEDULER_SCHEMES:
            raise ConfigError(f"scheduler (--scheduler) {address!r}: unknown scheme {scheme + '://'!r}; {expected} "
                              f"(schemes: {', '.join(SCHEDULER_SCHEMES)})")
        raise ConfigError(f"scheduler (--scheduler) {address!r}: not an address; {expected}")
    scheme, host, port = (m.group(1) or "tcp").lower(), m.group(2), int(m.group(3))
    if scheme not in SCHEDULER_SCHEMES:
        raise ConfigError(f"scheduler (--scheduler) {address!r}: unknown scheme {scheme + '://'!r}; {expected} "
                          f"(schemes: {', '.join(SCHEDULER_SCHEMES)})")
    if not 1 <= port <= 65535:
        raise ConfigError(f"scheduler (--scheduler) {address!r}: port {port} is not in 1..65535; {expected}")
    return scheme, host, port


def _check_greeting(address: str, host: str, port: int, seconds: float) -> None:
    """Open a TCP connection and read the first message a Dask comm sends unasked (its handshake: an 8-byte
    length, then that many bytes), all within ``seconds``; anything else (no answer,
    an HTTP server waiting for a request, a length no handshake has) is a one-line :class:`ConfigError`.
    Dask's own client would wait for ever on a server that answers nothing, or try to allocate exabytes for
    one that answers text."""
    import socket
    import struct

    deadline = time.monotonic() + seconds

    def left() -> float:
        return max(0.001, deadline - time.monotonic())

    def read(sock, n: int) -> bytes:
        data = b""
        while len(data) < n:
            sock.settimeout(left())
            chunk = sock.recv(min(n - len(data), 65536))
            if not chunk:
                break
            data += chunk
        return data

    try:
        with socket.create_connection((host.strip("[]"), port), timeout=left()) as sock:
            head = read(sock, 8)
            if len(head) < 8:
                raise ConfigError(f"scheduler (--scheduler) {address}: not a Dask scheduler (it closed the "
                                  f"connection after {len(head)} byte(s) without greeting)")
            (size,) = struct.unpack("<Q", head)
            if not 8 <= size <= _GREETING_BYTES:
                raise ConfigError(f"scheduler (--scheduler) {address}: not a Dask scheduler (it answered "
                                  f"{head!r}, not a Dask handshake)")
            body = read(sock, size)
            if len(body) < size:
                raise ConfigError(f"scheduler (--scheduler) {address}: not a Dask scheduler (its greeting was cut "
                                  f"short after {len(body)} of {size} bytes)")
    except socket.timeout:
        raise ConfigError(f"scheduler (--scheduler) {address}: no Dask scheduler answered within {seconds:g} s (a Dask "
                          f"scheduler greets a connection at once; {SCHEDULER_TIMEOUT_ENV} sets the deadline)") from None
    except ConnectionRefusedError:
        raise ConfigError(f"cannot reach the Dask scheduler {address}: connection refused (is it running?)") from None
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {address}: {(exc.strerror or str(exc)).lower()}") from None


_CLIENT: Any = None


def _client_class():
    """``distributed.Client`` that, when it cannot connect, stops its event-loop thread at once (the plain
    one leaves it running, and its finalizer then waits twice the timeout to close)."""
    global _CLIENT
    if _CLIENT is None:
        from distributed import Client

        class _Client(Client):
            def __init__(self, *args: Any, **kwargs: Any):
                try:
                    super().__init__(*args, **kwargs)
                except BaseException:
                    self.status = "closed"
                    with contextlib.suppress(Exception):
                        self._loop_runner.stop()
                    raise

        _CLIENT = _Client
    return _CLIENT


def connect_scheduler(address: str, timeout: float | None = None):
    """A ``distributed.Client`` connected to the Dask scheduler at ``address``, or a one-line
    :class:`ConfigError` within about ``timeout`` seconds (:func:`scheduler_timeout`), leaving nothing running.

    The address is checked first (:func:`parse_scheduler`); for ``tcp://`` the server must greet as a Dask
    comm does (:func:`_check_greeting`) before Dask connects; the connection itself runs under the same deadline
    (in a helper thread, so that a server that stalls cannot hold the caller).
    """
    import threading

    scheme, host, port = parse_scheduler(address)
    seconds = scheduler_timeout(timeout)
    url = f"{scheme}://{host}:{port}" if scheme != "inproc" else address
    try:
        import distributed  # noqa: F401
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        raise ConfigError("scheduler= needs dask[distributed] installed") from None
    Client = _client_class()  # noqa: N806
    if scheme == "tcp":
        _check_greeting(url, host, port, seconds)
    deadline = time.monotonic() + seconds
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = Client(url, set_as_default=False, timeout=max(1.0, deadline - time.monotonic()))
        except BaseException as exc:  # reported by the caller
            box["error"] = exc
        if box.pop("abandoned", False) and "client" in box:
            with contextlib.suppress(Exception):
                box.pop("client").close(timeout=1)

    worker = threading.Thread(target=connect, name="soundlib-scheduler-connect", daemon=True)
    worker.start()
    worker.join(max(0.1, deadline - time.monotonic()) + 2.0)
    if worker.is_alive():
        box["abandoned"] = True
        raise ConfigError(f"cannot reach the Dask scheduler {url}: no connection within {seconds:g} s "
                          f"({SCHEDULER_TIMEOUT_ENV} sets the deadline)")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
            detail = f"no connection within {seconds:g} s ({SCHEDULER_TIMEOUT_ENV} sets the deadline)"
        else:
            detail = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
        raise ConfigError(f"cannot reach the Dask scheduler {url}: {detail}") from None
    return box["client"]


class LocalBackend:
    """Tasks in a thread pool, each thread waiting on its own worker process (forked from the fork server)."""

    def __init__(self, jobs: int):
        from concurrent.futures import ThreadPoolExecutor

        self.limit = jobs
        self.threads = task_threads(jobs)
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="soundlib-sweep")

    def submit(self, task: Task):
        """Start ``task``; returns its future."""
        if isinstance(task, ShardTask):  # locally a fill is one task (sharded only on a cluster)
            raise ConfigError(f"sweep task {task.label!r}: shards of a fill run on a Dask cluster only")
        return self.pool.submit(run_task, task, fork=True, threads=self.threads)

    def wait_any(self, futures: Sequence[Any]) -> set:
        """Block until at least one of ``futures`` is done; return the done ones."""
        from concurrent.futures import FIRST_COMPLETED, wait

        return set(wait(futures, return_when=FIRST_COMPLETED).done)

    def close(self, *, abort: bool = False) -> None:
        """Shut the pool down; ``abort`` kills the running tasks first."""
        if abort:
            kill_running()
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskBackend:
    """Tasks on a Dask distributed cluster (``"tcp://HOST:PORT"`` or a connected ``distributed.Client``)."""

    def __init__(self, scheduler: Any, jobs: int | None):
        if isinstance(scheduler, str):
            self.client = connect_scheduler(scheduler)
            self._own = True
        else:  # an existing distributed.Client
            self.client, self._own = scheduler, False
        from distributed import as_completed

        self.limit = jobs if jobs else math.inf
        self._n = 0
        self._futures: list = []
        self._done = as_completed(loop=self.client.loop)

    def submit(self, task: Task):
        """Send ``task`` to the cluster; returns its future."""
        self._n += 1
        key = f"soundlib-sweep-{task.label}-{os.getpid()}-{self._n}-{time.time_ns()}"
        if isinstance(task, ShardTask):  # one shard of a fill, in the worker's own process, retried alone
            from soundlib.sweep.shards import RETRIES, run_shard

            fut = self.client.submit(run_shard, task.shard, key=key, pure=False, retries=RETRIES)
        else:
            fut = self.client.submit(run_task, task.to_json(), key=key, pure=False, retries=0)
        self._done.add(fut)
        self._futures = [f for f in self._futures if not f.done()] + [fut]
        return fut

    @property
    def workers(self) -> int:
        """Workers the cluster has now (at least 1)."""
        from soundlib.sweep.shards import n_workers

        return n_workers(self.client)

    def wait_any(self, futures: Sequence[Any]) -> set:
        """Block until the next future completes; return it."""
        return {next(self._done)}

    def close(self, *, abort: bool = False) -> None:
        """Disconnect (only from a client this backend opened); ``abort`` cancels the tasks still running."""
        if abort:
            with contextlib.suppress(Exception):
                self.client.cancel([f for f in self._futures if not f.done()])
        if self._own:
            with contextlib.suppress(Exception):
                self.client.close()


def drive(backend, initial: Iterable[Task], on_done: Callable[[Task, dict], Iterable[Task]]) -> None:
    """Run tasks, at most ``backend.limit`` at once; ``on_done(task, result)`` may return follow-up tasks.

    Waiting tasks start in :func:`~soundlib.sweep.tasks.longest_first` order. On any error (Ctrl-C included)
    the running tasks are killed before it propagates.
    """
    queue = deque(longest_first(initial))
    inflight: dict[Any, Task] = {}
    ok = False
    try:
        while queue or inflight:
            while queue and len(inflight) < backend.limit:
                task = queue.popleft()
                inflight[backend.submit(task)] = task
            for fut in backend.wait_any(list(inflight)):
                task = inflight.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # a Dask worker died, a task could not be sent...
                    result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
                follow = list(on_done(task, result) or ())
                if follow:
                    queue = deque(longest_first([*queue, *follow]))
        ok = True
    finally:
        if not ok:
            backend.close(abort=True)
