"""The embedding cache's entries (soundlib.embedding.cache)."""

from __future__ import annotations

import numpy as np


def test_put_writes_numpy_save_bytes_with_the_umask_and_no_leftovers(tmp_path):
    """An entry holds exactly what ``numpy.save`` writes (readers and other writers agree byte for byte), gets
    the permissions the umask allows, leaves no temporary file, and is written again after its folder was
    removed by hand."""
    import io
    import os
    import shutil

    from soundlib.embedding.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "c")
    folder = tmp_path / "c" / "bb" / "spec"
    vectors = [np.random.default_rng(0).random(896, dtype=np.float32), np.arange(7, dtype=np.float64), np.zeros(0)]
    old = os.umask(0o027)
    try:
        for k, v in enumerate(vectors):
            cache.put(folder, "ab" * 32, v, k)
    finally:
        os.umask(old)
    for k, v in enumerate(vectors):
        path = cache.path(folder, "ab" * 32, k)
        want = io.BytesIO()
        np.save(want, np.asarray(v, dtype=np.float32), allow_pickle=False)
        assert path.read_bytes() == want.getvalue()
        assert (path.stat().st_mode & 0o777) == 0o640
    assert not [p for p in folder.rglob(".*")]
    shutil.rmtree(folder)
    cache.put(folder, "cd" * 32, vectors[0])
    assert cache.writable and np.array_equal(cache.get(folder, "cd" * 32), vectors[0])
