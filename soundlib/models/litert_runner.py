"""The LiteRT copy of an exported picture model: converted at export, checked against the
SavedModel, and run with ``ai-edge-litert`` at load so that labelling imports no TensorFlow
(``$SOUNDLIB_MODEL_RUNTIME``: ``auto``, ``litert``, ``tf``).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from soundlib.audio.hashes import sha256_file
from soundlib.errors import ConfigError, ModelError, warn
from soundlib.models.format import (INFO_FILE, LITERT_FILE, LITERT_MAX_BYTES, LITERT_TOLERANCE, MODEL_RUNTIME_ENV,
                                    MODEL_RUNTIMES, file_problem)
from soundlib.pictures.variants import FeatureSpec

__all__ = ["litert_copy", "convert_to_litert", "model_runtime", "open_litert"]


def litert_copy(model_dir: Path, model: Any, spec: FeatureSpec) -> dict | None:
    """Convert the model just saved in ``model_dir`` to ``model_dir/model.tflite`` and check it; the manifest
    entry, or ``None`` (with a warning) when it cannot be converted or its copy disagrees with it."""
    out = model_dir / LITERT_FILE
    try:
        convert_to_litert(model, out, height=spec.height, width=spec.width)
        diff = _litert_difference(model, out, spec)
    except Exception as exc:  # an op LiteRT lacks, a converter failure: the SavedModel still serves
        out.unlink(missing_ok=True)
        warn(f"{model_dir.name}: no LiteRT copy of the model ({type(exc).__name__}: {str(exc)[:200]}); "
             "it will be labelled through TensorFlow")
        return None
    if not diff <= LITERT_TOLERANCE:
        out.unlink(missing_ok=True)
        warn(f"{model_dir.name}: the LiteRT copy's probabilities differ from the SavedModel's by {diff:.2g} "
             f"(more than {LITERT_TOLERANCE:g}); not kept, the model will be labelled through TensorFlow")
        return None
    return {"file": LITERT_FILE, "sha256": sha256_file(out), "size": out.stat().st_size,
            "input": "float32 (N, height, width, 3) in [0, 1]", "max_abs_difference": float(diff)}


def convert_to_litert(model: Any, out: str | os.PathLike, *, height: int, width: int) -> Path:
    """Convert a pictures -> probabilities tf_keras model (the one :func:`export_keras_model` saves) to a
    LiteRT flatbuffer (needs TensorFlow).

    The ``.tflite`` maps float32 pictures (N, height, width, 3) in [0, 1] (N free) to
    probabilities (N, n_classes), as the model does; only LiteRT's built-in ops are
    allowed (so ``ai-edge-litert`` alone runs it). Written atomically. Converting the
    model in memory spares reloading its SavedModel.
    """
    from soundlib.atomic import atomic_path
    from soundlib.runtime import filtered_stderr, import_tf

    tf, _ = import_tf()

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="pictures")])
    def probabilities(x):
        return {"probabilities": model(x, training=False)}

    # No trackable object: the converter then freezes the function's variables into constants itself, several
    # times faster than the SavedModel route it takes when given the model (as for mn04's LiteRT copy).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([probabilities.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with filtered_stderr(re.compile(""), stdout=True):  # the converter reports every step of its work
        blob = converter.convert()
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
    return out


def _litert_difference(model: Any, tflite: Path, spec: FeatureSpec) -> float:
    """Largest absolute difference between the model's and its LiteRT copy's probabilities on seeded probe
    pictures."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    rng = np.random.default_rng(0)
    probe = np.concatenate([np.zeros((1, spec.height, spec.width, 3), np.float32),
                            rng.random((3, spec.height, spec.width, 3), dtype=np.float32)])
    want = np.asarray(model(tf.constant(probe), training=False))
    got = _LiteRunner(tflite, interpreter=_interpreter_class(tf))(probe)
    return float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")


def _interpreter_class(tf=None):
    """``ai_edge_litert``'s Interpreter, else (at export, TensorFlow loaded) TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        if tf is None:
            raise
        return tf.lite.Interpreter
    return Interpreter


def model_runtime() -> str:
    """How exported models run here, from ``$SOUNDLIB_MODEL_RUNTIME``: ``auto`` (default: the LiteRT copy
    when the model has one and ``ai-edge-litert`` is installed), ``litert`` (required) or ``tf``."""
    value = os.environ.get(MODEL_RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in MODEL_RUNTIMES:
        raise ConfigError(f"${MODEL_RUNTIME_ENV}={value!r}: expected one of {', '.join(MODEL_RUNTIMES)}")
    return value


class _LiteRunner:
    """A ``.tflite`` pictures -> probabilities model in a LiteRT interpreter (XNNPACK), behind a lock.

    Called with float32 pictures (N, H, W, 3) in [0, 1]; the input is resized only when N changes.
    """

    def __init__(self, path: Path, *, interpreter=None, num_threads: int | None = None):
        from soundlib.runtime import filtered_stderr

        cls = interpreter or _interpreter_class()
        with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (on first allocation)
            self._it = cls(str(path), num_threads=num_threads or max(1, min(4, os.cpu_count() or 1)))
            inp = self._it.get_input_details()[0]
            self._in, self._out = inp["index"], self._it.get_output_details()[0]["index"]
            self.input_shape = tuple(int(v) for v in inp["shape"][1:])
            self.n_outputs = int(self._it.get_output_details()[0]["shape"][-1])
            if inp["dtype"] != np.float32:
                raise ModelError(f"{path}: expected a float32 picture input, got {inp['dtype']}")
            self._it.allocate_tensors()
        self._batch = int(inp["shape"][0])
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:  # one interpreter must not run two calls at once
            if len(x) != self._batch:
                self._it.resize_tensor_input(self._in, [len(x), *self.input_shape])
                self._it.allocate_tensors()
                self._batch = len(x)
            self._it.set_tensor(self._in, x)
            self._it.invoke()
            return np.array(self._it.get_tensor(self._out))


def open_litert(path: Path, info: Mapping[str, Any], spec: FeatureSpec, n_labels: int) -> "_LiteRunner | None":
    """The model's LiteRT copy, ready to run; ``None`` to use the SavedModel (a warning says why, when
    the copy is recorded but unusable). A copy whose checksum does not match falls back to the SavedModel."""
    mode = model_runtime()
    lite = info.get("litert")
    if mode == "tf":
        return None
    why = None
    if not lite:
        why = "it has no LiteRT copy (exported before soundlib made one, or its conversion failed)"
    elif not (path / LITERT_FILE).exists():
        why = f"its LiteRT copy {path / LITERT_FILE} is missing"
    elif (problem := file_problem(path / LITERT_FILE, lite["sha256"], size=lite.get("size"),
                                  limit=LITERT_MAX_BYTES)) is not None:
        why = (f"{path / LITERT_FILE} does not match the checksum recorded in {INFO_FILE} when the model was "
               f"exported ({problem}; the file was changed)")
    else:
        try:
            _interpreter_class()
        except ImportError:
            if mode == "litert":
                raise ModelError(f"{path}: ${MODEL_RUNTIME_ENV}=litert, but the LiteRT runtime is not installed: "
                                 "pip install 'soundlib[litert]'") from None
            return None  # the SavedModel serves, as without the extra
    if why is None:
        try:
            runner = _LiteRunner(path / LITERT_FILE)
        except (ValueError, RuntimeError, ModelError) as exc:
            why = f"{path / LITERT_FILE} could not be opened ({type(exc).__name__}: {str(exc)[:200]})"
        else:
            if runner.input_shape != (spec.height, spec.width, 3) or runner.n_outputs != n_labels:
                why = (f"{path / LITERT_FILE} takes {runner.input_shape} pictures and gives {runner.n_outputs} "
                       f"outputs, not ({spec.height}, {spec.width}, 3) and {n_labels}")
            else:
                return runner
    if mode == "litert":
        raise ModelError(f"{path}: ${MODEL_RUNTIME_ENV}=litert, but {why}")
    if lite:  # recorded but unusable: say so; a model without a copy loads quietly as before
        warn(f"{path}: {why}; using its SavedModel instead (TensorFlow, slower to start)")
    return None
