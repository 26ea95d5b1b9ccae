"""Where sweep tasks run: a local pool of worker processes, or a Dask distributed cluster.

Both backends submit :func:`soundlib.sweep.tasks.run_task` calls; :func:`drive`
keeps at most ``limit`` of them in flight and feeds follow-up tasks back in.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from typing import Any, Callable, Iterable, Sequence

from ..errors import ConfigError
from .tasks import ShardTask, Task, kill_running, run_task

__all__ = ["LocalBackend", "DaskBackend", "drive"]


class LocalBackend:
    """Tasks in a thread pool, each thread waiting on its own worker process (forked from the fork server)."""

    def __init__(self, jobs: int):
        from concurrent.futures import ThreadPoolExecutor

        self.limit = jobs
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="soundlib-sweep")

    def submit(self, task: Task):
        """Start ``task``; returns its future."""
        if isinstance(task, ShardTask):  # locally a fill is one task (sharded only on a cluster)
            raise ConfigError(f"sweep task {task.label!r}: shards of a fill run on a Dask cluster only")
        return self.pool.submit(run_task, task, fork=True)

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
        try:
            import distributed  # noqa: F401
        except ImportError:  # pragma: no cover - dask[distributed] is a dependency
            raise ConfigError("scheduler= needs dask[distributed] installed") from None
        if isinstance(scheduler, str):
            from ..shards import connect

            # a malformed address or no answer within the deadline: one ConfigError line, nothing left running
            self.client = connect(scheduler, option="scheduler")
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
            from ..shards import RETRIES, run_shard

            fut = self.client.submit(run_shard, task.shard, key=key, pure=False, retries=RETRIES)
        else:
            fut = self.client.submit(run_task, task.to_json(), key=key, pure=False, retries=0)
        self._done.add(fut)
        self._futures = [f for f in self._futures if not f.done()] + [fut]
        return fut

    @property
    def workers(self) -> int:
        """Workers the cluster has now (at least 1)."""
        from ..shards import _n_workers

        return _n_workers(self.client)

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

    On any error (Ctrl-C included) the running tasks are killed before it propagates.
    """
    queue = deque(initial)
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
                queue.extend(on_done(task, result) or ())
        ok = True
    finally:
        if not ok:
            backend.close(abort=True)
