from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from soundlib.backbones import load_backbone, resolve_backbone, save_tiny_backbone
from soundlib.cache import EmbeddingCache, audio_hash
from soundlib.embed import EmbedConfig, embed_clips
from soundlib.variants import resolve_for_clips

from .conftest import small_spec, tone, write_wav


@pytest.fixture
def clips(tmp_path):
    return [write_wav(tmp_path / "a" / f"{i}.wav", tone(200 + 150 * i, seconds=1.0, seed=i)) for i in range(5)]


def test_cache_hits_and_keys(tmp_path, clips, tiny_backbone):
    tiny = resolve_backbone(tiny_backbone)
    cfg = EmbedConfig(cache_dir=tmp_path / "cache", progress=False, batch_size=2)
    spec = small_spec()
    first = embed_clips(clips, spec, tiny, config=cfg)
    assert first.computed == 5 and first.hits == 0 and first.embeddings.shape == (5, 16)
    again = embed_clips(clips, spec, tiny, config=cfg)
    assert again.hits == 5 and again.computed == 0
    assert np.array_equal(first.embeddings, again.embeddings)
    # another spec, another backbone, another audio content: misses
    assert embed_clips(clips, spec.replace(hop_length=256), tiny, config=cfg).computed == 5
    other_bb = save_tiny_backbone(tmp_path / "other", seed=1)
    assert embed_clips(clips, spec, resolve_backbone(other_bb), config=cfg).computed == 5
    write_wav(clips[0], tone(999, seconds=1.0))
    changed = embed_clips(clips, spec, tiny, config=cfg)
    assert changed.computed == 1 and changed.hits == 4
    assert not np.allclose(changed.embeddings[0], first.embeddings[0])
    # the stored vector is what the backbone gives for the rendered picture
    from soundlib.featurize import featurize_clip

    direct = load_backbone(tiny_backbone)(featurize_clip(clips[1], spec)[None])[0]
    assert np.allclose(direct, first.embeddings[1], atol=1e-5)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_corrupt_entry_is_recomputed(tmp_path, clips, tiny_backbone):
    cfg = EmbedConfig(cache_dir=tmp_path / "cache", progress=False)
    spec, tiny = small_spec(), resolve_backbone(tiny_backbone)
    ref = embed_clips(clips, spec, tiny, config=cfg).embeddings
    cache = EmbeddingCache(tmp_path / "cache")
    folder = cache.folder(resolve_for_clips(spec, clips)[0], tiny.identity)  # duration "fit": these clips' 1 s
    cache.path(folder, audio_hash(clips[2])).write_bytes(b"broken")
    res = embed_clips(clips, spec, tiny, config=cfg)
    assert res.computed == 1 and np.allclose(res.embeddings, ref)


def test_bad_files_are_reported_not_fatal(tmp_path, clips, tiny_backbone):
    bad = tmp_path / "a" / "bad.wav"
    bad.write_text("no")
    res = embed_clips(clips[:2] + [bad, tmp_path / "missing.wav"], small_spec(), resolve_backbone(tiny_backbone),
                      config=EmbedConfig(cache_dir=tmp_path / "c", progress=False))
    assert len(res.embeddings) == 2 and [p.name for p, _ in res.failures] == ["bad.wav", "missing.wav"]
    assert "not a readable audio file" in res.failures[0][1]


@pytest.mark.slow
def test_two_processes_fill_one_cache(tmp_path, clips, tiny_backbone):
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from soundlib.backbones import resolve_backbone
        from soundlib.embed import EmbedConfig, embed_clips
        from soundlib.variants import get_variant
        spec = get_variant("mel").replace(height=32, width=32)
        paths = {[str(c) for c in clips]!r}
        res = embed_clips(paths, spec, resolve_backbone({str(tiny_backbone)!r}),
                          config=EmbedConfig(cache_dir={str(tmp_path / "shared")!r}, progress=False, batch_size=1))
        np.save(sys.argv[1], res.embeddings)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"out{i}.npy")]) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy")
    assert np.allclose(a, b, atol=1e-6)
    entries = list((tmp_path / "shared").rglob("*.npy"))
    assert len(entries) == 5 and not list((tmp_path / "shared").rglob("*.tmp"))
    res = embed_clips(clips, small_spec(), resolve_backbone(tiny_backbone),
                      config=EmbedConfig(cache_dir=tmp_path / "shared", progress=False))
    assert res.hits == 5 and np.allclose(res.embeddings, a, atol=1e-6)
