"""Fixtures of the fault-injection suite: a trained model, tiny datasets, a way to run code as another user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import small_spec, tone, write_csv, write_wav

#: Flags that make `soundlib evaluate/train` fast on the test corpus (variant registered by `mel32`).
FAST = ["--variant", "mel32", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="session")
def mel32():
    """The 32x32 mel variant the stand-in backbone takes, registered as ``mel32``."""
    from soundlib.pictures.variants import register_variant

    return register_variant(small_spec().replace(name="mel32"), overwrite=True)


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory, synth_corpus, tiny_backbone, mel32) -> Path:
    """A model exported by today's soundlib (train_fold on the test corpus, fold 1); do not modify it."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold
    from soundlib.methods.train import TrainConfig

    out = tmp_path_factory.mktemp("exported")
    train_fold(load_dataset(synth_corpus), test_fold=1, out_dir=out, progress=False,
               config=EvalConfig(method="frozen", spec=mel32, backbone=str(tiny_backbone), train=TrainConfig(epochs=3)))
    return out / "model"


def tone_manifest(folder: Path, rows, *, header=("path", "label", "fold")) -> Path:
    """Write one 1-s tone per distinct file named in ``rows`` (``(file, label, fold)``) and a manifest CSV."""
    freqs = {"a": 300, "b": 900, "c": 2500, "d": 5000}
    for i, (name, label, *_rest) in enumerate(rows):
        path = folder / name
        if not path.exists():
            write_wav(path, tone(freqs.get(label, 600) + 7 * i, seconds=1.0, seed=i))
    return write_csv(folder / "manifest.csv", header, rows)


def run_unprivileged(code: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a process that file permissions apply to.

    The tests run as root here, whom ``chmod 000`` does not stop: the child
    drops ``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH`` from its capability
    bounding set before it starts, so it stays root but obeys permissions.
    """
    def drop_file_capabilities():
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP failed")

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          preexec_fn=drop_file_capabilities if os.geteuid() == 0 else None)


def unreadable(path: Path) -> Path:
    """``chmod 000`` ``path``, after checking that an unprivileged child really cannot read it."""
    path.chmod(0)
    probe = run_unprivileged(f"open({str(path)!r}, 'rb')")
    if "PermissionError" not in probe.stderr:  # pragma: no cover
        pytest.skip(f"cannot make a file unreadable here: {probe.stderr[-300:]}")
    return path
