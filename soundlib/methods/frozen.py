"""``frozen``: embeddings by a frozen embedder, and a head on them.

The embedder is the evaluation's backbone (``--backbone``) or the method's own
(``backbone:``): a picture backbone (the embedded EfficientNet-Lite0, a TF Hub
handle, a SavedModel folder) embeds the variant's pictures; an audio network
(``mn04``, ``yamnet``, ``birdnet``) embeds the audio windows (see
:mod:`soundlib.embedders`). Every window of every clip is embedded once through
the embedding cache, and a head is trained per fold on the training clips'
windows: by default a standardized logistic regression whose regularization is
chosen on the grouped validation split (``head: logistic``); ``head: softmax``
is soundlib 0.1's dropout + softmax head trained with the fixed
:class:`~soundlib.methods.train.TrainConfig` hyperparameters; with 0.1's ``fine_tune``
or picture distortions set in the TrainConfig it trains end to end on the
pictures, as 0.1 did (the ``finetune`` method is the better recipe).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.methods import register_method
from soundlib.methods.base import (CacheUnit, Context, Features, FoldFit, FoldSplit, ModelArtifact, accuracy, aggregate,
                                   backbone_info, embedder_features, timed, window_pictures)
from soundlib.methods.heads import DEFAULT_CS, HeadMethod

__all__ = ["FrozenOptions", "FrozenMethod", "embed_features"]

HEADS = ("logistic", "softmax")


@dataclasses.dataclass(frozen=True)
class FrozenOptions:
    """Options of ``frozen``.

    Attributes
    ----------
    head : {"logistic", "softmax"}
        Standardized logistic regression with C chosen on validation, or the 0.1 softmax head.
    Cs : tuple of float
        The inverse regularization strengths the logistic head tries.
    layer : str
        Where the embedded backbone is cut: ``head`` (its last feature map), ``block15``,
        ``block14``, ``block10``, ``block7`` or any tf_keras layer name of EfficientNet-Lite0;
        several joined by ``+`` are pooled and concatenated (``multi``: ``block7+block10+block14``).
    pooling : {"avg", "time_stats", "time_max"}
        How the feature map (rows = frequency, columns = time) becomes one vector: the global
        average, or the mean over frequency then the mean and standard deviation (or the
        maximum) over time. Anything but (``head``, ``avg``) needs the embedded backbone.
    hop : float or None
        Seconds between the windows of an embedder with windows of its own (BirdNET: 1.0).
    pad : str or None
        How such an embedder pads a short clip (``end``, ``center``, ``repeat``; BirdNET: ``end``).
    threads : int
        LiteRT interpreter threads of an audio embedder (0: automatic).
    calibrate : bool
        The logistic head's probabilities calibrated on validation (ties in C broken by log-loss, a
        temperature fitted; :mod:`soundlib.methods.heads`); ``false``: soundlib 0.2's uncalibrated head.
    """

    head: str = "logistic"
    Cs: tuple[float, ...] = DEFAULT_CS
    layer: str = "head"
    pooling: str = "avg"
    hop: float | None = None
    pad: str | None = None
    threads: int = 0
    calibrate: bool = True

    def __post_init__(self) -> None:
        from soundlib.errors import ConfigError

        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if not self.Cs or any(c <= 0 for c in self.Cs):
            raise ConfigError(f"Cs must be positive numbers, got {list(self.Cs)}")
        from soundlib.embedders.backbones import POOLINGS

        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        self.embedder_options()  # checks hop, pad and threads

    def embedder_options(self):
        """The options it passes to its embedder (:class:`~soundlib.embedders.EmbedderOptions`)."""
        from soundlib.embedders import EmbedderOptions

        return EmbedderOptions(layer=self.layer, pooling=self.pooling, hop=self.hop, pad=self.pad,
                               threads=self.threads)


def embedder_of(ctx: Context, options: "FrozenOptions | None" = None):
    """The context's backbone resolved as an embedder with the options' layer, pooling and windows."""
    from soundlib.embedders import resolve_embedder

    return resolve_embedder(str(ctx.backbone), (options or FrozenOptions()).embedder_options())


def embed_features(dataset: Dataset, ctx: Context, options: "FrozenOptions | None" = None) -> Features:
    """Per-window embeddings of every clip by the context's embedder (through the cache), as :class:`Features`."""
    return embedder_features(dataset, embedder_of(ctx, options), ctx)


@register_method("frozen", options=FrozenOptions, order=0,
                 summary="any frozen embedder (picture backbone, mn04, yamnet, birdnet) + logistic head")
class FrozenMethod(HeadMethod):
    """See the module docstring."""

    exportable = True

    @property
    def embeds(self) -> bool:
        return self.options.head == "logistic"

    @property
    def multilabel(self) -> bool:
        return self.options.head == "logistic"

    def unavailable(self) -> str | None:
        from soundlib.embedders import resolve_embedder

        backbone = self.spec.backbone
        if backbone is None:
            return None
        check = getattr(resolve_embedder(backbone, self.options.embedder_options()), "unavailable", None)
        return check() if check else None

    @classmethod
    def cache_units(cls, spec, variant, backbone: str) -> "list[CacheUnit]":
        from soundlib.embedders import resolve_embedder

        o = spec.options
        embedder = resolve_embedder(backbone, o.embedder_options())
        if getattr(embedder, "unavailable", lambda: None)():
            return []
        leaf = dataclasses.replace(spec, name="frozen", options=FrozenOptions(
            layer=o.layer, pooling=o.pooling, hop=o.hop, pad=o.pad, threads=o.threads), variant=None, backbone=None)
        return [CacheUnit.of(leaf, variant, backbone, embedder, o.embedder_options().non_default())]

    def _own(self, ctx: Context) -> Context:
        """The context with the method's own backbone, when its spec names one (``birdnet``, ``mn04``...)."""
        return ctx if self.spec.backbone is None else dataclasses.replace(ctx, backbone=self.spec.backbone)

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        ctx = self._own(ctx)
        if ctx.train.needs_pictures:
            if self.options.head != "softmax":
                from soundlib.errors import ConfigError

                raise ConfigError("fine_tune and the picture distortions belong to soundlib 0.1's softmax head "
                                  "(method frozen with head: softmax); for fine-tuning use the finetune method")
            return picture_features(dataset, ctx)
        return embed_features(dataset, ctx, self.options)

    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        if self.options.head == "logistic":
            return super().fit(feats, split, y, ctx)
        return timed(_fit_softmax)(feats, split, y, self._own(ctx))

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        rows = feats.rows_of(clips)
        return aggregate(_head_proba(fit.model, feats.x[rows]), feats.row_clip[rows], clips, how=ctx.aggregate)

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> ModelArtifact:
        from soundlib.embedders.backbones import PooledInfo, pooled_backbone

        ctx = self._own(ctx)
        from soundlib.methods.heads import LogisticHead

        if isinstance(fit.model, LogisticHead):  # its temperature is inside the head; recorded for the card
            metadata = {**metadata, "calibration": {
                "temperature": float(fit.model.temperature),
                "method": "temperature scaling fitted on the validation recordings" if self.options.calibrate
                else "none (calibrate: false)"}}
        embedder = embedder_of(ctx, self.options)
        record = {"name": embedder.name, "identity": embedder.identity, "modality": embedder.modality,
                  "license": embedder.license}
        if embedder.modality != "picture" or not getattr(embedder, "runs_as_savedmodel", True):
            # a model that runs the embedder itself: an audio network, or a picture model only LiteRT runs (int8)
            from soundlib.errors import ModelError

            if self.options.head != "logistic":
                raise ModelError(f"method {self.spec.name!r}: a model on the embedder {embedder.name!r} "
                                 "is exported with the logistic head (head: logistic)")
            return ModelArtifact("embedder_head", dict(
                embedder=embedder, head=fit.model, spec=ctx.spec, options=self.options.embedder_options().non_default(),
                labels=list(ctx.classes), info={**metadata, "method": self.spec.to_dict()}))
        metadata = {**metadata, "embedder": record}
        if getattr(fit.model, "multilabel", False):
            from soundlib.errors import ModelError

            raise ModelError(f"method {self.spec.name!r}: a multi-label model is exported on an audio embedder "
                             "(mn04, yamnet, birdnet, mfcc), not on a picture backbone")
        backbone = pooled_backbone(backbone_info(ctx), layer=self.options.layer, pooling=self.options.pooling)
        trained = _as_trained_head(fit.model, ctx)
        info = {**metadata, "method": self.spec.to_dict()}
        if not isinstance(backbone, PooledInfo):
            return ModelArtifact("picture_head", dict(trained=trained, backbone=backbone, spec=ctx.spec,
                                                      labels=list(ctx.classes), metadata=info))
        from soundlib.runtime import import_tf

        from soundlib.embedders.backbones import resize_layer_fn

        _, K = import_tf()
        inp = K.Input((ctx.spec.height, ctx.spec.width, 3), dtype="float32")
        x = inp if (ctx.spec.height, ctx.spec.width) == (224, 224) else K.layers.Lambda(
            resize_layer_fn, arguments={"size": (224, 224)}, name="resize")(inp)
        dense = K.layers.Dense(ctx.n_classes, activation="softmax", name="head")
        model = K.Model(inp, dense(backbone.keras_model()(x)))
        dense.set_weights(trained.model.get_weights())  # [kernel, bias]
        return ModelArtifact("keras", dict(model=model, spec=ctx.spec, labels=list(ctx.classes),
                                           info={**info, "backbone": backbone.identity, "train_config": ctx.train.to_dict()}))


def picture_features(dataset: Dataset, ctx: Context) -> Features:
    """Every window's picture, uint8 (n_rows, H, W, 3), for training end to end."""
    return window_pictures(dataset, ctx.spec, progress=ctx.progress,
                           info={"backbone": backbone_info(ctx).identity, "pictures": True})


def _head_proba(model, x: np.ndarray) -> np.ndarray:
    if getattr(model, "end_to_end", False):
        return model.predict_proba(x.astype(np.float32) / 255.0)
    return model.predict_proba(x)  # a LogisticHead or a TrainedHead on embeddings


def _fit_softmax(feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
    """The 0.1 head: validated on ``split.val`` when fitted on ``split.fit``, then refitted on all training clips."""
    from soundlib.embedders.backbones import savedmodel_dir
    from soundlib.methods.train import train_end_to_end, train_head

    def train(clips):
        rows = feats.rows_of(clips)
        groups = [ctx.groups[int(c)] for c in feats.row_clip[rows]]
        if ctx.train.needs_pictures:
            return train_end_to_end(feats.x[rows], y[feats.row_clip[rows]], ctx.n_classes,
                                    backbone_path=savedmodel_dir(backbone_info(ctx)), groups=groups,
                                    config=ctx.train)
        return train_head(feats.x[rows], y[feats.row_clip[rows]], ctx.n_classes, config=ctx.train, groups=groups)

    val_proba = np.zeros((0, ctx.n_classes), np.float32)
    if len(split.val):
        rows = feats.rows_of(split.val)
        val_proba = aggregate(_head_proba(train(split.fit), feats.x[rows]), feats.row_clip[rows], split.val,
                              how=ctx.aggregate)
    trained = train(split.train)
    return FoldFit(model=trained, val_proba=val_proba, val_accuracy=accuracy(val_proba, y[split.val]),
                   choice={"head": "softmax", "history": trained.history})


def _as_trained_head(model, ctx: Context):
    """A :class:`~soundlib.methods.train.TrainedHead` for export (a logistic head becomes one dense softmax layer)."""
    from soundlib.methods.head import SoftmaxHead
    from soundlib.methods.train import TrainedHead
    from soundlib.methods.heads import LogisticHead

    if not isinstance(model, LogisticHead):
        return model
    return TrainedHead(SoftmaxHead(*model.dense()), {}, ctx.train, ctx.n_classes)
