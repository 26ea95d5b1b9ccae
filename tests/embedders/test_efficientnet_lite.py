"""EfficientNet-Lite0: torch-free checkpoint reader, tf_keras port, SavedModel export.

The parity fixture ``tests/data/efficientnet_lite0_parity.npz`` holds the
logits and pooled features of the original PyTorch model (made by
``tools/make_efficientnet_parity_fixture.py``); torch is not needed here.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundlib.embedders.nets import efficientnet_lite as E
from soundlib.errors import BackboneError

FIXTURE = Path(__file__).parents[1] / "data" / "efficientnet_lite0_parity.npz"

N_TENSORS = 296
N_LEARNABLE = 4_652_008  # conv/depthwise kernels, BN gamma/beta, classifier; no BN running stats


@pytest.fixture(scope="module")
def ckpt_path() -> Path:
    return E.checkpoint_path()


@pytest.fixture(scope="module")
def state(ckpt_path):
    return E.read_torch_checkpoint(ckpt_path)


@pytest.fixture(scope="module")
def parity():
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def images01(parity):
    return parity["images"].astype(np.float32) / np.float32(255.0)


@pytest.fixture(scope="module")
def top_model(state):
    return E.build_efficientnet_lite0(state, include_top=True)


@pytest.fixture(scope="module")
def feature_model(state):
    return E.build_efficientnet_lite0(state)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return E.export_feature_vector_savedmodel(tmp_path_factory.mktemp("export") / "lite0_fv")


# --- checkpoint ------------------------------------------------------------


def test_importing_module_does_not_import_tensorflow():
    code = ("import sys, soundlib.embedders.nets.efficientnet_lite; "
            "sys.exit('tensorflow' in sys.modules or 'tf_keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_checkpoint_path_points_at_packaged_weights(ckpt_path):
    assert ckpt_path.name == "efficientnet-lite0-57934424.pth"
    assert ckpt_path.is_file()


def test_checkpoint_tensors_and_parameter_count(state):
    assert len(state) == N_TENSORS
    assert E.learnable_parameter_count(state) == N_LEARNABLE
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].flags.c_contiguous  # stored channels-last, made contiguous
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].shape == ()
    assert {a.dtype for k, a in state.items() if not k.endswith("num_batches_tracked")} == {np.dtype("float32")}
    assert all(np.isfinite(a).all() for a in state.values())


def _legacy_header() -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps(sys_info, protocol=2))


def test_reader_refuses_foreign_global(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # os.system("touch ...")
    bad = tmp_path / "malicious.pth"
    bad.write_bytes(_legacy_header() + payload)
    with pytest.raises(BackboneError, match=r"os\.system") as info:
        E.read_torch_checkpoint(bad)
    assert str(bad) in str(info.value)
    assert not marker.exists()


def test_reader_refuses_foreign_global_inside_state_dict(tmp_path):
    # a state dict whose tensor rebuild function is swapped for builtins.eval
    payload = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00acbuiltins\neval\nX\x03\x00\x00\x001+1\x85Ru."
    bad = tmp_path / "eval.pth"
    bad.write_bytes(_legacy_header() + payload)
    with pytest.raises(BackboneError, match=r"builtins\.eval"):
        E.read_torch_checkpoint(bad)


@pytest.mark.parametrize("keep", [0.002, 0.5, 0.999999])
def test_reader_rejects_truncated_file(tmp_path, ckpt_path, keep):
    data = ckpt_path.read_bytes()
    cut = tmp_path / "truncated.pth"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BackboneError) as info:
        E.read_torch_checkpoint(cut)
    assert str(cut) in str(info.value)


def test_reader_rejects_garbage_and_missing_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BackboneError, match="junk.pth"):
        E.read_torch_checkpoint(junk)
    with pytest.raises(BackboneError, match="absent.pth"):
        E.read_torch_checkpoint(tmp_path / "absent.pth")


# --- weight loading --------------------------------------------------------


def test_model_shapes_and_parameter_count(top_model, feature_model):
    assert top_model.input_shape == (None, 224, 224, 3)
    assert top_model.output_shape == (None, 1000)
    assert feature_model.output_shape == (None, 1280)
    assert sum(int(np.prod(w.shape)) for w in top_model.trainable_weights) == N_LEARNABLE


def test_weight_loading_checks_every_tensor(state, feature_model):
    bad = dict(state)
    del bad["_blocks.3._project_conv.weight"]
    with pytest.raises(BackboneError, match=r"missing tensor _blocks\.3\._project_conv\.weight"):
        E.load_checkpoint_weights(feature_model, bad)

    bad = dict(state, **{"_blocks.99._extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(BackboneError, match=r"not used: _blocks\.99\._extra\.weight"):
        E.load_checkpoint_weights(feature_model, bad)

    bad = dict(state, **{"_bn0.running_var": np.ones(31, np.float32)})
    with pytest.raises(BackboneError, match=r"_bn0\.running_var has shape \(31,\)"):
        E.load_checkpoint_weights(feature_model, bad)


# --- parity with PyTorch ---------------------------------------------------


def test_fixture_records_provenance(parity):
    assert parity["images"].shape[1:] == (224, 224, 3) and parity["images"].dtype == np.uint8
    assert parity["logits"].shape == (len(parity["images"]), 1000)
    assert any(v.startswith("torch==") for v in parity["versions"].tolist())
    np.testing.assert_allclose(parity["mean"], E.IMAGENET_MEAN, rtol=1e-6)
    np.testing.assert_allclose(parity["std"], E.IMAGENET_STD, rtol=1e-6)


def test_logits_match_pytorch(top_model, images01, parity):
    logits = top_model(images01, training=False).numpy()
    ref = parity["logits"]
    assert np.abs(logits - ref).max() <= 1e-3
    np.testing.assert_array_equal(np.argsort(-logits, axis=1)[:, :5], np.argsort(-ref, axis=1)[:, :5])


def test_features_match_pytorch(feature_model, images01, parity):
    features = feature_model(images01, training=False).numpy()
    assert features.shape == (len(images01), 1280)
    assert np.abs(features - parity["features"]).max() <= 1e-3


# --- SavedModel export -----------------------------------------------------


@pytest.mark.slow
def test_export_loads_with_hub_and_matches(exported, feature_model, images01):
    import tensorflow_hub as hub

    assert sorted(p.name for p in exported.parent.iterdir()) == [exported.name]  # no temp dirs left
    obj = hub.load(str(exported))
    features = obj(images01).numpy()
    assert features.shape == (len(images01), 1280)
    expected = feature_model(images01, training=False).numpy()
    assert np.abs(features - expected).max() <= 1e-5

    spec = next(iter(obj.signatures["serving_default"].structured_input_signature[1].values()))
    assert tuple(spec.shape) == (None, 224, 224, 3) and spec.dtype.name == "float32"
    assert spec.shape[1] == E.IMAGE_SIZE


@pytest.mark.slow
def test_export_fine_tunes_as_keras_layer(exported, images01):
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(str(exported), trainable=True)
    inputs = tf_keras.Input((224, 224, 3))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(layer(inputs)))
    assert model.output_shape == (None, 3)
    assert len(layer.trainable_weights) == 147  # 49 kernels + 49 BN gamma/beta pairs
    inferred = layer(images01, training=False).numpy()
    trained = layer(images01, training=True).numpy()  # batch statistics
    assert np.abs(inferred - trained).max() > 1e-2

    frozen = hub.KerasLayer(str(exported), trainable=False)
    assert frozen.trainable_weights == []


@pytest.mark.slow
def test_export_is_idempotent_and_refuses_incomplete_dir(exported, tmp_path):
    mtime = os.stat(exported / "saved_model.pb").st_mtime_ns
    assert E.export_feature_vector_savedmodel(exported) == exported
    assert os.stat(exported / "saved_model.pb").st_mtime_ns == mtime

    partial = tmp_path / "partial"
    partial.mkdir()
    with pytest.raises(BackboneError, match="not a complete SavedModel"):
        E.export_feature_vector_savedmodel(partial)
