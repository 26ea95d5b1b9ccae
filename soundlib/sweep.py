"""Parameter sweeps: folds × feature variants, each run an executed notebook.

A sweep file (YAML, see :func:`load_sweep_config`) names a dataset, the test
folds, the feature variants, the backbone and the head's hyperparameters.
:func:`run` expands it into one *run* per (variant, fold):

1. the embedding cache is filled once per variant (so runs only read it);
2. ``notebooks/train.ipynb`` is executed by papermill once per run, ``jobs`` at
   a time, each in its own process with its own kernel, into
   ``OUT/<variant>/fold<k>/`` (``train.ipynb``, ``metrics.json``,
   ``predictions.csv``, ``confusion_matrix.png``, ``history.json``, ``model/``);
3. ``notebooks/evaluate.ipynb`` is executed over ``OUT``: it aggregates every
   ``metrics.json`` (:func:`collect_results`) and writes ``results.csv`` and
   ``results.md``.

Sweeps are resumable. A run is complete when its ``params.json`` matches the
run's parameters, its ``metrics.json`` (written last of its data, atomically, by
:func:`soundlib.evaluate.train_fold`) is valid, and its executed notebook (written
under a temporary name, renamed when papermill is done) is in place. Complete
runs are skipped, so a sweep killed at any moment (``kill -9`` included) and
started again finishes the same table without running a complete run twice;
a failed run leaves no ``metrics.json`` behind. Each run
holds a lock on its folder while it executes, so two sweeps (or a leftover
Dask task) never execute the same run at once. A failed run is reported with
its notebook and the failing cell's error; the other runs go on.

With ``scheduler="tcp://HOST:PORT"`` the same tasks run on a Dask distributed
cluster; the workers need soundlib installed and the dataset, the output
folder and (ideally) ``SOUNDLIB_CACHE_DIR`` on paths they share with the client.

The second half of this module holds the small helpers the notebooks call
(:class:`TrialsUI`, :func:`plot_history`, :func:`pick_clip`, ...), so the
notebooks stay thin and their logic is tested here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import ConfigError, DatasetError, SoundlibError

__all__ = [
    "SweepConfig",
    "RunOutcome",
    "SweepResult",
    "load_sweep_config",
    "run",
    "notebooks_dir",
    "default_kernel_name",
    "collect_runs",
    "collect_results",
    "results_table_markdown",
    "write_results",
    "summed_confusion",
    "per_class_f1",
    "write_summed_confusions",
    "plot_results",
    "plot_per_class_f1",
    "plot_history",
    "open_dataset",
    "ensure_synth_corpus",
    "die_with_parent",
    "resolve_variant",
    "train_config",
    "format_run",
    "alert_tone",
    "pick_clip",
    "label_clip",
    "ClipPrediction",
    "TrialsUI",
]

#: Notebooks a sweep executes (in :func:`notebooks_dir`).
TRAIN_NOTEBOOK = "train.ipynb"
EVALUATE_NOTEBOOK = "evaluate.ipynb"

_TOP_KEYS = ("dataset", "data_home", "synth", "folds", "k_folds", "variants", "backbone", "train", "embed",
             "export_model", "jobs", "seed")
_EMBED_KEYS = ("batch_size",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FOLD_DIR = re.compile(r"^fold(\d+)$")
#: Run by each kernel at start-up: the kernel dies with the process that launched it.
_KERNEL_EXEC_LINE = "__import__('soundlib.sweep', fromlist=['_']).die_with_parent()"


# ---------------------------------------------------------------------------
# Configuration

def _default_variants() -> tuple:
    from .features import VARIANTS

    return (VARIANTS["mel"],)


def _default_train():
    from .train import TrainConfig

    return TrainConfig()


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A resolved sweep file.

    Attributes
    ----------
    dataset : pathlib.Path or None
        Dataset folder or metadata CSV (absolute). ``None`` with ``synth``: the
        corpus is generated into ``<out>/data``.
    synth : soundlib.synth.SynthConfig or None
        Generate this synthetic corpus into ``dataset`` (or ``<out>/data``) when it
        is missing or was made with another configuration.
    folds : tuple of int or None
        Test folds to run; ``None`` means every fold of the dataset.
    k_folds : int
        Folds assigned (grouped by recording) when the dataset has none.
    variants : tuple of FeatureSpec
        Feature variants; their names are the output sub-folders.
    backbone : str
        Backbone handle (embedded name, TF Hub handle, or SavedModel folder).
    train : soundlib.train.TrainConfig
        Head hyperparameters (``train.seed`` defaults to ``seed``).
    embed_batch_size : int
        Pictures per backbone call while filling the embedding cache.
    export_model : bool or tuple of int
        Export each run's model (``True``), none (``False``), or only the runs of these test folds.
    jobs : int
        Runs executed at once (the ``jobs`` argument of :func:`run` overrides it).
    seed : int
        Default seed of the head and of fold assignment.
    source : pathlib.Path or None
        The YAML file this came from (for messages).
    """

    dataset: Path | None = None
    synth: Any = None
    folds: tuple[int, ...] | None = None
    k_folds: int = 5
    variants: tuple = dataclasses.field(default_factory=_default_variants)
    backbone: str = "efficientnet_lite0"
    train: Any = dataclasses.field(default_factory=_default_train)
    embed_batch_size: int = 32
    export_model: bool | tuple[int, ...] = True
    jobs: int = 1
    seed: int = 0
    source: Path | None = dataclasses.field(default=None, compare=False)

    def exports(self, fold: int) -> bool:
        """Whether the run of test fold ``fold`` exports its model."""
        if isinstance(self.export_model, bool):
            return self.export_model
        return fold in self.export_model

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`load_sweep_config` reads back to an equal config."""
        from .features import VARIANTS

        d: dict[str, Any] = {}
        if self.dataset is not None:
            d["dataset"] = str(self.dataset)
        if self.synth is not None:
            d["synth"] = dataclasses.asdict(self.synth)
        d["folds"] = list(self.folds) if self.folds is not None else "all"
        d["k_folds"] = self.k_folds
        d["variants"] = [spec.name if VARIANTS.get(spec.name) == spec else spec.to_dict() for spec in self.variants]
        d["backbone"] = self.backbone
        d["train"] = self.train.to_dict()
        d["embed"] = {"batch_size": self.embed_batch_size}
        d["export_model"] = self.export_model if isinstance(self.export_model, bool) else list(self.export_model)
        d["jobs"] = self.jobs
        d["seed"] = self.seed
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "sweep config",
                  base_dir: str | os.PathLike | None = None) -> "SweepConfig":
        """Validate a mapping (a parsed sweep file); see :func:`load_sweep_config`."""
        return _config_from_dict(d, where=where, base_dir=Path(base_dir) if base_dir is not None else Path.cwd())


def _check_keys(d: Any, allowed: Sequence[str], where: str) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                          f"expected some of {', '.join(allowed)}")


def _int(value: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, got {value}")
    return value


def _coerce_fields(cls: type, d: Mapping[str, Any], base: Any, where: str) -> dict[str, Any]:
    """Numbers YAML reads as strings (``1e-4``) become floats where the field is a float."""
    out = dict(d)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        default = getattr(base, f.name) if base is not None else None
        value = out[f.name]
        if isinstance(default, float) and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                out[f.name] = float(value)
            elif isinstance(value, str):
                try:
                    out[f.name] = float(value)
                except ValueError:
                    raise ConfigError(f"{where}: {f.name} must be a number, got {value!r}") from None
    return out


def _resolve_path(raw: Any, base_dir: Path, where: str) -> Path:
    if not isinstance(raw, (str, os.PathLike)) or not str(raw).strip():
        raise ConfigError(f"{where}: expected a path, got {raw!r}")
    p = Path(os.path.expandvars(str(raw))).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()


def _parse_variant(item: Any, where: str):
    from .features import FeatureSpec, VARIANTS, get_variant

    if isinstance(item, str):
        if item not in VARIANTS:
            raise ConfigError(f"{where}: unknown feature variant {item!r}; known: {', '.join(VARIANTS)} "
                              "(or derive one: {name: my_variant, base: mel, hop_length: 256})")
        return get_variant(item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a variant is a registry name or a mapping with 'name', got {item!r}")
    d = dict(item)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: a derived variant needs a 'name' (used as its output folder)")
    base_name = d.pop("base", name if name in VARIANTS else "mel")
    if base_name not in VARIANTS:
        raise ConfigError(f"{where}: variant {name!r}: unknown base {base_name!r}; known: {', '.join(VARIANTS)}")
    base = get_variant(base_name).replace(name=name)
    vwhere = f"{where}: variant {name!r}"
    d = _coerce_fields(FeatureSpec, d, base, vwhere)
    try:
        return FeatureSpec.from_dict(d, base=base, where=vwhere)
    except ConfigError:
        raise
    except SoundlibError as exc:
        raise ConfigError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{vwhere}: {exc}") from None


def _config_from_dict(d: Mapping[str, Any], *, where: str, base_dir: Path) -> SweepConfig:
    from .synth import SynthConfig
    from .train import TrainConfig

    _check_keys(d, _TOP_KEYS, where)
    if "dataset" in d and "data_home" in d:
        raise ConfigError(f"{where}: give either 'dataset' or its alias 'data_home', not both")
    raw_ds = d.get("dataset", d.get("data_home"))
    synth = None
    if d.get("synth") is not None:
        s = d["synth"]
        if s is True:
            s = {}
        _check_keys(s, [f.name for f in dataclasses.fields(SynthConfig)], f"{where}: synth")
        try:
            synth = SynthConfig(**s)
        except ConfigError as exc:
            raise ConfigError(f"{where}: synth: {exc}") from None
    if raw_ds is None and synth is None:
        raise ConfigError(f"{where}: no dataset; give 'dataset' (or 'data_home'): a dataset folder or metadata CSV, "
                          "or 'synth: {clips_per_class: 40}' to generate the synthetic corpus")
    dataset = _resolve_path(raw_ds, base_dir, f"{where}: dataset") if raw_ds is not None else None
    if dataset is not None and synth is None and not dataset.exists():
        raise ConfigError(
            f"{where}: dataset path {dataset} does not exist (relative paths are resolved against {base_dir}). "
            "Edit the path, or download the data first, e.g. `soundlib download urbansound8k --data-home DIR`.")

    folds_raw = d.get("folds", "all")
    if folds_raw in ("all", None):
        folds = None
    else:
        items = [folds_raw] if isinstance(folds_raw, int) and not isinstance(folds_raw, bool) else folds_raw
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError(f"{where}: folds must be \"all\" or a list of fold numbers, got {folds_raw!r}")
        folds = tuple(_int(f, f"{where}: folds", minimum=1) for f in items)
        if len(set(folds)) != len(folds):
            raise ConfigError(f"{where}: folds lists a fold twice: {list(folds)}")

    raw_variants = d.get("variants", ["mel"])
    if isinstance(raw_variants, (str, Mapping)):
        raw_variants = [raw_variants]
    if not isinstance(raw_variants, (list, tuple)) or not raw_variants:
        raise ConfigError(f"{where}: variants must be a non-empty list of variant names or mappings")
    variants = tuple(_parse_variant(v, f"{where}: variants") for v in raw_variants)
    names = [v.name for v in variants]
    for n in names:
        if not _NAME.match(n):
            raise ConfigError(f"{where}: variant name {n!r} cannot name a folder; use letters, digits, _ . -")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: variant name(s) {', '.join(dup)} given twice")

    seed = _int(d.get("seed", 0), f"{where}: seed")
    raw_train = d.get("train") or {}
    _check_keys(raw_train, [f.name for f in dataclasses.fields(TrainConfig)], f"{where}: train")
    raw_train = {"seed": seed, **raw_train}
    twhere = f"{where}: train"
    try:
        train = TrainConfig.from_dict(_coerce_fields(TrainConfig, raw_train, TrainConfig(), twhere), where=twhere)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{twhere}: {exc}") from None

    embed = d.get("embed") or {}
    _check_keys(embed, _EMBED_KEYS, f"{where}: embed")
    batch = _int(embed.get("batch_size", 32), f"{where}: embed: batch_size", minimum=1)

    backbone = d.get("backbone", "efficientnet_lite0")
    if not isinstance(backbone, str) or not backbone:
        raise ConfigError(f"{where}: backbone must be a name, handle or path, got {backbone!r}")
    if backbone.startswith((".", "~", "/")) or (os.sep in backbone and "://" not in backbone
                                                and not backbone.startswith("@")):
        local = _resolve_path(backbone, base_dir, f"{where}: backbone")
        if local.exists():
            backbone = str(local)

    export = d.get("export_model", True)
    if isinstance(export, bool):
        export_model: bool | tuple[int, ...] = export
    elif isinstance(export, (list, tuple)):
        export_model = tuple(_int(f, f"{where}: export_model", minimum=1) for f in export)
    else:
        raise ConfigError(f"{where}: export_model must be true, false or a list of test folds, got {export!r}")

    return SweepConfig(
        dataset=dataset,
        synth=synth,
        folds=folds,
        k_folds=_int(d.get("k_folds", 5), f"{where}: k_folds", minimum=2),
        variants=variants,
        backbone=backbone,
        train=train,
        embed_batch_size=batch,
        export_model=export_model,
        jobs=_int(d.get("jobs", 1), f"{where}: jobs", minimum=1),
        seed=seed,
    )


def load_sweep_config(path: str | os.PathLike) -> SweepConfig:
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
            :class:`~soundlib.synth.SynthConfig` field): generate the synthetic corpus
            into ``dataset``, or into ``<out>/data`` without ``dataset``, when it is
            missing, and use it.
        ``folds``
            ``all`` (default) or a list of test folds.
        ``k_folds``
            Folds to assign when the dataset has none (default 5).
        ``variants``
            Registry names (``soundlib variants``) or mappings
            ``{name: X, base: mel, <FeatureSpec fields>...}``.
        ``backbone``
            Backbone handle (default ``efficientnet_lite0``, embedded and offline).
        ``train``
            :class:`~soundlib.train.TrainConfig` fields.
        ``embed``
            ``{batch_size: 32}``.
        ``export_model``
            ``true``, ``false``, or a list of test folds whose models are exported.
        ``jobs``, ``seed``
            Parallel runs; default seed of the head and of fold assignment.

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
    config = _config_from_dict(data, where=str(path), base_dir=path.resolve().parent)
    return dataclasses.replace(config, source=path)


# ---------------------------------------------------------------------------
# Results of a sweep

@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What happened to one (variant, fold) run.

    ``status`` is ``"completed"`` (executed now), ``"skipped"`` (already complete)
    or ``"failed"``; ``error`` is ``"ename: evalue"`` of the failing cell (or of the
    process) and ``cell`` the failing cell's execution count when papermill knows it.
    """

    variant: str
    fold: int
    run_dir: Path
    status: str
    notebook: Path | None = None
    error: str | None = None
    cell: int | None = None
    log: Path | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        where = f" (cell {self.cell})" if self.cell is not None else ""
        err = f": {self.error}{where}" if self.error else ""
        return f"{self.variant}/fold{self.fold} {self.status}{err} [{self.notebook or self.run_dir}]"


@dataclasses.dataclass
class SweepResult:
    """Everything :func:`run` did.

    Attributes
    ----------
    out_dir : Path
    config : SweepConfig
        As run (dataset and folds resolved); also saved as ``out_dir/sweep.yaml``.
    table : pandas.DataFrame
        :func:`collect_results` of ``out_dir``: one row per variant, mean ± std over folds.
    runs : pandas.DataFrame
        :func:`collect_runs` of ``out_dir``: one row per complete (variant, fold).
    completed, skipped, failed : list of RunOutcome
    notebooks : list of Path
        Executed notebooks (every run's ``train.ipynb`` that exists, then ``evaluate.ipynb``).
    evaluate_notebook : Path or None
    evaluate_error : str or None
    embed_errors : dict
        Variant name -> error of its embedding-cache fill (the runs then embed themselves).
    seconds : float
    """

    out_dir: Path
    config: SweepConfig
    table: Any
    runs: Any
    completed: list[RunOutcome]
    skipped: list[RunOutcome]
    failed: list[RunOutcome]
    notebooks: list[Path]
    evaluate_notebook: Path | None
    evaluate_error: str | None
    embed_errors: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every run is complete and the evaluate notebook ran."""
        return not self.failed and self.evaluate_error is None

    def summary(self) -> str:
        """A short text report: counts, the results table, failures."""
        lines = [f"sweep {self.out_dir}: {len(self.completed)} run(s) executed, {len(self.skipped)} already complete, "
                 f"{len(self.failed)} failed, {self.seconds:.1f} s", "", results_table_markdown(self.table)]
        for r in self.failed:
            lines.append(f"FAILED {r}")
        if self.evaluate_error:
            lines.append(f"FAILED evaluate notebook {self.evaluate_notebook}: {self.evaluate_error}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Locating notebooks and kernels

def notebooks_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder holding ``train.ipynb`` and ``evaluate.ipynb``.

    ``path`` if given, else ``$SOUNDLIB_NOTEBOOKS``, else ``notebooks/`` beside the
    ``soundlib`` package (a source checkout or editable install).
    """
    raw = path or os.environ.get("SOUNDLIB_NOTEBOOKS")
    folder = Path(raw).expanduser() if raw else Path(__file__).resolve().parent.parent / "notebooks"
    missing = [n for n in (TRAIN_NOTEBOOK, EVALUATE_NOTEBOOK) if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder}: sweep notebook(s) {', '.join(missing)} not found; run from a soundlib "
                          "checkout, or point SOUNDLIB_NOTEBOOKS (or notebooks_dir=) at its notebooks/ folder")
    return folder


def default_kernel_name() -> str:
    """``"soundlib"`` when that kernelspec is installed (``make venv`` installs it), else ``"python3"``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception:  # a broken Jupyter config should not hide the fallback
        specs = {}
    return "soundlib" if "soundlib" in specs else "python3"


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process die when its parent does (Linux; elsewhere a no-op).

    Sweep workers and their kernels call it at start-up so that killing a sweep,
    even with ``kill -9``, leaves no run executing behind it. ``parent_pid``
    (default ``$JPY_PARENT_PID``, set by jupyter_client for kernels) guards
    against a parent that died before the call.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is None:
        parent_pid = int(os.environ.get("JPY_PARENT_PID") or 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


# ---------------------------------------------------------------------------
# Run bookkeeping

def _fingerprint(params: Mapping[str, Any], synth: Mapping[str, Any] | None) -> str:
    ident = {k: v for k, v in params.items() if k not in ("output_dir", "alert", "generate_if_missing")}
    ident["_synth"] = synth
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _valid_metrics(path: Path, *, variant: str | None = None, fold: int | None = None) -> dict | None:
    m = _read_json(path)
    if not isinstance(m, dict):
        return None
    try:
        float(m["accuracy"]), float(m["macro_f1"])
    except (KeyError, TypeError, ValueError):
        return None
    if variant is not None and m.get("variant") != variant:
        return None
    if fold is not None and m.get("test_fold") != fold:
        return None
    return m


def _run_complete(run_dir: Path, fingerprint: str, variant: str, fold: int) -> bool:
    """A run is complete when it ran with these parameters (``params.json``), wrote a valid
    ``metrics.json`` (last of its data, atomically) and its executed notebook was renamed into place."""
    record = _read_json(run_dir / "params.json")
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        return False
    if not (run_dir / TRAIN_NOTEBOOK).is_file():
        return False
    return _valid_metrics(run_dir / "metrics.json", variant=variant, fold=fold) is not None


def _prepare_run_dir(run_dir: Path, record: Mapping[str, Any], *, export: bool) -> None:
    """Start a run afresh: no stale ``metrics.json`` can outlive the new parameters."""
    from ._io import write_json_atomic

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").unlink(missing_ok=True)
    (run_dir / TRAIN_NOTEBOOK).unlink(missing_ok=True)
    for stale in list(run_dir.glob(".*.tmp*")) + list(run_dir.glob(".model.*")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    if not export and (run_dir / "model").is_dir():
        shutil.rmtree(run_dir / "model", ignore_errors=True)
    write_json_atomic(run_dir / "params.json", dict(record))


@contextlib.contextmanager
def _locked(path: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released when the process dies)."""
    if not path:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# Tasks: each executes in its own process (locally or on a Dask worker)

_CHILD = "import sys, soundlib.sweep as s; sys.exit(s._child_main(sys.argv[1]))"
_LIVE: set = set()


def _run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Execute one task in a fresh Python process and return its result.

    Used as is by the local thread pool and as the Dask task function. Never
    raises for a failing task: the failure is in the returned dict.
    """
    t0 = time.perf_counter()
    fd, result_path = tempfile.mkstemp(prefix="soundlib-sweep-", suffix=".result.json")
    os.close(fd)
    os.unlink(result_path)
    fd, task_path = tempfile.mkstemp(prefix="soundlib-sweep-", suffix=".task.json")
    with os.fdopen(fd, "w") as fh:
        json.dump({**task, "result_path": result_path}, fh)
    env = {**os.environ, **task.get("env", {}), "SOUNDLIB_SWEEP_PARENT": str(os.getpid()),
           "PYTHONUNBUFFERED": "1", "JUPYTER_PLATFORM_DIRS": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log = Path(task["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        with open(log, "w") as log_fh:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, task_path], stdin=subprocess.DEVNULL,
                                    stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                    cwd=task.get("cwd") or None)
            _LIVE.add(proc)
            rc = proc.wait()
        result = _read_json(Path(result_path))
        if not isinstance(result, dict):
            result = {"status": "failed", "ename": "WorkerExit",
                      "evalue": f"the worker process exited with code {rc} before reporting; see {log}:\n"
                                + _tail(log)}
    except BaseException as exc:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if isinstance(exc, Exception):
            result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
        else:
            raise
    finally:
        if proc is not None:
            _LIVE.discard(proc)
        for p in (task_path, result_path):
            with contextlib.suppress(OSError):
                os.unlink(p)
    result.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return result


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _child_main(task_path: str) -> int:
    """Entry point of a task process (``python -c``); writes the result file."""
    die_with_parent(int(os.environ.get("SOUNDLIB_SWEEP_PARENT") or 0))
    task = json.loads(Path(task_path).read_text())
    try:
        if task["kind"] == "embed":
            result = _do_embed(task)
        elif task["kind"] == "notebook":
            result = _do_notebook(task)
        else:
            raise ValueError(f"unknown task kind {task['kind']!r}")
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        traceback.print_exc()
        result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
    from ._io import write_json_atomic

    write_json_atomic(task["result_path"], result)
    return 0


def _do_embed(task: Mapping[str, Any]) -> dict[str, Any]:
    from .backbones import load_backbone
    from .data import load_dataset
    from .embed import EmbedConfig, embed_clips
    from .features import FeatureSpec

    ds = load_dataset(task["dataset"])
    spec = FeatureSpec.from_dict(task["variant"])
    backbone = load_backbone(task["backbone"])
    res = embed_clips(ds.clips, spec, backbone, config=EmbedConfig(batch_size=task["batch_size"], progress=False))
    out = {"status": "completed", "computed": res.computed, "hits": res.hits, "failures": len(res.failures)}
    if res.failures:
        out.update(status="failed", ename="EmbedError",
                   evalue=f"{len(res.failures)} clip(s) could not be embedded; first: {res.failures[0][1]}")
    return out


def _do_notebook(task: Mapping[str, Any]) -> dict[str, Any]:
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = Path(task["output"])
    check = task.get("check")
    with _locked(task.get("lock")):
        if check:
            run_dir = Path(check["run_dir"])
            if _run_complete(run_dir, check["fingerprint"], check["variant"], check["fold"]):
                return {"status": "skipped", "notebook": str(out) if out.is_file() else None,
                        "note": "completed by another process"}
            _prepare_run_dir(run_dir, check["record"], export=bool(task["parameters"].get("export_model")))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.ipynb")
        kernel = task.get("kernel_name") or default_kernel_name()
        error: dict[str, Any] | None = None
        for attempt in (1, 2):
            try:
                pm.execute_notebook(
                    nbformat.reads(task["notebook"], as_version=4), str(tmp),
                    parameters=task["parameters"], kernel_name=kernel, progress_bar=False, log_output=False,
                    cwd=task.get("cwd"), start_timeout=180,
                    extra_arguments=[f"--IPKernelApp.exec_lines={_KERNEL_EXEC_LINE}"],
                )
                error = None
                break
            except PapermillExecutionError as exc:  # a cell raised: report it, no retry
                error = {"ename": exc.ename, "evalue": exc.evalue, "cell": exc.exec_count}
                break
            except Exception as exc:  # kernel start-up / port clash / dead kernel: retry once
                traceback.print_exc()
                error = {"ename": type(exc).__name__, "evalue": str(exc), "cell": None}
                print(f"[soundlib sweep] attempt {attempt} failed: {error['ename']}: {error['evalue']}", flush=True)
        if error is not None and check:
            # a failed run is not complete, even when train_fold got as far as writing metrics.json
            (Path(check["run_dir"]) / "metrics.json").unlink(missing_ok=True)
        if tmp.is_file():
            os.replace(tmp, out)
        notebook = str(out) if out.is_file() else None
        if error is not None:
            return {"status": "failed", "notebook": notebook, **error}
        if check and _valid_metrics(Path(check["run_dir"]) / "metrics.json", variant=check["variant"],
                                    fold=check["fold"]) is None:
            return {"status": "failed", "notebook": notebook, "ename": "MissingOutput", "cell": None,
                    "evalue": f"the notebook finished but wrote no valid {Path(check['run_dir']) / 'metrics.json'}"}
        return {"status": "completed", "notebook": notebook}


# ---------------------------------------------------------------------------
# Executors: local processes or a Dask cluster

class _LocalBackend:
    def __init__(self, jobs: int):
        from concurrent.futures import ThreadPoolExecutor

        self.limit = jobs
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="soundlib-sweep")

    def submit(self, task: Mapping[str, Any]):
        return self.pool.submit(_run_task, task)

    def wait_any(self, futures: Sequence[Any]) -> set:
        from concurrent.futures import FIRST_COMPLETED, wait

        return set(wait(futures, return_when=FIRST_COMPLETED).done)

    def close(self, *, abort: bool = False) -> None:
        if abort:
            for proc in list(_LIVE):
                with contextlib.suppress(OSError):
                    proc.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


class _DaskBackend:
    def __init__(self, scheduler: Any, jobs: int | None):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - dask[distributed] is a dependency
            raise ConfigError("scheduler= needs dask[distributed] installed") from None
        if isinstance(scheduler, str):
            try:
                self.client = Client(scheduler, set_as_default=False)  # timeout: distributed.comm.timeouts.connect
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
            self._own = True
        else:  # an existing distributed.Client
            self.client, self._own = scheduler, False
        from distributed import as_completed

        self.limit = jobs if jobs else math.inf
        self._n = 0
        self._done = as_completed(loop=self.client.loop)

    def submit(self, task: Mapping[str, Any]):
        self._n += 1
        key = f"soundlib-sweep-{task['label']}-{os.getpid()}-{self._n}-{time.time_ns()}"
        fut = self.client.submit(_run_task, dict(task), key=key, pure=False, retries=0)
        self._done.add(fut)
        return fut

    def wait_any(self, futures: Sequence[Any]) -> set:
        return {next(self._done)}

    def close(self, *, abort: bool = False) -> None:
        if self._own:
            with contextlib.suppress(Exception):
                self.client.close()


def _drive(backend, initial: Iterable[Mapping[str, Any]],
           on_done: Callable[[Mapping[str, Any], dict], Iterable[Mapping[str, Any]]]) -> None:
    """Run tasks, at most ``backend.limit`` at once; ``on_done`` may return follow-up tasks."""
    queue = deque(initial)
    inflight: dict[Any, Mapping[str, Any]] = {}
    ok = False
    try:
        while queue or inflight:
            while queue and len(inflight) < backend.limit:
                task = queue.popleft()
                inflight[backend.submit(task)] = task
            for fut in backend.wait_any(list(inflight)):
                task = inflight.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # a Dask worker died, a task could not be sent...
                    result = {"status": "failed", "ename": type(exc).__name__, "evalue": str(exc)}
                queue.extend(on_done(task, result) or ())
        ok = True
    finally:
        if not ok:
            backend.close(abort=True)


# ---------------------------------------------------------------------------
# The sweep

def ensure_synth_corpus(path: str | os.PathLike, synth: Any, *, progress: bool = True) -> Path:
    """Generate the synthetic corpus ``synth`` (a SynthConfig) into ``path`` unless it is already there.

    A corpus made with another configuration is replaced (its runs then re-execute:
    the configuration is part of every run's fingerprint).
    """
    from .synth import generate_corpus

    path = Path(path)

    want = json.loads(json.dumps(dataclasses.asdict(synth)))
    have = _read_json(path / "metadata" / "synth_config.json")
    if (path / "metadata" / "UrbanSound8K.csv").is_file() and have == want:
        return path
    return generate_corpus(path, synth, progress=progress)


def _prepare_dataset(config: SweepConfig, out: Path, *, progress: bool):
    from .data import load_dataset

    if config.synth is not None:
        path = config.dataset or out / "data"
        ensure_synth_corpus(path, config.synth, progress=progress)
    else:
        path = config.dataset
        if path is None or not path.exists():
            raise ConfigError(f"{config.source or 'sweep config'}: dataset path {path} does not exist")
    return Path(path), load_dataset(path)


def _resolve_folds(config: SweepConfig, ds) -> list[int]:
    from .data import assign_folds

    available = list(ds.folds) if ds.has_folds else list(assign_folds(ds, config.k_folds, seed=config.train.seed).folds)
    if config.folds is None:
        return available
    missing = [f for f in config.folds if f not in available]
    if missing:
        raise ConfigError(f"{config.source or 'sweep config'}: fold(s) {missing} not in dataset {ds.root} "
                          f"(folds there: {available})")
    return list(config.folds)


def _variant_param(spec) -> Any:
    from .features import VARIANTS

    return spec.name if VARIANTS.get(spec.name) == spec else spec.to_dict()


def _train_params(config: SweepConfig, spec, fold: int, ds_path: Path, run_dir: Path) -> dict[str, Any]:
    from .train import TrainConfig

    t = config.train.to_dict()
    named = ("learning_rate", "epochs", "batch_size", "dropout", "label_smoothing", "l2", "validation_split", "seed")
    defaults = TrainConfig().to_dict()
    extra = {k: v for k, v in t.items() if k not in named and v != defaults[k]}
    return {
        "dataset": str(ds_path),
        "fold": int(fold),
        "variant": _variant_param(spec),
        "backbone": config.backbone,
        **{k: t[k] for k in named},
        "train_extra": extra,
        "embed_batch_size": config.embed_batch_size,
        "k_folds": config.k_folds,
        "output_dir": str(run_dir),
        "export_model": config.exports(fold),
        "alert": False,
        "generate_if_missing": False,
    }


def _backbone_needs_prep(backbone: str) -> bool:
    """True when loading ``backbone`` first exports (embedded) or downloads (hub) it."""
    from . import backbones

    if Path(backbone).expanduser().is_dir():
        return False
    if backbone in backbones.EMBEDDED_BACKBONES:
        return not (backbones._embedded_dir(backbone) / "saved_model.pb").is_file()
    return True


def _embeddings_cached(ds, spec, backbone: str) -> bool:
    """True when every clip's embedding is already cached (checked without TensorFlow where possible)."""
    from . import backbones
    from .embed import EmbeddingCache, audio_hash

    if backbone in backbones.EMBEDDED_BACKBONES:
        if not (backbones._embedded_dir(backbone) / "saved_model.pb").is_file():
            return False
    elif not Path(backbone).expanduser().is_dir():
        return False  # hub handles resolve through tensorflow_hub: let the fill task check
    try:
        info = backbones.resolve_backbone(backbone)
        cache = EmbeddingCache()
        folder = cache.folder(spec.key(), info.identity)
        return all(cache.path(folder, audio_hash(c.path)).is_file() for c in ds.clips)
    except (OSError, SoundlibError):
        return False


def run(config_or_path: "SweepConfig | str | os.PathLike", *, out_dir: str | os.PathLike, jobs: int | None = None,
        scheduler: Any = None, progress: bool = True, kernel_name: str | None = None,
        notebooks: str | os.PathLike | None = None) -> SweepResult:
    """Run a sweep: every (variant, fold) through ``train.ipynb``, then ``evaluate.ipynb``.

    Parameters
    ----------
    config_or_path : SweepConfig or path of a sweep YAML file
    out_dir : path-like
        Output folder: ``sweep.yaml``, ``<variant>/fold<k>/...``, ``evaluate.ipynb``,
        ``results.csv``, ``results.md``. Re-running into the same folder resumes.
    jobs : int, optional
        Runs executed at once (default: the file's ``jobs``; with a scheduler: no limit).
    scheduler : str or distributed.Client, optional
        ``"tcp://HOST:PORT"`` of a Dask scheduler (or a connected client): the
        embedding fills and the runs execute on its workers; ``evaluate.ipynb`` runs here.
    progress : bool
        Show a progress bar (runs done / total); nothing else is printed.
    kernel_name : str, optional
        Jupyter kernel for the notebooks (default :func:`default_kernel_name`, chosen where a run executes).
    notebooks : path-like, optional
        Folder with the notebooks (default :func:`notebooks_dir`).

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError, DatasetError
        Invalid sweep file, missing dataset, unknown folds, notebooks not found.
    """
    from tqdm.auto import tqdm

    from ._io import write_text_atomic

    t0 = time.perf_counter()
    config = config_or_path if isinstance(config_or_path, SweepConfig) else load_sweep_config(config_or_path)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    nb_dir = notebooks_dir(notebooks)
    train_nb = (nb_dir / TRAIN_NOTEBOOK).read_text(encoding="utf-8")
    eval_nb = (nb_dir / EVALUATE_NOTEBOOK).read_text(encoding="utf-8")
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)

    # connect first: an unreachable scheduler fails before any work
    backend = _DaskBackend(scheduler, jobs) if scheduler is not None else _LocalBackend(jobs or config.jobs)
    bar = None
    try:
        ds_path, ds = _prepare_dataset(config, out, progress=progress)
        folds = _resolve_folds(config, ds)
        config = dataclasses.replace(config, dataset=ds_path, folds=tuple(folds))
        import yaml

        write_text_atomic(out / "sweep.yaml", "# resolved by soundlib.sweep.run; `soundlib sweep` reads it back\n"
                          + yaml.safe_dump(config.to_dict(), sort_keys=False))

        env = {"SOUNDLIB_BATCH": "1"}
        if os.environ.get("SOUNDLIB_CACHE_DIR"):
            env["SOUNDLIB_CACHE_DIR"] = os.environ["SOUNDLIB_CACHE_DIR"]
        synth = dataclasses.asdict(config.synth) if config.synth is not None else None
        classes = list(ds.classes)

        outcomes: dict[tuple[str, int], RunOutcome] = {}
        todo: dict[str, list[dict]] = {}
        for spec in config.variants:
            for fold in folds:
                run_dir = out / spec.name / f"fold{fold}"
                params = _train_params(config, spec, fold, ds_path, run_dir)
                fp = _fingerprint(params, synth)
                if _run_complete(run_dir, fp, spec.name, fold):
                    nb = run_dir / TRAIN_NOTEBOOK
                    outcomes[(spec.name, fold)] = RunOutcome(spec.name, fold, run_dir, "skipped",
                                                             nb if nb.is_file() else None, log=run_dir / "run.log")
                    continue
                todo.setdefault(spec.name, []).append({
                    "kind": "notebook", "label": f"{spec.name}-fold{fold}", "variant": spec.name, "fold": fold,
                    "notebook": train_nb, "output": str(run_dir / TRAIN_NOTEBOOK), "parameters": params,
                    "kernel_name": kernel_name, "cwd": str(run_dir), "lock": str(run_dir / ".lock"),
                    "log": str(run_dir / "run.log"), "env": env,
                    "check": {"run_dir": str(run_dir), "fingerprint": fp, "variant": spec.name, "fold": fold,
                              "record": {"fingerprint": fp, "parameters": params, "synth": synth, "classes": classes}},
                })

        embed_tasks = []
        embed_errors: dict[str, str] = {}
        if not config.train.needs_pictures:
            for spec in config.variants:
                if spec.name in todo and not _embeddings_cached(ds, spec, config.backbone):
                    embed_tasks.append({"kind": "embed", "label": f"embed-{spec.name}", "variant_name": spec.name,
                                        "variant": spec.to_dict(), "dataset": str(ds_path), "backbone": config.backbone,
                                        "batch_size": config.embed_batch_size, "env": env,
                                        "log": str(out / ".logs" / f"embed-{spec.name}.log")})
        waiting = {t["variant_name"] for t in embed_tasks}
        ready = [t for name, ts in todo.items() if name not in waiting for t in ts]
        followups: dict[str, list] = {t["label"]: list(todo.get(t["variant_name"], [])) for t in embed_tasks}
        if embed_tasks and _backbone_needs_prep(config.backbone):
            # the first fill exports (or downloads) the backbone alone; the others then only load it
            initial = [embed_tasks[0]]
            # (measured: the first variant's runs interleave with the other fills better than fills first)
            followups[embed_tasks[0]["label"]] += ready + embed_tasks[1:]
        else:
            initial = list(embed_tasks) + ready

        total = len(config.variants) * len(folds)
        bar = tqdm(total=total, initial=total - sum(len(v) for v in todo.values()), desc="sweep", unit="run",
                   disable=not progress, dynamic_ncols=True)
        filling = {t["variant_name"] for t in embed_tasks}
        if filling:
            bar.set_postfix_str(f"filling embedding cache: {', '.join(sorted(filling))}")

        def on_done(task: Mapping[str, Any], result: dict) -> list:
            if task["kind"] == "embed":
                if result.get("status") != "completed":
                    embed_errors[task["variant_name"]] = f"{result.get('ename')}: {result.get('evalue')}"
                filling.discard(task["variant_name"])
                bar.set_postfix_str(f"filling embedding cache: {', '.join(sorted(filling))}" if filling else "")
                return followups.get(task["label"], [])
            status = result.get("status", "failed")
            nb = result.get("notebook")
            err = f"{result.get('ename')}: {result.get('evalue')}" if status == "failed" else None
            outcomes[(task["variant"], task["fold"])] = RunOutcome(
                task["variant"], task["fold"], Path(task["check"]["run_dir"]), status, Path(nb) if nb else None,
                err, result.get("cell"), Path(task["log"]), float(result.get("seconds") or 0.0))
            bar.update(1)
            n_failed = sum(o.status == "failed" for o in outcomes.values())
            if n_failed:
                bar.set_postfix_str(f"{n_failed} failed")
            return []

        _drive(backend, initial, on_done)
    except BaseException:
        backend.close(abort=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    backend.close()

    eval_task = {"kind": "notebook", "label": "evaluate", "notebook": eval_nb,
                 "output": str(out / EVALUATE_NOTEBOOK), "parameters": {"sweep_dir": str(out)},
                 "kernel_name": kernel_name, "cwd": str(out), "lock": str(out / ".evaluate.lock"),
                 "log": str(out / ".logs" / "evaluate.log"), "env": env}
    eval_result = _run_task(eval_task)
    eval_nb_path = Path(eval_result["notebook"]) if eval_result.get("notebook") else None
    eval_error = None
    if eval_result.get("status") != "completed":
        eval_error = f"{eval_result.get('ename')}: {eval_result.get('evalue')}"
    table = collect_results(out)
    if eval_error is not None:
        write_results(out, table)  # the table does not depend on the notebook

    ordered = [outcomes[(s.name, f)] for s in config.variants for f in folds if (s.name, f) in outcomes]
    notebooks = [o.notebook for o in ordered if o.notebook is not None and o.notebook.is_file()]
    if eval_nb_path is not None:
        notebooks.append(eval_nb_path)
    return SweepResult(
        out_dir=out, config=config, table=table, runs=collect_runs(out),
        completed=[o for o in ordered if o.status == "completed"],
        skipped=[o for o in ordered if o.status == "skipped"],
        failed=[o for o in ordered if o.status == "failed"],
        notebooks=notebooks, evaluate_notebook=eval_nb_path, evaluate_error=eval_error,
        embed_errors=embed_errors, seconds=round(time.perf_counter() - t0, 2),
    )


# ---------------------------------------------------------------------------
# Aggregation (evaluate.ipynb, the CLI and the tests)

_RUN_COLUMNS = ["variant", "fold", "accuracy", "macro_f1", "n", "seconds", "run_dir"]
_TABLE_COLUMNS = ["folds", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "clips"]


def _variant_order(sweep_dir: Path) -> list[str]:
    try:
        import yaml

        data = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
        return [v if isinstance(v, str) else v["name"] for v in data.get("variants", [])]
    except Exception:  # no or foreign sweep.yaml: alphabetical order
        return []


def _metrics_files(sweep_dir: Path) -> Iterator[tuple[str, int, Path, dict]]:
    order = _variant_order(sweep_dir)
    found = []
    for path in Path(sweep_dir).glob("*/fold*/metrics.json"):
        m = _FOLD_DIR.match(path.parent.name)
        metrics = _valid_metrics(path) if m else None
        if metrics is not None:
            found.append((path.parent.parent.name, int(m.group(1)), path, metrics))
    rank = {name: i for i, name in enumerate(order)}
    found.sort(key=lambda r: (rank.get(r[0], len(rank)), r[0], r[1]))
    return iter(found)


def collect_runs(sweep_dir: str | os.PathLike):
    """One row per complete run under ``sweep_dir`` (every ``<variant>/fold<k>/metrics.json``).

    Columns: ``variant, fold, accuracy, macro_f1, n, seconds, run_dir``; variants in
    the order of ``sweep.yaml`` when there is one. Unreadable files are ignored.
    """
    import pandas as pd

    rows = [{"variant": v, "fold": f, "accuracy": float(m["accuracy"]), "macro_f1": float(m["macro_f1"]),
             "n": int(m.get("n", 0)), "seconds": m.get("seconds"), "run_dir": str(p.parent)}
            for v, f, p, m in _metrics_files(Path(sweep_dir))]
    return pd.DataFrame(rows, columns=_RUN_COLUMNS)


def collect_results(sweep_dir: str | os.PathLike):
    """Per-variant mean ± std of accuracy and macro-F1 over the folds found under ``sweep_dir``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``variant``; columns ``folds`` (runs found), ``accuracy_mean``,
        ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std`` (population std, ddof=0,
        as :func:`soundlib.evaluate.evaluate` reports) and ``clips`` (test clips summed).
    """
    import pandas as pd

    runs = collect_runs(sweep_dir)
    rows = []
    for variant in dict.fromkeys(runs["variant"]):
        r = runs[runs["variant"] == variant]
        rows.append({"variant": variant, "folds": len(r),
                     "accuracy_mean": float(r["accuracy"].mean()), "accuracy_std": float(r["accuracy"].std(ddof=0)),
                     "macro_f1_mean": float(r["macro_f1"].mean()), "macro_f1_std": float(r["macro_f1"].std(ddof=0)),
                     "clips": int(r["n"].sum())})
    table = pd.DataFrame(rows, columns=["variant"] + _TABLE_COLUMNS).set_index("variant")
    return table


def results_table_markdown(table, *, digits: int = 3) -> str:
    """A Markdown table of :func:`collect_results`: variant, folds, accuracy and macro-F1 as mean ± std."""
    lines = ["| variant | folds | accuracy | macro-F1 |", "|---|---:|---|---|"]
    for variant, r in table.iterrows():
        lines.append(f"| {variant} | {int(r['folds'])} "
                     f"| {r['accuracy_mean']:.{digits}f} ± {r['accuracy_std']:.{digits}f} "
                     f"| {r['macro_f1_mean']:.{digits}f} ± {r['macro_f1_std']:.{digits}f} |")
    if len(table) == 0:
        lines.append("| (no complete runs) | 0 | | |")
    return "\n".join(lines)


def write_results(sweep_dir: str | os.PathLike, table=None) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` into ``sweep_dir`` atomically; return their paths."""
    from ._io import write_text_atomic

    sweep_dir = Path(sweep_dir)
    table = collect_results(sweep_dir) if table is None else table
    csv_path = write_text_atomic(sweep_dir / "results.csv", table.to_csv())
    md = ("# Sweep results\n\n" + results_table_markdown(table) + "\n\n"
          "Mean ± standard deviation (ddof=0) over test folds; each fold trained on the others.\n")
    md_path = write_text_atomic(sweep_dir / "results.md", md)
    return csv_path, md_path


def _run_classes(run_dir: Path, metrics: Mapping[str, Any]) -> list[str]:
    """Class names in confusion-matrix order: from params.json, the model's labels, or sorted names."""
    n = len(metrics.get("confusion_matrix") or [])
    record = _read_json(run_dir / "params.json")
    if isinstance(record, dict) and isinstance(record.get("classes"), list) and len(record["classes"]) == n:
        return list(record["classes"])
    labels = run_dir / "model" / "labels.txt"
    if labels.is_file():
        names = [line.strip() for line in labels.read_text().splitlines() if line.strip()]
        if len(names) == n:
            return names
    return sorted(metrics.get("per_class") or {})[:n]


def summed_confusion(sweep_dir: str | os.PathLike) -> dict[str, tuple[list[str], Any]]:
    """Per variant: ``(classes, confusion matrix summed over its folds)``."""
    import numpy as np

    out: dict[str, tuple[list[str], Any]] = {}
    for variant, _, path, m in _metrics_files(Path(sweep_dir)):
        mat = np.asarray(m.get("confusion_matrix") or [], dtype=np.int64)
        if mat.ndim != 2 or mat.size == 0:
            continue
        classes = _run_classes(path.parent, m)
        if variant not in out:
            out[variant] = (classes, mat.copy())
        elif out[variant][1].shape == mat.shape:
            out[variant][1][...] += mat
    return out


def per_class_f1(sweep_dir: str | os.PathLike):
    """Per-class F1 of each variant from its summed confusion matrix (variants × classes DataFrame)."""
    import numpy as np
    import pandas as pd

    rows = {}
    for variant, (classes, mat) in summed_confusion(sweep_dir).items():
        tp = np.diag(mat).astype(float)
        denom = 2 * tp + (mat.sum(axis=0) - tp) + (mat.sum(axis=1) - tp)
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        rows[variant] = pd.Series(f1, index=classes)
    return pd.DataFrame(rows).T


def write_summed_confusions(sweep_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<variant>/confusion_matrix.png`` (summed over folds) for every variant; return the paths."""
    from .evaluate import plot_confusion

    sweep_dir = Path(sweep_dir)
    paths = {}
    for variant, (classes, mat) in summed_confusion(sweep_dir).items():
        acc = float(mat.trace() / max(mat.sum(), 1))
        paths[variant] = plot_confusion(mat.tolist(), classes, sweep_dir / variant / "confusion_matrix.png",
                                        title=f"{variant}: all folds, pooled accuracy {acc:.3f}")
    return paths


def _figure(figsize: tuple[float, float]):
    """A pyplot-free Figure that displays as PNG in a notebook whatever the matplotlib backend."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)

    def _repr_png_() -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    fig._repr_png_ = _repr_png_  # IPython's display() looks for it
    return fig


def plot_results(table, *, title: str = "accuracy and macro-F1 per variant (mean ± std over folds)"):
    """Bar chart with error bars of a :func:`collect_results` table; returns a matplotlib Figure."""
    import numpy as np

    fig = _figure((max(4.0, 1.3 * len(table) + 2), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(table))
    w = 0.38
    ax.bar(x - w / 2, table["accuracy_mean"], w, yerr=table["accuracy_std"], capsize=4, label="accuracy")
    ax.bar(x + w / 2, table["macro_f1_mean"], w, yerr=table["macro_f1_std"], capsize=4, label="macro-F1")
    ax.set_xticks(x, list(table.index), rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_per_class_f1(frame, *, title: str = "per-class F1 (all folds pooled)"):
    """Heatmap (variants × classes) of :func:`per_class_f1`; returns a matplotlib Figure."""
    fig = _figure((max(5.0, 0.6 * frame.shape[1] + 2.5), max(2.0, 0.45 * frame.shape[0] + 1.6)))
    ax = fig.add_subplot()
    im = ax.imshow(frame.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), list(frame.columns), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(frame.shape[0]), list(frame.index), fontsize=8)
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            v = float(frame.iat[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Notebook helpers

def plot_history(history: Mapping[str, Sequence[float]], *, title: str = ""):
    """Training curves (loss and accuracy, with validation when present); returns a matplotlib Figure."""
    fig = _figure((8.0, 3.0))
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if history.get(key):
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def open_dataset(path: str | os.PathLike, *, generate_if_missing: bool = False, clips_per_class: int = 10):
    """Load a dataset; with ``generate_if_missing``, first write a small synthetic corpus at a missing ``path``."""
    from .data import load_dataset

    p = Path(path).expanduser()
    if not p.exists() and generate_if_missing:
        from .synth import SynthConfig, generate_corpus

        generate_corpus(p, SynthConfig(clips_per_class=clips_per_class), progress=False)
    return load_dataset(p)


def resolve_variant(variant: Any):
    """A :class:`~soundlib.features.FeatureSpec` from a registry name or a mapping of its fields
    (``name``, optional ``base`` and any FeatureSpec field; a full ``to_dict()`` works)."""
    from .features import FeatureSpec

    if isinstance(variant, FeatureSpec):
        return variant
    return _parse_variant(variant, "variant")


def train_config(*, extra: Mapping[str, Any] | None = None, **fields: Any):
    """A validated :class:`~soundlib.train.TrainConfig` from keyword fields plus ``extra`` ones."""
    from .train import TrainConfig

    d = {**fields, **dict(extra or {})}
    return TrainConfig.from_dict(_coerce_fields(TrainConfig, d, TrainConfig(), "train config"))


def format_run(metrics: Mapping[str, Any]) -> str:
    """One line about a :func:`~soundlib.evaluate.train_fold` result."""
    return (f"{metrics['variant']}, test fold {metrics['test_fold']}: accuracy {metrics['accuracy']:.3f}, "
            f"macro-F1 {metrics['macro_f1']:.3f} on {metrics['n']} clips (trained on {metrics.get('train_clips')}, "
            f"{metrics.get('seconds')} s)")


def _interactive() -> bool:
    if os.environ.get("SOUNDLIB_BATCH"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def alert_tone(enabled: bool = True, *, seconds: float = 0.6, sr: int = 22050):
    """An autoplaying two-note chime (``IPython.display.Audio``), or ``None`` when disabled,
    in a batch run (a sweep sets ``$SOUNDLIB_BATCH``) or outside a Jupyter kernel."""
    if not enabled or not _interactive():
        return None
    import numpy as np
    from IPython.display import Audio

    t = np.arange(int(seconds * sr)) / sr
    half = t.size // 2
    f = np.where(np.arange(t.size) < half, 880.0, 1320.0)
    y = 0.3 * np.sin(2 * np.pi * f * t) * np.minimum(1.0, 20 * (seconds - t)) * np.minimum(1.0, 50 * t)
    return Audio(y, rate=sr, autoplay=True)


def pick_clip(dataset, *, fold: int | None = None, label: str | None = None, seed: int = 0):
    """A random clip (seeded), optionally from one fold and/or class; :class:`DatasetError` if none match."""
    import random

    clips = dataset.subset(folds=[fold] if fold is not None else None, labels=[label] if label else None).clips
    if not clips:
        raise DatasetError(f"no clip in dataset {dataset.name!r} at {dataset.root} with fold={fold!r}, "
                           f"label={label!r} (folds: {list(dataset.folds)}, classes: {', '.join(dataset.classes)})")
    return clips[random.Random(seed).randrange(len(clips))]


@dataclasses.dataclass
class ClipPrediction:
    """A clip, its picture and the model's top-k labels."""

    clip: Any
    picture: Any
    top: list[tuple[str, float]]

    @property
    def true_label(self) -> str:
        return self.clip.label

    @property
    def predicted(self) -> str:
        return self.top[0][0]

    @property
    def correct(self) -> bool:
        return self.predicted == self.true_label

    def frame(self):
        """The top-k as a pandas DataFrame (rank, label, probability, is the true class)."""
        import pandas as pd

        rows = [{"rank": i + 1, "label": lab, "probability": round(p, 4), "true class": lab == self.true_label}
                for i, (lab, p) in enumerate(self.top)]
        return pd.DataFrame(rows).set_index("rank")

    def image(self):
        """The picture as a PIL image (displays inline in a notebook)."""
        from PIL import Image

        return Image.fromarray(self.picture)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.clip.path), "fold": self.clip.fold, "true_label": self.true_label,
                "predicted": self.predicted, "correct": self.correct,
                "top": [{"label": lab, "probability": p} for lab, p in self.top]}


def label_clip(model, clip, *, top_k: int = 3) -> ClipPrediction:
    """Render ``clip`` with the model's feature spec and label it (``model``: a LoadedModel or its folder)."""
    import numpy as np

    from .features import featurize_clip
    from .infer import LoadedModel, load_model

    if not isinstance(model, LoadedModel):
        model = load_model(model)
    picture = featurize_clip(clip.path, model.spec)
    proba = model.predict_pictures(picture[None])[0]
    order = np.argsort(-proba)[:max(1, top_k)]
    return ClipPrediction(clip, picture, [(model.labels[i], float(proba[i])) for i in order])


class TrialsUI:
    """Interactive feature explorer (``notebooks/plotting_trials.ipynb``).

    Choose a clip (class dropdown and clip dropdown, or the *random* button), a
    variant, and the rendering parameters (n_fft, hop_length, n_mels, fmin/fmax,
    top_db, colormap, merge strengths and channel order); the picture redraws on
    every change and an audio player plays the clip. Works headless too: the
    widgets are built, :attr:`picture` is rendered, :meth:`save_png` writes it.
    """

    COLORMAPS = ("magma", "viridis", "inferno", "plasma", "cividis", "gray", "Greys", "jet", "coolwarm")

    def __init__(self, dataset, *, variant: str = "mel", seed: int = 0):
        import itertools
        import random

        import ipywidgets as w

        from .features import VARIANTS, get_variant
        from .merge import CHANNEL_SOURCES

        if not dataset.clips:
            raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
        self.dataset = dataset
        self._rng = random.Random(seed)
        self._audio: dict[tuple, Any] = {}
        self._hold = 0
        self.picture = None
        self.error: str | None = None
        base = get_variant(variant)
        self.base = base
        classes = [c for c in dataset.classes if any(clip.label == c for clip in dataset.clips)]
        first = dataset.clips[self._rng.randrange(len(dataset.clips))]
        style = {"description_width": "90px"}
        lay = w.Layout(width="330px")
        self.class_dd = w.Dropdown(options=classes, value=first.label, description="class", style=style, layout=lay)
        self.clip_dd = w.Dropdown(options=self._clip_options(first.label), value=first.path, description="clip",
                                  style=style, layout=lay)
        self.random_btn = w.Button(description="random clip", icon="random")
        self.variant_dd = w.Dropdown(options=list(VARIANTS), value=base.name if base.name in VARIANTS else None,
                                     description="variant", style=style, layout=lay)
        nyq = base.sr / 2
        self.n_fft = w.Dropdown(options=[256, 512, 1024, 2048, 4096], value=base.n_fft, description="n_fft",
                                style=style, layout=lay)
        self.hop_length = w.Dropdown(options=[64, 128, 256, 512, 1024], value=base.hop_length,
                                     description="hop_length", style=style, layout=lay)
        self.n_mels = w.IntSlider(value=base.n_mels, min=16, max=256, step=8, description="n_mels", style=style,
                                  layout=lay, continuous_update=False)
        self.fmin = w.FloatSlider(value=base.fmin, min=0.0, max=nyq - 100, step=50.0, description="fmin (Hz)",
                                  style=style, layout=lay, continuous_update=False)
        self.fmax = w.FloatSlider(value=base.fmax or nyq, min=100.0, max=nyq, step=50.0, description="fmax (Hz)",
                                  style=style, layout=lay, continuous_update=False)
        self.top_db = w.FloatSlider(value=base.top_db, min=10.0, max=120.0, step=5.0, description="top_db",
                                    style=style, layout=lay, continuous_update=False)
        self.colormap = w.Dropdown(options=sorted(set(self.COLORMAPS) | {base.colormap}), value=base.colormap,
                                   description="colormap", style=style, layout=lay)
        self.strengths = [w.FloatSlider(value=s, min=0.0, max=1.0, step=0.05, description=f"strength {i + 1}",
                                        style=style, layout=lay, continuous_update=False)
                          for i, s in enumerate(base.merge.strengths)]
        orders = [" / ".join(p) for p in itertools.permutations(CHANNEL_SOURCES)]
        self.order = w.Dropdown(options=orders, value=" / ".join(base.merge.order), description="channels (RGB)",
                                style=style, layout=lay)
        self.image = w.Image(format="png", layout=w.Layout(width=f"{max(base.width, 224)}px"))
        self.audio_out = w.Output()
        self.message = w.HTML()
        controls = w.VBox([self.class_dd, self.clip_dd, self.random_btn, self.variant_dd, self.n_fft,
                           self.hop_length, self.n_mels, self.fmin, self.fmax, self.top_db, self.colormap,
                           *self.strengths, self.order])
        self.widget = w.HBox([controls, w.VBox([self.image, self.audio_out, self.message])])

        self.class_dd.observe(self._on_class, names="value")
        self.clip_dd.observe(self._on_clip, names="value")
        self.random_btn.on_click(lambda _: self.random_clip())
        self.variant_dd.observe(self._on_variant, names="value")
        for ctl in (self.n_fft, self.hop_length, self.n_mels, self.fmin, self.fmax, self.top_db, self.colormap,
                    *self.strengths, self.order):
            ctl.observe(lambda _change: self.redraw(), names="value")
        self._play()
        self.redraw()

    # -- state ---------------------------------------------------------------
    def _clip_options(self, label: str) -> list[tuple[str, Path]]:
        return [(c.path.name, c.path) for c in self.dataset.clips if c.label == label]

    @property
    def clip(self):
        """The selected clip."""
        return next(c for c in self.dataset.clips if c.path == self.clip_dd.value)

    @property
    def spec(self):
        """The feature spec the controls describe (may raise FeatureError for impossible values)."""
        from .merge import MergeSpec

        nyq = self.base.sr / 2
        return self.base.replace(
            n_fft=int(self.n_fft.value), hop_length=int(self.hop_length.value), n_mels=int(self.n_mels.value),
            fmin=float(self.fmin.value), fmax=None if self.fmax.value >= nyq else float(self.fmax.value),
            top_db=float(self.top_db.value), colormap=self.colormap.value,
            merge=MergeSpec(order=tuple(self.order.value.split(" / ")),
                            strengths=tuple(float(s.value) for s in self.strengths),
                            jitter=self.base.merge.jitter, seed=self.base.merge.seed,
                            stack_ratio=self.base.merge.stack_ratio),
        )

    def _samples(self, spec):
        from .audio import load_audio

        key = (self.clip_dd.value, spec.sr, spec.duration)
        if key not in self._audio:
            self._audio[key] = load_audio(self.clip_dd.value, sr=spec.sr, duration=spec.duration)
        return self._audio[key]

    # -- events --------------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change several controls without a redraw per change."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

    def _on_class(self, change) -> None:
        with self._quiet():
            opts = self._clip_options(change["new"])
            self.clip_dd.options = opts
            self.clip_dd.value = opts[0][1]
        if not self._hold:
            self._play()
            self.redraw()

    def _on_clip(self, change) -> None:
        if self._hold or change["new"] is None:
            return
        self._play()
        self.redraw()

    def _on_variant(self, change) -> None:
        from .features import get_variant

        if change["new"] is None:
            return
        b = self.base = get_variant(change["new"])
        with self._quiet():
            self.n_fft.value, self.hop_length.value, self.n_mels.value = b.n_fft, b.hop_length, b.n_mels
            self.fmin.value, self.fmax.value, self.top_db.value = b.fmin, b.fmax or b.sr / 2, b.top_db
            if b.colormap not in self.colormap.options:
                self.colormap.options = sorted(set(self.colormap.options) | {b.colormap})
            self.colormap.value = b.colormap
            for s, v in zip(self.strengths, b.merge.strengths):
                s.value = v
            self.order.value = " / ".join(b.merge.order)
        self.redraw()

    def random_clip(self):
        """Select a random clip (seeded), play it and redraw; returns the clip."""
        clip = self.dataset.clips[self._rng.randrange(len(self.dataset.clips))]
        with self._quiet():
            self.class_dd.value = clip.label
            self.clip_dd.value = clip.path
        self._play()
        self.redraw()
        return clip

    # -- output --------------------------------------------------------------
    def _play(self) -> None:
        from IPython.display import Audio, display

        self.audio_out.clear_output(wait=True)
        with self.audio_out:
            display(Audio(filename=str(self.clip_dd.value)))

    def redraw(self):
        """Render the selected clip with the current controls; returns the picture (or None on bad values)."""
        if self._hold:
            return self.picture
        import io

        from PIL import Image

        from .features import render

        try:
            spec = self.spec
            self.picture = render(self._samples(spec), spec)
            self.error = None
        except SoundlibError as exc:
            self.error = str(exc)
            self.message.value = f"<span style='color:#b00'>{exc}</span>"
            return None
        buf = io.BytesIO()
        Image.fromarray(self.picture).save(buf, format="PNG")
        self.image.value = buf.getvalue()
        c = self.clip
        self.message.value = (f"<b>{c.label}</b> · {c.path.name} · fold {c.fold} · variant {spec.name} · "
                              f"{self.picture.shape[1]}×{self.picture.shape[0]} px")
        return self.picture

    def save_png(self, path: str | os.PathLike) -> Path:
        """Write the current picture as a PNG (atomically)."""
        from .features import write_png

        if self.picture is None:
            raise SoundlibError(f"no picture to save: {self.error}")
        return write_png(path, self.picture)
