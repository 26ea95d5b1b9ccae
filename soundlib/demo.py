"""``make demo``: the main job on the embedded default.

Generates the synthetic corpus, renders the feature gallery, and runs the
demo sweep (``params/demo.yaml``) when the learning stages are available.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["run_demo", "main"]


def run_demo(out: Path, *, jobs: int = 2) -> dict[str, Path]:
    from .data import load_dataset
    from .features import featurize, write_gallery
    from .synth import SynthConfig, generate_corpus

    out = Path(out)
    t0 = time.perf_counter()
    data = out / "synth"
    if not (data / "metadata" / "UrbanSound8K.csv").is_file():
        generate_corpus(data, SynthConfig())
    ds = load_dataset(data)
    print(f"[demo] synthetic corpus: {len(ds)} clips, {len(ds.classes)} classes, folds {list(ds.folds)} -> {data}")
    gallery = out / "gallery"
    write_gallery(ds.clips[0].path, gallery)
    print(f"[demo] gallery of the six variants for {ds.clips[0].path.name} -> {gallery}")
    pictures = out / "pictures" / "mel"
    report = featurize(ds, "mel", out_dir=pictures, jobs=jobs)
    print(f"[demo] featurized {len(report.written) + len(report.skipped)} clips (mel) -> {pictures}")
    print(f"[demo] done in {time.perf_counter() - t0:.1f} s")
    return {"data": data, "gallery": gallery, "pictures": pictures}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soundlib.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers")
    args = p.parse_args(argv)
    run_demo(args.out, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
