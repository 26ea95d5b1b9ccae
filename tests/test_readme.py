"""Every ```python block of the README runs (the ones that train a model are marked slow).

Each block is run as a reader would paste it, in a fresh folder, after a *prelude* that makes only what the
block names as the reader's own (``paths``, ``labels``... for the scikit-learn block; the ``mn04.tflite``
that the README's ``soundlib export`` line writes, for the MediaPipe block). A block no test runs fails
:func:`test_every_python_block_is_run`.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def block(marker: str) -> str:
    """The one block holding ``marker``."""
    found = [b for b in python_blocks() if marker in b]
    assert len(found) == 1, f"{len(found)} README python blocks hold {marker!r}"
    return found[0]


def python_api_example() -> str:
    """The first ```python block after the README's "### Python API" heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


#: Marker of each block -> the names it leaves to the reader (made by the test's prelude).
BLOCKS = {
    "generate_corpus(": set(),
    "AudioClassifier.create_from_options": {"samples"},
    "SoundClassifier(": {"paths", "labels", "recordings", "waveform"},
}


def free_names(code: str) -> set[str]:
    """Names a block reads without defining or importing them (and that are not builtins)."""
    tree = ast.parse(code)
    bound, used = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    return used - bound


def test_every_python_block_is_run():
    """Each block is one a test below runs, and leaves to the reader only what its prelude provides."""
    blocks = python_blocks()
    assert len(blocks) == len(BLOCKS), "a README python block no test runs: add it to BLOCKS and run it below"
    for marker, reader in BLOCKS.items():
        code = block(marker)
        compile(code, "README.md", "exec")
        assert free_names(code) == reader, (marker, free_names(code))


def test_example_is_short_and_uses_the_public_api():
    code = python_api_example()
    assert "results.load(" in code and "evaluate(" in code and "train_fold(" in code and "predict(" in code
    assert len(code.strip().splitlines()) <= 16
    compile(code, "README.md", "exec")


def test_the_results_sentence_names_what_exists():
    """The README's sentence on ``results.load`` names methods where they are: ``r.misclassified()`` and its
    siblings on the loaded object (a reader who calls ``r.predictions.misclassified()`` got AttributeError)."""
    from soundlib.results import Results

    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API"):text.index("```python", text.index("### Python API"))]
    said = set(re.findall(r"`r\.(\w+)\(\)`", section))
    assert said == {"probabilities", "misclassified", "calibration"}
    assert all(callable(getattr(Results, name, None)) for name in said)
    assert "`.misclassified()`" not in section  # not as if the predictions DataFrame had it


def run_block(code: str, cwd: Path, prelude: str = "", timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + "\n" + code], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_python_api_example_runs_verbatim(tmp_path):
    run = run_block(python_api_example(), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "accuracy_mean" in run.stdout and "precision" in run.stdout and "p_siren" in run.stdout
    res = json.loads((tmp_path / "api_demo" / "evaluate" / "results.json").read_text())
    assert len(res["per_fold"]) == 3 and res["dataset"]["clips"] == 60
    assert (tmp_path / "api_demo" / "train" / "model" / "labels.txt").is_file()
    assert "'rank': 1" in run.stdout and "api_demo/data/audio/fold1/" in run.stdout


#: What the reader has before the blocks on an mn04 model: a tiny corpus, and `models/mn04` as the README's
#: `soundlib train DATA --method mn04 --all-folds --out models/mn04` writes it.
MN04_SETUP = """
import subprocess, sys
from soundlib.audio.loaders import load_dataset
from soundlib.audio.synth import SynthConfig, generate_corpus
corpus = generate_corpus("data", SynthConfig(clips_per_class=3, duration=1.0, slices_per_recording=1, n_folds=3),
                         progress=False)
run = subprocess.run([sys.executable, "-m", "soundlib.cli", "train", str(corpus), "--method", "mn04", "--all-folds",
                      "--out", "models/mn04"], capture_output=True, text=True)
assert run.returncode == 0, run.stdout + run.stderr
"""


@pytest.fixture(scope="module")
def mn04_model(tmp_path_factory) -> Path:
    """A folder holding ``data/`` (30 one-second clips) and ``models/mn04`` (an mn04 model trained on them)."""
    root = tmp_path_factory.mktemp("readme_mn04")
    run = run_block(MN04_SETUP, root)
    assert run.returncode == 0, run.stderr[-3000:]
    return root


@pytest.mark.slow
def test_mediapipe_block_runs(mn04_model):
    pytest.importorskip("mediapipe", reason="the mediapipe extra is not installed")
    prelude = """
import subprocess, sys
import numpy as np
import soundfile as sf
import soxr
run = subprocess.run([sys.executable, "-m", "soundlib.cli", "export", "models/mn04", "--tflite", "mn04.tflite",
                      "--overwrite"], capture_output=True, text=True)  # the README's line above the block
assert run.returncode == 0, run.stdout + run.stderr
y, sr = sf.read(sorted(__import__("pathlib").Path("data").rglob("*.wav"))[0], dtype="float32")
samples = soxr.resample(np.concatenate([y, y, y]), sr, 32000).astype(np.float32)
"""
    run = run_block(block("AudioClassifier.create_from_options"), mn04_model, prelude)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert rows and all("[(" in line for line in rows), run.stdout  # timestamp, then (class, score) pairs


@pytest.mark.slow
def test_scikit_learn_block_runs(mn04_model):
    prelude = """
import numpy as np
import soundfile as sf
from soundlib.audio.loaders import load_dataset
ds = load_dataset("data")
paths = [str(c.path) for c in ds.clips]
labels = [c.label for c in ds.clips]
recordings = [c.group for c in ds.clips]
waveform = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
"""
    code = block("SoundClassifier(") + "\nprint('scores', list(scores), 'p', float(p.sum()), len(p))\n"
    run = run_block(code, mn04_model, prelude)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("scores"))
    assert line.endswith(" 10") and abs(float(line.split(" p ")[1].split()[0]) - 1.0) < 1e-4, line
