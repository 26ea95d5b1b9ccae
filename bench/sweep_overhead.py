"""Per-run overhead of a sweep: what a (variant, fold) run costs beyond training its head.

A sweep executes ``notebooks/train.ipynb`` once per (variant, fold), each in its own
process with its own kernel (:func:`soundlib.sweep.tasks.run_task`, the function the
sweep itself calls). With the embedding cache full, a run's wall time is the
overhead (process and kernel start, imports, reading the cache, writing outputs)
plus the head's training. This benchmark measures, on the synthetic corpus with the
embedded backbone (cache filled first, no model export):

  run     wall time of one run through ``run_task``, as a sweep pays it;
  floor   wall time of a notebook holding only a parameters cell (process + kernel start);
  head    the head's training alone, cold (first call in a fresh process, imports excluded);
  overhead = run - head.                                    Target: overhead <= 2 s.

Each is reported in wall-clock seconds (what a sweep waits, inflated by whatever else the
machine runs) and in CPU seconds of the run's process and its kernel (what the run costs;
on an otherwise idle machine the wall-clock time of a run is close to it).

``--baseline REV`` also measures the soundlib of git revision REV (extracted with
``git archive``, imported through PYTHONPATH in fresh run processes and kernels, as
that revision's sweep started them):
baseline and current runs are interleaved, in shuffled order, so both see the same
machine load; medians are reported.

    python bench/sweep_overhead.py [--runs 6] [--baseline 453c2bd] [--json OUT.json]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_HEAD = r"""
import json, sys, time
from soundlib.embedders.backbones import resolve_backbone
from soundlib.audio.loaders import load_dataset
from soundlib.embedding.embed import EmbedConfig, embed_clips
from soundlib.methods.train import TrainConfig, train_head
from soundlib.pictures.variants import get_variant
import numpy as np
ds = load_dataset(sys.argv[1])
res = embed_clips(ds.clips, get_variant("mel"), resolve_backbone("efficientnet_lite0"),
                  config=EmbedConfig(progress=False))
assert res.computed == 0, "the embedding cache should be full"
y = np.array([c.class_id for c in ds.clips]); tr = np.array([c.fold != 1 for c in ds.clips])
groups = [c.group for c, t in zip(ds.clips, tr) if t]
cfg = TrainConfig(epochs=int(sys.argv[2]))
from soundlib.runtime import import_tf; import_tf()  # a TensorFlow head imports it first: not timed
t, c = time.perf_counter(), time.process_time()
train_head(res.embeddings[tr], y[tr], len(ds.classes), groups=groups, config=cfg)
print(json.dumps({"head": time.perf_counter() - t, "head_cpu": time.process_time() - c}))
"""


def _source(rev: str, tmp: Path) -> Path:
    """The soundlib source tree of git revision ``rev``, extracted under ``tmp``."""
    out = tmp / f"src-{rev}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "soundlib", "notebooks"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips-per-class", type=int, default=40)
    p.add_argument("--runs", type=int, default=6, help="runs per side (folds 1..runs)")
    p.add_argument("--epochs", type=int, default=30, help="head epochs (the demo sweep's)")
    p.add_argument("--baseline", help="git revision to compare with (e.g. the merge base)")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (executed notebooks, logs)")
    args = p.parse_args(argv)

    from soundlib.embedders.backbones import resolve_backbone
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig, embed_clips
    from soundlib.lab.notebook import default_kernel_name
    from soundlib.sweep.tasks import run_task
    from soundlib.audio.synth import SynthConfig, generate_corpus
    from soundlib.pictures.variants import get_variant

    tmp = Path(tempfile.mkdtemp(prefix="soundlib-bench-overhead-"))
    data = generate_corpus(tmp / "data", SynthConfig(clips_per_class=args.clips_per_class), progress=False)
    ds = load_dataset(data)
    res = embed_clips(ds.clips, get_variant("mel"), resolve_backbone("efficientnet_lite0"),
                      config=EmbedConfig(progress=False))
    print(f"{len(ds)} clips, embedding cache: {res.hits} hits, {res.computed} computed", flush=True)

    sides = {"current": ROOT}
    if args.baseline:
        sides = {f"baseline {args.baseline}": _source(args.baseline, tmp), **sides}
    kernel = default_kernel_name()
    empty = json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1",
                                   "outputs": [], "execution_count": None}],
                        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
                        "nbformat": 4, "nbformat_minor": 5})

    def env(root: Path) -> dict:
        e = {"SOUNDLIB_BATCH": "1", "PYTHONPATH": str(root)}
        if os.environ.get("SOUNDLIB_CACHE_DIR"):
            e["SOUNDLIB_CACHE_DIR"] = os.environ["SOUNDLIB_CACHE_DIR"]
        return e

    def task(side: str, fold: int, notebook: str, kind: str) -> dict:
        run_dir = tmp / "runs" / side.replace(" ", "_") / kind / f"fold{fold}"
        params = {"dataset": str(data), "fold": fold, "variant": "mel", "epochs": args.epochs,
                  "output_dir": str(run_dir), "export_model": False, "alert": False, "generate_if_missing": False}
        return {"kind": "notebook", "notebook": notebook, "output": str(run_dir / "train.ipynb"),
                "parameters": params if kind == "run" else {"x": 2}, "kernel_name": kernel, "cwd": None,
                "lock": str(run_dir / ".lock"), "log": str(run_dir / "run.log"), "env": env(sides[side])}

    times: dict[str, dict[str, list[float]]] = {s: {"run": [], "floor": []} for s in sides}
    cpu: dict[str, dict[str, list[float]]] = {s: {"run": [], "floor": []} for s in sides}
    order = [(s, f, k) for f in range(1, args.runs + 1) for s in sides for k in ("run", "floor")]
    random.Random(0).shuffle(order)
    for side, fold, kind in order:
        nb = (sides[side] / "notebooks" / "train.ipynb").read_text() if kind == "run" else empty
        t = task(side, fold, nb, kind)
        # a sweep's local runs are forked from the warm fork server where the code has one (fork=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = run_task(t, fork=side == "current")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.get("status") != "completed":
            raise SystemExit(f"{side} {kind} fold {fold} failed: {r.get('ename')}: {r.get('evalue')}; see {t['log']}")
        times[side][kind].append(r["seconds"])
        # CPU seconds of the run's process and its kernel: reported by the process itself where it can,
        # else (a fresh `python` child of this process) its resource usage once reaped
        cpu[side][kind].append(r.get("cpu_seconds") or (after.ru_utime + after.ru_stime
                                                         - before.ru_utime - before.ru_stime))
        cells = ""
        if kind == "run":
            nb = json.loads(Path(t["output"]).read_text())
            total = nb["metadata"].get("papermill", {}).get("duration") or 0.0
            durations = [c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0 for c in nb["cells"]]
            cells = f"  (notebook {total:.2f} s, cells " + " ".join(f"{d:.2f}" for d in durations if d >= 0.05) + ")"
        print(f"  {side:20s} {kind:5s} fold {fold}: {r['seconds']:.2f} s{cells}", flush=True)

    for side, root in sides.items():
        heads, head_cpu = [], []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", _HEAD, str(data), str(args.epochs)], check=True,
                                 capture_output=True, text=True, env={**os.environ, **env(root)}).stdout
            measured = json.loads(out.strip().splitlines()[-1])
            heads.append(measured["head"])
            head_cpu.append(measured["head_cpu"])
        times[side]["head"] = heads
        cpu[side]["head"] = head_cpu

    result = {"clips": len(ds), "epochs": args.epochs, "runs_per_side": args.runs, "load": os.getloadavg(),
              "sides": {}}
    print(f"\nper-run cost of a sweep run ({len(ds)} clips, mel, cached embeddings, {args.epochs} epochs, no export;"
          f" medians of {args.runs} interleaved runs)")
    print(f"{'wall-clock seconds':24s} {'run':>7s} {'floor':>7s} {'head':>7s} {'overhead':>9s}   "
          f"{'CPU seconds':12s} {'run':>6s} {'floor':>6s} {'head':>6s} {'overhead':>9s}")
    for side, t in times.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        med["overhead"] = med["run"] - med["head"]
        cmed = {k: statistics.median(v) for k, v in cpu[side].items()}
        cmed["overhead"] = cmed["run"] - cmed["head"]
        result["sides"][side] = {**{f"{k}_median_s": round(v, 3) for k, v in med.items()},
                                 **{f"{k}_s": [round(x, 3) for x in v] for k, v in t.items()},
                                 **{f"{k}_cpu_median_s": round(v, 3) for k, v in cmed.items()},
                                 **{f"{k}_cpu_s": [round(x, 3) for x in v] for k, v in cpu[side].items()}}
        print(f"{side:24s} {med['run']:7.2f} {med['floor']:7.2f} {med['head']:7.2f} {med['overhead']:9.2f}   "
              f"{'':12s} {cmed['run']:6.2f} {cmed['floor']:6.2f} {cmed['head']:6.2f} {cmed['overhead']:9.2f}")
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    import shutil

    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
