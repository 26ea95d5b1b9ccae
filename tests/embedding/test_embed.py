from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from soundlib.embedders.backbones import load_backbone, resolve_backbone, save_tiny_backbone
from soundlib.embedding.cache import EmbeddingCache, audio_hash
from soundlib.embedding.embed import EmbedConfig, embed_clips
from soundlib.pictures.variants import resolve_for_clips

from ..conftest import small_spec, tone, write_wav


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
    from soundlib.pictures.featurize import featurize_clip

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
        from soundlib.embedders.backbones import resolve_backbone
        from soundlib.embedding.embed import EmbedConfig, embed_clips
        from soundlib.pictures.variants import get_variant
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


# --- streamed inputs: what the whole clip gave, in bounded memory -------------------------------------

def _whole_clip_pictures(path, spec):
    """The pictures as the embedding stage made them before it streamed: the clip read whole, its windows
    stacked, then rendered (a plain array: embed_clips still takes one)."""
    from soundlib.audio.clips import load_windows
    from soundlib.pictures.features import render

    windows, _ = load_windows(path, sr=spec.sr, duration=spec.duration, hop=spec.hop_seconds, pad=spec.pad)
    return np.stack([render(w, spec) for w in windows])


@pytest.fixture
def long_clips(tmp_path):
    """Stereo clips at 44.1 kHz (resampled by the variant) of 1, 6 and 15 one-second windows."""
    return [write_wav(tmp_path / "long" / f"{i}.wav", np.stack([tone(300 + 200 * i, seconds=s, sr=44100, seed=i)] * 2,
                                                               axis=1), sr=44100)
            for i, s in enumerate((0.6, 3.3, 7.9))]


def _cache_files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.npy"))}


@pytest.mark.parametrize("batch_bytes", [None, 5 * 32 * 32 * 3])
def test_streamed_pictures_embed_as_the_whole_clip_did(tmp_path, long_clips, tiny_backbone, monkeypatch, batch_bytes):
    """Same embeddings and the same cache entries (names and bytes) as the whole-clip arrays; with a small
    bound on what a clip holds before it is embedded (a long clip is embedded in parts), the same up to
    float rounding."""
    import soundlib.embedding.embed as E

    if batch_bytes:
        monkeypatch.setattr(E, "_BATCH_BYTES", batch_bytes)
    spec, tiny = small_spec().replace(duration=1.0), resolve_backbone(tiny_backbone)
    whole = embed_clips(long_clips, spec, tiny, inputs=_whole_clip_pictures,
                        config=EmbedConfig(cache_dir=tmp_path / "whole", progress=False, batch_size=4))
    streamed = embed_clips(long_clips, spec, tiny,
                           config=EmbedConfig(cache_dir=tmp_path / "streamed", progress=False, batch_size=4))
    assert streamed.embeddings.shape == (22, 16) and streamed.computed == 22 and not streamed.failures
    assert np.array_equal(streamed.row_clip, whole.row_clip) and np.array_equal(streamed.row_start, whole.row_start)
    a, b = _cache_files(tmp_path / "whole"), _cache_files(tmp_path / "streamed")
    assert sorted(a) == sorted(b) and len(a) == 22
    if batch_bytes is None:
        assert np.array_equal(streamed.embeddings, whole.embeddings)
        assert a == b
    else:
        assert np.allclose(streamed.embeddings, whole.embeddings, atol=1e-6)
    again = embed_clips(long_clips, spec, tiny, config=EmbedConfig(cache_dir=tmp_path / "whole", progress=False))
    assert again.hits == 22 and np.array_equal(again.embeddings, whole.embeddings)


def test_streamed_audio_and_mfcc_inputs_are_the_whole_clip_inputs(long_clips):
    """audio_windows' chunks are load_windows' windows; MFCC statistics are those of the clip read whole."""
    import dataclasses

    from soundlib.audio.clips import load_windows, read_segment, window_starts
    from soundlib.embedders.base import CHUNK_WINDOWS, WindowSpec, audio_windows
    from soundlib.embedders.mfcc import MfccEmbedder

    mfcc, spec = MfccEmbedder(), small_spec().replace(duration=0.5)
    for path in long_clips:
        for pad in ("end", "repeat", "none"):
            w = WindowSpec("t", 32000, 0.25, 0.1, pad=pad)
            chunks = list(audio_windows(path, w))
            assert all(1 <= len(c) <= CHUNK_WINDOWS for c in chunks)
            ref = load_windows(path, sr=32000, duration=0.25, hop=0.1, pad="end" if pad == "none" else pad)[0]
            assert np.array_equal(np.concatenate(chunks), ref)
        y, n = read_segment(path, sr=spec.sr), spec.n_samples
        ref = np.stack([mfcc.prepare_window(y[s:s + n], spec)
                        for s in window_starts(len(y), n, int(round(spec.hop_seconds * spec.sr)))])
        assert np.array_equal(np.concatenate(list(mfcc.inputs(path, spec))), ref)
    short = dataclasses.replace(WindowSpec("t", 32000, 1.0, 0.5, pad="none"))
    assert [c.shape for c in audio_windows(long_clips[0], short)] == [(1, int(0.6 * 32000))]


def test_a_clip_failing_mid_stream_is_named_and_leaves_no_entries(tmp_path, tiny_backbone):
    """A silent clip is known once read whole, after its windows streamed: it fails, named, and none of
    its windows is cached; a stream that gives more windows than the header promised fails too."""
    good = write_wav(tmp_path / "a" / "good.wav", tone(seconds=9.0))  # 4 windows of 4 s
    silent = write_wav(tmp_path / "a" / "silent.wav", np.zeros(12 * 22050, np.float32))
    cfg = EmbedConfig(cache_dir=tmp_path / "c", progress=False, batch_size=2)
    res = embed_clips([silent, good], small_spec(), resolve_backbone(tiny_backbone), config=cfg)
    assert [p.name for p, _ in res.failures] == ["silent.wav"] and "silent audio" in res.failures[0][1]
    assert len(res.embeddings) == 4 and len(_cache_files(tmp_path / "c")) == 4  # good.wav's windows only

    def too_many(path, spec):
        yield from (np.zeros((3, 32, 32, 3), np.uint8) for _ in range(4))

    res = embed_clips([good], small_spec(), resolve_backbone(tiny_backbone), inputs=too_many,
                      config=EmbedConfig(cache_dir=tmp_path / "c2", progress=False))
    assert res.failures == [(good, f"{good}: 12 windows rendered, 4 expected")]
    assert not _cache_files(tmp_path / "c2")


def test_rendering_runs_only_a_few_chunks_ahead(tmp_path, monkeypatch):
    """Three clips of 60 one-window chunks each: the rendering threads stay a few chunks ahead of the
    embedder (before, every clip was rendered whole, as fast as it could be, and held)."""
    import dataclasses
    import threading

    import soundlib.embedding.embed as E
    from soundlib.embedders.base import WindowSpec

    monkeypatch.setattr(E, "_BATCH_BYTES", 2 * 4000)  # embed every two windows
    clips = [write_wav(tmp_path / f"{i}.wav", tone(seconds=30.5, sr=8000, seed=i), sr=8000) for i in range(3)]
    count, ahead, lock = {"produced": 0, "embedded": 0}, [], threading.Lock()

    @dataclasses.dataclass(frozen=True)
    class Counting:
        identity: str = "test:counting"
        output_dim: int = 1

        def inputs(self, path, window):
            for _ in range(60):
                with lock:
                    count["produced"] += 1
                yield np.ones((1, 1000), np.float32)

        def __call__(self, batch, *, batch_size=32):
            with lock:
                ahead.append(count["produced"] - count["embedded"])
                count["embedded"] += len(batch)
            return batch[:, :1].copy()

    emb, window = Counting(), WindowSpec("w", 8000, 1.0, 0.5)
    res = embed_clips(clips, window, emb, inputs=emb.inputs,
                      config=EmbedConfig(use_cache=False, progress=False, jobs=2, batch_size=2))
    assert len(res.embeddings) == 180 and not res.failures
    # per thread: the queued chunks and the one in hand; and the batch (two windows, and one past them)
    assert max(ahead) <= 2 * (E._AHEAD + 1) + 3, ahead
