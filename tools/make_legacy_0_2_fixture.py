"""Write tests/data/legacy_0_2: artefacts of soundlib 0.2.0 that 0.3 must read unchanged (issue 19).

Run it with soundlib 0.2.0 on the path (a worktree of commit 5961708):

    git worktree add --detach /tmp/sl02 5961708
    PYTHONPATH=/tmp/sl02 .venv/bin/python tools/make_legacy_0_2_fixture.py tests/data/legacy_0_2

It makes a tiny manifest dataset (3 classes x 4 clips of 0.5 s at 16 kHz, 2 folds, seeded), then with
0.2's command line: an evaluation (`evaluate --method mfcc`), a training run that exports a model on an
audio embedder (`train --method mfcc`), a training run that exports a picture model on the stand-in
SavedModel backbone (through the Python API: a 32x32 variant), the embedding cache they filled, and a
sweep folder (notebooks and logs dropped). `expected.json` holds each model's labels of two clips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def make_dataset(root: Path) -> Path:
    rng = np.random.default_rng(2)
    sr, n = 16000, 8000
    t = np.arange(n) / sr
    rows = ["path,label,fold,group"]
    for label, f0 in (("low", 220.0), ("mid", 880.0), ("noise", 0.0)):
        for k in range(4):
            x = 0.05 * rng.standard_normal(n) if f0 == 0 else 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.02 * k) * t)
            x = (x + 0.01 * rng.standard_normal(n)).astype(np.float32)
            name = f"audio/{label}_{k}.wav"
            (root / "audio").mkdir(parents=True, exist_ok=True)
            sf.write(root / name, x, sr, subtype="PCM_16")
            rows.append(f"{name},{label},{1 + k % 2},{label}{k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "soundlib.cli", *args], check=True)


def main(out: Path) -> None:
    import soundlib

    assert soundlib.__version__ == "0.2.0", f"run this with soundlib 0.2.0, not {soundlib.__version__}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    os.environ["SOUNDLIB_CACHE_DIR"] = str(out / "cache")
    manifest = make_dataset(out / "data")
    cli("evaluate", str(manifest), "--method", "mfcc", "--out", str(out / "evaluate_mfcc"))
    cli("train", str(manifest), "--method", "frozen", "--backbone", "mfcc", "--test-fold", "1",
        "--out", str(out / "train_mfcc"))

    from soundlib.backbones import save_tiny_backbone
    from soundlib.data import load_dataset
    from soundlib.evaluate import EvalConfig, train_fold
    from soundlib.infer import load_model, predict
    from soundlib.variants import get_variant

    backbone = save_tiny_backbone(out / "work" / "tiny_backbone")
    spec = get_variant("mel").replace(name="mel32", height=32, width=32)
    train_fold(load_dataset(manifest), test_fold=1, config=EvalConfig(spec=spec, backbone=str(backbone)),
               out_dir=out / "train_picture", export=True)
    sweep_yaml = out / "work" / "sweep.yaml"
    sweep_yaml.write_text(f"dataset: {manifest}\nvariants: [mel]\nmethods: [mfcc]\nfolds: [1, 2]\n")
    cli("sweep", str(sweep_yaml), "--out", str(out / "sweep"), "--jobs", "1")
    expected = {}
    clips = [out / "data" / "audio" / "low_0.wav", out / "data" / "audio" / "noise_1.wav"]
    for name in ("train_mfcc", "train_picture"):
        rows, failures = predict(load_model(out / name / "model"), clips, top_k=3)
        assert not failures, failures
        expected[name] = [{"input": Path(r["input"]).name, "rank": r["rank"], "label": r["label"],
                           "probability": r["probability"]} for r in rows]
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    shutil.rmtree(out / "work")
    for nb in (out / "sweep").rglob("*.ipynb"):  # outputs stripped: the runs are complete, the files small
        doc = json.loads(nb.read_text())
        for cell in doc["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        nb.write_text(json.dumps(doc, indent=1) + "\n")
    for junk in [*(out / "sweep").rglob("*.log"), *out.rglob("*.lock"), out / "cache" / "audio_hashes.sqlite"]:
        junk.unlink(missing_ok=True)
    shutil.rmtree(out / "cache" / "backbones", ignore_errors=True)  # the embedded backbone's export: rebuilt on use
    print("wrote", out)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
