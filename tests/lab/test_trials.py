"""The widget explorer of plotting_trials.ipynb, driven headless."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from soundlib.audio.clips import audio_info
from soundlib.lab.notebook import open_dataset
from soundlib.lab.trials import TrialsUI


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_trials_ui_redraws_on_every_control(corpus, tmp_path):
    ds = open_dataset(corpus)
    ui = TrialsUI(ds, variant="mel", seed=1)
    first = ui.picture.copy()
    assert first.shape == (224, 224, 3) and ui.image.value[:4] == b"\x89PNG"
    # beside the picture: the same spectrogram with axes in seconds and Hz, and a dB colour bar
    assert ui.axes_image.value[:4] == b"\x89PNG"
    spec_ax, bar = ui.figure.axes
    assert spec_ax.get_xlabel() == "time (s)" and spec_ax.get_ylabel().startswith("Hz")
    assert spec_ax.get_xlim() == (0.0, ui.spec.duration)  # the span of the picture
    # duration "fit": the selected clip's own length, rounded up to 0.1 s
    assert ui.base.duration == "fit" and ui.spec.duration == np.ceil(audio_info(ui.clip.path).duration * 10 - 1e-9) / 10
    assert "dB" in bar.get_ylabel() and bar.get_ylim() == (-80.0, 0.0)
    axes_png = ui.axes_image.value
    ui.colormap.value = "gray"
    assert ui.spec.colormap == "gray" and not np.array_equal(ui.picture, first)
    gray = ui.picture.copy()
    assert np.array_equal(gray[..., 0], gray[..., 1])
    ui.n_mels.value = 32
    ui.hop_length.value = 256
    ui.top_db.value = 40.0
    assert ui.spec.n_mels == 32 and ui.spec.hop_length == 256 and not np.array_equal(ui.picture, gray)
    assert ui.figure.axes[1].get_ylim() == (-40.0, 0.0) and ui.axes_image.value != axes_png
    ui.variant_dd.value = "merged"
    assert ui.spec.kind == "merged" and ui.colormap.value == "magma" and ui.n_mels.value == 128
    assert [a.get_ylabel() for a in ui.figure.axes] == ["Hz (mel)", "amplitude", "dB re clip maximum"]
    merged = ui.picture.copy()
    ui.strengths[2].value = 1.0
    ui.order.value = "waveform / spectrogram / background"
    assert ui.spec.merge.order == ("waveform", "spectrogram", "background")
    assert not np.array_equal(ui.picture, merged)
    old = ui.clip
    picked = ui.random_clip()
    assert ui.clip == picked and ui.class_dd.value == picked.label
    ui.class_dd.value = next(c for c in ds.classes if c != ui.class_dd.value)
    assert ui.clip.label == ui.class_dd.value and ui.clip != old
    ui.fmin.value = 11000.0  # above fmax: reported, not raised
    ui.fmax.value = 5000.0
    assert ui.error and "fmin" in ui.message.value
    ui.fmin.value = 0.0
    assert ui.error is None
    path = ui.save_png(tmp_path / "pic.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


#: A different value for each rendering parameter the explorer (or a variant) can change.
CHANGES = {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 500.0, "fmax": 8000.0, "top_db": 40.0,
           "colormap": "viridis", "waveform_color": (255, 0, 0), "background_color": (0, 0, 0),
           "merge.order": ("waveform", "spectrogram", "background"), "merge.strengths": (0.5, 0.7, 1.0),
           "merge.stack_ratio": 0.3}


@pytest.mark.parametrize("name", ["mel", "mel_gray", "linear", "waveform", "merged", "stacked"])
def test_rendering_fields_are_the_ones_that_change_the_picture(name):
    """rendering_fields(spec) lists exactly the parameters whose change changes the picture."""
    from soundlib.pictures.features import render, rendering_fields
    from soundlib.pictures.variants import get_variant

    from ..conftest import tone

    spec = get_variant(name).replace(height=64, width=64, duration=0.5)
    y = tone(440.0, seconds=0.5, noise=0.05)
    picture = render(y, spec)
    for field, value in CHANGES.items():
        if field.startswith("merge."):
            changed = spec.replace(merge=dataclasses.replace(spec.merge, **{field[6:]: value}))
        else:
            changed = spec.replace(**{field: value})
        differs = not np.array_equal(render(y, changed), picture)
        assert differs == (field in rendering_fields(spec)), (name, field, differs)


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_controls_a_variant_does_not_use_are_disabled(corpus):
    ui = TrialsUI(open_dataset(corpus), variant="mel", seed=0)

    def disabled():
        return {field for ctl, field in ui.fields.items() if ctl.disabled}

    assert disabled() == {"merge.strengths", "merge.order"}
    ui.variant_dd.value = "waveform"
    assert disabled() == {"n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "colormap", "merge.strengths",
                          "merge.order"}
    ui.variant_dd.value = "merged"
    assert disabled() == {"colormap"}
    ui.variant_dd.value = "linear"
    assert disabled() == {"n_mels", "top_db", "merge.strengths", "merge.order"}
    ui.variant_dd.value = "mel_gray"  # its colormap is what makes it gray: it stays open
    assert disabled() == {"merge.strengths", "merge.order"}
