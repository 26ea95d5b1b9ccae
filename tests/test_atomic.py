"""soundlib.atomic: the shared file lock (the atomic writes are exercised in tests/faults)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from soundlib.atomic import file_lock

pytest.importorskip("fcntl")

TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a+") as fh:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(3)
"""


def _other_process_gets(path) -> bool:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)]).returncode == 0


def test_file_lock_excludes_other_processes_until_released(tmp_path):
    path = tmp_path / "sub" / "x.lock"  # its folder is created
    with file_lock(path):
        assert path.exists()
        assert not _other_process_gets(path)
    assert _other_process_gets(path)


def test_file_lock_without_a_path_does_nothing(tmp_path):
    with file_lock(None):
        pass
    assert list(tmp_path.iterdir()) == []
