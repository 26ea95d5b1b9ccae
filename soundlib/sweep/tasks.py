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

Each task works in its own temporary folder inside this process's private one,
``$TMPDIR/soundlib-sweep-<pid>-*`` (mode 0700: the kernels' connection files hold
their HMAC keys): the task and result files, the kernel's connection file and
every temporary file of the task's processes (``TMPDIR`` points there) go
there, and are removed when the task ends. A sweep killed with ``kill -9``
leaves its folder behind; the next sweep removes the folders of processes that
no longer run (:func:`clean_stale_temp`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Union

from soundlib.atomic import file_lock
from soundlib.audio.hashes import dataset_fingerprint
from soundlib.evaluation.metrics import METRICS_FILE, RunMetrics
from soundlib.sweep.processes import LIVE, ForkedProcess, exit_with, fork_available, tail, temp_dir

__all__ = [
    "TRAIN_NOTEBOOK", "EVALUATE_NOTEBOOK", "RUN_RECORD", "FillTask", "NotebookTask", "ShardTask", "Task", "fingerprint",
    "longest_first", "THREAD_VARS", "TASK_THREADS_ENV", "task_threads",
    "dataset_fingerprint", "read_run_record", "run_complete", "run_task", "child_main",
]


#: Notebooks a sweep executes.
TRAIN_NOTEBOOK = "train.ipynb"


EVALUATE_NOTEBOOK = "evaluate.ipynb"


RUN_RECORD = "params.json"


#: Run by each kernel at start-up: the kernel dies with the process that launched it.
_KERNEL_EXEC_LINE = "__import__('soundlib.runtime', fromlist=['_']).die_with_parent()"


_CHILD = "import sys; from soundlib.sweep.tasks import child_main; sys.exit(child_main(sys.argv[1]))"


@dataclasses.dataclass(frozen=True)
class FillTask:
    """Prepare one method's features once (filling the embedding cache) so that the runs only read them.

    Attributes
    ----------
    label : str
        Its name in progress and logs (``fill-mn04``, ``fill-efficientnet_lite0-mel``...).
    unit : str
        The :class:`~soundlib.methods.base.CacheUnit` key it fills.
    dataset : str
        The dataset path.
    method, variant : dict
        The method and variant prepared (``to_dict`` forms, read back in the task process).
    backbone : str
    batch_size : int
    picture : bool
        Whether its embedder embeds pictures (the first such fill exports the picture backbone).
    env : dict
        Environment variables of the task process.
    log : str
    group_by, group_regex : str or None
        How the dataset names its recordings (as the sweep's).
    """

    label: str
    unit: str
    dataset: str
    method: dict
    variant: dict
    backbone: str
    batch_size: int
    picture: bool
    env: dict
    log: str
    group_by: str | None = None
    group_regex: str | None = None
    kind: ClassVar[str] = "fill"

    def to_json(self) -> dict[str, Any]:
        """What the task process reads (plain data, with its ``kind``)."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class NotebookTask:
    """Execute a notebook with papermill: a training run (``check`` and the run's key set), or the
    evaluate notebook.

    Attributes
    ----------
    label : str
    notebook : str
        The notebook's JSON text.
    output : str
        Where the executed notebook goes.
    parameters : dict
        Its papermill parameters.
    kernel_name : str or None
    cwd, lock, log : str
    env : dict
    variant, method, fold
        The run's key (``None`` for the evaluate notebook).
    needs : tuple of str
        The cache units it reads (it starts once their fills are done).
    check : dict or None
        How to tell a complete run and what to record in its folder (``run_dir``, ``fingerprint``,
        ``variant``, ``fold``, ``record``).
    """

    label: str
    notebook: str
    output: str
    parameters: dict
    kernel_name: str | None
    cwd: str
    lock: str
    log: str
    env: dict
    variant: str | None = None
    method: str | None = None
    fold: int | None = None
    needs: tuple[str, ...] = ()
    check: dict | None = None
    kind: ClassVar[str] = "notebook"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One shard of a fill on a Dask cluster (:mod:`soundlib.sweep.shards`): run in the worker's own process by
    :func:`soundlib.sweep.shards.run_shard`, retried alone; ``unit`` is the cache unit its fill fills.

    Attributes
    ----------
    label : str
        ``<fill label>-shard<k>``.
    unit : str
    shard : soundlib.sweep.shards.Shard
    log : str
        The fill's log (unused on a worker: the shard reports through its result).
    """

    label: str
    unit: str
    shard: Any
    log: str = ""
    kind: ClassVar[str] = "shard"


#: A sweep task.
Task = Union[FillTask, NotebookTask, ShardTask]


def longest_first(tasks: "Iterable[Task]") -> "list[Task]":
    """Tasks in the order to start them: fills first (runs wait for them), then runs that export a model, then
    runs that draw the embedding map, then the others, each group in its given order. Long runs start early,
    so that short ones fill the other workers meanwhile instead of one long run finishing alone at the end
    (measured on the demo: one export takes as long as ~15 short runs)."""
    def cost(task: "Task") -> int:
        params = getattr(task, "parameters", None)
        if params is None:
            return -1
        return 0 if params.get("export_model") else 1 if params.get("embedding_map") else 2

    return sorted(tasks, key=cost)


def fingerprint(params: Mapping[str, Any], synth: Mapping[str, Any] | None, data: str | None = None) -> str:
    """The identity of a run: its notebook parameters (minus output-only ones), the synthetic corpus, and the
    dataset's contents (``data``: :func:`dataset_fingerprint`), so that a run over changed data runs again."""
    ident = {k: v for k, v in params.items() if k not in ("output_dir", "alert", "generate_if_missing", "progress",
                                                          "embedding_map")}
    ident["_synth"] = synth
    if data is not None:  # (without it: the fingerprint soundlib 0.1 recorded)
        ident["_data"] = data
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


def _prepare_run_dir(run_dir: Path, record: Mapping[str, Any], *, log: str | None = None) -> None:
    """Start a run afresh: no stale ``metrics.json`` can outlive the new parameters. The folder is
    marked as soundlib's (a folder soundlib did not make is refused, see :func:`soundlib.evaluation.outputs.claim_run_folder`);
    ``train_fold`` then removes the previous run's other outputs (a model it will not replace included)."""
    from soundlib.atomic import write_json_atomic
    from soundlib.evaluation.outputs import claim_run_folder

    claim_run_folder(run_dir, kind="sweep-run", option="sweep run folder",
                     ignore=[".lock", Path(log).name if log else "run.log"])
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    (run_dir / TRAIN_NOTEBOOK).unlink(missing_ok=True)
    for stale in list(run_dir.glob(".*.tmp*")) + list(run_dir.glob(".model.*")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    write_json_atomic(run_dir / RUN_RECORD, dict(record))


#: The thread-count variables of the numerical libraries a task uses (OpenMP: scikit-learn's t-SNE; BLAS; TensorFlow).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")
#: The threads each task may use (set by the local backend: the cores shared by the runs executed at once).
TASK_THREADS_ENV = "SOUNDLIB_TASK_THREADS"


def task_threads(jobs: int) -> int:
    """Threads per task when ``jobs`` tasks share this machine's cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs)))


def _limit_threads() -> None:
    """In a task process: at most ``$SOUNDLIB_TASK_THREADS`` threads in the libraries already loaded (the fork
    server imported numpy and scikit-learn before the limit was known); TensorFlow, imported later by the
    kernel, reads ``TF_NUM_*_THREADS`` from the environment."""
    threads = os.environ.get(TASK_THREADS_ENV)
    if threads and threads.isdigit():
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(threads))


def run_task(task: "FillTask | NotebookTask | Mapping[str, Any]", *, fork: bool = False,
             threads: int | None = None) -> dict[str, Any]:
    """Execute one task in a new process and return its result.

    Used by the local thread pool (``fork=True``: the process is forked from the
    warm fork server, see :func:`fork_available`; ``threads``: the threads each of
    its tasks may use, :func:`task_threads`, unless the environment already sets
    :data:`THREAD_VARS`) and, as is, as the Dask task function (a fresh ``python``
    process). Oversubscribed cores are slow: two tasks each running TensorFlow
    or OpenMP on every core took 2-5x longer than on one core each (measured on
    the demo, 2 cores). Never raises for a failing task: the
    failure is in the returned dict (``status``, ``ename``, ``evalue``, ``cell``,
    ``notebook``, ``seconds``).
    """
    t0 = time.perf_counter()
    task = task.to_json() if isinstance(task, (FillTask, NotebookTask)) else dict(task)
    work = Path(tempfile.mkdtemp(prefix="task-", dir=temp_dir()))
    result_path, task_path = str(work / "result.json"), str(work / "task.json")
    with open(os.open(task_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        json.dump({**task, "result_path": result_path}, fh)
    env = {**os.environ, **task.get("env", {}), "SOUNDLIB_SWEEP_PARENT": str(os.getpid()),
           "PYTHONUNBUFFERED": "1", "JUPYTER_PLATFORM_DIRS": "1", "TMPDIR": str(work),
           "JUPYTER_RUNTIME_DIR": str(work)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads is not None:
        env[TASK_THREADS_ENV] = str(int(threads))
        for var in THREAD_VARS:
            env.setdefault(var, str(int(threads)))
    log = Path(task["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    proc: "ForkedProcess | subprocess.Popen | None" = None
    try:
        if fork and fork_available():
            proc = ForkedProcess(_forked_main, task_path, log, env, task.get("cwd") or None)
            LIVE.add(proc)
            rc = proc.wait()
        else:
            with open(log, "w") as log_fh:
                proc = subprocess.Popen([sys.executable, "-c", _CHILD, task_path], stdin=subprocess.DEVNULL,
                                        stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                        cwd=task.get("cwd") or None)
                LIVE.add(proc)
                rc = proc.wait()
        result = _read_json(Path(result_path))
        if not isinstance(result, dict):
            result = {"status": "failed", "ename": "WorkerExit",
                      "evalue": f"the worker process exited with code {rc} before reporting; see {log}:\n"
                                + tail(log)}
    except BaseException as exc:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if isinstance(exc, Exception):
            result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
        else:
            raise
    finally:
        if proc is not None:
            LIVE.discard(proc)
        shutil.rmtree(work, ignore_errors=True)
    result.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return result


#: In a forked task process: its log file (None elsewhere); its kernel is forked too.
_TASK_LOG: str | None = None


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
    tempfile.tempdir = None  # read $TMPDIR again (the task's own folder), not the fork server's choice
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if cwd:
        os.chdir(cwd)
    try:
        child_main(task_path)
    finally:
        atexit._run_exitfuncs()  # multiprocessing ends its children with os._exit


def child_main(task_path: str) -> int:
    """Entry point of a task process (``python -c``); writes the result file."""
    from soundlib.runtime import die_with_parent

    die_with_parent(int(os.environ.get("SOUNDLIB_SWEEP_PARENT") or 0))
    _limit_threads()
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
    from soundlib.atomic import write_json_atomic

    write_json_atomic(task["result_path"], result)
    return 0


def _do_fill(task: Mapping[str, Any]) -> dict[str, Any]:
    """Prepare one method's features once (filling the embedding cache) so the runs only read them."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.methods import build_method, resolve_method
    from soundlib.methods.base import Context, clip_durations
    from soundlib.methods.train import TrainConfig
    from soundlib.pictures.variants import FeatureSpec, resolve_duration

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

    from soundlib.lab.notebook import default_kernel_name

    out = Path(task["output"])
    check = task.get("check")
    with file_lock(task.get("lock")):
        if check:
            run_dir = Path(check["run_dir"])
            if run_complete(run_dir, check["fingerprint"], check["variant"], check["fold"]):
                return {"status": "skipped", "notebook": str(out) if out.is_file() else None,
                        "note": "completed by another process"}
            _prepare_run_dir(run_dir, check["record"], log=task.get("log"))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.ipynb")
        kernel = task.get("kernel_name") or default_kernel_name()
        forked = {}
        if _TASK_LOG is not None:  # a forked task: its kernel is forked too (soundlib.sweep.kernels)
            from soundlib.sweep.kernels import ForkedKernelManager

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
