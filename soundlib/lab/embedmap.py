"""Embeddings out of soundlib: the ``.npz`` of ``soundlib embed --export`` and their 2-D map.

:func:`embed_dataset` embeds every clip of a dataset (through the embedding
cache) and keeps what an analysis needs beside each vector: label, fold, recording
and path (:class:`EmbeddingTable`). :func:`write_npz` / :func:`read_npz` store it
as one ``.npz`` file that ``numpy.load`` reads without pickles. :func:`project_2d`
maps embeddings to 2-D (t-SNE from scikit-learn; UMAP when the ``umap`` package is
installed), and :func:`embedding_map` does it all for a notebook: the dataset's
clips in 2-D, coloured by class, the test fold's clips outlined.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from soundlib.errors import ConfigError, DatasetError

__all__ = ["NPZ_FORMAT", "EmbeddingTable", "embed_dataset", "is_embeddings_file", "write_npz", "read_npz",
           "project_2d", "EmbeddingMap", "embedding_map"]

#: The ``format`` entry of the exported ``.npz``.
NPZ_FORMAT = "soundlib-embeddings/1"
#: Up to this many points t-SNE runs exactly; Barnes-Hut is faster above (one thread: 0.7 s against 1.3 s for 200
#: points, 1.4 s against 3.1 s for 400).
_EXACT_TSNE = 100
#: What ``soundlib embed --export`` writes (the ``--help`` text).
NPZ_HELP = ("one .npz file (numpy.load, no pickles): embeddings (n_clips, dim) float32, the mean of each clip's "
            "windows; per clip labels, class_ids, folds (the dataset's own, or the grouped folds evaluate assigns), "
            "groups (recordings) and paths; classes; window_embeddings, window_clip and window_start (one row per "
            "window); variant, backbone and feature_spec (JSON); window (JSON: the embedder's name and modality and "
            "the windows it took: sr, duration, window_hop, pad); format")


@dataclasses.dataclass
class EmbeddingTable:
    """Every clip's embedding with its label, fold, recording and path.

    Attributes
    ----------
    embeddings : np.ndarray, shape (n_clips, dim), float32
        The mean of each clip's window embeddings.
    labels : np.ndarray of str, shape (n_clips,)
    class_ids : np.ndarray of int, shape (n_clips,)
        Indices into ``classes``.
    classes : tuple of str
    folds : np.ndarray of int, shape (n_clips,)
    groups, paths : np.ndarray of str, shape (n_clips,)
        Each clip's recording and audio file.
    window_embeddings : np.ndarray, shape (n_windows, dim), float32
    window_clip : np.ndarray of int, shape (n_windows,)
        Index of each window's clip.
    window_start : np.ndarray of float, shape (n_windows,)
        Start of each window in its clip, in seconds.
    variant, backbone : str
        Feature variant name and the backbone's identity.
    feature_spec : dict
        The full feature spec (duration resolved).
    window : dict
        What the embedder took: its ``embedder`` name and ``modality``, and its windows (``sr``, ``duration``,
        ``window_hop``, ``pad``): an audio network's own sample rate, not the variant's (empty in files written
        before soundlib 0.3).
    failures : list of (str, str)
        Clips that could not be embedded, and why (not in the table).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    class_ids: np.ndarray
    classes: tuple[str, ...]
    folds: np.ndarray
    groups: np.ndarray
    paths: np.ndarray
    window_embeddings: np.ndarray
    window_clip: np.ndarray
    window_start: np.ndarray
    variant: str = ""
    backbone: str = ""
    feature_spec: dict = dataclasses.field(default_factory=dict)
    window: dict = dataclasses.field(default_factory=dict)
    failures: list = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.embeddings)


def embed_dataset(dataset, spec, backbone: Any, *, config=None, k_folds: int | None = None, seed: int = 0,
                  layer: str = "head", pooling: str = "avg", options=None) -> EmbeddingTable:
    """Embed every clip of ``dataset`` (through the embedding cache) into an :class:`EmbeddingTable`.

    Parameters
    ----------
    dataset : soundlib.audio.datasets.Dataset
    spec : soundlib.pictures.variants.FeatureSpec
        The variant; ``duration: auto`` is chosen from the clips as ``evaluate`` does. A picture embedder
        embeds its pictures, an audio embedder (``mn04``, ``yamnet``, ``birdnet``, ``mfcc``) its windows
        (:meth:`~soundlib.embedders.base.Embedder.window`).
    backbone : str or soundlib.embedders.Embedder
        Any embedder handle (:func:`soundlib.embedders.resolve_embedder`: a registered name, a TF Hub
        handle, a SavedModel folder), or an embedder already resolved (a method's own, with its options).
    config : soundlib.embedding.embed.EmbedConfig, optional
    k_folds, seed : int
        Folds assigned (grouped by recording, as ``evaluate`` does) when the dataset has none.
    layer, pooling : str
        The frozen method's ``layer`` and ``pooling`` (the defaults are the backbone's pooled vector).
    options : soundlib.embedders.EmbedderOptions, optional
        Every option the embedder takes (instead of ``layer`` and ``pooling``).

    Clips that fail are left out and listed in ``failures``.
    """
    from soundlib.embedding.embed import EmbedConfig, embed_clips

    ds, spec, embedder = _resolve(dataset, spec, backbone, k_folds=k_folds, seed=seed, layer=layer, pooling=pooling,
                                  options=options)
    window = embedder.window(spec)
    res = embed_clips(ds.clips, window, embedder, config=config or EmbedConfig(), inputs=embedder.inputs)
    index = {str(c.path): i for i, c in enumerate(ds.clips)}
    clips = [ds.clips[index[str(p)]] for p in res.paths]
    dim = res.embeddings.shape[1] if res.embeddings.ndim == 2 else 0
    sums = np.zeros((len(clips), dim))
    np.add.at(sums, res.row_clip, res.embeddings)
    counts = np.maximum(np.bincount(res.row_clip, minlength=len(clips)), 1)[:, None]
    return EmbeddingTable(
        embeddings=(sums / counts).astype(np.float32),
        labels=np.asarray([c.label for c in clips], dtype=str),
        class_ids=np.asarray([c.class_id for c in clips], dtype=np.int64),
        classes=tuple(ds.classes),
        folds=np.asarray([c.fold if c.fold is not None else 0 for c in clips], dtype=np.int64),
        groups=np.asarray([c.group for c in clips], dtype=str),
        paths=np.asarray([str(c.path) for c in clips], dtype=str),
        window_embeddings=res.embeddings.astype(np.float32),
        window_clip=res.row_clip.astype(np.int64),
        window_start=res.row_start.astype(np.float64),
        variant=spec.name, backbone=embedder.identity, feature_spec=spec.to_dict(),
        window={"embedder": embedder.name, "modality": embedder.modality, "sr": int(window.sr),
                "duration": window.n_samples / window.sr, "window_hop": window.hop_seconds, "pad": window.pad},
        failures=[(str(p), msg) for p, msg in res.failures],
    )


def _resolve(dataset, spec, backbone: Any, *, k_folds: int | None, seed: int, layer: str, pooling: str,
             options=None):
    """``(dataset with folds, spec with its duration, embedder)``, as ``evaluate`` resolves them."""
    from soundlib.audio.folds import DEFAULT_K_FOLDS, prepare_folds
    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.methods.base import clip_durations
    from soundlib.pictures.variants import resolve_duration

    embedder = backbone if not isinstance(backbone, (str, os.PathLike)) else resolve_embedder(
        str(backbone), options or EmbedderOptions(layer=layer, pooling=pooling))
    ds, _ = prepare_folds(dataset, k_folds=k_folds or DEFAULT_K_FOLDS, seed=seed)
    spec, _ = resolve_duration(spec, clip_durations(ds) if not spec.resolved else [])
    return ds, spec, embedder


def is_embeddings_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``.npz`` that :func:`write_npz` wrote (its ``format`` member), read without
    pickles and without reading the other members."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # not a zip (an .npz is one): never loaded
                return False
        with np.load(Path(path), allow_pickle=False) as z:
            if "format" not in z.files or z.zip.getinfo("format.npy").file_size > 4096:
                return False
            return str(z["format"]) == NPZ_FORMAT
    except Exception:  # unreadable, damaged, another zip: not soundlib's
        return False


def write_npz(path: str | os.PathLike, table: EmbeddingTable) -> Path:
    """Write ``table`` as one compressed ``.npz`` (atomically); :func:`read_npz` or ``numpy.load`` reads it."""
    from soundlib.atomic import write_bytes_atomic

    buf = io.BytesIO()
    np.savez_compressed(
        buf, format=np.asarray(NPZ_FORMAT), embeddings=table.embeddings, labels=table.labels,
        class_ids=table.class_ids, classes=np.asarray(table.classes, dtype=str), folds=table.folds,
        groups=table.groups, paths=table.paths, window_embeddings=table.window_embeddings,
        window_clip=table.window_clip, window_start=table.window_start, variant=np.asarray(table.variant),
        backbone=np.asarray(table.backbone), feature_spec=np.asarray(json.dumps(table.feature_spec)),
        window=np.asarray(json.dumps(table.window)))
    return write_bytes_atomic(path, buf.getvalue())


def read_npz(path: str | os.PathLike) -> EmbeddingTable:
    """Read a ``.npz`` written by :func:`write_npz` (``soundlib embed --export``).

    Raises
    ------
    DatasetError
        The file is missing, not an ``.npz``, or not one soundlib wrote.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != NPZ_FORMAT:
                raise DatasetError(f"{path}: not a soundlib embeddings file (expected format {NPZ_FORMAT})")
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the embeddings file ({exc})") from None
    return EmbeddingTable(
        embeddings=d["embeddings"], labels=d["labels"], class_ids=d["class_ids"],
        classes=tuple(d["classes"].tolist()), folds=d["folds"], groups=d["groups"], paths=d["paths"],
        window_embeddings=d["window_embeddings"], window_clip=d["window_clip"], window_start=d["window_start"],
        variant=str(d["variant"]), backbone=str(d["backbone"]), feature_spec=json.loads(str(d["feature_spec"])),
        window=json.loads(str(d["window"])) if "window" in d else {})


def project_2d(x: np.ndarray, *, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """Map embeddings to 2-D for a picture.

    The embeddings are standardised and reduced to at most 50 principal
    components first; then UMAP (``method="umap"``, or ``"auto"`` when the
    ``umap`` package is installed) or scikit-learn's t-SNE (``"tsne"``, or
    ``"auto"`` without umap; perplexity ``min(30, (n - 1) / 3)``, exact up to 100
    points, Barnes-Hut above) or the first
    two principal components (``"pca"``, and for fewer than 5 points).

    Parameters
    ----------
    x : np.ndarray, shape (n, dim)
    method : {"auto", "tsne", "umap", "pca"}
    seed : int

    Returns
    -------
    xy : np.ndarray, shape (n, 2)
    used : str
        ``"t-SNE"``, ``"UMAP"`` or ``"PCA"``.
    """
    from sklearn.decomposition import PCA

    if method not in ("auto", "tsne", "umap", "pca"):
        raise ConfigError(f"projection method must be auto, tsne, umap or pca, got {method!r}")
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2)), "PCA"
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    n_comp = min(50, n, x.shape[1])
    reduced = PCA(n_components=n_comp, random_state=seed).fit_transform(x) if n_comp >= 2 else np.c_[x, x][:, :2]
    if method == "pca" or n < 5:
        return reduced[:, :2], "PCA"
    if method in ("umap", "auto"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise ConfigError("projection method 'umap' needs the umap package (pip install umap-learn)") from None
        else:
            neighbours = max(2, min(15, n - 1))
            xy = umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed).fit_transform(reduced)
            return np.asarray(xy, dtype=np.float64), "UMAP"
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=float(min(30.0, (n - 1) / 3)), init="pca", random_state=seed,
                method="exact" if n <= _EXACT_TSNE else "barnes_hut")
    return tsne.fit_transform(reduced), "t-SNE"


@dataclasses.dataclass
class EmbeddingMap:
    """A dataset's clips in 2-D: :attr:`xy` (n_clips, 2) from :attr:`table`, the projection used, and which
    clips are in the test fold."""

    table: EmbeddingTable
    xy: np.ndarray
    projection: str
    test_fold: int | None = None
    #: The embedder in words (``"mn04 (4-s windows at 32 kHz every 2 s)"``; ``auto``: which candidate it picked).
    embedder: str = ""

    def figure(self, *, title: str = ""):
        """The map, coloured by class, the test fold's clips outlined (:func:`soundlib.evaluation.plots.plot_embedding_map`)."""
        import textwrap

        from soundlib.evaluation.plots import plot_embedding_map

        highlight = self.table.folds == self.test_fold if self.test_fold is not None else None
        by = self.embedder or f"{self.table.variant} embedded by {self.table.backbone.split(':')[0]}"
        return plot_embedding_map(
            self.xy, self.table.labels, classes=self.table.classes, highlight=highlight,
            highlight_label=f"test fold {self.test_fold}",
            title=title or textwrap.fill(f"{len(self.table)} clips, {by} ({self.projection})", 70))


def embedding_map(dataset, config: Any, *, test_fold: int | None = None, embed_config=None, method: str = "auto",
                  cached_only: bool | None = None, run_dir: str | os.PathLike | None = None) -> EmbeddingMap | None:
    """The 2-D map of the embeddings a method's head was trained on, for an
    :class:`~soundlib.evaluation.evaluate.EvalConfig`.

    The embedder is the method's own (:func:`soundlib.lab.views.method_embedder`): the frozen method's
    backbone with its ``layer`` and ``pooling`` (a picture backbone on the variant's pictures, an audio
    network such as ``mn04`` on its audio windows), the ``mfcc`` method's statistics, and for ``auto``
    the candidate it picked on the run in ``run_dir`` (for a fusion, its best single candidate). One
    point per clip (the mean of its windows), projected by :func:`project_2d`. After training the
    embeddings are read from the cache.

    Returns ``None`` when the method has no one embedder (``scratch``, ``fusion``, ``auto`` without
    ``run_dir``), or, with ``cached_only``, when some embeddings are not in the cache.

    Parameters
    ----------
    run_dir : path-like, optional
        The training run's folder (what ``auto`` picked, the window ``duration: auto`` chose).
    cached_only : bool, optional
        Draw the map only from embeddings already in the cache (default: for ``finetune``, whose
        training does not fill it, so that a map never costs a whole embedding pass of the dataset).
    """
    from soundlib.embedding.cache import EmbeddingCache
    from soundlib.lab.views import method_embedder

    me = method_embedder(config, run_dir=run_dir, dataset=dataset)
    if me is None:
        return None
    if cached_only if cached_only is not None else me.trained:
        ds, spec, embedder = _resolve(dataset, me.spec, me.embedder, k_folds=config.k_folds, seed=config.seed,
                                      layer="head", pooling="avg")
        cache = EmbeddingCache(getattr(embed_config, "cache_dir", None))
        if not cache.has_all([c.path for c in ds.clips], embedder.window(spec), embedder.identity):
            return None
    table = embed_dataset(dataset, me.spec, me.embedder, config=embed_config, k_folds=config.k_folds,
                          seed=config.seed)
    xy, used = project_2d(table.embeddings, method=method, seed=config.seed)
    words = me.describe() + (" before fine-tuning" if me.trained else "")
    return EmbeddingMap(table, xy, used, test_fold, embedder=f"{me.via}: {words}" if me.via else words)
