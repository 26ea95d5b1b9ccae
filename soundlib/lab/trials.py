"""The interactive picture explorer of ``notebooks/plotting_trials.ipynb``.

:class:`TrialsUI` builds ipywidgets controls for the clip, the variant and
every rendering parameter, redraws the picture on each change and plays the
clip. It works headless too (the widgets are built, the picture is rendered),
so it is tested without a browser; ``tests/browser`` drives it in JupyterLab.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from soundlib.audio.datasets import Dataset
from soundlib.errors import DatasetError, SoundlibError
from soundlib.text import html

__all__ = ["TrialsUI"]


class TrialsUI:
    """Interactive feature explorer (``notebooks/plotting_trials.ipynb``).

    Choose a clip (class dropdown and clip dropdown, or the *random* button), a
    variant, and the rendering parameters (n_fft, hop_length, n_mels, fmin/fmax,
    top_db, colormap, merge strengths and channel order); on every change the
    picture (what the model sees, no axes) redraws, and beside it the same
    spectrogram with axes in seconds and Hz and a colour bar in dB
    (:func:`soundlib.evaluation.plots.plot_feature`, kept in :attr:`figure`); an audio
    player plays the clip. Controls the variant's picture does not depend on
    (the colormap of a merged picture, the spectrogram's of a waveform plot...,
    see :func:`soundlib.pictures.features.rendering_fields`) are disabled. Works headless too: the widgets are built,
    :attr:`picture` is rendered, :meth:`save_png` writes it.

    The window: a variant with a number shows that many seconds; one with a
    rule (``fit``, the built-in variants' default, or ``auto``) shows the
    selected clip's own length, rounded up to 0.1 s within the rule's bounds
    (0.25-4 s for ``fit``), so a short clip fills the picture. (An evaluation
    chooses one window for the whole dataset from all its clips' lengths; one
    clip cannot know it without reading every header.)
    """

    COLORMAPS = ("magma", "viridis", "inferno", "plasma", "cividis", "gray", "Greys", "jet", "coolwarm")

    def __init__(self, dataset: Dataset, *, variant: str = "mel", seed: int = 0):
        import itertools
        import random

        import ipywidgets as w

        from soundlib.pictures.merge import CHANNEL_SOURCES
        from soundlib.pictures.variants import VARIANTS, get_variant

        if not dataset.clips:
            raise DatasetError(f"dataset {dataset.name!r} at {dataset.root} has no clips")
        self.dataset = dataset
        self._rng = random.Random(seed)
        self._audio: dict[tuple, Any] = {}
        self._seconds: dict[Path, float] = {}
        self._hold = 0
        self.picture = None
        self.figure = None
        self.error: str | None = None
        #: What is wrong with the current settings though they render (empty mel bands), or ``None``.
        self.warning: str | None = None
        base = get_variant(variant)
        self.base = base
        classes = [c for c in dataset.classes if any(clip.label == c for clip in dataset.clips)]
        first = dataset.clips[self._rng.randrange(len(dataset.clips))]
        style = {"description_width": "90px"}
        lay = w.Layout(width="330px")
        self.class_dd = w.Dropdown(options=classes, value=first.label, description="class", style=style, layout=lay)
        self.clip_dd = w.Dropdown(options=self._clip_options(first.label), value=first.path, description="clip",
                                  style=style, layout=lay)
        self.random_btn = w.Button(description="random clip", icon="random")
        self.variant_dd = w.Dropdown(options=list(VARIANTS), value=base.name if base.name in VARIANTS else None,
                                     description="variant", style=style, layout=lay)
        nyq = base.sr / 2
        self.n_fft = w.Dropdown(options=[256, 512, 1024, 2048, 4096], value=base.n_fft, description="n_fft",
                                style=style, layout=lay)
        self.hop_length = w.Dropdown(options=[64, 128, 256, 512, 1024], value=base.hop_length,
                                     description="hop_length", style=style, layout=lay)
        self.n_mels = w.IntSlider(value=base.n_mels, min=16, max=256, step=8, description="n_mels", style=style,
                                  layout=lay, continuous_update=False)
        self.fmin = w.FloatSlider(value=base.fmin, min=0.0, max=nyq - 100, step=50.0, description="fmin (Hz)",
                                  style=style, layout=lay, continuous_update=False)
        self.fmax = w.FloatSlider(value=base.fmax or nyq, min=100.0, max=nyq, step=50.0, description="fmax (Hz)",
                                  style=style, layout=lay, continuous_update=False)
        self.top_db = w.FloatSlider(value=base.top_db, min=10.0, max=120.0, step=5.0, description="top_db",
                                    style=style, layout=lay, continuous_update=False)
        self.colormap = w.Dropdown(options=sorted(set(self.COLORMAPS) | {base.colormap}), value=base.colormap,
                                   description="colormap", style=style, layout=lay)
        self.strengths = [w.FloatSlider(value=s, min=0.0, max=1.0, step=0.05, description=f"strength {i + 1}",
                                        style=style, layout=lay, continuous_update=False)
                          for i, s in enumerate(base.merge.strengths)]
        orders = [" / ".join(p) for p in itertools.permutations(CHANNEL_SOURCES)]
        self.order = w.Dropdown(options=orders, value=" / ".join(base.merge.order), description="channels (RGB)",
                                style=style, layout=lay)
        self.image = w.Image(format="png", layout=w.Layout(width=f"{max(base.width, 224)}px"))
        self.axes_image = w.Image(format="png", layout=w.Layout(width="460px"))
        self.audio_out = w.Output()
        self.message = w.HTML()
        controls = w.VBox([self.class_dd, self.clip_dd, self.random_btn, self.variant_dd, self.n_fft,
                           self.hop_length, self.n_mels, self.fmin, self.fmax, self.top_db, self.colormap,
                           *self.strengths, self.order])
        pictures = w.HBox([self.image, self.axes_image], layout=w.Layout(align_items="center"))
        self.widget = w.HBox([controls, w.VBox([pictures, self.audio_out, self.message])])

        #: Each rendering control and the FeatureSpec field it sets.
        self.fields = {self.n_fft: "n_fft", self.hop_length: "hop_length", self.n_mels: "n_mels",
                       self.fmin: "fmin", self.fmax: "fmax", self.top_db: "top_db", self.colormap: "colormap",
                       **{s: "merge.strengths" for s in self.strengths}, self.order: "merge.order"}
        self._enable_controls()

        self.class_dd.observe(self._on_class, names="value")
        self.clip_dd.observe(self._on_clip, names="value")
        self.random_btn.on_click(lambda _: self.random_clip())
        self.variant_dd.observe(self._on_variant, names="value")
        for ctl in (self.n_fft, self.hop_length, self.n_mels, self.fmin, self.fmax, self.top_db, self.colormap,
                    *self.strengths, self.order):
            ctl.observe(lambda _change: self.redraw(), names="value")
        self._play()
        self.redraw()

    # -- state ---------------------------------------------------------------
    def _clip_options(self, label: str) -> list[tuple[str, Path]]:
        return [(c.path.name, c.path) for c in self.dataset.clips if c.label == label]

    @property
    def clip(self):
        """The selected clip."""
        return next(c for c in self.dataset.clips if c.path == self.clip_dd.value)

    @property
    def spec(self):
        """The feature spec the controls describe, its window chosen for the selected clip (see the class
        docstring; may raise FeatureError for impossible values, AudioError for an unreadable clip)."""
        from soundlib.pictures.merge import MergeSpec
        from soundlib.pictures.variants import resolve_duration

        nyq = self.base.sr / 2
        spec = self.base.replace(
            n_fft=int(self.n_fft.value), hop_length=int(self.hop_length.value), n_mels=int(self.n_mels.value),
            fmin=float(self.fmin.value), fmax=None if self.fmax.value >= nyq else float(self.fmax.value),
            top_db=float(self.top_db.value), colormap=self.colormap.value,
            merge=MergeSpec(order=tuple(self.order.value.split(" / ")),
                            strengths=tuple(float(s.value) for s in self.strengths),
                            jitter=self.base.merge.jitter, seed=self.base.merge.seed,
                            stack_ratio=self.base.merge.stack_ratio),
        )
        if spec.resolved:
            return spec
        path = self.clip_dd.value
        if path not in self._seconds:
            from soundlib.audio.clips import audio_info

            self._seconds[path] = audio_info(path).duration
        return resolve_duration(spec, [self._seconds[path]])[0]

    def _samples(self, spec):
        from soundlib.audio.clips import load_audio

        key = (self.clip_dd.value, spec.sr, spec.duration)
        if key not in self._audio:
            self._audio[key] = load_audio(self.clip_dd.value, sr=spec.sr, duration=spec.duration)
        return self._audio[key]

    # -- events --------------------------------------------------------------
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change several controls without a redraw per change."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

    def _on_class(self, change) -> None:
        with self._quiet():
            opts = self._clip_options(change["new"])
            self.clip_dd.options = opts
            self.clip_dd.value = opts[0][1]
        if not self._hold:
            self._play()
            self.redraw()

    def _on_clip(self, change) -> None:
        if self._hold or change["new"] is None:
            return
        self._play()
        self.redraw()

    def _on_variant(self, change) -> None:
        from soundlib.pictures.variants import get_variant

        if change["new"] is None:
            return
        b = self.base = get_variant(change["new"])
        with self._quiet():
            self.n_fft.value, self.hop_length.value, self.n_mels.value = b.n_fft, b.hop_length, b.n_mels
            self.fmin.value, self.fmax.value, self.top_db.value = b.fmin, b.fmax or b.sr / 2, b.top_db
            if b.colormap not in self.colormap.options:
                self.colormap.options = sorted(set(self.colormap.options) | {b.colormap})
            self.colormap.value = b.colormap
            for s, v in zip(self.strengths, b.merge.strengths):
                s.value = v
            self.order.value = " / ".join(b.merge.order)
        self._enable_controls()
        self.redraw()

    def _enable_controls(self) -> None:
        """Disable the controls the variant's picture does not depend on."""
        from soundlib.pictures.features import rendering_fields

        used = rendering_fields(self.base)
        for ctl, field in self.fields.items():
            ctl.disabled = field not in used

    def random_clip(self):
        """Select a random clip (seeded), play it and redraw; returns the clip."""
        clip = self.dataset.clips[self._rng.randrange(len(self.dataset.clips))]
        with self._quiet():
            self.class_dd.value = clip.label
            self.clip_dd.value = clip.path
        self._play()
        self.redraw()
        return clip

    # -- output --------------------------------------------------------------
    def _play(self) -> None:
        from IPython.display import Audio, display

        self.audio_out.clear_output(wait=True)
        with self.audio_out:
            display(Audio(filename=str(self.clip_dd.value)))

    def redraw(self):
        """Render the selected clip with the current controls; returns the picture (or None on bad values)."""
        if self._hold:
            return self.picture
        import io

        from PIL import Image

        from soundlib.pictures.features import render

        from soundlib.evaluation.plots import plot_feature, png_bytes

        try:
            spec = self.spec
            samples = self._samples(spec)
            self.picture = render(samples, spec)
            self.error = None
        except SoundlibError as exc:
            self.error = str(exc)
            self.message.value = f"<span style='color:#b00'>{html(exc)}</span>"
            return None
        buf = io.BytesIO()
        Image.fromarray(self.picture).save(buf, format="PNG")
        self.image.value = buf.getvalue()
        c = self.clip
        self.figure = plot_feature(samples, spec, title=f"{c.label} · {c.path.name} · {spec.name}")
        self.axes_image.value = png_bytes(self.figure)
        from soundlib.pictures.features import empty_mel_warning

        self.warning = empty_mel_warning(spec)
        self.message.value = (f"<b>{html(c.label)}</b> · {html(c.path.name)} · fold {c.fold} · "
                              f"variant {html(spec.name)} · "
                              f"{self.picture.shape[1]}×{self.picture.shape[0]} px"
                              + (f"<br><span style='color:#b06000'>&#9888; {html(self.warning)}</span>"
                                 if self.warning else ""))
        return self.picture

    def save_png(self, path: str | os.PathLike) -> Path:
        """Write the current picture as a PNG (atomically)."""
        from soundlib.pictures.featurize import write_png

        if self.picture is None:
            raise SoundlibError(f"no picture to save: {self.error}")
        return write_png(path, self.picture)
