"""``scratch``: a small CNN on log-mel spectrograms, trained from scratch (the control: does transfer help?).

The input is the variant's log-mel spectrogram at its native resolution
(``n_mels`` bands × one column per STFT frame, dB relative to the window's
maximum), i.e. a grayscale picture with no resizing, so a trained model
exports like any picture model and labels raw audio through its feature spec.

Network: ``channels`` conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool,
spatial dropout), the mean over frequency, then mean- and max-pooling over
time, dropout and a softmax layer, with L2 on the weights. Training: Adam with
a cosine-decayed learning rate, label smoothing, SpecAugment (circular time
shift, frequency and time masks) and optional mixup on every batch, early
stopping on the grouped validation clips' accuracy (the best epoch's weights
are kept). The model is trained on the training clips minus the validation
ones and not refitted (refitting would double the cost on a CPU).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from soundlib.audio.datasets import Dataset
from soundlib.errors import ConfigError, TrainingError
from soundlib.methods import register_method
from soundlib.methods.base import (Context, Features, FoldFit, FoldSplit, Method, ModelArtifact, accuracy, aggregate, timed,
                                   window_pictures)

__all__ = ["ScratchOptions", "ScratchMethod", "native_spec"]


@dataclasses.dataclass(frozen=True)
class ScratchOptions:
    """Options of ``scratch`` (defaults: the recipe measured on UrbanSound8K, see the README).

    Attributes
    ----------
    n_mels : int
        Mel bands of the input.
    channels : tuple of int
        Filters of each conv block.
    epochs, patience : int
        Most epochs; stop after ``patience`` epochs without a better validation accuracy.
    batch_size : int
    learning_rate : float
        Peak learning rate (cosine decay to 5 % of it).
    l2, dropout, label_smoothing : float
    freq_masks, time_masks : int
        SpecAugment masks per example.
    freq_mask, time_mask : float
        Largest masked share of the bands / frames per mask.
    time_shift : bool
        Circular time shift by a random amount.
    mixup : float
        Beta(mixup, mixup) mixing of example pairs (0: off).
    budget_seconds : float
        Training time per fit after which it stops at the end of the epoch, keeping the best epoch
        so far (0: no limit; ``auto`` and sweeps use it to bound the control's cost).
    """

    n_mels: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    epochs: int = 60
    patience: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-3
    l2: float = 1e-4
    dropout: float = 0.4
    label_smoothing: float = 0.05
    freq_masks: int = 2
    time_masks: int = 2
    freq_mask: float = 0.125
    time_mask: float = 0.14
    time_shift: bool = True
    mixup: float = 0.0
    budget_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.budget_seconds <= 7 * 24 * 3600:
            raise ConfigError(f"budget_seconds must be in [0, 604800] (0: no limit), got {self.budget_seconds}")
        if len(self.channels) > 6 or self.n_mels >> (len(self.channels) - 1) < 2:
            raise ConfigError(f"channels: {len(self.channels)} conv blocks halve {self.n_mels} mel bands "
                              f"{len(self.channels) - 1} times; at most 6 blocks, leaving at least 2 bands")
        if any(isinstance(c, bool) or not isinstance(c, int) or c > 1024 for c in self.channels):
            raise ConfigError(f"channels must be integers up to 1024 filters, got {list(self.channels)}")
        if not 16 <= self.n_mels <= 256:
            raise ConfigError(f"n_mels must be in [16, 256], got {self.n_mels}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"channels must be positive filter counts, got {list(self.channels)}")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ConfigError("epochs, patience and batch_size must be at least 1")
        if not (0 <= self.freq_mask < 1 and 0 <= self.time_mask < 1 and self.mixup >= 0 and self.learning_rate > 0):
            raise ConfigError("freq_mask and time_mask must be in [0, 1), mixup >= 0, learning_rate > 0")


def native_spec(spec, n_mels: int):
    """The grayscale log-mel variant at native resolution: one pixel per mel band and STFT frame."""
    frames = 1 + spec.n_samples // spec.hop_length
    return spec.replace(name=f"{spec.name}_logmel{n_mels}", kind="spectrogram", frequency="mel", scale="db",
                        n_mels=n_mels, colormap="gray", height=n_mels, width=frames)


def _planes(dataset: Dataset, spec, progress: bool) -> Features:
    """uint8 planes (n_rows, n_mels, frames), high frequencies first (the picture's row order)."""
    return window_pictures(dataset, spec, progress=progress, channel=0, info={"input": spec.to_dict()})


def spec_augment(x: np.ndarray, rng: np.random.Generator, o: ScratchOptions) -> np.ndarray:
    """SpecAugment of a batch of planes (n, bands, frames) in place of a copy: time shift, band and frame masks."""
    x = x.copy()
    n, h, w = x.shape
    fmax, tmax = int(h * o.freq_mask), int(w * o.time_mask)
    for k in range(n):
        if o.time_shift:
            x[k] = np.roll(x[k], int(rng.integers(0, w)), axis=1)
        for _ in range(o.freq_masks):
            f = int(rng.integers(0, fmax + 1))
            f0 = int(rng.integers(0, h - f + 1))
            x[k, f0:f0 + f] = 0.0
        for _ in range(o.time_masks):
            t = int(rng.integers(0, tmax + 1))
            t0 = int(rng.integers(0, w - t + 1))
            x[k, :, t0:t0 + t] = 0.0
    return x


def build_cnn(input_shape: tuple[int, int], n_classes: int, o: ScratchOptions, *, seed: int):
    """The network: planes (n, bands, frames, 1) scaled to about [-2, 2] -> class probabilities."""
    from soundlib.runtime import import_tf

    _, K = import_tf()
    K.utils.set_random_seed(seed)
    reg = K.regularizers.l2(o.l2) if o.l2 else None
    inp = K.Input(input_shape + (1,))
    x = inp
    for i, ch in enumerate(o.channels):
        x = K.layers.Conv2D(ch, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = K.layers.BatchNormalization()(x)
        x = K.layers.ReLU()(x)
        if i < len(o.channels) - 1:
            x = K.layers.MaxPool2D(2)(x)
        if i >= 1:
            x = K.layers.SpatialDropout2D(0.1)(x)
    x = K.layers.Lambda(mean_over_frequency, name="mean_over_frequency")(x)
    x = K.layers.Concatenate()([K.layers.GlobalAveragePooling1D()(x), K.layers.GlobalMaxPooling1D()(x)])
    x = K.layers.Dropout(o.dropout)(x)
    out = K.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="head")(x)
    return K.Model(inp, out, name="scratch_cnn")


def mean_over_frequency(t):
    """The mean over axis 1 (frequency) of a feature map, for a tf_keras ``Lambda`` (module-level, so models save)."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    return tf.reduce_mean(t, axis=1)


def picture_to_plane(t):
    """A float picture in [0, 1] -> the scaled log-mel plane (its first channel, about [-2, 2])."""
    return t[..., :1] * 4.0 - 2.0


def _scale(planes: np.ndarray) -> np.ndarray:
    """uint8 planes -> float32 about [-2, 2] (0 dB at +2, -80 dB at -2)."""
    return planes.astype(np.float32) * (4.0 / 255.0) - 2.0


def train_network(model, x: np.ndarray, y_rows: np.ndarray, val: tuple[np.ndarray, np.ndarray, np.ndarray],
                  y_val_clips: np.ndarray, n_classes: int, *, epochs: int, patience: int, batch_size: int,
                  schedule, augment, mixup: float, label_smoothing: float, seed: int, how: str,
                  predict, budget_seconds: float = 0.0, optimizer=None) -> "tuple[list | None, dict[str, Any]]":
    """Mini-batch training with early stopping on validation clip accuracy; returns ``(best weights, history)``.

    ``budget_seconds`` (0: none) stops it after the epoch during which that much time was spent.
    ``optimizer`` (anything with ``apply_gradients(pairs)``) replaces the default Adam on ``schedule``.

    ``augment(batch, rng)`` distorts an input batch, ``predict(inputs)`` gives row probabilities,
    ``val = (inputs, row_clip, clips)`` are the validation rows.
    """
    import time

    from soundlib.runtime import import_tf

    tf, K = import_tf()
    opt = optimizer if optimizer is not None else K.optimizers.Adam(schedule)
    loss_fn = K.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            p = model(xb, training=True)
            loss = loss_fn(yb, p)
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    eye = np.eye(n_classes, dtype=np.float32)
    best: tuple[float, int, list | None] = (-1.0, -1, None)
    history: dict[str, Any] = {"loss": [], "val_accuracy": [], "seconds": []}
    start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        losses = []
        for s in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            b = order[s:s + batch_size]
            xb, yb = augment(x[b], rng), eye[y_rows[b]]
            if mixup > 0:
                lam = rng.beta(mixup, mixup, size=(len(b),) + (1,) * (xb.ndim - 1)).astype(np.float32)
                perm = rng.permutation(len(b))
                xb = lam * xb + (1 - lam) * xb[perm]
                lam2 = lam.reshape(len(b), 1)
                yb = lam2 * yb + (1 - lam2) * yb[perm]
            losses.append(float(step(tf.constant(xb), tf.constant(yb))))
        vx, vrow_clip, vclips = val
        acc = accuracy(aggregate(predict(vx), vrow_clip, vclips, how=how), y_val_clips) if len(vclips) else 0.0
        history["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        history["val_accuracy"].append(acc)
        history["seconds"].append(round(time.perf_counter() - t0, 2))
        if not np.isfinite(history["loss"][-1]):
            raise TrainingError(f"training diverged at epoch {epoch + 1}: the loss is not finite; "
                                "lower the learning rate")
        if acc > best[0]:
            best = (acc, epoch, [w.copy() for w in model.get_weights()])
        if epoch - best[1] >= patience:
            break
        if budget_seconds and time.perf_counter() - start > budget_seconds:
            history["stopped_by_budget"] = [float(budget_seconds)]
            break
    history["best_epoch"] = best[1] + 1
    return best[2], history


@register_method("scratch", options=ScratchOptions, order=2,
                 summary="a small log-mel CNN trained from scratch (the control: does transfer help?)")
class ScratchMethod(Method):
    """See the module docstring."""

    exportable = True

    def prepare(self, dataset: Dataset, ctx: Context) -> Features:
        import time

        t0 = time.perf_counter()
        feats = _planes(dataset, native_spec(ctx.spec, self.options.n_mels), ctx.progress)
        feats.info["seconds"] = round(time.perf_counter() - t0, 2)
        return feats

    @timed
    def fit(self, feats: Features, split: FoldSplit, y: np.ndarray, ctx: Context) -> FoldFit:
        from soundlib.runtime import import_tf

        tf, K = import_tf()
        o = self.options
        K.backend.clear_session()
        rows_fit, rows_val = feats.rows_of(split.fit), feats.rows_of(split.val)
        model = build_cnn(feats.x.shape[1:], ctx.n_classes, o, seed=ctx.train.seed)
        steps = max(1, len(rows_fit) // o.batch_size) * o.epochs
        schedule = K.optimizers.schedules.CosineDecay(o.learning_rate, steps, alpha=0.05)
        x_fit = _scale(feats.x[rows_fit])

        def predict(xv):
            return model.predict(xv[..., None], batch_size=64, verbose=0)

        weights, history = train_network(
            model, x_fit, y[feats.row_clip[rows_fit]],
            (_scale(feats.x[rows_val]), feats.row_clip[rows_val], split.val), y[split.val], ctx.n_classes,
            epochs=o.epochs, patience=o.patience, batch_size=o.batch_size, schedule=schedule,
            augment=lambda xb, rng: spec_augment(xb, rng, o)[..., None], mixup=o.mixup,
            label_smoothing=o.label_smoothing, seed=ctx.train.seed, how=ctx.aggregate, predict=predict,
            budget_seconds=o.budget_seconds)
        if weights is not None:
            model.set_weights(weights)
        val = aggregate(predict(_scale(feats.x[rows_val])), feats.row_clip[rows_val], split.val, how=ctx.aggregate) \
            if len(split.val) else np.zeros((0, ctx.n_classes), np.float32)
        return FoldFit(model=model, val_proba=val, val_accuracy=accuracy(val, y[split.val]),
                       choice={"best_epoch": history["best_epoch"], "epochs_run": len(history["loss"]),
                               "seconds_per_epoch": float(np.mean(history["seconds"])), "history": history})

    def predict(self, fit: FoldFit, feats: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
        rows = feats.rows_of(clips)
        proba = fit.model.predict(_scale(feats.x[rows])[..., None], batch_size=64, verbose=0)
        return aggregate(proba, feats.row_clip[rows], clips, how=ctx.aggregate)

    def artifact(self, fit: FoldFit, ctx: Context, *, metadata: dict) -> ModelArtifact:
        """A pictures -> probabilities model: the grayscale native-resolution log-mel picture's first channel."""
        from soundlib.runtime import import_tf

        tf, K = import_tf()
        spec = native_spec(ctx.spec, self.options.n_mels)
        inp = K.Input((spec.height, spec.width, 3), dtype="float32")
        x = K.layers.Lambda(picture_to_plane, name="picture_to_plane")(inp)
        model = K.Model(inp, fit.model(x))
        return ModelArtifact("keras", dict(model=model, spec=spec, labels=list(ctx.classes),
                                           info={**metadata, "method": self.spec.to_dict(), "backbone": None,
                                                 "history": fit.choice.get("history", {})}))
