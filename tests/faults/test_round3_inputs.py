"""Fault injection, round 3 (issue 20, items 8 and 9): inputs at the edges, sweeps and clusters.

Each test reproduces one case of the red-team report ``reports/red-team-0.2.0.md`` (its id in the test's
name) on tiny generated data, and fails on soundlib 0.2.0.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.errors import AudioError, ConfigError, DatasetError

from ..conftest import small_spec, tone, write_csv, write_wav

SR = 22050


def _loud(path: Path, scale: float = 2e30) -> Path:
    """A float WAV of finite samples about ``scale`` (the report's ``loud.wav``)."""
    return write_wav(path, (tone(440.0, seconds=1.0) * np.float32(scale)).astype(np.float32), subtype="FLOAT")


def _runtime_warnings(caught) -> list[str]:
    return [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]


# ---------------------------------------------------------------------------
# E, F: predict and tag on edge audio


def test_e02_huge_finite_samples_are_a_named_failure_not_a_label(exported_model, tmp_path):
    """`loud.wav` (finite samples about 1e30) leaked three numpy RuntimeWarnings and was labelled from a garbage
    picture ("gun_shot 0.198")."""
    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    good = write_wav(tmp_path / "edge" / "good.wav", tone(440.0, seconds=1.0))
    loud = _loud(tmp_path / "edge" / "loud.wav")
    model = load_model(exported_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, failures = predict(model, [tmp_path / "edge"], top_k=2)
    assert not _runtime_warnings(caught), _runtime_warnings(caught)
    assert {r["input"] for r in rows} == {str(good)}
    assert [p for p, _ in failures] == [loud]
    message = failures[0][1]
    assert message.startswith(f"{loud}: ") and "magnitude" in message and "full scale" in message, message


@pytest.mark.parametrize("scale", [2e30, 2e15])
def test_e02_reading_refuses_huge_samples_everywhere(tmp_path, scale):
    """Every reader (whole clip, segment, windows, streamed windows) refuses samples beyond MAX_AMPLITUDE,
    naming the file, as it refuses NaN."""
    from soundlib.audio.clips import MAX_AMPLITUDE, iter_windows, load_audio, load_windows, read_segment, stream_windows

    loud = _loud(tmp_path / "loud.wav", scale)
    calls = [lambda: read_segment(loud, sr=SR), lambda: read_segment(loud, sr=16000),
             lambda: load_audio(loud, sr=SR), lambda: load_windows(loud, sr=SR, duration=0.5, hop=0.25),
             lambda: list(stream_windows(loud, sr=32000, duration=0.5, hop=0.25)),
             lambda: list(iter_windows(loud, sr=16000, duration=0.5, hop=0.25))]
    for call in calls:
        with pytest.raises(AudioError, match=f"^{re.escape(str(loud))}: audio holds samples of magnitude"):
            call()
    ok = write_wav(tmp_path / "ok.wav", tone(440.0, seconds=1.0) * np.float32(MAX_AMPLITUDE / 2), subtype="FLOAT")
    assert np.isfinite(read_segment(ok, sr=16000)).all()  # large but bounded: read (float WAVs may exceed 1)


def test_e02_pictures_of_any_finite_signal_are_finite_and_quiet():
    """The renderers overflowed float32 (features.py power, then NaN planes cast to uint8) on samples about 1e30;
    a picture is relative to its own peak, so a huge signal gives the picture of the same signal scaled down."""
    from soundlib.pictures.features import render, spectrogram_plane
    from soundlib.pictures.variants import VARIANTS

    y = tone(440.0, seconds=1.0)
    for name in ("mel", "linear", "merged", "stacked"):
        spec = VARIANTS[name].replace(duration=1.0, height=64, width=64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            huge = render(y * np.float32(1e30), spec)
            plane = spectrogram_plane(y * np.float32(3e37), spec=spec)
        assert not _runtime_warnings(caught), (name, _runtime_warnings(caught))
        assert np.isfinite(plane).all() and plane.max() == pytest.approx(1.0)
        if spec.kind != "merged":  # (a merged picture's jitter is seeded by the samples)
            assert np.abs(huge.astype(int) - render(y, spec).astype(int)).max() <= 1, name


def _log_mel_model(tmp_path: Path):
    """A stand-in for a model on the mn04 embedder: unpadded 1-s windows at 32 kHz through EfficientAT's real
    ``log_mel`` (numpy), whose own error names no file."""
    from soundlib.embedders.base import WindowSpec
    from soundlib.embedders.nets.efficientat_mn import log_mel

    def predict_windows(batch):
        feats = log_mel(np.asarray(batch, np.float32))
        energy = feats.mean(axis=(1, 2))
        return np.stack([1 / (1 + np.exp(-energy)), 1 - 1 / (1 + np.exp(-energy))], axis=1)

    window = WindowSpec("mn04", 32000, 1.0, 0.5, pad="none")
    return types.SimpleNamespace(modality="waveform", window=window, spec=small_spec(), labels=["a", "b"],
                                 window_seconds=1.0, predict_windows=predict_windows)


def test_e01_a_one_sample_file_is_named_in_its_failure(tmp_path):
    """`one.wav` (1 sample) failed with "error: log_mel needs at least 514 samples (16 ms at 32000 Hz), got 1",
    without the file's name."""
    from soundlib.models.label import predict

    edge = tmp_path / "edge"
    good = write_wav(edge / "good.wav", tone(440.0, seconds=1.5))
    one = write_wav(edge / "one.wav", tone(440.0, seconds=1.0)[:1], subtype="FLOAT")
    rows, failures = predict(_log_mel_model(tmp_path), [edge], top_k=1)
    assert [r["input"] for r in rows] == [str(good)]
    assert len(failures) == 1 and failures[0][0] == one
    assert failures[0][1].startswith(f"{one}: ") and "514 samples" in failures[0][1], failures


def test_e01_non_finite_probabilities_are_a_named_failure(tmp_path):
    """A model that gives NaN for a file's windows: the file fails, named; no NaN reaches a label."""
    from soundlib.models.label import predict

    wav = write_wav(tmp_path / "x.wav", tone(440.0, seconds=1.5))
    model = _log_mel_model(tmp_path)
    model.predict_windows = lambda batch: np.full((len(batch), 2), np.nan, np.float32)
    rows, failures = predict(model, [wav])
    assert rows == [] and failures[0][0] == wav and "NaN or infinite probabilities" in failures[0][1]


class _StubYamnet:
    """YAMNet's frames model reduced to its float32 front end (log of the frame's power) and a softmax."""

    def scores(self, frames):
        with np.errstate(all="ignore"):
            power = np.mean(np.asarray(frames, np.float32) ** 2, axis=1)
            e = np.log(power + np.float32(1e-3))
            z = np.stack([e, -e, np.zeros_like(e)], axis=1)
            z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


@pytest.fixture
def yamnet_names(monkeypatch):
    from soundlib.embedders.nets import yamnet_weights

    monkeypatch.setattr(yamnet_weights, "class_names", lambda source=None: ["Ding-dong", "Speech", "Music"])


def test_f01_tag_refuses_huge_samples_instead_of_nan_scores(tmp_path, yamnet_names):
    """`tag` wrote `loud.wav` with NaN scores under real labels ("Ding-dong, nan")."""
    from soundlib.models.tag import tag_file

    loud = _loud(tmp_path / "loud.wav")
    with pytest.raises(AudioError, match=f"^{re.escape(str(loud))}: audio holds samples of magnitude"):
        list(tag_file(loud, model=_StubYamnet()))
    good = write_wav(tmp_path / "good.wav", tone(440.0, seconds=2.0))
    tags = list(tag_file(good, model=_StubYamnet()))
    assert tags and all(np.isfinite(t.scores).all() for t in tags)


def test_f01_tag_refuses_non_finite_scores(tmp_path, yamnet_names):
    from soundlib.models.tag import tag_file

    good = write_wav(tmp_path / "good.wav", tone(440.0, seconds=2.0))
    nan_model = types.SimpleNamespace(scores=lambda frames: np.full((len(frames), 3), np.nan, np.float32))
    with pytest.raises(AudioError, match=f"^{re.escape(str(good))}: YAMNet gave NaN or infinite scores"):
        list(tag_file(good, model=nan_model))


def test_f03b_tag_hop_below_one_millisecond_is_refused_before_the_model_loads(tmp_path):
    """`tag --hop 1e-9` on a 3-s file was accepted: one frame per sample (48,000 frames), still running at 120 s."""
    wav = write_wav(tmp_path / "three.wav", tone(440.0, seconds=3.0))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "soundlib.cli", "tag", str(wav), "--hop", "1e-9"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and time.monotonic() - t0 < 60
    assert "argument --hop: hop must be in [0.001, 10] seconds" in r.stderr and "got 1e-09" in r.stderr
    assert "Traceback" not in r.stderr


def test_f03b_tag_file_and_window_readers_bound_the_hop_and_the_frames(tmp_path, monkeypatch, yamnet_names):
    from soundlib.audio import clips
    from soundlib.models.label import window_probabilities
    from soundlib.models.tag import tag_file

    wav = write_wav(tmp_path / "three.wav", tone(440.0, seconds=3.0))
    with pytest.raises(ConfigError, match=r"hop must be in \[0.001, 10\] seconds"):
        list(tag_file(wav, hop=1e-9, model=_StubYamnet()))
    with pytest.raises(AudioError, match="at least 0.001 s"):
        window_probabilities(_log_mel_model(tmp_path), wav, hop=1e-9)
    monkeypatch.setattr(clips, "MAX_WINDOWS", 100)  # a 3-s file at a 10-ms hop: 200 frames
    frames = rf"^{re.escape(str(wav))}: 3 s cut every 0.01 s gives 2\d\d windows, more than 100 per file"
    with pytest.raises(AudioError, match=frames):
        list(tag_file(wav, hop=0.01, model=_StubYamnet()))
    for starts in ("header", "audio"):
        with pytest.raises(AudioError, match=f"^{re.escape(str(wav))}: .*more than 100"):
            list(clips.stream_windows(wav, sr=16000, duration=0.5, hop=0.01, starts=starts))
    monkeypatch.undo()
    assert len(list(tag_file(wav, hop=0.05, model=_StubYamnet()))) == len(clips.window_starts(48000, 15600, 800))


# ---------------------------------------------------------------------------
# G: manifests, folds and grouping

_BACKTRACKING = "^((?:a+)+)$"


def _names_that_backtrack(folder: Path, n: int = 6) -> Path:
    """``n`` files named ``a`` x 34 + ``!<i>.wav`` in a manifest (the report's G09)."""
    rows = []
    for i in range(n):
        name = "a" * 34 + f"!{i}.wav"
        write_wav(folder / name, tone(300 + 100 * i, seconds=0.3, seed=i))
        rows.append((name, "ab"[i % 2], 1 + i % 3))
    return write_csv(folder / "manifest.csv", ("path", "label", "fold"), rows)


def test_g09_a_backtracking_group_regex_is_stopped_with_one_line(tmp_path):
    """`--group-regex '^((?:a+)+)$'` on names `a`x34 + `!`: catastrophic backtracking, no output, killed at 120 s.
    The search now runs under a deadline, in the main thread (an interval timer) and off it (a child process)."""
    manifest = _names_that_backtrack(tmp_path)
    code = textwrap.dedent(f"""
        import threading, time
        from soundlib.audio import datasets
        from soundlib.audio.loaders import load_dataset
        from soundlib.errors import ConfigError
        datasets.GROUP_REGEX_SECONDS = 1.0
        def attempt(where):
            t0 = time.monotonic()
            try:
                load_dataset({str(manifest)!r}, group_regex={_BACKTRACKING!r})
            except ConfigError as exc:
                print(where, round(time.monotonic() - t0, 1), exc, flush=True)
        attempt("main")
        worker = threading.Thread(target=attempt, args=("thread",))
        worker.start()
        worker.join()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stdout + r.stderr
    for line, where in zip(lines, ("main", "thread")):
        assert line.startswith(where + " ")
        assert float(line.split()[1]) < 10
        assert f"group_regex (--group-regex) {_BACKTRACKING!r} took more than 1 s" in line and "nested repeats" in line


def test_g09_a_good_group_regex_still_groups_in_and_off_the_main_thread(tmp_path):
    from soundlib.audio.datasets import search_names
    from soundlib.audio.loaders import load_dataset

    manifest = _names_that_backtrack(tmp_path)
    ds = load_dataset(manifest, group_regex=r"^(a+)!")
    assert {c.group for c in ds.clips} == {"a" * 34} and ds.grouping.source == "regex"
    rx = re.compile(r"^(\w)(?:x|y)?")
    out: list = []
    worker = threading.Thread(target=lambda: out.append(search_names(rx, ["ab", "?", "xy", "\udcff"])))
    worker.start()
    worker.join()
    assert out == [["a", None, "x", None]] == [search_names(rx, ["ab", "?", "xy", "\udcff"])]


def _fold_manifest(folder: Path, fold: str) -> Path:
    rows = []
    for i in range(6):
        name = f"c{i}.wav"
        write_wav(folder / name, tone(300 + 150 * i, seconds=0.3, seed=i))
        rows.append((name, "ab"[i % 2], fold if i == 3 else str(1 + i % 2)))
    return write_csv(folder / "m.csv", ("path", "label", "fold"), rows)


@pytest.mark.parametrize("fold, why", [
    ("1_0", "should be an integer"),  # G13: Python's int() read it as 10
    ("\u0661\u0660", "should be an integer"),  # Arabic-Indic "10": int() read it as 10
    ("\uff11", "should be an integer"),  # a full-width 1
    ("1000000000000000000000000000000", "should be a fold number from 0 to 1000"),  # G11: OverflowError later
    ("-1", "should be a fold number from 0 to 1000"),
    ("1001", "should be a fold number from 0 to 1000"),
    ("9" * 5000, "should be a fold number from 0 to 1000"),  # beyond int()'s 4300 digits
])
def test_g11_g13_folds_are_ascii_integers_in_a_sane_range(tmp_path, fold, why):
    from soundlib.audio.loaders import load_dataset

    manifest = _fold_manifest(tmp_path, fold)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(manifest))}, line 5: column 'fold' {why}, got ") as info:
        load_dataset(manifest)
    assert len(str(info.value)) < 300  # a huge value is cut in the message


@pytest.mark.parametrize("fold, expected", [("0", (0, 1, 2)), (" +3 ", (1, 2, 3)), ("007", (1, 2, 7))])
def test_g13_plain_folds_still_load(tmp_path, fold, expected):
    from soundlib.audio.loaders import load_dataset

    assert load_dataset(_fold_manifest(tmp_path, fold)).folds == expected


def test_g13_urbansound8k_and_esc50_metadata_folds_are_checked_too(tmp_path):
    from soundlib.audio.datasets import ESC50_HEADER, US8K_HEADER
    from soundlib.audio.loaders import load_dataset

    us = tmp_path / "us8k"
    csv_us = write_csv(us / "metadata" / "UrbanSound8K.csv", US8K_HEADER,
                       [("100-3-0-0.wav", "100", "0", "1", "1", "1_0", "3", "dog_bark")])
    write_wav(us / "audio" / "fold10" / "100-3-0-0.wav", tone(seconds=0.3))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(csv_us))}, line 2: column 'fold' should be an integer, got '1_0'"):
        load_dataset(us)
    esc = tmp_path / "esc50"
    csv_esc = write_csv(esc / "meta" / "esc50.csv", ESC50_HEADER,
                        [("1-100-A-0.wav", "1" + "0" * 30, "0", "dog", "True", "100", "A")])
    write_wav(esc / "audio" / "1-100-A-0.wav", tone(seconds=0.3))
    with pytest.raises(DatasetError, match=f"^{re.escape(str(csv_esc))}, line 2: column 'fold' should be a fold number"):
        load_dataset(esc)


def test_g11_embed_export_with_a_fold_of_ten_to_the_thirty_is_one_line(tmp_path, capsys):
    """`embed --export` of a manifest with fold 10^30: traceback `OverflowError: Python int too large to convert
    to C long`."""
    manifest = _fold_manifest(tmp_path, "1" + "0" * 30)
    code = main(["embed", str(manifest), "--variant", "mel", "--backbone", "mfcc", "--export",
                 str(tmp_path / "e.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "should be a fold number from 0 to 1000" in err, err
    assert not (tmp_path / "e.npz").exists()


@pytest.fixture
def ten_thousand_classes(tmp_path) -> Path:
    """The report's G14/G15 dataset: 10,000 classes, each one hard link to one 0.1-s file, 10 folds."""
    one = write_wav(tmp_path / "one.wav", tone(440.0, seconds=0.1))
    rows = []
    for i in range(10_000):
        link = tmp_path / "c" / f"{i}.wav"
        if i == 0:
            link.parent.mkdir()
        os.link(one, link)
        rows.append((f"c/{i}.wav", f"class{i}", 1 + i % 10))
    return write_csv(tmp_path / "manifest.csv", ("path", "label", "fold"), rows)


def test_g15_ten_thousand_classes_are_refused_up_front_with_the_estimate(ten_thousand_classes, tmp_path, monkeypatch):
    """`evaluate --method mfcc --folds 1` on 10,000 one-clip classes ran 194 s, peaked at 7.4 GB and died in the
    confusion-matrix plot (`MemoryError: std::bad_alloc`)."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation import evaluate as E
    from soundlib.models.train import train_fold

    ds = load_dataset(ten_thousand_classes)
    monkeypatch.setattr(E, "prepare", lambda *a, **k: pytest.fail("the clips were prepared before the refusal"))
    t0 = time.monotonic()
    config = E.EvalConfig(method="mfcc", folds=(1,))
    with pytest.raises(DatasetError, match=r"10,000 classes over 10,000 clips; .* about 17\.\d GiB, more than the 4 GiB"):
        E.evaluate(ds, config, out_dir=tmp_path / "ev", progress=False)
    with pytest.raises(DatasetError, match=r"10,000x10,000 confusion matrix"):
        train_fold(ds, test_fold=1, config=config, out_dir=tmp_path / "tr", progress=False)
    assert time.monotonic() - t0 < 10 and not (tmp_path / "tr" / "metrics.json").exists()
    monkeypatch.setenv(E.MAX_SCORE_ENV, "20")
    E.check_size(ds)  # the limit can be raised
    monkeypatch.setenv(E.MAX_SCORE_ENV, "nan")
    with pytest.raises(ConfigError, match="SOUNDLIB_EVALUATE_MAX_GB='nan'"):
        E.check_size(ds)


def test_g15_a_confusion_matrix_figure_stops_growing(tmp_path):
    """The figure was (1 + 0.6 n) x (0.8 + 0.55 n) inches at 110 dpi: 300 inches a side for 500 classes."""
    from soundlib.evaluation.plots import plot_confusion

    fig = plot_confusion(np.eye(500, dtype=int), [f"c{i}" for i in range(500)])
    assert max(fig.get_size_inches()) < 40
    small = plot_confusion(np.eye(3, dtype=int), ["a", "b", "c"])
    assert [t.get_text() for t in small.axes[0].get_xticklabels()] == ["a", "b", "c"]


# ---------------------------------------------------------------------------
# J: sweeps and clusters


def _grid(n_variants: int, n_methods: int, **extra) -> dict:
    return {"synth": {"clips_per_class": 2, "duration": 1.0}, "folds": [1],
            "variants": [{"name": f"v{i}", "base": "mel", "n_mels": 32 + i % 64} for i in range(n_variants)],
            "methods": [{"name": f"m{i}", "method": "mfcc"} for i in range(n_methods)], **extra}


def test_j04_a_million_run_grid_is_refused_at_once(tmp_path):
    """1,000 variants x 1,000 methods x 1 fold: not refused, no output after 90 s, RSS growing; killed."""
    import yaml

    from soundlib.sweep.config import SweepConfig, load_sweep_config

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"at least 1,000,000 runs \(1,000 variant\(s\) x 1,000 method\(s\) x at least "
                                          r"one fold\), more than max_runs 10,000; .*--max-runs"):
        SweepConfig.from_dict(_grid(1000, 1000))
    assert time.monotonic() - t0 < 5
    path = tmp_path / "j04.yaml"
    path.write_text(yaml.safe_dump(_grid(1000, 1000)))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "soundlib.cli", "sweep", str(path), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and time.monotonic() - t0 < 30
    assert r.stderr.strip().count("\n") == 0 and "1,000,000 runs" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    # the limit is the file's max_runs, or --max-runs / max_runs= over it
    grid = _grid(101, 100, folds=[1])
    with pytest.raises(ConfigError, match="10,100 runs"):
        SweepConfig.from_dict(grid)
    assert SweepConfig.from_dict({**grid, "max_runs": 20_000}).planned_runs() == 10_100
    path.write_text(yaml.safe_dump(grid))
    config = load_sweep_config(path, max_runs=10_100)
    assert config.max_runs == 10_100 and SweepConfig.from_dict(config.to_dict()).max_runs == 10_100
    with pytest.raises(ConfigError, match="20,000 runs"):  # the exact count, with the folds and restrictions
        SweepConfig.from_dict(_grid(100, 100, folds=[1, 2]))
    restricted = _grid(200, 100)
    restricted["methods"] = [{**m, "variants": ["v0"]} for m in restricted["methods"]]
    assert SweepConfig.from_dict(restricted).planned_runs() == 100


def test_j04_the_count_with_the_dataset_s_folds_is_checked_before_planning(tmp_path, monkeypatch):
    from soundlib import sweep
    from soundlib.sweep import driver
    from soundlib.sweep.config import SweepConfig

    from .conftest import tone_manifest

    manifest = tone_manifest(tmp_path / "data", [(f"{i}.wav", "ab"[i % 2], 1 + i % 3) for i in range(6)])
    config = SweepConfig.from_dict({"dataset": str(manifest), "variants": ["mel", "linear"], "methods": ["mfcc"],
                                    "max_runs": 5})
    monkeypatch.setattr(driver, "_plan", lambda *a, **k: pytest.fail("planned a grid above max_runs"))
    with pytest.raises(ConfigError, match=r"6 runs \(2 variant\(s\) x 1 method\(s\) x 3 fold\(s\)\), more than "
                                          r"max_runs 5"):
        sweep.run(config, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "sweep.yaml").exists()
    with pytest.raises(ConfigError, match="max_runs 4"):
        sweep.run(config.__class__.from_dict({**config.to_dict(), "max_runs": 10}), out_dir=tmp_path / "out2",
                  progress=False, max_runs=4)


class _Server:
    """A TCP server on 127.0.0.1 that does ``answer(conn)`` with every connection (in a daemon thread)."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.answer(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (J08): it waits for a request line, as Dask's client waits for a greeting."""
    import http.server

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _sweep_cli(tmp_path: Path, scheduler: str, timeout: str = "1") -> tuple[subprocess.CompletedProcess, float]:
    params = tmp_path / "s.yaml"
    params.write_text("synth: {clips_per_class: 2, duration: 1.0}\nfolds: [1]\nmethods: [mfcc]\n")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "soundlib.cli", "sweep", str(params), "--out", str(tmp_path / "out"),
                        "--scheduler", scheduler, "--quiet"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SOUNDLIB_SCHEDULER_TIMEOUT": timeout})
    return r, time.monotonic() - t0


def test_j08_an_http_server_as_scheduler_is_one_line_within_the_deadline(tmp_path, http_server):
    """`--scheduler tcp://127.0.0.1:8765` (an HTTP server): no message, no exit within 150 s (killed)."""
    r, seconds = _sweep_cli(tmp_path, http_server)
    assert r.returncode == 2 and seconds < 30, (seconds, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{http_server}: no Dask scheduler answered within 1 s" in lines[0], r.stderr


def test_j07_a_malformed_scheduler_is_one_line_at_once(tmp_path, capsys):
    """`--scheduler 'not a url'`: traceback `ValueError: missing port number`, then the process hung."""
    from soundlib import sweep
    from soundlib.sweep.executors import parse_scheduler

    for bad, why in [("not a url", "not an address"), ("tcp://host", "not an address"),
                     ("http://127.0.0.1:8786", "unknown scheme 'http://'"), ("tcp://127.0.0.1:0", "port 0 is not"),
                     ("tcp://127.0.0.1:70000", "port 70000 is not"), (8786, "expected tcp://HOST:PORT")]:
        with pytest.raises(ConfigError, match=why):
            parse_scheduler(bad)
    assert parse_scheduler("127.0.0.1:8786") == ("tcp", "127.0.0.1", 8786)
    assert parse_scheduler("tls://[::1]:8786") == ("tls", "[::1]", 8786)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--scheduler", "not a url"])
    assert exit_info.value.code == 2
    assert "argument --scheduler: scheduler (--scheduler) 'not a url': not an address" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not an address"):  # the library checks it before anything else
        sweep.run(tmp_path / "missing.yaml", out_dir=tmp_path / "o", scheduler="not a url", progress=False)
    assert not (tmp_path / "o").exists()


def _connect_fails(address: str, match: str) -> float:
    from soundlib.sweep.executors import connect_scheduler

    before = {t for t in threading.enumerate() if not t.daemon}
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=match):
        connect_scheduler(address, timeout=1)
    seconds = time.monotonic() - t0
    time.sleep(0.2)
    assert {t for t in threading.enumerate() if not t.daemon} <= before  # nothing left running
    return seconds


def test_j06_a_server_answering_garbage_is_one_line(tmp_path):
    """A server that is not Dask answered (J06, a proxy): traceback `_ArrayMemoryError: Unable to allocate 3.07 EiB`
    after 62 s; Dask read its text as a frame length."""
    srv = _Server(lambda c: c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"))
    try:
        assert _connect_fails(f"tcp://127.0.0.1:{srv.port}", r"not a Dask scheduler \(it answered b'HTTP/1.0'") < 5
    finally:
        srv.close()
    silent_close = _Server(lambda c: c.close())
    try:
        assert _connect_fails(f"tcp://127.0.0.1:{silent_close.port}", "closed the connection") < 5
    finally:
        silent_close.close()


def test_j06_a_server_that_greets_then_stalls_is_cut_at_the_deadline():
    """Past the greeting, Dask's own connection runs under the deadline too."""
    greeting = b"\x83\xabcompression\xc0\xa6python\x93\x03\x0b\x07\xafpickle-protocol\x05"
    frames = (1).to_bytes(8, "little") + len(greeting).to_bytes(8, "little") + greeting
    srv = _Server(lambda c: c.sendall(len(frames).to_bytes(8, "little") + frames))
    try:
        assert _connect_fails(f"tcp://127.0.0.1:{srv.port}", "no connection within 1 s") < 10
    finally:
        srv.close()


def test_j05_a_closed_port_fails_at_once_and_a_real_scheduler_connects():
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from soundlib.sweep.executors import connect_scheduler

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _connect_fails(f"tcp://127.0.0.1:{closed}", "cannot reach the Dask scheduler .*: connection refused") < 5
    for protocol in ("tcp://", "inproc://"):
        with LocalCluster(n_workers=0, processes=False, protocol=protocol, dashboard_address=None) as cluster:
            assert cluster.scheduler_address.startswith(protocol)
            client = connect_scheduler(cluster.scheduler_address, timeout=10)
            try:
                assert client.scheduler_info()["address"] == cluster.scheduler_address
            finally:
                client.close()


def test_scheduler_timeout_is_checked(monkeypatch):
    from soundlib.sweep.executors import DEFAULT_SCHEDULER_TIMEOUT, scheduler_timeout

    monkeypatch.delenv("SOUNDLIB_SCHEDULER_TIMEOUT", raising=False)
    assert scheduler_timeout() == DEFAULT_SCHEDULER_TIMEOUT and scheduler_timeout(2) == 2.0
    monkeypatch.setenv("SOUNDLIB_SCHEDULER_TIMEOUT", "0.5")
    assert scheduler_timeout() == 0.5
    for bad in ("0", "nan", "soon", "1e9"):
        monkeypatch.setenv("SOUNDLIB_SCHEDULER_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="SOUNDLIB_SCHEDULER_TIMEOUT"):
            scheduler_timeout()
