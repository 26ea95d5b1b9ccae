"""The commands: each ``cmd_*`` takes the parsed arguments and returns the exit status; their arguments
are declared in :mod:`soundlib.cli.parser`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from soundlib.cli.cluster import cluster, embed_on_cluster, fill_on_cluster
from soundlib.cli.options import backbone_from_args, embed_config_from_args, eval_config_from_args
from soundlib.text import visible

__all__ = [
    "cmd_synth", "cmd_variants", "cmd_featurize", "cmd_gallery", "cmd_download", "cmd_evaluate", "cmd_train",
    "cmd_info", "cmd_embed", "cmd_embedders", "cmd_export", "TAG_COLUMNS", "cmd_tag", "PREDICT_COLUMNS", "TIMELINE_COLUMNS",
    "cmd_predict", "cmd_notebooks", "cmd_sweep",
]


def _check_folders(args: argparse.Namespace, *options: tuple[str, str]) -> None:
    """Refuse, before any work, output folders (``(dest, the option's name)``) that cannot be folders: a file,
    a path under a file, a place that takes no files; the message names the option."""
    from soundlib.evaluation.outputs import check_output_folder

    for dest, option in options:
        if getattr(args, dest, None) is not None:
            check_output_folder(getattr(args, dest), option=option)

def cmd_synth(args: argparse.Namespace) -> int:
    from soundlib.audio.synth import SynthConfig, generate_corpus
    from soundlib.config import from_mapping

    _check_folders(args, ("out_dir", "out_dir"))
    cfg = from_mapping(SynthConfig, {"clips_per_class": args.clips_per_class, "seed": args.seed,
                                     "duration": args.duration}, where="command line")
    out = generate_corpus(args.out_dir, cfg, progress=not args.quiet)
    print(f"synthetic corpus ({10 * cfg.clips_per_class} clips, seed {cfg.seed}) in {out}")
    if args.mix:
        from soundlib.audio.loaders import load_dataset
        from soundlib.audio.synth.mix import mix_pairs

        manifest = mix_pairs(load_dataset(out), out / "mixtures", sr=cfg.sr, seed=cfg.seed)
        print(f"multi-label mixtures (pairs at 0 and 6 dB, and the single clips) in {manifest}")
    return 0


def cmd_variants(args: argparse.Namespace) -> int:
    import json

    from soundlib.pictures.variants import AUTO_DURATION_PERCENTILE, DURATION_RULES, VARIANTS, variants_yaml

    if args.yaml:
        sys.stdout.write(variants_yaml())
        return 0
    if args.json:
        print(json.dumps({name: spec.to_dict(every_field=True) for name, spec in VARIANTS.items()}, indent=2))
        return 0
    for name, spec in VARIANTS.items():
        d = spec.to_dict(every_field=True)
        merge = d.pop("merge")
        d.pop("name")
        if spec.resolved:
            print(f"{name}  [key {spec.key()}]")
        else:  # the key of the longest window its rule allows (4 s for fit: what 4-s clips get)
            longest = DURATION_RULES[str(spec.duration)][1]
            print(f"{name}  [key {spec.replace(duration=longest).key()} at {longest:g} s]")
        print("    " + ", ".join(f"{k}={v}" for k, v in d.items()))
        if spec.kind in ("merged", "stacked"):
            print("    merge: " + ", ".join(f"{k}={v}" for k, v in merge.items()))
    for rule in sorted({str(spec.duration) for spec in VARIANTS.values() if not spec.resolved}):
        low, high = DURATION_RULES[rule]
        print(f"duration={rule}: the clips' length ({AUTO_DURATION_PERCENTILE}th percentile, rounded up to 0.1 s) "
              f"within [{low:g}, {high:g}] s, chosen when the dataset is read (one clip: its own length)")
    return 0


def _featurize_inputs(path: Path):
    """A dataset with metadata (UrbanSound8K, ESC-50, a manifest CSV), or any folder holding audio files:
    pictures mirror its tree, so sub-folders need not be classes."""
    from soundlib.audio.datasets import AUDIO_EXTENSIONS
    from soundlib.audio.loaders import list_audio_files, load_dataset
    from soundlib.errors import DatasetError

    has_metadata = (path / "metadata" / "UrbanSound8K.csv").is_file() or (path / "meta" / "esc50.csv").is_file()
    if path.is_dir() and not has_metadata:
        files, broken = list_audio_files(path)
        if not files and not broken:
            raise DatasetError(f"{path}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder or "
                               "its sub-folders")
        return files + broken, path  # a broken or looping link is reported as a failed file
    ds = load_dataset(path, check_files=False)  # missing files are reported per file below
    return ds.clips, ds.root


def cmd_featurize(args: argparse.Namespace) -> int:
    from soundlib.pictures.featurize import featurize
    from soundlib.pictures.variants import resolve_variant

    _check_folders(args, ("out", "--out"))
    spec = resolve_variant(args.variant, where="--variant")
    clips, root = _featurize_inputs(Path(args.dataset))
    report = featurize(clips, spec, out_dir=args.out, root=root, jobs=args.jobs, progress=not args.quiet)
    print(
        f"featurize {spec.name} ({report.spec.duration:g}-s window): {len(report.written)} written, "
        f"{len(report.skipped)} already there, {len(report.failures)} failed -> {args.out}"
    )
    if report.failures:
        print(report.failure_text(), file=sys.stderr)
        return 1
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from soundlib.pictures.featurize import write_gallery

    _check_folders(args, ("out_dir", "out_dir"))
    for path in write_gallery(args.clip, args.out_dir):
        print(path)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from soundlib.audio.download import download

    _check_folders(args, ("data_home", "--data-home"))
    home = download(args.dataset, args.data_home, validate=not args.no_validate)
    print(f"{args.dataset} ready in {home}")
    return 0


def _load(args: argparse.Namespace):
    from soundlib.audio.loaders import load_dataset

    return load_dataset(args.dataset, group_by=args.group_by, group_regex=args.group_regex)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from soundlib.evaluation.evaluate import evaluate, format_summary

    _check_folders(args, ("out", "--out"), ("summaries_dir", "--summaries-dir"))
    config = eval_config_from_args(args, leaky_split=args.leaky_split,
                                   folds=tuple(args.folds) if args.folds else None)
    with cluster(args) as client:
        ds = _load(args)
        if client is not None:
            fill_on_cluster(args, client, ds, config)
    results = evaluate(ds, config, out_dir=args.out, embed_config=embed_config_from_args(args),
                       overwrite=args.overwrite, progress=not args.quiet)
    if results["cross_fold_groups"]:
        print(f"note: {len(results['cross_fold_groups'])} recording group(s) appear in more than one of the "
              f"dataset's folds: {', '.join(list(results['cross_fold_groups'])[:5])} (see results.json)")
    for fold in results["per_fold"]:
        if results.get("multilabel"):
            print(f"  fold {fold['fold']:>2}: mAP {fold['map']:.3f}, micro-F1 {fold['micro_f1']:.3f} ({fold['n']} clips)")
        else:
            print(f"  fold {fold['fold']:>2}: accuracy {fold['accuracy']:.3f} ({fold['n']} clips)")
    plot = "" if results.get("multilabel") else f", confusion matrix: {args.out / 'confusion_matrix.png'}"
    print(f"results: {args.out / 'results.json'}{plot}")
    print(format_summary(results))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from soundlib.evaluation.metrics import RunMetrics
    from soundlib.models.train import format_all_folds, format_run, train_all_folds, train_fold

    _check_folders(args, ("out", "--out"), ("summaries_dir", "--summaries-dir"))
    kwargs = dict(config=eval_config_from_args(args), out_dir=args.out, embed_config=embed_config_from_args(args),
                  overwrite=args.overwrite, progress=not args.quiet, cv_from=args.cv_from)
    m: dict[str, Any] | RunMetrics
    with cluster(args) as client:
        ds = _load(args)
        if client is not None:
            fill_on_cluster(args, client, ds, kwargs["config"])
    if args.all_folds:
        m = train_all_folds(ds, **kwargs)
    else:
        m = train_fold(ds, test_fold=args.test_fold, **kwargs)
    exported = m.get("exported") if isinstance(m, dict) else m.exported
    if exported:
        print(f"model: {args.out / 'model'}  (MODEL_CARD.md and the files it lists; `soundlib info {args.out}` "
              "sums it up)")
    else:
        method = m.get("method") if isinstance(m, dict) else m.method
        print(f"no model exported: method {method!r} makes none (frozen on any embedder, mfcc on its default "
              "statistics, finetune and scratch runs export one for `soundlib predict`)")
    print(format_all_folds(m) if isinstance(m, dict) else format_run(m))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from soundlib.models.card import info_text
    from soundlib.models.format import resolve_model_dir
    from soundlib.models.load import read_model_info

    path = resolve_model_dir(args.model_dir)
    read_model_info(path)  # a corrupt manifest is an error that names it
    text, ok = info_text(path)
    print(visible(text, keep="\n"))  # names from the model's files as text, never terminal escapes
    if not ok:
        print(visible(f"soundlib info: {path}: a file is missing or does not match the checksum recorded at export, "
                      "or the manifest has a problem (see above)"),
              file=sys.stderr)
    return 0 if ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from soundlib.models.tflite_export import export_tflite

    entry = export_tflite(args.model_dir, args.tflite, overwrite=args.overwrite)
    print(f"{entry['file']}: {entry['samples']} samples at {entry['sample_rate']} Hz "
          f"({entry['samples'] / entry['sample_rate']:g} s, float32 [1, {entry['samples']}]) -> {entry['labels']} class "
          f"probabilities; {entry['front_end']} front-end inside; matches soundlib's probabilities within "
          f"{entry['max_abs_difference']:.1g}; MediaPipe's AudioClassifier runs it as it is")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from soundlib.embedders import resolve_embedder
    from soundlib.embedding.embed import embed_clips
    from soundlib.pictures.variants import resolve_for_clips, resolve_variant

    spec = resolve_variant(args.variant, where="--variant")
    with cluster(args) as client:
        ds = _load(args)
        if client is not None:  # sharded on the cluster; --export then reads the cache here
            rc = embed_on_cluster(args, client, ds, spec)
            if not args.export:
                return rc
    if args.export:
        return _embed_export(args, ds, spec)
    spec, _ = resolve_for_clips(spec, ds.clips)
    embedder = resolve_embedder(backbone_from_args(args))
    window = embedder.window(spec)
    res = embed_clips(ds.clips, window, embedder, config=embed_config_from_args(args), inputs=embedder.inputs)
    said = _embedder_words(embedder.name, embedder.modality, window.sr, window.n_samples / window.sr)
    print(visible(f"embed {spec.name} {said}: {res.hits} from cache, {res.computed} computed, "
                  f"{len(res.failures)} failed"))
    for _, msg in res.failures:
        print(f"  {visible(msg)}", file=sys.stderr)
    return 1 if res.failures else 0


def _embedder_words(name: str, modality: str, sr: int, seconds: float) -> str:
    """``"(3-s window) with birdnet (waveform, 48000 Hz)"``: the windows the embedder takes (its own, not the
    variant's) and the embedder."""
    return f"({seconds:g}-s window) with {name} ({modality}, {sr} Hz)"


def _dataset_files(path: Path, ds) -> list[Path]:
    """What a dataset is made of: its metadata or manifest CSV and every clip (an output may be none of them)."""
    path = Path(path)
    meta = [path] if not path.is_dir() else [path / "metadata" / "UrbanSound8K.csv", path / "meta" / "esc50.csv"]
    return [*meta, *(c.path for c in ds.clips)]


def _embed_export(args: argparse.Namespace, ds, spec) -> int:
    """``soundlib embed --export FILE``: every clip's embedding, label, fold, recording and path in one .npz."""
    from soundlib.embedders import resolve_embedder
    from soundlib.evaluation.outputs import check_output_file
    from soundlib.lab.embedmap import embed_dataset, is_embeddings_file, write_npz

    check_output_file(args.export, option="--export", inputs=_dataset_files(args.dataset, ds),
                      recognise=is_embeddings_file, overwrite=args.overwrite)
    resolve_embedder(backbone_from_args(args))  # an unknown name is refused before any work
    table = embed_dataset(ds, spec, backbone_from_args(args), config=embed_config_from_args(args), k_folds=args.k_folds)
    if not len(table):
        for _, msg in table.failures:
            print(f"  {visible(msg)}", file=sys.stderr)
        print(visible(f"soundlib embed: no clip could be embedded; {args.export} not written"), file=sys.stderr)
        return 1
    write_npz(args.export, table)
    w = table.window
    print(visible(f"embed {table.variant} {_embedder_words(w['embedder'], w['modality'], w['sr'], w['duration'])}: "
                  f"{len(table)} clips ({len(table.window_clip)} windows) x "
                  f"{table.embeddings.shape[1]} dims, {len(table.classes)} classes, folds "
                  f"{sorted(set(table.folds.tolist()))} -> {args.export}"))
    for _, msg in table.failures:
        print(f"  {visible(msg)}", file=sys.stderr)
    return 1 if table.failures else 0


def cmd_embedders(args: argparse.Namespace) -> int:
    from soundlib.embedders import embedder_entry, embedder_names

    rows = [e for e in map(embedder_entry, embedder_names()) if e is not None]  # (every registered name has one)
    width = max(len(e.name) for e in rows)
    for e in sorted(rows, key=lambda e: (e.modality, e.name)):
        print(f"{e.name:<{width}}  {e.modality:<8}  {e.summary}")
        if args.licenses:
            print(f"{'':<{width}}  {'':<8}  weights: {e.license}")
    print("Also: any TF Hub/Kaggle image feature-vector handle, or a local SavedModel folder (picture).")
    return 0


#: The header of ``tag --csv``.
TAG_COLUMNS = ["input", "level", "start", "end", "rank", "label", "score"]


def cmd_tag(args: argparse.Namespace) -> int:
    from soundlib.errors import SoundlibError
    from soundlib.evaluation.outputs import check_output_file
    from soundlib.models.label import expand_inputs
    from soundlib.models.tag import clip_summary, format_tags, open_tagger, tag_file

    if args.csv is not None:
        check_output_file(args.csv, option="--csv", inputs=list(expand_inputs(args.inputs)),
                          headers=[",".join(TAG_COLUMNS)], overwrite=args.overwrite)
    tagger = open_tagger(args.model)
    rows, failed, tagged = [], 0, 0
    for path in expand_inputs(args.inputs):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            continue
        scores: list = []
        try:
            tags = list(tag_file(path, top_k=args.top_k, hop=args.hop, tagger=tagger, scores_out=scores))
        except SoundlibError as exc:
            print(f"soundlib: {visible(exc, keep=chr(10))}", file=sys.stderr)
            failed += 1
            continue
        summary = clip_summary(tags, tagger, scores, top_k=args.top_k)
        tagged += 1
        if args.csv is None:
            print(format_tags(path, tags, summary))
        for level, t in [("clip", summary)] + [("frame", t) for t in tags]:
            for rank, (label, score) in enumerate(zip(t.labels, t.scores), start=1):
                rows.append({"input": str(path), "level": level, "start": t.start, "end": t.end, "rank": rank,
                             "label": label, "score": round(score, 5)})
    if args.csv is not None:
        if not tagged:  # every input failed: no empty table that reads as "nothing heard"
            print(visible(f"soundlib tag: no file could be tagged; {args.csv} not written"), file=sys.stderr)
            return 1
        from soundlib.atomic import write_csv_atomic

        write_csv_atomic(args.csv, rows, fieldnames=TAG_COLUMNS)  # names as text: never a spreadsheet formula
        print(visible(f"wrote {args.csv} ({len(rows)} rows)"))
    return 1 if failed else 0


#: The header lines of ``predict --csv`` and ``--timeline`` (how a previous output is recognised).
PREDICT_COLUMNS = ["input", "rank", "label", "probability", "windows"]


TIMELINE_COLUMNS = ["input", "start", "end", "rank", "label", "probability"]


def _check_predict_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that would destroy an input, the model, or a file soundlib did not write."""
    from soundlib.errors import OutputError
    from soundlib.evaluation.outputs import check_output_file
    from soundlib.models.events import EVENT_COLUMNS, RAVEN_COLUMNS
    from soundlib.models.format import model_folder
    from soundlib.models.label import expand_inputs

    inputs = [*args.inputs, *expand_inputs([p for p in args.inputs if p.is_dir()])]
    audacity_folder = args.audacity is not None and _several_audio(args.inputs)
    outputs = [(opt, path) for opt, path in (("--csv", args.csv), ("--timeline", args.timeline),
                                              ("--events", args.events), ("--raven", args.raven),
                                              ("--audacity", args.audacity), ("--extract", args.extract)) if path]
    named = [Path(os.path.abspath(p)) for _, p in outputs]
    if len(set(named)) != len(named):
        twice = sorted({str(p) for p in named if named.count(p) > 1})
        raise OutputError(f"{', '.join(twice)}: named by two of --csv, --timeline, --events, --raven, --audacity, "
                          "--extract; give each its own file or folder")
    headers = [",".join(PREDICT_COLUMNS), ",".join(TIMELINE_COLUMNS), ",".join(EVENT_COLUMNS), "\t".join(RAVEN_COLUMNS)]
    model = model_folder(args.model_dir)
    for option, path in outputs:
        if option == "--extract" or (option == "--audacity" and audacity_folder):
            _check_output_folder(path, option, inputs=inputs, model=model, overwrite=args.overwrite)
        else:
            check_output_file(path, option=option, inputs=inputs, protected=[model],
                              headers=headers if option != "--audacity" else [], overwrite=args.overwrite)

def _several_audio(inputs) -> bool:
    from soundlib.models.format import PICTURE_EXTENSIONS
    from soundlib.models.label import expand_inputs

    return len([p for p in expand_inputs(inputs) if p.suffix.lower() not in PICTURE_EXTENSIONS]) > 1

#: Files ``--extract`` and ``--audacity`` (folder) write, replaced by a later run without --overwrite.
_OWN_FILES = r"^(\d{4}_.*_-?\d+\.\d{2}s\.wav|[^/]+\.txt)$"

def _check_output_folder(path: Path, option: str, *, inputs, model: Path, overwrite: bool) -> None:
    """An output folder (``--extract``, ``--audacity`` for several inputs): writable, not the model's or an
    input's, and holding nothing but what these options write there (unless ``--overwrite``)."""
    import re

    from soundlib.atomic import check_output_path
    from soundlib.errors import OutputError

    check_output_path(path, folder=True)
    target = Path(os.path.realpath(path))
    if target == Path(os.path.realpath(model)) or target.is_relative_to(os.path.realpath(model)):
        raise OutputError(f"{option} {path}: lies inside the model folder {model}; choose a folder outside it")
    for item in inputs:
        if Path(os.path.realpath(item)) == target:
            raise OutputError(f"{option} {path}: is one of the inputs; choose another folder")
    if path.is_dir() and not overwrite:
        foreign = sorted(p.name for p in path.iterdir() if not re.match(_OWN_FILES, p.name) or not p.is_file())
        if foreign:
            raise OutputError(f"{option} {path}: holds files soundlib did not write there ({', '.join(foreign[:3])}"
                              f"{'...' if len(foreign) > 3 else ''}); choose an empty or new folder, or pass "
                              "--overwrite")

def _event_rules(args: argparse.Namespace, labels):
    """The :class:`~soundlib.models.events.EventRules` of ``--threshold/--thresholds/--classes/...``."""
    from soundlib.models.events import DEFAULT_THRESHOLD, EventRules, parse_threshold_options, read_thresholds

    default, per_class = parse_threshold_options(args.threshold)
    thresholds = {**(read_thresholds(args.thresholds) if args.thresholds else {}), **per_class}
    classes = None
    if args.classes:
        classes = []
        for item in args.classes:
            if Path(item).is_file():
                classes += [x.strip() for x in Path(item).read_text(encoding="utf-8").splitlines() if x.strip()]
            else:
                classes += [x.strip() for x in item.split(",") if x.strip()]
    rules = EventRules(threshold=DEFAULT_THRESHOLD if default is None else default,
                       thresholds=tuple(thresholds.items()), classes=None if classes is None else tuple(classes),
                       min_duration=args.min_duration, merge_gap=args.merge_gap, boundaries=args.boundaries)
    rules.check_labels(labels)
    return rules


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    t0 = time.perf_counter()
    _check_predict_outputs(args)
    timeline: list | None = [] if args.timeline else None
    wants_events = any((args.events, args.raven, args.audacity, args.extract))
    events: list | None = [] if wants_events else None
    if wants_events:  # refuse bad thresholds before the model loads
        from soundlib.models.events import parse_threshold_options, read_thresholds

        parse_threshold_options(args.threshold)
        if args.thresholds:
            read_thresholds(args.thresholds)
    model = load_model(args.model_dir)
    rules = _event_rules(args, model.labels) if wants_events else None
    folders = any(Path(x).is_dir() for x in args.inputs)
    rows, failures = predict(model, args.inputs, top_k=args.top_k, aggregate=args.aggregate, timeline=timeline,
                             events=events, rules=rules, hop=args.hop, progress=folders and not args.quiet)
    current = None
    for row in rows:  # names as text: control and bidi characters shown as escapes (soundlib.text.visible)
        if row["input"] != current:
            current = row["input"]
            windows = row.get("windows", 1)
            print(visible(current) + (f"  ({windows} windows, {args.aggregate} of their probabilities)"
                                      if windows > 1 else ""))
        print(f"  {row['rank']}. {visible(row['label']):<24} {row['probability']:.3f}")
    if failures and not rows:  # every input failed: no empty tables that read as "nothing heard"
        named = [str(p) for p in (args.csv, args.timeline, args.events, args.raven, args.audacity, args.extract) if p]
        if named:
            print(visible(f"soundlib predict: no file could be labelled; not written: {', '.join(named)}"),
                  file=sys.stderr)
    else:
        if args.csv:
            from soundlib.atomic import write_csv_atomic

            write_csv_atomic(args.csv, rows, fieldnames=PREDICT_COLUMNS)
            print(visible(f"wrote {args.csv}"))
        if timeline is not None:
            from soundlib.atomic import write_csv_atomic

            write_csv_atomic(args.timeline, timeline, fieldnames=TIMELINE_COLUMNS)
            print(visible(f"wrote {args.timeline} ({len(timeline)} rows: top-{args.top_k} per window)"))
        if events is not None:
            from soundlib.models.format import PICTURE_EXTENSIONS

            audio = sorted({r["input"] for r in rows if Path(r["input"]).suffix.lower() not in PICTURE_EXTENSIONS})
            _write_events(args, events, model, rules, inputs=audio)
    for _, msg in failures:
        print(f"error: {visible(msg, keep=chr(10))}", file=sys.stderr)
    if folders or len(args.inputs) > 1:
        labelled = len({row["input"] for row in rows})
        print(f"predict: {labelled} file(s) labelled, {len(failures)} failed, "
              f"{time.perf_counter() - t0:.1f} s ({model.runtime})")
    if not rows and not failures:
        print("no audio or picture files found in the inputs", file=sys.stderr)
        return 1
    return 1 if failures else 0


def _write_events(args: argparse.Namespace, events: list, model, rules, *, inputs: list[str]) -> None:
    """``--events`` (CSV), ``--raven`` (Raven selection table), ``--audacity`` (label tracks), ``--extract``."""
    from soundlib.atomic import write_csv_atomic, write_text_atomic
    from soundlib.models.events import EVENT_COLUMNS, audacity_labels, extract_events, frequency_band, raven_table

    per_class = f", {len(rules.thresholds)} per-class" if rules.thresholds else ""
    if args.events:
        write_csv_atomic(args.events, events, fieldnames=EVENT_COLUMNS)
        print(visible(f"wrote {args.events} ({len(events)} event segment(s), threshold {rules.threshold:g}{per_class})"))
    if args.raven:
        low, high = frequency_band(model.spec, model.window if model.modality == "waveform" else None)
        write_text_atomic(args.raven, raven_table(events, low_freq=low, high_freq=high))
        print(visible(f"wrote {args.raven} (Raven selection table, {len(events)} selection(s), {low:g}-{high:g} Hz)"))
    if args.audacity:
        if _several_audio(args.inputs):
            from soundlib.atomic import ensure_dir

            folder = ensure_dir(args.audacity)
            names: set[str] = set()
            for k, name in enumerate(inputs):
                stem = Path(name).stem
                out = folder / (f"{stem}.txt" if stem not in names else f"{stem}-{k}.txt")
                names.add(stem)
                write_text_atomic(out, audacity_labels([e for e in events if e["input"] == name]))
            print(visible(f"wrote {len(inputs)} Audacity label file(s) to {folder} ({len(events)} label(s))"))
        else:
            write_text_atomic(args.audacity, audacity_labels(events))
            print(visible(f"wrote {args.audacity} (Audacity labels, {len(events)} label(s))"))
    if args.extract:
        import re

        if args.extract.is_dir():  # an earlier --extract's cuts go: they belong to other events
            for old in args.extract.iterdir():
                if old.is_file() and re.match(r"^\d{4}_.*_-?\d+\.\d{2}s\.wav$", old.name):
                    old.unlink()
        written = extract_events(events, args.extract)
        print(visible(f"wrote {len(written)} event audio file(s) to {args.extract}"))



def cmd_notebooks(args: argparse.Namespace) -> int:
    from soundlib.lab.notebook import copy_notebooks

    _check_folders(args, ("out_dir", "out_dir"))
    copied, kept = copy_notebooks(args.out_dir, overwrite=args.force)
    for path in copied:
        print(path)
    for path in kept:
        print(f"{path} already there, kept (--force replaces it)")
    print(f"open them with `jupyter lab {args.out_dir}` (pip install 'soundlib[lab]' for JupyterLab)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from soundlib import sweep

    if args.scheduler is not None:  # a malformed address is an error before anything is read
        from soundlib.sweep.executors import parse_scheduler

        parse_scheduler(args.scheduler)

    _check_folders(args, ("out", "--out"))
    result = sweep.run(args.params, out_dir=args.out, jobs=args.jobs, scheduler=args.scheduler,
                       progress=not args.quiet, max_runs=args.max_runs)
    print(result.summary())
    return 0 if result.ok else 1
