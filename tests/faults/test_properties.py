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
    from soundlib.audio.loaders import load_dataset

    path = _DIR / "m.csv"
    path.write_bytes(body)
    _check_loader(path, load_dataset)


@SETTINGS
@given(body=st.binary(max_size=400))
def test_random_bytes_as_a_csv(body):
    from soundlib.audio.loaders import load_dataset

    path = _DIR / "b.csv"
    path.write_bytes(body)
    _check_loader(path, load_dataset)


@SETTINGS
@given(rows=st.lists(st.lists(_CELLS, min_size=8, max_size=8), min_size=1, max_size=4),
       layout=st.sampled_from(["us8k", "esc50"]))
def test_random_metadata_rows(rows, layout):
    """The UrbanSound8K and ESC-50 headers with random rows under them."""
    from soundlib.audio.datasets import ESC50_HEADER, US8K_HEADER
    from soundlib.audio.loaders import load_dataset

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
    from soundlib.audio.clips import load_audio

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
    from soundlib.pictures.featurize import read_picture

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
    from soundlib.pictures.variants import resolve_duration, resolve_variant

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
    from soundlib.models.load import read_model_info

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
    from soundlib.evaluation.metrics import RunMetrics

    path = _DIR / "metrics.json"
    path.write_bytes(body)
    m = RunMetrics.read(path)
    assert m is None or 0.0 <= m.accuracy <= 1.0


# ---------------------------------------------------------------------------
# Output paths: whatever path an output is given, a result or a one-line error, and nothing destroyed

_PREDICT_HEADER = b"input,rank,label,probability,windows\r\n"
#: What a world holds before a command runs: the user's files (and one soundlib wrote, prev.csv).
_WORLD = {"in/a.wav": None, "notes.csv": b"my notes\n", "full/thesis.tex": b"three years\n",
          "full/metrics.json": b'{"mine": true}\n', "file": b"mine\n", "model/labels.txt": b"a\nb\n",
          "model/saved_model/saved_model.pb": b"pb", "prev.csv": _PREDICT_HEADER + b"x.wav,1,a,1.0,1\r\n",
          "data/m.csv": None, "data/a0.wav": None}
_OUT_NAMES = st.one_of(
    st.sampled_from(["new.csv", "deep/er/new.csv", "in/a.wav", "in", "notes.csv", "prev.csv", "dir", "full",
                     "full/thesis.tex", "full/metrics.json", "file", "file/x.csv", "model", "model/labels.txt",
                     "model/x.csv", "model/saved_model", "link-to-input", "broken-link", "loop", "pipe", "data",
                     "data/m.csv", ".", "/proc/soundlib-x.csv", "/proc", "/proc/self", "/sys/soundlib-x"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), min_size=1, max_size=8),
)
_OUTPUT_SETTINGS = settings(SETTINGS, max_examples=60)


def _world() -> Path:
    """A fresh folder holding :data:`_WORLD` (a wav, a manifest of two classes, a fake model), links and a pipe."""
    import os

    import soundfile as sf

    root = Path(tempfile.mkdtemp(dir=_DIR, prefix="world-"))
    for name, data in _WORLD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            (root / name).write_bytes(data)
    (root / "dir").mkdir()
    sf.write(str(root / "in" / "a.wav"), (0.3 * np.sin(np.arange(8000) * 0.05)).astype(np.float32), 8000)
    rows = []
    for i in range(8):
        name = f"{'ab'[i % 2]}{i}.wav"
        sf.write(str(root / "data" / name), (0.3 * np.sin(np.arange(4000) * (0.02 + 0.2 * (i % 2)))
                                             + 0.01 * np.random.default_rng(i).standard_normal(4000))
                 .astype(np.float32), 8000)
        rows.append(f"{name},{'ab'[i % 2]},{1 + (i // 2) % 2}")
    (root / "data" / "m.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    (root / "link-to-input").symlink_to(root / "in" / "a.wav")
    (root / "broken-link").symlink_to(root / "nowhere")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "pipe")
    return root


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _run_cli(args: list[str]) -> tuple[int, str]:
    import contextlib

    from soundlib.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)  # any exception but SystemExit (argparse) is a traceback for the user: fails the test
    return code, err.getvalue()


def _check_outcome(code: int, err: str, command: str) -> None:
    assert "Traceback" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith(f"soundlib {command}: error: ")]
        assert len(errors) == 1, err


def _target(root: Path, name: str) -> Path:
    return Path(name) if name.startswith("/") else root / name


@_OUTPUT_SETTINGS
@given(csv=st.one_of(st.none(), _OUT_NAMES), timeline=st.one_of(st.none(), _OUT_NAMES), overwrite=st.booleans())
def test_predict_output_paths(csv, timeline, overwrite):
    """``predict --csv/--timeline`` with any kind of path: written, or one error line; no input, model file or
    file soundlib did not write is destroyed (a foreign file only with --overwrite, when it is the output named)."""
    import os
    import shutil

    import pytest

    import soundlib.models.label as label
    import soundlib.models.load as load

    root = _world()
    try:
        before = _snapshot(root)
        args = ["predict", str(root / "model"), str(root / "in" / "a.wav")]
        named = {}
        for option, name in (("--csv", csv), ("--timeline", timeline)):
            if name is not None:
                args += [option, str(_target(root, name))]
                named[option] = _target(root, name)
        args += ["--overwrite"] if overwrite else []

        def fake_predict(model, inputs, *, top_k, aggregate, timeline, **more):
            if timeline is not None:
                timeline.append({"input": str(inputs[0]), "start": 0.0, "end": 1.0, "rank": 1, "label": "a",
                                 "probability": 1.0})
            return [{"input": str(inputs[0]), "rank": 1, "label": "a", "probability": 1.0, "windows": 1}], []

        with pytest.MonkeyPatch.context() as mp:  # the model is not what is tested: the outputs are
            mp.setattr(load, "load_model", lambda path: object())
            mp.setattr(label, "predict", fake_predict)
            code, err = _run_cli(args)
        _check_outcome(code, err, "predict")
        assert code in (0, 2)
        ours = {root / "prev.csv"}
        replaceable = {os.path.realpath(p) for p in named.values()} if overwrite else set()
        for path, data in before.items():
            if path in ours or (os.path.realpath(path) in replaceable and not path.is_relative_to(root / "model")
                                and not path.is_relative_to(root / "in")):
                continue
            assert path.read_bytes() == data, f"{path} changed: {args}"
        assert (root / "pipe").is_fifo() and (root / "link-to-input").is_symlink()
    finally:
        shutil.rmtree(root, ignore_errors=True)


_RUN_FILES = {"metrics.json", "predictions.csv", "history.json", "confusion_matrix.png", "soundlib_run.json"}


@settings(SETTINGS, max_examples=25)
@given(out=_OUT_NAMES, overwrite=st.booleans())
def test_train_out_paths(out, overwrite):
    """``train --out`` with any kind of path: a run, or one error line; nothing soundlib did not write is
    destroyed (with --overwrite, only the files a run writes, in the folder named)."""
    import os
    import shutil

    root = _world()
    try:
        before = _snapshot(root)
        target = _target(root, out)
        args = ["train", str(root / "data" / "m.csv"), "--test-fold", "1", "--out", str(target), "--method", "mfcc",
                "--quiet"] + (["--overwrite"] if overwrite else [])
        code, err = _run_cli(args)
        _check_outcome(code, err, "train")
        assert code in (0, 2)
        for path, data in before.items():
            if overwrite and os.path.realpath(path.parent) == os.path.realpath(target) and path.name in _RUN_FILES:
                continue
            assert path.read_bytes() == data, f"{path} changed: {args}"
        if code == 0:
            assert json.loads((target / "metrics.json").read_text())["method"] == "mfcc"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------
# Method names, their options and embedder names: resolved or refused in one line, never a traceback

_NAMES = st.one_of(st.sampled_from(["frozen", "finetune", "scratch", "mfcc", "fusion", "auto", "birdnet", "mn04",
                                    "yamnet", "speech", "efficientnet_lite0", "mfcc_x", ""]), st.text(max_size=12))
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.one_of(st.integers(-5, 2000), st.text(max_size=6)), max_size=9))
_OPTIONS = st.dictionaries(st.sampled_from(["head", "Cs", "layer", "pooling", "hop", "pad", "threads", "channels",
                                            "epochs", "members", "candidates", "mode", "tolerance", "budget_seconds",
                                            "n_mfcc", "features", "unfreeze", "backbone", "bogus"]), _VALUES, max_size=3)


@settings(SETTINGS, max_examples=150)
@given(name=_NAMES, options=_OPTIONS)
def test_method_names_and_options_resolve_or_are_refused(name, options):
    from soundlib.errors import SoundlibError
    from soundlib.methods import build_method, resolve_method

    try:
        spec = resolve_method({"method": name, **options} if options else name, where="sweep.yaml")
        build_method(spec)
    except SoundlibError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip().splitlines()[0]


@settings(SETTINGS, max_examples=100)
@given(handle=st.one_of(st.sampled_from(["mn04", "yamnet", "birdnet", "speech", "mfcc", "efficientnet_lite0",
                                           "x/y/z/w"]),
                        st.text(max_size=16)),
       threads=st.integers(-3, 300), hop=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_embedder_names_and_options_resolve_or_are_refused(handle, threads, hop):
    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.errors import SoundlibError

    try:
        embedder = resolve_embedder(handle, EmbedderOptions(threads=threads, hop=hop))
    except SoundlibError:
        return
    assert embedder.modality in ("picture", "waveform") and embedder.name == handle
