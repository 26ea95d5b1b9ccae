"""Events on a long recording made of real clips with known boundaries: event precision and recall.

Builds one recording from real UrbanSound8K clips of the development subset's fold 1 (``--clips`` of
them, at least ``--min-seconds`` long, two per class where the fold has them, each from another
recording, in a seeded random order) joined by short silences (1-2 s of noise at -80 dB), and writes
the true events (start, end, label) beside it. A model is trained on the other folds (2, 3, 10) with
``--method`` (mn04 by default) and exported (``soundlib train --test-fold 1``), and ``soundlib predict
--events`` labels the recording with the event options given (the defaults, unless ``--grid``).

Scores, per label and over all events, with overlap >= 50 %:
  precision  share of detected events of which at least half lies inside true events of their label;
  recall     share of true events of which at least half is covered by detected events of their label.
``--grid`` adds a table over thresholds, boundaries, hops, merge gaps and minimum durations.

    SOUNDLIB_CACHE_DIR=/tmp/soundlib-bench-cache SOUNDLIB_MN04_CHECKPOINT=.../mn04_as_mAP_432.pt \\
        python bench/events.py [--dataset ../shared/data/urbansound8k_subset/manifest.csv] [--out /tmp/events] \\
        [--clips 18] [--grid] [--text bench/results/events.txt]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "data" / "urbansound8k_subset" / "manifest.csv"
SR = 32000


def build_recording(dataset, out: Path, *, n_clips: int, min_seconds: float, seed: int) -> tuple[Path, list[dict]]:
    """The long recording of fold-1 clips and its true events (written to ``out``)."""
    import soundfile as sf

    from soundlib.audio.clips import audio_info, read_segment

    rng = np.random.default_rng(seed)
    fold1 = [c for c in dataset.clips if c.fold == 1 and audio_info(c.path).duration >= min_seconds]
    by_class: dict[str, list] = {}
    for i in rng.permutation(len(fold1)):
        by_class.setdefault(fold1[i].label, []).append(fold1[i])
    chosen, used = [], set()
    for round_ in range(3):
        for label in sorted(by_class):
            pick = next((c for c in by_class[label] if c.group not in used), None)
            if pick is not None and len(chosen) < n_clips and sum(c.label == label for c in chosen) == round_:
                chosen.append(pick)
                used.add(pick.group)
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    parts, truth, t = [], [], 0.0
    noise = lambda n: (rng.normal(0, 1e-4, n)).astype(np.float32)  # noqa: E731  (-80 dB: a quiet room)
    for clip in chosen:
        gap = float(rng.uniform(1.0, 2.0))
        parts.append(noise(int(gap * SR)))
        t += len(parts[-1]) / SR
        y = read_segment(clip.path, sr=SR)
        parts.append(y + noise(len(y)))
        truth.append({"start": round(t, 3), "end": round(t + len(y) / SR, 3), "label": clip.label,
                      "source": clip.path.name})
        t += len(y) / SR
    parts.append(noise(SR))
    out.mkdir(parents=True, exist_ok=True)
    wav = out / "fold1_long.wav"
    sf.write(str(wav), np.concatenate(parts), SR, subtype="FLOAT")
    with open(out / "truth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["start", "end", "label", "source"])
        w.writeheader()
        w.writerows(truth)
    return wav, truth


def _covered(a: tuple[float, float], others: list[tuple[float, float]]) -> float:
    """Seconds of ``a`` covered by the union of ``others``."""
    pieces = sorted((max(a[0], s), min(a[1], e)) for s, e in others if min(a[1], e) > max(a[0], s))
    total, end = 0.0, a[0]
    for s, e in pieces:
        s = max(s, end)
        if e > s:
            total += e - s
            end = e
    return total


def score(detected: list[dict], truth: list[dict], *, overlap: float = 0.5) -> dict:
    """Event precision and recall, per label and over all (see the module docstring); also the mean
    onset and offset error (seconds) of the true events found, against the detection that overlaps each
    most, and the one-to-one F1 at intersection over union >= 0.5."""
    labels = sorted({e["label"] for e in truth} | {e["label"] for e in detected})
    per, tp_d, tp_t, errors, iou_hits = {}, 0, 0, [], 0
    for label in labels:
        det = [(float(e["start"]), float(e["end"])) for e in detected if e["label"] == label]
        tru = [(float(e["start"]), float(e["end"])) for e in truth if e["label"] == label]
        good_d = sum(_covered(d, tru) >= overlap * (d[1] - d[0]) for d in det)
        good_t = sum(_covered(t, det) >= overlap * (t[1] - t[0]) for t in tru)
        for t in tru:
            best = max(det, key=lambda d: min(t[1], d[1]) - max(t[0], d[0]), default=None)
            if best is not None and _covered(t, det) >= overlap * (t[1] - t[0]):
                errors.append((abs(best[0] - t[0]), abs(best[1] - t[1])))
        free = list(det)
        for t in tru:  # one-to-one matching at IoU >= 0.5 (at most one detection can match then)
            for d in free:
                inter = max(0.0, min(t[1], d[1]) - max(t[0], d[0]))
                if inter / (max(t[1], d[1]) - min(t[0], d[0])) >= 0.5:
                    free.remove(d)
                    iou_hits += 1
                    break
        per[label] = {"detected": len(det), "true": len(tru), "precision": good_d / len(det) if det else None,
                      "recall": good_t / len(tru) if tru else None}
        tp_d, tp_t = tp_d + good_d, tp_t + good_t
    precision = tp_d / len(detected) if detected else 0.0
    recall = tp_t / len(truth) if truth else 0.0
    iou_f1 = 2 * iou_hits / (len(detected) + len(truth)) if detected or truth else 0.0
    return {"precision": precision, "recall": recall, "detected": len(detected), "true": len(truth),
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0, "per_label": per,
            "onset_error": float(np.mean([e[0] for e in errors])) if errors else float("nan"),
            "offset_error": float(np.mean([e[1] for e in errors])) if errors else float("nan"), "iou_f1": iou_f1}


def detect_fast(model, timelines: dict, wav: Path, **options) -> list[dict]:
    """:func:`detect` from window probabilities computed once per hop (what ``predict`` does per file)."""
    from soundlib.models.events import EventRules, event_segments
    from soundlib.models.label import window_probabilities

    hop = options.pop("hop", None)
    if hop not in timelines:
        timelines[hop] = window_probabilities(model, wav, hop=hop)
    win, starts, length = timelines[hop]
    ends = np.minimum(length, starts + model.window_seconds)
    return [{"input": str(wav), **seg.to_dict()}
            for seg in event_segments(win, starts, ends, model.labels, rules=EventRules(**options))]


def detect(model, wav: Path, **options) -> list[dict]:
    from soundlib.models.events import EventRules
    from soundlib.models.label import predict

    hop = options.pop("hop", None)
    events: list = []
    _, failures = predict(model, [wav], top_k=1, events=events, rules=EventRules(**options), hop=hop)
    if failures:
        raise SystemExit(failures[0][1])
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--method", default="mn04")
    parser.add_argument("--out", type=Path, default=Path("/tmp/events"))
    parser.add_argument("--clips", type=int, default=18)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recordings", type=int, default=1, help="recordings built (seeds seed, seed+1, ...)")
    parser.add_argument("--grid", action="store_true")
    parser.add_argument("--text", type=Path, default=None)
    args = parser.parse_args(argv)

    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.events import EventRules
    from soundlib.models.load import load_model
    from soundlib.models.train import train_fold

    dataset = load_dataset(args.dataset)
    recordings = [build_recording(dataset, args.out / f"rec{k}", n_clips=args.clips, min_seconds=args.min_seconds,
                                  seed=args.seed + k) for k in range(args.recordings)]
    truth_all = [t for _, truth in recordings for t in truth]
    run = args.out / f"train_{args.method}"
    if not (run / "model").is_dir():
        train_fold(dataset, test_fold=1, config=EvalConfig(method=args.method), out_dir=run, overwrite=True,
                   progress=False)
    model = load_model(run)
    defaults = EventRules()

    def pooled(find) -> dict:
        detected, truth = [], []
        for k, (wav, t) in enumerate(recordings):  # labels made unique per recording, then scored together
            detected += [{**e, "label": f"{e['label']}#{k}"} for e in find(wav)]
            truth += [{**e, "label": f"{e['label']}#{k}"} for e in t]
        r = score(detected, truth)
        per: dict = {}
        for label, v in r["per_label"].items():
            p = per.setdefault(label.split("#")[0], {"true": 0, "detected": 0, "tp_t": 0.0, "tp_d": 0.0})
            p["true"] += v["true"]
            p["detected"] += v["detected"]
            p["tp_t"] += (v["recall"] or 0) * v["true"]
            p["tp_d"] += (v["precision"] or 0) * v["detected"]
        r["per_label"] = {k: {"true": v["true"], "detected": v["detected"],
                              "precision": v["tp_d"] / v["detected"] if v["detected"] else None,
                              "recall": v["tp_t"] / v["true"] if v["true"] else None} for k, v in sorted(per.items())}
        return r

    seconds = sum(t["end"] - t["start"] for t in truth_all)
    lines = [f"events of {args.method} (trained on folds 2, 3, 10 of {args.dataset}, calibrated) on "
             f"{len(recordings)} recording(s) of {args.clips} real fold-1 clips each (>= {args.min_seconds:g} s, "
             f"2 per class where the fold has them, one per source recording, 1-2 s of -80 dB noise between): "
             f"{len(truth_all)} true events, {seconds:.0f} s; model window {model.window_seconds:g} s, hop "
             f"{model.window.hop_seconds:g} s",
             "overlap >= 50 %: a detection counts when half of it lies in true events of its label; a true event "
             "when half of it is covered by detections of its label. onset/offset: mean |error| in s of the true "
             "events found. IoU-F1: one-to-one matches at intersection over union >= 0.5", ""]
    d = pooled(lambda wav: detect(model, wav))
    lines.append(f"defaults (soundlib predict --events, threshold {defaults.threshold:g}, boundaries "
                 f"{defaults.boundaries}, merge gap {defaults.merge_gap:g} s, min duration {defaults.min_duration:g} s, "
                 f"the model's hop): precision {d['precision']:.3f}, recall {d['recall']:.3f}, F1 {d['f1']:.3f} "
                 f"({d['detected']} detected, {d['true']} true); onset error {d['onset_error']:.2f} s, offset error "
                 f"{d['offset_error']:.2f} s; IoU-F1 {d['iou_f1']:.3f}")
    run0 = args.out / f"train_{args.method}_uncalibrated"
    if not (run0 / "model").is_dir():
        train_fold(dataset, test_fold=1, config=EvalConfig(method={"name": args.method, "method": args.method,
                                                                   "calibrate": False}),
                   out_dir=run0, overwrite=True, progress=False)
    model0 = load_model(run0)
    u = pooled(lambda wav: detect(model0, wav))
    lines.append(f"the same with the uncalibrated head (calibrate: false, soundlib 0.2): precision {u['precision']:.3f}, "
                 f"recall {u['recall']:.3f}, F1 {u['f1']:.3f} ({u['detected']} detected); IoU-F1 {u['iou_f1']:.3f}")
    lines.append("")
    lines.append(f"{'label':18} {'true':>4} {'det':>4} {'precision':>9} {'recall':>7}")
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for label, r in d["per_label"].items():
        lines.append(f"{label:18} {r['true']:4d} {r['detected']:4d} {fmt(r['precision']):>9} {fmt(r['recall']):>7}")
    if args.grid:
        lines += ["", f"{'threshold':>9} {'boundaries':>10} {'hop':>4} {'gap':>4} {'min':>4} {'det':>4} "
                      f"{'precision':>9} {'recall':>7} {'F1':>6} {'onset':>6} {'offset':>6} {'IoU-F1':>6}"]
        timelines: dict = {k: {} for k in range(len(recordings))}
        for th, bounds, hop, (gap, mind) in itertools.product((0.3, 0.4, 0.5, 0.6), ("windows", "centers"),
                                                              (None, 1.0, 0.5), ((0.0, 0.0), (1.0, 1.0))):
            wavs = [w for w, _ in recordings]
            options = dict(threshold=th, boundaries=bounds, hop=hop, merge_gap=gap, min_duration=mind)
            r = pooled(lambda wav, o=options, w=wavs: detect_fast(model, timelines[w.index(wav)], wav, **o))
            lines.append(f"{th:9.2f} {bounds:>10} {hop or model.window.hop_seconds:4g} {gap:4g} {mind:4g} "
                         f"{r['detected']:4d} {r['precision']:9.3f} {r['recall']:7.3f} {r['f1']:6.3f} "
                         f"{r['onset_error']:6.2f} {r['offset_error']:6.2f} {r['iou_f1']:6.3f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.text:
        args.text.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
