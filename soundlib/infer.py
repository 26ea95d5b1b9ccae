"""Exported models: writing them, reading them back, and labelling sounds with them.

This module owns the exported-model format. A model folder holds

* ``saved_model/``: a SavedModel mapping float32 pictures (N, H, W, 3) in
  [0, 1] of the feature spec's size to class probabilities (N, n_classes);
* ``labels.txt``: one class name per line, in output order;
* ``feature_spec.json``: the :class:`~soundlib.variants.FeatureSpec` that turns
  audio into the picture the model expects (so a raw WAV can be labelled);
* ``soundlib_model.json``: format tag, backbone identity, training config, metadata.

:func:`export_model` writes one (into a temporary folder, renamed into place);
:func:`load_model` opens one with clear errors for missing or corrupt parts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import FeatureError, ModelError, SoundlibError
from .variants import FeatureSpec

__all__ = [
    "MODEL_FILES",
    "MODEL_FORMAT",
    "LoadedModel",
    "export_model",
    "load_model",
    "read_labels",
    "predict",
    "PICTURE_EXTENSIONS",
    "expand_inputs",
]

SAVED_MODEL = "saved_model"
LABELS_FILE = "labels.txt"
SPEC_FILE = "feature_spec.json"
INFO_FILE = "soundlib_model.json"
#: Files in an exported model directory.
MODEL_FILES = (SAVED_MODEL, LABELS_FILE, SPEC_FILE, INFO_FILE)
MODEL_FORMAT = "soundlib-model/1"

PICTURE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


# ---------------------------------------------------------------------------
# Writing

def export_model(
    out_dir: str | os.PathLike,
    trained: Any,
    *,
    backbone: Any,
    spec: FeatureSpec,
    labels: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model that labels pictures, atomically.

    Parameters
    ----------
    out_dir : path-like
        The model folder to create (replaced if it exists).
    trained : soundlib.train.TrainedHead
        A head trained on embeddings, or an end-to-end model.
    backbone : soundlib.backbones.BackboneInfo
        The backbone the head was trained on (its SavedModel enters the exported model).
    spec : FeatureSpec
        Turns audio into the model's input pictures.
    labels : sequence of str
        Class names in output order.
    metadata : mapping, optional
        Extra entries for ``soundlib_model.json`` (test fold, protocol...).
    """
    import shutil
    import tempfile

    import tensorflow_hub as hub

    from .atomic import jsonable
    from .runtime import import_tf

    tf, tf_keras = import_tf()
    out_dir = Path(out_dir)
    if len(labels) != trained.n_classes:
        raise ModelError(f"{len(labels)} labels for a {trained.n_classes}-class model")
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
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save(str(tmp / SAVED_MODEL), include_optimizer=False, save_format="tf")
        (tmp / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2))
        info = {
            "format": MODEL_FORMAT,
            "backbone": backbone.identity,
            "input": {"height": size[0], "width": size[1], "channels": 3, "dtype": "float32", "range": [0, 1]},
            "train_config": trained.config.to_dict(),
            "history": trained.history,
            **dict(metadata or {}),
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, default=jsonable))
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
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
    return labels


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
    labels = read_labels(path)
    try:
        spec = FeatureSpec.from_dict(json.loads((path / SPEC_FILE).read_text()), where=str(path / SPEC_FILE))
    except (json.JSONDecodeError, SoundlibError, TypeError) as exc:
        raise ModelError(f"{path / SPEC_FILE}: not a valid feature spec ({exc})") from None
    info = {}
    if (path / INFO_FILE).is_file():
        try:
            info = json.loads((path / INFO_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path / INFO_FILE}: corrupt ({exc})") from None
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
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file()
                          and q.suffix.lower() in AUDIO_EXTENSIONS | PICTURE_EXTENSIONS)
        else:
            out.append(p)
    return out


def predict(model: LoadedModel, inputs: Sequence[str | os.PathLike], *,
            top_k: int = 5) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Top-k labels for audio files, pictures or folders of them.

    Returns ``(rows, failures)``; each row: ``input, rank, label, probability``.
    A file that fails is reported in ``failures`` and the others go on.
    """
    from .featurize import featurize_clip, read_picture

    rows, failures = [], []
    for path in expand_inputs(inputs):
        try:
            if path.suffix.lower() in PICTURE_EXTENSIONS:
                pic = read_picture(path)
                want = (model.spec.height, model.spec.width)
                if pic.shape[:2] != want:
                    raise FeatureError(f"{path}: picture is {pic.shape[1]}x{pic.shape[0]} pixels; the model's "
                                       f"feature spec {model.spec.name!r} makes {want[1]}x{want[0]}")
            else:
                pic = featurize_clip(path, model.spec)
            proba = model.predict_pictures(pic[None])[0]
        except SoundlibError as exc:
            failures.append((path, str(exc)))
            continue
        for rank, k in enumerate(np.argsort(-proba)[:top_k], start=1):
            rows.append({"input": str(path), "rank": rank, "label": model.labels[k], "probability": float(proba[k])})
    return rows, failures
