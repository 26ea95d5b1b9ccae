"""Calibrated probabilities (issue 23 item 2, desk review F5): ties in C go to the better validation
log-loss, a temperature fitted on the validation recordings divides the logits, and it travels with
the head into exported models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundlib.errors import ModelError
from soundlib.evaluation.metrics import expected_calibration_error
from soundlib.methods.base import Features, FoldSplit
from soundlib.methods.heads import TEMPERATURE_BOUNDS, fit_logistic_head, fit_temperature, log_loss


def blobs(n_per=40, n_classes=3, dim=6, seed=0, spread=2.0, noise=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (n_classes, dim))
    x = np.concatenate([centers[k] + rng.normal(0, noise, (n_per, dim)) for k in range(n_classes)])
    return x.astype(np.float32), np.repeat(np.arange(n_classes), n_per)


def split_of(n, seed=0):
    idx = np.random.default_rng(seed).permutation(n)
    return FoldSplit(train=idx[: int(0.7 * n)], fit=idx[: int(0.45 * n)], val=idx[int(0.45 * n): int(0.7 * n)],
                     test=idx[int(0.7 * n):])


def test_accuracy_ties_go_to_the_better_log_loss_not_the_smallest_C():
    x, y = blobs(spread=10.0, noise=0.5)  # separable: every C scores 1.0 on validation
    feats, split = Features(x, np.arange(len(x)), len(x)), split_of(len(x))
    cs = (1e-2, 1e-1, 1.0, 10.0)
    old = fit_logistic_head(feats, split, y, n_classes=3, Cs=cs, calibrate=False)
    new = fit_logistic_head(feats, split, y, n_classes=3, Cs=cs)
    assert set(old.choice["val_accuracy_by_C"].values()) == {1.0}  # a tie over all of them
    assert old.choice["C"] == 1e-2  # soundlib 0.2: the smallest C, the least confident
    losses = new.choice["val_log_loss_by_C"]
    assert new.choice["C"] != 1e-2 and losses[f"{new.choice['C']:g}"] == min(losses.values())


def test_fit_temperature_recovers_the_scale_of_the_logits():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3.0, (4000, 5))
    p = np.exp(z / 2.5)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])  # the labels are softmax(z / 2.5)-distributed
    clips = np.arange(len(z))
    assert fit_temperature(z, clips, clips, y) == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(z[:0], clips[:0], clips[:0], y[:0]) == 1.0  # nothing to fit on
    # bounded: labels that follow the logits' sign exactly push T to its lower bound, not to 0
    hard = np.argmax(z, axis=1)
    assert TEMPERATURE_BOUNDS[0] <= fit_temperature(z, clips, clips, hard) < 0.2


def test_under_confident_head_is_sharpened_and_its_test_ece_drops():
    x, y = blobs(n_per=150, spread=2.0, seed=3)
    feats, split = Features(x, np.arange(len(x)), len(x)), split_of(len(x), seed=3)
    cs = (1e-2,)  # strong regularization only: probabilities squeezed towards uniform
    old = fit_logistic_head(feats, split, y, n_classes=3, Cs=cs, calibrate=False)
    new = fit_logistic_head(feats, split, y, n_classes=3, Cs=cs)
    assert old.model.temperature == 1.0 and new.model.temperature < 0.3
    assert log_loss(new.val_proba, y[split.val]) < log_loss(old.val_proba, y[split.val])

    def ece(head):
        p = head.predict_proba(x[split.test])
        return expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y[split.test])

    assert np.array_equal(old.model.predict_proba(x).argmax(1), new.model.predict_proba(x).argmax(1))
    assert ece(old.model) > 0.25 and ece(new.model) < 0.05


@pytest.mark.parametrize("temperature", TEMPERATURE_BOUNDS)
def test_temperature_folds_into_the_dense_layer_and_absent_classes_stay_absent(temperature):
    x, y = blobs()
    fit = fit_logistic_head(Features(x, np.arange(len(x)), len(x)), split_of(len(x)), y, n_classes=4)
    head = fit.model.with_temperature(temperature)
    p = head.predict_proba(x)
    assert np.all(p[:, 3] < 1e-6)  # class 3 was never seen: at any temperature
    kernel, bias = head.dense()
    logits = x @ kernel + bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(e / e.sum(axis=1, keepdims=True), p, atol=1e-4)


@pytest.fixture(scope="module")
def mfcc_model(tmp_path_factory, synth_corpus, cache):
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold

    out = tmp_path_factory.mktemp("calibrated")
    metrics = train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
                         config=EvalConfig(method={"name": "m", "method": "frozen", "backbone": "mfcc",
                                                   "Cs": [1e-4, 1e-3]}))
    return out, metrics


def test_exported_model_keeps_its_temperature_checksummed_and_predicts_as_evaluated(mfcc_model, tmp_path):
    import pandas as pd

    from soundlib.models.label import predict
    from soundlib.models.load import load_model

    out, metrics = mfcc_model
    temperature = metrics.choice["temperature"]
    assert temperature != 1.0
    info = json.loads((out / "model" / "soundlib_model.json").read_text())
    assert info["calibration"]["temperature"] == pytest.approx(temperature, abs=1e-4)
    with np.load(out / "model" / "head.npz") as z:
        assert float(z["temperature"]) == pytest.approx(temperature, abs=1e-4)
    model = load_model(out / "model")
    frame = pd.read_csv(out / "predictions.csv")
    rows, failures = predict(model, list(frame["path"][:5]), top_k=1)
    assert not failures
    assert np.allclose([r["probability"] for r in rows], frame["probability"][:5], atol=1e-4)

    # the temperature is part of head.npz, so changing it is caught like any edit
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(out / "model", copy)
    with np.load(copy / "head.npz") as z:
        arrays = {k: z[k] for k in z.files}
    with open(copy / "head.npz", "wb") as fh:
        np.savez(fh, **{**arrays, "temperature": np.float64(1.0)})
    with pytest.raises(ModelError, match="head.npz: does not match the checksum"):
        load_model(copy)


def test_a_0_2_head_without_temperature_loads_uncalibrated(mfcc_model, tmp_path):
    import shutil

    from soundlib.audio.hashes import sha256_file
    from soundlib.models.load import load_model

    out, _ = mfcc_model
    copy = tmp_path / "old"
    shutil.copytree(out / "model", copy)
    with np.load(copy / "head.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "temperature"}
    with open(copy / "head.npz", "wb") as fh:
        np.savez(fh, **arrays)
    info = json.loads((copy / "soundlib_model.json").read_text())
    info["checksums"]["head.npz"] = sha256_file(copy / "head.npz")
    for key in ("sizes", "manifest_sha256"):  # as soundlib 0.2 wrote it: neither
        info.pop(key, None)
    (copy / "soundlib_model.json").write_text(json.dumps(info))
    model, calibrated = load_model(copy), load_model(out / "model")
    w = np.random.default_rng(0).normal(0, 0.1, (1, int(model.window.sr * model.window.duration))).astype(np.float32)
    p_old, p_new = model.predict_windows(w), calibrated.predict_windows(w)
    assert np.array_equal(p_old.argmax(1), p_new.argmax(1)) and not np.allclose(p_old, p_new, atol=1e-3)
