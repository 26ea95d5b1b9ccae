from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from soundlib.embedders import backbones as B
from soundlib.errors import BackboneError, FeatureError


def test_tiny_backbone_loads_and_reads_input_size(tiny_backbone):
    bb = B.load_backbone(tiny_backbone)
    assert bb.output_dim == 16 and bb.input_size == (32, 32)
    assert bb.identity.startswith("savedmodel:")
    pics = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out = bb(pics, batch_size=2)
    assert out.shape == (5, 16) and out.dtype == np.float32
    assert np.allclose(out[:2], bb(pics[:2]), atol=1e-5)  # padding of the last batch changes nothing
    bigger = bb(np.repeat(np.repeat(pics, 2, axis=1), 2, axis=2))  # other sizes are resized
    assert bigger.shape == (5, 16)
    with pytest.raises(FeatureError, match=r"\(N, H, W, 3\)"):
        bb(np.zeros((2, 32, 32, 4), np.uint8))


def test_bad_handles_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    with pytest.raises(BackboneError, match=r"could not fetch backbone 'mobilenet_v2'.*need internet.*"
                                            r"efficientnet_lite0"):
        B.load_backbone("mobilenet_v2")
    with pytest.raises(BackboneError, match="unknown backbone 'resnet9000'"):
        B.load_backbone("resnet9000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="is not a SavedModel"):
        B.load_backbone(tmp_path / "empty")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(BackboneError, match="could not load the SavedModel"):
        B.load_backbone(corrupt)


def test_hub_handle_served_from_tfhub_cache_dir(tmp_path, monkeypatch, tiny_backbone):
    """A handle already in TFHUB_CACHE_DIR loads offline, through tensorflow_hub's resolver."""
    url = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    shutil.copytree(tiny_backbone, tmp_path / "hub" / hashlib.sha1(url.encode()).hexdigest())
    bb = B.load_backbone(url)
    assert bb.identity == f"hub:{url}" and bb.output_dim == 16


@pytest.mark.slow
def test_embedded_backbone_goes_through_the_same_path():
    info = B.resolve_backbone("efficientnet_lite0")
    assert B.savedmodel_dir(info) == info.path and (info.path / "saved_model.pb").is_file()
    assert str(info.path).startswith(str(B.cache_dir()))
    assert "efficientnet-lite0-57934424.pth" in info.identity
    bb = B.load_backbone("efficientnet_lite0", runtime="tf")  # (tests/test_litert.py: the LiteRT runtime)
    assert bb.output_dim == 1280 and bb.input_size == (224, 224)
    # the exported directory is an ordinary SavedModel: loading it by path gives the same features
    pics = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    by_path = B.load_backbone(info.path)
    assert np.allclose(bb(pics), by_path(pics), atol=1e-5)


def test_resolving_the_embedded_backbone_exports_nothing(tmp_path, monkeypatch):
    """Resolving the embedded backbone names its SavedModel folder without writing it: the SavedModel is
    exported when something needs it (:func:`savedmodel_dir`), and is_ready says whether opening it would
    export or convert anything."""
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    info = B.resolve_backbone("efficientnet_lite0")
    assert info.path == tmp_path / "cache" / "backbones" / "efficientnet_lite0-port1"
    assert not info.path.exists() and not B.is_ready("efficientnet_lite0")
    monkeypatch.setenv("SOUNDLIB_BACKBONE_RUNTIME", "tf")
    info.path.mkdir(parents=True)
    (info.path / "saved_model.pb").write_bytes(b"")  # what is_ready looks for on TensorFlow
    assert B.is_ready("efficientnet_lite0")
    monkeypatch.setenv("SOUNDLIB_BACKBONE_RUNTIME", "litert")  # LiteRT needs its own copy, not the SavedModel
    assert not B.is_ready("efficientnet_lite0")


@pytest.mark.slow
def test_embedded_backbone_on_litert_needs_no_savedmodel(tmp_path, monkeypatch):
    """In a fresh cache, opening the embedded backbone on LiteRT converts its copy from the weights and
    exports no SavedModel; exporting the SavedModel afterwards gives the same features on TensorFlow."""
    from soundlib.embedders import litert

    if not litert.available():
        pytest.skip("ai-edge-litert is not installed")
    monkeypatch.setenv("SOUNDLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(B, "_LOADED", {})  # (backbones opened by earlier tests, from another cache)
    info = B.resolve_backbone("efficientnet_lite0")
    lite = B.open_backbone(info)
    assert isinstance(lite, litert.LiteBackbone) and litert.model_path(info).is_file()
    assert not info.path.exists() and B.is_ready("efficientnet_lite0")
    pics = np.random.default_rng(2).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    tf_features = B.open_backbone(info, runtime="tf")(pics)  # exports the SavedModel now
    assert (info.path / "saved_model.pb").is_file()
    np.testing.assert_allclose(lite(pics), tf_features, atol=1e-4)
