"""The embedded backbone on LiteRT: frozen embedding about twice as fast on CPU, without TensorFlow.

The embedded EfficientNet-Lite0 (:mod:`soundlib.embedders.backbones`) is converted once,
with TensorFlow's LiteRT converter, into a ``.tflite`` flatbuffer cached beside
its SavedModel export in the soundlib cache
(``<cache>/backbones/efficientnet_lite0-port1.float.tflite``), and run by the
``ai-edge-litert`` interpreter (``pip install 'soundlib[litert]'``) with the
XNNPACK CPU delegate. Once the file is there, embedding imports no TensorFlow at all.

* **float** (handle ``efficientnet_lite0``): the same network in float32; its
  embeddings match TensorFlow's to about 3e-5, so it shares TensorFlow's
  embedding-cache identity and is used automatically when ``ai-edge-litert`` is
  installed. TensorFlow remains the fallback, and is always used for training
  end to end, for fine-tuning and for exported models.
* **int8** (handle ``efficientnet_lite0_int8``, opt-in): full-integer
  quantization, calibrated on pictures of the synthetic corpus rendered in every
  built-in variant (:func:`calibration_pictures`; no dataset's pictures, so no
  evaluation fold leaks into it). Its embeddings differ (cosine ~0.98), so it has
  its own cache identity. Models exported from it carry the float SavedModel.

``$SOUNDLIB_BACKBONE_RUNTIME`` chooses: ``auto`` (default: LiteRT when
installed), ``litert`` (required: an error without it) or ``tf``.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from soundlib.embedders.handles import INT8_RECIPE, LITERT_INT8_SUFFIX, BackboneInfo, as_picture_batch
from soundlib.errors import BackboneError, FeatureError

__all__ = [
    "RUNTIME_ENV",
    "QUANTIZATIONS",
    "available",
    "runtime",
    "wanted",
    "quantization_of",
    "model_path",
    "ensure_model",
    "convert",
    "convert_keras",
    "convert_embedded",
    "calibration_pictures",
    "LiteBackbone",
    "open_lite_backbone",
]

RUNTIME_ENV = "SOUNDLIB_BACKBONE_RUNTIME"
RUNTIMES = ("auto", "litert", "tf")
QUANTIZATIONS = ("float", "int8")
#: Pictures per interpreter call: a fixed batch (the last chunk is padded), set up once.
BATCH = 8
_INSTALL_HINT = "pip install 'soundlib[litert]' (the ai-edge-litert package)"
_EVERYTHING = re.compile("")  # what the converter prints: its errors are raised as exceptions


def available() -> bool:
    """Whether the LiteRT interpreter (``ai_edge_litert``) can be imported."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def runtime() -> str:
    """The runtime ``$SOUNDLIB_BACKBONE_RUNTIME`` asks for: ``auto`` (default), ``litert`` or ``tf``."""
    value = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise BackboneError(f"${RUNTIME_ENV}={value!r}: expected one of {', '.join(RUNTIMES)}")
    return value


def quantization_of(info: BackboneInfo) -> str | None:
    """``"float"`` or ``"int8"`` for the embedded backbones LiteRT can run, ``None`` for any other."""
    if info.handle == "efficientnet_lite0":
        return "float"
    if info.handle == "efficientnet_lite0" + LITERT_INT8_SUFFIX:
        return "int8"
    return None


def wanted(info: BackboneInfo, mode: str | None = None) -> bool:
    """Whether frozen embedding with ``info`` goes through LiteRT here (``mode``: a runtime name,
    default :func:`runtime`).

    Raises
    ------
    BackboneError
        LiteRT is required (the int8 handle, or ``$SOUNDLIB_BACKBONE_RUNTIME=litert``) but not installed,
        or the int8 handle is asked to run on TensorFlow.
    """
    q = quantization_of(info)
    mode = mode or runtime()
    if q is None:
        return False
    if mode == "tf":
        if q == "int8":
            raise BackboneError(f"backbone {info.handle!r} is a LiteRT int8 model; it cannot run on TensorFlow")
        return False
    if available():
        return True
    if q == "int8" or mode == "litert":
        raise BackboneError(f"backbone {info.handle!r} needs the LiteRT runtime, which is not installed: "
                            f"{_INSTALL_HINT}")
    return False


def model_path(info: BackboneInfo, quantization: str | None = None) -> Path:
    """The cached ``.tflite`` of an embedded backbone: beside its SavedModel export."""
    q = quantization or quantization_of(info)
    if q not in QUANTIZATIONS:
        raise BackboneError(f"backbone {info.handle!r} has no LiteRT model")
    suffix = "float" if q == "float" else f"int8-r{INT8_RECIPE}"
    return info.path.with_name(f"{info.path.name}.{suffix}.tflite")


def ensure_model(info: BackboneInfo, quantization: str | None = None) -> Path:
    """The ``.tflite`` of ``info``, converted (with TensorFlow) and cached the first time, and converted again
    (with a warning) when it no longer matches the SHA-256 recorded then (see :func:`soundlib.embedders.derived.derived_file`)."""
    from soundlib.embedders.derived import derived_file

    q = quantization or quantization_of(info)
    if q is None:  # (what model_path below says of it)
        raise BackboneError(f"backbone {info.handle!r} has no LiteRT model")

    def build(tmp: Path) -> None:
        from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite

        if q == "float":  # from the weights, in memory: no SavedModel to export and read back first
            convert_embedded(tmp)
        else:
            convert(_efficientnet_lite.ensure_savedmodel(info.path), tmp, quantization=q,
                    calibration=calibration_pictures())

    return derived_file(model_path(info, quantization), build, what=f"LiteRT model of {info.handle}")


def calibration_pictures(*, per_class: int = 3, seed: int = 0) -> np.ndarray:
    """Pictures to calibrate the int8 model on: the synthetic corpus's ten classes, ``per_class``
    recordings each (4 s, seeded), rendered in every built-in variant.

    Returns
    -------
    np.ndarray, shape (10 * per_class * n_variants, 224, 224, 3), uint8
    """
    from soundlib.pictures.features import render
    from soundlib.audio.synth import SOUND_MODELS, render_recording
    from soundlib.pictures.variants import BUILTIN_VARIANTS, VARIANTS

    specs = [VARIANTS[name] for name in BUILTIN_VARIANTS]
    rng = np.random.default_rng([seed, 0x11])
    pictures = []
    for label in SOUND_MODELS:
        for _ in range(per_class):
            y = render_recording(label, rng, seconds=4.0, sr=specs[0].sr)
            pictures += [render(y, spec.replace(height=224, width=224)) for spec in specs]
    return np.stack(pictures)


def convert(savedmodel: str | os.PathLike, out: str | os.PathLike, *, quantization: str = "float",
            calibration: np.ndarray | None = None, input_size: tuple[int, int] = (224, 224)) -> Path:
    """Convert a feature-vector SavedModel ((N, H, W, 3) float in [0, 1] -> (N, D)) to LiteRT.

    The ``.tflite`` takes uint8 pictures (N, H, W, 3) (``input_size``; N free) and returns
    float32 (N, D) features. ``float``: float32 weights, the division by 255 inside. ``int8``:
    full-integer weights and activations, calibrated on ``calibration`` (uint8 pictures),
    with the input range pinned to [0, 255] so that the uint8 input is fed as it is
    (scale 1, zero point 0). Needs TensorFlow; written atomically.
    """
    from soundlib.runtime import import_tf

    if quantization not in QUANTIZATIONS:
        raise BackboneError(f"unknown LiteRT quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    tf, _ = import_tf()
    module = tf.saved_model.load(str(savedmodel))
    dtype = tf.uint8 if quantization == "float" else tf.float32  # int8: the converter quantizes a float input

    h, w = input_size

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], dtype, name="pictures")])
    def features(x):
        return {"features": module(tf.cast(x, tf.float32) * (1.0 / 255.0))}

    # Float: no trackable object given, so the converter freezes the function's variables into constants itself,
    # about twice as fast as the SavedModel route it takes when given the module (the same numbers: the
    # embeddings agree exactly). int8 keeps the module (its calibration was measured on that route).
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [features.get_concrete_function()], *((module,) if quantization == "int8" else ()))
    if quantization == "int8":
        if calibration is None or not len(calibration):
            raise BackboneError("int8 conversion needs calibration pictures")

        def representative():
            pin = np.zeros((1, h, w, 3), np.float32)
            pin[0, 0, 0] = 255.0  # the input range is exactly [0, 255]: uint8 scale 1, zero point 0
            yield [pin]
            for picture in calibration:
                yield [picture[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return _write_converted(converter, out)


def _write_converted(converter, out: str | os.PathLike) -> Path:
    """Run a LiteRT ``converter`` quietly and write its flatbuffer to ``out`` atomically."""
    from soundlib.atomic import atomic_path
    from soundlib.runtime import filtered_stderr

    with filtered_stderr(_EVERYTHING, stdout=True):  # the converter reports every step of its work
        blob = converter.convert()
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
    return out


def convert_keras(model, out: str | os.PathLike, *, input_size: tuple[int, int] = (224, 224)) -> Path:
    """Convert a tf_keras feature model ((N, H, W, 3) float in [0, 1] -> (N, D)) to a float LiteRT model that
    takes uint8 pictures, as :func:`convert` does for a SavedModel (the same flatbuffer's numbers: the
    embedded backbone's features agree exactly). Needs TensorFlow; written atomically."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    h, w = input_size

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="pictures")])
    def features(x):
        return {"features": model(tf.cast(x, tf.float32) * (1.0 / 255.0), training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([features.get_concrete_function()])
    return _write_converted(converter, out)


def convert_embedded(out: str | os.PathLike) -> Path:
    """The embedded EfficientNet-Lite0's float LiteRT model, converted from its weights rebuilt in memory
    (:func:`convert_keras`). Needs TensorFlow; written atomically."""
    from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite

    return convert_keras(_efficientnet_lite.build_efficientnet_lite0("imagenet", include_top=False), out)


class LiteBackbone:
    """A backbone run by LiteRT: ``backbone(pictures) -> (N, D) float32 features``.

    Same interface as :class:`soundlib.embedders.backbones.Backbone`. One interpreter
    (XNNPACK, ``num_threads`` threads) behind a lock, called on fixed batches of
    :data:`BATCH` pictures (the last one padded). Pictures are uint8 (N, H, W, 3)
    or float in [0, 1]; pictures of another size than the model's go to the TensorFlow
    backbone (loaded then), which resizes them.
    """

    def __init__(self, info: BackboneInfo, path: Path, *, num_threads: int | None = None,
                 fallback: "Callable[[], Callable[..., np.ndarray]] | None" = None):
        from ai_edge_litert.interpreter import Interpreter

        from soundlib.runtime import filtered_stderr

        self.info = info
        self.path = Path(path)
        self.num_threads = num_threads or default_threads()
        with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self._interpreter = Interpreter(str(self.path), num_threads=self.num_threads)
            inp = self._interpreter.get_input_details()[0]
            self._in = inp["index"]
            self._out = self._interpreter.get_output_details()[0]["index"]
            if inp["dtype"] != np.uint8 or tuple(inp["quantization"]) not in ((0.0, 0), (1.0, 0)):
                raise BackboneError(f"{self.path}: expected a uint8 picture input fed as it is, got "
                                    f"{inp['dtype']} with quantization {inp['quantization']}")
            self.input_size: tuple[int, int] = (int(inp["shape"][1]), int(inp["shape"][2]))
            self._interpreter.resize_tensor_input(self._in, [BATCH, *self.input_size, 3])
            self._interpreter.allocate_tensors()
        self.output_dim = int(self._interpreter.get_output_details()[0]["shape"][-1])
        self._lock = threading.Lock()
        self._fallback = fallback
        self._tf: "Callable[..., np.ndarray] | None" = None

    @property
    def identity(self) -> str:
        """The exact weights (part of every embedding cache key)."""
        return self.info.identity

    def __call__(self, pictures: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        pictures = as_picture_batch(pictures, self.info.handle)
        if pictures.shape[1:3] != self.input_size:
            return self._tensorflow()(pictures, batch_size=batch_size)
        n = len(pictures)
        out = np.empty((n, self.output_dim), np.float32)
        with self._lock:  # one interpreter must not run two calls at once
            for start in range(0, n, BATCH):
                chunk = pictures[start:start + BATCH]
                if len(chunk) < BATCH:  # pad rather than resize (a new shape re-plans XNNPACK)
                    chunk = np.concatenate([chunk, np.zeros((BATCH - len(chunk),) + chunk.shape[1:], np.uint8)])
                self._interpreter.set_tensor(self._in, np.ascontiguousarray(chunk))
                self._interpreter.invoke()
                out[start:start + BATCH] = self._interpreter.get_tensor(self._out)[: min(BATCH, n - start)]
        return out

    def _tensorflow(self):
        """The TensorFlow backbone of the same weights, for pictures of another size."""
        if quantization_of(self.info) == "int8":
            h, w = self.input_size
            raise FeatureError(f"backbone {self.info.handle!r} takes {w}x{h} pictures only")
        if self._tf is None:
            if self._fallback is None:
                h, w = self.input_size
                raise FeatureError(f"backbone {self.info.handle!r} on LiteRT takes {w}x{h} pictures only")
            self._tf = self._fallback()
        return self._tf


def default_threads() -> int:
    """Interpreter threads: one per core beyond the one the picture renderers use, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def open_lite_backbone(info: BackboneInfo, *, num_threads: int | None = None,
                       fallback: "Callable[[], Callable[..., np.ndarray]] | None" = None) -> LiteBackbone:
    """The LiteRT backbone of an embedded backbone (converting it once, with TensorFlow, if needed).

    ``fallback`` loads the TensorFlow backbone of the same weights, for pictures of another size
    (given by :func:`soundlib.embedders.backbones.open_backbone`, so that this module never imports that one).
    """
    if not available():
        raise BackboneError(f"backbone {info.handle!r}: the LiteRT runtime is not installed: {_INSTALL_HINT}")
    return LiteBackbone(info, ensure_model(info), num_threads=num_threads, fallback=fallback)
