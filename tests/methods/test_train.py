from __future__ import annotations

import numpy as np
import pytest

from soundlib.errors import ConfigError, DatasetError
from soundlib.embedders.backbones import resolve_backbone
from soundlib.models.export import export_model
from soundlib.methods.train import Distortions, TrainConfig, train_end_to_end, train_head

from ..conftest import small_spec


def _blobs(n_per=30, n_classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (n_classes, dim))
    x = np.concatenate([centers[k] + rng.normal(0, 0.5, (n_per, dim)) for k in range(n_classes)]).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per)
    groups = [f"rec{i // 3}" for i in range(len(y))]  # three slices per recording
    return x, y, groups


def test_train_head_learns_and_is_seeded(tmp_path):
    x, y, groups = _blobs()
    cfg = TrainConfig(epochs=40, learning_rate=0.01, seed=1, summaries_dir=str(tmp_path / "tb"))
    head = train_head(x, y, 3, groups=groups, config=cfg)
    assert (head.predict_proba(x).argmax(1) == y).mean() > 0.95
    assert set(head.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(head.history["loss"]) == 40 and head.history["loss"][-1] < head.history["loss"][0]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    again = train_head(x, y, 3, groups=groups, config=cfg)
    assert np.allclose(head.model.get_weights()[0], again.model.get_weights()[0], atol=1e-6)
    steps = train_head(x, y, 3, groups=groups, config=TrainConfig(steps=10, batch_size=27, validation_split=0))
    assert len(steps.history["loss"]) == 3  # 81 clips / 27 per step = 3 steps an epoch


def test_config_validation():
    with pytest.raises(ConfigError, match="dropout"):
        TrainConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="unknown key.*'lr'"):
        TrainConfig.from_dict({"lr": 0.1})
    with pytest.raises(ConfigError, match="distortions: unknown key.*'rotate'"):
        TrainConfig.from_dict({"distortions": {"rotate": 0.1}})
    assert TrainConfig.from_dict({"distortions": {"time_mask": 0.2}}).needs_pictures
    assert not TrainConfig().needs_pictures
    with pytest.raises(ConfigError, match="random_crop"):
        Distortions(random_crop=1.2)
    with pytest.raises(DatasetError, match="no training clips"):
        train_head(np.zeros((0, 4), np.float32), np.zeros(0, int), 2)


def test_fine_tune_trains_the_backbone_and_export_roundtrip(tmp_path, tiny_backbone):
    from soundlib.models.load import load_model

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    pics = rng.integers(0, 60, (24, 32, 32, 3), dtype=np.uint8)
    pics[y == 1, :, :, 0] += 150  # class 1 is redder
    frozen = train_end_to_end(pics, y, 2, backbone_path=tiny_backbone,
                              config=TrainConfig(epochs=2, validation_split=0, distortions=Distortions(
                                  flip_left_right=True, random_brightness=0.1, time_mask=0.2, freq_mask=0.2,
                                  time_shift=0.1, random_crop=0.1, random_scale=0.1)))
    tuned = train_end_to_end(pics, y, 2, backbone_path=tiny_backbone,
                             config=TrainConfig(epochs=2, validation_split=0, fine_tune=True,
                                                fine_tune_learning_rate=0.05))
    assert not frozen.model.get_layer("backbone").trainable_weights
    assert tuned.model.get_layer("backbone").trainable_weights
    import tensorflow as tf

    original = tf.saved_model.load(str(tiny_backbone))
    orig_vals = sorted(float(tf.reduce_sum(v)) for v in original.variables)
    tuned_vals = sorted(float(tf.reduce_sum(v)) for v in tuned.model.get_layer("backbone").weights)
    frozen_vals = sorted(float(tf.reduce_sum(v)) for v in frozen.model.get_layer("backbone").weights)
    assert np.allclose(orig_vals, frozen_vals) and not np.allclose(orig_vals, tuned_vals)
    out = export_model(tmp_path / "model", tuned, backbone=resolve_backbone(tiny_backbone),
                       spec=small_spec().replace(duration=1.0), labels=["a", "b"])
    model = load_model(out)
    assert model.labels == ["a", "b"] and model.spec == small_spec().replace(duration=1.0)
    proba = model.predict_pictures(pics[:4])
    assert np.allclose(proba, tuned.predict_proba(pics[:4].astype(np.float32) / 255), atol=1e-5)
