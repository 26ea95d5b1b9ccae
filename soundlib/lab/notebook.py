"""The small helpers the notebooks call, and where the notebooks and their kernel are found.

The notebooks in ``notebooks/`` stay thin: their ``parameters`` cell is an
edge where names (variant, backbone) are resolved once, through
:func:`eval_config`; the rest of their logic lives here and in the library, so
it is tested like any other code. The interactive picture explorer is
:mod:`soundlib.lab.trials`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from soundlib.audio.datasets import Clip, Dataset
from soundlib.errors import ConfigError, DatasetError

__all__ = [
    "NOTEBOOKS",
    "notebooks_dir",
    "copy_notebooks",
    "default_kernel_name",
    "open_dataset",
    "eval_config",
    "pick_clip",
    "label_clip",
    "ClipPrediction",
    "misclassified",
    "score",
    "choice_table",
    "choice_text",
    "scores_line",
    "alert_tone",
]

#: The notebooks soundlib ships.
NOTEBOOKS = ("plotting_trials.ipynb", "train.ipynb", "visualize.ipynb", "evaluate.ipynb")


def notebooks_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder holding soundlib's notebooks.

    ``path`` if given, else ``$SOUNDLIB_NOTEBOOKS``, else the copy installed with the
    package (``soundlib/notebooks/``, package data of a wheel), else ``notebooks/``
    beside the ``soundlib`` package (a source checkout or editable install).
    """
    raw = path or os.environ.get("SOUNDLIB_NOTEBOOKS")
    if raw:
        folder = Path(raw).expanduser()
    else:
        here = Path(__file__).resolve().parents[1]  # the soundlib package (this module is soundlib/lab/)
        candidates = (here / "notebooks", here.parent / "notebooks")
        folder = next((d for d in candidates if (d / "train.ipynb").is_file()), candidates[-1])
    missing = [n for n in NOTEBOOKS if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder}: notebook(s) {', '.join(missing)} not found; reinstall soundlib, run from a "
                          "soundlib checkout, or point SOUNDLIB_NOTEBOOKS (or notebooks_dir=) at a notebooks/ folder")
    return folder


def copy_notebooks(dest: str | os.PathLike, *, overwrite: bool = False) -> tuple[list[Path], list[Path]]:
    """Copy soundlib's notebooks (:data:`NOTEBOOKS`) into ``dest`` (``soundlib notebooks DIR``).

    Returns ``(copied, kept)``: a notebook already in ``dest`` is kept (it may hold the
    user's edits) unless ``overwrite``. Each copy is written atomically, and every target is
    checked first, so that a ``dest`` that cannot take them (a file, a folder in a notebook's
    place, no permission) raises :class:`~soundlib.errors.OutputError` before anything is copied.
    """
    from soundlib.atomic import check_output_path, write_bytes_atomic

    src = notebooks_dir()
    dest = Path(dest).expanduser()
    check_output_path(dest, folder=True)
    todo, kept = [], []
    for name in NOTEBOOKS:
        target = dest / name
        if (target.exists() or target.is_symlink()) and not target.is_dir() and not overwrite:
            kept.append(target)
        else:
            todo.append(check_output_path(target))
    copied = [write_bytes_atomic(target, (src / target.name).read_bytes()) for target in todo]
    return copied, kept


def default_kernel_name() -> str:
    """``"soundlib"`` when that kernelspec is installed (``make venv`` installs it), else ``"python3"``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception:  # a broken Jupyter config should not hide the fallback
        specs = {}
    return "soundlib" if "soundlib" in specs else "python3"


def open_dataset(path: str | os.PathLike, *, generate_if_missing: bool = False, clips_per_class: int = 10,
                 progress: bool = False, group_by: str | None = None, group_regex: str | None = None) -> Dataset:
    """Load a dataset; with ``generate_if_missing``, first write a small synthetic corpus at a missing ``path``
    (with a progress bar if ``progress``). ``group_by`` / ``group_regex`` name each file's recording (see
    :func:`soundlib.audio.loaders.load_dataset`)."""
    from soundlib.audio.loaders import load_dataset

    p = Path(path).expanduser()
    if not p.exists() and generate_if_missing:
        from soundlib.audio.synth import SynthConfig, generate_corpus

        generate_corpus(p, SynthConfig(clips_per_class=clips_per_class), progress=progress)
    return load_dataset(p, group_by=group_by, group_regex=group_regex)


def eval_config(*, variant: Any, method: Any = None, backbone: str | None = None, k_folds: int | None = None,
                seed: int = 0, aggregate: str | None = None, train: Mapping[str, Any] | None = None):
    """Resolve a notebook's parameters into an :class:`~soundlib.evaluation.evaluate.EvalConfig`.

    Parameters
    ----------
    variant : str or mapping
        A variant name or a mapping of FeatureSpec fields (see :func:`soundlib.pictures.variants.resolve_variant`).
    method : str, mapping or None
        A method name or mapping (see :func:`soundlib.methods.resolve_method`); ``None``: the default.
    aggregate : {"mean", "max"} or None
        How a long clip's windows become one decision; ``None``: the default.
    backbone : str or None
        Backbone handle; ``None``: the default backbone.
    k_folds : int or None
        Folds to assign when the dataset has none; ``None``: the default.
    seed : int
        Seed of the fold assignment and, unless ``train`` says otherwise, of the head.
    train : mapping, optional
        :class:`~soundlib.methods.train.TrainConfig` fields; entries that are ``None`` keep the default.
    """
    from soundlib.config import from_mapping
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.methods import resolve_method
    from soundlib.methods.train import TrainConfig
    from soundlib.pictures.variants import resolve_variant

    fields: dict[str, Any] = {"spec": resolve_variant(variant), "seed": seed}
    if method is not None:
        fields["method"] = resolve_method(method, where="notebook parameters: method")
    if aggregate is not None:
        fields["aggregate"] = aggregate
    if backbone is not None:
        fields["backbone"] = backbone
    if k_folds is not None:
        fields["k_folds"] = k_folds
    given = {"seed": seed, **{k: v for k, v in dict(train or {}).items() if v is not None}}
    fields["train"] = TrainConfig.from_dict(given, where="notebook parameters: train")
    return from_mapping(EvalConfig, fields, where="notebook parameters")


def pick_clip(dataset: Dataset, *, fold: int | None = None, label: str | None = None, seed: int = 0) -> Clip:
    """A random clip (seeded), optionally from one fold and/or class; :class:`DatasetError` if none match."""
    import random

    clips = dataset.subset(folds=[fold] if fold is not None else None, labels=[label] if label else None).clips
    if not clips:
        raise DatasetError(f"no clip in dataset {dataset.name!r} at {dataset.root} with fold={fold!r}, "
                           f"label={label!r} (folds: {list(dataset.folds)}, classes: {', '.join(dataset.classes)})")
    return clips[random.Random(seed).randrange(len(clips))]


@dataclasses.dataclass
class ClipPrediction:
    """A clip, what the model sees of its first window, the model's top-k labels, and every window's probabilities.

    ``picture`` is the input of the model's embedder (:func:`soundlib.lab.views.model_input`): the variant's
    picture (H, W, 3) for a picture backbone, a 2-D array (bands, frames) for an audio network (mn04's
    log-mel, YAMNet's patches, the MFCCs...), described by ``seen``. ``starts`` (seconds, shape
    (n_windows,)) and ``window_proba`` (shape (n_windows, n_classes)) hold the timeline of a clip longer
    than the model's window; ``labels`` are the model's classes; ``length`` is the clip's length in seconds.
    """

    clip: Clip
    picture: Any
    top: list[tuple[str, float]]
    starts: Any = None
    window_proba: Any = None
    labels: list[str] = dataclasses.field(default_factory=list)
    window_seconds: float = 0.0
    length: float = 0.0
    sr: int = 22050
    seen: str = "what the model sees"

    @property
    def long(self) -> bool:
        """True when the clip spans several windows (it has a timeline)."""
        return self.starts is not None and len(self.starts) > 1

    @property
    def true_label(self) -> str:
        """The clip's own class."""
        return self.clip.label

    @property
    def predicted(self) -> str:
        """The top class."""
        return self.top[0][0]

    @property
    def correct(self) -> bool:
        """Whether the top class is the true one."""
        return self.predicted == self.true_label

    def frame(self):
        """The top-k as a pandas DataFrame (rank, label, probability, is the true class)."""
        import pandas as pd

        rows = [{"rank": i + 1, "label": lab, "probability": round(p, 4), "true class": lab == self.true_label}
                for i, (lab, p) in enumerate(self.top)]
        return pd.DataFrame(rows).set_index("rank")

    def figure(self):
        """The picture beside the bar chart of the top-k probabilities (:func:`soundlib.evaluation.plots.plot_prediction`)."""
        from soundlib.evaluation.plots import plot_prediction

        return plot_prediction(self.picture, self.top, true_label=self.true_label, picture_title=self.seen,
                               title=f"{self.clip.path.name}: predicted {self.predicted}, true class {self.true_label}")

    def events(self, threshold: float | None = None) -> list:
        """The clip's event segments (:func:`soundlib.models.events.event_segments` over its timeline)."""
        import numpy as np

        from soundlib.models.events import DEFAULT_THRESHOLD, event_segments

        starts = np.asarray(self.starts, dtype=float)
        ends = starts + self.window_seconds
        if self.length:
            ends = np.minimum(ends, self.length)
        return event_segments(self.window_proba, starts, ends, self.labels,
                              threshold=DEFAULT_THRESHOLD if threshold is None else threshold)

    def events_frame(self, threshold: float | None = None):
        """:meth:`events` as a pandas DataFrame (start, end, label, confidence)."""
        import pandas as pd

        return pd.DataFrame([seg.to_dict() for seg in self.events(threshold)],
                            columns=["start", "end", "label", "confidence"])

    def audio(self, *, max_seconds: float = 10.0):
        """An audio player (``IPython.display.Audio``) of the clip's first ``max_seconds``, at the model's
        sample rate (so a long recording does not bloat the notebook)."""
        from IPython.display import Audio

        from soundlib.audio.clips import read_segment

        return Audio(read_segment(self.clip.path, sr=self.sr, duration=max_seconds), rate=self.sr)

    def image(self):
        """What the model sees as a PIL image (displays inline in a notebook; a 2-D input in viridis, low
        rows at the bottom)."""
        import numpy as np
        from PIL import Image

        from soundlib.pictures.features import colormap_lut

        pic = np.asarray(self.picture)
        if pic.ndim == 2:
            lo, hi = float(np.min(pic)), float(np.max(pic))
            scaled = np.round(255 * (pic - lo) / ((hi - lo) or 1.0)).astype(np.uint8)
            pic = colormap_lut("viridis")[scaled[::-1]]
        return Image.fromarray(pic)

    def to_dict(self) -> dict[str, Any]:
        """The pick and its labels as plain data (for JSON)."""
        return {"path": str(self.clip.path), "fold": self.clip.fold, "true_label": self.true_label,
                "predicted": self.predicted, "correct": self.correct,
                "top": [{"label": lab, "probability": p} for lab, p in self.top]}


def label_clip(model, clip: Clip, *, top_k: int = 3, aggregate: str = "mean") -> ClipPrediction:
    """Label ``clip`` with a :class:`~soundlib.models.load.LoadedModel` (on pictures or on an audio embedder): its
    windows' probabilities aggregated into one decision. What is shown as the model's input is its feature
    spec's picture, or for a model on an audio embedder that network's own input (mn04's log-mel...; see
    :func:`soundlib.lab.views.model_input`)."""
    import numpy as np

    from soundlib.lab.views import model_embedder, model_input
    from soundlib.methods.base import aggregate as aggregate_windows
    from soundlib.models.label import window_probabilities
    from soundlib.pictures.featurize import featurize_clip

    me = model_embedder(model)
    if me is not None:
        seen, picture = model_input(clip.path, me.embedder, model.spec)
    else:
        picture = featurize_clip(clip.path, model.spec)
        seen = f"what the model sees: the {model.spec.name} picture"
    win, starts, length = window_probabilities(model, clip.path)
    proba = aggregate_windows(win, np.zeros(len(win), np.int64), np.array([0]), how=aggregate)[0]
    order = np.argsort(-proba)[:max(1, top_k)]
    return ClipPrediction(clip, picture, [(model.labels[i], float(proba[i])) for i in order], starts, win,
                          list(model.labels), float(model.window_seconds), float(length),
                          int(model.window.sr if model.window is not None else model.spec.sr), seen)


def misclassified(run_dir: str | os.PathLike, spec: Any, *, limit: int = 4, top_k: int = 3,
                  config: Any = None) -> list[ClipPrediction]:
    """The test clips of a training run whose top class is wrong, most confident mistakes first.

    Each comes with what the model saw of its first window and its top-k classes from
    ``predictions.csv``: ``.figure()`` shows them side by side (the true class in green),
    ``.audio()`` plays the clip. What the model saw is its embedder's input
    (:func:`soundlib.lab.views.model_input`) when ``config`` is given: the picture for a picture
    backbone, mn04's log-mel, YAMNet's patches, the MFCCs...; for ``auto``, that of the candidate it
    picked. Without ``config`` (or for a method with no one embedder) it is the variant's picture.

    Parameters
    ----------
    run_dir : path-like
        A ``train`` output folder (``predictions.csv``; ``metrics.json`` for ``duration: auto``).
    spec : soundlib.pictures.variants.FeatureSpec
        The run's variant (its window chosen from ``metrics.json`` when it is ``auto``).
    limit : int
        At most this many.
    config : soundlib.evaluation.evaluate.EvalConfig, optional
        The run's configuration (:func:`eval_config`): which embedder the method used.
    """
    from soundlib.audio.datasets import Clip
    from soundlib.evaluation.metrics import RunMetrics, read_predictions, read_probabilities
    from soundlib.lab.views import method_embedder, model_input
    from soundlib.pictures.featurize import featurize_clip

    frame = read_predictions(run_dir)
    if frame is None:
        raise DatasetError(f"{Path(run_dir) / 'predictions.csv'}: missing or unreadable; run the training first")
    if not spec.resolved:
        m = RunMetrics.read(run_dir)
        spec = spec.replace(duration=float((m.duration if m else {}).get("seconds") or 4.0))
    me = method_embedder(dataclasses.replace(config, spec=spec), run_dir=run_dir) if config is not None else None
    wrong = frame[frame["true"] != frame["predicted"]].sort_values("probability", ascending=False, kind="stable")
    got = read_probabilities(wrong)
    out = []
    for i, (_, row) in enumerate(wrong.head(max(0, limit)).iterrows()):
        if got is not None:
            proba, labels = got
            order = proba[i].argsort(kind="stable")[::-1][:max(1, top_k)]
            top = [(labels[k], float(proba[i][k])) for k in order]
        else:  # predictions.csv of soundlib 0.1: the top-1 probability only
            top = [(str(row["predicted"]), float(row["probability"]))]
        fold = row.get("fold")
        clip = Clip(Path(row["path"]), str(row["true"]), -1, int(fold) if fold == fold else None,
                    str(row.get("group", "")))
        if me is not None:
            seen, picture = model_input(clip.path, me.embedder, me.spec)
            if me.via:
                seen = f"{me.via}: {seen}"
        else:
            seen, picture = f"what the model sees: the {spec.name} picture", featurize_clip(clip.path, spec)
        out.append(ClipPrediction(clip, picture, top, sr=int(spec.sr), window_seconds=float(spec.duration),
                                  seen=seen))
    return out


def score(x: Any, digits: int = 3) -> str:
    """A score as a person reads it (``0.567``; ``"n/a"`` for ``None``)."""
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def _flat(prefix: str, value: Any):
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flat(f"{prefix}{k}" if not prefix else f"{prefix} / {k}", v)
    elif isinstance(value, (list, tuple)):
        yield prefix, "; ".join(map(str, value)) if value else "-"
    elif isinstance(value, float):
        yield prefix, f"{value:.4g}"
    else:
        yield prefix, "-" if value is None else str(value)


def choice_table(choice: Mapping[str, Any] | None):
    """What a method chose on validation (``metrics.choice``) as a two-column pandas DataFrame (setting,
    value): nested entries (``auto``'s candidates' accuracies, the pick's own choice) one row each, numbers to
    four significant digits, never a raw dict."""
    import pandas as pd

    rows = list(_flat("", dict(choice or {})))
    return pd.DataFrame(rows or [("(nothing)", "-")], columns=["setting", "value"]).set_index("setting")


def choice_text(choice: Any) -> str:
    """A run's choice in a few words for a table cell: what ``auto`` picked, or the method's own settings
    (``C 0.1, temperature 0.672``); nested entries are left to :func:`choice_table`."""
    if not isinstance(choice, Mapping):
        return "" if choice is None or choice != choice else str(choice)
    if "picked" in choice:
        inner = choice_text(choice.get("picked_choice"))
        return f"picked {choice['picked']}" + (f" ({inner})" if inner else "")
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in choice.items()
                     if isinstance(v, (int, float, str)) and not isinstance(v, bool))


def scores_line(metrics: Any) -> str:
    """Top-k accuracy and the calibration error of one run, in words (never a raw dict)."""
    topk = ", ".join(f"top-{k} {score(v)}" for k, v in sorted((metrics.top_k_accuracy or {}).items(),
                                                               key=lambda kv: int(kv[0])))
    ece = f"calibration error (ECE, 15 bins, this fold's clips) {score(metrics.ece)}" if metrics.ece is not None else ""
    return "; ".join(x for x in (topk, ece) if x) or "no top-k or calibration recorded"


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
