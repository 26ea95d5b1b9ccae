"""A deterministic synthetic sound corpus in the UrbanSound8K layout.

:mod:`soundlib.audio.synth.sounds` holds the ten procedural sound models;
:mod:`soundlib.audio.synth.corpus` plans recordings, cuts them into slices, assigns
folds by recording and writes the files.
"""

from soundlib.audio.synth.corpus import SynthConfig, ensure_corpus, generate_corpus
from soundlib.audio.synth.sounds import SOUND_MODELS, render_recording

__all__ = ["SynthConfig", "generate_corpus", "ensure_corpus", "render_recording", "SOUND_MODELS"]
