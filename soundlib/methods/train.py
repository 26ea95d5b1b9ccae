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

from soundlib.config import check_finite, from_mapping
from soundlib.errors import ConfigError, DatasetError, TrainingError
from soundlib.audio.folds import grouped_validation_split
from soundlib.runtime import import_hub, import_tf

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
    ``model.fit`` would run, in numpy (:func:`soundlib.methods.head.fit_softmax_head`), so
    training a head imports no TensorFlow (only ``summaries_dir`` does). The
    result's ``model`` is a :class:`~soundlib.methods.head.SoftmaxHead`.
    """
    from soundlib.methods.head import fit_softmax_head

    x = np.asarray(embeddings, np.float32)
    y = np.asarray(labels, np.int64)
    _check_labels(y, n_classes)
    if not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise TrainingError(f"{len(rows)} of {len(x)} embeddings hold NaN or infinite values (rows "
                            f"{', '.join(map(str, rows[:5]))}{' ...' if len(rows) > 5 else ''}); cannot train on them")
    tr, va = grouped_validation_split(groups if groups is not None else [str(i) for i in range(len(y))],
                                      config.validation_split, seed=config.seed)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    epochs = _epochs(config, len(tr))
    rng = np.random.default_rng(config.seed)
    perms = [tr[rng.permutation(len(tr))] for _ in range(epochs)]
    head, history = fit_softmax_head(
        x, onehot, perms, x[va], onehot[va], learning_rate=config.learning_rate, dropout=config.dropout,
        label_smoothing=config.label_smoothing, l2=config.l2, batch_size=config.batch_size, seed=config.seed)
    _check_finite_history(history, config)
    if config.summaries_dir:
        tf, _ = import_tf()
        writer = tf.summary.create_file_writer(str(config.summaries_dir))
        with writer.as_default():
            for epoch in range(epochs):
                for k, v in history.items():
                    tf.summary.scalar(k, v[epoch], step=epoch)
        writer.flush()
    if config.verbose:
        for epoch in range(epochs):
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v[epoch]:.4f}" for k, v in history.items()))
    return TrainedHead(head, history, config, n_classes)


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
    hub = import_hub()

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
