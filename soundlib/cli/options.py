"""Command-line arguments to configuration objects, resolved once at the edge: ``TrainConfig``, the method
spec, ``EvalConfig``, ``EmbedConfig`` (their defaults come from the dataclasses, never from here).
"""

from __future__ import annotations

import argparse

__all__ = [
    "train_config_from_args", "method_name_from_args", "backbone_from_args", "method_from_args",
    "eval_config_from_args", "embed_config_from_args",
]


def train_config_from_args(args: argparse.Namespace):
    """The :class:`~soundlib.methods.train.TrainConfig` the training flags describe."""
    from soundlib.methods.train import TrainConfig

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


def method_name_from_args(args: argparse.Namespace) -> str:
    """``--method``, or when it is not given: ``frozen`` if ``--backbone`` names a picture backbone (the
    user chose the pictures' embedder), else the default method (:data:`soundlib.methods.DEFAULT_METHOD`)."""
    from soundlib.evaluation.evaluate import EvalConfig

    if args.method is not None:
        return args.method
    return "frozen" if getattr(args, "backbone", None) is not None else EvalConfig().method.name


def backbone_from_args(args: argparse.Namespace) -> str:
    """``--backbone``, or the default embedder of :class:`~soundlib.evaluation.evaluate.EvalConfig`."""
    from soundlib.evaluation.evaluate import EvalConfig

    return args.backbone if args.backbone is not None else EvalConfig().backbone


def method_from_args(args: argparse.Namespace):
    """The :class:`~soundlib.methods.MethodSpec` of ``--method`` and ``--method-option KEY=VALUE``."""
    import yaml

    from soundlib.errors import ConfigError
    from soundlib.methods import resolve_method

    name = method_name_from_args(args)
    if not args.method_option:
        return resolve_method(name, where="--method")
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
    return resolve_method({"name": name, "method": name, **options}, where="--method")


def eval_config_from_args(args: argparse.Namespace, **fields):
    """The :class:`~soundlib.evaluation.evaluate.EvalConfig` of ``evaluate`` / ``train`` (plus ``fields``)."""
    from soundlib.config import from_mapping
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.pictures.variants import resolve_variant

    config = from_mapping(EvalConfig, {"spec": resolve_variant(args.variant, where="--variant"),
                                       "method": method_from_args(args), "backbone": backbone_from_args(args),
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

    from soundlib.errors import SoundlibWarning

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
    """The :class:`~soundlib.embedding.embed.EmbedConfig` of the embedding flags."""
    from soundlib.config import from_mapping
    from soundlib.embedding.embed import EmbedConfig

    return from_mapping(EmbedConfig, {"batch_size": args.batch_size, "progress": not args.quiet,
                                      "cache_dir": args.cache_dir, "use_cache": not args.no_cache},
                        where="command line")
