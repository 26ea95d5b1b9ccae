"""Train a classifier head on cached embeddings (or end to end), and export it.

The options are the ones retrain.py / make_image_classifier users know:
learning rate, epochs or steps, batch sizes, validation split (grouped by
recording, never by a hash of the file name), dropout, label smoothing, L2,
seed, TensorBoard summaries, a fine-tuning mode (backbone trainable) and
distortions. Like retrain.py, distortions (and fine-tuning) bypass the
embedding cache: the pictures go through the backbone at every step.

All models are tf_keras (Keras 2) models; backbones enter them as ``hub.KerasLayer``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from .config import check_finite, from_mapping
from .errors import ConfigError, DatasetError, TrainingError
from .folds import grouped_validation_split
from .runtime import import_tf

__all__ = [
    "Distortions",
    "TrainConfig",
    "TrainedHead",
    "train_head",
    "train_end_to_end",
]


@dataclasses.dataclass(frozen=True)
class Distortions:
    """Random picture distortions applied while training (each 0/False = off).

    ``flip_left_right``, ``random_crop`` (fraction of the side cropped away at most),
    ``random_scale`` (zoom fraction), ``random_brightness`` (fraction) follow retrain.py;
    ``time_shift`` (fraction of the width, circular), ``time_mask`` and ``freq_mask``
    (largest masked fraction of width / height, SpecAugment-style) suit spectrograms.
    """

    flip_left_right: bool = False
    random_crop: float = 0.0
    random_scale: float = 0.0
    random_brightness: float = 0.0
    time_shift: float = 0.0
    time_mask: float = 0.0
    freq_mask: float = 0.0

    def __post_init__(self) -> None:
        check_finite(self, "distortions")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "flip_left_right" and not 0.0 <= float(v) < 1.0:
                raise ConfigError(f"distortion {f.name} must be in [0, 1), got {v}")

    @property
    def active(self) -> bool:
        """True when any distortion is on."""
        return any(bool(getattr(self, f.name)) for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters shared by the methods, and those of the 0.1 softmax head.

    ``validation_split`` holds out that share of the *recordings* (groups) of the
    training folds for validation: every method chooses its hyperparameters
    (the logistic head's C, early-stopping epochs, fusion weights, ``auto``'s
    pick) on those clips, never on the test fold; 0 disables validation.
    ``seed`` seeds the split and the training. The other fields configure the
    ``frozen`` method's ``head: softmax`` (soundlib 0.1's head; ``steps``, when
    given, overrides ``epochs`` with a total number of optimizer steps) and the
    end-to-end :func:`train_end_to_end`.
    """

    learning_rate: float = 0.001
    epochs: int = 60
    steps: int | None = None
    batch_size: int = 32
    validation_batch_size: int = 256
    validation_split: float = 0.2
    dropout: float = 0.2
    label_smoothing: float = 0.1
    l2: float = 1e-4
    seed: int = 0
    fine_tune: bool = False
    fine_tune_learning_rate: float = 1e-4
    distortions: Distortions = Distortions()
    summaries_dir: str | None = None
    verbose: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.distortions, Mapping):
            object.__setattr__(self, "distortions", Distortions(**self.distortions))
        check_finite(self, "train config")
        if self.learning_rate <= 0 or self.fine_tune_learning_rate <= 0:
            raise ConfigError(f"learning_rate and fine_tune_learning_rate must be positive, got "
                              f"{self.learning_rate} and {self.fine_tune_learning_rate}")
        if self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ConfigError(f"epochs/steps must be at least 1, got epochs={self.epochs} steps={self.steps}")
        if self.batch_size < 1 or self.validation_batch_size < 1:
            raise ConfigError("batch sizes must be at least 1")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.l2 < 0:
            raise ConfigError(f"l2 must be >= 0, got {self.l2}")

    @property
    def needs_pictures(self) -> bool:
        """True when training must see pictures (fine-tuning or distortions), bypassing the cache."""
        return self.fine_tune or self.distortions.active

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data; :meth:`from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "train config",
                  base: "TrainConfig | None" = None) -> "TrainConfig":
        """Build from a mapping of fields (missing ones from ``base`` or the defaults); see
        :func:`soundlib.config.from_mapping` for the checks."""
        return from_mapping(cls, d, where=where, base=base)


@dataclasses.dataclass
class TrainedHead:
    """A trained tf_keras model and its history (loss/accuracy per epoch)."""

    model: Any
    history: dict[str, list[float]]
    config: TrainConfig
    n_classes: int
    end_to_end: bool = False

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), of embeddings (N, D) or, end to end, of float
        pictures (N, H, W, 3) in [0, 1]."""
        bs = self.config.validation_batch_size
        out = [np.asarray(self.model(x[i:i + bs], training=False)) for i in range(0, len(x), bs)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)


def _epochs(config: TrainConfig, n_train: int) -> int:
    if config.steps is None:
        return config.epochs
    return max(1, math.ceil(config.steps / max(1, math.ceil(n_train / config.batch_size))))


def _callbacks(config: TrainConfig, tf_keras) -> list:
    cbs = []
    if config.summaries_dir:
        cbs.append(tf_keras.callbacks.TensorBoard(log_dir=str(config.summaries_dir), histogram_freq=0))
    return cbs


def _head_layers(tf_keras, n_classes: int, config: TrainConfig) -> list:
    return [
        tf_keras.layers.Dropout(config.dropout, seed=config.seed),
        tf_keras.layers.Dense(
            n_classes,
            activation="softmax",
            kernel_regularizer=tf_keras.regularizers.l2(config.l2) if config.l2 else None,
            kernel_initializer=tf_keras.initializers.GlorotUniform(seed=config.seed),
            name="head",
        ),
    ]


def _check_finite_history(history: Mapping[str, Sequence[float]], config: TrainConfig) -> None:
    """Raise :class:`TrainingError` when a loss or accuracy went NaN or infinite (training diverged)."""
    for name, values in history.items():
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise TrainingError(
                f"training diverged: {name} is {values[bad[0]]} from epoch {bad[0] + 1} of {len(values)} "
                f"(learning_rate={config.learning_rate:g}, l2={config.l2:g}); lower the learning rate or check "
                "the inputs for huge values; no model or metrics were written")


def _check_labels(y: np.ndarray, n_classes: int) -> None:
    if len(y) == 0:
        raise DatasetError("no training clips: the training folds are empty")
    if y.min() < 0 or y.max() >= n_classes:
        raise DatasetError(f"labels must be class ids in [0, {n_classes}), got {y.min()}..{y.max()}")


class _HeadTrainer:
    """Softmax head + Adam, traced once and reused for every fold with the same shapes and config.

    One traced call per epoch (its batches loop inside the graph); dropout uses
    stateless random numbers keyed by (seed, step), so a reused trainer gives
    exactly the results of a fresh one.
    """

    def __init__(self, dim: int, n_classes: int, config: TrainConfig):
        tf, tf_keras = import_tf()
        self.tf = tf
        self.config = config
        self.n_classes = n_classes
        dense = tf_keras.layers.Dense(
            n_classes, activation="softmax", name="head",
            kernel_regularizer=tf_keras.regularizers.l2(config.l2) if config.l2 else None)
        self.model = tf_keras.Sequential([tf_keras.Input((dim,)), dense])
        self.optimizer = tf_keras.optimizers.Adam(config.learning_rate)
        self.loss_fn = tf_keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        self._init = tf_keras.initializers.GlorotUniform(seed=config.seed)
        model, opt, loss_fn = self.model, self.optimizer, self.loss_fn
        bs, rate, seed = config.batch_size, float(config.dropout), int(config.seed)

        def batch_loss(xb, yb, step, training):
            if training and rate > 0:
                u = tf.random.stateless_uniform(tf.shape(xb), seed=tf.stack([tf.constant(seed, tf.int64), step]))
                xb = tf.where(u >= rate, xb / (1.0 - rate), tf.zeros_like(xb))
            p = model(xb, training=training)
            loss = loss_fn(yb, p)
            if model.losses:
                loss += tf.add_n(model.losses)
            return loss, p

        def accuracy(p, y):
            return tf.reduce_mean(tf.cast(tf.argmax(p, 1) == tf.argmax(y, 1), tf.float32))

        spec_x = tf.TensorSpec([None, dim], tf.float32)
        spec_y = tf.TensorSpec([None, n_classes], tf.float32)

        @tf.function(input_signature=[spec_x, spec_y, tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)])
        def run_epoch(xt, yt, perm, step):
            n = tf.shape(xt)[0]
            total, correct = tf.constant(0.0), tf.constant(0.0)
            for i in tf.range((n + bs - 1) // bs):
                idx = perm[i * bs:(i + 1) * bs]
                xb, yb = tf.gather(xt, idx), tf.gather(yt, idx)
                with tf.GradientTape() as tape:
                    loss, p = batch_loss(xb, yb, step + tf.cast(i, tf.int64), True)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))
                k = tf.cast(tf.shape(idx)[0], tf.float32)
                total += loss * k
                correct += accuracy(p, yb) * k
            nf = tf.cast(n, tf.float32)
            return total / nf, correct / nf

        @tf.function(input_signature=[spec_x, spec_y])
        def score(xv, yv):
            vl, vp = batch_loss(xv, yv, tf.constant(0, tf.int64), False)
            return vl, accuracy(vp, yv)

        def fit(xt, yt, perms, xv, yv):
            xt, yt = tf.constant(xt), tf.constant(yt)
            if len(xv):
                xv, yv = tf.constant(xv), tf.constant(yv)
            hist: list[list[float]] = [[], [], [], []]
            n_batches = -(-len(perms[0]) // bs) if len(perms) else 0
            for e, perm in enumerate(perms):
                loss, acc = run_epoch(xt, yt, tf.constant(perm), tf.constant(e * n_batches, tf.int64))
                hist[0].append(float(loss))
                hist[1].append(float(acc))
                if len(xv):
                    vl, va = score(xv, yv)
                    hist[2].append(float(vl))
                    hist[3].append(float(va))
            return hist

        self._fit = fit

    def reset(self) -> None:
        dense = self.model.get_layer("head")
        kernel, bias = dense.kernel, dense.bias
        kernel.assign(self._init(kernel.shape))
        bias.assign(self.tf.zeros_like(bias))
        for v in self.optimizer.variables():
            v.assign(self.tf.zeros_like(v))

    def fit(self, xt, yt, perms, xv, yv):
        self.reset()
        return self._fit(xt, yt, perms, xv, yv)


_TRAINERS: dict[tuple, _HeadTrainer] = {}


def train_head(
    embeddings: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    groups: Sequence[str] | None = None,
    config: TrainConfig = TrainConfig(),
) -> TrainedHead:
    """Train a dropout + softmax head on (N, D) embeddings; validation held out by recording.

    Mini-batch Adam on label-smoothed cross-entropy plus L2, ``epochs`` (or
    ``steps``) passes over shuffled batches of ``batch_size``: the optimisation
    ``model.fit`` would run, compiled into one graph call per epoch and traced
    once per process (a 10-fold evaluation reuses it), because Keras' per-step overhead dwarfs the work
    of a head this small. The result is a tf_keras model (Dense softmax).
    """
    tf, tf_keras = import_tf()
    x = np.asarray(embeddings, np.float32)
    y = np.asarray(labels, np.int64)
    _check_labels(y, n_classes)
    if not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise TrainingError(f"{len(rows)} of {len(x)} embeddings hold NaN or infinite values (rows "
                            f"{', '.join(map(str, rows[:5]))}{' ...' if len(rows) > 5 else ''}); cannot train on them")
    tr, va = grouped_validation_split(groups if groups is not None else [str(i) for i in range(len(y))],
                                      config.validation_split, seed=config.seed)
    key = (x.shape[1], n_classes, dataclasses.replace(config, summaries_dir=None, verbose=0))
    if key not in _TRAINERS:
        _TRAINERS[key] = _HeadTrainer(x.shape[1], n_classes, config)
    trainer = _TRAINERS[key]
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    n = len(tr)
    epochs = _epochs(config, n)
    rng = np.random.default_rng(config.seed)
    perms = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int32)
    loss, acc, vloss, vacc = trainer.fit(x[tr], onehot[tr], perms, x[va], onehot[va])
    history: dict[str, list[float]] = {"loss": loss, "accuracy": acc}
    if len(va):
        history.update(val_loss=vloss, val_accuracy=vacc)
    _check_finite_history(history, config)
    if config.summaries_dir:
        writer = tf.summary.create_file_writer(str(config.summaries_dir))
        with writer.as_default():
            for epoch in range(epochs):
                for k, v in history.items():
                    tf.summary.scalar(k, v[epoch], step=epoch)
        writer.flush()
    if config.verbose:
        for epoch in range(epochs):
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v[epoch]:.4f}" for k, v in history.items()))
    # hand back an independent copy: the trainer's model is reused by the next fold
    model = tf_keras.Sequential([tf_keras.Input((x.shape[1],)), tf_keras.layers.Dense(
        n_classes, activation="softmax", name="head")])
    model.get_layer("head").set_weights(trainer.model.get_layer("head").get_weights())
    return TrainedHead(model, history, config, n_classes)


class _TimeFreqMask:
    """SpecAugment-style masking and circular time shift of picture batches (tf ops)."""

    @staticmethod
    def apply(tf, x, d: Distortions, seed: int):
        h, w = x.shape[1], x.shape[2]
        b = tf.shape(x)[0]
        if d.time_shift:
            max_shift = int(w * d.time_shift)
            shift = tf.random.uniform([], -max_shift, max_shift + 1, dtype=tf.int32)
            x = tf.roll(x, shift, axis=2)
        for frac, axis, size in ((d.time_mask, 2, w), (d.freq_mask, 1, h)):
            if not frac:
                continue
            width = tf.random.uniform([b], 0, int(size * frac) + 1, dtype=tf.int32)
            start = tf.cast(tf.random.uniform([b]) * tf.cast(size - width, tf.float32), tf.int32)
            pos = tf.range(size)[None, :]
            keep = tf.cast(~((pos >= start[:, None]) & (pos < (start + width)[:, None])), x.dtype)
            keep = keep[:, None, :, None] if axis == 2 else keep[:, :, None, None]
            x = x * keep
        return x


def _distortion_model(tf, tf_keras, d: Distortions, size: tuple[int, int], seed: int):
    layers = []
    if d.flip_left_right:
        layers.append(tf_keras.layers.RandomFlip("horizontal", seed=seed))
    if d.random_crop:
        ch, cw = int(size[0] * (1 - d.random_crop)), int(size[1] * (1 - d.random_crop))
        layers += [tf_keras.layers.RandomCrop(ch, cw, seed=seed), tf_keras.layers.Resizing(*size)]
    if d.random_scale:
        layers.append(tf_keras.layers.RandomZoom((-d.random_scale, d.random_scale), seed=seed, fill_mode="constant"))
    if d.random_brightness:
        layers.append(tf_keras.layers.RandomBrightness(d.random_brightness, value_range=(0.0, 1.0), seed=seed))
    if d.time_shift or d.time_mask or d.freq_mask:
        layers.append(tf_keras.layers.Lambda(
            lambda x, training=None: _TimeFreqMask.apply(tf, x, d, seed) if training else x, name="spec_augment"))
    return layers




def train_end_to_end(
    pictures: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    backbone_path: str | os.PathLike,
    groups: Sequence[str] | None = None,
    config: TrainConfig = TrainConfig(),
) -> TrainedHead:
    """Train backbone (frozen or fine-tuned) + head on pictures, with distortions.

    ``pictures``: uint8 (N, H, W, 3). The backbone enters as ``hub.KerasLayer``;
    ``config.fine_tune`` makes it trainable (with ``fine_tune_learning_rate``).
    """
    tf, tf_keras = import_tf()
    import tensorflow_hub as hub

    y = np.asarray(labels, np.int64)
    _check_labels(y, n_classes)
    x = np.asarray(pictures)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DatasetError(f"train_end_to_end needs (N, H, W, 3) pictures, got {x.shape}")
    tf_keras.utils.set_random_seed(config.seed)
    size = (x.shape[1], x.shape[2])
    inputs = tf_keras.Input(size + (3,), dtype="float32")
    h = inputs
    for layer in _distortion_model(tf, tf_keras, config.distortions, size, config.seed):
        h = layer(h)
    h = hub.KerasLayer(str(backbone_path), trainable=config.fine_tune, name="backbone")(h)
    for layer in _head_layers(tf_keras, n_classes, config):
        h = layer(h)
    model = tf_keras.Model(inputs, h)
    lr = config.fine_tune_learning_rate if config.fine_tune else config.learning_rate
    model.compile(
        optimizer=tf_keras.optimizers.Adam(lr),
        loss=tf_keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    tr, va = grouped_validation_split(groups if groups is not None else [str(i) for i in range(len(y))],
                                      config.validation_split, seed=config.seed)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    xf = x.astype(np.float32) / 255.0
    hist = model.fit(
        xf[tr], onehot[tr],
        validation_data=(xf[va], onehot[va]) if len(va) else None,
        epochs=_epochs(config, len(tr)),
        batch_size=config.batch_size,
        validation_batch_size=config.validation_batch_size,
        shuffle=True,
        verbose=config.verbose,
        callbacks=_callbacks(config, tf_keras),
    )
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    _check_finite_history(history, config)
    return TrainedHead(model, history, config, n_classes, end_to_end=True)
