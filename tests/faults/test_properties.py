"""Fault injection, part 5: random bytes, random headers and random manifests thrown at the loaders.

The only outcomes allowed are a result or a :class:`~soundlib.errors.SoundlibError` whose message
names the input (the file, or the ``where`` given for a mapping). Any other exception (a traceback for
the user) fails the property. The examples are derived from a fixed seed (``derandomize``) so the suite
is reproducible, and bounded so it fits the normal ``make test`` budget.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundlib.errors import SoundlibError

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# a few real sounds for the manifests to point at (some rows name files that do not exist)
_DIR = Path(tempfile.mkdtemp(prefix="soundlib-props-"))
for _i in range(3):
    import soundfile as _sf

    _sf.write(str(_DIR / f"s{_i}.wav"), (0.3 * np.sin(np.arange(4000) * (0.05 + 0.03 * _i))).astype(np.float32),
              8000)

_CELLS = st.one_of(
    st.sampled_from(["s0.wav", "s1.wav", "s2.wav", "missing.wav", "", "1", "2", "-3", "x", "dog", "cat",
                     "fold1/s0.wav", "../s0.wav", "/nonexistent/a.wav", "s0.wav\x00", "ü.wav", " 2 ", "1e3"]),
    st.text(max_size=12),
)
_HEADER_NAMES = st.sampled_from(["path", "label", "fold", "group", "extra", "", "Path", "label ", "\ufeffpath",
                                 "slice_file_name", "fsID", "classID", "class", "filename", "target", "category"])


def _named(exc: SoundlibError, *names: str) -> bool:
    text = str(exc)
    return any(n and n in text for n in names)


def _check_loader(path: Path, load) -> None:
    try:
        load(path)
    except SoundlibError as exc:
        assert _named(exc, str(path), path.name), f"error does not name {path}: {exc}"


@st.composite
def manifests(draw) -> bytes:
    """A CSV with a random header (repeats and blanks allowed) and random rows, in a random encoding."""
    header = draw(st.lists(_HEADER_NAMES, min_size=1, max_size=5))
    rows = draw(st.lists(st.lists(_CELLS, min_size=0, max_size=len(header) + 1), max_size=6))
    buf = io.StringIO()
    import csv

    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return buf.getvalue().encode(encoding, errors="replace")


@SETTINGS
@given(body=manifests())
def test_random_manifests(body):
    from soundlib.data import load_dataset

    path = _DIR / "m.csv"
    path.write_bytes(body)
    _check_loader(path, load_dataset)


@SETTINGS
@given(body=st.binary(max_size=400))
def test_random_bytes_as_a_csv(body):
    from soundlib.data import load_dataset

    path = _DIR / "b.csv"
    path.write_bytes(body)
    _check_loader(path, load_dataset)


@SETTINGS
@given(rows=st.lists(st.lists(_CELLS, min_size=8, max_size=8), min_size=1, max_size=4),
       layout=st.sampled_from(["us8k", "esc50"]))
def test_random_metadata_rows(rows, layout):
    """The UrbanSound8K and ESC-50 headers with random rows under them."""
    from soundlib.data import ESC50_HEADER, US8K_HEADER, load_dataset

    header = US8K_HEADER if layout == "us8k" else ESC50_HEADER
    buf = io.StringIO()
    import csv

    csv.writer(buf).writerows([list(header)] + [r[:len(header)] for r in rows])
    path = _DIR / f"{layout}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    _check_loader(path, lambda p: load_dataset(p, check_files=False))


_AUDIO_HEADERS = st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"ID3\x03\x00",
                                  b"FORM\x00\x00\x00\x00AIFF", b".snd", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00"
                                  b"\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data"])


@SETTINGS
@given(head=_AUDIO_HEADERS, body=st.binary(max_size=600), ext=st.sampled_from([".wav", ".flac", ".ogg", ".mp3",
                                                                                ".aiff", ".au"]))
def test_random_audio_files(head, body, ext):
    from soundlib.audio import load_audio

    path = _DIR / f"clip{ext}"
    path.write_bytes(head + body)

    def load(p):
        y = load_audio(p, sr=8000, duration=0.5)
        assert y.dtype == np.float32 and y.shape == (4000,) and np.isfinite(y).all()

    _check_loader(path, load)


_PICTURE_HEADERS = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8\xff",
                                    b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"])


@SETTINGS
@given(head=_PICTURE_HEADERS, body=st.binary(max_size=400), ext=st.sampled_from([".png", ".jpg", ".gif", ".bmp",
                                                                                  ".tif", ".webp"]))
def test_random_pictures(head, body, ext):
    from soundlib.featurize import read_picture

    path = _DIR / f"pic{ext}"
    path.write_bytes(head + body)

    def load(p):
        pic = read_picture(p)
        assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3

    _check_loader(path, load)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=8)
_SPEC_KEYS = ["name", "kind", "sr", "duration", "n_fft", "hop_length", "frequency", "n_mels", "fmin", "fmax", "scale",
              "top_db", "colormap", "height", "width", "waveform_color", "background_color", "merge", "base"]


@SETTINGS
@given(mapping=st.dictionaries(st.sampled_from(_SPEC_KEYS + ["bogus"]), _JSON, max_size=5))
def test_random_variant_mappings(mapping):
    """A sweep YAML's (or a model's feature_spec.json's) variant mapping with random values."""
    from soundlib.variants import resolve_duration, resolve_variant

    mapping = {"name": "v", **mapping}
    try:
        spec = resolve_variant(mapping, where="random.yaml: variants[0]")
    except SoundlibError as exc:
        assert "random.yaml: variants[0]" in str(exc), exc
    else:
        spec = resolve_duration(spec, [1.0])[0]  # a duration rule (fit, auto) chosen for 1-s clips
        assert spec.n_samples > 0 and spec.height >= 16


@SETTINGS
@given(info=st.one_of(_JSON, st.fixed_dictionaries({"format": st.sampled_from(["soundlib-model/1", "soundlib-model/2"]),
                                                    "input": _JSON, "checksums": _JSON})),
       raw=st.one_of(st.none(), st.binary(max_size=60)))
def test_random_model_manifests(info, raw):
    """soundlib_model.json with random content (or random bytes): read_model_info checks every field it uses."""
    from soundlib.infer import read_model_info

    folder = _DIR / "model"
    folder.mkdir(exist_ok=True)
    path = folder / "soundlib_model.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        try:
            path.write_text(json.dumps(info))
        except ValueError:  # not JSON-able (NaN keys...): write it as Python would
            path.write_text(repr(info))
    try:
        got = read_model_info(folder)
    except SoundlibError as exc:
        assert str(path) in str(exc), exc
    else:
        assert isinstance(got, dict)


@SETTINGS
@given(body=st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode())))
def test_random_metrics_files_are_ignored_not_raised(body):
    """metrics.json of a run: a torn or foreign file reads as "no complete run", never as an exception."""
    from soundlib.metrics import RunMetrics

    path = _DIR / "metrics.json"
    path.write_bytes(body)
    m = RunMetrics.read(path)
    assert m is None or 0.0 <= m.accuracy <= 1.0
