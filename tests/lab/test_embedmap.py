"""soundlib embed --export (embeddings + labels + folds + paths in one .npz) and the 2-D map of embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from soundlib.audio.loaders import load_dataset
from soundlib.lab.embedmap import embed_dataset, project_2d, read_npz
from soundlib.errors import ConfigError, DatasetError

from ..conftest import small_spec


def test_embed_export_npz(tmp_path, capsys, synth_corpus, tiny_backbone):
    from soundlib.cli import main
    from soundlib.pictures.variants import register_variant

    register_variant(small_spec().replace(name="mel32"), overwrite=True)
    out = tmp_path / "emb.npz"
    assert main(["embed", str(synth_corpus), "--variant", "mel32", "--backbone", str(tiny_backbone), "--quiet",
                 "--export", str(out)]) == 0
    ds = load_dataset(synth_corpus)
    assert f"{len(ds)} clips" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z:  # plain numpy reads it, no pickles
        assert z["embeddings"].shape == (len(ds), 16) and z["embeddings"].dtype == np.float32
        assert z["paths"].tolist() == [str(c.path) for c in ds.clips]
        assert z["labels"].tolist() == [c.label for c in ds.clips]
        assert z["folds"].tolist() == [c.fold for c in ds.clips]
        assert z["groups"].tolist() == [c.group for c in ds.clips]
        assert z["classes"].tolist() == list(ds.classes)
    table = read_npz(out)
    assert table.variant == "mel32" and table.feature_spec["height"] == 32 and len(table) == len(ds)
    assert (table.class_ids == [c.class_id for c in ds.clips]).all()
    # one window per clip here: the clip embedding is its window's
    assert (table.window_clip == np.arange(len(ds))).all()
    assert np.allclose(table.embeddings, table.window_embeddings)
    # a dataset without folds: the grouped folds evaluate would assign
    again = embed_dataset(ds.with_clips(c.__class__(c.path, c.label, c.class_id, None, c.group) for c in ds.clips),
                          small_spec(), str(tiny_backbone), k_folds=3)
    assert sorted(set(again.folds.tolist())) == [1, 2, 3]
    by_group = {}
    for g, f in zip(again.groups, again.folds):
        by_group.setdefault(g, set()).add(int(f))
    assert all(len(f) == 1 for f in by_group.values())  # a recording never split
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="bad.npz: cannot read the embeddings file"):
        read_npz(tmp_path / "bad.npz")


def test_project_2d_and_map():
    from soundlib.evaluation.plots import plot_embedding_map

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, (3, 20))
    x = np.concatenate([c + rng.normal(0, 1, (15, 20)) for c in centres])
    labels = np.repeat(["a", "b", "c"], 15)
    xy, used = project_2d(x, method="tsne")
    assert xy.shape == (45, 2) and used == "t-SNE"
    # the classes stay apart: every point's nearest neighbour in 2-D is of its class
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(45) * 1e9
    assert (labels[d.argmin(axis=1)] == labels).mean() > 0.95
    assert project_2d(x[:3])[1] == "PCA"  # too few points for t-SNE
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="needs the umap package"):
            project_2d(x, method="umap")
        assert project_2d(x)[1] == "t-SNE"  # auto without umap
    png = plot_embedding_map(xy, labels, highlight=np.arange(45) < 5)._repr_png_()
    assert png[:4] == b"\x89PNG"


def test_embedding_map_for_a_run(tmp_path, synth_corpus, tiny_backbone):
    """A run's map is of the method's own embeddings: the frozen method's backbone, the mfcc method's
    statistics (never the picture backbone's); a method with no one embedder (scratch) has none."""
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.lab.embedmap import embedding_map
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.methods import resolve_method

    ds = load_dataset(synth_corpus)
    embed = EmbedConfig(cache_dir=tmp_path / "cache", progress=False)
    frozen = EvalConfig(method="frozen", spec=small_spec(), backbone=str(tiny_backbone))
    emap = embedding_map(ds, frozen, test_fold=2, embed_config=embed)
    assert emap.xy.shape == (len(ds), 2) and emap.projection in ("t-SNE", "UMAP")
    assert (emap.table.folds == 2).sum() == sum(c.fold == 2 for c in ds.clips)
    assert emap.table.backbone.startswith("savedmodel:") and emap.table.embeddings.shape[1] == 16
    assert emap.figure()._repr_png_()[:4] == b"\x89PNG"
    mfcc = EvalConfig(spec=small_spec(), backbone=str(tiny_backbone), method=resolve_method("mfcc"))
    emap = embedding_map(ds, mfcc, test_fold=2, embed_config=embed)
    assert emap.table.backbone == "mfcc:basic:40:1" and emap.table.embeddings.shape[1] == 160
    assert emap.embedder.startswith("mfcc (")
    scratch = EvalConfig(spec=small_spec(), backbone=str(tiny_backbone), method=resolve_method("scratch"))
    assert embedding_map(ds, scratch, test_fold=2, embed_config=embed) is None
