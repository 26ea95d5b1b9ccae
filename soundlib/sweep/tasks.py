"""One sweep task in its own process: lock the run folder, execute, report through a result file.

A *task* is a JSON-able mapping: ``kind`` ``"notebook"`` (execute a notebook with
papermill: a training run, or the evaluate notebook) or ``"fill"`` (prepare one
method's features once, filling the embedding cache, for one variant). :func:`run_task`
starts a new process for it (locally or on a Dask worker), waits, and returns the result
the process wrote; it never raises for a failing task. Locally (``fork=True``) the process is forked
from a server process that has already imported papermill and what the kernels
import (multiprocessing's ``forkserver``), and forks the notebook's kernel in turn
(:mod:`soundlib.sweep.kernels`): no Python start and no imports per run. Elsewhere
it is a fresh ``python`` process launching its kernel the usual way. The run bookkeeping that
makes sweeps resumable lives here too: a run is complete when its
``params.json`` fingerprint matches, its ``metrics.json`` is valid and its
executed notebook is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

from ..atomic import file_lock
from ..metrics import METRICS_FILE, RunMetrics

__all__ = [
    "TRAIN_NOTEBOOK",
    "EVALUATE_NOTEBOOK",
    "fingerprint",
    "run_complete",
    "read_run_record",
    "run_task",
    "kill_running",
    "child_main",
]

#: Notebooks a sweep executes.
TRAIN_NOTEBOOK = "train.ipynb"
EVALUATE_NOTEBOOK = "evaluate.ipynb"
RUN_RECORD = "params.json"

#: Run by each kernel at start-up: the kernel dies with the process that launched it.
_KERNEL_EXEC_LINE = "__import__('soundlib.runtime', fromlist=['_']).die_with_parent()"
_CHILD = "import sys; from soundlib.sweep.tasks import child_main; sys.exit(child_main(sys.argv[1]))"
_LIVE: set = set()


# ---------------------------------------------------------------------------
# Run bookkeeping

def fingerprint(params: Mapping[str, Any], synth: Mapping[str, Any] | None) -> str:
    """The identity of a run: its notebook parameters (minus output-only ones) and the synthetic corpus."""
    ident = {k: v for k, v in params.items() if k not in ("output_dir", "alert", "generate_if_missing", "embedding_map")}
    ident["_synth"] = synth
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_run_record(run_dir: Path) -> dict | None:
    """A run's ``params.json`` (fingerprint, parameters, synth, classes), or ``None``."""
    record = _read_json(Path(run_dir) / RUN_RECORD)
    return record if isinstance(record, dict) else None


def run_complete(run_dir: Path, fp: str, variant: str, fold: int) -> bool:
    """A run is complete when it ran with these parameters (``params.json``), wrote a valid
    ``metrics.json`` (last of its data, atomically) and its executed notebook was renamed into place."""
    record = read_run_record(run_dir)
    if record is None or record.get("fingerprint") != fp:
        return False
    if not (run_dir / TRAIN_NOTEBOOK).is_file():
        return False
    return RunMetrics.read(run_dir, variant=variant, fold=fold) is not None


def _prepare_run_dir(run_dir: Path, record: Mapping[str, Any], *, export: bool) -> None:
    """Start a run afresh: no stale ``metrics.json`` can outlive the new parameters."""
    from ..atomic import write_json_atomic

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    (run_dir / TRAIN_NOTEBOOK).unlink(missing_ok=True)
    for stale in list(run_dir.glob(".*.tmp*")) + list(run_dir.glob(".model.*")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    if not export and (run_dir / "model").is_dir():
        shutil.rmtree(run_dir / "model", ignore_errors=True)
    write_json_atomic(run_dir / RUN_RECORD, dict(record))


# ---------------------------------------------------------------------------
# The parent side

def run_task(task: Mapping[str, Any], *, fork: bool = False) -> dict[str, Any]:
    """Execute one task in a new process and return its result.

    Used by the local thread pool (``fork=True``: the process is forked from the
    warm fork server, see :func:`fork_available`) and, as is, as the Dask task
    function (a fresh ``python`` process). Never raises for a failing task: the
    failure is in the returned dict (``status``, ``ename``, ``evalue``, ``cell``,
    ``notebook``, ``seconds``).
    """
    t0 = time.perf_counter()
    fd, result_path = tempfile.mkstemp(prefix="soundlib-sweep-", suffix=".result.json")
    os.close(fd)
    os.unlink(result_path)
    fd, task_path = tempfile.mkstemp(prefix="soundlib-sweep-", suffix=".task.json")
    with os.fdopen(fd, "w") as fh:
        json.dump({**task, "result_path": result_path}, fh)
    env = {**os.environ, **task.get("env", {}), "SOUNDLIB_SWEEP_PARENT": str(os.getpid()),
           "PYTHONUNBUFFERED": "1", "JUPYTER_PLATFORM_DIRS": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log = Path(task["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        if fork and fork_available():
            proc = _Forked(task_path, log, env, task.get("cwd") or None)
            _LIVE.add(proc)
            rc = proc.wait()
        else:
            with open(log, "w") as log_fh:
                proc = subprocess.Popen([sys.executable, "-c", _CHILD, task_path], stdin=subprocess.DEVNULL,
                                        stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                        cwd=task.get("cwd") or None)
                _LIVE.add(proc)
                rc = proc.wait()
        result = _read_json(Path(result_path))
        if not isinstance(result, dict):
            result = {"status": "failed", "ename": "WorkerExit",
                      "evalue": f"the worker process exited with code {rc} before reporting; see {log}:\n"
                                + _tail(log)}
    except BaseException as exc:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if isinstance(exc, Exception):
            result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
        else:
            raise
    finally:
        if proc is not None:
            _LIVE.discard(proc)
        for p in (task_path, result_path):
            with contextlib.suppress(OSError):
                os.unlink(p)
    result.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return result


#: Imported once by the fork server, so that each forked task process (and kernel, see
#: :mod:`soundlib.sweep.kernels`) starts with them loaded.
_PRELOAD = ["soundlib.sweep.tasks", "soundlib.sweep.kernels", "papermill", "nbformat", "nbclient", "jupyter_client"]
_FORK_CONTEXT: Any = None
_START_LOCK = threading.Lock()
#: In a forked task process: its log file (None elsewhere); its kernel is forked too.
_TASK_LOG: str | None = None


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

        from .kernels import PRELOAD

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD) + PRELOAD)
        _FORK_CONTEXT = ctx
    return _FORK_CONTEXT


class _Forked:
    """A task process forked from the fork server, with ``subprocess.Popen``'s ``wait``/``poll``/``kill``.

    A forked task process watches this process and exits the moment it dies
    (``kill -9`` included, see :func:`exit_with`); its kernel dies with it
    (:func:`soundlib.runtime.die_with_parent`).
    """

    def __init__(self, task_path: str, log: Path, env: Mapping[str, str], cwd: str | None):
        self._proc = fork_context().Process(target=_forked_main, name="soundlib-sweep-task",
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


def _forked_main(task_path: str, log: str, env: dict[str, str], cwd: str | None, sweep_pid: int) -> None:
    """A forked task process: the environment, working folder and log a fresh ``python`` would get;
    it ends with the sweep process ``sweep_pid``."""
    import atexit

    global _TASK_LOG
    _TASK_LOG = log
    exit_with(sweep_pid)
    server = os.getppid()
    os.environ.clear()
    os.environ.update(env, SOUNDLIB_SWEEP_PARENT=str(server))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)
    if cwd:
        os.chdir(cwd)
    try:
        child_main(task_path)
    finally:
        atexit._run_exitfuncs()  # multiprocessing ends its children with os._exit


def kill_running() -> None:
    """Kill every task process this process started that is still running."""
    for proc in list(_LIVE):
        with contextlib.suppress(OSError):
            proc.kill()


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# The child side

def child_main(task_path: str) -> int:
    """Entry point of a task process (``python -c``); writes the result file."""
    from ..runtime import die_with_parent

    die_with_parent(int(os.environ.get("SOUNDLIB_SWEEP_PARENT") or 0))
    task = json.loads(Path(task_path).read_text())
    try:
        if task["kind"] == "fill":
            result = _do_fill(task)
        elif task["kind"] == "notebook":
            result = _do_notebook(task)
        else:
            raise ValueError(f"unknown task kind {task['kind']!r}")
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        traceback.print_exc()
        result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
    import resource

    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result["cpu_seconds"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 3)  # this process and its kernel
    from ..atomic import write_json_atomic

    write_json_atomic(task["result_path"], result)
    return 0


def _do_fill(task: Mapping[str, Any]) -> dict[str, Any]:
    """Prepare one method's features once (filling the embedding cache) so the runs only read them."""
    from ..data import load_dataset
    from ..embed import EmbedConfig
    from ..methods import build_method, resolve_method
    from ..methods.base import Context, clip_durations
    from ..train import TrainConfig
    from ..variants import FeatureSpec, resolve_duration

    ds = load_dataset(task["dataset"], group_by=task.get("group_by"), group_regex=task.get("group_regex"))
    spec = FeatureSpec.from_dict(task["variant"], where="fill task: variant")
    if not spec.resolved:
        spec, _ = resolve_duration(spec, clip_durations(ds))
    method = build_method(resolve_method(task["method"], where="fill task"))
    ctx = Context(classes=tuple(ds.classes), spec=spec, backbone=task["backbone"], train=TrainConfig(),
                  embed=EmbedConfig(batch_size=task["batch_size"], progress=False),
                  groups=tuple(c.group for c in ds.clips))
    feats = method.prepare(ds, ctx)
    return {"status": "completed", "rows": int(len(feats.row_clip)), "info": feats.info}


def _do_notebook(task: Mapping[str, Any]) -> dict[str, Any]:
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from ..notebook import default_kernel_name

    out = Path(task["output"])
    check = task.get("check")
    with file_lock(task.get("lock")):
        if check:
            run_dir = Path(check["run_dir"])
            if run_complete(run_dir, check["fingerprint"], check["variant"], check["fold"]):
                return {"status": "skipped", "notebook": str(out) if out.is_file() else None,
                        "note": "completed by another process"}
            _prepare_run_dir(run_dir, check["record"], export=bool(task["parameters"].get("export_model")))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.ipynb")
        kernel = task.get("kernel_name") or default_kernel_name()
        forked = {}
        if _TASK_LOG is not None:  # a forked task: its kernel is forked too (soundlib.sweep.kernels)
            from .kernels import ForkedKernelManager

            forked["kernel_manager_class"] = ForkedKernelManager
        error: dict[str, Any] | None = None
        for attempt in (1, 2):
            try:
                pm.execute_notebook(
                    nbformat.reads(task["notebook"], as_version=4), str(tmp),
                    parameters=task["parameters"], kernel_name=kernel, progress_bar=False, log_output=False,
                    cwd=task.get("cwd"), start_timeout=180,
                    extra_arguments=[f"--IPKernelApp.exec_lines={_KERNEL_EXEC_LINE}"], **forked,
                )
                error = None
                break
            except PapermillExecutionError as exc:  # a cell raised: report it, no retry
                error = {"ename": exc.ename, "evalue": exc.evalue, "cell": exc.exec_count}
                break
            except Exception as exc:  # kernel start-up / port clash / dead kernel: retry once
                traceback.print_exc()
                error = {"ename": type(exc).__name__, "evalue": str(exc), "cell": None}
                print(f"[soundlib sweep] attempt {attempt} failed: {error['ename']}: {error['evalue']}", flush=True)
        if error is not None and check:
            # a failed run is not complete, even when train_fold got as far as writing metrics.json
            (Path(check["run_dir"]) / METRICS_FILE).unlink(missing_ok=True)
        if tmp.is_file():
            # renamed by hand, not through soundlib.atomic: a failed run's notebook is kept (its error is read)
            os.replace(tmp, out)
        notebook = str(out) if out.is_file() else None
        if error is not None:
            return {"status": "failed", "notebook": notebook, **error}
        if check and RunMetrics.read(Path(check["run_dir"]), variant=check["variant"], fold=check["fold"]) is None:
            return {"status": "failed", "notebook": notebook, "ename": "MissingOutput", "cell": None,
                    "evalue": f"the notebook finished but wrote no valid {Path(check['run_dir']) / METRICS_FILE}"}
        return {"status": "completed", "notebook": notebook}
