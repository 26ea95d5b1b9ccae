"""``finetune`` on an audio network (mn04, YAMNet): its log-mel input cached, a protecting recipe.

What the ``finetune`` method (:mod:`soundlib.methods.finetune`) runs when its embedder is a
waveform network:

* **Inputs, once**: every clip window's network input is computed once and kept in the
  embedding cache (:class:`~soundlib.embedding.cache.EmbeddingCache`, flattened to one float32 vector
  per window; :class:`InputEmbedder`): mn04's 128-band log-mel spectrogram of the window at
  32 kHz (:func:`soundlib.embedders.nets.efficientat_mn.log_mel`), YAMNet's 96x64 log-mel patches of its
  0.975-s frames every 0.48 s (:func:`soundlib.embedders.nets.yamnet.log_mel_patches`). A clip shorter than
  the window is repeated (tiled) to fill it, so every input has one shape and the networks,
  which pool over time, see the sound and not added silence.
* **Step 1, the head**: the ``frozen`` method's logistic head on the cached frozen embeddings
  (the embedder's own, C chosen on validation), fitted on the training clips minus the
  validation ones and folded into a dense softmax layer on top of the trainable network.
* **Step 2, the network** (:func:`build_audio_model`): the port's tf_keras network from the
  log-mel input to the embedding (:func:`soundlib.embedders.nets.efficientat_mn.build_embedding_model`,
  :func:`soundlib.embedders.nets.yamnet_weights.build_patch_model`), batch normalization in inference mode, the
  lower stages frozen with ``unfreeze: top``; one Adam per stage, whose peak learning rate is
  ``layer_decay`` times the one above it (:class:`LayerwiseAdam`), warmed up over the first
  epoch then cosine-decayed; SpecAugment (masks set to the example's mean) and mixup on the
  log-mel inputs; early stopping on the validation clips' accuracy, epoch 0 (the head only,
  through the same network) kept unless an epoch beats it. When epoch 0 is kept, the test clips
  are labelled as the ``frozen`` method labels them: the logistic head refitted on every training
  clip (validation ones included) with the C chosen on validation.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from soundlib.errors import ConfigError, DatasetError
from soundlib.methods.base import Context, Features, FoldFit, FoldSplit, accuracy, aggregate

__all__ = ["AUDIO_NETS", "AudioNet", "InputEmbedder", "audio_net", "prepare_audio", "fit_audio", "predict_audio",
           "build_audio_model", "LayerwiseAdam", "spec_augment_audio"]

#: Version of the cached inputs' recipe (part of their identity).
INPUT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class AudioNet:
    """What fine-tuning needs to know of one audio network.

    Attributes
    ----------
    name : str
        The embedder's name (``mn04``, ``yamnet``).
    sr : int
        Sample rate of its input, Hz.
    freq_axis, time_axis : int
        Axes of one window's input array (without the batch axis).
    time_shift : bool
        Whether a circular shift along ``time_axis`` is a valid augmentation of its input.
    """

    name: str
    sr: int
    freq_axis: int
    time_axis: int
    time_shift: bool

    @property
    def identity(self) -> str:
        """What makes its cached inputs (the embedding cache's backbone identity)."""
        if self.name == "mn04":
            from soundlib.embedders.nets.efficientat_mn import PORT_VERSION

            return f"efficientat-logmel:port{PORT_VERSION}:input{INPUT_VERSION}"
        return f"yamnet-logmel-patches:hop0.48:input{INPUT_VERSION}"

    @property
    def stages(self) -> int:
        """Trainable stages, bottom to top (see the ports' ``stage_of_layer``)."""
        return self._port().STAGES

    def stage_of_layer(self, name: str) -> int:
        return self._port().stage_of_layer(name)

    def _port(self):
        if self.name == "mn04":
            from soundlib.embedders.nets import efficientat_mn as port
        else:
            from soundlib.embedders.nets import yamnet as port
        return port

    def window(self, spec: Any):
        """The embedder's windows for a variant, a short clip repeated to fill one."""
        from soundlib.embedders.base import WindowSpec

        return WindowSpec(f"{self.name}-input", self.sr, spec.n_samples / spec.sr, spec.hop_seconds, pad="repeat")

    def input_shape(self, window: Any) -> tuple[int, ...]:
        """The shape of one window's input: mn04 (128, frames); YAMNet (patches, 96, 64)."""
        n = window.n_samples
        if self.name == "mn04":
            from soundlib.embedders.nets.efficientat_mn import HOP, N_MELS

            return (N_MELS, 1 + (n - 1) // HOP)
        from soundlib.embedders.nets.yamnet import FRAME_SAMPLES
        from soundlib.audio.clips import window_starts

        return (len(window_starts(n, FRAME_SAMPLES, int(round(0.48 * self.sr)))), 96, 64)

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        """Inputs of windows (n, samples) at :attr:`sr`: (n, *input shape) float32."""
        waveforms = np.asarray(waveforms, np.float32)
        if self.name == "mn04":
            from soundlib.embedders.nets.efficientat_mn import log_mel

            return log_mel(waveforms)
        from soundlib.embedders.nets.yamnet import frames_of, log_mel_patches

        frames = [frames_of(w) for w in waveforms]
        patches = log_mel_patches(np.concatenate(frames))
        return patches.reshape(len(waveforms), len(frames[0]), *patches.shape[1:])

    def build(self):
        """The trainable tf_keras network from one window's input (n, *input shape) to its embedding
        (the embedder's: mn04 896, YAMNet [mean, max] of its frames' 1024-d embeddings)."""
        if self.name == "mn04":
            from soundlib.embedders.nets.efficientat_mn import build_embedding_model
            from soundlib.embedders.nets.efficientat_weights import checkpoint_path

            return build_embedding_model(checkpoint_path())
        from soundlib.embedders.nets.yamnet_weights import build_patch_model

        return build_patch_model()


#: The audio networks ``finetune`` trains, by embedder name.
AUDIO_NETS = {
    "mn04": AudioNet("mn04", 32000, freq_axis=0, time_axis=1, time_shift=True),
    "yamnet": AudioNet("yamnet", 16000, freq_axis=2, time_axis=1, time_shift=False),
}


def audio_net(embedder: Any) -> AudioNet:
    """The :class:`AudioNet` of a waveform embedder (mn04, YAMNet)."""
    net = AUDIO_NETS.get(getattr(embedder, "name", ""))
    if net is None:
        raise ConfigError(f"finetune: the waveform embedder {embedder.name!r} cannot be fine-tuned; "
                          f"audio networks it trains: {', '.join(AUDIO_NETS)} (or use the frozen method)")
    return net


@dataclasses.dataclass(frozen=True)
class InputEmbedder:
    """An audio network's input, through the embedding cache: one flattened log-mel array per window."""

    net: AudioNet
    window_spec: Any
    modality: str = "waveform"
    license: str = ""

    @property
    def name(self) -> str:
        return f"{self.net.name}-input"

    @property
    def identity(self) -> str:
        return self.net.identity

    @property
    def shape(self) -> tuple[int, ...]:
        return self.net.input_shape(self.window_spec)

    def window(self, spec: Any):
        return self.window_spec

    def inputs(self, path: Path, window: Any):
        """Every window of the clip as audio (streamed in chunks, see :func:`soundlib.embedders.base.audio_windows`)."""
        from soundlib.embedders.base import audio_windows

        return audio_windows(path, window)

    def load(self) -> "_InputLoaded":
        return _InputLoaded(self.net, self.shape, self.identity)


@dataclasses.dataclass
class _InputLoaded:
    net: AudioNet
    shape: tuple[int, ...]
    identity: str

    @property
    def output_dim(self) -> int:
        return int(np.prod(self.shape))

    def __call__(self, batch: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        x = self.net.compute(batch)
        if x.shape[1:] != self.shape:
            raise DatasetError(f"{self.net.name} input of shape {x.shape[1:]}, expected {self.shape}")
        return x.reshape(len(x), -1)


def prepare_audio(dataset: Any, embedder: Any, ctx: Context) -> tuple[Features, Features]:
    """``(inputs, frozen embeddings)`` of every clip window: both through the embedding cache.

    Returns
    -------
    inputs : Features
        ``x`` float32 (n_rows, *input shape); ``info`` says how many were read from the cache
        (``input_hits``) and computed (``input_computed``).
    embeddings : Features
        The embedder's frozen embeddings (the head's inputs in step 1).
    """
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.methods.base import embedder_features

    t0 = time.perf_counter()
    net = audio_net(embedder)
    embeddings = embedder_features(dataset, embedder, ctx)
    window = net.window(ctx.spec)
    source = InputEmbedder(net, window)
    config = ctx.embed or EmbedConfig(progress=ctx.progress)
    res = embed_clips(dataset.clips, window, source, config=config, inputs=source.inputs)
    if res.failures:
        text = "\n  ".join(m for _, m in res.failures[:10])
        raise DatasetError(f"{len(res.failures)} clip(s) could not be turned into {net.name} inputs:\n  {text}")
    x = res.embeddings.reshape((len(res.embeddings),) + source.shape)
    info = {**embeddings.info, "input": source.identity, "input_shape": list(source.shape),
            "input_window": window.to_dict(), "input_hits": res.hits, "input_computed": res.computed,
            "seconds": round(time.perf_counter() - t0, 2)}
    return Features(x, res.row_clip, len(dataset.clips), info=info), embeddings


def spec_augment_audio(x: np.ndarray, rng: np.random.Generator, o: Any, net: AudioNet) -> np.ndarray:
    """SpecAugment of a batch of inputs (n, *input shape): a circular time shift (when the network's
    input allows it), two time and two frequency masks per example, set to the example's mean."""
    x = x.copy()
    t_axis, f_axis = net.time_axis + 1, net.freq_axis + 1
    n, t_len, f_len = len(x), x.shape[t_axis], x.shape[f_axis]
    for k in range(n):
        ex = x[k]
        if o.time_shift and net.time_shift:
            ex[...] = np.roll(ex, int(rng.integers(0, t_len)), axis=net.time_axis)
        fill = float(ex.mean())
        for _ in range(2):
            t = int(rng.integers(0, int(t_len * o.time_mask) + 1))
            t0 = int(rng.integers(0, t_len - t + 1))
            idx = [slice(None)] * ex.ndim
            idx[net.time_axis] = slice(t0, t0 + t)
            ex[tuple(idx)] = fill
            f = int(rng.integers(0, int(f_len * o.freq_mask) + 1))
            f0 = int(rng.integers(0, f_len - f + 1))
            idx = [slice(None)] * ex.ndim
            idx[net.freq_axis] = slice(f0, f0 + f)
            ex[tuple(idx)] = fill
    return x


def _yamnet_frames(t):
    """(n, patches, 96, 64) -> (n * patches, 96, 64, 1), for a tf_keras ``Lambda``."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()

    s = tf.shape(t)
    return tf.reshape(t, [s[0] * s[1], s[2], s[3], 1])


def _yamnet_pool(args):
    """[(n * patches, 1024) frame embeddings, (n, patches, ...) inputs] -> (n, 2048): [mean, max] per window."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()

    emb, x = args
    per = tf.reshape(emb, [tf.shape(x)[0], tf.shape(x)[1], emb.shape[-1]])
    return tf.concat([tf.reduce_mean(per, axis=1), tf.reduce_max(per, axis=1)], axis=-1)


def _channel(t):
    from soundlib.runtime import import_tf

    tf, _ = import_tf()

    return tf.expand_dims(t, -1)


def build_audio_model(net: AudioNet, shape: tuple[int, ...], n_classes: int, o: Any, *, seed: int):
    """The network, a dropout and a dense softmax head: (n, *shape) inputs -> (n, n_classes).

    Batch normalization is frozen (inference mode); with ``unfreeze: top`` so are the stages below
    the top ``top_stages``.

    Returns
    -------
    model : tf_keras.Model
    head : tf_keras.layers.Dense
    stage_vars : list of (stage, variable)
        Every trainable variable of the network with its stage (the head's are ``net.stages``).
    """
    from soundlib.runtime import import_tf

    tf, K = import_tf()
    base = net.build()
    lowest = 0 if o.unfreeze == "all" else max(0, net.stages - o.top_stages)
    for layer in base.layers:
        if isinstance(layer, K.layers.BatchNormalization) or net.stage_of_layer(layer.name) < lowest:
            layer.trainable = False
    inp = K.Input(shape, dtype="float32", name="log_mel")
    if net.name == "mn04":
        z = base(K.layers.Lambda(_channel, name="channel")(inp))
    else:
        frames = K.layers.Lambda(_yamnet_frames, name="frames")(inp)
        z = K.layers.Lambda(_yamnet_pool, name="mean_max")([base(frames), inp])
    head = K.layers.Dense(n_classes, activation="softmax", name="head", trainable=bool(o.train_head))
    out = head(K.layers.Dropout(o.dropout, seed=seed)(z))
    model = K.Model(inp, out, name=f"{net.name}_finetune")
    stage_vars = [(net.stage_of_layer(layer.name), v) for layer in base.layers for v in layer.trainable_weights]
    stage_vars += [(net.stages, v) for v in head.trainable_weights]
    return model, head, stage_vars


class LayerwiseAdam:
    """One Adam per learning rate: each variable's peak rate is ``peak * decay ** (top - stage)``.

    Adam is invariant to the scale of gradients, so layer-wise rates need an optimizer per rate;
    :meth:`apply_gradients` sends each gradient to its variable's.
    """

    def __init__(self, stage_vars: list, top: int, *, peak: float, decay: float, warmup: int, total: int):
        from soundlib.runtime import import_tf
        from soundlib.methods.schedules import WarmupCosine

        _, K = import_tf()
        self._of: dict[Any, int] = {}
        self.rates: dict[int, float] = {}
        self._opts: dict[int, Any] = {}
        for stage, v in stage_vars:
            if stage not in self._opts:
                self.rates[stage] = peak * decay ** (top - stage)
                self._opts[stage] = K.optimizers.Adam(WarmupCosine(self.rates[stage], warmup, total))
            self._of[v.ref()] = stage

    def apply_gradients(self, grads_and_vars) -> None:
        groups: dict[int, list] = {}
        for g, v in grads_and_vars:
            if g is not None:
                groups.setdefault(self._of[v.ref()], []).append((g, v))
        for stage, pairs in groups.items():
            self._opts[stage].apply_gradients(pairs)


@dataclasses.dataclass
class AudioModel:
    """A fine-tuned audio network: inputs (n, *shape) -> class probabilities (n, n_classes)."""

    model: Any
    shape: tuple[int, ...]
    n_classes: int

    def __post_init__(self) -> None:
        from soundlib.runtime import import_tf

        tf, _ = import_tf()
        self._serve = tf.function(lambda x: self.model(x, training=False),
                                  input_signature=[tf.TensorSpec((None,) + tuple(self.shape), tf.float32)])

    def predict_proba(self, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        out = [self._serve(np.ascontiguousarray(x[s:s + batch_size], np.float32)).numpy()
               for s in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)


def fit_audio(feats: Features, embeddings: Features, net: AudioNet, split: FoldSplit, y: np.ndarray,
              ctx: Context, o: Any) -> FoldFit:
    """Steps 1 and 2 of the module docstring on one fold."""
    from soundlib.runtime import import_tf
    from soundlib.methods.heads import fit_logistic_head
    from soundlib.methods.scratch import train_network

    tf, K = import_tf()
    K.backend.clear_session()
    K.utils.set_random_seed(ctx.train.seed)
    # 1. the logistic head on the cached frozen embeddings, fitted on split.fit (C chosen on split.val)
    fit_only = FoldSplit(train=split.fit, fit=split.fit, val=split.val, test=split.test)
    head_fit = fit_logistic_head(embeddings, fit_only, y, n_classes=ctx.n_classes, how=ctx.aggregate,
                                 seed=ctx.train.seed, calibrate=False)  # the network's start: raw logits
    # 2. the network, the head on top
    shape = tuple(feats.x.shape[1:])
    model, head, stage_vars = build_audio_model(net, shape, ctx.n_classes, o, seed=ctx.train.seed)
    head.set_weights(list(head_fit.model.dense()))
    fitted = AudioModel(model, shape, ctx.n_classes)
    rows_fit, rows_val = feats.rows_of(split.fit), feats.rows_of(split.val)
    val = (feats.x[rows_val], feats.row_clip[rows_val], split.val)

    def val_accuracy() -> float:
        if not len(split.val):
            return 0.0
        return accuracy(aggregate(fitted.predict_proba(val[0]), val[1], split.val, how=ctx.aggregate), y[split.val])

    t0 = time.perf_counter()
    head_only = val_accuracy()
    head_only_seconds = round(time.perf_counter() - t0, 2)
    steps_per_epoch = max(1, len(rows_fit) // o.batch_size)
    optimizer = LayerwiseAdam(stage_vars, net.stages, peak=o.backbone_learning_rate, decay=o.layer_decay,
                              warmup=steps_per_epoch, total=max(1, o.epochs) * steps_per_epoch)
    history: dict = {"loss": [], "val_accuracy": [], "seconds": [], "best_epoch": 0}
    weights = model.get_weights()
    if o.epochs and len(rows_fit):
        best_w, history = train_network(
            model, feats.x[rows_fit], y[feats.row_clip[rows_fit]], val, y[split.val], ctx.n_classes,
            epochs=o.epochs, patience=o.patience, batch_size=o.batch_size, schedule=None,
            augment=lambda xb, rng: spec_augment_audio(xb, rng, o, net), mixup=o.mixup,
            label_smoothing=o.label_smoothing, seed=ctx.train.seed, how=ctx.aggregate,
            predict=fitted.predict_proba, budget_seconds=o.budget_seconds, optimizer=optimizer)
        if best_w is not None and max(history["val_accuracy"]) > head_only:
            weights = best_w
        else:
            history["best_epoch"] = 0
    model.set_weights(weights)
    val_proba = aggregate(fitted.predict_proba(val[0]), val[1], split.val, how=ctx.aggregate) if len(split.val) \
        else np.zeros((0, ctx.n_classes), np.float32)
    history["head_only_val_accuracy"] = head_only
    trainable = int(sum(np.prod(v.shape) for _, v in stage_vars))
    final: Any = fitted
    if history["best_epoch"] == 0:
        # the network did not earn its place: the frozen method's head, refitted on every training clip
        # (validation ones included) with the C chosen on validation, labels the test clips
        final = fit_logistic_head(embeddings, split, y, n_classes=ctx.n_classes, how=ctx.aggregate,
                                  seed=ctx.train.seed).model
    return FoldFit(model=final, val_proba=val_proba, val_accuracy=accuracy(val_proba, y[split.val]),
                   choice={"best_epoch": history["best_epoch"], "epochs_run": len(history["loss"]),
                           "model": "network" if history["best_epoch"] else "head on frozen embeddings",
                           "head_only_val_accuracy": round(head_only, 4),
                           "head_C": head_fit.choice["C"], "logistic_val_accuracy": round(head_fit.val_accuracy, 4),
                           "seconds_per_epoch": float(np.mean(history["seconds"])) if history["seconds"] else 0.0,
                           "head_only_eval_seconds": head_only_seconds, "trainable_parameters": trainable,
                           "learning_rates": {str(k): v for k, v in sorted(optimizer.rates.items())},
                           "device": "gpu" if tf.config.list_logical_devices("GPU") else "cpu",
                           "history": history})


def predict_audio(fit: FoldFit, feats: Features, embeddings: Features, clips: np.ndarray, ctx: Context) -> np.ndarray:
    """Clip probabilities (len(clips), n_classes) of a fitted audio network (on the inputs ``feats``), or of
    the head on the frozen ``embeddings`` when fine-tuning was not kept."""
    source = feats if isinstance(fit.model, AudioModel) else embeddings
    rows = source.rows_of(clips)
    return aggregate(fit.model.predict_proba(source.x[rows]), source.row_clip[rows], clips, how=ctx.aggregate)
