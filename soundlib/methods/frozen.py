"""``frozen``: embeddings of the pictures by a frozen image backbone, and a head on them.

Every window of every clip is rendered with the variant, embedded once through
the embedding cache, and a head is trained per fold on the training clips'
windows: by default a standardized logistic regression whose regularization is
chosen on the grouped validation split (``head: logistic``); ``head: softmax``
is soundlib 0.1's dropout + softmax head trained with the fixed
:class:`~soundlib.train.TrainConfig` hyperparameters; with 0.1's ``fine_tune``
or picture distortions set in the TrainConfig it trains end to end on the
pictures, as 0.1 did (the ``finetune`` method is the better recipe).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data import Dataset
from ..errors import DatasetError
from .base import Context, Features, FoldFit, FoldSplit, accuracy, aggregate, backbone_info, timed, window_pictures
from .heads import DEFAULT_CS, HeadMethod

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
    """

    head: str = "logistic"
    Cs: tuple[float, ...] = DEFAULT_CS
    layer: str = "head"
    pooling: str = "avg"

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if not self.Cs or any(c <= 0 for c in self.Cs):
            raise ConfigError(f"Cs must be positive numbers, got {list(self.Cs)}")
        from ..backbones import POOLINGS

        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


def embed_features(dataset: Dataset, ctx: Context, options: "FrozenOptions | None" = None) -> Features:
    """Per-window backbone embeddings of every clip (through the cache), as :class:`Features`."""
    import time

    from ..backbones import pooled_backbone
    from ..embed import EmbedConfig, embed_clips

    t0 = time.perf_counter()
    o = options or FrozenOptions()
    backbone = pooled_backbone(backbone_info(ctx), layer=o.layer, pooling=o.pooling)
    res = embed_clips(dataset.clips, ctx.spec, backbone, config=ctx.embed or EmbedConfig(progress=ctx.progress))
    if res.failures:
        text = "\n  ".join(m for _, m in res.failures[:10])
        raise DatasetError(f"{len(res.failures)} clip(s) could not be featurized:\n  {text}")
    return Features(res.embeddings, res.row_clip, len(dataset.clips),
                    info={"backbone": backbone.identity, "spec_key": ctx.spec.key(), "windows": len(res.row_clip),
                          "embed_hits": res.hits, "embed_computed": res.computed,
                          "seconds": round(time.perf_counter() - t0, 2)})


class FrozenMethod(HeadMethod):
    """See the module docstring."""

    kind = "frozen"
    exportable = True

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        if ctx.train.needs_pictures:
            if self.options.head != "softmax":
                from ..errors import ConfigError

                raise ConfigError("fine_tune and the picture distortions belong to soundlib 0.1's softmax head "
                                  "(method frozen with head: softmax); for fine-tuning use the finetune method")
            return picture_features(dataset, ctx)
        return embed_features(dataset, ctx, self.options)

    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        if self.options.head == "logistic":
            return super().fit(feats, split, y, ctx)
        return timed(_fit_softmax)(feats, split, y, ctx)

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        rows = feats.rows_of(clips)
        return aggregate(_head_proba(fit.model, feats.x[rows]), feats.row_clip[rows], clips, how=ctx.aggregate)

    def export(self, fit: FoldFit, out_dir, ctx: Context, *, metadata: dict, overwrite: bool = False):
        from ..backbones import PooledInfo, pooled_backbone
        from ..infer import export_keras_model, export_model

        backbone = pooled_backbone(backbone_info(ctx), layer=self.options.layer, pooling=self.options.pooling)
        trained = _as_trained_head(fit.model, ctx)
        info = {**metadata, "method": self.spec.to_dict()}
        if not isinstance(backbone, PooledInfo):
            return export_model(out_dir, trained, backbone=backbone, spec=ctx.spec, labels=list(ctx.classes),
                                metadata=info, overwrite=overwrite)
        from ..runtime import import_tf

        from ..backbones import resize_layer_fn

        _, K = import_tf()
        inp = K.Input((ctx.spec.height, ctx.spec.width, 3), dtype="float32")
        x = inp if (ctx.spec.height, ctx.spec.width) == (224, 224) else K.layers.Lambda(
            resize_layer_fn, arguments={"size": (224, 224)}, name="resize")(inp)
        dense = K.layers.Dense(ctx.n_classes, activation="softmax", name="head")
        model = K.Model(inp, dense(backbone.keras_model()(x)))
        dense.set_weights(trained.model.get_weights())  # [kernel, bias]
        return export_keras_model(out_dir, model, spec=ctx.spec, labels=list(ctx.classes), overwrite=overwrite,
                                  info={**info, "backbone": backbone.identity, "train_config": ctx.train.to_dict()})


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
    from ..train import train_end_to_end, train_head

    def train(clips):
        rows = feats.rows_of(clips)
        groups = [ctx.groups[int(c)] for c in feats.row_clip[rows]]
        if ctx.train.needs_pictures:
            return train_end_to_end(feats.x[rows], y[feats.row_clip[rows]], ctx.n_classes,
                                    backbone_path=backbone_info(ctx).path, groups=groups, config=ctx.train)
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
    """A :class:`~soundlib.train.TrainedHead` for export (a logistic head becomes one dense softmax layer)."""
    from ..head import SoftmaxHead
    from ..train import TrainedHead
    from .heads import LogisticHead

    if not isinstance(model, LogisticHead):
        return model
    return TrainedHead(SoftmaxHead(*model.dense()), {}, ctx.train, ctx.n_classes)
