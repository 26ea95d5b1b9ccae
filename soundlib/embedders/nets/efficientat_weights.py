"""EfficientAT mn04's files and runtime: the release checkpoint (vendored, ``$SOUNDLIB_MN04_CHECKPOINT`` or a
checked download), its LiteRT conversion (derived once, checked by SHA-256) and :class:`Mn04Model`, which runs
the network on LiteRT or TensorFlow. The network itself is :mod:`soundlib.embedders.nets.efficientat_mn`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np

from soundlib.embedders.nets.efficientat_mn import (
    EMBEDDING_DIM,
    N_MELS,
    NUM_CLASSES,
    PORT_VERSION,
    SR,
    build_keras_model,
    log_mel,
)
from soundlib.errors import BackboneError, FeatureError

__all__ = [
    "CHECKPOINT_URL", "CHECKPOINT_NAME", "CHECKPOINT_SHA256", "CHECKPOINT_SIZE", "CHECKPOINT_ENV", "URL_ENV",
    "audioset_labels", "checkpoint_path", "packaged_checkpoint", "litert_model_path", "Mn04Model",
]


CHECKPOINT_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"


CHECKPOINT_NAME = "mn04_as_mAP_432.pt"


CHECKPOINT_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"

#: Its size in bytes: a download never writes more, and a server announcing another length is refused.
CHECKPOINT_SIZE = 4_066_513

#: A local copy of the weights (it must have :data:`CHECKPOINT_SHA256`); nothing is downloaded then.
CHECKPOINT_ENV = "SOUNDLIB_MN04_CHECKPOINT"


#: Where to download the weights from instead of :data:`CHECKPOINT_URL` (a mirror; tests use a local server).
URL_ENV = "SOUNDLIB_MN04_URL"


_RUNTIMES = ("litert", "tf")


_CHUNK = 1 << 20


_EVERYTHING = re.compile("")  # what the LiteRT converter prints: its errors are raised as exceptions


def audioset_labels() -> list[str]:
    """The names of the 527 AudioSet classes, in the order of the model's logits.

    Returns
    -------
    list of str
        Display names from the AudioSet ontology (``"Speech"``, ``"Dog"``, ``"Siren"``, ...).
    """
    from soundlib.embedders.nets.audioset_labels import AUDIOSET_CLASSES

    return [name for _, name in AUDIOSET_CLASSES]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _url() -> str:
    return os.environ.get(URL_ENV, "").strip() or CHECKPOINT_URL


def _cached_checkpoint() -> Path:
    from soundlib.config import cache_dir

    return cache_dir() / "weights" / CHECKPOINT_NAME


def packaged_checkpoint() -> Path:
    """Where the release file shipped as package data is (``soundlib/embedders/weights/``; it may be absent)."""
    from importlib import resources

    return Path(str(resources.files("soundlib.embedders") / "weights" / CHECKPOINT_NAME))


def checkpoint_path(*, download: bool = True) -> Path:
    """The verified ``mn04_as`` weights file, downloaded into the soundlib cache the first time.

    Looked for in this order:

    1. ``$SOUNDLIB_MN04_CHECKPOINT``, when set: that file, which must exist and have the
       pinned SHA-256 (:data:`CHECKPOINT_SHA256`); nothing is downloaded.
    2. The copy shipped inside soundlib (:func:`packaged_checkpoint`, MIT notice beside it), if it
       has the pinned SHA-256 (a damaged one is skipped with a warning).
    3. ``<soundlib cache>/weights/mn04_as_mAP_432.pt``, if it is there with the pinned SHA-256.
    4. Downloaded from :data:`CHECKPOINT_URL` (or ``$SOUNDLIB_MN04_URL``) into a temporary
       file beside the cached name, checked, and renamed into place.

    Parameters
    ----------
    download : bool, default True
        False: never download; raise instead when no verified copy is there.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    BackboneError
        The file named by ``$SOUNDLIB_MN04_CHECKPOINT`` is missing or has another SHA-256;
        no verified copy is cached and ``download`` is False; the download fails or
        delivers other bytes (nothing is left in the cache then).
    """
    from soundlib.errors import warn

    override = os.environ.get(CHECKPOINT_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise BackboneError(f"${CHECKPOINT_ENV}={override}: no such file; it should be the EfficientAT "
                                f"weights {CHECKPOINT_NAME} (from {CHECKPOINT_URL})")
        wrong = _mismatch(path)
        if wrong:
            raise BackboneError(f"{path} (from ${CHECKPOINT_ENV}) {wrong} ({CHECKPOINT_NAME}); it is another or "
                                "a damaged file")
        return path

    packaged = packaged_checkpoint()
    if packaged.is_file():
        wrong = _mismatch(packaged)
        if not wrong:
            return packaged
        warn(f"{packaged} (shipped with soundlib) {wrong}; skipping it")

    cached = _cached_checkpoint()
    if cached.is_file():
        wrong = _mismatch(cached)
        if not wrong:
            return cached
        warn(f"{cached} {wrong}; " + ("downloading it again" if download else "ignoring it"))
    elif os.path.lexists(cached):
        warn(f"{cached} is not a regular file; " + ("downloading the weights again" if download else "ignoring it"))
    if not download:
        raise BackboneError(f"the mn04 weights are not in the soundlib cache ({cached}) and downloading was "
                            f"not allowed; download {CHECKPOINT_URL} and set ${CHECKPOINT_ENV} to the file")
    return _download(_url(), cached)


def _download(url: str, dest: Path, *, timeout: float = 60.0, deadline: float | None = None) -> Path:
    """Fetch ``url`` into ``dest`` atomically, keeping it only if its SHA-256 is :data:`CHECKPOINT_SHA256`.

    One process downloads at a time (a lock file in ``<cache>/.locks/``): a process that waited finds the
    file in place and uses it. Temporary files left by killed downloads (their process gone) are removed.
    The transfer stops at :data:`CHECKPOINT_SIZE` bytes and within ``deadline`` seconds
    (:func:`soundlib.audio.download.download_deadline`, ``$SOUNDLIB_DOWNLOAD_DEADLINE``).
    """
    from soundlib.atomic import atomic_path, file_lock
    from soundlib.audio.download import fetch_url

    hint = (f"without internet, download {CHECKPOINT_URL} on another machine and set ${CHECKPOINT_ENV} "
            "to the local copy")
    try:
        with file_lock(dest.parent.parent / ".locks" / f"{dest.name}.lock"):
            if _intact(dest):  # another process downloaded it while this one waited
                return dest
            _remove_stale_temporaries(dest)
            with atomic_path(dest, suffix=f".pid{os.getpid()}") as tmp:
                got = fetch_url(url, tmp, error=BackboneError, what="the mn04 weights", size=CHECKPOINT_SIZE,
                                deadline=deadline, timeout=timeout, hint=hint)
                if got.sha256 != CHECKPOINT_SHA256:
                    raise BackboneError(f"the file downloaded from {url} ({got.received:,} bytes) has SHA-256 "
                                        f"{got.sha256}, expected {CHECKPOINT_SHA256}; it was deleted. Run again; "
                                        f"if it keeps failing, {hint}")
    except OSError as exc:  # the lock or the temporary file: read-only cache, disk full, permission denied
        raise BackboneError(f"{dest}: cannot write the downloaded mn04 weights ({exc.strerror or exc})") from None
    return dest


def _mismatch(path: Path) -> str | None:
    """How the regular file ``path`` differs from the pinned weights (its size, then its SHA-256), or ``None``."""
    size = path.stat().st_size
    if size != CHECKPOINT_SIZE:
        return f"has {size:,} bytes, expected {CHECKPOINT_SIZE:,}"
    got = _sha256(path)
    return None if got == CHECKPOINT_SHA256 else f"has SHA-256 {got}, expected {CHECKPOINT_SHA256}"


def _intact(path: Path) -> bool:
    """``path`` is a regular file with the pinned size and SHA-256."""
    try:
        return path.is_file() and _mismatch(path) is None
    except OSError:
        return False


#: ``atomic_path``'s temporary names for ``dest``: ``.<name>.<random>.pid<N>.tmp`` (0.2: ``.<name>.<random>.pt.tmp``).
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.[^.]+\.(?:pid(?P<pid>\d+)|pt)\.tmp")


#: A temporary file without an owner's pid (soundlib 0.2) is removed once this many seconds old.
_LEGACY_AGE = 3600.0


def _remove_stale_temporaries(dest: Path) -> None:
    """Remove the temporary files of downloads of ``dest`` whose process is gone (killed or crashed)."""
    import time

    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = _LEFTOVER.fullmatch(entry.name)
        if not m or m["name"] != dest.name:
            continue
        try:
            st = entry.lstat()
            stale = (not _alive(int(m["pid"])) if m["pid"] else time.time() - st.st_mtime > _LEGACY_AGE)
            if stale:
                entry.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid this system cannot hold: leave its file alone
    return True


def _litert_file(checkpoint_sha256: str) -> Path:
    from soundlib.config import cache_dir

    return cache_dir() / "backbones" / f"efficientat_mn04_as-port{PORT_VERSION}-{checkpoint_sha256[:16]}.float.tflite"


def litert_model_path(checkpoint: str | os.PathLike) -> Path:
    """The float LiteRT copy of the network, converted once (with TensorFlow) into the soundlib cache.

    ``<cache>/backbones/efficientat_mn04_as-port<N>-<checkpoint sha256[:16]>.float.tflite``,
    a derived file (:func:`soundlib.embedders.derived.derived_file`: its SHA-256 recorded beside it, checked
    on use, converted again with a warning when it does not match; built under a file lock).

    The model's input is float32 (batch, 128, frames, 1) with batch and frames free
    (``resize_tensor_input``); its outputs are ``embedding`` (batch, 896) and
    ``logits`` (batch, 527).

    Raises
    ------
    BackboneError
        The checkpoint cannot be read or does not fit; conversion fails.
    """
    from soundlib.embedders.derived import derived_file

    checkpoint = Path(checkpoint)
    digest = _sha256(checkpoint) if checkpoint.is_file() else ""
    if not digest:
        raise BackboneError(f"{checkpoint}: no such file (the mn04 weights {CHECKPOINT_NAME})")
    out = _litert_file(digest)
    return derived_file(out, lambda tmp: tmp.write_bytes(_convert(checkpoint, out)), what="mn04 LiteRT model")


def _convert(checkpoint: Path, out: Path) -> bytes:
    """The network of ``checkpoint`` as a float LiteRT flatbuffer (``out`` names it in errors)."""
    from soundlib.runtime import filtered_stderr, import_tf

    tf, _ = import_tf()
    model = build_keras_model(checkpoint)

    @tf.function(input_signature=[tf.TensorSpec([None, N_MELS, None, 1], tf.float32, name="log_mel")])
    def serve(x):
        return model(x, training=False)

    # No trackable object: the converter then freezes the function's variables into constants itself,
    # about ten times faster than its SavedModel route (which it takes when given the model).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    try:
        with filtered_stderr(_EVERYTHING, stdout=True):  # the converter reports every step of its work
            blob = converter.convert()
    except Exception as exc:  # TensorFlow raises many kinds
        raise BackboneError(f"cannot convert the mn04 network to LiteRT ({out}): {exc}") from exc
    return blob


def _litert_available() -> bool:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class Mn04Model:
    """EfficientAT mn04_as on 32 kHz audio: ``model(waveforms) -> (n, 896)`` embeddings.

    Parameters
    ----------
    checkpoint : path-like
        The weights file (:func:`checkpoint_path`).
    threads : int, default 0
        CPU threads of the LiteRT interpreter; 0: one per core, at most four.
    runtime : {"litert", "tf"}, default "litert"
        ``"litert"``: the LiteRT copy (:func:`litert_model_path`) with the XNNPACK
        delegate when ``ai-edge-litert`` is importable, TensorFlow otherwise;
        ``"tf"``: the tf_keras model. The runtime in use is :attr:`runtime`.

    Attributes
    ----------
    output_dim : int
        896 (:data:`EMBEDDING_DIM`).
    runtime : str
        ``"litert"`` or ``"tf"``: the one actually used.
    """

    def __init__(self, checkpoint: str | os.PathLike, *, threads: int = 0, runtime: str = "litert"):
        if runtime not in _RUNTIMES:
            raise BackboneError(f"mn04 runtime {runtime!r}: expected one of {', '.join(_RUNTIMES)}")
        self.checkpoint = Path(checkpoint)
        self.output_dim = EMBEDDING_DIM
        self.threads = int(threads) if threads and threads > 0 else max(1, min(4, os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._shape: tuple[int, ...] | None = None
        if runtime == "litert" and _litert_available():
            self.runtime = "litert"
            self._open_litert(litert_model_path(self.checkpoint))
        else:
            self.runtime = "tf"
            self._open_tf()

    def _open_litert(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from soundlib.runtime import filtered_stderr

        with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self._interpreter = Interpreter(str(path), num_threads=self.threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {}
        for detail in self._interpreter.get_output_details():
            width = int(detail["shape_signature"][-1])
            outputs[{EMBEDDING_DIM: "embedding", NUM_CLASSES: "logits"}.get(width, str(width))] = detail["index"]
        if set(outputs) != {"embedding", "logits"}:
            raise BackboneError(f"{path}: expected outputs of width {EMBEDDING_DIM} and {NUM_CLASSES}, "
                                f"got {sorted(outputs)}")
        self._outputs = outputs

    def _open_tf(self) -> None:
        from soundlib.runtime import import_tf

        tf, _ = import_tf()
        model = build_keras_model(self.checkpoint)

        @tf.function(input_signature=[tf.TensorSpec([None, N_MELS, None, 1], tf.float32)])
        def serve(x):
            return model(x, training=False)

        self._keras = model
        self._serve = serve

    def _run_batch(self, spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b, 128, frames, 1) float32 -> ((b, 896), (b, 527))."""
        if self.runtime == "tf":
            out = self._serve(spectra)
            return out["embedding"].numpy(), out["logits"].numpy()
        if spectra.shape != self._shape:  # a new shape re-plans XNNPACK: only when it changes
            from soundlib.runtime import filtered_stderr

            with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._interpreter.resize_tensor_input(self._input, list(spectra.shape), strict=False)
                from soundlib.runtime import filtered_stderr

                with filtered_stderr():  # XNNPACK says it was created when tensors are first planned
                    self._interpreter.allocate_tensors()
            self._shape = spectra.shape
        self._interpreter.set_tensor(self._input, spectra)
        self._interpreter.invoke()
        return (self._interpreter.get_tensor(self._outputs["embedding"]).copy(),
                self._interpreter.get_tensor(self._outputs["logits"]).copy())

    def _run(self, waveforms: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(waveforms)
        if x.ndim != 2:
            raise FeatureError(f"mn04 expects waveforms of shape (n, samples) at {SR} Hz, got shape {x.shape}")
        if batch_size < 1:
            raise FeatureError(f"batch_size must be at least 1, got {batch_size}")
        n = len(x)
        embeddings = np.empty((n, EMBEDDING_DIM), np.float32)
        logits = np.empty((n, NUM_CLASSES), np.float32)
        with self._lock:  # one interpreter must not run two calls at once
            for start in range(0, n, batch_size):
                spectra = log_mel(x[start:start + batch_size])[..., None]
                embeddings[start:start + len(spectra)], logits[start:start + len(spectra)] = \
                    self._run_batch(np.ascontiguousarray(spectra))
        return embeddings, logits

    def __call__(self, waveforms: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """Embeddings of mono 32 kHz clips.

        Parameters
        ----------
        waveforms : numpy.ndarray, shape (n, samples), float32
            At :data:`SR` Hz, full scale +-1, all of one length (at least :data:`MIN_SAMPLES`).
        batch_size : int, default 16
            Clips per network call.

        Returns
        -------
        numpy.ndarray, shape (n, 896), float32
            Pooled last-layer features (384) then the classifier's hidden layer (512).
        """
        return self._run(waveforms, batch_size)[0]

    def logits(self, waveforms: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """AudioSet logits (n, 527) float32 of mono 32 kHz clips (a sigmoid gives tag probabilities)."""
        return self._run(waveforms, batch_size)[1]
