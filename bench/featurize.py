"""Featurize benchmark: soundlib's renderer vs a seed-style matplotlib renderer.

Times, per clip, on the same synthetic clips:
  (a) soundlib featurize to an in-memory uint8 array (load + render),
  (b) soundlib featurize to a PNG file (load + render + atomic PNG write),
  (c) a seed-style reference: librosa load + mel + matplotlib ``specshow`` + ``savefig``
      at the same pixel size (224 x 224).
Prints the per-clip medians and the ratios c/a and c/b (targets: >= 10 and >= 2.5).

    python bench/featurize.py [--clips 60] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def reference_render(path: Path, out_png: Path, *, sr: int = 22050, size: int = 224) -> None:
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt
    import numpy as np

    y, _ = librosa.load(str(path), sr=sr, duration=4.0)
    y = librosa.util.fix_length(y, size=4 * sr)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    S_db = librosa.power_to_db(S, ref=np.max)
    fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    librosa.display.specshow(S_db, sr=sr, hop_length=512, ax=ax, cmap="magma")
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def _time_each(fn, items) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=60, help="number of synthetic clips to time")
    p.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    from soundlib.audio.loaders import load_dataset
    from soundlib.pictures.featurize import featurize_clip, write_png
    from soundlib.pictures.variants import get_variant
    from soundlib.audio.synth import SynthConfig, generate_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_class = max(1, args.clips // 10)
        generate_corpus(tmp / "synth", SynthConfig(clips_per_class=per_class), progress=False)
        paths = [c.path for c in load_dataset(tmp / "synth").clips][: args.clips]
        spec = get_variant("mel").replace(duration=4.0)  # the seed-style reference renders 4 s
        # warm up every path once (imports, filterbank and colormap caches)
        featurize_clip(paths[0], spec)
        reference_render(paths[0], tmp / "warm.png")

        a = _time_each(lambda q: featurize_clip(q, spec), paths)
        b = _time_each(lambda q: write_png(tmp / "ours" / (q.stem + ".png"), featurize_clip(q, spec)), paths)
        (tmp / "ref").mkdir()
        c = _time_each(lambda q: reference_render(q, tmp / "ref" / (q.stem + ".png")), paths)
        ref_size = Image.open(next((tmp / "ref").glob("*.png"))).size
        ours_size = Image.open(next((tmp / "ours").glob("*.png"))).size

    med = {k: statistics.median(v) * 1000 for k, v in {"a": a, "b": b, "c": c}.items()}
    result = {
        "clips": len(paths),
        "median_ms": med,
        "ratio_c_over_a": med["c"] / med["a"],
        "ratio_c_over_b": med["c"] / med["b"],
        "picture_size": {"ours": ours_size, "reference": ref_size},
    }
    print(f"featurize benchmark, {len(paths)} synthetic clips, mel, 224x224 (per-clip medians)")
    print(f"  (a) soundlib -> array     {med['a']:8.2f} ms")
    print(f"  (b) soundlib -> PNG file  {med['b']:8.2f} ms")
    print(f"  (c) seed-style reference  {med['c']:8.2f} ms   (librosa + matplotlib specshow + savefig, {ref_size})")
    print(f"  c/a = {result['ratio_c_over_a']:.1f}x (target >= 10)   c/b = {result['ratio_c_over_b']:.1f}x (target >= 2.5)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
