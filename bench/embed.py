"""Embedding benchmark on the synthetic corpus with the embedded EfficientNet-Lite0.

Measures, in one run:
  raw       images/s of the raw backbone call (the SavedModel on a float32 batch), batch 32;
  pipeline  images/s of the full embedding pipeline from audio files with a cold cache
            (load + render + backbone + atomic cache writes), same batch size;
  pictures  images/s of the pipeline's backbone stage on pre-rendered uint8 pictures
            (conversion, fixed-size batching, padding of the last batch);
  eval      a 10-fold leave-one-fold-out evaluation with a cold cache, as a multiple of
            one embedding pass over the same clips.
Targets: pipeline/raw >= 0.8, eval/embedding-pass <= 1.3.

    python bench/embed.py [--clips-per-class 40] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips-per-class", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from soundlib.backbones import load_backbone
    from soundlib.data import load_dataset
    from soundlib.embed import EmbedConfig, embed_clips
    from soundlib.evaluate import EvalConfig, evaluate
    from soundlib.featurize import featurize
    from soundlib.variants import get_variant
    from soundlib.synth import SynthConfig, generate_corpus

    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = load_dataset(generate_corpus(tmp / "synth", SynthConfig(clips_per_class=args.clips_per_class),
                                          progress=False))
        n = len(ds)
        spec = get_variant("mel")
        bb = load_backbone("efficientnet_lite0")
        pics = np.stack([featurize(ds.clips[:bs], spec, progress=False).pictures[c.path] for c in ds.clips[:bs]])

        # raw: the SavedModel itself on a float32 batch already in memory (after warm-up)
        x = tf.constant(pics.astype(np.float32) / 255.0)
        bb.module(x)
        reps = max(3, n // bs)
        t0 = time.perf_counter()
        for _ in range(reps):
            bb.module(x).numpy()
        raw = reps * bs / (time.perf_counter() - t0)

        # pictures -> embeddings through the Backbone wrapper (uint8 in, padding, batching)
        all_pics = np.concatenate([pics] * (n // bs + 1))[:n]
        bb(all_pics[:bs], batch_size=bs)
        t0 = time.perf_counter()
        bb(all_pics, batch_size=bs)
        pictures = n / (time.perf_counter() - t0)

        # full pipeline from audio, cold cache
        t0 = time.perf_counter()
        res = embed_clips(ds.clips, spec, bb, config=EmbedConfig(batch_size=bs, cache_dir=tmp / "c1", progress=False))
        t_embed = time.perf_counter() - t0
        assert res.computed == n
        pipeline = n / t_embed

        # 10-fold evaluation from a cold cache (embeds every clip once, then 10 heads)
        t0 = time.perf_counter()
        r = evaluate(ds, EvalConfig(), progress=False,
                     embed_config=EmbedConfig(batch_size=bs, cache_dir=tmp / "c2", progress=False))
        t_eval = time.perf_counter() - t0

    result = {
        "clips": n, "batch_size": bs,
        "raw_images_per_s": raw, "pipeline_images_per_s": pipeline, "pictures_images_per_s": pictures,
        "pipeline_over_raw": pipeline / raw, "pictures_over_raw": pictures / raw,
        "embedding_pass_s": t_embed, "ten_fold_eval_s": t_eval, "eval_over_embedding_pass": t_eval / t_embed,
        "eval_accuracy_mean": r["accuracy_mean"],
    }
    print(f"embedding benchmark: {n} synthetic clips, mel 224x224, embedded efficientnet_lite0, batch {bs}")
    print(f"  raw backbone call            {raw:7.1f} images/s")
    print(f"  pictures -> embeddings       {pictures:7.1f} images/s  ({pictures / raw:.2f} of raw)")
    print(f"  audio -> embeddings (cold)   {pipeline:7.1f} images/s  ({pipeline / raw:.2f} of raw, target >= 0.8)")
    print(f"  one embedding pass           {t_embed:7.1f} s")
    print(f"  10-fold evaluation (cold)    {t_eval:7.1f} s  ({t_eval / t_embed:.2f}x one pass, target <= 1.3); "
          f"accuracy {r['accuracy_mean']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
