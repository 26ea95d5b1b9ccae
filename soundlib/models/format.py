"""The exported-model format: its file names, its version, checksums and where a model folder is.

This module is the format's one definition; :mod:`~soundlib.models.export` writes a model and
:mod:`~soundlib.models.load` reads one. A model folder holds

* ``saved_model/``: a SavedModel mapping float32 pictures (N, H, W, 3) in [0, 1] of the feature spec's
  size to class probabilities (N, n_classes), or, for a model on an audio embedder, ``embedder.json``
  (the embedder's name, identity and window) and ``head.npz`` (the logistic head);
* ``labels.txt``: one class name per line, in output order;
* ``feature_spec.json``: the :class:`~soundlib.pictures.variants.FeatureSpec` that turns audio into
  the model's input;
* ``soundlib_model.json``: format tag, embedder identity, training config, metadata, the SHA-256 (and,
  since soundlib 0.3, the size) of every file that changes a prediction, and ``manifest_sha256``: the
  SHA-256 of the manifest's own content (:func:`manifest_digest`), so that an edited statement (data,
  accuracy, embedder, licences) is detected like an edited file;
* ``model.tflite`` (when the conversion succeeds): a LiteRT copy (:mod:`~soundlib.models.litert_runner`);
* ``model_waveform.tflite`` (when the conversion succeeds): one window of audio in, probabilities out, the
  front-end inside, with MediaPipe's audio metadata (:mod:`~soundlib.models.tflite_export`);
* ``MODEL_CARD.md``: generated from the manifest (:mod:`soundlib.models.card`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping

from soundlib.audio.hashes import sha256_file
from soundlib.errors import ModelError

__all__ = [
    "SAVED_MODEL", "LABELS_FILE", "SPEC_FILE", "INFO_FILE", "LITERT_FILE", "CARD_FILE", "MODEL_RUNTIME_ENV",
    "MODEL_RUNTIMES", "LITERT_TOLERANCE", "WAVEFORM_TFLITE_FILE", "EMBEDDER_FILE", "HEAD_FILE", "MODEL_FILES", "MODEL_FORMAT",
    "READABLE_FORMATS", "CHECKED_FILES", "EMBEDDER_CHECKED_FILES", "PICTURE_EXTENSIONS", "is_soundlib_model",
    "soundlib_version", "model_folder", "resolve_model_dir", "file_status", "MANIFEST_DIGEST", "SIZES",
    "LITERT_MAX_BYTES", "manifest_digest", "file_problem",
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


#: The manifest key of :func:`manifest_digest` (written since soundlib 0.3; older manifests lack it).
MANIFEST_DIGEST = "manifest_sha256"


#: The manifest key of the checksummed files' sizes in bytes (since soundlib 0.3; ``litert`` has its own ``size``).
SIZES = "sizes"


#: A LiteRT flatbuffer cannot be larger than 2 GiB: a bigger ``model.tflite`` is not the one exported.
LITERT_MAX_BYTES = 2 << 30


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


def manifest_digest(info: Mapping[str, Any]) -> str:
    """The SHA-256 of a manifest's content but its own :data:`MANIFEST_DIGEST` entry (canonical JSON: sorted
    keys, no spaces, ASCII), which export records under :data:`MANIFEST_DIGEST`: any later edit of a
    statement (``training``, ``cross_validation``, ``embedder``...) or of a checksum changes it."""
    body = {k: v for k, v in info.items() if k != MANIFEST_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _size_text(n: int) -> str:
    return f"{n:,} bytes"


def file_problem(path: str | os.PathLike, sha256: Any, *, size: Any = None, limit: int | None = None) -> str | None:
    """Why ``path`` is not the file recorded at export, in a few words (``None``: it is).

    The file must be a regular file (a folder, a device or a named pipe is never hashed); its size is
    compared first with ``size`` (recorded at export) and ``limit`` (the largest such a file can be), so
    that a huge or sparse file is refused without reading it; then its SHA-256, read in blocks."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if isinstance(size, int) and not isinstance(size, bool) and st.st_size != size:
        return f"{_size_text(st.st_size)}, {_size_text(size)} recorded at export"
    if limit is not None and st.st_size > limit:
        return f"{_size_text(st.st_size)}, more than such a file can be ({_size_text(limit)})"
    try:
        digest = sha256_file(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    return None if digest == sha256 else "its SHA-256 differs from the one recorded at export"


def file_status(model_dir: str | os.PathLike, info: Mapping[str, Any]) -> dict[str, str]:
    """Each file of a model folder and whether it matches the checksum the manifest recorded at export:
    ``"ok"``, ``"MISMATCH"`` (with the reason in brackets when it is not the content: a size, not a
    regular file), ``"missing"``, or ``"present (no checksum)"``. The manifest itself is ``"ok"`` when
    its :data:`MANIFEST_DIGEST` matches its content. Reads no model, and never a file larger than the
    size recorded for it."""
    path = Path(model_dir)
    recorded = dict(info.get("checksums") or {}) if isinstance(info.get("checksums"), dict) else {}
    sizes = info[SIZES] if isinstance(info.get(SIZES), dict) else {}
    lite = info.get("litert")
    limits = {LITERT_FILE: LITERT_MAX_BYTES}
    if isinstance(lite, dict):
        recorded[LITERT_FILE] = lite.get("sha256")
        sizes = {**sizes, LITERT_FILE: lite.get("size")}
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
        elif name == INFO_FILE and MANIFEST_DIGEST in info:
            out[name] = ("ok" if info[MANIFEST_DIGEST] == manifest_digest(info) else
                         "MISMATCH (edited after export: its content differs from its manifest_sha256)")
        elif name in recorded:
            why = file_problem(f, recorded[name], size=sizes.get(name), limit=limits.get(name))
            out[name] = "ok" if why is None else "MISMATCH" if why.startswith("its SHA-256") else f"MISMATCH ({why})"
        else:
            out[name] = "present (no checksum)"
    return out
