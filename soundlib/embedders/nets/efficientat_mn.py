"""EfficientAT ``mn04_as`` (AudioSet-pretrained audio CNN) in tf_keras and LiteRT, without torch.

The weights are the PyTorch state dict ``mn04_as_mAP_432.pt`` published by
EfficientAT (F. Schmid, K. Koutini, G. Widmer, "Efficient Large-scale Audio
Tagging via Transformer-to-CNN Knowledge Distillation", ICASSP 2023; MIT
licence), release v0.0.1 of ``fschmid56/EfficientAT``. They are read without
torch by :func:`soundlib.embedders.nets.torch_checkpoint.read_torch_checkpoint` (zip format,
restricted unpickler) and checked against a pinned SHA-256
(:func:`checkpoint_path` downloads them once into the soundlib cache).

Network (``models/mn/`` of EfficientAT with ``width_mult=0.4``, head ``mlp``,
squeeze-and-excitation on channels only): a MobileNetV3-style CNN on one-channel
128-band log-mel spectrograms. Stem conv 3x3 stride 2 (8 channels, hard-swish),
15 inverted-residual blocks (:data:`_BLOCKS`; widths scaled by 0.4 and rounded
to multiples of 8), a 1x1 conv to 384 channels (hard-swish); the classifier
averages over frequency and time, then Linear 384->512, hard-swish, Linear
512->527 (AudioSet logits; a sigmoid gives the tag probabilities). Batch norm
with epsilon 1e-3 everywhere; torch's symmetric ``(k - 1) // 2`` padding (which
differs from TensorFlow's "same" at stride 2, so those layers pad explicitly);
squeeze-and-excitation: mean over frequency and time, Linear, ReLU, Linear,
*sigmoid* (not the hard sigmoid of torchvision's MobileNetV3).

Embedding (:data:`EMBEDDING_DIM` = 896): the 384 globally averaged features of
the last conv layer, then the 512 activations of the classifier's hidden layer
(after its hard-swish), concatenated.

Preprocessing (:func:`log_mel`, EfficientAT's ``AugmentMelSTFT`` in eval mode):
mono 32 kHz audio; pre-emphasis ``y[i] = x[i + 1] - 0.97 x[i]`` (one sample
shorter); STFT with n_fft 1024, hop 320, a symmetric 800-point Hann window
centred in the 1024-point frame, the signal reflect-padded by 512 on both sides;
power spectrum; 128 Kaldi-style triangular mel bands (``1127 ln(1 + f / 700)``,
equal widths on the mel scale) from 0 to 15 kHz (EfficientAT's eval default:
``fmax = sr / 2 - 1000``), the Nyquist bin unused; ``log(mel + 1e-5)``; then
``(x + 4.5) / 5``. Four seconds (128,000 samples) give 400 frames.

TensorFlow and tf_keras are imported inside the functions that need them, so
importing this module is cheap.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import numpy as np

from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint
from soundlib.errors import BackboneError, FeatureError

__all__ = [
    "SR", "N_MELS", "N_FFT", "WIN_LENGTH", "HOP", "FMIN", "FMAX", "PREEMPHASIS", "LOG_OFFSET", "NORM_SHIFT",
    "NORM_SCALE", "MIN_SAMPLES", "NUM_CLASSES", "FEATURE_DIM", "HIDDEN_DIM", "EMBEDDING_DIM", "PORT_VERSION",
    "mel_filterbank", "log_mel", "load_checkpoint_weights", "build_keras_model", "STAGES", "stage_of_layer",
    "build_embedding_model", "MAX_CHECKPOINT_BYTES",
]


SR = 32000


N_MELS = 128


N_FFT = 1024


WIN_LENGTH = 800


HOP = 320


FMIN = 0.0


FMAX = 15000.0  # EfficientAT's eval default: sr / 2 - fmax_aug_range / 2 = 16000 - 1000


PREEMPHASIS = 0.97


LOG_OFFSET = 1e-5


NORM_SHIFT = 4.5


NORM_SCALE = 5.0


#: Fewest samples :func:`log_mel` accepts: the reflect padding needs more than n_fft / 2 after pre-emphasis.
MIN_SAMPLES = N_FFT // 2 + 2


NUM_CLASSES = 527


FEATURE_DIM = 384


HIDDEN_DIM = 512


EMBEDDING_DIM = FEATURE_DIM + HIDDEN_DIM


#: Version of this port (network graph and LiteRT conversion); part of the cached .tflite's name.
PORT_VERSION = 1

#: The most bytes an mn04 checkpoint may hold (the release file: 4.1 MB); a larger one is refused unread.
MAX_CHECKPOINT_BYTES = 64 << 20

_BN_EPSILON = 1e-3


_WIDTH = 0.4

# EfficientAT's MobileNetV3 table at width 1.0, one row per inverted-residual block:
# (input channels, kernel, expanded channels, output channels, squeeze-excitation, hard-swish, stride).
_BLOCKS = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)


_SE_REDUCTION = 4


def _round_channels(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never more than 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def mel_filterbank() -> np.ndarray:
    """The 128 Kaldi-style triangular mel filters over the 513 power-spectrum bins (0 Hz .. Nyquist).

    Band ``b`` rises linearly *in mel* from ``mel(FMIN) + b * d`` to its centre one step
    ``d = (mel(FMAX) - mel(FMIN)) / 129`` higher and falls to zero one step later;
    mel ``= 1127 ln(1 + f / 700)``, bin ``k`` at ``k * 32000 / 1024`` Hz. The filters are
    not normalised, and the last (Nyquist) bin has weight 0 in every band.

    Returns
    -------
    numpy.ndarray, shape (128, 513), float64
    """
    n_bins = N_FFT // 2
    low, high = _hz_to_mel(FMIN), _hz_to_mel(FMAX)
    step = (high - low) / (N_MELS + 1)
    left = low + step * np.arange(N_MELS, dtype=np.float64)[:, None]
    centre, right = left + step, left + 2 * step
    mel = _hz_to_mel(np.arange(n_bins, dtype=np.float64) * (SR / N_FFT))[None, :]
    weights = np.maximum(0.0, np.minimum((mel - left) / (centre - left), (right - mel) / (right - centre)))
    return np.concatenate([weights, np.zeros((N_MELS, 1))], axis=1)


def _window() -> np.ndarray:
    """The symmetric 800-point Hann window, centred in a 1024-point frame (zeros around it)."""
    n = np.arange(WIN_LENGTH, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (WIN_LENGTH - 1))
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hann, (left, N_FFT - WIN_LENGTH - left))


_FILTERS = None  # mel_filterbank() as a sparse matrix (948 of its 65,664 weights are non-zero)


def log_mel(waveforms: np.ndarray) -> np.ndarray:
    """EfficientAT's eval-mode log-mel spectrogram of 32 kHz mono audio (numpy only).

    Parameters
    ----------
    waveforms : numpy.ndarray, shape (n, samples) or (samples,), float
        Mono audio at 32 kHz, full scale +-1. At least :data:`MIN_SAMPLES` samples.

    Returns
    -------
    numpy.ndarray, shape (n, 128, frames), float32
        ``frames = 1 + (samples - 1) // 320`` (400 for 4 s); normalised as
        EfficientAT trains on it: ``(log(mel power + 1e-5) + 4.5) / 5``.

    Raises
    ------
    FeatureError
        Not 1-D or 2-D, too short, or not finite.
    """
    global _FILTERS

    x = np.asarray(waveforms)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise FeatureError(f"log_mel expects float waveforms of shape (n, samples), got {x.dtype} {x.shape}")
    if x.shape[1] < MIN_SAMPLES:
        raise FeatureError(f"log_mel needs at least {MIN_SAMPLES} samples ({MIN_SAMPLES / SR * 1000:.0f} ms "
                           f"at {SR} Hz), got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise FeatureError("log_mel: the waveforms hold NaN or infinite samples")
    import scipy.fft
    import scipy.sparse

    if _FILTERS is None:
        _FILTERS = scipy.sparse.csr_matrix(mel_filterbank())
    window = _window()
    frames = 1 + (x.shape[1] - 1) // HOP  # of the pre-emphasised signal, one sample shorter
    out = np.empty((len(x), N_MELS, frames), np.float32)
    for i, row in enumerate(x):  # one clip at a time: memory bounded by one clip's frames
        row = row.astype(np.float64)
        emphasised = row[1:] - PREEMPHASIS * row[:-1]
        padded = np.pad(emphasised, N_FFT // 2, mode="reflect")
        framed = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
        spectrum = scipy.fft.rfft(framed * window, axis=-1)
        power = spectrum.real ** 2 + spectrum.imag ** 2  # (frames, 513)
        mel = _FILTERS @ power.T  # (128, frames); sparse: a dense product costs 30x more
        out[i] = (np.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE
    return out


def _block_specs() -> list[tuple[int, int, int, int, bool, bool, int]]:
    return [(_round_channels(i * _WIDTH), k, _round_channels(e * _WIDTH), _round_channels(o * _WIDTH), se, hs, s)
            for i, k, e, o, se, hs, s in _BLOCKS]


def _build_network():
    """The mn04 network with fresh weights, and its weight plan (Keras layer -> (kind, state-dict prefix))."""
    from soundlib.runtime import import_tf

    tf, tf_keras = import_tf()
    layers = tf_keras.layers
    plan: dict[str, tuple[str, str]] = {}

    def hard_swish(x):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    def activation(x, hs: bool, name: str):
        if hs:
            return layers.Activation(hard_swish, name=name + "_hswish")(x)
        return layers.ReLU(name=name + "_relu")(x)

    def conv_bn(x, prefix: str, filters: int, kernel: int, stride: int, *, depthwise: bool, act: bool | None):
        """Conv (or depthwise conv) + batch norm [+ ReLU / hard-swish], torch-style symmetric padding."""
        name = prefix.replace(".", "_")
        pad = (kernel - 1) // 2
        if stride > 1 and pad:
            x = layers.ZeroPadding2D(pad, name=name + "_pad")(x)
        padding = "same" if stride == 1 else "valid"
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=name + "_dw")(x)
            plan[name + "_dw"] = ("depthwise", prefix + ".0")
        else:
            x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                              name=name + "_conv")(x)
            plan[name + "_conv"] = ("conv", prefix + ".0")
        x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=name + "_bn")(x)
        plan[name + "_bn"] = ("bn", prefix + ".1")
        if act is not None:
            x = activation(x, act, name)
        return x

    def dense(x, prefix: str, units: int, act: str | None = None):
        name = prefix.replace(".", "_")
        plan[name] = ("dense", prefix)
        return layers.Dense(units, activation=act, name=name)(x)

    inputs = layers.Input(shape=(N_MELS, None, 1), dtype="float32", name="log_mel")
    x = conv_bn(inputs, "features.0", _round_channels(16 * _WIDTH), 3, 2, depthwise=False, act=True)
    for index, (c_in, kernel, c_exp, c_out, se, hs, stride) in enumerate(_block_specs(), start=1):
        prefix = f"features.{index}.block"
        shortcut = x
        part = 0
        if c_exp != c_in:
            x = conv_bn(x, f"{prefix}.{part}", c_exp, 1, 1, depthwise=False, act=hs)
            part += 1
        x = conv_bn(x, f"{prefix}.{part}", c_exp, kernel, stride, depthwise=True, act=hs)
        part += 1
        if se:
            se_prefix = f"{prefix}.{part}.conc_se_layers.0"
            name = se_prefix.replace(".", "_")
            scale = layers.GlobalAveragePooling2D(keepdims=True, name=name + "_pool")(x)
            scale = dense(scale, se_prefix + ".fc1", _round_channels(c_exp // _SE_REDUCTION), "relu")
            scale = dense(scale, se_prefix + ".fc2", c_exp, "sigmoid")
            x = layers.Multiply(name=name + "_scale")([x, scale])
            part += 1
        x = conv_bn(x, f"{prefix}.{part}", c_out, 1, 1, depthwise=False, act=None)
        if stride == 1 and c_in == c_out:
            x = layers.Add(name=f"features_{index}_add")([x, shortcut])
    x = conv_bn(x, f"features.{len(_BLOCKS) + 1}", FEATURE_DIM, 1, 1, depthwise=False, act=True)
    pooled = layers.GlobalAveragePooling2D(name="pooled")(x)
    hidden = dense(pooled, "classifier.2", HIDDEN_DIM)
    hidden = layers.Activation(hard_swish, name="classifier_hswish")(hidden)
    logits = dense(hidden, "classifier.5", NUM_CLASSES)
    embedding = layers.Concatenate(name="embedding")([pooled, hidden])
    model = tf_keras.Model(inputs, {"embedding": embedding, "logits": logits}, name="efficientat_mn04_as")
    return model, plan


def _expected_weights(kind: str, prefix: str) -> list[tuple[str, Any]]:
    """State-dict keys and numpy->Keras converters for one layer, in Keras weight order."""
    if kind == "conv":  # torch OIHW -> Keras HWIO
        return [(prefix + ".weight", lambda a: a.transpose(2, 3, 1, 0))]
    if kind == "depthwise":  # torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1)
        return [(prefix + ".weight", lambda a: a.transpose(2, 3, 0, 1))]
    if kind == "dense":  # torch (out, in) -> Keras (in, out)
        return [(prefix + ".weight", lambda a: a.T), (prefix + ".bias", lambda a: a)]
    if kind == "bn":  # Keras order: gamma, beta, moving_mean, moving_variance
        return [(prefix + "." + k, lambda a: a) for k in ("weight", "bias", "running_mean", "running_var")]
    raise AssertionError(kind)


def load_checkpoint_weights(model, plan: Mapping[str, tuple[str, str]], state: Mapping[str, np.ndarray]) -> None:
    """Copy the mn04 state dict into a network from :func:`_build_network`.

    Every state-dict tensor must be used exactly once with the right shape; only
    the batch-norm ``num_batches_tracked`` counters (no Keras equivalent, unused
    in eval) may go unused.

    Raises
    ------
    BackboneError
        On a missing, unused, duplicated or mis-shaped tensor, or a layer the plan does not cover.
    """
    used: set[str] = set()
    problems: list[str] = []
    assignments = []
    unplanned = [layer.name for layer in model.layers if layer.weights and layer.name not in plan]
    if unplanned:
        problems.append(f"layers without weights in the checkpoint: {', '.join(unplanned)}")
    for layer_name, (kind, prefix) in plan.items():
        layer = model.get_layer(layer_name)
        targets = layer.weights
        expected = _expected_weights(kind, prefix)
        if len(expected) != len(targets):
            problems.append(f"layer {layer_name} has {len(targets)} weights, expected {len(expected)}")
            continue
        values = []
        for (key, convert), target in zip(expected, targets):
            if key not in state:
                problems.append(f"missing tensor {key}")
                continue
            if key in used:
                problems.append(f"tensor {key} used twice")
                continue
            used.add(key)
            value = convert(np.asarray(state[key]))
            if tuple(value.shape) != tuple(target.shape):
                problems.append(f"tensor {key} has shape {tuple(state[key].shape)}, which does not fit "
                                f"{target.name} {tuple(target.shape)}")
                continue
            values.append(np.ascontiguousarray(value, dtype=np.float32))
        if len(values) == len(targets):
            assignments.append((layer, values))
    ignorable = {k for k in state if k.endswith(".num_batches_tracked")}
    unused = sorted(set(state) - used - ignorable)
    if unused:
        shown = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        problems.append(f"{len(unused)} checkpoint tensors not used: {shown}")
    if problems:
        shown = "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
        raise BackboneError(f"the mn04 weights do not fit the network: {shown}")
    for layer, values in assignments:
        layer.set_weights(values)


def build_keras_model(checkpoint: str | os.PathLike | Mapping[str, np.ndarray]):
    """The mn04 network as a tf_keras model with the checkpoint's weights (inference: call with training=False).

    Parameters
    ----------
    checkpoint : path-like or mapping
        The EfficientAT state dict file (e.g. :func:`checkpoint_path`), or the state
        dict already read (:func:`read_torch_checkpoint`).

    Returns
    -------
    tf_keras.Model
        Input ``log_mel``: float32 (batch, 128, frames, 1), :func:`log_mel` with a
        trailing channel axis, any number of frames. Output: a dict with
        ``embedding`` (batch, 896) float32 and ``logits`` (batch, 527) float32
        (AudioSet classes in the order of AudioSet's ``class_labels_indices.csv``).

    Raises
    ------
    BackboneError
        The checkpoint cannot be read or does not fit the network tensor for tensor.
    """
    state = (dict(checkpoint) if isinstance(checkpoint, Mapping)
             else read_torch_checkpoint(checkpoint, max_bytes=MAX_CHECKPOINT_BYTES))
    model, plan = _build_network()
    load_checkpoint_weights(model, plan, state)
    return model


#: Trainable stages of :func:`build_embedding_model`, bottom to top: the stem (0), the 15 blocks (1-15),
#: the last 1x1 conv (16) and the classifier's hidden layer (17).
STAGES = len(_BLOCKS) + 3


def stage_of_layer(name: str) -> int:
    """The stage (0 .. :data:`STAGES` - 1, bottom to top) of a layer of :func:`build_embedding_model`.

    ``features_<i>_...`` is stage ``i`` (0: stem, 1-15: the blocks, 16: the last conv); the pooling,
    the classifier's hidden layer and what follows them are the top stage. Used to unfreeze the upper
    stages only and to decay learning rates layer-wise when fine-tuning.
    """
    m = re.match(r"features_(\d+)_", name)
    return int(m.group(1)) if m else STAGES - 1


def build_embedding_model(checkpoint: str | os.PathLike | Mapping[str, np.ndarray]):
    """The trainable part of mn04: log-mel spectrogram -> the 896-d embedding, with the checkpoint's weights.

    Parameters
    ----------
    checkpoint : path-like or mapping
        As for :func:`build_keras_model`.

    Returns
    -------
    tf_keras.Model
        Input float32 (batch, 128, frames, 1) (:func:`log_mel` with a channel axis), output the
        embedding (batch, 896) that the embedder caches (:data:`EMBEDDING_DIM`); the AudioSet
        classifier's output layer is left out. Its layers are named as in :func:`build_keras_model`
        (:func:`stage_of_layer` groups them).
    """
    from soundlib.runtime import import_tf

    _, tf_keras = import_tf()
    full = build_keras_model(checkpoint)
    return tf_keras.Model(full.input, full.output["embedding"], name="efficientat_mn04_embedding")
