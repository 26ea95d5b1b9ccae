"""TensorFlow stays quiet: every import goes through soundlib.runtime, and the commands print none of its
start-up lines (the notebooks' outputs are checked in tests/test_notebooks.py)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SOUNDLIB = Path(__file__).resolve().parents[1] / "soundlib"
#: Modules whose import starts TensorFlow (tensorflow_hub and tf_keras import it themselves).
TF_MODULES = ("tensorflow", "tensorflow_hub", "tf_keras")
#: What TensorFlow prints while it starts: none of it may reach a user by default.
TF_NOISE = ("cuInit", "oneDNN", "cuda drivers", "absl", "This TensorFlow binary is optimized",
            "pkg_resources is deprecated")


def tf_noise(text: str) -> list[str]:
    """The lines of ``text`` that are TensorFlow start-up noise."""
    return [line for line in text.splitlines() if any(w in line for w in TF_NOISE)]


def _imports_tf(node: ast.AST) -> bool:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return any(n.split(".")[0] in TF_MODULES for n in names)


def test_tensorflow_is_imported_only_through_the_quiet_import():
    """Outside soundlib/runtime.py, a function imports TensorFlow, tensorflow_hub or tf_keras only after
    calling import_tf() or import_hub(), which import them with the noise filtered."""
    offenders = []
    for path in sorted(SOUNDLIB.rglob("*.py")):
        if path.name == "runtime.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            quiet = [n.lineno for n in ast.walk(func) if isinstance(n, ast.Call)
                     and getattr(n.func, "id", getattr(n.func, "attr", None)) in ("import_tf", "import_hub")]
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports_tf(node):
                    if not any(line < node.lineno for line in quiet):
                        offenders.append(f"{path.relative_to(SOUNDLIB.parent)}:{node.lineno}")
        for node in tree.body:  # module level: never
            if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports_tf(node):
                offenders.append(f"{path.relative_to(SOUNDLIB.parent)}:{node.lineno}")
    assert not offenders, f"import TensorFlow through soundlib.runtime.import_tf/import_hub: {offenders}"


def test_import_tf_quietens_tensorflow_imported_by_someone_else():
    """tensorflow_hub imported first brings TensorFlow with it: import_tf() still initialises the devices
    (where "failed call to cuInit" is said) with the noise filtered, and quietens TensorFlow's logger."""
    code = ("import tensorflow_hub, tensorflow as tf\n"
            "from soundlib.runtime import import_tf\n"
            "import_tf()\n"
            "print(tf.get_logger().level)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SOUNDLIB_VERBOSE")}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "40"  # logging.ERROR
    assert "cuInit" not in out.stderr and "cuda_platform" not in out.stderr, out.stderr


@pytest.mark.slow
def test_train_with_export_and_predict_print_no_tensorflow_noise(tmp_path, synth_corpus, monkeypatch):
    """`soundlib train` finds every embedding in the cache, so TensorFlow is first imported by the model
    export (as after the LiteRT embedding of `make demo`); then `soundlib predict`."""
    from soundlib.embedders.backbones import save_tiny_backbone
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold

    backbone = save_tiny_backbone(tmp_path / "tiny224", input_size=224)  # the mel variant's picture size
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    train_fold(load_dataset(synth_corpus), test_fold=1, config=EvalConfig(method="frozen", backbone=str(backbone)),
               out_dir=tmp_path / "fill", export=False, progress=False)  # fills the cache
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SOUNDLIB_VERBOSE")}

    def soundlib(*args):
        out = subprocess.run([sys.executable, "-m", "soundlib.cli", *map(str, args)], capture_output=True,
                             text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert not tf_noise(out.stdout + out.stderr), out.stdout + out.stderr
        return out

    soundlib("train", synth_corpus, "--variant", "mel", "--backbone", backbone, "--test-fold", 1,
             "--out", tmp_path / "m", "--quiet")
    assert (tmp_path / "m" / "model" / "saved_model").is_dir()
    wav = sorted((synth_corpus / "audio" / "fold1").glob("*.wav"))[0]
    assert soundlib("predict", tmp_path / "m", wav, "--top-k", "1").stdout.startswith(str(wav))
