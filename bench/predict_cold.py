"""Cold ``soundlib predict``: one 4-s file, labelled by a fresh process, with the embedded backbone's model.

A user who labels one file pays the whole start-up: the interpreter, the imports,
opening the model, rendering one picture, one forward pass. Each run here is a
new ``python -m soundlib.cli predict MODEL one.wav`` process, timed from outside
(wall clock, and the CPU seconds of the process). Sides:

  litert      this checkout, default runtime: the model's LiteRT copy, no TensorFlow;
  savedmodel  this checkout with ``SOUNDLIB_MODEL_RUNTIME=tf``: the SavedModel through TensorFlow;
  baseline    (``--baseline REV``) the soundlib of git revision REV (extracted with ``git archive`` and
              put first on PYTHONPATH), which always loads the SavedModel through TensorFlow.

The model is trained once (``train --all-folds``, frozen method, ``efficientnet_lite0``, variant
``mel``) on a small synthetic corpus (4 clips per class, 4 s), unless ``--model DIR`` names one.
Runs of the sides are interleaved in shuffled order, so every side sees the same machine load;
medians are reported. Target: litert <= 5 s on 2 cores.

    python bench/predict_cold.py [--runs 5] [--baseline b920538] [--model DIR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source(rev: str, tmp: Path) -> Path:
    """The ``soundlib`` package of git revision ``rev``, extracted under ``tmp``."""
    out = tmp / f"src-{rev}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "soundlib"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _soundlib(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "soundlib.cli", *args], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _make_model(tmp: Path) -> Path:
    """A frozen EfficientNet-Lite0 model trained on every fold of a small synthetic corpus."""
    data, out = tmp / "synth", tmp / "model"
    _soundlib("synth", str(data), "--clips-per-class", "4", "--quiet")
    _soundlib("train", str(data), "--all-folds", "--variant", "mel", "--backbone", "efficientnet_lite0",
              "--out", str(out), "--quiet")
    return out / "model"


def _one_run(model: Path, wav: Path, pythonpath: Path, extra_env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh ``soundlib predict`` process."""
    env = {k: v for k, v in os.environ.items() if k != "SOUNDLIB_MODEL_RUNTIME"}
    env.update(PYTHONPATH=str(pythonpath), **extra_env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "soundlib.cli", "predict", str(model), str(wav), "--top-k", "1"],
                         capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"predict failed ({pythonpath}, {extra_env}):\n{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="fresh processes per side")
    p.add_argument("--baseline", help="git revision to compare with (e.g. the merge base)")
    p.add_argument("--model", type=Path, help="an exported model (default: train one on a synthetic corpus)")
    p.add_argument("--wav", type=Path, help="the file to label (default: a 4-s clip of the synthetic corpus)")
    p.add_argument("--json", type=Path, help="also write the timings here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="soundlib-predict-cold-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or _make_model(tmp)
        wav = args.wav
        if wav is None:
            corpus = tmp / "synth" if (tmp / "synth").is_dir() else tmp / "one"
            if not corpus.is_dir():
                _soundlib("synth", str(corpus), "--clips-per-class", "1", "--quiet")
            wav = sorted((corpus / "audio").rglob("*.wav"))[0]
        sides = {"litert": (ROOT, {}), "savedmodel": (ROOT, {"SOUNDLIB_MODEL_RUNTIME": "tf"})}
        if args.baseline:
            sides[f"baseline {args.baseline}"] = (_source(args.baseline, tmp), {})
        _one_run(model, wav, ROOT, {})  # warm the OS file cache once (not counted)
        order = [name for name in sides for _ in range(args.runs)]
        random.Random(0).shuffle(order)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for name in order:
            times[name].append(_one_run(model, wav, *sides[name]))
        summary = {name: {"wall_median_s": round(statistics.median(w for w, _ in t), 2),
                          "cpu_median_s": round(statistics.median(c for _, c in t), 2),
                          "wall_s": [round(w, 2) for w, _ in t]} for name, t in times.items()}
    info = {"cpus": os.cpu_count(), "runs": args.runs, "model": str(args.model or "trained (efficientnet_lite0)"),
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "sides": summary}
    for name, s in summary.items():
        print(f"{name:<22} wall {s['wall_median_s']:6.2f} s   cpu {s['cpu_median_s']:6.2f} s   (runs {s['wall_s']})")
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
