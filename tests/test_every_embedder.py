"""Every registered embedder through every entry point (issue 21 item 4: no picture-only path left).

The embedders are :func:`soundlib.embedders.embedder_names` read when the tests are collected, plus a local
SavedModel folder (the handle any TF2 picture backbone can be given as): a newly registered embedder is
walked through every entry point below without anyone adding it here, so it cannot be half-integrated.
An embedder is skipped only when its weights are not installed here (the reason says which), and an entry
point that does not apply to an embedder must refuse it clearly (``export --tflite``, ``tag``), which is
checked too.

Entry points, one test each: ``evaluate --method frozen --backbone E`` and ``evaluate --method E``;
``train --test-fold K`` (the exported model must label the test fold as the run measured it) and
``train --all-folds --cv-from``; ``predict`` (files, a folder, ``--timeline``, ``--events``, ``--raven`` with
the band of the model's own sample rate); ``info`` and ``MODEL_CARD.md`` (the input as the embedder takes
it); ``embed`` (the cache) and ``embed --export``; ``export --tflite``; the Python API
(``load_model(...).predict_proba(waveform, sr)``); ``sweep`` with ``backbone: E`` and with ``methods: [E]``;
``train.ipynb`` with ``method=E`` through papermill; ``tag --model``.

Data: 3 classes x 6 clips of 1 s (tones in noise, a recording per clip), 3 folds. The embedded
EfficientNet-Lite0 (float and int8) runs on stand-in weights (a tiny random SavedModel exported where the
real one would be, in this module's own cache): every code path its name takes is walked, without the
minutes its real export and conversions cost; ``SOUNDLIB_TEST_REAL_WEIGHTS=1`` walks the real weights.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import os
from pathlib import Path

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.embedders import embedder_entry, embedder_names, resolve_embedder

from .conftest import SR, tone, write_csv, write_wav

#: The parameter that stands for a local SavedModel folder (a stand-in picture backbone with its own input size).
SAVEDMODEL = "savedmodel_folder"
#: Every registered embedder, read at collection time, and the SavedModel folder handle.
EMBEDDERS = (*embedder_names(), SAVEDMODEL)
#: Embedders whose walk costs more than a few seconds each (they run in the slow suite).
_COSTLY = {"birdnet", "yamnet", "mn04", "efficientnet_lite0", "efficientnet_lite0_int8", SAVEDMODEL}
CLASSES = {"low": 300.0, "mid": 1200.0, "high": 4000.0}
slow = pytest.mark.slow


def params(*, all_slow: bool = False):
    """Every embedder, the costly ones (or all, for a costly entry point) marked slow."""
    return [pytest.param(name, marks=[slow] if all_slow or name in _COSTLY else [], id=name) for name in EMBEDDERS]


# ---------------------------------------------------------------------------
# The walk's shared state: the data, the stand-in backbones, each embedder's runs (made when first needed)


def _hub_cached(handle: str) -> str | None:
    """Why a TF Hub / Kaggle handle is not installed here (``None``: it is in the TF Hub cache)."""
    import tempfile

    from soundlib.embedders.backbones import HUB_ALIASES

    url = HUB_ALIASES.get(handle, (handle, 0))[0]
    cache = Path(os.environ.get("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "tfhub_modules")
    if (cache / hashlib.sha1(url.encode()).hexdigest() / "saved_model.pb").is_file():
        return None
    return f"{handle}: its weights ({url}) are not in the TF Hub cache {cache} (downloaded on first use, with internet)"


def missing_weights(name: str) -> str | None:
    """Why embedder ``name`` cannot run here for want of its weights (``None``: it can)."""
    if name == SAVEDMODEL:
        return None
    emb = resolve_embedder(name)
    reason = getattr(emb, "unavailable", lambda: None)()
    if reason:
        return reason
    from soundlib.embedders.backbones import EMBEDDED_BACKBONES

    if emb.modality == "picture" and name not in EMBEDDED_BACKBONES and not Path(name).exists():
        return _hub_cached(name)
    return None


class Walk:
    """The data and every embedder's runs, made once per module when a test first needs them."""

    def __init__(self, root: Path):
        self.root = root
        self.tiny = root / "savedmodel"
        self.data = root / "data"
        self.manifest = self._corpus()
        self.long = write_wav(root / "inputs" / "long.wav", np.concatenate(
            [tone(CLASSES["low"], seconds=1.5, seed=90, noise=0.05), tone(CLASSES["high"], seconds=1.5, seed=91,
                                                                          noise=0.05)]))
        self.folder = root / "inputs" / "folder"
        for i, label in enumerate(("mid", "high")):
            write_wav(self.folder / f"{label}.wav", tone(CLASSES[label] * 1.01, seconds=1.0, seed=80 + i, noise=0.05))
        self._done: dict[tuple[str, str], Path] = {}

    def _corpus(self) -> Path:
        rows = []
        for c, (label, freq) in enumerate(CLASSES.items()):
            for i in range(6):
                rng = np.random.default_rng(100 * c + i)
                y = tone(freq * (1 + 0.02 * i), seconds=1.0, seed=100 * c + i, noise=0.15)
                y += 0.2 * tone(rng.uniform(200, 6000), seconds=1.0, seed=7 + i, noise=0.0)  # a distractor
                write_wav(self.data / "audio" / f"{label}{i}.wav", y)
                rows.append((f"audio/{label}{i}.wav", label, i % 3 + 1, f"{label}-rec{i}"))
        return write_csv(self.data / "manifest.csv", ("path", "label", "fold", "group"), rows)

    def pictures(self) -> None:
        """The stand-in backbones (made with TensorFlow, so only when a picture embedder is walked): a SavedModel
        folder taking 32x32 pictures (not the variant's 224: resized), and unless SOUNDLIB_TEST_REAL_WEIGHTS=1 stand-in
        weights for the embedded EfficientNet-Lite0, exported where the real ones would be, in this module's cache."""
        from soundlib.embedders.backbones import save_tiny_backbone
        from soundlib.embedders.handles import embedded_dir

        if os.environ.get("SOUNDLIB_TEST_REAL_WEIGHTS") != "1":
            save_tiny_backbone(embedded_dir("efficientnet_lite0"), input_size=224)
        save_tiny_backbone(self.tiny, input_size=32)

    def handle(self, name: str) -> str:
        return str(self.tiny) if name == SAVEDMODEL else name

    def out(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def once(self, what: str, name: str, make) -> Path:
        """``make()`` the first time (it must leave its folder), that folder afterwards."""
        key = (what, name)
        if key not in self._done:
            self._done[key] = make()
        return self._done[key]

    def evaluated(self, name: str) -> Path:
        """``evaluate --method frozen --backbone E``'s folder."""
        def make():
            out = self.out("eval", name)
            code, _, err = cli("evaluate", self.manifest, "--method", "frozen", "--backbone", self.handle(name),
                               "--out", out, "--quiet")
            assert code == 0, err
            return out
        return self.once("evaluate", name, make)

    def trained(self, name: str) -> Path:
        """``train --test-fold 1`` (with ``--method E`` for a registered name: the alias)'s folder."""
        def make():
            out = self.out("train", name)
            how = ["--backbone", self.handle(name)] if name == SAVEDMODEL else ["--method", name]
            code, _, err = cli("train", self.manifest, *how, "--test-fold", "1", "--out", out, "--quiet")
            assert code == 0, err
            return out
        return self.once("train", name, make)


def cli(*args) -> tuple[int, str, str]:
    """Run ``soundlib ARGS`` in this process: ``(exit status, stdout, stderr)``."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse refusing an option
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def walk(tmp_path_factory, cache) -> Walk:
    """The data, in this module's own cache (stand-in backbones there: :meth:`Walk.pictures`); the embedded
    backbones loaded in this process are forgotten before and after."""
    from soundlib.embedders import backbones

    def forget_embedded():
        for key in [k for k in backbones._LOADED if "embedded:" in k]:
            backbones._LOADED.pop(key)

    forget_embedded()  # a backbone another module loaded must not stand in for this module's
    old = os.environ.get("SOUNDLIB_WAVEFORM_TFLITE")
    os.environ["SOUNDLIB_WAVEFORM_TFLITE"] = "0"  # `export --tflite` is walked on its own
    yield Walk(tmp_path_factory.mktemp("every"))
    forget_embedded()
    if old is None:
        os.environ.pop("SOUNDLIB_WAVEFORM_TFLITE", None)
    else:
        os.environ["SOUNDLIB_WAVEFORM_TFLITE"] = old


@pytest.fixture
def name(request, walk) -> str:
    """The embedder of the test (skipped, with the reason, when its weights are not installed)."""
    n = request.param
    reason = missing_weights(n)
    if reason:
        pytest.skip(f"weights not installed: {reason}")
    if n == SAVEDMODEL or embedder_entry(n).modality == "picture":
        walk.pictures()
    return n


def embedder_of(walk: Walk, name: str):
    return resolve_embedder(walk.handle(name))


def window_of(walk: Walk, name: str, run: Path):
    """The windows embedder ``name`` takes for the variant of the run in ``run``."""
    from soundlib.pictures.variants import FeatureSpec

    results = run / "results.json" if (run / "results.json").is_file() else run / "model" / "feature_spec.json"
    d = json.loads(results.read_text())
    spec = FeatureSpec.from_dict(d.get("feature_spec", d))
    return embedder_of(walk, name).window(spec)


def read_rows(path: Path, delimiter: str = ",") -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


# ---------------------------------------------------------------------------
# evaluate


@pytest.mark.parametrize("name", params(), indirect=True)
def test_evaluate_frozen_on_the_embedder(walk, name):
    out = walk.evaluated(name)
    results = json.loads((out / "results.json").read_text())
    assert results["backbone"] == embedder_of(walk, name).identity
    assert results["features"]["modality"] == (embedder_entry(name).modality if name != SAVEDMODEL else "picture")
    assert sorted(f["fold"] for f in results["per_fold"]) == [1, 2, 3]
    rows = read_rows(out / "predictions.csv")
    assert len(rows) == 18
    assert np.allclose([sum(float(r[f"p_{c}"]) for c in CLASSES) for r in rows], 1.0, atol=1e-4)


@pytest.mark.parametrize("name", params(), indirect=True)
def test_evaluate_method_named_after_the_embedder(walk, name):
    if name == SAVEDMODEL:
        pytest.skip("not applicable: a SavedModel folder is a backbone handle, not a method name")
    out = walk.out("eval_alias", name)
    code, stdout, err = cli("evaluate", walk.manifest, "--method", name, "--out", out, "--quiet")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["backbone"] == embedder_of(walk, name).identity
    assert f"mel / {name}:" in stdout


# ---------------------------------------------------------------------------
# train and the exported model


def _labelled(walk: Walk, model: Path, paths: list[str]) -> dict[str, dict[str, float]]:
    from soundlib.models import load_model, predict

    rows, failures = predict(load_model(model), paths, top_k=len(CLASSES))
    assert not failures
    got: dict[str, dict[str, float]] = {}
    for r in rows:
        got.setdefault(r["input"], {})[r["label"]] = r["probability"]
    return got


@pytest.mark.parametrize("name", params(), indirect=True)
def test_train_exports_the_model_it_measured(walk, name):
    run = walk.trained(name)
    model = run / "model"
    assert (model / "MODEL_CARD.md").is_file() and (model / "labels.txt").read_text().split() == sorted(CLASSES)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["exported"] and metrics["backbone"] == embedder_of(walk, name).identity
    # the shipped model labels the test fold as the run measured it: same embeddings, windows and head
    rows = read_rows(run / "predictions.csv")
    got = _labelled(walk, model, [r["path"] for r in rows])
    worst = max(abs(got[r["path"]][c] - float(r[f"p_{c}"])) for r in rows for c in CLASSES)
    assert worst < 1e-3, f"the exported model's probabilities differ from the run's by {worst:.3g}"


@pytest.mark.parametrize("name", params(), indirect=True)
def test_train_all_folds_with_cv_from(walk, name):
    evaluated = walk.evaluated(name)
    out = walk.out("all_folds", name)
    code, stdout, err = cli("train", walk.manifest, "--backbone", walk.handle(name), "--all-folds", "--cv-from",
                            evaluated, "--out", out, "--quiet")
    assert code == 0, err
    assert "cross-validated accuracy" in stdout
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "cross-validated accuracy" in card and "no test fold" in card
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == embedder_of(walk, name).identity and metrics["test_fold"] is None


# ---------------------------------------------------------------------------
# predict, info, the model card, the Python API


@pytest.mark.parametrize("name", params(), indirect=True)
def test_predict_files_folders_timeline_events_raven(walk, name, tmp_path):
    from soundlib.models import load_model

    model = walk.trained(name) / "model"
    loaded = load_model(model)
    code, stdout, err = cli("predict", model, walk.long, walk.folder, "--top-k", "2", "--quiet",
                            "--timeline", tmp_path / "t.csv", "--events", tmp_path / "e.csv",
                            "--raven", tmp_path / "r.txt", "--threshold", "0.3")
    assert code == 0, err
    assert "3 file(s) labelled, 0 failed" in stdout
    timeline = read_rows(tmp_path / "t.csv")
    assert {r["input"] for r in timeline} == {str(walk.long), *(str(p) for p in sorted(walk.folder.iterdir()))}
    assert max(float(r["end"]) for r in timeline if r["input"] == str(walk.long)) == pytest.approx(3.0, abs=0.6)
    events = read_rows(tmp_path / "e.csv")
    assert events and {r["label"] for r in events} <= set(CLASSES)
    raven = read_rows(tmp_path / "r.txt", delimiter="\t")
    assert len(raven) == len(events)
    assert {float(r["High Freq (Hz)"]) for r in raven} == {loaded.sr / 2}  # the model's own Nyquist frequency
    code, stdout, err = cli("predict", model, walk.long)  # a plain call, no table
    assert code == 0 and "1." in stdout, err


@pytest.mark.parametrize("name", params(), indirect=True)
def test_info_and_model_card_state_the_input_the_embedder_takes(walk, name):
    run = walk.trained(name)
    code, stdout, err = cli("info", run)
    assert code == 0, err + stdout
    window = window_of(walk, name, run)
    seconds = window.n_samples / window.sr
    card = (run / "model" / "MODEL_CARD.md").read_text()
    section = card.split("## Input and windowing", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in stdout.splitlines() if x.startswith("input:"))
    for text in (line, section):
        assert f"{window.sr} Hz" in text and f"{seconds:g}-s windows" in text.replace(".0-s", "-s")
        picture = "rendered as a" in text
        assert picture == (embedder_of(walk, name).modality == "picture"), text
    has_savedmodel = (run / "model" / "saved_model").is_dir()
    assert ("`saved_model/`" in card.split("## Files", 1)[1]) == has_savedmodel
    runs_on = next(x for x in stdout.splitlines() if x.startswith("method:"))
    assert has_savedmodel or "SavedModel" not in runs_on.replace("no SavedModel", ""), runs_on


@pytest.mark.parametrize("name", params(), indirect=True)
def test_python_api_predict_proba_on_arrays(walk, name):
    import soundfile as sf

    from soundlib.models import load_model

    model = load_model(walk.trained(name) / "model")
    y, sr = sf.read(str(walk.long), dtype="float32")
    p = model.predict_proba(y, sr)
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0, abs=1e-4)
    from_file = _labelled(walk, walk.trained(name) / "model", [str(walk.long)])[str(walk.long)]
    assert np.allclose(p, [from_file[c] for c in model.labels], atol=1e-4)
    batch = model.predict_proba([y[:SR], y[-SR:]], sr)
    assert batch.shape == (2, 3) and np.allclose(batch.sum(axis=1), 1.0, atol=1e-4)


# ---------------------------------------------------------------------------
# embed


@pytest.mark.parametrize("name", params(), indirect=True)
def test_embed_fills_the_cache_and_says_with_what(walk, name):
    walk.evaluated(name)  # evaluate embedded every clip: embed finds them in the cache
    code, stdout, err = cli("embed", walk.manifest, "--backbone", walk.handle(name), "--quiet")
    assert code == 0, err
    window = window_of(walk, name, walk.evaluated(name))
    line = stdout.strip().splitlines()[-1]
    assert "18 from cache, 0 computed, 0 failed" in line
    assert f"({window.n_samples / window.sr:g}-s window) with {embedder_of(walk, name).name} " in line, line
    assert f"{window.sr} Hz" in line, line


@pytest.mark.parametrize("name", params(), indirect=True)
def test_embed_export_writes_the_embeddings(walk, name, tmp_path):
    from soundlib.lab.embedmap import read_npz

    out = tmp_path / "e.npz"
    code, stdout, err = cli("embed", walk.manifest, "--backbone", walk.handle(name), "--export", out, "--quiet")
    assert code == 0, err
    table = read_npz(out)
    emb = embedder_of(walk, name)
    assert table.backbone == emb.identity and len(table) == 18 and np.isfinite(table.embeddings).all()
    assert table.embeddings.shape[1] == emb.load().output_dim
    window = window_of(walk, name, walk.evaluated(name))
    with np.load(out) as z:  # the windows the embedder took, as numpy.load reads them
        stated = json.loads(str(z["window"]))
    assert stated["sr"] == window.sr and stated["duration"] == pytest.approx(window.n_samples / window.sr)
    assert stated["embedder"] == emb.name and stated["modality"] == emb.modality
    assert f"({stated['duration']:g}-s window) with {emb.name} ({emb.modality}, {window.sr} Hz)" in stdout


# ---------------------------------------------------------------------------
# export --tflite


@pytest.mark.parametrize("name", params(all_slow=True), indirect=True)
def test_export_tflite_or_a_clear_refusal(walk, name, tmp_path):
    from soundlib.models import load_model
    from soundlib.models.tflite_export import unsupported

    model = walk.trained(name) / "model"
    loaded = load_model(model)
    record = loaded.info.get("embedder") if loaded.info.get("kind") == "embedder" else None
    why = (unsupported(embedder=record["name"], options=record.get("options")) if record
           else unsupported(spec=loaded.spec))
    out = tmp_path / "m.tflite"
    code, stdout, err = cli("export", model, "--tflite", out)
    if why is None:
        assert code == 0, err
        assert out.is_file() and f"at {loaded.sr} Hz" in stdout
    else:  # not applicable: the one-line refusal that says why, nothing written
        assert code == 2 and not out.exists()
        assert err.strip().splitlines()[-1] == f"soundlib export: error: {model}: {why}"
        assert "Traceback" not in err


# ---------------------------------------------------------------------------
# sweeps and the train notebook


def _sweep(walk: Walk, out: Path, **keys) -> tuple[int, str, str]:
    import yaml

    config = {"dataset": str(walk.manifest), "variants": ["mel"], "folds": [1], "export_model": False, **keys}
    path = out.with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return cli("sweep", path, "--out", out, "--jobs", "2", "--quiet")


@pytest.mark.parametrize("name", params(all_slow=True), indirect=True)
def test_sweep_with_the_embedder_as_backbone(walk, name):
    out = walk.out("sweep_backbone", name)
    code, stdout, err = _sweep(walk, out, backbone=walk.handle(name), methods=["frozen"])
    assert code == 0, err + stdout
    assert "1 run(s) executed, 0 already complete, 0 failed" in stdout
    metrics = json.loads((out / "mel" / "frozen" / "fold1" / "metrics.json").read_text())
    assert metrics["backbone"] == embedder_of(walk, name).identity


@pytest.fixture(scope="module")
def methods_sweep(walk) -> tuple[Path, int, str]:
    """One sweep whose methods are every installed registered embedder's name (train.ipynb runs each)."""
    names = [n for n in EMBEDDERS if n != SAVEDMODEL and not missing_weights(n)]
    walk.pictures()  # the picture embedders among them run on the stand-ins
    out = walk.out("sweep_methods", "all")
    code, stdout, err = _sweep(walk, out, methods=names)
    return out, code, stdout + err


@pytest.mark.parametrize("name", params(all_slow=True), indirect=True)
def test_sweep_with_the_embedder_as_method(walk, name, methods_sweep):
    if name == SAVEDMODEL:
        pytest.skip("not applicable: a SavedModel folder is a backbone handle, not a method name")
    out, _, log = methods_sweep
    run = out / "mel" / name / "fold1"
    assert (run / "metrics.json").is_file(), log
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backbone"] == embedder_of(walk, name).identity
    table = (out / "results.md").read_text()
    assert f"| mel | {name} | 1 |" in table


@pytest.mark.parametrize("name", params(all_slow=True), indirect=True)
def test_train_notebook_with_the_embedder_as_method(walk, name, methods_sweep):
    """train.ipynb through papermill with ``method=E`` (the sweep above ran it so): it runs, and it says
    which embedder it ran on."""
    if name == SAVEDMODEL:
        pytest.skip("not applicable: a SavedModel folder is a backbone handle, not a method name")
    out, _, log = methods_sweep
    nb = json.loads((out / "mel" / name / "fold1" / "train.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    text = "".join("".join(o.get("text", "")) for o in outputs)
    header = next(x for x in text.splitlines() if x.startswith("method "))  # "method E (..., embedder E (...))"
    assert f"method {name} " in header and f"embedder {name} " in header, header
    assert "test fold 1" in text
    others = [n for n in EMBEDDERS if n != name and re.search(rf"(backbone|embedder) {re.escape(n)}\b", text)]
    assert not others, f"train.ipynb names {others[0]} for method={name}: {header}"


# ---------------------------------------------------------------------------
# tag (the AudioSet taggers only)


@pytest.mark.parametrize("name", params(), indirect=True)
def test_tag_with_the_embedder(walk, name, tmp_path):
    from soundlib.models.tag import TAGGERS

    code, stdout, err = cli("tag", walk.long, "--model", walk.handle(name), "--top-k", "2", "--csv", tmp_path / "t.csv")
    if name in TAGGERS:
        assert code == 0, err
        rows = read_rows(tmp_path / "t.csv")
        assert {r["level"] for r in rows} == {"clip", "frame"} and all(0 <= float(r["score"]) <= 1 for r in rows)
    else:  # not applicable: only the AudioSet networks tag; refused by name, nothing written
        assert code == 2 and "invalid choice" in err and not (tmp_path / "t.csv").exists()
