"""Kernels forked from a run's task process (soundlib.sweep.kernels) and task processes forked from the fork server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from soundlib.sweep.kernels import ForkedKernelManager, _forkable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking kernels is Linux-only here")


def test_only_ipykernel_on_this_interpreter_is_forked():
    me = sys.executable
    assert _forkable([me, "-m", "ipykernel_launcher", "-f", "c.json"]) == ["-f", "c.json"]
    assert _forkable([me, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "c.json", "--x=1"]) == [
        "-f", "c.json", "--x=1"]
    assert _forkable(["/usr/bin/env", "R", "--slave", "-f", "c.json"]) is None
    assert _forkable([me, "-X", "importtime", "-m", "ipykernel_launcher", "-f", "c.json"]) is None
    assert _forkable(["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "c.json"]) is None


def test_forked_kernel_is_a_kernel_of_its_own(tmp_path):
    """It runs code in its own process and session, in the asked folder and environment, as this process's
    child; it can be interrupted and shuts down cleanly."""
    from soundlib.lab.notebook import default_kernel_name

    async def scenario():
        km = ForkedKernelManager(kernel_name=default_kernel_name())
        await km.start_kernel(cwd=str(tmp_path), env={**os.environ, "SOUNDLIB_TEST_MARK": "forked"})
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            outputs = []
            code = ("import os, json; print(json.dumps([os.getpid(), os.getppid(), os.getsid(0), os.getcwd(), "
                    "os.environ.get('SOUNDLIB_TEST_MARK'), open('/proc/self/comm').read().strip()]))")
            reply = await kc.execute_interactive(code, timeout=60, output_hook=outputs.append)
            assert reply["content"]["status"] == "ok"
            text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
            pid, ppid, sid, cwd, mark, name = json.loads(text)
            assert pid == km.provisioner.pid != os.getpid() and ppid == os.getpid() and sid == pid
            assert (cwd, mark, name) == (str(tmp_path), "forked", "soundlib-kernel")
            msg = kc.execute("import time; time.sleep(60)")
            await asyncio.sleep(1.0)
            await km.interrupt_kernel()
            reply = await kc._async_get_shell_msg(timeout=30)
            while reply["parent_header"].get("msg_id") != msg:
                reply = await kc._async_get_shell_msg(timeout=30)
            assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel()
        assert km.provisioner is None or not km.has_kernel
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    asyncio.run(scenario())


def test_unguarded_script_is_not_run_again_in_task_processes(tmp_path):
    """multiprocessing would import the caller's __main__ in every task process; a script without
    `if __name__ == "__main__"` that runs a task must not be executed again."""
    marker = tmp_path / "marker.txt"
    script = tmp_path / "unguarded.py"
    empty = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1", "outputs": [],
                        "execution_count": None, "id": "p"}],
             "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
             "nbformat": 4, "nbformat_minor": 5}
    script.write_text(textwrap.dedent(f"""
        import json
        from soundlib.lab.notebook import default_kernel_name
        from soundlib.sweep.tasks import run_task
        with open({str(marker)!r}, "a") as fh:
            fh.write("ran\\n")
        out = {str(tmp_path / "out")!r}
        r = run_task({{"kind": "notebook", "notebook": json.dumps({empty!r}), "output": out + "/nb.ipynb",
                      "parameters": {{"x": 2}}, "kernel_name": default_kernel_name(), "log": out + "/run.log",
                      "lock": out + "/.lock"}}, fork=True)
        print(json.dumps(r))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed", result
    assert marker.read_text() == "ran\n"
    assert Path(result["notebook"]).is_file()


def _run_forked_notebook(tmp_path: Path, cell: str, *, threads: int | None = None) -> Path:
    """Run a two-cell notebook (a parameters cell, then ``cell``) as a sweep task forked from the fork server, in
    a script of its own; assert it completed; return the executed notebook."""
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1", "outputs": [],
                     "execution_count": None, "id": "p"},
                    {"cell_type": "code", "metadata": {}, "source": cell, "outputs": [], "execution_count": None,
                     "id": "c"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    script = tmp_path / "run.py"
    out = tmp_path / "out"
    script.write_text(textwrap.dedent(f"""
        import json
        from soundlib.lab.notebook import default_kernel_name
        from soundlib.sweep.tasks import run_task
        if __name__ == "__main__":
            r = run_task({{"kind": "notebook", "notebook": json.dumps({nb!r}), "output": {str(out / "nb.ipynb")!r},
                          "parameters": {{"x": 2}}, "kernel_name": default_kernel_name(),
                          "log": {str(out / "run.log")!r}, "lock": {str(out / ".lock")!r}}}, fork=True,
                         threads={threads!r})
            print(json.dumps(r))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "completed"
    return out / "nb.ipynb"


def test_kernel_with_a_semaphore_shuts_down_by_itself(tmp_path):
    """A notebook that creates a multiprocessing lock (tqdm does) uses the inherited resource tracker: no
    "resource_tracker: process died unexpectedly" warning in its output, and its kernel exits on the shutdown
    request (its atexit handlers run) instead of hanging until jupyter_client terminates it."""
    marker = tmp_path / "exited.txt"
    cell = textwrap.dedent(f"""
        import atexit, multiprocessing
        lock = multiprocessing.RLock()
        atexit.register(lambda: open({str(marker)!r}, "w").write("clean"))
    """)
    notebook = _run_forked_notebook(tmp_path, cell)
    executed = json.loads(notebook.read_text())
    text = json.dumps([c.get("outputs") for c in executed["cells"]])
    assert "resource_tracker" not in text, text
    assert marker.read_text() == "clean", "the kernel did not exit by itself on the shutdown request"


def test_tasks_share_the_cores(tmp_path, monkeypatch):
    """With ``threads``, a forked task's kernel runs its libraries on that many threads: the OpenMP and BLAS
    pools already loaded by the fork server are limited, and TensorFlow (imported later) reads the variables;
    a variable the user set is kept."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    cell = textwrap.dedent(f"""
        import json, os
        import sklearn.manifold, numpy  # (OpenMP and BLAS, as the t-SNE and the heads load them)
        from threadpoolctl import threadpool_info
        pools = sorted({{p["user_api"]: p["num_threads"] for p in threadpool_info()}}.items())
        open({str(tmp_path / "seen.json")!r}, "w").write(json.dumps(
            {{"pools": pools, "intra": os.environ.get("TF_NUM_INTRAOP_THREADS"),
             "inter": os.environ.get("TF_NUM_INTEROP_THREADS")}}))
    """)
    _run_forked_notebook(tmp_path, cell, threads=1)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["intra"] == "1" and seen["inter"] == "3"
    assert seen["pools"] and all(n == 1 for _, n in seen["pools"]), seen["pools"]
