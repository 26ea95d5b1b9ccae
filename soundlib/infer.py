"""Label sounds with an exported model (the seed's labeler).

An exported model directory (see :func:`soundlib.train.export_model`) holds the
SavedModel, ``labels.txt`` and the ``feature_spec.json`` that turns a WAV into
the picture the model expects, so a raw WAV can be labelled later.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import FeatureError, ModelError, SoundlibError

__all__ = ["LoadedModel", "load_model", "predict", "PICTURE_EXTENSIONS", "expand_inputs"]

PICTURE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclasses.dataclass
class LoadedModel:
    path: Path
    labels: list[str]
    spec: Any
    info: dict
    _model: Any

    def predict_pictures(self, pictures: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities for uint8 (N, H, W, 3) pictures of the spec's size."""
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
    """Open an exported model directory; clear errors for missing or corrupt parts."""
    from .features import FeatureSpec

    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    for name in ("saved_model", "labels.txt", "feature_spec.json"):
        if not (path / name).exists():
            raise ModelError(f"{path}: not an exported soundlib model (missing {name}); "
                             "make one with `soundlib train ... --out DIR`")
    labels = [line.strip() for line in (path / "labels.txt").read_text().splitlines() if line.strip()]
    if not labels:
        raise ModelError(f"{path / 'labels.txt'}: no labels")
    try:
        spec = FeatureSpec.from_dict(json.loads((path / "feature_spec.json").read_text()))
    except (json.JSONDecodeError, SoundlibError, TypeError) as exc:
        raise ModelError(f"{path / 'feature_spec.json'}: not a valid feature spec ({exc})") from None
    info = {}
    if (path / "soundlib_model.json").is_file():
        try:
            info = json.loads((path / "soundlib_model.json").read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path / 'soundlib_model.json'}: corrupt ({exc})") from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorflow_hub  # noqa: F401  (registers ops some hub modules use)

    try:
        module = tf.saved_model.load(str(path / "saved_model"))
    except Exception as exc:
        raise ModelError(f"{path / 'saved_model'}: could not load the SavedModel ({type(exc).__name__}: "
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


def predict(model: "LoadedModel | str | os.PathLike", inputs: Sequence[str | os.PathLike], *,
            top_k: int = 5) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Top-k labels for WAVs, pictures or folders of them.

    Returns ``(rows, failures)``; each row: ``input, rank, label, probability``.
    """
    from .features import featurize_clip, read_picture

    if not isinstance(model, LoadedModel):
        model = load_model(model)
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
