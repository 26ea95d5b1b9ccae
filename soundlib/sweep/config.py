"""Sweep files: :class:`SweepConfig` and :func:`load_sweep_config` (YAML -> validated config).

This is the edge where a sweep's names are resolved: variant names and
mappings become :class:`~soundlib.pictures.variants.FeatureSpec` objects, relative paths
resolve against the YAML file's folder, and every key is checked (a misspelt
key is an error naming it and the file).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Mapping

from soundlib.audio.folds import DEFAULT_K_FOLDS
from soundlib.config import check_keys, from_mapping, to_int
from soundlib.embedders.backbones import DEFAULT_BACKBONE
from soundlib.embedding.embed import EmbedConfig
from soundlib.errors import ConfigError
from soundlib.methods import DEFAULT_METHOD, MethodSpec, resolve_method
from soundlib.methods.train import TrainConfig
from soundlib.pictures.variants import VARIANTS, FeatureSpec, resolve_variant

__all__ = ["SweepConfig", "load_sweep_config", "method_param", "check_method_folds", "DEFAULT_MAX_RUNS"]

_TOP_KEYS = ("dataset", "data_home", "synth", "folds", "k_folds", "variants", "methods", "backbone", "train",
             "aggregate", "embed", "export_model", "jobs", "seed", "group_by", "group_regex", "max_runs")
#: The most runs (variant × method × fold) a sweep may plan unless its file's ``max_runs`` (or ``--max-runs``) says more.
DEFAULT_MAX_RUNS = 10_000
_EMBED_KEYS = ("batch_size",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A resolved sweep file.

    Attributes
    ----------
    dataset : pathlib.Path or None
        Dataset folder or metadata CSV (absolute). ``None`` with ``synth``: the
        corpus is generated into ``<out>/data``.
    synth : soundlib.audio.synth.SynthConfig or None
        Generate this synthetic corpus into ``dataset`` (or ``<out>/data``) when it
        is missing or was made with another configuration.
    folds : tuple of int or None
        Test folds to run; ``None`` means every fold of the dataset.
    k_folds : int
        Folds assigned (grouped by recording) when the dataset has none.
    variants : tuple of FeatureSpec
        Feature variants; their names are the output sub-folders.
    methods : tuple of MethodSpec
        Learning methods (default: the default method, auto; frozen when the file names a backbone); every
        variant runs with every method (``<variant>/<method>/fold<k>``),
        unless ``only`` restricts a method.
    only : dict
        Method name -> ``{"variants": (...), "folds": (...)}``: the variants and test folds that
        method runs with (from the sweep file's ``variants:``/``folds:`` keys inside a method
        mapping; a method that does not depend on the picture needs one variant, an expensive one
        may be measured on a few folds).
    backbone : str
        Backbone handle (embedded name, TF Hub handle, or SavedModel folder).
    train : TrainConfig
        Training hyperparameters (``train.seed`` defaults to ``seed``).
    aggregate : {"mean", "max"}
        How the windows of a long clip become one decision.
    embed_batch_size : int
        Pictures per backbone call while filling the embedding cache.
    export_model : bool, tuple of int, or dict
        Export each run's model (``True``), none (``False``), only the runs of these test folds, or per
        variant (``{variant name: True, False or test folds}``; a variant not named exports none).
    jobs : int
        Runs executed at once (the ``jobs`` argument of :func:`soundlib.sweep.run` overrides it).
    seed : int
        Default seed of the head and of fold assignment.
    group_by, group_regex : str or None
        How each file's recording is named when the dataset does not say: a manifest column, or a
        regex with one group searched in the file name (see :func:`soundlib.audio.loaders.load_dataset`).
    max_runs : int
        The most runs the sweep may plan (:data:`DEFAULT_MAX_RUNS`): a larger grid is refused before
        anything is planned (:meth:`check_runs`).
    source : pathlib.Path or None
        The YAML file this came from (for messages).
    """

    dataset: Path | None = None
    synth: Any = None
    folds: tuple[int, ...] | None = None
    k_folds: int = DEFAULT_K_FOLDS
    variants: tuple[FeatureSpec, ...] = (VARIANTS["mel"],)
    methods: tuple[MethodSpec, ...] = (resolve_method(DEFAULT_METHOD),)
    only: dict = dataclasses.field(default_factory=dict)
    backbone: str = DEFAULT_BACKBONE
    train: TrainConfig = TrainConfig()
    aggregate: str = "mean"
    embed_batch_size: int = EmbedConfig.batch_size
    export_model: bool | tuple[int, ...] | dict[str, bool | tuple[int, ...]] = True
    jobs: int = 1
    seed: int = 0
    group_by: str | None = None
    group_regex: str | None = None
    max_runs: int = DEFAULT_MAX_RUNS
    source: Path | None = dataclasses.field(default=None, compare=False)

    def planned_runs(self, folds: tuple[int, ...] | None = None) -> int:
        """The number of (variant, method, fold) runs over ``folds`` (default: the config's; when neither is
        known, every method counts at least one fold per variant: the fewest the dataset can give)."""
        folds = self.folds if folds is None else folds
        total = 0
        for m in self.methods:
            only = self.only.get(m.name, {})
            n_folds = (len(self.method_folds(m.name, folds)) if folds is not None
                       else max(1, len(only.get("folds", ()))))
            total += len(only.get("variants") or self.variants) * n_folds
        return total

    def check_runs(self, folds: tuple[int, ...] | None = None, *, where: str | None = None) -> int:
        """:meth:`planned_runs`, or a :class:`ConfigError` when it exceeds ``max_runs``."""
        n = self.planned_runs(folds)
        if n > self.max_runs:
            folds = self.folds if folds is None else folds
            counted = f"{len(folds)} fold(s)" if folds is not None else "at least one fold each"
            raise ConfigError(f"{where or self.source or 'sweep config'}: {n:,} runs ({len(self.variants):,} variant(s) "
                              f"x {len(self.methods):,} method(s) x {counted}), more than max_runs "
                              f"{self.max_runs:,}; sweep fewer, or raise max_runs in the sweep file (or --max-runs)")
        return n

    def runs(self, variant: str, method: str) -> bool:
        """Whether ``method`` runs with ``variant`` (see ``only``)."""
        allowed = self.only.get(method, {}).get("variants")
        return allowed is None or variant in allowed

    def method_folds(self, method: str, folds: tuple[int, ...]) -> tuple[int, ...]:
        """The test folds ``method`` runs on, out of ``folds`` (see ``only``)."""
        allowed = self.only.get(method, {}).get("folds")
        return tuple(f for f in folds if allowed is None or f in allowed)

    def exports(self, fold: int, variant: str | None = None) -> bool:
        """Whether the run of test fold ``fold`` (on the variant named ``variant``) exports its model."""
        rule = self.export_model
        if isinstance(rule, dict):
            rule = rule.get(variant, False) if variant is not None else any(
                r if isinstance(r, bool) else fold in r for r in rule.values())
        if isinstance(rule, bool):
            return rule
        return fold in rule

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (the YAML file's keys) that :meth:`from_dict` reads back to an equal config."""
        d: dict[str, Any] = {}
        if self.dataset is not None:
            d["dataset"] = str(self.dataset)
        if self.synth is not None:
            d["synth"] = dataclasses.asdict(self.synth)
        d["folds"] = list(self.folds) if self.folds is not None else "all"
        d["k_folds"] = self.k_folds
        d["variants"] = [spec.name if VARIANTS.get(spec.name) == spec else spec.to_dict() for spec in self.variants]
        d["methods"] = [_with_only(method_param(m), self.only.get(m.name, {})) for m in self.methods]
        d["backbone"] = self.backbone
        d["train"] = self.train.to_dict()
        d["aggregate"] = self.aggregate
        d["embed"] = {"batch_size": self.embed_batch_size}
        d["export_model"] = _export_param(self.export_model)
        d["jobs"] = self.jobs
        d["seed"] = self.seed
        for key in ("group_by", "group_regex"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.max_runs != DEFAULT_MAX_RUNS:
            d["max_runs"] = self.max_runs
        return d

    def load_dataset(self, path: str | os.PathLike):
        """The dataset at ``path``, its recordings named by ``group_by`` / ``group_regex``."""
        from soundlib.audio.loaders import load_dataset

        return load_dataset(path, group_by=self.group_by, group_regex=self.group_regex)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "sweep config",
                  base_dir: str | os.PathLike | None = None, max_runs: int | None = None) -> "SweepConfig":
        """Validate a mapping (a parsed sweep file); see :func:`load_sweep_config`."""
        return _from_dict(d, where=where, base_dir=Path(base_dir) if base_dir is not None else Path.cwd(),
                          max_runs=max_runs)


def _resolve_path(raw: Any, base_dir: Path, where: str) -> Path:
    if not isinstance(raw, (str, os.PathLike)) or not str(raw).strip():
        raise ConfigError(f"{where}: expected a path, got {raw!r}")
    p = Path(os.path.expandvars(str(raw))).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()


def _synth(raw: Any, where: str):
    from soundlib.audio.synth import SynthConfig

    if raw is None:
        return None
    return from_mapping(SynthConfig, {} if raw is True else raw, where=f"{where}: synth")


def _folds(raw: Any, where: str) -> tuple[int, ...] | None:
    if raw in ("all", None):
        return None
    items = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{where}: folds must be \"all\" or a list of fold numbers, got {raw!r}")
    folds = tuple(to_int(f, f"{where}: folds", minimum=1) for f in items)
    if len(set(folds)) != len(folds):
        raise ConfigError(f"{where}: folds lists a fold twice: {list(folds)}")
    return folds


def _variants(raw: Any, where: str) -> tuple[FeatureSpec, ...]:
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where}: variants must be a non-empty list of variant names or mappings")
    variants = tuple(resolve_variant(v, where=f"{where}: variants") for v in raw)
    _check_names([v.name for v in variants], "variant", where)
    return variants


def _check_names(names: list[str], what: str, where: str) -> None:
    """Every name can name a folder, and none is given twice."""
    for n in names:
        if not _NAME.match(n):
            raise ConfigError(f"{where}: {what} name {n!r} cannot name a folder; use letters, digits, _ . -")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: {what} name(s) {', '.join(dup)} given twice")


def method_param(method: MethodSpec) -> Any:
    """A method as plain data: its kind's name when it is that kind with default options, else a mapping."""
    return method.name if resolve_method(method.kind) == method else method.to_dict()


def _with_only(param: Any, only: Mapping[str, Any]) -> Any:
    if not only:
        return param
    d = {"name": param, "method": param} if isinstance(param, str) else dict(param)
    return {**d, **{k: list(v) for k, v in only.items()}}


def _methods(raw: Any, where: str) -> tuple[tuple[MethodSpec, ...], dict]:
    """The methods, and their ``variants:``/``folds:`` restrictions (sweep keys, not method options)."""
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where}: methods must be a non-empty list of method names or mappings")
    only: dict[str, dict] = {}
    items = []
    for m in raw:
        if isinstance(m, Mapping) and ("variants" in m or "folds" in m):
            m = dict(m)
            name = m.get("name") or m.get("method")
            restrict = {}
            if "variants" in m:
                v = m.pop("variants")
                if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
                    raise ConfigError(f"{where}: methods: {name!r}: variants must be a list of variant names")
                restrict["variants"] = tuple(v)
            if "folds" in m:
                folds = _folds(m.pop("folds"), f"{where}: methods: {name!r}")
                if folds is not None:  # "all": the sweep's folds
                    restrict["folds"] = folds
            if restrict:
                only[str(name)] = restrict
        items.append(m)
    methods = tuple(resolve_method(m, where=f"{where}: methods") for m in items)
    _check_names([m.name for m in methods], "method", where)
    return methods, only


def check_method_folds(only: Mapping[str, Mapping[str, Any]], folds: tuple[int, ...] | None, where: str) -> None:
    """A method restricted to ``folds:`` must name folds the sweep runs (``folds``; ``None``: not known yet):
    a fold outside them would silently give the method fewer runs, or none."""
    if folds is None:
        return
    for name, restrict in only.items():
        outside = [f for f in restrict.get("folds", ()) if f not in folds]
        if outside:
            raise ConfigError(f"{where}: methods: {name!r}: folds {outside} are not among the sweep's test folds "
                              f"{list(folds)}; a method's folds: picks some of the sweep's folds (or all)")


def _backbone(raw: Any, base_dir: Path, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where}: backbone must be a name, handle or path, got {raw!r}")
    if raw.startswith((".", "~", "/")) or (os.sep in raw and "://" not in raw and not raw.startswith("@")):
        local = _resolve_path(raw, base_dir, f"{where}: backbone")
        if local.exists():
            return str(local)
    return raw


def _export(raw: Any, where: str, variants: tuple[FeatureSpec, ...] | None = None
            ) -> bool | tuple[int, ...] | dict[str, bool | tuple[int, ...]]:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (list, tuple)):
        return tuple(to_int(f, f"{where}: export_model", minimum=1) for f in raw)
    if isinstance(raw, Mapping) and variants is not None:
        names = [spec.name for spec in variants]
        unknown = [str(k) for k in raw if k not in names]
        if unknown:
            raise ConfigError(f"{where}: export_model names variant(s) {', '.join(map(repr, unknown))} that the "
                              f"sweep does not run; expected some of {', '.join(names)}")
        per_variant: dict[str, bool | tuple[int, ...]] = {}
        for k, v in raw.items():
            rule = _export(v, f"{where}: export_model: {k}")
            if isinstance(rule, dict):  # (no variants given: a nested mapping is refused above)
                raise ConfigError(f"{where}: export_model: {k}: expected true, false or a list of test folds")
            per_variant[str(k)] = rule
        return per_variant
    raise ConfigError(f"{where}: export_model must be true, false, a list of test folds, or a mapping of variant "
                      f"names to those, got {raw!r}")


def _export_param(rule: Any) -> Any:
    """``export_model`` as the sweep file writes it."""
    if isinstance(rule, dict):
        return {k: _export_param(v) for k, v in rule.items()}
    return rule if isinstance(rule, bool) else list(rule)


def _from_dict(d: Any, *, where: str, base_dir: Path, max_runs: int | None = None) -> SweepConfig:
    check_keys(d, _TOP_KEYS, where)
    # the grid's size first: a file of a million runs is refused before its entries are resolved
    max_runs = (to_int(max_runs, "max_runs (--max-runs)", minimum=1) if max_runs is not None
                else to_int(d.get("max_runs", DEFAULT_MAX_RUNS), f"{where}: max_runs", minimum=1))
    _check_grid_size(d, max_runs, where)
    if "dataset" in d and "data_home" in d:
        raise ConfigError(f"{where}: give either 'dataset' or its alias 'data_home', not both")
    raw_ds = d.get("dataset", d.get("data_home"))
    synth = _synth(d.get("synth"), where)
    if raw_ds is None and synth is None:
        raise ConfigError(f"{where}: no dataset; give 'dataset' (or 'data_home'): a dataset folder or metadata CSV, "
                          "or 'synth: {clips_per_class: 40}' to generate the synthetic corpus")
    dataset = _resolve_path(raw_ds, base_dir, f"{where}: dataset") if raw_ds is not None else None
    if dataset is not None and synth is None and not dataset.exists():
        raise ConfigError(
            f"{where}: dataset path {dataset} does not exist (relative paths are resolved against {base_dir}). "
            "Edit the path, or download the data first, e.g. `soundlib download urbansound8k --data-home DIR`.")
    defaults = SweepConfig()
    variants = _variants(d.get("variants", [v.name for v in defaults.variants]), where)
    # no methods: the default method, or frozen when the file names a backbone (the pictures' embedder was chosen)
    implicit = ["frozen"] if d.get("backbone") is not None else [m.name for m in defaults.methods]
    methods, only = _methods(d.get("methods", implicit), where)
    for name, restrict in only.items():
        unknown = [v for v in restrict.get("variants", ()) if v not in {x.name for x in variants}]
        if unknown:
            raise ConfigError(f"{where}: methods: {name!r}: variants {unknown} are not in the sweep's variants")
    folds = _folds(d.get("folds", "all"), where)
    check_method_folds(only, folds, where)
    seed = to_int(d.get("seed", defaults.seed), f"{where}: seed")
    train = TrainConfig.from_dict({"seed": seed, **check_keys(d.get("train") or {}, _train_keys(), f"{where}: train")},
                                  where=f"{where}: train")
    embed = check_keys(d.get("embed") or {}, _EMBED_KEYS, f"{where}: embed")
    config = SweepConfig(
        dataset=dataset,
        synth=synth,
        folds=folds,
        k_folds=to_int(d.get("k_folds", defaults.k_folds), f"{where}: k_folds", minimum=2),
        variants=variants,
        methods=methods,
        only=only,
        backbone=_backbone(d.get("backbone", defaults.backbone), base_dir, where),
        train=train,
        aggregate=_aggregate(d.get("aggregate", defaults.aggregate), where),
        embed_batch_size=to_int(embed.get("batch_size", defaults.embed_batch_size), f"{where}: embed: batch_size",
                                minimum=1),
        export_model=_export(d.get("export_model", defaults.export_model), where, variants),
        jobs=to_int(d.get("jobs", defaults.jobs), f"{where}: jobs", minimum=1),
        seed=seed,
        **_grouping(d, where),
        max_runs=max_runs,
    )
    config.check_runs(where=where)
    return config


def _check_grid_size(d: Mapping[str, Any], max_runs: int, where: str) -> None:
    """Refuse, from the raw file, a grid of more than ``max_runs`` (every method on its variants, one fold at
    least) before resolving its entries (resolving a million would take minutes)."""
    variants, methods = d.get("variants"), d.get("methods")
    n_variants = len(variants) if isinstance(variants, (list, tuple)) else 1
    methods = methods if isinstance(methods, (list, tuple)) else [methods]
    least = 0
    for m in methods:
        only = m.get("variants") if isinstance(m, Mapping) else None
        least += len(only) if isinstance(only, (list, tuple)) else n_variants
    if least > max_runs:
        raise ConfigError(f"{where}: at least {least:,} runs ({n_variants:,} variant(s) x {len(methods):,} method(s) "
                          f"x at least one fold), more than max_runs {max_runs:,}; sweep fewer, or raise max_runs "
                          "in the sweep file (or --max-runs)")


def _grouping(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``group_by`` / ``group_regex`` checked (one at most; a regex with exactly one group)."""
    from soundlib.audio.datasets import compile_group_regex

    out = {}
    for key in ("group_by", "group_regex"):
        raw = d.get(key)
        if raw is not None and (not isinstance(raw, str) or not raw.strip()):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {raw!r}")
        out[key] = raw
    if out["group_by"] is not None and out["group_regex"] is not None:
        raise ConfigError(f"{where}: give group_by or group_regex, not both")
    if out["group_regex"] is not None:
        try:
            compile_group_regex(out["group_regex"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return out


def _aggregate(raw: Any, where: str) -> str:
    from soundlib.methods.base import AGGREGATIONS

    if raw not in AGGREGATIONS:
        raise ConfigError(f"{where}: aggregate must be one of {', '.join(AGGREGATIONS)}, got {raw!r}")
    return raw


def _train_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def load_sweep_config(path: str | os.PathLike, *, max_runs: int | None = None) -> SweepConfig:
    """Read and validate a sweep file.

    Parameters
    ----------
    path : path-like
        A YAML file with the keys

        ``dataset`` (alias ``data_home``)
            Dataset folder or metadata CSV. **Relative paths resolve against the
            YAML file's folder** (not the working directory); ``~`` and ``$VARS`` expand.
        ``synth``
            ``{clips_per_class: .., seed: .., duration: ..}`` (any
            :class:`~soundlib.audio.synth.SynthConfig` field): generate the synthetic corpus
            into ``dataset``, or into ``<out>/data`` without ``dataset``, when it is
            missing, and use it.
        ``folds``
            ``all`` (default) or a list of test folds.
        ``k_folds``
            Folds to assign when the dataset has none.
        ``variants``
            Registry names (``soundlib variants``) or mappings
            ``{name: X, base: mel, <FeatureSpec fields>...}``.
        ``methods``
            Method names (``frozen``, ``finetune``, ``scratch``, ``mfcc``, ``birdnet``,
            ``fusion``, ``auto``) or mappings ``{name: X, method: <kind>, <options>...}``
            (default ``[frozen]``); the results table is variant × method. A mapping may
            restrict the method to ``variants: [...]`` and/or ``folds: [...]``.
        ``aggregate``
            ``mean`` (default) or ``max``: how a long clip's windows become one decision.
        ``backbone``
            Backbone handle (default: the embedded, offline EfficientNet-Lite0).
        ``train``
            :class:`~soundlib.methods.train.TrainConfig` fields.
        ``embed``
            ``{batch_size: N}``.
        ``export_model``
            ``true``, ``false``, a list of test folds whose models are exported, or a mapping of
            variant names to those (``{mel: [1]}``: the mel runs of fold 1 only).
        ``jobs``, ``seed``
            Parallel runs; default seed of the head and of fold assignment.
        ``group_by``, ``group_regex``
            Each file's recording, when the dataset does not name it: a manifest column, or a regex
            with one group searched in the file name (``--group-by`` / ``--group-regex``).
        ``max_runs``
            The most runs the grid may hold (default :data:`DEFAULT_MAX_RUNS`); a larger one is refused
            before anything is planned.
    max_runs : int, optional
        Overrides the file's ``max_runs`` (``soundlib sweep --max-runs``).

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        The file is missing or not YAML, a key is unknown (the message names the
        key and the file), a value is invalid, or the dataset path does not exist.
    """
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid YAML file ({exc})") from None
    if data is None:
        raise ConfigError(f"{path}: empty sweep file")
    config = _from_dict(data, where=str(path), base_dir=path.resolve().parent, max_runs=max_runs)
    return dataclasses.replace(config, source=path)
