"""The LiteRT path (soundlib.embedders.litert): conversion, the interpreter wrapper, and the embedded backbone on it."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from soundlib.embedders import backbones as B
from soundlib.embedders import litert
from soundlib.errors import BackboneError

pytestmark = pytest.mark.skipif(not litert.available(), reason="ai-edge-litert is not installed "
                                "(pip install -e '.[litert]'; the dev extra installs it)")


@pytest.fixture(scope="module")
def tiny_lite(tiny_backbone, tmp_path_factory):
    """The stand-in backbone converted to LiteRT, float and int8."""
    info = B.resolve_backbone(tiny_backbone)
    out = tmp_path_factory.mktemp("lite")
    calibration = np.random.default_rng(1).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    return (info, litert.convert(info.path, out / "float.tflite", input_size=(32, 32)),
            litert.convert(info.path, out / "int8.tflite", quantization="int8", calibration=calibration,
                           input_size=(32, 32)))


def test_float_model_matches_tensorflow_and_is_thread_safe(tiny_lite):
    info, float_path, _ = tiny_lite
    lite = litert.LiteBackbone(info, float_path, num_threads=1)
    tf_bb = B.open_backbone(info, runtime="tf")
    assert (lite.input_size, lite.output_dim) == ((32, 32), 16)
    pics = np.random.default_rng(0).integers(0, 256, (21, 32, 32, 3), dtype=np.uint8)  # 2 full batches + 5
    out = lite(pics)
    assert out.shape == (21, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, tf_bb(pics), atol=1e-5)
    np.testing.assert_allclose(lite(pics.astype(np.float32) / 255.0), out, atol=1e-6)  # float pictures in [0, 1]
    with ThreadPoolExecutor(4) as pool:  # one interpreter, many threads: the lock keeps calls apart
        parts = list(pool.map(lite, [pics[i:i + 5] for i in range(0, 21, 5)]))
    assert np.array_equal(np.concatenate(parts), out)


def test_int8_model_takes_raw_pictures(tiny_lite):
    info, float_path, int8_path = tiny_lite
    pics = np.random.default_rng(2).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    exact = litert.LiteBackbone(info, float_path)(pics)
    quant = litert.LiteBackbone(info, int8_path)(pics)
    cos = (exact * quant).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(quant, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(exact, quant)
    assert int8_path.stat().st_size < float_path.stat().st_size


def test_runtime_choice(tiny_backbone, monkeypatch):
    info = B.resolve_backbone(tiny_backbone)
    assert not litert.wanted(info)  # only the embedded backbones have a LiteRT model
    embedded = B.BackboneInfo("efficientnet_lite0", "x", info.path, (224, 224))
    int8 = B.BackboneInfo("efficientnet_lite0_int8", "y", info.path, (224, 224))
    assert litert.wanted(embedded) and litert.wanted(int8)
    assert litert.model_path(embedded).name == f"{info.path.name}.float.tflite"
    assert litert.model_path(int8).name == f"{info.path.name}.int8-r{litert.INT8_RECIPE}.tflite"
    monkeypatch.setenv(litert.RUNTIME_ENV, "tf")
    assert not litert.wanted(embedded)
    with pytest.raises(BackboneError, match="int8 model; it cannot run on TensorFlow"):
        litert.wanted(int8)
    monkeypatch.setenv(litert.RUNTIME_ENV, "gpu")
    with pytest.raises(BackboneError, match="SOUNDLIB_BACKBONE_RUNTIME='gpu'"):
        litert.runtime()
    monkeypatch.setenv(litert.RUNTIME_ENV, "litert")
    monkeypatch.setattr(litert, "available", lambda: False)
    with pytest.raises(BackboneError, match=r"needs the LiteRT runtime.*soundlib\[litert\]"):
        litert.wanted(embedded)
    monkeypatch.setenv(litert.RUNTIME_ENV, "auto")
    assert not litert.wanted(embedded)  # auto without LiteRT: TensorFlow


@pytest.mark.slow
def test_embedded_backbone_on_litert(corpus, tmp_path):
    """Frozen embedding with the embedded backbone runs on LiteRT: converted once (cached beside the
    SavedModel), within 1e-3 of TensorFlow, same cache identity, and no TensorFlow import afterwards."""
    from soundlib.pictures.featurize import featurize_clip
    from soundlib.pictures.variants import get_variant

    info = B.resolve_backbone("efficientnet_lite0")
    lite = B.open_backbone(info)
    assert isinstance(lite, litert.LiteBackbone) and lite.identity == info.identity
    path = litert.model_path(info)
    assert path.parent == info.path.parent and path.is_file() and B.is_ready("efficientnet_lite0")
    int8 = B.resolve_backbone("efficientnet_lite0_int8")  # its own cache identity, the same SavedModel
    assert int8.path == info.path and int8.identity.startswith(info.identity + ":litert-int8")
    stamp = path.stat().st_mtime_ns
    clips = sorted((corpus / "audio").rglob("*.wav"))[:10]
    pics = np.stack([featurize_clip(c, get_variant("mel")) for c in clips])
    np.testing.assert_allclose(lite(pics), B.open_backbone(info, runtime="tf")(pics), atol=1e-3)
    code = ("import sys\nfrom soundlib.audio.loaders import load_dataset\n"
            "from soundlib.embedding.embed import EmbedConfig, embed_clips\n"
            "from soundlib.embedders.backbones import resolve_backbone\nfrom soundlib.pictures.variants import get_variant\n"
            "ds = load_dataset(sys.argv[1])\n"
            "r = embed_clips(ds.clips[:12], get_variant('mel'), resolve_backbone('efficientnet_lite0'),"
            " config=EmbedConfig(progress=False, cache_dir=sys.argv[2]))\n"
            "assert r.computed == 12 and r.embeddings.shape == (12, 1280), r\n"
            "assert 'tensorflow' not in sys.modules, 'embedding imported TensorFlow'\n")
    out = subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / "emb")], capture_output=True,
                         text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert path.stat().st_mtime_ns == stamp  # converted once
