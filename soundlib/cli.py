"""The ``soundlib`` command line: parses flags, calls the library, prints results.

The library never reads ``argv``; every command maps to one library call with a
configuration object. TensorFlow is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import SoundlibError

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  soundlib synth data/synth                       # small synthetic corpus (UrbanSound8K layout)
  soundlib variants                               # feature variants and their parameters
  soundlib featurize data/synth --variant mel --out pictures/mel --jobs 2
  soundlib gallery data/synth/audio/fold1/X.wav gallery/
  soundlib evaluate data/synth --variant mel --out runs/mel
  soundlib train data/synth --variant mel --test-fold 1 --out models/mel-f1
  soundlib predict models/mel-f1 some.wav --top-k 5
  soundlib sweep params/demo.yaml --jobs 2 --out runs/demo
"""


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import SynthConfig, generate_corpus

    cfg = SynthConfig(clips_per_class=args.clips_per_class, seed=args.seed, duration=args.duration)
    out = generate_corpus(args.out_dir, cfg, progress=not args.quiet)
    print(f"synthetic corpus ({10 * cfg.clips_per_class} clips, seed {cfg.seed}) in {out}")
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    import json

    from .features import VARIANTS

    if args.json:
        print(json.dumps({name: spec.to_dict() for name, spec in VARIANTS.items()}, indent=2))
        return 0
    for name, spec in VARIANTS.items():
        d = spec.to_dict()
        merge = d.pop("merge")
        d.pop("name")
        print(f"{name}  [key {spec.key()}]")
        print("    " + ", ".join(f"{k}={v}" for k, v in d.items()))
        if spec.kind in ("merged", "stacked"):
            print("    merge: " + ", ".join(f"{k}={v}" for k, v in merge.items()))
    return 0


def _featurize_inputs(path: Path):
    """A dataset (any layout), or a plain folder of audio files."""
    from .data import AUDIO_EXTENSIONS, load_dataset

    if path.is_dir() and not any(p.is_dir() for p in path.iterdir()) and not (path / "metadata").exists():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
        if files:
            return files, path
    ds = load_dataset(path, check_files=False)  # missing files are reported per file below
    return ds.clips, ds.root


def _cmd_featurize(args: argparse.Namespace) -> int:
    from .features import featurize, get_variant

    clips, root = _featurize_inputs(Path(args.dataset))
    spec = get_variant(args.variant)
    report = featurize(clips, spec, out_dir=args.out, root=root, jobs=args.jobs, progress=not args.quiet)
    print(
        f"featurize {spec.name}: {len(report.written)} written, {len(report.skipped)} already there, "
        f"{len(report.failures)} failed -> {args.out}"
    )
    if report.failures:
        print(report.failure_text(), file=sys.stderr)
        return 1
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    from .features import write_gallery

    for path in write_gallery(args.clip, args.out_dir):
        print(path)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    home = download(args.dataset, args.data_home, validate=not args.no_validate)
    print(f"{args.dataset} ready in {home}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundlib",
        description="Classify sounds by transfer learning: render audio as pictures, embed them with a "
        "pretrained image model, train a small head, evaluate fold by fold.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"soundlib {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, description: str | None = None):
        p = sub.add_parser(name, help=help, description=description or help,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("synth", _cmd_synth, "write the embedded synthetic corpus (UrbanSound8K layout)",
            "Write a deterministic synthetic corpus: ten UrbanSound8K classes, each from its own procedural "
            "sound model, recordings cut into slices and assigned to 10 folds. Same seed, same bytes.")
    p.add_argument("out_dir", type=Path, help="folder to write audio/foldN/*.wav and metadata/UrbanSound8K.csv into")
    p.add_argument("--clips-per-class", type=_positive_int, default=40, help="slices per class")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--duration", type=float, default=4.0, help="slice length in seconds (at most 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("variants", _cmd_variants, "list the feature variants and their parameters")
    p.add_argument("--json", action="store_true", help="print the full specs as JSON")

    p = add("featurize", _cmd_featurize, "render every clip of a dataset as a PNG picture",
            "Render every clip as a picture of one feature variant and write one PNG per clip under --out "
            "(atomic writes; pictures already there are kept). Bad files are reported at the end and the "
            "command exits 1; the good ones are still written.")
    p.add_argument("dataset", type=Path, help="dataset folder (UrbanSound8K, ESC-50, folder per class, "
                   "or a plain folder of audio files) or a metadata/manifest CSV")
    p.add_argument("--variant", default="mel", help="feature variant name (see `soundlib variants`)")
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
    p.add_argument("--no-validate", action="store_true", help="skip checksum validation")

    _add_learning_commands(add, _positive_int)
    return parser


def _add_learning_commands(add, positive_int) -> None:
    """Commands of the transfer-learning stages (defined in their own modules' CLI helpers)."""
    try:
        from . import _cli_learning
    except ImportError:  # pragma: no cover - during bootstrap only
        return
    _cli_learning.register(add, positive_int)


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SoundlibError as exc:
        print(f"soundlib {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"soundlib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
