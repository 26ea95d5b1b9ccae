"""Exported models: writing them, reading them back, and labelling sounds with them.

This module owns the exported-model format. A model folder holds

* ``saved_model/``: a SavedModel mapping float32 pictures (N, H, W, 3) in
  [0, 1] of the feature spec's size to class probabilities (N, n_classes);
* ``labels.txt``: one class name per line, in output order;
* ``feature_spec.json``: the :class:`~soundlib.variants.FeatureSpec` that turns
  audio into the picture the model expects (so a raw WAV can be labelled);
* ``soundlib_model.json``: format tag, backbone identity, training config,
  metadata, and the SHA-256 of ``labels.txt`` and ``feature_spec.json``.

:func:`export_model` writes one (into a temporary folder that replaces the old
model in one step); :func:`load_model` opens one with clear errors for missing,
corrupt or edited parts: a reordered ``labels.txt`` or an edited
``feature_spec.json`` would make every prediction silently wrong, so a model
whose files no longer match the checksums recorded at export is refused.
Models exported by soundlib 0.1 (format ``soundlib-model/1``) have no
checksums; they load with a warning.

soundlib never deletes a folder it did not make: :func:`check_model_target`
refuses to replace a folder that is not a soundlib model unless asked to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import ConfigError, FeatureError, ModelError, SoundlibError, warn
from .variants import FeatureSpec

__all__ = [
    "MODEL_FILES",
    "MODEL_FORMAT",
    "LoadedModel",
    "export_model",
    "export_keras_model",
    "load_model",
    "read_labels",
    "read_model_info",
    "is_soundlib_model",
    "check_model_target",
    "clean_stale_exports",
    "predict",
    "window_probabilities",
    "PICTURE_EXTENSIONS",
    "expand_inputs",
]

SAVED_MODEL = "saved_model"
LABELS_FILE = "labels.txt"
SPEC_FILE = "feature_spec.json"
INFO_FILE = "soundlib_model.json"
#: Files in an exported model directory.
MODEL_FILES = (SAVED_MODEL, LABELS_FILE, SPEC_FILE, INFO_FILE)
#: The format written now: ``soundlib-model/1`` plus the checksums of the files it lists.
MODEL_FORMAT = "soundlib-model/2"
#: Formats :func:`load_model` reads (``/1``: soundlib 0.1, no checksums).
READABLE_FORMATS = ("soundlib-model/1", MODEL_FORMAT)
#: The files whose SHA-256 the manifest records (``checksums`` in ``soundlib_model.json``).
CHECKED_FILES = (LABELS_FILE, SPEC_FILE)

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
    import tensorflow_hub as hub

    from .runtime import import_tf

    check_model_target(out_dir, overwrite=overwrite)
    if len(labels) != trained.n_classes:
        raise ModelError(f"{len(labels)} labels for a {trained.n_classes}-class model")
    tf, tf_keras = import_tf()
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
    import shutil

    from .atomic import apply_umask, jsonable, make_temp_dir, replace_dir

    out_dir = Path(out_dir)
    if not spec.resolved:
        raise ModelError(f"{out_dir}: the feature spec {spec.name!r} has duration {spec.duration!r}; a model "
                         "stores the window it was trained on (soundlib.variants.resolve_duration)")
    check_model_target(out_dir, overwrite=overwrite)
    if len(set(labels)) != len(labels) or any(not str(x).strip() or "\n" in str(x) for x in labels):
        raise ModelError(f"labels must be distinct one-line names, got {list(labels)}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir.parent, f".{out_dir.name}.tmp-{_host()}-{os.getpid()}-")
    try:
        model.save(str(tmp / SAVED_MODEL), include_optimizer=False, save_format="tf")
        (tmp / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
        full = {
            **dict(info or {}),
            "format": MODEL_FORMAT,
            "input": {"height": spec.height, "width": spec.width, "channels": 3, "dtype": "float32",
                      "range": [0, 1]},
            "checksums": {name: _sha256(tmp / name) for name in CHECKED_FILES},
        }
        (tmp / INFO_FILE).write_text(json.dumps(full, indent=2, default=jsonable), encoding="utf-8")
        apply_umask(tmp)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


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
        if not isinstance(checksums, dict) or sorted(checksums) != sorted(CHECKED_FILES) or not all(
                isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in checksums.values()):
            raise ModelError(f"{path}: 'checksums' must give the SHA-256 of {' and '.join(CHECKED_FILES)}, got "
                             f"{checksums!r}")
    return info


def _verify_checksums(path: Path, info: Mapping[str, Any]) -> None:
    """Refuse a model whose labels or spec differ from what was exported; warn when it has no checksums."""
    checksums = info.get("checksums")
    if checksums is None:
        warn(f"{path}: exported without checksums (soundlib 0.1 or older), so edits to {LABELS_FILE} or "
             f"{SPEC_FILE} cannot be detected; re-export it to protect it")
        return
    for name in CHECKED_FILES:
        if _sha256(path / name) != checksums[name]:
            raise ModelError(
                f"{path / name}: does not match the checksum recorded in {INFO_FILE} when the model was exported; "
                f"the file was edited (a reordered {LABELS_FILE} or a changed {SPEC_FILE} makes every prediction "
                "silently wrong): restore it or export the model again")


@dataclasses.dataclass
class LoadedModel:
    """An exported model ready to label pictures (see :func:`load_model`)."""

    path: Path
    labels: list[str]
    spec: FeatureSpec
    info: dict
    _model: Any

    def predict_pictures(self, pictures: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities of pictures.

        Parameters
        ----------
        pictures : np.ndarray, shape (N, spec.height, spec.width, 3), dtype uint8

        Returns
        -------
        np.ndarray, shape (N, len(labels)), float32
        """
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


def load_model(model_dir: str | os.PathLike) -> LoadedModel:
    """Open an exported model directory; clear errors for missing or corrupt parts.

    ``model_dir`` is the model folder, or the output folder of ``soundlib train --out DIR``
    (or of a sweep run) holding it as ``model/``.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    if not (path / SAVED_MODEL).exists() and (path / "model" / SAVED_MODEL).exists():
        path = path / "model"
    for name in (SAVED_MODEL, LABELS_FILE, SPEC_FILE):
        if not (path / name).exists():
            raise ModelError(f"{path}: not an exported soundlib model (missing {name}); make one with "
                             "`soundlib train DATASET --test-fold K --out DIR` and pass DIR")
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
    from .runtime import import_tf

    tf, _ = import_tf()
    import tensorflow_hub  # noqa: F401  (registers ops some hub modules use)

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
    from .audio import SILENCE_PEAK, audio_info, iter_windows
    from .errors import AudioError
    from .features import render

    spec = model.spec
    length = audio_info(path).duration
    starts, probas, batch, peak = [], [], [], 0.0
    for start, window in iter_windows(path, sr=spec.sr, duration=spec.duration, hop=hop or spec.hop_seconds,
                                      pad=spec.pad):
        starts.append(start)
        peak = max(peak, float(np.max(np.abs(window))) if window.size else 0.0)
        batch.append(render(window, spec))
        if len(batch) == batch_size:
            probas.append(model.predict_pictures(np.stack(batch)))
            batch.clear()
    if batch:
        probas.append(model.predict_pictures(np.stack(batch)))
    if not probas:
        raise AudioError(f"{path}: no audio windows to label")
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")
    return np.concatenate(probas), np.asarray(starts), length


def predict(model: LoadedModel, inputs: Sequence[str | os.PathLike], *, top_k: int = 5, aggregate: str = "mean",
            timeline: list | None = None) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Top-k labels for audio files, pictures or folders of them.

    An audio file is cut into the model's windows (a recording of minutes is
    streamed window by window) and the windows' probabilities are aggregated
    into one decision per file (``aggregate``: ``"mean"`` or ``"max"``).

    Parameters
    ----------
    timeline : list, optional
        When given, one row per window of each audio file is appended to it:
        ``input, start, end`` (seconds) and ``rank, label, probability`` for the top-k.

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
    rows, failures = [], []
    for path in expand_inputs(inputs):
        try:
            if path.suffix.lower() in PICTURE_EXTENSIONS:
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
                                             "end": round(float(min(length, start + model.spec.duration)), 3),
                                             "rank": rank, "label": model.labels[k], "probability": float(p[k])})
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
