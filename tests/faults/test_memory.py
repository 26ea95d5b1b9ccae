"""Fault injection: memory of the training paths on long recordings.

Issue "Memory grows with clip length in training": ``birdnet``, ``frozen``, ``finetune`` and ``scratch``
read whole clips and stacked every window (six 10-min clips: 3.7 GB for BirdNET, 4.2 GB for finetune);
only ``predict`` streamed. Target: peak RSS <= 1 GB for six 10-min clips, every method.

Six 10-minute recordings (16 kHz mono, written once per session) go through each path that reads every
window of a clip for training, in a child process: its peak RSS growth (``VmHWM``, reset after a warm-up
on a 5-s clip, over ``VmRSS`` then) must stay bounded. Measured here (MiB of growth), before the fix ->
after: waveform stand-in at BirdNET's windows 2018 -> 202; picture embedder 280 -> 14; MFCC (two clips)
262 -> 11; finetune's pictures 537 -> 266 (258 of them the pictures it must hold); scratch's planes
366 -> 51 (38 of them the planes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MINUTES = 10
CLIPS = 6
SR = 16000

#: Most peak-RSS growth (MiB) over the data a path must hold (finetune's pictures, scratch's planes).
BOUNDS = {"waveform": 300, "picture": 100, "mfcc": 60, "finetune": 100, "scratch": 100}

_CHILD = r'''
import dataclasses, json, os, sys
from pathlib import Path
import numpy as np
from soundlib.audio.datasets import Clip, Dataset
from soundlib.embedding.embed import EmbedConfig
from soundlib.embedders import resolve_embedder
from soundlib.embedders.base import WindowSpec, audio_windows, register_embedder
from soundlib.methods.base import Context, embedder_features, window_pictures
from soundlib.pictures.variants import get_variant

mode, tiny, short, *longs = sys.argv[1:]


@dataclasses.dataclass(frozen=True)
class Waveform:
    """A stand-in waveform embedder at BirdNET's windows: 3 s at 48 kHz every second (576 KB each)."""
    name: str = "wave48"
    modality: str = "waveform"
    license: str = "none"
    identity: str = "test:wave48:1"
    output_dim: int = 3

    def window(self, spec):
        return WindowSpec("wave48", 48000, 3.0, 1.0, pad="end")

    def inputs(self, path, window):
        return audio_windows(path, window)

    def load(self):
        return self

    def __call__(self, batch, *, batch_size=32):
        return np.stack([batch.mean(1), batch.min(1), batch.max(1)], 1).astype(np.float32)


register_embedder("wave48", lambda name, options: Waveform(), modality="waveform", license="none",
                  summary="test: a stand-in at BirdNET's windows")


def run(paths):
    ds = Dataset("long", Path(paths[0]).parent, ("a",), tuple(Clip(Path(p), "a", 0, 1, str(i))
                                                            for i, p in enumerate(paths)))
    mel = get_variant("mel").replace(duration=4.0)  # as evaluate resolves it for the methods
    if mode == "finetune":
        return window_pictures(ds, mel, progress=False)
    if mode == "scratch":
        from soundlib.methods.scratch import _planes, native_spec
        return _planes(ds, native_spec(mel, 128), False)
    embedder, spec = {"waveform": ("wave48", mel), "picture": (tiny, mel.replace(height=32, width=32)),
                      "mfcc": ("mfcc", mel.replace(window_hop=4.0))}[mode]
    ctx = Context(classes=("a",), spec=spec, backbone=None, train=None, embed=EmbedConfig(progress=False))
    return embedder_features(ds, resolve_embedder(embedder), ctx)


def status(field):
    """A /proc/self/status memory field in bytes (VmRSS: now; VmHWM: the peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


run([short])  # imports, TensorFlow, the embedder: warmed up
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from now (ru_maxrss would count the pytest parent's size at fork)
base = status("VmRSS")
feats = run(longs)
must_hold = feats.x.nbytes if mode in ("finetune", "scratch") else 0
print(json.dumps({"growth": (status("VmHWM") - base) / 2**20, "must_hold": must_hold / 2**20, "rows": len(feats.x)}))
'''


@pytest.fixture(scope="session")
def long_recordings(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A 5-s clip and six 10-minute recordings (16 kHz mono, tones in noise), written once per session."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("long_recordings")
    rng = np.random.default_rng(0)
    t = np.arange(SR * 10) / SR
    paths = []
    for i in range(CLIPS):
        paths.append(folder / f"long{i}.wav")
        with sf.SoundFile(str(paths[-1]), "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
            for b in range(MINUTES * 6):  # 10 s at a time
                f.write((0.3 * np.sin(2 * np.pi * (200 + 50 * i + 3 * b) * t)
                         + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    short = folder / "short.wav"
    sf.write(str(short), (0.3 * np.sin(2 * np.pi * 300 * t[:5 * SR])).astype(np.float32), SR, subtype="PCM_16")
    return short, paths


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc/self/status")
@pytest.mark.parametrize("mode", list(BOUNDS))
def test_training_inputs_of_long_recordings_stream(mode, long_recordings, tiny_backbone, tmp_path):
    """Peak RSS growth stays within BOUNDS[mode] MiB over what the method must hold, for six 10-min clips
    (MFCC, the slowest to compute: two of them, a window every 4 s)."""
    short, longs = long_recordings
    if mode == "mfcc":
        longs = longs[:2]
    env = {**os.environ, "SOUNDLIB_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(tiny_backbone), str(short), *map(str, longs)],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] >= 150 * len(longs)
    assert got["growth"] <= got["must_hold"] + BOUNDS[mode], (
        f"{mode}: peak RSS grew by {got['growth']:.0f} MiB on {len(longs)} x {MINUTES} min of audio "
        f"({got['must_hold']:.0f} MiB of it the inputs it keeps); at most {BOUNDS[mode]} MiB more is allowed")
