"""Reading an exported model back: :func:`load_model` opens one with clear errors for missing,
corrupt or edited parts. A reordered ``labels.txt`` or an edited ``feature_spec.json`` would make every
prediction silently wrong, so a model whose files no longer match the checksums recorded at export is
refused. Models of soundlib 0.1 (format ``soundlib-model/1``) have no checksums: they load with a
warning. A ``model.tflite`` that does not match its checksum is not used (the SavedModel is, with a warning).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from soundlib.errors import FeatureError, ModelError, SoundlibError, warn
from soundlib.models.format import (
    CHECKED_FILES,
    EMBEDDER_CHECKED_FILES,
    EMBEDDER_FILE,
    HEAD_FILE,
    INFO_FILE,
    LABELS_FILE,
    LITERT_FILE,
    MANIFEST_DIGEST,
    MODEL_FORMAT,
    READABLE_FORMATS,
    SAVED_MODEL,
    SIZES,
    SPEC_FILE,
    file_problem,
    manifest_digest,
    WAVEFORM_TFLITE_FILE,
    model_folder,
)
from soundlib.models.litert_runner import open_litert
from soundlib.pictures.variants import FeatureSpec

__all__ = ["read_labels", "read_model_info", "LoadedModel", "load_model"]


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
            lite.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", lite["sha256"]) and (
            lite.get("size") is None or _is_size(lite["size"]))):
        raise ModelError(f"{path}: 'litert' must be null or name {LITERT_FILE} with its SHA-256 (and size), "
                         f"got {lite!r}")
    sizes = info.get(SIZES)
    if sizes is not None and not (isinstance(sizes, dict) and set(sizes) <= set(checksums or {}) and all(
            _is_size(v) for v in sizes.values())):
        raise ModelError(f"{path}: {SIZES!r} must map checksummed files to their sizes in bytes, got {sizes!r}")
    digest = info.get(MANIFEST_DIGEST)
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise ModelError(f"{path}: {MANIFEST_DIGEST!r} must be a SHA-256 (64 hex digits), got {digest!r}")
    wave = info.get("waveform_tflite")
    if wave is not None and not (isinstance(wave, dict) and wave.get("file") == WAVEFORM_TFLITE_FILE and isinstance(
            wave.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", wave["sha256"])):
        raise ModelError(f"{path}: 'waveform_tflite' must be null or name {WAVEFORM_TFLITE_FILE} with its SHA-256, "
                         f"got {wave!r}")
    return info


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _verify_checksums(path: Path, info: Mapping[str, Any]) -> None:
    """Refuse a model whose labels or spec differ from what was exported; warn when it has no checksums."""
    checksums = info.get("checksums")
    if checksums is None:
        warn(f"{path}: exported without checksums (soundlib 0.1 or older), so edits to {LABELS_FILE} or "
             f"{SPEC_FILE} cannot be detected; re-export it to protect it")
        return
    if MANIFEST_DIGEST in info and info[MANIFEST_DIGEST] != manifest_digest(info):
        raise ModelError(f"{path / INFO_FILE}: edited after export (its content no longer matches its "
                         f"{MANIFEST_DIGEST}): what it states about the model (checksums, data, accuracy, embedder, "
                         "licences) cannot be trusted: restore it or export the model again")
    sizes = info.get(SIZES) or {}
    for name in checksums:
        why = file_problem(path / name, checksums[name], size=sizes.get(name))
        if why == "missing":
            raise ModelError(f"{path / name}: missing (the model was exported with it); export the model again")
        if why is not None:
            raise ModelError(
                f"{path / name}: does not match the checksum recorded in {INFO_FILE} when the model was exported "
                f"({why}); the file was edited (a reordered {LABELS_FILE} or a changed {SPEC_FILE} makes every "
                "prediction silently wrong): restore it or export the model again")


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

    @property
    def sr(self) -> int:
        """The sample rate in Hz the model takes audio at (its embedder's, or its feature spec's)."""
        return int(self.window.sr if self.modality == "waveform" else self.spec.sr)

    def array_windows(self, waveform: np.ndarray, sr: int, *, hop: float | None = None) -> tuple[list, np.ndarray]:
        """The windows the model labels in one clip given as an array (what a file of it would give).

        ``waveform`` (1-D, any finite numbers) is resampled from ``sr`` to :attr:`sr` (soxr, high quality),
        then cut like a file: the variant's windows (every ``hop`` seconds, default the model's; a short
        clip padded by the spec's ``pad``) or, for a model on an audio embedder, its windows (a clip
        shorter than an unpadded window as it is). Returns ``(windows, starts in seconds)``.
        """
        from soundlib.audio.clips import pad_to, window_starts

        y = _mono_array(waveform, sr)
        target = self.sr
        if int(sr) != target and y.size:
            import soxr

            y = np.asarray(soxr.resample(y, int(sr), target, quality="HQ"), np.float32)
        if self.modality == "waveform":
            duration, pad, default_hop = self.window.duration, self.window.pad, self.window.hop_seconds
        else:
            duration, pad, default_hop = self.spec.duration, self.spec.pad, self.spec.hop_seconds
        n = int(round(target * duration))
        if pad == "none" and len(y) <= n:
            return [y], np.zeros(1)
        pad = "end" if pad == "none" else pad
        starts = window_starts(len(y), n, max(1, int(round(target * (hop or default_hop)))))
        return [pad_to(y[s:s + n], n, policy=pad) for s in starts], np.asarray(starts, np.float64) / target

    def window_proba(self, waveform: np.ndarray, sr: int, *, hop: float | None = None,
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities of every window of a clip given as an array: ``(proba (n_windows,
        n_classes), starts in seconds)`` (see :meth:`array_windows`)."""
        windows, starts = self.array_windows(waveform, sr, hop=hop)
        if self.modality == "waveform":
            out = [self.predict_windows(np.stack(windows[s:s + batch_size]))
                   for s in range(0, len(windows), batch_size)]
        else:
            from soundlib.pictures.features import render

            out = [self.predict_pictures(np.stack([render(w, self.spec) for w in windows[s:s + batch_size]]))
                   for s in range(0, len(windows), batch_size)]
        return np.concatenate(out), starts

    def predict_proba(self, waveform: Any, sr: int, *, aggregate: str = "mean",
                      hop: float | None = None) -> np.ndarray:
        """Class probabilities of audio given as arrays, with any embedder (no file needed).

        Parameters
        ----------
        waveform : np.ndarray or sequence of np.ndarray
            One clip (1-D: mono samples), a batch of clips of one length (2-D: one clip per row), or a
            list of 1-D clips of any lengths. Resampled from ``sr`` to the model's rate inside.
        sr : int
            Their sample rate in Hz.
        aggregate : {"mean", "max"}
            How the windows of a clip longer than the model's window become one decision.

        Returns
        -------
        np.ndarray, float32
            Shape (len(labels),) for one 1-D clip, (n_clips, len(labels)) for a batch; the columns
            follow :attr:`labels`.
        """
        from soundlib.methods.base import aggregate as aggregate_windows

        if isinstance(waveform, np.ndarray) and waveform.ndim > 2:
            raise FeatureError(f"waveform must be 1-D (one clip) or 2-D (one clip per row), got shape "
                               f"{waveform.shape}; mix channels down first (e.g. y.mean(axis=0))")
        one = isinstance(waveform, np.ndarray) and waveform.ndim == 1
        clips = [waveform] if one else list(waveform)
        if not clips:
            return np.zeros((0, len(self.labels)), np.float32)
        out = []
        for y in clips:
            win, _ = self.window_proba(y, sr, hop=hop)
            out.append(aggregate_windows(win, np.zeros(len(win), np.int64), np.array([0]), how=aggregate)[0])
        return out[0] if one else np.stack(out)

    def __call__(self, waveform: Any, sr: int, **kwargs: Any) -> np.ndarray:
        """:meth:`predict_proba`."""
        return self.predict_proba(waveform, sr, **kwargs)

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


def _mono_array(waveform: Any, sr: Any) -> np.ndarray:
    """One clip's samples as float32 1-D, checked (a :class:`FeatureError` names what is wrong)."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not 1000 <= sr <= 768000:
        raise FeatureError(f"sr must be the waveform's sample rate in Hz (an integer in [1000, 768000]), got {sr!r}")
    try:
        y = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError):
        raise FeatureError(f"a waveform must be an array of numbers, got {type(waveform).__name__}") from None
    if y.ndim != 1:
        raise FeatureError(f"a waveform must be 1-D (mono samples), got shape {y.shape}; mix channels down first "
                           "(e.g. y.mean(axis=0))")
    if not y.size:
        raise FeatureError("a waveform has no samples")
    if not np.all(np.isfinite(y)):
        raise FeatureError("a waveform holds NaN or infinite samples")
    return y


def _no_model(path: Path, missing: str) -> ModelError:
    """Why the folder ``path`` has no model (a run that exports none, an incomplete run...), and what to do."""
    from soundlib.evaluation.metrics import RunMetrics
    from soundlib.evaluation.outputs import read_run_marker

    make = "make one with `soundlib train DATASET --test-fold K --out DIR` and pass DIR"
    run = RunMetrics.read(path)
    if run is not None and not run.exported:
        return ModelError(f"{path}: a run of method {run.method!r}, which exports no model (frozen on any "
                          "embedder, mfcc on its default statistics, finetune and scratch make one, auto its best "
                          "exportable candidate's; a fusion combines several); train with --method frozen "
                          "(--backbone mn04, yamnet...), finetune or scratch to get a model for `soundlib predict`")
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
    lite = open_litert(path, info, spec, len(labels))
    if lite is not None:
        return LoadedModel(path, labels, spec, info, lite, runtime="litert")
    from soundlib.runtime import import_hub, import_tf

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


def _load_embedder_model(path: Path) -> LoadedModel:
    """A model on an embedder it runs itself (an audio embedder, or the LiteRT int8 picture model; see
    :func:`export_embedder_model`), checked file by file.

    ``embedder.json`` is data, not an instruction: it must name a registered embedder (never a
    path or a URL), with the identity, modality and windows that embedder has for this feature spec, and
    ``head.npz`` must hold finite arrays of the shapes the labels and each other imply; all before the
    embedder is loaded."""
    from soundlib.methods.heads import LogisticHead

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
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, SoundlibError) as exc:
        raise ModelError(f"{path}: a part of the model is unreadable ({type(exc).__name__}: {exc})") from None
    embedder, window = _recorded_embedder(path / EMBEDDER_FILE, record, spec)
    head = LogisticHead(*_read_head(path / HEAD_FILE, len(labels)))
    loaded = embedder.load()
    dim = getattr(loaded, "output_dim", None)
    if isinstance(dim, int) and dim != head.mean.shape[0]:
        raise ModelError(f"{path / HEAD_FILE}: the head takes {head.mean.shape[0]}-d embeddings but "
                         f"{record['name']!r} makes {dim}-d ones; the file was edited or belongs to another model")
    prepare = getattr(embedder, "prepare_window", None)  # what one audio window becomes (MFCC: statistics)
    own = embedder.window(spec)

    def call(windows: np.ndarray) -> np.ndarray:
        x = np.stack([prepare(w, own) for w in windows]) if prepare is not None else windows
        return head.predict_proba(loaded(x, batch_size=16))

    if embedder.modality == "picture":  # the LiteRT int8 model: it labels the variant's pictures itself
        return LoadedModel(path, labels, spec, info, call, runtime="embedder", modality="picture")
    return LoadedModel(path, labels, spec, info, call, runtime="embedder", modality="waveform", window=window)

#: The keys of ``embedder.json`` (``license``: shown by ``soundlib info``; the rest checked here).
_EMBEDDER_KEYS = {"name", "options", "identity", "modality", "license", "window"}

def embedder_window(embedder: Any, spec: FeatureSpec):
    """The windows a model on ``embedder`` records for the feature spec ``spec`` (what :func:`export_embedder_model
    <soundlib.models.export.export_embedder_model>` writes into ``embedder.json``): the embedder's own windows,
    ``pad: none`` when it does not pad short clips."""
    from soundlib.embedders import WindowSpec

    w = embedder.window(spec)
    return WindowSpec(w.name, w.sr, w.n_samples / w.sr, w.hop_seconds,
                      w.pad if getattr(embedder, "pads_short_clips", True) else "none")

def _recorded_embedder(where: Path, record: Any, spec: FeatureSpec):
    """The embedder ``embedder.json`` names and its windows, after checking the record against the registry."""
    from soundlib.embedders import EmbedderOptions, WindowSpec, embedder_entry, embedder_names, resolve_embedder

    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise ModelError(f"{where}: expected an object naming the embedder ('name'), got {str(record)[:80]!r}")
    unknown = sorted(set(record) - _EMBEDDER_KEYS)
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected some of "
                         f"{', '.join(sorted(_EMBEDDER_KEYS))}")
    name = record["name"]
    entry = embedder_entry(name)
    if entry is None or not _runs_itself(name, entry):
        entries = {n: e for n in embedder_names() if (e := embedder_entry(n)) is not None}
        audio = [n for n, e in entries.items() if e.modality == "waveform"]
        pictures = [n for n, e in entries.items() if n not in audio and _runs_itself(n, e)]
        raise ModelError(f"{where}: 'name' {name[:120]!r} is not a registered audio embedder ({', '.join(audio)}) or "
                         f"picture embedder a model runs itself ({', '.join(pictures)}); a model names its embedder, "
                         "never a path, URL or picture backbone: the file was edited")
    if record.get("modality") != entry.modality:
        what = "audio ('waveform')" if entry.modality == "waveform" else "pictures ('picture')"
        raise ModelError(f"{where}: 'modality' {record.get('modality')!r}, but {name!r} embeds {what}")
    try:
        options = EmbedderOptions(**(record.get("options") or {}))
        embedder = resolve_embedder(name, options)
        window = WindowSpec(**record["window"])
    except (KeyError, TypeError, SoundlibError) as exc:
        raise ModelError(f"{where}: a part of the model is unreadable ({type(exc).__name__}: {exc})") from None
    if embedder.identity != record.get("identity"):
        raise ModelError(f"{where.parent}: the model was trained on embedder {record.get('identity')!r}, but "
                         f"{name!r} here is {embedder.identity!r} (other weights or another version): "
                         "its embeddings would not match the head; install the weights it names or train again")
    own = embedder_window(embedder, spec)
    wrong = [f"{k} {getattr(window, k)!r} (it computes {getattr(own, k)!r})" for k in ("sr", "duration", "window_hop",
                                                                                         "pad")
             if not _same(getattr(window, k), getattr(own, k))]
    if wrong:
        raise ModelError(f"{where}: the recorded window is not the one {name!r} uses for {SPEC_FILE}: "
                         f"{', '.join(wrong)}; the file was edited: restore it or export the model again")
    return embedder, own

def _runs_itself(name: str, entry: Any) -> bool:
    """Whether a model on the registered embedder ``name`` runs that embedder (an audio embedder, or a picture
    embedder whose SavedModel is not what it runs: the LiteRT int8 model), made without loading anything."""
    from soundlib.embedders import EmbedderOptions

    if entry.modality == "waveform":
        return True
    return not getattr(entry.factory(name, EmbedderOptions()), "runs_as_savedmodel", True)

def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b

def _read_head(where: Path, n_labels: int) -> tuple[Any, ...]:
    """``mean, scale, coef, intercept, temperature, multilabel`` of ``head.npz``: finite float arrays of shapes
    (d,), (d,), (k, d), (k,) with ``k`` the number of labels and a positive scale; the calibration temperature
    (a positive number; 1 in soundlib 0.2's heads, which have none) and whether the head is multi-label."""
    names = ("mean", "scale", "coef", "intercept")
    optional = ("temperature", "multilabel")
    try:
        with np.load(where, allow_pickle=False) as z:
            files = set(getattr(z, "files", []))
            if not isinstance(z, np.lib.npyio.NpzFile) or not set(names) <= files or not files <= {*names, *optional}:
                raise ValueError(f"expected the arrays {', '.join(names)} (and {', '.join(optional)}), got "
                                 f"{', '.join(sorted(files))}")
            arrays = [np.asarray(z[k]) for k in names]
            temperature = float(np.asarray(z["temperature"])) if "temperature" in files else 1.0
            multilabel = bool(np.asarray(z["multilabel"])) if "multilabel" in files else False
    except (OSError, ValueError, EOFError, TypeError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{where}: not a readable head ({type(exc).__name__}: {str(exc)[:200]})") from None
    for k, a in zip(names, arrays):
        if a.dtype.kind not in "fiu":
            raise ModelError(f"{where}: {k!r} holds {a.dtype} values, not numbers")
    mean, scale, coef, intercept = (a.astype(np.float64) for a in arrays)
    d = mean.shape[0] if mean.ndim == 1 else -1
    want = {"mean": (d,), "scale": (d,), "coef": (n_labels, d), "intercept": (n_labels,)}
    for k, a in zip(names, (mean, scale, coef, intercept)):
        if d < 1 or a.shape != want[k]:
            raise ModelError(f"{where}: {k!r} has shape {a.shape}, expected {want[k] if d >= 1 else '(dim,)'} "
                             f"({n_labels} labels in {LABELS_FILE}, {mean.shape} in 'mean')")
        if not np.isfinite(a).all():
            raise ModelError(f"{where}: {k!r} holds {int((~np.isfinite(a)).sum())} non-finite value(s) (NaN or "
                             "infinite); the file was edited or damaged: export the model again")
    if not (scale > 0).all():
        raise ModelError(f"{where}: 'scale' holds {int((scale <= 0).sum())} value(s) <= 0 (a standardisation "
                         "divides by it)")
    if not (np.isfinite(temperature) and 0 < temperature <= 1000):
        raise ModelError(f"{where}: 'temperature' must be a positive number, got {temperature!r}")
    return mean, scale, coef, intercept, temperature, multilabel
