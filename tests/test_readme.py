"""The README's Python API example runs verbatim."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    """The first ```python block after the README's "### Python API" heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_example_is_short_and_uses_the_public_api():
    code = python_api_example()
    assert "results.load(" in code and "evaluate(" in code and "train_fold(" in code and "predict(" in code
    assert len(code.strip().splitlines()) <= 16
    compile(code, "README.md", "exec")


@pytest.mark.slow
def test_python_api_example_runs_verbatim(tmp_path):
    run = subprocess.run([sys.executable, "-c", python_api_example()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "accuracy_mean" in run.stdout and "precision" in run.stdout and "p_siren" in run.stdout
    res = json.loads((tmp_path / "api_demo" / "evaluate" / "results.json").read_text())
    assert len(res["per_fold"]) == 3 and res["dataset"]["clips"] == 60
    assert (tmp_path / "api_demo" / "train" / "model" / "labels.txt").is_file()
    assert "'rank': 1" in run.stdout and "api_demo/data/audio/fold1/" in run.stdout
