"""The exported-model format: its file names, its version, checksums and where a model folder is.

This module is the format's one definition; :mod:`~soundlib.models.export` writes a model and
:mod:`~soundlib.models.load` reads one. A model folder holds

* ``saved_model/``: a SavedModel mapping float32 pictures (N, H, W, 3) in [0, 1] of the feature spec's
  size to class probabilities (N, n_classes), or, for a model on an audio embedder, ``embedder.json``
  (the embedder's name, identity and window) and ``head.npz`` (the logistic head);
* ``labels.txt``: one class name per line, in output order;
* ``feature_spec.json``: the :class:`~soundlib.pictures.variants.FeatureSpec` that turns audio into
  the model's input;
* ``soundlib_model.json``: format tag, embedder identity, training config, metadata and the SHA-256
  of every file that changes a prediction;
* ``model.tflite`` (when the conversion succeeds): a LiteRT copy (:mod:`~soundlib.models.litert_runner`);
* ``model_waveform.tflite`` (when the conversion succeeds): one window of audio in, probabilities out, the
  front-end inside, with MediaPipe's audio metadata (:mod:`~soundlib.models.tflite_export`);
* ``MODEL_CARD.md``: generated from the manifest (:mod:`soundlib.models.card`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from soundlib.audio.hashes import sha256_file
from soundlib.errors import ModelError

__all__ = [
    "SAVED_MODEL", "LABELS_FILE", "SPEC_FILE", "INFO_FILE", "LITERT_FILE", "CARD_FILE", "MODEL_RUNTIME_ENV",
    "MODEL_RUNTIMES", "LITERT_TOLERANCE", "WAVEFORM_TFLITE_FILE", "EMBEDDER_FILE", "HEAD_FILE", "MODEL_FILES", "MODEL_FORMAT",
    "READABLE_FORMATS", "CHECKED_FILES", "EMBEDDER_CHECKED_FILES", "PICTURE_EXTENSIONS", "is_soundlib_model",
    "soundlib_version", "model_folder", "resolve_model_dir", "file_status",
]


SAVED_MODEL = "saved_model"

LABELS_FILE = "labels.txt"

SPEC_FILE = "feature_spec.json"

INFO_FILE = "soundlib_model.json"

#: The LiteRT copy of the model (optional; recorded under ``litert`` in the manifest).
LITERT_FILE = "model.tflite"

#: The waveform LiteRT model: audio in, probabilities out, front-end inside (recorded under ``waveform_tflite``).
WAVEFORM_TFLITE_FILE = "model_waveform.tflite"

#: The model card, generated from the manifest (:mod:`soundlib.models.card`).
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

def is_soundlib_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder whose ``soundlib_model.json`` carries a soundlib model format tag."""
    try:
        info = json.loads((Path(path) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and isinstance(info.get("format"), str) and info["format"].startswith(
        "soundlib-model/")

def soundlib_version() -> str:
    from soundlib import __version__

    return __version__

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
    waveform = info.get("waveform_tflite")
    if isinstance(waveform, dict):
        recorded[WAVEFORM_TFLITE_FILE] = waveform.get("sha256")
    out = {}
    embedder = info.get("kind") == "embedder"
    parts: tuple[str, ...] = ((*CHECKED_FILES, *EMBEDDER_CHECKED_FILES) if embedder
                              else (*CHECKED_FILES, LITERT_FILE, SAVED_MODEL))
    parts = (*parts, WAVEFORM_TFLITE_FILE)
    for name in (*parts, INFO_FILE, CARD_FILE):
        f = path / name
        if not f.exists():
            if name in recorded or name in (INFO_FILE, *CHECKED_FILES) or (name == SAVED_MODEL and not embedder):
                out[name] = "missing"
        elif name in recorded:
            out[name] = "ok" if f.is_file() and sha256_file(f) == recorded[name] else "MISMATCH"
        else:
            out[name] = "present (no checksum)"
    return out
