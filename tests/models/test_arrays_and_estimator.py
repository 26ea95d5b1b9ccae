"""Arrays in (issue 23 item 4, desk review F8): ``LoadedModel.predict_proba(waveform, sr)`` / ``model(waveform,
sr)`` for any embedder, and ``soundlib.SoundClassifier``, a scikit-learn estimator over soundlib's methods."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from soundlib.audio.loaders import load_dataset
from soundlib.errors import FeatureError, InputError
from soundlib.evaluation.evaluate import EvalConfig
from soundlib.models.label import predict
from soundlib.models.load import load_model
from soundlib.models.train import train_fold

from ..conftest import small_spec


@pytest.fixture(scope="module")
def waveform_model(tmp_path_factory, synth_corpus, cache):
    out = tmp_path_factory.mktemp("arrays_wave")
    train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
               config=EvalConfig(method={"name": "m", "method": "frozen", "backbone": "mfcc"}))
    return load_model(out)


@pytest.fixture(scope="module")
def picture_model(tmp_path_factory, synth_corpus, tiny_backbone, cache):
    from soundlib.methods.train import TrainConfig
    from soundlib.pictures.variants import register_variant

    spec = register_variant(small_spec().replace(name="mel32"), overwrite=True)
    out = tmp_path_factory.mktemp("arrays_picture")
    train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
               config=EvalConfig(spec=spec, backbone=str(tiny_backbone), train=TrainConfig(epochs=2)))
    return load_model(out)


def _long_file(tmp_path, synth_corpus, sr=44100):
    """A 3-s recording of three synthetic clips written at ``sr`` (the models take 22.05 kHz)."""
    import soxr

    ds = load_dataset(synth_corpus)
    parts = []
    for label in ("siren", "dog_bark", "jackhammer"):
        y, file_sr = sf.read(str(next(c.path for c in ds.clips if c.label == label)), dtype="float32")
        parts.append(soxr.resample(y, file_sr, sr, quality="HQ"))
    y = np.concatenate(parts).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(str(path), y, sr, subtype="FLOAT")
    return path, y, sr


@pytest.mark.parametrize("which", ["waveform_model", "picture_model"])
def test_predict_proba_of_an_array_matches_the_file(which, request, tmp_path, synth_corpus):
    model = request.getfixturevalue(which)
    path, y, sr = _long_file(tmp_path, synth_corpus)
    rows, failures = predict(model, [path], top_k=len(model.labels))
    assert not failures
    from_file = np.array([next(r["probability"] for r in rows if r["label"] == lab) for lab in model.labels])
    p = model.predict_proba(y, sr)  # resampled 44.1 -> 22.05 kHz inside, windowed like the file
    assert p.shape == (len(model.labels),) and p.sum() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(p, from_file, atol=2e-3)
    np.testing.assert_allclose(model(y, sr), p, atol=1e-6)
    batch = model.predict_proba([y, y[: len(y) // 3]], sr)
    assert batch.shape == (2, len(model.labels))
    np.testing.assert_allclose(batch[0], p, atol=1e-6)
    two_d = model.predict_proba(np.stack([y, y]), sr)
    np.testing.assert_allclose(two_d, np.stack([p, p]), atol=1e-6)
    win, starts = model.window_proba(y, sr)
    assert len(win) == len(starts) > 1 and starts[0] == 0.0


def test_predict_proba_refuses_what_is_not_a_waveform(waveform_model):
    y = np.zeros(22050, np.float32)
    y[::50] = 0.5
    with pytest.raises(FeatureError, match="sr must be the waveform's sample rate in Hz"):
        waveform_model.predict_proba(y, 0)
    with pytest.raises(FeatureError, match=r"1-D \(one clip\) or 2-D \(one clip per row\), got shape \(2, 2, 10\)"):
        waveform_model.predict_proba(np.zeros((2, 2, 10)), 22050)
    with pytest.raises(FeatureError, match=r"a waveform must be 1-D \(mono samples\), got shape \(2, 10\)"):
        waveform_model.predict_proba([np.zeros((2, 10))], 22050)
    with pytest.raises(FeatureError, match="NaN or infinite"):
        waveform_model.predict_proba(np.full(100, np.nan), 22050)
    with pytest.raises(FeatureError, match="no samples"):
        waveform_model.predict_proba(np.zeros(0), 22050)


def test_import_soundlib_stays_light_and_exports_the_estimator_lazily():
    code = ("import sys, soundlib; heavy = [m for m in ('sklearn', 'numpy', 'soundlib.models') if m in sys.modules]; "
            "print(heavy); print(soundlib.SoundClassifier.__module__); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "soundlib.models.estimator", "True"]


def _corpus_arrays(synth_corpus, n_classes=5):
    ds = load_dataset(synth_corpus)
    ds = ds.subset(labels=ds.classes[:n_classes])
    X = [sf.read(str(c.path), dtype="float32")[0] for c in ds.clips]
    return ds, X, np.array([c.label for c in ds.clips]), np.array([c.group for c in ds.clips])


def test_sound_classifier_fits_arrays_and_paths_and_cross_validates_by_recording(synth_corpus, cache):
    from sklearn.model_selection import GroupKFold, cross_val_score

    from soundlib import SoundClassifier

    ds, X, y, groups = _corpus_arrays(synth_corpus)
    clf = SoundClassifier(method="mfcc", sr=22050)
    assert clf.fit(X, y, groups=groups) is clf
    assert list(clf.classes_) == sorted(set(y))
    proba = clf.predict_proba(X[:6])
    assert proba.shape == (6, len(clf.classes_)) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)
    assert list(clf.predict(X[:6])) == list(clf.classes_[proba.argmax(1)])
    assert clf.score(X, y) > 0.9  # its own training sounds
    assert "C" in clf.choice_ and "temperature" in clf.choice_
    by_path = SoundClassifier(method="mfcc").fit([c.path for c in ds.clips], y, groups=groups)
    np.testing.assert_allclose(by_path.predict_proba([c.path for c in ds.clips[:6]]), proba, atol=1e-4)
    scores = cross_val_score(SoundClassifier(method="mfcc", sr=22050), np.array(X, dtype=object), y, groups=groups,
                             cv=GroupKFold(3))
    assert scores.shape == (3,) and scores.mean() > 0.5  # 5 classes: chance is 0.2
    ids = np.searchsorted(np.unique(y), y)  # integer labels come back as integers
    assert clf.fit(X, ids, groups=groups).predict(X[:2]).dtype.kind == "i"


def test_sound_classifier_errors_say_what_was_expected(synth_corpus, cache):
    from soundlib import SoundClassifier
    from soundlib.errors import ConfigError

    _, X, y, _ = _corpus_arrays(synth_corpus)
    with pytest.raises(ConfigError, match=r"SoundClassifier\(sr=...\) is needed for sounds given as arrays"):
        SoundClassifier(method="mfcc").fit(X, y)
    with pytest.raises(InputError, match="X has 40 sounds but y has 39 labels"):
        SoundClassifier(method="mfcc", sr=22050).fit(X, y[:-1])
    with pytest.raises(InputError, match="got one 1-D array of numbers"):
        SoundClassifier(method="mfcc", sr=22050).fit(X[0], y[:1])
    with pytest.raises(ValueError, match="y has 1 class"):  # an InputError is a ValueError, as sklearn expects
        SoundClassifier(method="mfcc", sr=22050).fit(X[:3], ["a", "a", "a"])
    with pytest.raises(ConfigError, match="unknown method kind 'nope'"):
        SoundClassifier(method="nope", sr=22050).fit([X[0], X[-1]], [y[0], y[-1]])


#: scikit-learn checks that do not apply to sounds, and why (every other check runs and passes).
NOT_APPLICABLE = {
    # a sound has any number of samples: there is no fixed number of features to record or to check
    "check_n_features_in_after_fitting": "sounds have any length: no n_features_in_",
    "check_n_features_in": "sounds have any length: no n_features_in_",
    "check_classifiers_train": "asks for an error when predict gets another number of features (samples): "
                               "sounds of any length are valid input",
    # the checks' integer matrices hold rows of zeros: a silent sound is refused, as soundlib refuses silent files
    "check_estimators_dtypes": "a row of zeros is a silent sound, which is refused",
}


def _checked():
    from sklearn.utils.estimator_checks import parametrize_with_checks

    from soundlib import SoundClassifier

    return parametrize_with_checks([SoundClassifier(method="mfcc", sr=8000)],
                                   expected_failed_checks=lambda est: NOT_APPLICABLE)


@pytest.mark.slow
@_checked()
def test_scikit_learn_checks(estimator, check, cache):
    """scikit-learn's estimator checks on rows of a 2-D array as waveforms at 8 kHz (the only numeric input
    its checks make): API, cloning, pickling, fit idempotence, sample order, errors for bad X and y..."""
    check(estimator)
