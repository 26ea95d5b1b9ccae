"""EfficientAT ``mn04_as``: an AudioSet-pretrained MobileNetV3-style audio CNN (MIT), the strongest
freely licensed embedder soundlib has.

Schmid, Koutini & Widmer, "Efficient Large-scale Audio Tagging via Transformer-to-CNN Knowledge
Distillation" (ICASSP 2023); 0.99 M parameters, AudioSet mAP 0.432. The network is ported to tf_keras
(:mod:`soundlib.embedders.nets.efficientat_mn`; no torch at run time) from the release file, checked by SHA-256:
``$SOUNDLIB_MN04_CHECKPOINT`` when set, else the copy shipped inside soundlib
(``soundlib/embedders/weights/``, with its MIT notice: it works offline), else downloaded on first use;
run on LiteRT (XNNPACK) when ``ai-edge-litert`` is installed.

Windows: the variant's duration and hop at 32 kHz, and a clip shorter than one window is embedded as it
is (``pad: none``): the network pools over time, so added silence would only dilute it. One row per
window: the pooled features of the last block and the classifier's hidden layer, concatenated.
This file is the whole of what soundlib needs to know about mn04 besides the port: adding an embedder
is one module like this one, plus its test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.embedders.base import EmbedderOptions, LoadedEmbedder, Windowing, WindowSpec, audio_windows, register_embedder

__all__ = ["Mn04Embedder", "LICENSE", "SR"]

SR = 32000
#: The licence of the weights.
LICENSE = ("MIT: EfficientAT mn04_as weights (Schmid, Koutini, Widmer; github.com/fschmid56/EfficientAT, "
           "release v0.0.1), trained on AudioSet")
_NOTED: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Mn04Embedder:
    """mn04 behind the embedder seam (see the module docstring)."""

    threads: int = 0
    name: str = "mn04"
    modality: str = "waveform"
    license: str = LICENSE

    @property
    def identity(self) -> str:
        from soundlib.embedders.nets.efficientat_mn import PORT_VERSION
        from soundlib.embedders.nets.efficientat_weights import CHECKPOINT_SHA256

        return f"efficientat:mn04_as:{CHECKPOINT_SHA256[:16]}:port{PORT_VERSION}"

    def is_ready(self) -> bool:
        """Whether the weights are here (no download needed)."""
        from soundlib.embedders.nets.efficientat_weights import checkpoint_path
        from soundlib.errors import SoundlibError

        try:
            checkpoint_path(download=False)
        except SoundlibError:
            return False
        return True

    def window(self, spec: Windowing) -> WindowSpec:
        return WindowSpec("mn04", SR, spec.n_samples / spec.sr, spec.hop_seconds, pad="none")

    def inputs(self, path: Path, window: Windowing) -> Iterator[np.ndarray]:
        """Every window as 32-kHz audio, streamed in chunks of (k, samples) float32."""
        return audio_windows(path, window)

    def load(self) -> LoadedEmbedder:
        from soundlib.embedders.nets.efficientat_weights import Mn04Model, checkpoint_path

        model = Mn04Model(checkpoint_path(), threads=self.threads)
        if "mn04" not in _NOTED:
            _NOTED.add("mn04")
            print(f"soundlib: mn04 weights: {LICENSE}", flush=True)
        return _Loaded(model, self.identity)


@dataclasses.dataclass
class _Loaded:
    model: "object"
    identity: str

    @property
    def output_dim(self) -> int:
        return int(self.model.output_dim)  # type: ignore[attr-defined]

    def __call__(self, batch: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        return np.asarray(self.model(np.asarray(batch, np.float32), batch_size=min(batch_size, 16)),  # type: ignore[operator]
                          np.float32)


def _make(name: str, options: EmbedderOptions) -> Mn04Embedder:
    return Mn04Embedder(threads=options.threads)


register_embedder("mn04", _make, modality="waveform", license=LICENSE, accepts=("threads",),
                  summary="EfficientAT mn04_as (AudioSet, MIT): the variant's windows at 32 kHz, unpadded")
