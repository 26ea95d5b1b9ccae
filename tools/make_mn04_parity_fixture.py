"""Write tests/data/mn04_parity.npz from a PyTorch reference of EfficientAT's mn04_as.

The fixture pins what soundlib's torch-free port (:mod:`soundlib.embedders.nets.efficientat_mn`)
must reproduce: four real UrbanSound8K clips of different classes (4 s, read at
32 kHz by soundlib's reader and stored as int16), the eval-mode log-mel
spectrograms EfficientAT's preprocessing makes of them, and the AudioSet logits
and embeddings (pooled last-layer features + the classifier's hidden layer) the
PyTorch network computes in eval mode with the release weights
``mn04_as_mAP_432.pt``.

The reference is written here after EfficientAT's ``models/mn/`` (MobileNetV3
with width 0.4, channel squeeze-and-excitation, ``mlp`` head) and
``models/preprocess.py`` (``AugmentMelSTFT`` in eval mode: pre-emphasis, torch.stft,
``torchaudio.compliance.kaldi.get_mel_banks`` from 0 to 15 kHz); module names
follow the original so that the release state dict loads with ``strict=True``.

torch is never a runtime dependency of soundlib. Keep it out of the project
virtualenv, e.g.::

    python3 -m venv /tmp/mn04-parity-venv
    /tmp/mn04-parity-venv/bin/pip install torch==2.11.0 torchaudio==2.11.0 numpy scipy soundfile soxr
    /tmp/mn04-parity-venv/bin/python tools/make_mn04_parity_fixture.py

It reads the weights and the clips from ``../shared`` beside the checkout
(``--checkpoint``, ``--subset`` to change).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata as metadata
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or REPO.parent / "shared")  # a worktree elsewhere: set it
DEFAULT_OUT = REPO / "tests" / "data" / "mn04_parity.npz"
DEFAULT_CHECKPOINT = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"
DEFAULT_SUBSET = SHARED / "data" / "urbansound8k_subset"
CHECKPOINT_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"

CLASSES = ("dog_bark", "siren", "jackhammer", "children_playing")
SR = 32000
SECONDS = 4.0
PREPROCESSING = (
    "32 kHz mono; x[1:] - 0.97 x[:-1]; torch.stft(n_fft=1024, hop_length=320, win_length=800, "
    "window=hann_window(800, periodic=False), center=True, pad_mode='reflect'); power; "
    "torchaudio.compliance.kaldi.get_mel_banks(128, 1024, 32000, 0.0, 15000.0, 100.0, -500.0, 1.0) "
    "padded with a zero Nyquist column; log(mel + 1e-5); (x + 4.5) / 5"
)

# (input, kernel, expanded, output, squeeze-excitation, hard-swish, stride) at width 1.0
BLOCKS = (
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
)
WIDTH = 0.4


def divisible(v: float, d: int = 8) -> int:
    out = max(d, int(v + d / 2) // d * d)
    return out + d if out < 0.9 * v else out


def build_reference():
    """The PyTorch mn04 network (eval mode), module names as in EfficientAT."""
    import torch
    from torch import nn

    def conv_bn_act(c_in, c_out, k, stride=1, groups=1, act=None):
        mods = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
                nn.BatchNorm2d(c_out, eps=0.001, momentum=0.01)]
        if act is not None:
            mods.append(act())
        return nn.Sequential(*mods)

    class SqueezeExcitation(nn.Module):
        def __init__(self, channels, squeeze):
            super().__init__()
            self.fc1 = nn.Linear(channels, squeeze)
            self.fc2 = nn.Linear(squeeze, channels)

        def forward(self, x):
            s = x.mean(dim=(2, 3))
            s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
            return x * s[:, :, None, None]

    class ConcurrentSE(nn.Module):  # EfficientAT with se_dims="c": one SE layer, max over one output
        def __init__(self, channels):
            super().__init__()
            self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, divisible(channels // 4))])

        def forward(self, x):
            return torch.stack([se(x) for se in self.conc_se_layers]).max(dim=0)[0]

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, k, c_exp, c_out, se, hs, stride):
            super().__init__()
            act = nn.Hardswish if hs else nn.ReLU
            mods = []
            if c_exp != c_in:
                mods.append(conv_bn_act(c_in, c_exp, 1, act=act))
            mods.append(conv_bn_act(c_exp, c_exp, k, stride, groups=c_exp, act=act))
            if se:
                mods.append(ConcurrentSE(c_exp))
            mods.append(conv_bn_act(c_exp, c_out, 1))
            self.block = nn.Sequential(*mods)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x):
            y = self.block(x)
            return y + x if self.residual else y

    class MN(nn.Module):
        def __init__(self):
            super().__init__()
            specs = [(divisible(i * WIDTH), k, divisible(e * WIDTH), divisible(o * WIDTH), se, hs, s)
                     for i, k, e, o, se, hs, s in BLOCKS]
            last_in = specs[-1][3]
            mods = [conv_bn_act(1, specs[0][0], 3, 2, act=nn.Hardswish)]
            mods += [InvertedResidual(*spec) for spec in specs]
            mods.append(conv_bn_act(last_in, 6 * last_in, 1, act=nn.Hardswish))
            self.features = nn.Sequential(*mods)
            self.classifier = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(start_dim=1), nn.Linear(6 * last_in, divisible(1280 * WIDTH)),
                nn.Hardswish(), nn.Dropout(p=0.2), nn.Linear(divisible(1280 * WIDTH), 527))

        def forward(self, x):
            x = self.features(x)
            pooled = torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
            hidden = self.classifier[3](self.classifier[2](pooled))
            logits = self.classifier(x)
            return logits, torch.cat([pooled, hidden], dim=1)

    return MN()


def reference_log_mel(waveforms: np.ndarray) -> np.ndarray:
    """EfficientAT's AugmentMelSTFT in eval mode (fmin 0, fmax 15 kHz, no masking), in torch."""
    import torch
    import torchaudio

    x = torch.from_numpy(waveforms)
    coef = torch.as_tensor([[[-0.97, 1.0]]])
    x = torch.nn.functional.conv1d(x.unsqueeze(1), coef).squeeze(1)
    spec = torch.stft(x, 1024, hop_length=320, win_length=800, center=True, normalized=False,
                      window=torch.hann_window(800, periodic=False), return_complex=True)
    power = (torch.view_as_real(spec) ** 2).sum(dim=-1)
    banks, _ = torchaudio.compliance.kaldi.get_mel_banks(128, 1024, 32000, 0.0, 15000.0, 100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0)
    mel = torch.matmul(banks, power)
    return ((torch.log(mel + 0.00001) + 4.5) / 5.0).numpy().astype(np.float32)


def pick_clips(subset: Path) -> list[tuple[str, str]]:
    """The first clip of each class in CLASSES (manifest order) that lasts the full 4 s."""
    import soundfile as sf

    with open(subset / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = []
    for label in CLASSES:
        for row in rows:
            if row["label"] == label and sf.info(str(subset / row["path"])).duration >= SECONDS:
                picked.append((row["path"], label))
                break
        else:
            raise SystemExit(f"no {SECONDS:g}-s clip of class {label} in {subset}")
    return picked


def _sha256(path: Path) -> str:
    """SHA-256 of ``path``, read in 1 MiB blocks; one line (SystemExit) when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--subset", type=Path, default=DEFAULT_SUBSET)
    args = parser.parse_args(argv)

    import torch
    import torchaudio

    sys.path.insert(0, str(REPO))
    from soundlib.embedders.nets.audioset_labels import AUDIOSET_CLASSES
    from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint
    from soundlib.audio.clips import read_segment

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    digest = _sha256(args.checkpoint)
    if digest != CHECKPOINT_SHA256:
        raise SystemExit(f"{args.checkpoint} has SHA-256 {digest}, expected {CHECKPOINT_SHA256}")

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = build_reference()
    model.load_state_dict(state, strict=True)
    model.eval()
    from soundlib.embedders.nets.efficientat_mn import MAX_CHECKPOINT_BYTES
    from soundlib.errors import BackboneError

    try:
        ours = read_torch_checkpoint(args.checkpoint, max_bytes=MAX_CHECKPOINT_BYTES)
    except BackboneError as exc:
        raise SystemExit(str(exc)) from None
    if list(ours) != list(state) or not all(
            np.array_equal(ours[k], v.numpy()) and ours[k].dtype == v.numpy().dtype for k, v in state.items()):
        raise SystemExit("soundlib's checkpoint reader disagrees with torch.load")

    clips = pick_clips(args.subset)
    n = int(SR * SECONDS)
    waves = []
    for path, _ in clips:
        y = read_segment(args.subset / path, sr=SR, duration=SECONDS)
        if len(y) != n:
            raise SystemExit(f"{path}: read {len(y)} samples, expected {n}")
        waves.append(np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16))
    waveforms_int16 = np.stack(waves)
    waveforms = waveforms_int16.astype(np.float32) / np.float32(32768.0)

    mel = reference_log_mel(waveforms)
    with torch.no_grad():
        logits, embedding = model(torch.from_numpy(mel).unsqueeze(1))
    logits = logits.numpy().astype(np.float32)
    embedding = embedding.numpy().astype(np.float32)

    versions = {"torch": torch.__version__, "torchaudio": torchaudio.__version__, "numpy": np.__version__,
                "soundfile": metadata.version("soundfile"), "soxr": metadata.version("soxr"),
                "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        clip_paths=np.array([p for p, _ in clips]),
        clip_labels=np.array([label for _, label in clips]),
        waveforms_int16=waveforms_int16,
        sample_rate=np.array(SR),
        log_mel=mel,
        logits=logits,
        embedding=embedding,
        preprocessing=np.array(PREPROCESSING),
        checkpoint_file=np.array(args.checkpoint.name),
        checkpoint_sha256=np.array(digest),
        versions=np.array([f"{k}=={v}" for k, v in versions.items()]),
        command=np.array("python tools/make_mn04_parity_fixture.py"),
    )
    tmp.replace(args.out)

    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"log-mel {mel.shape}, logits {logits.shape}, embedding {embedding.shape}")
    names = [name for _, name in AUDIOSET_CLASSES]
    for (path, label), row in zip(clips, logits):
        top = np.argsort(-row)[:3]
        print(f"  {path:<36} {label:<17} top-3: " + "; ".join(f"{names[i]} ({row[i]:.2f})" for i in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
