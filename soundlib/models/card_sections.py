"""The model card's sections on use and limits, per-class scores and calibration (:mod:`soundlib.models.card`).

Each function takes the checked facts of :func:`soundlib.models.card.card_facts` (a mapping) and returns
Markdown lines; nothing here reads files. Names from the user's files go through
:func:`soundlib.text.markdown`. The dataset is named by its name and its folder's name, never by the
absolute path it had on the machine that trained the model.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Mapping

__all__ = ["dataset_text", "per_class_problems", "intended_use", "limitations", "per_class_scores", "calibration",
           "calibration_text", "SYNTHETIC"]

#: The name soundlib's synthetic corpus loads under (``soundlib.audio.loaders``).
SYNTHETIC = "synthetic"


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def dataset_text(ds: Mapping[str, Any] | None) -> str:
    """``urbansound8k (folder `UrbanSound8K`, 8732 clips)``: the dataset's name and its folder's name (of ``folder``, or of
    the ``root`` that manifests of soundlib 0.3 and older record), never the absolute path."""
    from soundlib.text import markdown, markdown_code

    if not ds:
        return "not recorded"
    folder = ds.get("folder") or (PurePath(str(ds["root"])).name if isinstance(ds.get("root"), str) else None)
    where = f"folder {markdown_code(folder)}, " if folder else ""
    what = ", soundlib's generated tones and noises in the UrbanSound8K layout" if ds.get("name") == SYNTHETIC else ""
    return f"{markdown(ds.get('name'))}{what} ({where}{markdown(ds.get('clips'))} clips)"


def per_class_problems(value: Any) -> list[str]:
    """What is wrong with ``test_accuracy.per_class`` (class -> precision, recall, f1 in [0, 1], support >= 0)."""
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return ["test_accuracy.per_class should be an object of class names to scores"]
    bad = [c for c, v in value.items()
           if any(k in v and v[k] is not None and not (_number(v[k]) and 0 <= v[k] <= 1)
                  for k in ("precision", "recall", "f1", "ap"))
           or ("support" in v and not (isinstance(v["support"], int) and not isinstance(v["support"], bool)
                                       and v["support"] >= 0))]
    return [f"test_accuracy.per_class: class {c!r} has a score outside [0, 1] or a bad support" for c in bad[:3]]


def _non_commercial(f: Mapping[str, Any]) -> list[str]:
    rows = []
    for _identity, lic in f.get("embedders") or []:
        if lic is not None and ("NC" in lic.licence or "NON-COMMERCIAL" in lic.note or "CHECK" in lic.note):
            rows.append(f"{lic.weights}: {lic.licence}")
    return rows


def intended_use(f: Mapping[str, Any], window: str) -> list[str]:
    """## Intended use: what the model labels, of which audio, for what."""
    from soundlib.text import markdown

    n = len(f.get("classes") or [])
    multi = bool((f.get("info") or {}).get("multilabel"))
    labels = "any of its classes present in" if multi else "one of its"
    lines = ["## Intended use", "",
             f"- Labelling audio with {labels} {n} classes (above){' each window' if multi else ''}: a clip, or a "
             f"long recording window by window ({markdown(window)}), with `soundlib predict` or "
             "`soundlib.models.load_model`.",
             f"- For audio like its training data ({dataset_text(f.get('dataset'))}): the same kind of sounds, "
             "recording conditions and classes.",
             "- Research, prototyping and comparisons of embedders and methods; a decision that matters needs a "
             "test on data from where the model will be used."]
    nc = _non_commercial(f)
    if nc:
        lines.append("- Not for commercial use without checking the weights' licences: " + "; ".join(nc) + ".")
    return lines + [""]


def limitations(f: Mapping[str, Any]) -> list[str]:
    """## Limitations: the data, the protocol, the licences, and what the model was not tested on."""
    ds, tr = f.get("dataset") or {}, f.get("training") or {}
    multi = bool((f.get("info") or {}).get("multilabel"))
    data = (f"- Data: {tr.get('clips', '?')} training clips from {tr.get('recordings', '?')} recordings of one "
            f"dataset ({dataset_text(ds)}); classes with few clips (see the table above) are learnt least well.")
    if ds.get("name") == SYNTHETIC:
        data += (" This corpus is synthetic (generated tones and noises): the model's scores say nothing about "
                 "real recordings; it exists to show the pipeline working offline.")
    if f.get("test_fold") is not None:
        protocol = (f"- Protocol: the accuracy above is on fold {f['test_fold']} of the same dataset, whose "
                    "recordings were never in training; the same recording conditions, so an optimistic estimate "
                    "for audio from elsewhere.")
    else:
        protocol = ("- Protocol: trained on every fold, so no clip was held out; only a cross-validated accuracy "
                    "(when recorded above) estimates how well it does, on the same dataset.")
    lines = ["## Limitations", "", data, protocol,
             "- Not tested on: other datasets, microphones, sample rates or noise conditions; recordings "
             + ("with classes it does not know (a sound of no class may still score high on one)." if multi else
                "with overlapping sounds, or sounds of no class: it is single-label and always names one of its "
                "classes (there is no 'unknown')."),
             "- Probabilities: " + ("calibrated by one temperature on the validation recordings (see "
                                    "*Calibration*); check them on your own data before thresholding."
                                    if calibration(f) else
                                    "not calibrated; check them on your own data before thresholding."),
             "- Licences: the pretrained weights keep their own licences (see *Embedder and licences*); the "
             "training data's licence applies to what was learnt from it.", ""]
    return lines


def per_class_scores(f: Mapping[str, Any]) -> list[str]:
    """## Scores per class: precision, recall and F1 (and AP for multi-label) on the test fold, when recorded."""
    from soundlib.text import markdown

    ta = f.get("test_accuracy") or {}
    per = ta.get("per_class") if isinstance(ta, Mapping) else None
    if not isinstance(per, dict) or not per:
        return []
    has_ap = any(isinstance(v, dict) and v.get("ap") is not None for v in per.values())
    head = "| class | precision | recall | F1 |" + (" AP |" if has_ap else "") + " test clips |"
    lines = [f"## Scores per class (test fold {f.get('test_fold')})", "", head,
             "|---|---|---|---|" + ("---|" if has_ap else "") + "---|"]
    for c, v in per.items():
        ap = f" {_three(v.get('ap'))} |" if has_ap else ""
        lines.append(f"| {markdown(c)} | {_three(v.get('precision'))} | {_three(v.get('recall'))} | "
                     f"{_three(v.get('f1'))} |{ap} {v.get('support', '?')} |")
    return lines + [""]


def _three(x: Any) -> str:
    return f"{x:.3f}" if _number(x) else "-"


def calibration(f: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The manifest's ``calibration`` (``temperature``, ``method``) when it records a finite temperature."""
    cal = (f.get("info") or {}).get("calibration")
    return cal if isinstance(cal, Mapping) and _number(cal.get("temperature")) else None


def calibration_text(f: Mapping[str, Any]) -> str | None:
    """``temperature 0.74 (temperature scaling fitted on the validation recordings)``, or ``None``."""
    from soundlib.text import markdown

    cal = calibration(f)
    if cal is None:
        return None
    how = f" ({markdown(cal['method'])})" if isinstance(cal.get("method"), str) else ""
    return f"temperature {float(cal['temperature']):.3g}{how}"
