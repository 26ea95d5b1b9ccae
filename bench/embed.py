"""Embedding benchmark: the embedded EfficientNet-Lite0 on TensorFlow and on LiteRT, measured in one run.

The machine may be shared and noisy, so runtimes are interleaved: each round runs every
runtime once, in shuffled order, on the same pictures, and the reported numbers are
medians over rounds (ratios are per-round ratios to TensorFlow, then the median).

  backbone   images/s, pictures -> embeddings: 64 uint8 224x224 mel pictures of real clips
             (the UrbanSound8K subset when it is there, else synthetic), TensorFlow
             (soundlib.embedders.backbones.Backbone, batch 32) vs LiteRT float (default threads, and 2)
             vs LiteRT int8; also CPU ms per image.
  error      max |LiteRT float - TF| over every picture embedded, int8's cosine to TF.
  raw        the TensorFlow SavedModel itself on a float32 batch (the old reference).
  pipeline   audio -> embeddings with a cold cache (embed_clips), TF vs LiteRT float, synthetic corpus.
  eval       a 10-fold leave-one-fold-out evaluation from a cold cache, as a multiple of one pass.
  accuracy   leave-one-fold-out over the folds of the real UrbanSound8K subset with a
             standardized logistic regression (scikit-learn), same folds and head for the
             TF, LiteRT float and LiteRT int8 embeddings.

Targets: LiteRT float >= 2x TF images/s; |float - TF| <= 1e-3; int8 accuracy within 0.5 point
of float; pipeline/raw >= 0.8; eval <= 1.3x one pass.

    python bench/embed.py [--rounds 7] [--us8k ../shared/data/urbansound8k_subset] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
US8K = ROOT.parent / "shared" / "data" / "urbansound8k_subset"


def _rates(fns: dict, pictures, rounds: int) -> dict[str, dict]:
    """Interleaved rounds: images/s and CPU ms per image of each function, and per-round ratios to "tf"."""
    n = len(pictures)
    for fn in fns.values():  # warm-up (traces, XNNPACK plans)
        fn(pictures[:16])
    rate = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(fns)
        rng.shuffle(order)
        for k in order:
            c, t = time.process_time(), time.perf_counter()
            fns[k](pictures)
            rate[k].append(n / (time.perf_counter() - t))
            cpu[k].append(1e3 * (time.process_time() - c) / n)
    return {k: {"images_per_s": statistics.median(rate[k]), "min": min(rate[k]), "max": max(rate[k]),
                "ratio_to_tf": statistics.median([a / b for a, b in zip(rate[k], rate["tf"])]),
                "cpu_ms_per_image": statistics.median(cpu[k]), "rounds": rate[k]} for k in fns}


def _accuracy(embeddings: dict, y, folds) -> dict:
    """Leave-one-fold-out accuracy of StandardScaler + LogisticRegression for each embedding kind."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    correct, predicted = {}, {}
    for kind, x in embeddings.items():
        per_fold, pred = {}, np.zeros(len(y), int)
        for f in sorted(set(folds)):
            te = folds == f
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
            clf.fit(x[~te], y[~te])
            pred[te] = clf.predict(x[te])
            per_fold[int(f)] = 100.0 * (pred[te] == y[te]).mean()
        ok = pred == y
        correct[kind], predicted[kind] = ok, pred
        out[kind] = {"per_fold": per_fold, "mean": float(np.mean(list(per_fold.values()))),
                     "pooled": 100.0 * ok.mean()}
    rng = np.random.default_rng(0)
    boot = rng.integers(0, len(y), (2000, len(y)))
    for kind in embeddings:
        if kind == "float":
            continue
        diff = correct[kind].astype(float) - correct["float"]
        out[kind]["minus_float"] = out[kind]["mean"] - out["float"]["mean"]
        out[kind]["pooled_minus_float_ci95"] = [float(v) for v in np.quantile(diff[boot].mean(1) * 100, [0.025, 0.975])]
        out[kind]["same_prediction_pct"] = 100.0 * float((predicted[kind] == predicted["float"]).mean())
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips-per-class", type=int, default=40, help="synthetic corpus for pipeline and eval")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the backbone comparison")
    p.add_argument("--us8k", type=Path, default=US8K, help="UrbanSound8K subset (manifest.csv) for the accuracy")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import numpy as np

    from soundlib.embedders import litert
    from soundlib.embedders.backbones import load_backbone, open_backbone, resolve_backbone
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.evaluation.evaluate import EvalConfig, evaluate
    from soundlib.pictures.featurize import featurize
    from soundlib.runtime import import_tf
    from soundlib.audio.synth import SynthConfig, generate_corpus
    from soundlib.pictures.variants import get_variant

    if not litert.available():
        raise SystemExit("bench/embed.py compares TensorFlow with LiteRT: pip install -e '.[litert]'")
    tf, _ = import_tf()
    spec = get_variant("mel")
    result: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    info = resolve_backbone("efficientnet_lite0")
    tf_bb = load_backbone("efficientnet_lite0", runtime="tf")
    lite = litert.open_lite_backbone(info)
    lite2 = litert.LiteBackbone(info, litert.model_path(info), num_threads=2)
    int8 = open_backbone(resolve_backbone("efficientnet_lite0_int8"))
    us8k = load_dataset(args.us8k / "manifest.csv") if (args.us8k / "manifest.csv").is_file() else None

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = load_dataset(generate_corpus(tmp / "synth", SynthConfig(clips_per_class=args.clips_per_class),
                                             progress=False))
        source = us8k if us8k is not None else synth
        rep = featurize(source.clips, spec, jobs=2, progress=False)
        ok = [c for c in source.clips if c.path in rep.pictures]
        pictures = np.stack([rep.pictures[c.path] for c in ok])
        sample = pictures[np.random.default_rng(0).choice(len(pictures), 64, replace=False)]

        # 1. the backbone alone: TF vs LiteRT, interleaved rounds on the same 64 pictures
        speed = _rates({"tf": lambda x: tf_bb(x, batch_size=32), "litert_float": lite,
                        "litert_float_2threads": lite2, "litert_int8": int8}, sample, args.rounds)
        x = tf.constant(sample[:32].astype(np.float32) / 255.0)
        tf_bb.module(x)
        t0 = time.perf_counter()
        for _ in range(4):
            tf_bb.module(x).numpy()
        raw = 4 * 32 / (time.perf_counter() - t0)

        # 2. embeddings of every picture: LiteRT float vs TF (error), and int8
        emb = {"tf": tf_bb(pictures), "float": lite(pictures), "int8": int8(pictures)}
        err = np.abs(emb["float"] - emb["tf"])
        cos = (emb["int8"] * emb["tf"]).sum(1) / np.linalg.norm(emb["int8"], axis=1) / np.linalg.norm(emb["tf"], axis=1)
        error = {"pictures": len(pictures), "float_max_abs": float(err.max()), "float_mean_abs": float(err.mean()),
                 "int8_max_abs": float(np.abs(emb["int8"] - emb["tf"]).max()), "int8_cosine_min": float(cos.min()),
                 "int8_cosine_mean": float(cos.mean())}

        # 3. accuracy on the real subset: same folds, same head, TF / float / int8 embeddings
        accuracy = None
        if us8k is not None:
            y = np.array([c.class_id for c in ok])
            folds = np.array([c.fold for c in ok])
            accuracy = _accuracy({"float": emb["float"], "tf": emb["tf"], "int8": emb["int8"]}, y, folds)

        # 4. the pipeline from audio with a cold cache (two rounds, alternating order), synthetic corpus
        pipe = {"tf": [], "litert_float": []}
        for i, order in enumerate((("tf", "litert_float"), ("litert_float", "tf"))):
            for k in order:
                bb = tf_bb if k == "tf" else lite
                t0 = time.perf_counter()
                res = embed_clips(synth.clips, spec, bb, config=EmbedConfig(cache_dir=tmp / f"c-{k}-{i}",
                                                                            progress=False))
                assert res.computed == len(synth)
                pipe[k].append(len(synth) / (time.perf_counter() - t0))
        t_pass = len(synth) / statistics.median(pipe["litert_float"])

        # 5. 10-fold evaluation from a cold cache (the default runtime: LiteRT) vs one embedding pass
        t0 = time.perf_counter()
        r = evaluate(synth, EvalConfig(), progress=False, embed_config=EmbedConfig(cache_dir=tmp / "c-eval",
                                                                                    progress=False))
        t_eval = time.perf_counter() - t0

    result.update(
        backbone=speed, raw_tf_images_per_s=raw, error=error, accuracy=accuracy,
        pipeline={k: {"images_per_s": statistics.median(v), "rounds": v} for k, v in pipe.items()},
        pipeline_ratio=statistics.median(pipe["litert_float"]) / statistics.median(pipe["tf"]),
        pipeline_over_raw_tf=statistics.median(pipe["tf"]) / raw,
        ten_fold_eval_s=t_eval, embedding_pass_s=t_pass, eval_over_embedding_pass=t_eval / t_pass,
        eval_accuracy_mean=r["accuracy_mean"], litert_threads=lite.num_threads, load_after=os.getloadavg(),
    )

    print(f"embedding benchmark, {os.cpu_count()} CPUs, load {result['load_before'][0]:.1f} -> "
          f"{result['load_after'][0]:.1f}; {len(sample)} mel pictures "
          f"({'UrbanSound8K subset' if us8k is not None else 'synthetic'}), {args.rounds} interleaved rounds")
    print(f"  {'backbone (pictures -> embeddings)':38s} {'images/s':>9s} {'x TF':>6s} {'CPU ms/img':>10s}")
    for k, v in speed.items():
        print(f"  {k:38s} {v['images_per_s']:9.1f} {v['ratio_to_tf']:6.2f} {v['cpu_ms_per_image']:10.1f}")
    print(f"  (LiteRT float uses {lite.num_threads} interpreter thread(s) by default here; target >= 2x TF)")
    print(f"  raw TF SavedModel call (float batch 32)  {raw:9.1f}")
    print(f"embeddings of {error['pictures']} pictures: LiteRT float vs TF max |diff| {error['float_max_abs']:.2e} "
          f"(target <= 1e-3); int8 cosine to TF min {error['int8_cosine_min']:.3f}, mean {error['int8_cosine_mean']:.3f}")
    if accuracy:
        folds_txt = ", ".join(str(f) for f in accuracy["float"]["per_fold"])
        print(f"accuracy, leave-one-fold-out over folds {folds_txt} of the UrbanSound8K subset "
              f"(StandardScaler + LogisticRegression):")
        for k, v in accuracy.items():
            extra = (f"  {v['minus_float']:+.2f} vs float, pooled 95% CI [{v['pooled_minus_float_ci95'][0]:+.2f}, "
                     f"{v['pooled_minus_float_ci95'][1]:+.2f}]" if "minus_float" in v else "")
            print(f"  {k:6s} mean {v['mean']:6.2f}  per fold " +
                  " ".join(f"{a:6.2f}" for a in v["per_fold"].values()) + extra)
        print("  (target: int8 within 0.5 point of float)")
    print(f"pipeline, audio -> embeddings, cold cache, {len(synth)} synthetic clips: TF "
          f"{result['pipeline']['tf']['images_per_s']:.1f}, LiteRT {result['pipeline']['litert_float']['images_per_s']:.1f}"
          f" images/s ({result['pipeline_ratio']:.2f}x); TF pipeline/raw {result['pipeline_over_raw_tf']:.2f}"
          f" (target >= 0.8)")
    print(f"10-fold evaluation (cold cache, LiteRT) {t_eval:.1f} s = {t_eval / t_pass:.2f}x one embedding pass "
          f"(target <= 1.3); accuracy {r['accuracy_mean']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
