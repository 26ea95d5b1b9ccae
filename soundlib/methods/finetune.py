"""``finetune``: the backbone fine-tuned end to end, with a recipe that protects the pretrained features.

1. **Head first**: a head is trained on the frozen backbone's embeddings (read
   from the embedding cache), so the backbone never sees the large gradients of
   a random head.
2. **Then the backbone**: its layers are unfrozen except batch normalization,
   whose pretrained statistics are kept (BN layers stay in inference mode), and
   the network trains with a learning rate far below the head's
   (``backbone_learning_rate``), warmed up linearly over the first epoch and
   decayed with a cosine, on SpecAugment-ed inputs (time and frequency masks)
   and mixup.
3. **Early stopping** on the grouped validation clips' accuracy; the best
   epoch's weights are kept (epoch 0 is the head-only model, so fine-tuning
   can only be kept when it helps on validation).

The method dispatches on the embedder's modality:

* a **picture** backbone (the embedded EfficientNet-Lite0, rebuilt in tf_keras;
  TF Hub handles and SavedModels enter as a trainable ``hub.KerasLayer``, whose
  batch normalization follows the module's own training flag) trains on the
  variant's pictures; its step-1 head is a dropout + softmax layer trained with
  Adam (``head_epochs``, ``head_learning_rate``);
* an **audio network** (``mn04``, ``yamnet``; :mod:`soundlib.methods.finetune_audio`)
  trains on its own log-mel input, computed once per clip window and cached; its
  step-1 head is the ``frozen`` method's logistic head (C chosen on validation),
  folded into a dense softmax layer; ``unfreeze: top`` trains only the upper
  ``top_stages`` stages, and every stage's learning rate is ``layer_decay`` times
  the one above it (the head's is ``backbone_learning_rate``).

TensorFlow uses a GPU when it sees one. On 2 CPU cores an epoch over
UrbanSound8K-sized folds takes minutes (see the README).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.errors import ConfigError
from soundlib.methods import register_method
from soundlib.methods.schedules import WarmupCosine
from soundlib.methods.base import (CacheUnit, Context, Features, FoldFit, FoldSplit, ModelArtifact, Method, accuracy,
                                   aggregate, backbone_info, timed)

__all__ = ["FinetuneOptions", "FinetuneMethod", "UNFREEZE"]

#: What ``unfreeze`` takes.
UNFREEZE = ("top", "all")


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    """Options of ``finetune``.

    Attributes
    ----------
    head_epochs : int
        Epochs of the picture backbone's softmax head on frozen embeddings (step 1; an audio
        network's head is the logistic head, its C chosen on validation).
    epochs, patience : int
        Most fine-tuning epochs, and epochs without a better validation accuracy before stopping.
    head_learning_rate, backbone_learning_rate : float
        Adam learning rates of step 1 (picture backbones) and (peak, after warm-up) of step 2.
    batch_size : int
    dropout, label_smoothing : float
    time_shift : bool
        Circular time shift of every training input (pictures, mn04's spectrogram; not YAMNet's patches).
    time_mask, freq_mask : float
        Largest masked share of the input's time / frequency axis per mask (two masks each).
    mixup : float
        Beta(mixup, mixup) mixing of example pairs (0: off).
    unfreeze : {"top", "all"}
        Audio networks: train only the upper ``top_stages`` (the lower ones stay frozen), or every
        stage. ``top`` by default: on the UrbanSound8K subset's validation splits (test folds 1 and 10)
        it lost less validation accuracy than ``all`` after one epoch with mn04, and an epoch costs about a
        quarter on a CPU (no gradients through the high-resolution lower stages).
    top_stages : int
        Stages trained with ``unfreeze: top`` (mn04 has 18: stem, 15 blocks, last conv, hidden layer;
        YAMNet 14: its first conv and 13 separable blocks). Picture backbones train every layer.
    layer_decay : float
        Audio networks: learning-rate factor per stage down from the head (1: one rate for all).
    train_head : bool
        Audio networks: the head keeps training in step 2 (False: the network adapts to the fixed head).
    budget_seconds : float
        Fine-tuning time per fit after which it stops at the end of the epoch, keeping the best
        epoch so far (0: no limit).
    """

    head_epochs: int = 30
    epochs: int = 8
    patience: int = 3
    head_learning_rate: float = 1e-3
    backbone_learning_rate: float = 1e-4
    batch_size: int = 32
    dropout: float = 0.2
    label_smoothing: float = 0.1
    time_shift: bool = True
    time_mask: float = 0.1
    freq_mask: float = 0.1
    mixup: float = 0.2
    unfreeze: str = "top"
    top_stages: int = 4
    layer_decay: float = 0.85
    train_head: bool = True
    budget_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.head_epochs < 1 or self.epochs < 0 or self.patience < 1 or self.batch_size < 1:
            raise ConfigError("head_epochs, patience and batch_size must be at least 1, epochs at least 0")
        if not (0 < self.head_learning_rate < 1 and 0 < self.backbone_learning_rate < 1):
            raise ConfigError(f"learning rates must be in (0, 1), got head_learning_rate={self.head_learning_rate}, "
                              f"backbone_learning_rate={self.backbone_learning_rate}")
        if not (0 <= self.time_mask < 1 and 0 <= self.freq_mask < 1 and 0 <= self.dropout < 1
                and 0 <= self.label_smoothing < 1 and 0 <= self.mixup <= 100):
            raise ConfigError("time_mask, freq_mask, dropout and label_smoothing must be in [0, 1), mixup in [0, 100]")
        if self.unfreeze not in UNFREEZE:
            raise ConfigError(f"unfreeze must be one of {', '.join(UNFREEZE)}, got {self.unfreeze!r}")
        if isinstance(self.top_stages, bool) or not isinstance(self.top_stages, int) or not 1 <= self.top_stages <= 64:
            raise ConfigError(f"top_stages must be an integer from 1 to 64, got {self.top_stages!r}")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1] (1: one learning rate for every stage), "
                              f"got {self.layer_decay}")
        if not 0 <= self.budget_seconds <= 7 * 24 * 3600:
            raise ConfigError(f"budget_seconds must be in [0, 604800] (0: no limit), got {self.budget_seconds}")

    def audio_only(self) -> list[str]:
        """The options set to non-defaults that only audio networks take."""
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        return [k for k in ("unfreeze", "top_stages", "layer_decay", "train_head") if getattr(self, k) != fields[k]]


def picture_augment(x: np.ndarray, rng: np.random.Generator, o: FinetuneOptions) -> np.ndarray:
    """SpecAugment for picture batches (n, H, W, 3) float in [0, 1]: circular time shift, two time and
    two frequency masks (set to 0) per picture."""
    x = x.copy()
    n, h, w, _ = x.shape
    for k in range(n):
        if o.time_shift:
            x[k] = np.roll(x[k], int(rng.integers(0, w)), axis=1)
        for _ in range(2):
            t = int(rng.integers(0, int(w * o.time_mask) + 1))
            t0 = int(rng.integers(0, w - t + 1))
            x[k, :, t0:t0 + t] = 0.0
            f = int(rng.integers(0, int(h * o.freq_mask) + 1))
            f0 = int(rng.integers(0, h - f + 1))
            x[k, f0:f0 + f] = 0.0
    return x


def _backbone_model(ctx: Context):
    """``(backbone layer or model, batch-norm layers)``; the embedded network is rebuilt in tf_keras."""
    from soundlib.embedders.backbones import EMBEDDED_BACKBONES, embedded_keras_model
    from soundlib.runtime import import_tf

    tf, K = import_tf()
    if ctx.backbone in EMBEDDED_BACKBONES:
        net = embedded_keras_model(include_top=False)
        return net, [layer for layer in net.layers if isinstance(layer, K.layers.BatchNormalization)]
    from soundlib.runtime import import_hub

    return import_hub().KerasLayer(str(backbone_info(ctx).path), trainable=True, name="backbone"), []


@register_method("finetune", options=FinetuneOptions, order=1,
                 summary="the backbone (picture, mn04 or yamnet) fine-tuned end to end (head first, SpecAugment, "
                         "mixup, early stop)")
class FinetuneMethod(Method):
    """See the module docstring."""

    @classmethod
    def cache_units(cls, spec, variant, backbone: str) -> "list[CacheUnit]":
        """The head of step 1 starts from the frozen embeddings (last layer, average-pooled)."""
        from soundlib.methods import resolve_method
        from soundlib.methods.frozen import FrozenMethod

        return FrozenMethod.cache_units(resolve_method("frozen"), variant, spec.backbone or backbone)
    exportable = True

    def _own(self, ctx: Context) -> Context:
        """The context with the method's own backbone, when its spec names one."""
        return ctx if self.spec.backbone is None else dataclasses.replace(ctx, backbone=self.spec.backbone)

    def _embedder(self, ctx: Context):
        from soundlib.methods.frozen import embedder_of

        return embedder_of(ctx)

    def unavailable(self) -> str | None:
        if self.spec.backbone is None:
            return None
        from soundlib.embedders import resolve_embedder

        check = getattr(resolve_embedder(self.spec.backbone), "unavailable", None)
        return check() if check else None

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        import time

        from soundlib.methods.frozen import embed_features, picture_features

        ctx = self._own(ctx)
        embedder = self._embedder(ctx)
        self._audio = None
        if embedder.modality == "waveform":
            from soundlib.methods.finetune_audio import audio_net, prepare_audio

            self._audio = audio_net(embedder)
            feats, self._embeddings = prepare_audio(dataset, embedder, ctx)
            return feats
        audio_only = self.options.audio_only()
        if audio_only:
            raise ConfigError(f"finetune: {', '.join(audio_only)} apply to audio networks (mn04, yamnet), not to "
                              f"the picture backbone {ctx.backbone!r}")
        t0 = time.perf_counter()
        self._embeddings = embed_features(dataset, ctx)  # the head's inputs in step 1 (cached, last layer pooled)
        feats = picture_features(dataset, ctx)
        feats.info = {**self._embeddings.info, "seconds": round(time.perf_counter() - t0, 2)}
        return feats

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        from soundlib.runtime import import_tf
        from soundlib.methods.scratch import train_network

        ctx = self._own(ctx)
        audio = getattr(self, "_audio", None)
        if audio is not None:
            from soundlib.methods.finetune_audio import fit_audio

            return fit_audio(feats, self._embeddings, audio, split, y, ctx, self.options)
        tf, K = import_tf()
        o = self.options
        K.backend.clear_session()
        K.utils.set_random_seed(ctx.train.seed)
        backbone, bns = _backbone_model(ctx)
        head = K.Sequential([K.layers.Dropout(o.dropout, seed=ctx.train.seed),
                             K.layers.Dense(ctx.n_classes, activation="softmax", name="head")], name="head_block")
        emb = self._embeddings
        # 1. the head on frozen, cached embeddings
        rows = emb.rows_of(split.fit)
        head_in = K.Input((emb.x.shape[1],))
        head_model = K.Model(head_in, head(head_in))
        head_model.compile(K.optimizers.Adam(o.head_learning_rate),
                           K.losses.CategoricalCrossentropy(label_smoothing=o.label_smoothing))
        eye = np.eye(ctx.n_classes, dtype=np.float32)
        head_model.fit(emb.x[rows], eye[y[emb.row_clip[rows]]], epochs=o.head_epochs, batch_size=o.batch_size,
                       shuffle=True, verbose=0)
        # 2. the whole network, batch norm in inference mode
        inp = K.Input((ctx.spec.height, ctx.spec.width, 3))
        model = K.Model(inp, head(backbone(inp)))
        for bn in bns:
            bn.trainable = False
        rows_fit, rows_val = feats.rows_of(split.fit), feats.rows_of(split.val)
        steps_per_epoch = max(1, len(rows_fit) // o.batch_size)
        schedule = WarmupCosine(o.backbone_learning_rate, steps_per_epoch, max(1, o.epochs) * steps_per_epoch)

        def predict(x_uint8):
            out = []
            for s in range(0, len(x_uint8), 64):
                out.append(model(x_uint8[s:s + 64].astype(np.float32) / 255.0, training=False).numpy())
            return np.concatenate(out) if out else np.zeros((0, ctx.n_classes), np.float32)

        val = (feats.x[rows_val], feats.row_clip[rows_val], split.val)
        head_only = accuracy(aggregate(predict(val[0]), val[1], split.val, how=ctx.aggregate), y[split.val]) \
            if len(split.val) else 0.0
        history: dict[str, Any] = {"loss": [], "val_accuracy": [], "seconds": [], "best_epoch": 0}
        weights = model.get_weights()
        if o.epochs:
            best_w, history = train_network(
                model, feats.x[rows_fit], y[feats.row_clip[rows_fit]], val, y[split.val], ctx.n_classes,
                epochs=o.epochs, patience=o.patience, batch_size=o.batch_size, schedule=schedule,
                augment=lambda xb, rng: picture_augment(xb.astype(np.float32) / 255.0, rng, o), mixup=o.mixup,
                label_smoothing=o.label_smoothing, seed=ctx.train.seed, how=ctx.aggregate, predict=predict,
                budget_seconds=o.budget_seconds)
            if best_w is not None and max(history["val_accuracy"]) > head_only:
                weights = best_w
            else:
                history["best_epoch"] = 0
        model.set_weights(weights)
        val_proba = aggregate(predict(val[0]), val[1], split.val, how=ctx.aggregate) if len(split.val) \
            else np.zeros((0, ctx.n_classes), np.float32)
        history["head_only_val_accuracy"] = head_only
        return FoldFit(model=model, val_proba=val_proba, val_accuracy=accuracy(val_proba, y[split.val]),
                       choice={"best_epoch": history["best_epoch"], "epochs_run": len(history["loss"]),
                               "head_only_val_accuracy": round(head_only, 4),
                               "seconds_per_epoch": float(np.mean(history["seconds"])) if history["seconds"] else 0.0,
                               "history": history})

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        if getattr(self, "_audio", None) is not None:
            from soundlib.methods.finetune_audio import predict_audio

            return predict_audio(fit, feats, self._embeddings, clips, ctx)
        rows = feats.rows_of(clips)
        out = [fit.model(feats.x[rows[s:s + 64]].astype(np.float32) / 255.0, training=False).numpy()
               for s in range(0, len(rows), 64)]
        proba = np.concatenate(out) if out else np.zeros((0, ctx.n_classes), np.float32)
        return aggregate(proba, feats.row_clip[rows], clips, how=ctx.aggregate)

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> ModelArtifact:
        audio = getattr(self, "_audio", None)
        if audio is not None:
            from soundlib.errors import ModelError

            raise ModelError(f"method {self.spec.name!r}: exporting a fine-tuned audio network "
                             f"({audio.name}) is not supported yet")

        return ModelArtifact("keras", dict(model=fit.model, spec=ctx.spec, labels=list(ctx.classes),
                                           info={**metadata, "method": self.spec.to_dict(),
                                                 "backbone": backbone_info(ctx).identity,
                                                 "history": fit.choice.get("history", {})}))
